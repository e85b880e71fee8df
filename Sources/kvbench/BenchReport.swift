import Foundation

/// One cluster process's resource use over the measured window.
struct ProcessUsage: Codable, Sendable {
    var pid: Int
    var name: String
    var cpuSeconds: Double
    /// Largest VmRSS sampled during the window.
    var peakRssMB: Double
    /// The kernel's lifetime peak (VmHWM) at the end of the window.
    var hwmMB: Double
    var exitedDuringRun: Bool
}

struct LatencySummary: Codable, Sendable {
    var p50Ms: Double
    var p90Ms: Double
    var p99Ms: Double
    var p999Ms: Double
    var maxMs: Double
    var meanMs: Double
}

/// What a run measured; `--json` prints exactly this.
struct BenchResult: Codable, Sendable, BenchmarkReport {
    var label: String
    var target: String
    var op: String
    var readRatio: Double?
    var clients: Int
    var conns: Int
    var keySize: Int
    var valueSize: Int
    var keys: Int
    var preloaded: Bool
    var warmupSeconds: Double
    var elapsedSeconds: Double
    /// Operations completed (OK, NO_KEY) in the measured window.
    var ops: Int
    var opsPerSecond: Double
    var latency: LatencySummary
    /// Every answer that was not OK/NO_KEY, plus connection losses and client-side timeouts.
    var errors: Int
    var responsesByStatus: [String: Int]
    var processes: [ProcessUsage]
    /// CPU seconds of the listed processes, summed, per completed operation, in µs.
    var cpuMicrosPerOp: Double?
    var maxRssMB: Double?
    /// kvbench's own CPU seconds in the window.
    var benchCpuSeconds: Double

    /// The human-readable summary.
    func table() -> String {
        func f(_ value: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", value) }
        var lines: [String] = []
        lines.append("kvbench \(label.isEmpty ? "" : "[\(label)] ")op=\(op)\(readRatio.map { " read-ratio=\(f($0))" } ?? "") clients=\(clients) conns=\(conns) key=\(keySize)B value=\(valueSize)B keys=\(keys) target=\(target)")
        lines.append("  ops:        \(ops) in \(f(elapsedSeconds, 3)) s = \(f(opsPerSecond, 0)) ops/s")
        lines.append("  latency ms: p50 \(f(latency.p50Ms, 3))  p90 \(f(latency.p90Ms, 3))  p99 \(f(latency.p99Ms, 3))  p99.9 \(f(latency.p999Ms, 3))  max \(f(latency.maxMs, 3))  mean \(f(latency.meanMs, 3))")
        let statuses = responsesByStatus.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        lines.append("  errors:     \(errors)   responses: \(statuses.isEmpty ? "-" : statuses)")
        if !processes.isEmpty {
            lines.append("  process        pid    cpu s   peak RSS MB   VmHWM MB")
            for p in processes {
                let name = p.name.padding(toLength: 10, withPad: " ", startingAt: 0)
                lines.append("  \(name) \(String(p.pid).leftPad(8)) \(f(p.cpuSeconds).leftPad(8)) \(f(p.peakRssMB, 1).leftPad(13)) \(f(p.hwmMB, 1).leftPad(10))\(p.exitedDuringRun ? "  (exited)" : "")")
            }
            if let cpu = cpuMicrosPerOp { lines.append("  CPU µs/op (listed processes): \(f(cpu, 1))   kvbench itself: \(f(benchCpuSeconds)) s") }
        } else {
            lines.append("  kvbench CPU: \(f(benchCpuSeconds)) s (no --pids given: cluster CPU not measured)")
        }
        return lines.joined(separator: "\n")
    }
}

extension String {
    func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

/// `value` with `digits` decimals.
func fixed(_ value: Double, _ digits: Int) -> String {
    String(format: "%.\(digits)f", value)
}
