import Foundation
import Testing

/// The gateway core under a seeded simulation (see `GatewaySimulation`).
/// - default: seeds 0..<1000 (about 45 ms each in a debug build), in two halves run in parallel;
/// - `GATEWAY_SIM_SEEDS=N`: seeds 0..<N;
/// - `KVRAFT_SIM_SEED_BASE=B`: seeds start at B instead of 0 (`scripts/test --soak`);
/// - `GATEWAY_SIM_SEED=S`: replays seed S alone, printing its transcript.
struct GatewaySimulationTests {
    static let environment = ProcessInfo.processInfo.environment

    static let halves = 2

    @Test(arguments: 0..<halves)
    func seedSweep(half: Int) {
        if let replay = Self.environment["GATEWAY_SIM_SEED"].flatMap(UInt64.init) {
            let simulation = GatewaySimulation(seed: replay)
            guard half == 0 else { return }
            let violation = simulation.run()
            print(simulation.transcript.joined(separator: "\n"))
            print("seed \(replay): \(simulation.steps) steps, \(violation ?? "no violation")")
            #expect(violation == nil, "seed \(replay): \(violation ?? "")")
            return
        }
        let count = Self.environment["GATEWAY_SIM_SEEDS"].flatMap(UInt64.init) ?? 1_000
        let base = Self.environment["KVRAFT_SIM_SEED_BASE"].flatMap(UInt64.init) ?? 0
        var steps = 0
        for seed in stride(from: base + UInt64(half), to: base + count, by: Self.halves) {
            let simulation = GatewaySimulation(seed: seed)
            if let violation = simulation.run() {
                Issue.record("""
                    gateway simulation seed \(seed) failed: \(violation)
                    replay: GATEWAY_SIM_SEED=\(seed) swift test --filter GatewaySimulationTests
                    last events:
                    \(simulation.transcript.suffix(30).joined(separator: "\n"))
                    """)
                return
            }
            steps += simulation.steps
        }
        print("gateway simulation, half \(half): seeds \(base + UInt64(half)) to \(base + count) step \(Self.halves), \(steps) steps, no violation")
    }
}
