import Raft
import SeededRandom

/// One seeded run of reads and writes under partitions, pauses (a frozen leader, as SIGSTOP),
/// crashes, an unreliable network and (lease mode) clock-rate skew, with the stale-read check:
/// a read answered at index `i` must be at or past everything the cluster had committed when
/// the answering leader's core took the read (so a deposed or frozen leader can never answer
/// after a newer leader committed a write), and only a leader of that term answers.
struct StaleReadRun {
    enum Mode: String, CaseIterable {
        case index
        case lease
    }

    let seed: UInt64
    let mode: Mode
    let ticks: Int
    /// Lease mode: the drift bound the lease is configured for, and the clock rates actually
    /// drawn: within `[1 - driftBound, 1 + driftBound]`, or (`violateDrift`) far slower, to
    /// show the checker catches a lease that outlives an election.
    var driftBound = 0.1
    var violateDrift = false

    static let electionTicks = 10

    private(set) var summary = ""
    private(set) var readsAnswered = 0
    private(set) var readsRefused = 0

    init(seed: UInt64, mode: Mode, ticks: Int) {
        self.seed = seed
        self.mode = mode
        self.ticks = ticks
    }

    /// Runs the schedule; nil on success, else a report naming the seed.
    mutating func run() -> String? {
        var random = SeededGenerator(seed: seed ^ 0x5EAD_0000_5EAD_0000)
        let nodeCount = random.element(of: [3, 5])
        let lease = mode == .lease
            ? ReadLease.longest(electionTicks: Self.electionTicks, tickNanos: SimulatedCluster.tickNanos, driftBound: driftBound)
            : nil
        let cluster = SimulatedCluster(seed: seed, nodeCount: nodeCount, electionTicks: Self.electionTicks, readLease: lease)
        if mode == .lease {
            for id in cluster.ids {
                cluster.clockRate[id] = violateDrift ? 0.1 : 1 - driftBound + random.double() * 2 * driftBound
            }
            cluster.note("clock rates \(cluster.ids.map { cluster.clockRate[$0]! })")
        }
        var failure: String?
        var required: [UInt64: (node: UInt64, index: UInt64)] = [:]
        var answered = 0
        var refused = 0
        cluster.onReadRequested = { node, ids in
            let committed = cluster.checker.committed.last?.index ?? 0
            for id in ids { required[id] = (node, committed) }
        }
        cluster.onReadStates = { node, states in
            for state in states {
                guard let asked = required.removeValue(forKey: state.id) else {
                    failure = failure ?? "read \(state.id) answered twice or never asked"
                    continue
                }
                switch state.outcome {
                case let .ready(index, term):
                    answered += 1
                    if asked.node != node { failure = failure ?? "read \(state.id) asked at \(asked.node) answered by \(node)" }
                    if index < asked.index {
                        failure = failure ?? "stale read: node \(node) (term \(term)) answered read \(state.id) at index \(index), but index \(asked.index) was already committed when it took the read"
                    }
                    if cluster.checker.leaderOfTerm[term] != node {
                        failure = failure ?? "read \(state.id) answered by \(node) in term \(term), which it did not lead"
                    }
                case .notLeader:
                    refused += 1
                }
            }
        }
        cluster.network.faults = random.chance(0.5) ? .unreliable : .reliable
        cluster.resetsOnCrash = random.chance(0.5)
        var nextRead: UInt64 = 1
        var nextWrite = 0
        for _ in 0..<ticks where failure == nil && !cluster.failed {
            // Clients: writes at whoever leads (stale leaders included), reads at every node
            // that believes it leads, and now and then at any node.
            let leaders = cluster.leaders.filter { !cluster.frozen.contains($0) }
            if let writer = leaders.randomElement(using: &random), random.chance(0.6) {
                nextWrite += 1
                cluster.propose(Array("w\(nextWrite)".utf8), at: writer)
            }
            var readers = cluster.leaders
            if random.chance(0.3), let any = cluster.upIDs.randomElement(using: &random) { readers.append(any) }
            for reader in readers where random.chance(0.7) {
                let count = random.int(in: 1...3)
                cluster.requestRead(Array(nextRead..<nextRead + UInt64(count)), at: reader)
                nextRead += UInt64(count)
            }
            fault(cluster, &random)
            cluster.runOneTick()
        }
        // Heal and check liveness: a read at the leader is answered.
        for id in cluster.ids {
            cluster.thaw(id)
            cluster.restart(id)
        }
        cluster.healNetwork()
        cluster.network.faults = .reliable
        if failure == nil, !cluster.failed {
            if let leader = cluster.awaitOneLeader(maxTicks: 120) {
                let id = nextRead
                var done = false
                let previous = cluster.onReadStates
                cluster.onReadStates = { node, states in
                    previous?(node, states)
                    if states.contains(where: { $0.id == id }) { done = true }
                }
                cluster.requestRead([id], at: leader)
                if !cluster.run(upTo: 60, until: { done }) {
                    failure = "liveness: read \(id) at leader \(leader) not answered within 60 ticks after healing"
                }
            } else {
                failure = "liveness: no leader within 120 ticks after healing"
            }
        }
        readsAnswered = answered
        readsRefused = refused
        summary = "seed=\(seed) mode=\(mode) nodes=\(nodeCount) answered=\(answered) refused=\(refused) committed=\(cluster.checker.committed.count)"
        guard let problem = failure ?? cluster.violations.first else { return nil }
        return "\(summary)\n\(problem)\n\(cluster.report())"
    }

    /// At most one fault per tick: partition, heal, freeze or thaw a leader, crash or restart.
    private func fault(_ cluster: SimulatedCluster, _ random: inout SeededGenerator) {
        let roll = random.double()
        switch roll {
        case ..<0.03:
            var ids = cluster.ids
            ids.shuffle(using: &random)
            let cut = random.int(in: 1...(ids.count / 2))
            cluster.partition(Array(ids[..<cut]), Array(ids[cut...]))
        case ..<0.06:
            cluster.healNetwork()
        case ..<0.09:
            // SIGSTOP the leader: its clock runs on while it handles nothing.
            if let leader = cluster.leader, !cluster.frozen.contains(leader) { cluster.freeze(leader) }
        case ..<0.13:
            if let paused = cluster.frozen.sorted().randomElement(using: &random) { cluster.thaw(paused) }
        case ..<0.145:
            if let victim = cluster.upIDs.randomElement(using: &random) { cluster.crash(victim) }
        case ..<0.17:
            if let down = cluster.ids.filter({ !cluster.isUp($0) }).randomElement(using: &random) { cluster.restart(down) }
        default:
            break
        }
    }
}
