/// Keeps one outgoing connection to an endpoint alive: dials, and after every failure or
/// disconnect dials again with exponential backoff (with jitter, capped), until stopped.
public final class Dialer {
    public let endpoint: Endpoint
    private let loop: EventLoop
    private let limits: Connection.Limits
    private let tls: TLSDial?
    private let minBackoffMs: Double
    private let maxBackoffMs: Double
    private var backoffMs: Double
    private var retryTimer: Timer?
    private var running = false

    /// The live connection, once connected.
    public private(set) var connection: Connection?
    private var pending: Connection?

    /// A new connection is up; the owner installs `onRead` etc. on it.
    public var onConnected: ((Connection) -> Void)?
    /// The connection (or an attempt) ended; a new attempt is already scheduled.
    public var onDisconnected: ((Connection.CloseReason) -> Void)?

    public init(loop: EventLoop, endpoint: Endpoint, limits: Connection.Limits = Connection.Limits(),
                minBackoffMs: Double = 20, maxBackoffMs: Double = 1000, tls: TLSDial? = nil) {
        self.loop = loop
        self.tls = tls
        self.endpoint = endpoint
        self.limits = limits
        self.minBackoffMs = minBackoffMs
        self.maxBackoffMs = maxBackoffMs
        self.backoffMs = minBackoffMs
    }

    public func start() {
        guard !running else { return }
        running = true
        dial()
    }

    public func stop() {
        running = false
        retryTimer?.cancel()
        pending?.close()
        pending = nil
        connection?.close()
        connection = nil
    }

    /// Drops the current connection (e.g. the peer sent garbage) and dials again later.
    public func reset() {
        let had = connection ?? pending
        had?.close()
        connection = nil
        pending = nil
        if running { scheduleRetry() }
    }

    private func dial() {
        guard running, connection == nil, pending == nil else { return }
        do {
            let attempt = try Connection.connect(loop: loop, to: endpoint, limits: limits, tls: tls)
            pending = attempt
            attempt.onConnected = { [weak self] conn in
                guard let self, conn === self.pending else { return }
                self.pending = nil
                self.connection = conn
                self.backoffMs = self.minBackoffMs
                self.onConnected?(conn)
            }
            attempt.onClose = { [weak self] conn, reason in
                guard let self else { return }
                guard conn === self.pending || conn === self.connection else { return }
                if let failure = conn.tlsFailure {
                    self.loop.connectionLog.log(.warning, key: "tls-dial \(self.endpoint) \(failure)",
                            "TLS link to \(self.endpoint) refused: \(failure)")
                }
                self.pending = nil
                self.connection = nil
                self.onDisconnected?(reason)
                self.scheduleRetry()
            }
        } catch {
            onDisconnected?(.connectFailed("\(error)"))
            scheduleRetry()
        }
    }

    private func scheduleRetry() {
        guard running else { return }
        if retryTimer == nil {
            retryTimer = Timer(loop: loop) { [weak self] in self?.dial() }
        }
        let jitter = Double.random(in: 0.5...1.0)
        retryTimer?.schedule(milliseconds: backoffMs * jitter)
        backoffMs = min(maxBackoffMs, backoffMs * 2)
    }
}
