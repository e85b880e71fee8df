import CLibevent

/// Runs an action once, soon, after the callbacks already queued on the loop; scheduling
/// it again before it ran is free. This is how work is batched: every input that arrives
/// in one loop pass schedules the same flush, which then handles all of it at once.
public final class DeferredAction {
    private var event: OpaquePointer?
    /// What runs. Settable, so an owner can hold its action in a `let` (see `Timer.action`).
    public var action: () -> Void
    public private(set) var isScheduled = false
    /// Keeps the event base alive as long as this event exists.
    private let loop: EventLoop

    public init(loop: EventLoop, action: @escaping () -> Void = {}) {
        self.action = action
        self.loop = loop
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        event = event_new(loop.base, -1, 0, { _, _, ctx in
            let deferred = Unmanaged<DeferredAction>.fromOpaque(ctx!).takeUnretainedValue()
            deferred.isScheduled = false
            deferred.action()
        }, ctx)
    }

    deinit {
        if let event { event_free(event) }
    }

    public func schedule() {
        guard !isScheduled, let event else { return }
        isScheduled = true
        event_active(event, EV_TIMEOUT, 0)
    }
}
