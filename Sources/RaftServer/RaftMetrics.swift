import Metrics
import Raft
import ServiceSupport

/// raftd's metrics, named like etcd's (`etcd_server_*`, `etcd_disk_*`) under `kvraft_raft_`.
/// Made only when the process serves metrics (`RaftServer.enableMetrics`); the server calls it
/// at the few places where things happen, and the gauges are read from the core at scrape time.
final class RaftMetrics {
    static let histogramBuckets: [String: [Duration]] = [
        "kvraft_raft_wal_fsync_duration_seconds": LatencyBuckets.fine,
        "kvraft_raft_peer_round_trip_time_seconds": LatencyBuckets.fine,
        "kvraft_raft_snapshot_duration_seconds": LatencyBuckets.slow,
    ]

    private let hasLeader = Gauge(label: "kvraft_raft_has_leader")
    private let isLeader = Gauge(label: "kvraft_raft_is_leader")
    private let term = Gauge(label: "kvraft_raft_term")
    private let commitIndex = Gauge(label: "kvraft_raft_commit_index")
    private let leaderChanges = Counter(label: "kvraft_raft_leader_changes_seen_total")
    private let proposalsCommitted = Counter(label: "kvraft_raft_proposals_committed_total")
    private let fsyncDuration = Metrics.Timer(label: "kvraft_raft_wal_fsync_duration_seconds")
    let snapshotDuration = Metrics.Timer(label: "kvraft_raft_snapshot_duration_seconds")
    private var roundTrips: [UInt64: Metrics.Timer] = [:]
    /// When the heartbeat now awaiting an answer went to each follower (monotonic ns).
    private var heartbeatSentAt: [UInt64: UInt64] = [:]
    private var lastLeader: UInt64 = 0
    private let clock = ContinuousClock()

    init(peers: [UInt64]) {
        for peer in peers {
            roundTrips[peer] = Metrics.Timer(label: "kvraft_raft_peer_round_trip_time_seconds", dimensions: [("to", "\(peer)")])
        }
        // Present from the first scrape, before anything happened.
        leaderChanges.increment(by: 0)
        proposalsCommitted.increment(by: 0)
    }

    /// The gauges, from the core's status (at scrape time).
    func refresh(_ status: RaftStatus) {
        hasLeader.record(status.leader != 0 ? 1 : 0)
        isLeader.record(status.role == .leader ? 1 : 0)
        term.record(Int64(status.term))
        commitIndex.record(Int64(status.commitIndex))
    }

    func observe(_ soft: SoftState) {
        if soft.leader != 0, soft.leader != lastLeader { leaderChanges.increment() }
        lastLeader = soft.leader
    }

    func committed(_ entries: Int) {
        if entries > 0 { proposalsCommitted.increment(by: Int64(entries)) }
    }

    /// Times one WAL fsync.
    static func timeFsync(_ metrics: RaftMetrics?, _ sync: () throws -> Void) rethrows {
        guard let metrics else { return try sync() }
        let started = metrics.clock.now
        try sync()
        metrics.fsyncDuration.recordInterval(since: started, clock: metrics.clock)
    }

    /// Round trips are timed on heartbeats, which followers answer at once: the first one sent
    /// to a follower with none outstanding, until its answer.
    func sent(_ messages: [Message], nowNanos: UInt64) {
        for message in messages where message.type == .heartbeat {
            // One outstanding per follower; one unanswered for a second (lost) is given up.
            if let sent = heartbeatSentAt[message.to], nowNanos &- sent < 1_000_000_000 { continue }
            heartbeatSentAt[message.to] = nowNanos
        }
    }

    func received(_ message: Message, nowNanos: UInt64) {
        guard message.type == .heartbeatResponse, let sent = heartbeatSentAt.removeValue(forKey: message.from) else { return }
        roundTrips[message.from]?.recordNanoseconds(Int64(nowNanos &- sent))
    }
}

extension Metrics.Timer {
    func recordInterval(since start: ContinuousClock.Instant, clock: ContinuousClock) {
        let elapsed = clock.now - start
        let (seconds, attoseconds) = elapsed.components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
