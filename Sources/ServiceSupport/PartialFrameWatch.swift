import EventLoop

/// Closes a link that started a frame and did not finish it: a peer that sends half a frame
/// and then goes silent must not hold that half (up to the frame limit) forever.
///
/// Cheap on the hot path: after each read the owner says whether an unfinished frame waits and
/// how many frames it has completed so far; a one-shot timer armed when a partial frame first
/// appears checks, `timeoutMs` later, whether any frame completed meanwhile. So a frame left
/// unfinished is caught between 1× and 2× `timeoutMs` after it began. Way out of the timer: it
/// fires once; it re-arms only while a partial frame is still held, and each firing either sees
/// progress or expires the link.
public final class PartialFrameWatch {
    public let timeoutMs: Double
    private let timer: Timer
    /// Runs once when the link expired (settable, so an owner can hold the watch in a `let`).
    public var onExpired: () -> Void
    private var holdsPartialFrame = false
    private var framesCompleted: UInt64 = 0
    private var framesCompletedAtArm: UInt64 = 0

    public init(loop: EventLoop, timeoutMs: Double, onExpired: @escaping () -> Void = {}) {
        precondition(timeoutMs > 0, "a partial-frame timeout must be positive")
        self.timeoutMs = timeoutMs
        self.onExpired = onExpired
        timer = Timer(loop: loop)
        timer.action = { [weak self] in self?.fired() }
    }

    /// After handling what one read brought: `holdsPartialFrame` when bytes of an unfinished
    /// frame wait (not when reading is paused with whole frames waiting: that is the server's
    /// backpressure, not the peer's doing), `framesCompleted` counted since the link opened.
    public func observe(holdsPartialFrame: Bool, framesCompleted: UInt64) {
        self.holdsPartialFrame = holdsPartialFrame
        self.framesCompleted = framesCompleted
        guard holdsPartialFrame, !timer.isScheduled else { return }
        framesCompletedAtArm = framesCompleted
        timer.schedule(milliseconds: timeoutMs)
    }

    public func cancel() {
        timer.cancel()
    }

    private func fired() {
        guard holdsPartialFrame else { return }
        if framesCompleted == framesCompletedAtArm { return onExpired() }
        framesCompletedAtArm = framesCompleted
        timer.schedule(milliseconds: timeoutMs)
    }
}
