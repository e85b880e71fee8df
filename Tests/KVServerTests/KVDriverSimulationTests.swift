import Foundation
import Testing

/// kvd drivers against a simulated raftd cluster and clients (see `KVDriverSimulation`).
/// - default: seeds 0..<600, in two halves run in parallel;
/// - `KVD_SIM_SEEDS=N`: seeds 0..<N;
/// - `KVRAFT_SIM_SEED_BASE=B`: seeds start at B instead of 0 (`scripts/test --soak`);
/// - `KVD_SIM_SEED=S`: replays seed S alone, printing its transcript.
struct KVDriverSimulationTests {
    static let environment = ProcessInfo.processInfo.environment

    static let halves = 2

    @Test(arguments: 0..<halves)
    func seedSweep(half: Int) {
        if let replay = Self.environment["KVD_SIM_SEED"].flatMap(UInt64.init) {
            guard half == 0 else { return }
            let simulation = KVDriverSimulation(seed: replay)
            let violation = simulation.run()
            print(simulation.transcript.joined(separator: "\n"))
            print("seed \(replay): \(simulation.steps) steps, \(violation ?? "no violation")")
            #expect(violation == nil, "seed \(replay): \(violation ?? "")")
            return
        }
        let count = Self.environment["KVD_SIM_SEEDS"].flatMap(UInt64.init) ?? 600
        let base = Self.environment["KVRAFT_SIM_SEED_BASE"].flatMap(UInt64.init) ?? 0
        var steps = 0
        var stats: [String: Int] = [:]
        for seed in stride(from: base + UInt64(half), to: base + count, by: Self.halves) {
            let simulation = KVDriverSimulation(seed: seed)
            if let violation = simulation.run() {
                Issue.record("""
                    kvd driver simulation seed \(seed) failed: \(violation)
                    replay: KVD_SIM_SEED=\(seed) swift test --filter KVDriverSimulationTests
                    last events:
                    \(simulation.transcript.suffix(40).joined(separator: "\n"))
                    """)
                return
            }
            steps += simulation.steps
            stats.merge(simulation.stats, uniquingKeysWith: +)
        }
        let summary = stats.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        print("kvd driver simulation: seeds \(base + UInt64(half))..<\(base + count) step \(Self.halves): \(steps) steps, \(summary), no violation")
    }
}
