import Foundation
import Testing

/// The whole service under seeded chaos (see `WholeNodeSimulation`): real raftd, kvd and
/// gateway drivers, simulated disks, links, clocks and clients.
/// - default: seeds 0..<N (`WHOLE_SIM_SEEDS`, default below), in two halves run in parallel;
/// - `KVRAFT_SIM_SEED_BASE=B`: seeds start at B instead of 0 (`scripts/test --soak`);
/// - `WHOLE_SIM_SEED=S`: replays seed S alone, printing its report;
/// - `WHOLE_SIM_CHAOS_MS=M`: M simulated ms of chaos per seed instead of 1,500 (longer soaks).
struct WholeNodeSimulationTests {
    static let environment = ProcessInfo.processInfo.environment
    static let halves = 2
    static let defaultSeeds: UInt64 = 400

    @Test(arguments: 0..<halves)
    func seedSweep(half: Int) {
        if let replay = Self.environment["WHOLE_SIM_SEED"].flatMap(UInt64.init) {
            guard half == 0 else { return }
            let simulation = WholeNodeSimulation(seed: replay, options: Self.options(seed: replay))
            let violation = simulation.run()
            print(simulation.report)
            #expect(violation == nil, "seed \(replay): \(violation ?? "")")
            return
        }
        let count = Self.environment["WHOLE_SIM_SEEDS"].flatMap(UInt64.init) ?? Self.defaultSeeds
        let base = Self.environment["KVRAFT_SIM_SEED_BASE"].flatMap(UInt64.init) ?? 0
        var stats: [String: Int] = [:]
        var steps = 0
        for seed in stride(from: base + UInt64(half), to: base + count, by: Self.halves) {
            let simulation = WholeNodeSimulation(seed: seed, options: Self.options(seed: seed))
            if simulation.run() != nil {
                Issue.record("whole-node simulation failed; replay with WHOLE_SIM_SEED=\(seed) swift test --filter WholeNodeSimulationTests\n\(simulation.report)")
                return
            }
            steps += simulation.steps
            stats.merge(simulation.stats, uniquingKeysWith: +)
        }
        let summary = stats.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        print("whole-node simulation: seeds \(base + UInt64(half))..<\(base + count) step \(Self.halves): \(steps) steps, \(summary), no violation")
    }

    /// A seed replays exactly: the same events, the same outcome.
    @Test func aSeedReplaysExactly() {
        let first = WholeNodeSimulation(seed: 7, options: Self.options(seed: 7))
        let second = WholeNodeSimulation(seed: 7, options: Self.options(seed: 7))
        #expect(first.run() == second.run())
        #expect(first.report == second.report)
        #expect(first.transcript == second.transcript)
        #expect(first.committed == second.committed)
        #expect(first.stats["operations completed", default: 0] > 0)
    }

    /// 3 nodes, now and then 5; one gateway, now and then two; reads by ReadIndex, now and then
    /// by lease or through the log.
    static func options(seed: UInt64) -> WholeNodeSimulation.Options {
        var options = WholeNodeSimulation.Options()
        options.nodeCount = seed % 4 == 3 ? 5 : 3
        options.gatewayCount = seed % 3 == 2 ? 2 : 1
        options.readMode = switch seed % 5 {
        case 3: .lease
        case 4: .log
        default: .index
        }
        // Every fourth seed: a session table of 3, so sessions evict each other (their
        // tombstones stay); deadlines short enough that clients see them and retry.
        if seed % 4 == 1 { options.sessionLimits.maxSessions = 3 }
        // Every fourth other seed: sessions idle for 0.7 s of log time expire, and the kvds'
        // wall clocks (which stamp the log time) disagree by up to 2 s.
        if seed % 4 == 2 {
            options.sessionLimits.sessionTimeoutMs = 700
            options.wallClockSkewMs = 2_000
        }
        options.gatewayDeadlineMs = [400, 800, 1_500][Int(seed / 3 % 3)]
        if let chaos = environment["WHOLE_SIM_CHAOS_MS"].flatMap(Int.init) { options.chaosMs = chaos }
        return options
    }
}
