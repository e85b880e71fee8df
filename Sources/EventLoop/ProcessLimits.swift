/// Bounds every connection of one process is held to, so that no peer — hostile, slow or
/// frozen — can make the process hold memory or descriptors without limit. Set once on the
/// process's loop (`EventLoop.limits`) by main, before anything listens; every listener and
/// client link created on that loop picks them up, with these defaults otherwise.
public struct ProcessLimits: Sendable, Equatable {
    /// Connections one listener keeps open at once. Beyond it a new connection is accepted
    /// and closed at once (the peer sees the close, not a hang), with a rate-limited log line.
    public var maxConnectionsPerListener: Int = 4096
    /// A client link that received nothing and whose output made no progress for this long is
    /// closed. Never off: it is the way out of every pause for backpressure that the output
    /// budget does not end.
    public var idleTimeoutMs: Double = 300_000
    /// A link holding part of a frame that is not completed within this long is closed (it is
    /// closed between 1× and 2× this after the frame began).
    public var partialFrameTimeoutMs: Double = 10_000
    /// Unsent output one client link may hold; a link over it whose unsent output does not
    /// shrink over `outputStallMs` is disconnected.
    public var maxOutputBytesPerClient: Int = 8 << 20
    /// Unsent output of all client links together; while it is exceeded, links whose unsent
    /// output does not shrink over `outputStallMs` are disconnected, largest first, until it is not.
    public var clientOutputBudgetBytes: Int = 64 << 20
    /// Bytes of unfinished frames all client links together may hold; over it, the links
    /// holding the largest are closed at once until the rest fits (`InputBudget`).
    public var clientInputBudgetBytes: Int = 256 << 20
    /// How long output over a limit may go without shrinking before its link is judged not to
    /// be reading its replies.
    public var outputStallMs: Double = 500
    /// After accept(2) fails (EMFILE, ENFILE, ENOBUFS…), accepting pauses this long, doubling
    /// while it keeps failing, up to `acceptBackoffMaxMs`.
    public var acceptBackoffMinMs: Double = 50
    public var acceptBackoffMaxMs: Double = 1000
    /// A TLS handshake (either side) not finished within this long closes the link: a peer
    /// that connects and says nothing, or something else than TLS, is not kept.
    public var tlsHandshakeTimeoutMs: Double = 10_000

    public init() {}

    /// Why these limits cannot work, or nil.
    public var problem: String? {
        if maxConnectionsPerListener < 1 { return "the connection cap must be at least 1" }
        if idleTimeoutMs <= 0 || partialFrameTimeoutMs <= 0 { return "the idle and partial-frame timeouts must be positive" }
        if maxOutputBytesPerClient < 64 << 10 { return "the per-client output cap must be at least 64 KiB" }
        if clientOutputBudgetBytes < maxOutputBytesPerClient {
            return "the output budget (\(clientOutputBudgetBytes) bytes) must be at least the per-client cap (\(maxOutputBytesPerClient) bytes)"
        }
        if clientInputBudgetBytes < 16 << 20 { return "the input budget must be at least 16 MiB (one whole client frame)" }
        if tlsHandshakeTimeoutMs <= 0 { return "the TLS handshake timeout must be positive" }
        if outputStallMs <= 0 { return "the output stall time must be positive" }
        if acceptBackoffMinMs <= 0 || acceptBackoffMaxMs < acceptBackoffMinMs { return "accept backoff must be positive, min ≤ max" }
        return nil
    }
}
