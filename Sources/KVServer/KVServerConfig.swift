import EventLoop
import ServiceSupport
import Wire

/// Everything a kvd process is told on its command line.
public struct KVServerConfig: Sendable {
    public var nodeID: UInt64
    public var listen: Endpoint
    public var raftSocketPath: String
    /// Mutual TLS on the client port (`--tls-cert/--tls-key/--tls-ca`); nil: plaintext.
    public var tls: TLSFiles?
    /// A request not applied within this long is answered TIMEOUT.
    public var requestTimeout: Duration = .seconds(3)
    /// The session limits this kvd proposes to the log when it leads (the state machine uses
    /// only replicated limits, so replicas with different flags cannot diverge): sessions idle
    /// longer than this (in log time) expire…
    public var sessionTimeoutMs: UInt64 = SessionLimits.defaults.sessionTimeoutMs
    /// …and at most this many are kept.
    public var maxSessions: Int = Int(SessionLimits.defaults.maxSessions)
    public var maxKeyBytes: Int = RequestValidation.defaultMaxKeyBytes
    public var maxValueBytes: Int = RequestValidation.defaultMaxValueBytes
    public var frameLimit: Int = Limits.standard.clientFrameBytes
    /// Requests waiting for the log or for a read index, summed over all clients; beyond it new
    /// ones get UNAVAILABLE.
    public var maxPendingRequests: Int = 200_000
    /// Upper bound of one proposal (one log entry) in bytes of commands.
    public var maxProposalBytes: Int = Limits.standard.maxProposalBytes
    /// Group commit: while this many proposals (log entries) are being committed, new
    /// commands gather into the next batch, proposed as soon as one of them applies or fails.
    /// Each Raft round (an fsync and a message on every node) then carries what arrived during
    /// the previous one, whatever the disk's speed; a lone request (nothing in flight) is
    /// proposed at once. 0: no limit (every loop pass proposes what arrived in it).
    public var maxProposalsInFlight: Int = 1
    /// The longest a batch waits behind proposals in flight before it is proposed anyway, so
    /// a round slowed down (a lagging quorum, a slow disk) overlaps with the next.
    public var groupCommitMaxWait: Duration = .milliseconds(2)

    /// The limits these flags ask for (tombstones keep the built-in defaults).
    public var requestedSessionLimits: SessionLimits {
        SessionLimits(sessionTimeoutMs: sessionTimeoutMs, maxSessions: UInt64(maxSessions),
                      tombstoneTimeoutMs: SessionLimits.defaults.tombstoneTimeoutMs,
                      maxTombstones: SessionLimits.defaults.maxTombstones)
    }

    /// What the driver decides by.
    public var driverConfig: KVDriverConfig {
        var driver = KVDriverConfig(nodeID: nodeID, address: "\(listen)")
        driver.requestTimeout = requestTimeout
        driver.groupCommitMaxWait = groupCommitMaxWait
        driver.maxProposalsInFlight = maxProposalsInFlight
        driver.maxProposalBytes = maxProposalBytes
        driver.maxPendingRequests = maxPendingRequests
        driver.maxKeyBytes = maxKeyBytes
        driver.maxValueBytes = maxValueBytes
        driver.requestedSessionLimits = requestedSessionLimits
        return driver
    }

    public init(nodeID: UInt64, listen: Endpoint, raftSocketPath: String) {
        self.nodeID = nodeID
        self.listen = listen
        self.raftSocketPath = raftSocketPath
    }
}
