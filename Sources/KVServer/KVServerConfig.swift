import EventLoop
import ServiceSupport

/// Everything a kvd process is told on its command line.
public struct KVServerConfig: Sendable {
    public var nodeID: UInt64
    public var listen: Endpoint
    public var raftSocketPath: String
    /// A request not applied within this long is answered TIMEOUT.
    public var requestTimeoutMs: Double = 3000
    /// Client sessions idle longer than this (in log time) expire.
    public var sessionTimeoutMs: UInt64 = 3_600_000
    public var maxSessions: Int = 1_000_000
    public var maxKeyBytes: Int = RequestValidation.defaultMaxKeyBytes
    public var maxValueBytes: Int = RequestValidation.defaultMaxValueBytes
    public var frameLimit: Int = 16 * 1024 * 1024
    /// Requests waiting for the log, summed over all clients; beyond it new ones get UNAVAILABLE.
    public var maxPendingRequests: Int = 200_000
    /// Upper bound of one proposal (one log entry) in bytes of commands.
    public var maxProposalBytes: Int = 1 << 20
    /// Group commit: while this many proposals (log entries) are being committed, new
    /// commands gather into the next batch, proposed as soon as one of them applies or fails.
    /// Each Raft round (an fsync and a message on every node) then carries what arrived during
    /// the previous one, whatever the disk's speed; a lone request (nothing in flight) is
    /// proposed at once. 0: no limit (every loop pass proposes what arrived in it).
    public var maxProposalsInFlight: Int = 1
    /// The longest a batch waits behind proposals in flight before it is proposed anyway, so
    /// a round slowed down (a lagging quorum, a slow disk) overlaps with the next.
    public var groupCommitMaxWaitMs: Double = 2

    public init(nodeID: UInt64, listen: Endpoint, raftSocketPath: String) {
        self.nodeID = nodeID
        self.listen = listen
        self.raftSocketPath = raftSocketPath
    }
}
