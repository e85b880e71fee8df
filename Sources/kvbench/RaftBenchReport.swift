import Foundation

/// One raftd's log work over the measured window (from its status before and after).
struct RaftNodeUsage: Codable, Sendable {
    var id: UInt64
    /// Role at the end of the window.
    var role: String
    /// The leader proposals went to at the end.
    var isLeader: Bool
    /// fdatasyncs of its log in the window (nil: no status at the start or the end).
    var fsyncs: Int?
    var fsyncsPerSecond: Double?
    /// How far its log grew in the window.
    var entriesAppended: Int?
    var entriesPerFsync: Double?
}

/// What a `kvbench raft` run measured; `--json` prints exactly this.
struct RaftBenchResult: Codable, Sendable, BenchmarkReport {
    var label: String
    var sockets: String
    var inflight: Int
    var entrySize: Int
    var warmupSeconds: Double
    var elapsedSeconds: Double
    /// Proposals issued and committed in the measured window.
    var proposals: Int
    var proposalsPerSecond: Double
    /// From sending the proposal to the leader's stream delivering the committed entry.
    var latency: LatencySummary
    var leaderID: UInt64?
    var leaderChanges: Int
    /// Apply sockets that closed during the run (a raftd died, or another client attached).
    var socketLosses: Int
    /// Proposals a raftd refused (not the leader).
    var refused: Int
    /// Proposals dropped from the measurement because the leader changed under them.
    var abandoned: Int
    /// Proposals whose index committed with another term's entry.
    var lost: Int
    var nodes: [RaftNodeUsage]
    var leaderFsyncsPerSecond: Double?
    /// Mean over the followers.
    var followerFsyncsPerSecond: Double?
    /// Entries the leader appended per fdatasync.
    var entriesPerLeaderFsync: Double?
    var processes: [ProcessUsage]
    /// CPU seconds of the listed processes, summed, per committed proposal, in µs.
    var cpuMicrosPerProposal: Double?
    var benchCpuSeconds: Double

    /// The human-readable summary.
    func table() -> String {
        func f(_ value: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", value) }
        func opt(_ value: Double?, _ digits: Int) -> String { value.map { f($0, digits) } ?? "-" }
        var lines: [String] = []
        lines.append("kvbench raft \(label.isEmpty ? "" : "[\(label)] ")inflight=\(inflight) entry=\(entrySize)B leader=\(leaderID.map(String.init) ?? "?") sockets=\(sockets)")
        lines.append("  proposals:  \(proposals) in \(f(elapsedSeconds, 3)) s = \(f(proposalsPerSecond, 0)) proposals/s")
        lines.append("  commit ms:  p50 \(f(latency.p50Ms, 3))  p90 \(f(latency.p90Ms, 3))  p99 \(f(latency.p99Ms, 3))  p99.9 \(f(latency.p999Ms, 3))  max \(f(latency.maxMs, 3))  mean \(f(latency.meanMs, 3))")
        lines.append("  fsyncs/s:   leader \(opt(leaderFsyncsPerSecond, 1))  followers (mean) \(opt(followerFsyncsPerSecond, 1))  entries per leader fsync \(opt(entriesPerLeaderFsync, 2))")
        for node in nodes {
            lines.append("    raftd \(node.id) \(node.role.padding(toLength: 9, withPad: " ", startingAt: 0)) fsyncs \((node.fsyncs.map(String.init) ?? "-").leftPad(7))  \(opt(node.fsyncsPerSecond, 1).leftPad(8))/s  entries \((node.entriesAppended.map(String.init) ?? "-").leftPad(8))  per fsync \(opt(node.entriesPerFsync, 2))")
        }
        lines.append("  leader changes \(leaderChanges)  socket losses \(socketLosses)  refused \(refused)  abandoned \(abandoned)  lost \(lost)")
        if !processes.isEmpty {
            lines.append("  process        pid    cpu s   peak RSS MB   VmHWM MB")
            for p in processes {
                let name = p.name.padding(toLength: 10, withPad: " ", startingAt: 0)
                lines.append("  \(name) \(String(p.pid).leftPad(8)) \(f(p.cpuSeconds).leftPad(8)) \(f(p.peakRssMB, 1).leftPad(13)) \(f(p.hwmMB, 1).leftPad(10))\(p.exitedDuringRun ? "  (exited)" : "")")
            }
            if let cpu = cpuMicrosPerProposal { lines.append("  CPU µs/proposal (listed processes): \(f(cpu, 1))   kvbench itself: \(f(benchCpuSeconds)) s") }
        } else {
            lines.append("  kvbench CPU: \(f(benchCpuSeconds)) s (no --pids given: raftd CPU not measured)")
        }
        return lines.joined(separator: "\n")
    }
}
