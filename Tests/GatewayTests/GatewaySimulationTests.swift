import Foundation
import Testing

/// The gateway core under a seeded simulation (see `GatewaySimulation`).
/// - default: seeds 0..<100 (about 60 ms each in a debug build);
/// - `GATEWAY_SIM_SEEDS=N`: seeds 0..<N;
/// - `GATEWAY_SIM_SEED=S`: replays seed S alone, printing its transcript.
struct GatewaySimulationTests {
    static let environment = ProcessInfo.processInfo.environment

    @Test func seedSweep() {
        if let replay = Self.environment["GATEWAY_SIM_SEED"].flatMap(UInt64.init) {
            let simulation = GatewaySimulation(seed: replay)
            let violation = simulation.run()
            print(simulation.transcript.joined(separator: "\n"))
            print("seed \(replay): \(simulation.steps) steps, \(violation ?? "no violation")")
            #expect(violation == nil, "seed \(replay): \(violation ?? "")")
            return
        }
        let count = Self.environment["GATEWAY_SIM_SEEDS"].flatMap(UInt64.init) ?? 100
        var steps = 0
        for seed in 0..<count {
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
        print("gateway simulation: \(count) seeds, \(steps) steps, no violation")
    }
}
