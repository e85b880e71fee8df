import Foundation

/// What a failover run observed, as lines in a file another process reads while the run goes
/// on (scripts/bench --failover injects faults and matches them against these lines by time).
/// All times are CLOCK_MONOTONIC nanoseconds, the clock of `EventLoop.monotonicNanos` and of
/// Python's `time.monotonic_ns()`.
///
///     start <ns>                    the first operation was issued
///     gap <from ns> <to ns>         no operation completed between these two completions
///                                   (only stretches longer than the threshold are written)
///     slow <from ns> <to ns> <client>  one operation took longer than the threshold, from its
///                                   first send to its definite answer (resends included)
///     err <ns> <STATUS>             a non-OK answer, a lost connection, or a client-side resend
///     open <from ns> <client>       at the end: an operation still without an answer, first sent then
///     tick <ns> <completed> <last completion ns>   every flush (a heartbeat: progress so far)
///     end <ns> <completed> <last completion ns>    the run stopped
///
/// Recording every completion would be ~100k lines a minute; the longest stretch without one
/// only ever needs the stretches above a few milliseconds, so only those are written. The
/// stretches are across all clients; `slow` lines show what one client waited (a fault that
/// strands a few clients while others go on shows there, not in the gaps).
final class FailoverTimeline {
    private let handle: FileHandle
    private let gapThresholdNanos: UInt64
    private let slowThresholdNanos: UInt64
    private var buffer = ""
    private(set) var completed = 0
    private(set) var lastCompletionNanos: UInt64 = 0
    private(set) var statusCounts: [String: Int] = [:]

    /// Opens (truncates) `path`; throws when it cannot be written.
    init(path: String, gapThresholdMs: Double, slowThresholdMs: Double) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil),
              let handle = FileHandle(forWritingAtPath: path) else {
            throw BenchFailure("cannot write the timeline file '\(path)'; give a writable --timeline path")
        }
        self.handle = handle
        gapThresholdNanos = UInt64(max(0, gapThresholdMs) * 1_000_000)
        slowThresholdNanos = UInt64(max(0, slowThresholdMs) * 1_000_000)
    }

    func started(at now: UInt64) {
        buffer += "start \(now)\n"
        flush()
    }

    /// One operation, first sent at `sentAt` by client `client`, got its definite answer at `now`.
    func completed(at now: UInt64, sentAt: UInt64, client: Int) {
        if now > sentAt, now - sentAt > slowThresholdNanos {
            buffer += "slow \(sentAt) \(now) \(client)\n"
        }
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

    /// At the end: client `client` still waits for an operation first sent at `sentAt`.
    func unanswered(sentAt: UInt64, client: Int) {
        buffer += "open \(sentAt) \(client)\n"
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
