import ArgumentParser
import Foundation

/// Flags both benchmarks share: how long to measure, which processes to account for, and how
/// to print the result.
struct MeasurementOptions: ParsableArguments {
    @Option(help: "Seconds to measure (default 10 unless --total is given).")
    var duration: Double?

    @Option(help: "Operations (kv) or proposals (raft) to measure, instead of --duration.")
    var total: Int?

    @Option(help: "Seconds of load before measuring starts.")
    var warmup: Double = 0

    @Flag(help: "Print the result as JSON on stdout (the table then goes to stderr).")
    var json = false

    @Option(help: "Process ids to account CPU and memory for: PID,PID,…")
    var pids: String?

    @Option(help: "Name of this run in the output (e.g. W3).")
    var label: String = ""

    @Flag(help: "No progress line on stderr.")
    var quiet = false

    func validate() throws {
        if let duration, duration <= 0 { throw ValidationError("--duration must be positive") }
        if let total, total < 1 { throw ValidationError("--total must be positive") }
        if duration != nil && total != nil { throw ValidationError("give --duration or --total, not both") }
        guard warmup >= 0 else { throw ValidationError("--warmup must not be negative") }
        if let pids, MeasurementOptions.parsePIDs(pids) == nil { throw ValidationError("--pids '\(pids)' is not PID,PID,…") }
    }

    var durationSeconds: Double { duration ?? 10 }
    var processIDs: [Int32] { pids.flatMap(MeasurementOptions.parsePIDs) ?? [] }

    /// `PID,PID,…`, or nil if malformed.
    static func parsePIDs(_ text: String) -> [Int32]? {
        let items = text.split(separator: ",").map { Int32($0.trimmingCharacters(in: .whitespaces)) }
        guard !items.isEmpty, !items.contains(where: { $0 == nil || $0! <= 0 }) else { return nil }
        return items.compactMap { $0 }
    }

    /// Prints the table, or JSON on stdout with the table on stderr.
    func emit(_ report: some BenchmarkReport) {
        if json {
            stderr(report.table())
            print(report.json())
        } else {
            print(report.table())
        }
    }
}
