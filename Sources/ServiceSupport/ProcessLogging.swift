import ArgumentParser
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Log levels accepted by `--log-level`: trace, debug, info, notice, warning, error, critical.
extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Sets up swift-log once per process: one line per event on stderr, prefixed with the
/// process name and node, e.g. `2026-11-25T22:11:29.123Z raftd[1] info: became leader term=3`.
public enum ProcessLogging {
    public static func bootstrap(process: String, level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler = LineLogHandler(label: label, process: process)
            handler.logLevel = level
            return handler
        }
    }
}

struct LineLogHandler: LogHandler {
    let label: String
    let process: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        let rendered = fields.isEmpty ? "" : " " + fields.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let line = "\(timestamp()) \(process) \(event.level): \(event.message)\(rendered)\n"
        // One write(2) per line: lines from concurrent processes sharing a terminal don't interleave.
        var bytes = Array(line.utf8)
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + written, $0.count - written) }
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else { break }  // stderr gone: nothing sensible left to do
            written += result
        }
    }

    private func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UTCTimestamp.text(seconds: ts.tv_sec, millis: ts.tv_nsec / 1_000_000)
    }
}
