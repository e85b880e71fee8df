/// The settings `RaftDriver` decides by (raftd derives them from `RaftServerConfig`).
public struct RaftDriverConfig: Sendable {
    public var nodeID: UInt64
    /// How often the core ticks.
    public var tick: Duration
    public var readMode: ReadMode = .index
    /// Most bytes of committed entries in one frame streamed to kvd.
    public var applyChunkBytes: Int = 1 << 20
    /// Entry bytes logged since the last snapshot past which kvd is asked for one.
    public var snapshotLogBytes: Int = 16 << 20
    /// Entry bytes kept before a snapshot's index when compacting.
    public var snapshotCatchUpBytes: Int = 2 << 20
    /// A follower's committed entries go to its kvd at most this often: nobody waits on a
    /// follower's state machine, and one stream write (and kvd wakeup) per few ms instead of one
    /// per commit saves both processes CPU under load.
    public var followerApplyDelay: Duration = .milliseconds(5)
    /// An unanswered snapshot request is repeated after this long (e.g. kvd reconnected).
    public var snapshotRequestRetry: Duration = .seconds(10)
    /// How often a node that refuses to serve says so again in its log.
    public var refusalReminder: Duration = .seconds(5)
    /// Shown in the node's status.
    public var listenAddress: String = ""

    public init(nodeID: UInt64, tick: Duration) {
        precondition(nodeID != 0, "node ids are nonzero")
        precondition(tick > .zero, "the tick must be positive")
        self.nodeID = nodeID
        self.tick = tick
    }
}

extension Duration {
    /// Whole nanoseconds (negative durations count as zero).
    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        return UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
    }
}
