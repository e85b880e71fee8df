import CLibevent
#if canImport(Glibc)
import Glibc
#endif

/// Delivers SIGINT/SIGTERM (or any signals) as loop callbacks, for clean shutdown.
public final class SignalWatcher {
    private var events: [OpaquePointer] = []
    private let handler: (Int32) -> Void
    /// Keeps the event base alive as long as these events exist.
    private let loop: EventLoop

    public init(loop: EventLoop, signals: [Int32] = [SIGINT, SIGTERM], handler: @escaping (Int32) -> Void) {
        self.handler = handler
        self.loop = loop
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        for signal in signals {
            guard let event = event_new(loop.base, signal, Int16(EV_SIGNAL | EV_PERSIST), { fd, _, ctx in
                let watcher = Unmanaged<SignalWatcher>.fromOpaque(ctx!).takeUnretainedValue()
                watcher.handler(fd)
            }, ctx) else { continue }
            event_add(event, nil)
            events.append(event)
        }
        // A parent may have started us with these signals blocked (test runners and some
        // supervisors do); then they would stay pending forever and SIGTERM would do nothing.
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    deinit {
        for event in events { event_free(event) }
    }
}
