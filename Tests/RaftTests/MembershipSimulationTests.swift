import Foundation
import Raft
import Testing

/// The seed sweep with membership changes among the faults: the leader adds spare nodes
/// (started with no configuration, like `raftd --join`) as learners, promotes them (mostly
/// automatically), and removes members, itself included, while partitions, drops, crashes and
/// the rest go on. The safety checker runs after every step, and the simulation checks that
/// every commit a leader makes is held durably by a majority of the voters of its
/// configuration (learners never count) and that only voters lead.
///
/// `RAFT_MEMBERSHIP_SEEDS=N` runs a longer sweep; `RAFT_MEMBERSHIP_SEED=S` replays one seed;
/// `KVRAFT_SIM_SEED_BASE=B` starts the sweep at seed B (`scripts/test --soak`).
@Suite struct MembershipSimulationTests {
    static let defaultSeedCount = 600
    static let chunkCount = 4
    static var environment: [String: String] { ProcessInfo.processInfo.environment }

    static func run(seed: UInt64) -> (failure: String?, run: ChaosRun) {
        var run = ChaosRun(seed: seed, nodeCount: [3, 5][Int(seed % 2)], chaosTicks: 150)
        run.membership = true
        let failure = run.run()
        return (failure, run)
    }

    @Test(arguments: 0..<chunkCount)
    func sweep(chunk: Int) {
        if Self.environment["RAFT_MEMBERSHIP_SEED"] != nil { return }
        let total = Self.environment["RAFT_MEMBERSHIP_SEEDS"].flatMap(UInt64.init) ?? UInt64(Self.defaultSeedCount)
        var failures: [String] = []
        var runs = 0
        var changes = 0
        let base = Self.environment["KVRAFT_SIM_SEED_BASE"].flatMap(UInt64.init) ?? 0
        var seed = base + UInt64(chunk)
        while seed < base + total {
            let (failure, run) = Self.run(seed: seed)
            if let failure {
                failures.append(failure)
                print(failure)
                if failures.count >= 3 { break }
            }
            runs += 1
            changes += run.configChangesAccepted
            seed += UInt64(Self.chunkCount)
        }
        #expect(failures.isEmpty, "\(failures.count) failing seed(s); first:\n\(failures.first ?? "")")
        // The sweep must actually change membership, not just allow it.
        #expect(changes >= runs, "only \(changes) membership changes in \(runs) runs")
    }

    @Test func replaySeed() throws {
        guard let text = Self.environment["RAFT_MEMBERSHIP_SEED"] else { return }
        let seed = try #require(UInt64(text))
        let (failure, run) = Self.run(seed: seed)
        print(failure ?? "passed: \(run.summary)")
        #expect(failure == nil, "\(failure ?? "")")
    }
}
