import Foundation

/// What a failover run observed, as lines in a file another process reads while the run goes
/// on (scripts/bench --failover injects faults and matches them against these lines by time).
/// All times are CLOCK_MONOTONIC nanoseconds, the clock of `EventLoop.monotonicNanos` and of
/// Python's `time.monotonic_ns()`.
///
///     start <ns>                    the first operation was issued
///     gap <from ns> <to ns>         no operation completed between these two completions
///                                   (only stretches longer than the threshold are written)
///     err <ns> <STATUS>             a non-OK answer, a lost connection, or a client-side resend
///     tick <ns> <completed> <last completion ns>   every flush (a heartbeat: progress so far)
///     end <ns> <completed> <last completion ns>    the run stopped
///
/// Recording every completion would be ~100k lines a minute; the longest stretch without one
/// only ever needs the stretches above a few milliseconds, so only those are written.
final class FailoverTimeline {
    private let handle: FileHandle
    private let gapThresholdNanos: UInt64
    private var buffer = ""
    private(set) var completed = 0
    private(set) var lastCompletionNanos: UInt64 = 0
    private(set) var statusCounts: [String: Int] = [:]

    /// Opens (truncates) `path`; throws when it cannot be written.
    init(path: String, gapThresholdMs: Double) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil),
              let handle = FileHandle(forWritingAtPath: path) else {
            throw BenchFailure("cannot write the timeline file '\(path)'; give a writable --timeline path")
        }
        self.handle = handle
        gapThresholdNanos = UInt64(max(0, gapThresholdMs) * 1_000_000)
    }

    func started(at now: UInt64) {
        buffer += "start \(now)\n"
        flush()
    }

    /// One operation got its definite answer at `now`.
    func completed(at now: UInt64) {
        if lastCompletionNanos > 0, now > lastCompletionNanos, now - lastCompletionNanos > gapThresholdNanos {
            buffer += "gap \(lastCompletionNanos) \(now)\n"
        }
        lastCompletionNanos = max(lastCompletionNanos, now)
        completed += 1
    }

    /// Something a client saw that was not a plain answer (status names, CONNECTION_LOST, CLIENT_TIMEOUT).
    func error(_ status: String, at now: UInt64) {
        statusCounts[status, default: 0] += 1
        buffer += "err \(now) \(status)\n"
    }

    /// Writes a heartbeat and everything buffered (called every ~100 ms, so a reader is at
    /// most that far behind).
    func tick(at now: UInt64) {
        buffer += "tick \(now) \(completed) \(lastCompletionNanos)\n"
        flush()
    }

    func finish(at now: UInt64) {
        buffer += "end \(now) \(completed) \(lastCompletionNanos)\n"
        flush()
        try? handle.close()
    }

    private func flush() {
        guard !buffer.isEmpty else { return }
        handle.write(Data(buffer.utf8))
        buffer = ""
    }
}
