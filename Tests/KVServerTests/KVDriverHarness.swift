@testable import KVServer
import KVStore
import Wire

/// One kvd driver and everything it asked for, for single-scenario tests: inputs with a time
/// in milliseconds, the actions of the last input split by kind.
struct KVDriverHarness {
    static let ms: UInt64 = 1_000_000
    var driver: KVDriver
    var nowMs: UInt64 = 1_000
    /// Actions of the last input.
    var last: [KVDriverAction] = []

    init(configure: (inout KVDriverConfig) -> Void = { _ in }) {
        var config = KVDriverConfig(nodeID: 1, address: "127.0.0.1:9001")
        configure(&config)
        driver = KVDriver(config: config)
    }

    var now: KVTime { KVTime(monotonicNanos: nowMs * Self.ms, wallClockMillis: 1_700_000_000_000 + nowMs) }

    @discardableResult
    mutating func step(_ input: (inout KVDriver, KVTime) -> [KVDriverAction]) -> [KVDriverAction] {
        last = input(&driver, now)
        if let violation = driver.invariantViolation() { fatalError("invariant broken: \(violation)") }
        return last
    }

    /// Attached to raftd, leading `term` (after the hello).
    mutating func attachAsLeader(term: UInt64 = 2) {
        step { $0.raftConnected(at: $1) }
        step { $0.raftMessage(.leadership(Leadership(term: term, leaderID: 1, isLeader: true)), at: $1) }
    }

    mutating func request(_ client: UInt64, _ request: KvRequest) { step { $0.clientRequest(client: client, request, at: $1) } }
    mutating func raft(_ message: RaftToKvd) { step { $0.raftMessage(message, at: $1) } }
    mutating func passEnded() { step { $0.passEnded(at: $1) } }
    mutating func advance(ms: UInt64) {
        nowMs += ms
        step { $0.tick(at: $1) }
    }

    var sent: [KvdToRaft] { last.compactMap { if case let .sendToRaft(m) = $0 { m } else { nil } } }
    var replies: [(client: UInt64, response: KvResponse)] {
        last.compactMap { if case let .reply(client, response, _) = $0 { (client, response) } else { nil } }
    }
    var proposals: [(id: UInt64, batch: CommandBatch)] {
        sent.flatMap { message -> [(id: UInt64, batch: CommandBatch)] in
            guard case let .propose(list) = message else { return [] }
            return list.map { ($0.proposalID, try! CommandBatch(serialized: $0.data[...])) }
        }
    }

    static func put(_ id: UInt64, client: UInt64 = 7, seq: UInt64, _ key: String, _ value: String) -> KvRequest {
        KvRequest(requestID: id, clientID: client, seq: seq, op: .put, key: Array(key.utf8), value: Array(value.utf8))
    }

    static func append(_ id: UInt64, client: UInt64 = 7, seq: UInt64, _ key: String, _ value: String) -> KvRequest {
        KvRequest(requestID: id, clientID: client, seq: seq, op: .append, key: Array(key.utf8), value: Array(value.utf8))
    }

    static func get(_ id: UInt64, _ key: String) -> KvRequest {
        KvRequest(requestID: id, clientID: 9, seq: id, op: .get, key: Array(key.utf8))
    }

    /// The committed entry raftd would send for a proposal's data.
    static func entry(_ index: UInt64, term: UInt64, _ batch: CommandBatch) -> LogEntry {
        LogEntry(term: term, index: index, data: batch.serialized())
    }
}
