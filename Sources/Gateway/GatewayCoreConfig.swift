/// The core's settings: pure numbers, no I/O. Times are in nanoseconds of the monotonic clock
/// the shell passes in.
public struct GatewayCoreConfig: Sendable {
    public var nodeIDs: [UInt64]
    /// Shown in status answers for nodes that did not answer.
    public var nodeAddresses: [UInt64: String] = [:]
    /// How long the gateway keeps trying a request before answering UNAVAILABLE.
    public var requestDeadline: UInt64 = 5_000_000_000
    /// How long one attempt may go unanswered at a node that still answers its health checks
    /// before the request is tried at another node.
    public var attemptTimeout: UInt64 = 2_000_000_000
    /// Every connected kvd is asked OP_STATUS this often (kvd asks its raftd, so a frozen raftd
    /// goes silent too).
    public var healthInterval: UInt64 = 100_000_000
    /// A node with anything pending (a request or a health check) and no answer for this long
    /// is suspect: nothing is sent to it, and what waits there is re-sent elsewhere.
    public var suspectAfter: UInt64 = 300_000_000
    /// A tick this much later than asked means the gateway itself was not running; that time
    /// is not counted as the nodes' silence.
    public var stallTolerance: UInt64 = 20_000_000
    /// First and largest pause before trying again when no node can take a request now (no
    /// leader known, or the hinted one unreachable): keeps the gateway from bouncing between
    /// followers at round-trip speed.
    public var retryBackoffMin: UInt64 = 5_000_000
    public var retryBackoffMax: UInt64 = 100_000_000
    /// An OP_STATUS asked at the gateway is answered with what arrived by then.
    public var statusTimeout: UInt64 = 1_000_000_000
    /// Requests accepted and not yet answered, over all clients; beyond it, UNAVAILABLE.
    public var maxInFlight: Int = 200_000
    public var maxIdleSessions: Int = 4096
    public var maxKeyBytes: Int
    public var maxValueBytes: Int
    public var seed: UInt64

    public init(nodeIDs: [UInt64], maxKeyBytes: Int, maxValueBytes: Int, seed: UInt64) {
        self.nodeIDs = nodeIDs.sorted()
        self.maxKeyBytes = maxKeyBytes
        self.maxValueBytes = maxValueBytes
        self.seed = seed
    }
}
