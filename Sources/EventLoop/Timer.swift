import CLibevent

/// A one-shot or repeating timer on a loop. Scheduling an already scheduled timer moves it.
public final class Timer {
    private var event: OpaquePointer?
    /// What runs when the timer fires. Settable, so an owner can make its timer a `let` in its
    /// initializer and point it at a method of itself once `self` exists.
    public var action: () -> Void
    /// Keeps the event base alive as long as this event exists.
    private let loop: EventLoop

    public init(loop: EventLoop, repeating: Bool = false, action: @escaping () -> Void = {}) {
        self.action = action
        self.loop = loop
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        let flags = Int16(repeating ? EV_PERSIST : 0)
        event = event_new(loop.base, -1, flags, { _, _, ctx in
            let timer = Unmanaged<Timer>.fromOpaque(ctx!).takeUnretainedValue()
            timer.action()
        }, ctx)
    }

    deinit {
        if let event { event_free(event) }
    }

    /// Fires once after `milliseconds` (or every `milliseconds` for a repeating timer).
    public func schedule(milliseconds: Double) {
        schedule(micros: Int64(milliseconds * 1000))
    }

    /// Fires once after `delay` (or every `delay` for a repeating timer).
    public func schedule(after delay: Duration) {
        let (seconds, attoseconds) = delay.components
        schedule(micros: seconds * 1_000_000 + attoseconds / 1_000_000_000_000)
    }

    public func schedule(micros: Int64) {
        guard let event else { return }
        let interval = max(0, micros)
        var tv = timeval(tv_sec: Int(interval / 1_000_000), tv_usec: Int(interval % 1_000_000))
        event_add(event, &tv)
    }

    public func cancel() {
        guard let event else { return }
        event_del(event)
    }

    public var isScheduled: Bool {
        guard let event else { return false }
        return event_pending(event, Int16(EV_TIMEOUT), nil) != 0
    }
}
