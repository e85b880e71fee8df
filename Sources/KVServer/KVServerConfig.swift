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
    /// Group commit: while at least `groupCommitMinInFlight` earlier commands are still being
    /// committed, a new batch is proposed no sooner than this long after the previous one, so
    /// each Raft round (an fsync and a message on every node) carries more commands. A lone
    /// request (nothing else in flight) is proposed at once. 0 turns the wait off.
    public var groupCommitDelayUs: Double = 600
    public var groupCommitMinInFlight: Int = 4

    public init(nodeID: UInt64, listen: Endpoint, raftSocketPath: String) {
        self.nodeID = nodeID
        self.listen = listen
        self.raftSocketPath = raftSocketPath
    }
}
