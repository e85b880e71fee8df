import ClusterTestSupport
import Wire

/// A client of the simulated cluster, talking to kvds directly the way the gateway does: one
/// operation at a time under its own session, retried with the same client_id and seq after
/// WRONG_LEADER (to the hinted node), TIMEOUT, UNAVAILABLE or silence, until it gives up
/// (outcome unknown). It records what it saw for the linearizability and exactly-once checks.
struct SimulatedKVClient {
    struct PendingOperation {
        var kind: Operation.Kind
        var key: [UInt8]
        var value: [UInt8]
        var seq: UInt64
        var call: UInt64
        var giveUpAt: UInt64
        /// For appends: the element's index in this client's issue order.
        var appendIndex: Int?
    }

    /// The connection id at every kvd and the client id in the history.
    let index: Int
    let clientID: UInt64
    var seq: UInt64 = 0
    var operationsLeft: Int
    var current: PendingOperation?
    /// The node it believes leads.
    var target: Int
    /// The request id of the attempt in flight (replies to older attempts are ignored).
    var attempt: UInt64 = 0
    private var nextRequestID: UInt64 = 1
    /// Bumped whenever a wake-up is armed; older wake-ups are stale.
    var token: UInt64 = 0
    var history: [Operation] = []
    var appends: [[UInt8]: [AppendAttempt]] = [:]
    private var appendCount = 0

    init(index: Int, clientID: UInt64, operations: Int, target: Int) {
        self.index = index
        self.clientID = clientID
        operationsLeft = operations
        self.target = target
    }

    var isDone: Bool { operationsLeft == 0 && current == nil }

    static let appendKeys = [Array("a0".utf8), Array("a1".utf8)]
    static let putKeys = [Array("p0".utf8)]

    /// Starts the next operation (`choice` and `keyChoice` from the simulation's generator).
    mutating func begin(choice: Int, keyChoice: Int, now: UInt64, giveUpAfter: UInt64) {
        precondition(current == nil && operationsLeft > 0, "one operation at a time")
        seq += 1
        var op = PendingOperation(kind: .get, key: [], value: [], seq: seq, call: now, giveUpAt: now + giveUpAfter)
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
        return KvRequest(requestID: attempt, clientID: clientID, seq: op.seq, op: wireOp, key: op.key, value: op.value)
    }

    /// The current operation completed with `response` (OK or NO_KEY).
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
        operationsLeft -= 1
    }
}
