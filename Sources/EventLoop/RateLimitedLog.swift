import Logging

/// Log lines for events that can repeat thousands of times a second (a connection flood, an
/// accept failing at fd exhaustion): at most one line per key per `intervalMs`, and the next
/// line says how many were left out in between.
public final class RateLimitedLog {
    private let label: String
    /// Made at first use, so a log created before main sets up logging still goes through it.
    private lazy var logger = Logger(label: label)
    private let intervalNanos: UInt64
    private var lastLogged: [String: UInt64] = [:]
    private var suppressed: [String: Int] = [:]

    public init(label: String, intervalMs: Double = 5000) {
        self.label = label
        intervalNanos = UInt64(intervalMs * 1_000_000)
    }

    public func log(_ level: Logger.Level, key: String, _ message: @autoclosure () -> String) {
        let now = EventLoop.monotonicNanos()
        if let last = lastLogged[key], now - last < intervalNanos {
            suppressed[key, default: 0] += 1
            return
        }
        lastLogged[key] = now
        let skipped = suppressed.removeValue(forKey: key) ?? 0
        let suffix = skipped > 0 ? " (and \(skipped) more like it since the last report)" : ""
        logger.log(level: level, "\(message())\(suffix)")
        // Bounded: keys are a process's listeners and kinds of events, not its peers.
        assert(lastLogged.count < 10_000, "rate-limited log keys must name kinds of events, not peers")
    }
}
