import EventLoop
#if canImport(Glibc)
import Glibc
#endif
import Wire

/// What became of one operation.
public enum ClerkOutcome: Sendable, Equatable {
    /// Applied exactly once (or refused for good: BAD_REQUEST); the reply.
    case completed(KvResponse)
    /// Gave up at the deadline: it may or may not have been applied.
    case unknown(String)
    /// A write that was applied by an earlier attempt whose reply was lost; by the time it was
    /// retried the session had expired, so its reply (e.g. a Delete's OK or NO_KEY) is no
    /// longer known. It was applied exactly once: do not run it again.
    case appliedReplyLost(String)
}

/// A session client: one client_id, sequence numbers from 1, one operation at a time.
/// It retries an operation with the same (client_id, seq) across the given endpoints
/// (gateways, or kvds following leader hints) until a definite answer or its deadline —
/// so every operation takes effect at most once, and exactly once when it completes.
///
/// SESSION_EXPIRED means the seq was applied earlier and its reply is no longer kept (the
/// session expired between an attempt that applied and the retry). A Get then goes again
/// under the next seq, which reopens the session (a read has no effect to repeat); a write
/// ends as `appliedReplyLost`, never re-run (not even under a new client_id).
public final class Clerk {
    public let clientID: UInt64
    /// Mutual TLS for every connection this clerk makes (set before the first operation).
    public var tls: TLSContext?
    private var nextSeq: UInt64 = 1
    private let endpoints: [Endpoint]
    /// Node id → index in `endpoints`, when talking to kvds directly (leader hints are node ids).
    private let nodeIndex: [UInt64: Int]
    private var connections: [KVConnection?]
    private var preferred = 0
    public var attemptTimeoutMs: Double
    public var operationTimeoutMs: Double

    /// - Parameters:
    ///   - endpoints: gateways (any will do) or kvds.
    ///   - nodeIDs: with kvd endpoints, each one's node id, so leader hints can be followed.
    public init(endpoints: [Endpoint], nodeIDs: [UInt64]? = nil, clientID: UInt64? = nil,
                attemptTimeoutMs: Double = 1000, operationTimeoutMs: Double = 10_000) {
        precondition(!endpoints.isEmpty)
        self.endpoints = endpoints
        self.clientID = clientID ?? Clerk.newClientID()
        var index: [UInt64: Int] = [:]
        if let nodeIDs { for (i, id) in nodeIDs.enumerated() { index[id] = i } }
        nodeIndex = index
        connections = Array(repeating: nil, count: endpoints.count)
        self.attemptTimeoutMs = attemptTimeoutMs
        self.operationTimeoutMs = operationTimeoutMs
        preferred = Int.random(in: 0..<endpoints.count)
    }

    public static func newClientID() -> UInt64 { UInt64.random(in: 1...UInt64.max) }

    public func get(_ key: [UInt8]) -> ClerkOutcome { perform(.get, key) }
    public func put(_ key: [UInt8], _ value: [UInt8]) -> ClerkOutcome { perform(.put, key, value) }
    public func append(_ key: [UInt8], _ value: [UInt8]) -> ClerkOutcome { perform(.append, key, value) }
    public func delete(_ key: [UInt8]) -> ClerkOutcome { perform(.delete, key) }

    public func perform(_ op: Op, _ key: [UInt8], _ value: [UInt8] = []) -> ClerkOutcome {
        var request = KvRequest(clientID: clientID, seq: nextSeq, op: op, key: key, value: value)
        nextSeq += 1
        let deadline = EventLoop.monotonicNanos() + UInt64(operationTimeoutMs * 1_000_000)
        var lastProblem = "no attempt made"
        var attempts = 0
        while EventLoop.monotonicNanos() < deadline {
            if attempts > 0 && attempts % endpoints.count == 0 { pause(ms: min(100, 10 * Double(attempts / endpoints.count))) }
            attempts += 1
            let target = preferred
            let remainingMs = Double(deadline - min(deadline, EventLoop.monotonicNanos())) / 1_000_000
            let connection = connections[target] ?? KVConnection(endpoint: endpoints[target], tls: tls)
            connections[target] = connection
            do {
                let response = try connection.call(request, timeoutMs: max(1, min(attemptTimeoutMs, remainingMs)))
                switch response.status {
                case .ok, .noKey, .badRequest:
                    return .completed(response)
                case .sessionExpired:
                    guard op == .get else {
                        return .appliedReplyLost("\(op) seq \(request.seq) of client \(clientID) was applied by an earlier attempt, whose reply was lost; the session has expired since, so the reply is no longer known")
                    }
                    // A read has no effect: read again under the next seq (it reopens the session).
                    request.seq = nextSeq
                    nextSeq += 1
                    lastProblem = "session expired; read again as seq \(request.seq)"
                case .wrongLeader:
                    lastProblem = "wrong leader (hint '\(response.leaderHint)')"
                    if let hint = UInt64(response.leaderHint), let index = nodeIndex[hint], index != target {
                        preferred = index
                    } else {
                        preferred = (target + 1) % endpoints.count
                    }
                default:
                    lastProblem = "\(response.status): \(response.message)"
                    preferred = (target + 1) % endpoints.count
                }
            } catch {
                connection.close()
                connections[target] = nil
                lastProblem = "\(endpoints[target]): \(error)"
                preferred = (target + 1) % endpoints.count
            }
        }
        return .unknown(lastProblem)
    }

    /// Runs one request once against the preferred endpoint (e.g. OP_STATUS).
    public func callOnce(_ request: KvRequest) throws(KVCallError) -> KvResponse {
        let connection = connections[preferred] ?? KVConnection(endpoint: endpoints[preferred], tls: tls)
        connections[preferred] = connection
        return try connection.call(request, timeoutMs: attemptTimeoutMs)
    }

    public func closeConnections() {
        for connection in connections { connection?.close() }
        connections = Array(repeating: nil, count: endpoints.count)
    }

    private func pause(ms: Double) {
        usleep(UInt32(ms * 1000))
    }
}
