import Foundation
import SimulationSupport
import Testing

/// raftd's driver under seeded chaos (see `RaftdSimulation`): 3–5 nodes, a faulty network,
/// crashing disks, fake kvds.
/// - default: seeds 0..<300, in two halves run in parallel;
/// - `RAFTD_SIM_SEEDS=N`: seeds 0..<N; `KVRAFT_SIM_SEED_BASE=B`: they start at B;
/// - `RAFTD_SIM_SEED=S`: replays seed S alone, printing its report.
struct RaftdSimulationTests {
    static let environment = ProcessInfo.processInfo.environment
    static let halves = 2

    @Test(arguments: 0..<halves)
    func seedSweep(half: Int) {
        if let replay = Self.environment["RAFTD_SIM_SEED"].flatMap(UInt64.init) {
            guard half == 0 else { return }
            var simulation = RaftdSimulation(seed: replay, options: Self.options(seed: replay))
            let violations = simulation.run()
            print(simulation.report)
            #expect(violations.isEmpty, "seed \(replay): \(violations.first ?? "")")
            return
        }
        let count = Self.environment["RAFTD_SIM_SEEDS"].flatMap(UInt64.init) ?? 300
        let base = Self.environment["KVRAFT_SIM_SEED_BASE"].flatMap(UInt64.init) ?? 0
        for seed in stride(from: base + UInt64(half), to: base + count, by: Self.halves) {
            var simulation = RaftdSimulation(seed: seed, options: Self.options(seed: seed))
            let violations = simulation.run()
            if !violations.isEmpty {
                Issue.record("raftd simulation failed; replay with RAFTD_SIM_SEED=\(seed)\n\(simulation.report)")
                return
            }
        }
    }

    /// A seed replays exactly: the same events, the same outcome.
    @Test func aSeedReplaysExactly() {
        var first = RaftdSimulation(seed: 11, options: Self.options(seed: 11))
        var second = RaftdSimulation(seed: 11, options: Self.options(seed: 11))
        #expect(first.run() == second.run())
        #expect(first.report == second.report)
        #expect(first.committed == second.committed)
        #expect(first.crashes > 0 || first.maxApplied > 0)
    }

    /// 3, 4 or 5 nodes, by seed.
    static func options(seed: UInt64) -> RaftdSimulation.Options {
        var options = RaftdSimulation.Options()
        options.nodeCount = 3 + Int(seed % 3)
        if let rate = environment["RAFTD_SIM_SYNC_CRASH_RATE"].flatMap(Double.init) { options.crashInSyncRate = rate }
        return options
    }
}
