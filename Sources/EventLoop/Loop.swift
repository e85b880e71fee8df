import CLibevent
#if canImport(Glibc)
import Glibc
#endif

/// One libevent event base. Each process runs one loop on one thread; every object of
/// this module belongs to the loop it was created with and is used only on its thread.
public final class EventLoop {
    let base: OpaquePointer
    /// Connections written to during this pass, flushed once each when the pass's callbacks
    /// are done: one write per connection per pass, without waiting for epoll to report it
    /// writable first.
    private var unflushed: [Connection] = []
    private var flushEvent: OpaquePointer?
    private var flushScheduled = false

    /// The bounds this process's connections are held to. Set by main before anything
    /// listens; listeners and client links read them when they are created.
    public var limits = ProcessLimits() {
        didSet {
            precondition(limits.problem == nil, "invalid process limits: \(limits.problem ?? "")")
            clientInputBudget?.limitBytes = limits.clientInputBudgetBytes
            guard let budget = clientOutputBudget else { return }
            budget.limitBytes = limits.clientOutputBudgetBytes
            budget.maxBytesPerConnection = limits.maxOutputBytesPerClient
            budget.stallMs = limits.outputStallMs
        }
    }
    /// Log lines about connections refused, cut or timed out, shared by every listener and link
    /// of the process so that a flood of bad peers makes a few lines, not one per peer.
    public let connectionLog = RateLimitedLog(label: "connections")

    /// Weak: the charged connections own the budget (its timer holds the loop, so the loop
    /// owning it would be a cycle); with no client connection left it is empty and goes.
    private weak var clientOutputBudget: OutputBudget?

    /// The output budget shared by this process's client connections.
    public var clientOutput: OutputBudget {
        if let clientOutputBudget { return clientOutputBudget }
        let budget = OutputBudget(loop: self, limits: limits)
        clientOutputBudget = budget
        return budget
    }

    private weak var clientInputBudget: InputBudget?

    /// The budget for unfinished frames shared by this process's client links (weak for the
    /// same reason: the links hold it).
    public var clientInput: InputBudget {
        if let clientInputBudget { return clientInputBudget }
        let budget = InputBudget(loop: self, limits: limits)
        clientInputBudget = budget
        return budget
    }

    /// Timers fire with epoll_wait's millisecond resolution. (libevent's precise timers would
    /// cost a `timerfd_settime` on every loop pass; nothing here waits less than a millisecond.)
    public init() {
        // A peer that goes away mid-write must not kill the process.
        signal(SIGPIPE, SIG_IGN)
        // The epoll changelist folds the enable/disable pairs a bufferevent makes around each
        // write into one epoll_ctl per pass (or none).
        let config = event_config_new()
        event_config_set_flag(config, Int32(EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST.rawValue))
        guard let base = event_base_new_with_config(config) else { fatalError("event_base_new failed") }
        event_config_free(config)
        self.base = base
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        flushEvent = event_new(base, -1, 0, { _, _, ctx in
            Unmanaged<EventLoop>.fromOpaque(ctx!).takeUnretainedValue().flushWrites()
        }, ctx)
    }

    deinit {
        if let flushEvent { event_free(flushEvent) }
        event_base_free(base)
    }

    func needsFlush(_ connection: Connection) {
        unflushed.append(connection)
        guard !flushScheduled, let flushEvent else { return }
        flushScheduled = true
        event_active(flushEvent, EV_TIMEOUT, 0)
    }

    private func flushWrites() {
        flushScheduled = false
        let connections = unflushed
        unflushed.removeAll(keepingCapacity: true)
        for connection in connections { connection.flushQueuedWrites() }
    }

    /// Runs callbacks until `stop()` is called or nothing is left to wait for.
    public func run() {
        event_base_dispatch(base)
    }

    /// Runs one pass of ready callbacks without blocking (for tests that drive a loop by hand).
    public func runOnce(blocking: Bool = false) {
        event_base_loop(base, blocking ? EVLOOP_ONCE : EVLOOP_NONBLOCK)
    }

    /// Makes `run()` return after the callback now running.
    public func stop() {
        event_base_loopbreak(base)
    }

    /// Monotonic time in nanoseconds, for deadlines and latency.
    public static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Wall-clock milliseconds since the Unix epoch.
    public static func wallClockMillis() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
    }
}
