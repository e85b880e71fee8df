import EventLoop

/// Closes a link that has gone quiet: nothing received, nothing sent, and none of its queued
/// output taken by the socket for `timeoutMs` (between 1× and 1.25× that, checked in quarters).
/// A server answers every request within its own request timeout, far below this, so a link
/// with a request in progress is never quiet that long; a peer that stopped reading its replies
/// makes no progress either, so this is also the way out of a pause for backpressure that no
/// output budget ends.
///
/// Way out of the timer: it repeats only while the link is open (`cancel()` on close), and it
/// expires the link after four quiet quarters.
public final class IdleWatch {
    public let timeoutMs: Double
    private let timer: Timer
    /// False once expired or cancelled: the link is closing.
    public private(set) var isWatching = true
    /// Runs once when the link expired (settable, so an owner can hold the watch in a `let`).
    public var onExpired: () -> Void
    /// Bumped by the owner on every read and every send.
    public var activity: UInt64 = 0
    private var activitySeen: UInt64 = 0
    private var quietQuarters = 0
    private let progress: () -> Int
    private var progressSeen = 0

    /// `progress` returns a number that changes whenever the link's output moves (bytes the
    /// socket took).
    public init(loop: EventLoop, timeoutMs: Double, progress: @escaping () -> Int, onExpired: @escaping () -> Void = {}) {
        precondition(timeoutMs > 0, "an idle timeout must be positive: it is the way out of pauses")
        self.timeoutMs = timeoutMs
        self.progress = progress
        self.onExpired = onExpired
        timer = Timer(loop: loop, repeating: true)
        timer.action = { [weak self] in self?.fired() }
        timer.schedule(milliseconds: timeoutMs / 4)
    }

    public func cancel() {
        isWatching = false
        timer.cancel()
    }

    private func fired() {
        let moved = progress()
        if activity != activitySeen || moved != progressSeen {
            activitySeen = activity
            progressSeen = moved
            quietQuarters = 0
            return
        }
        quietQuarters += 1
        if quietQuarters >= 4 {
            cancel()
            onExpired()
        }
    }
}
