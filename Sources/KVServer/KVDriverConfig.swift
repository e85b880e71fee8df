import KVStore
import ServiceSupport
import Wire

/// What `KVDriver` decides by: kvd's flags, as values (times as `Duration`), and nothing of
/// the process around it.
public struct KVDriverConfig: Sendable {
    public var nodeID: UInt64
    /// The client address this kvd serves on, as `NodeStatus.address` reports it.
    public var address: String
    /// A request not applied (a Get not confirmed) within this long is answered TIMEOUT.
    public var requestTimeout: Duration = .seconds(3)
    /// The longest a batch waits behind proposals in flight before it is proposed anyway.
    public var groupCommitMaxWait: Duration = .milliseconds(2)
    /// Group commit: while this many proposals are being committed, new commands gather into
    /// the next batch; 0: no limit (every loop pass proposes what arrived in it).
    public var maxProposalsInFlight: Int = 1
    /// Upper bound of one proposal (one log entry) in bytes of commands.
    public var maxProposalBytes: Int = Limits.standard.maxProposalBytes
    /// Requests waiting for the log or a read index, over all clients; beyond it UNAVAILABLE.
    public var maxPendingRequests: Int = 200_000
    public var maxKeyBytes: Int = RequestValidation.defaultMaxKeyBytes
    public var maxValueBytes: Int = RequestValidation.defaultMaxValueBytes
    /// The session limits this kvd proposes to the log when it leads.
    public var requestedSessionLimits: SessionLimits = SessionLimits.defaults
    /// How long a status query or member command waits for raftd before kvd answers on its own.
    public var statusAnswerTimeout: Duration = .seconds(1)

    public init(nodeID: UInt64, address: String) {
        self.nodeID = nodeID
        self.address = address
    }
}

extension Duration {
    /// Whole nanoseconds (negative durations count as zero), for deadlines on the monotonic clock.
    var wholeNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        return UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
    }

    /// Whole milliseconds, for messages.
    var wholeMilliseconds: UInt64 { wholeNanoseconds / 1_000_000 }
}
