import Foundation
import Raft
import Testing

/// The seed sweep: many short chaos runs across 3, 5 and 7 nodes.
///
/// - Default: `defaultSeedCount` seeds, split into chunks that run in parallel.
/// - `RAFT_SIM_SEEDS=N`: a longer sweep over seeds `0..<N` (e.g. `RAFT_SIM_SEEDS=200000`).
/// - `KVRAFT_SIM_SEED_BASE=B`: the sweep starts at seed B instead of 0 (`scripts/test --soak`).
/// - `RAFT_SIM_SEED=S`: replays seed `S` alone, printing its full report.
/// - `RAFT_SIM_TICKS=T`: chaos ticks per seed (default `defaultChaosTicks`).
/// A failure prints `seed=S nodes=N`, the violation and the last events; the seed replays bit for bit.
@Suite struct SeedSweepTests {
    static let defaultSeedCount = 7_000
    static let defaultChaosTicks = 80
    static let chunkCount = 6

    static var environment: [String: String] { ProcessInfo.processInfo.environment }
    static var seedBase: UInt64 { environment["KVRAFT_SIM_SEED_BASE"].flatMap(UInt64.init) ?? 0 }
    static var chaosTicks: Int { environment["RAFT_SIM_TICKS"].flatMap(Int.init) ?? defaultChaosTicks }

    @Test(arguments: 0..<chunkCount)
    func sweep(chunk: Int) {
        if Self.environment["RAFT_SIM_SEED"] != nil { return }  // replay mode: see `replaySeed`
        let total = Self.environment["RAFT_SIM_SEEDS"].flatMap(UInt64.init) ?? UInt64(Self.defaultSeedCount)
        var failures: [String] = []
        var runs = 0
        var runsInstallingSnapshots = 0
        var runsRestartingFromSnapshots = 0
        var seed = Self.seedBase + UInt64(chunk)
        while seed < Self.seedBase + total {
            var run = ChaosRun(seed: seed, nodeCount: ChaosRun.nodeCount(forSeed: seed), chaosTicks: Self.chaosTicks)
            if let failure = run.run() {
                failures.append(failure)
                print(failure)
                if failures.count >= 3 { break }  // enough to debug; keep the output readable
            }
            runs += 1
            if run.snapshotStats.installed > 0 { runsInstallingSnapshots += 1 }
            if run.snapshotStats.restartsFromSnapshot > 0 { runsRestartingFromSnapshots += 1 }
            seed += UInt64(Self.chunkCount)
        }
        #expect(failures.isEmpty, "\(failures.count) failing seed(s); first:\n\(failures.first ?? "")")
        if Self.environment["RAFT_SIM_SEEDS"] != nil {
            print("chunk \(chunk): \(runs) runs, \(runsInstallingSnapshots) installed a leader's snapshot, \(runsRestartingFromSnapshots) restarted a node from its own")
        }
        // The sweep must actually exercise snapshots, not just allow them.
        if runs >= 100 {
            #expect(runsInstallingSnapshots >= runs / 20, "only \(runsInstallingSnapshots) of \(runs) runs installed a snapshot sent by a leader")
            #expect(runsRestartingFromSnapshots >= runs / 20, "only \(runsRestartingFromSnapshots) of \(runs) runs restarted a node from its snapshot")
        }
    }

    @Test func replaySeed() throws {
        guard let text = Self.environment["RAFT_SIM_SEED"] else { return }
        let seed = try #require(UInt64(text), "RAFT_SIM_SEED must be an unsigned integer, got \(text)")
        let nodeCount = ChaosRun.nodeCount(forSeed: seed)
        var run = ChaosRun(seed: seed, nodeCount: nodeCount, chaosTicks: Self.chaosTicks)
        let failure = run.run()
        print(failure ?? "passed: \(run.summary)")
        #expect(failure == nil, "\(failure ?? "")")
    }

    /// The same seed gives the same run: same messages, same commits.
    @Test func runsReplayBitForBit() {
        func fingerprint(_ seed: UInt64) -> (Int, [Entry], String) {
            let cluster = SimulatedCluster(seed: seed, nodeCount: 5)
            cluster.network.faults = .unreliable
            cluster.crashDuringReadyRate = 0.01
            for round in 0..<60 {
                if round % 7 == 0, let leader = cluster.leader { cluster.propose([UInt8(round)], at: leader) }
                if round == 20 { cluster.crash(2) }
                if round == 35 { cluster.restart(2) }
                cluster.runOneTick()
            }
            return (cluster.network.sentCount, cluster.checker.committed, cluster.report())
        }
        let first = fingerprint(42)
        let second = fingerprint(42)
        #expect(first.0 == second.0)
        #expect(first.1 == second.1)
        #expect(first.2 == second.2)
        #expect(!first.1.isEmpty, "the run should commit something:\n\(first.2)")
    }
}
