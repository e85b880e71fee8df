import ClusterTestSupport
import Wire

/// An application client of the whole-node simulation: one operation at a time (Get, Put or
/// Append, each Append of a unique element) through one gateway connection. With its own
/// session (client_id ≠ 0) it retries an operation under the same seq after UNAVAILABLE or
/// TIMEOUT, and after its connection closed, until it gets a definite answer; with a session
/// lent by the gateway (client_id 0) it may retry only Gets: a write's unknown outcome stays
/// unknown. It records what it saw for the linearizability and exactly-once checks.
struct WholeNodeClient {
    struct Pending {
        var kind: Operation.Kind
        var key: [UInt8]
        var value: [UInt8]
        var seq: UInt64
        var call: UInt64
        var appendIndex: Int?
    }

    let index: Int
    /// 0: the gateway lends a session.
    let clientID: UInt64
    var gateway: Int
    /// The connection id at the gateway (a closed connection is replaced by a new id).
    var connection: UInt64
    var seq: UInt64 = 0
    var current: Pending?
    /// The request id of the attempt in flight (0: none; answers to others are ignored).
    var attempt: UInt64 = 0
    var nextRequestID: UInt64 = 1
    /// The client sends (a new operation or a retry) at this time.
    var wakeAt: UInt64?
    var completed = 0
    var history: [Operation] = []
    var appends: [[UInt8]: [AppendAttempt]] = [:]
    private var appendCount = 0

    static let appendKeys = [Array("a0".utf8), Array("a1".utf8)]
    static let putKeys = [Array("p0".utf8)]

    init(index: Int, clientID: UInt64, gateway: Int, connection: UInt64) {
        self.index = index
        self.clientID = clientID
        self.gateway = gateway
        self.connection = connection
    }

    var isIdle: Bool { current == nil }

    /// Starts the next operation (`choice` and `keyChoice` drawn by the simulation).
    mutating func begin(choice: Int, keyChoice: Int, now: UInt64) {
        precondition(current == nil, "one operation at a time")
        seq += 1
        var op = Pending(kind: .get, key: [], value: [], seq: seq, call: now)
        switch choice % 100 {
        case 0..<45:
            op.kind = .append
            op.key = Self.appendKeys[keyChoice % Self.appendKeys.count]
            op.appendIndex = appendCount
            op.value = AppendElement.bytes(clientID: index, index: appendCount)
            appendCount += 1
        case 45..<65:
            op.kind = .put
            op.key = Self.putKeys[keyChoice % Self.putKeys.count]
            op.value = Array("v\(index).\(seq)".utf8)
        default:
            let keys = Self.appendKeys + Self.putKeys
            op.key = keys[keyChoice % keys.count]
        }
        current = op
    }

    /// The request for a new attempt of the current operation.
    mutating func nextAttempt() -> KvRequest {
        let op = current!
        attempt = nextRequestID
        nextRequestID += 1
        let wireOp: Op = switch op.kind {
        case .get: .get
        case .put: .put
        case .append: .append
        case .delete: .delete
        }
        return KvRequest(requestID: attempt, clientID: clientID, seq: clientID == 0 ? 0 : op.seq, op: wireOp, key: op.key, value: op.value)
    }

    /// The current Get goes again under the next seq (its seq was refused as used before).
    mutating func renumber() {
        precondition(current?.kind == .get, "only a Get may change its seq")
        seq += 1
        current!.seq = seq
    }

    /// May the current operation be sent again after an unknown outcome?
    var mayRetry: Bool { clientID != 0 || current?.kind == .get }

    /// The current operation took effect (OK, NO_KEY, or a lent session's SESSION_EXPIRED write).
    mutating func complete(_ response: KvResponse, now: UInt64) {
        let op = current!
        var output: Operation.Output = .none
        if op.kind == .get { output = response.status == .noKey ? .missing : .value(response.value) }
        history.append(Operation(clientID: index, kind: op.kind, key: op.key, value: op.value, output: output,
                                 call: op.call, return: now))
        if let appendIndex = op.appendIndex { appends[op.key, default: []].append(AppendAttempt(index: appendIndex, acknowledged: true)) }
        finish()
    }

    /// The current operation's outcome stays unknown.
    mutating func giveUp() {
        let op = current!
        if op.kind != .get {
            history.append(Operation(clientID: index, kind: op.kind, key: op.key, value: op.value,
                                     call: op.call, return: op.call, outcome: .unknown))
        }
        if let appendIndex = op.appendIndex { appends[op.key, default: []].append(AppendAttempt(index: appendIndex, acknowledged: false)) }
        finish()
    }

    private mutating func finish() {
        current = nil
        attempt = 0
        completed += 1
    }
}
