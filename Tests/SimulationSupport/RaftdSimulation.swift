import Raft
import RaftServer
import SeededRandom
import Wire

/// A seeded chaos run of 3–5 simulated raftds (real drivers and cores) with fake kvds, over a
/// faulty network (drops, delays, reorders, partitions) and disks that crash (losing unsynced
/// writes, sometimes keeping a torn prefix of them). It checks Raft safety as it goes: no two
/// different entries committed at one index (from the cores' logs and from what every kvd
/// applied), kvds apply in order; and at the end, with the faults healed, that every kvd
/// catches up past everything any kvd ever applied (nothing acknowledged is lost).
public struct RaftdSimulation {
    public struct Options: Sendable {
        public var nodeCount = 3
        /// Simulated milliseconds of chaos, then of calm.
        public var chaosSteps = 1_200
        public var calmSteps = 800
        public var crashRate = 0.002
        /// Per node and step: the process dies in its next fdatasync, keeping a random (torn)
        /// prefix of what that sync was writing.
        public var crashInSyncRate = 0.001
        public var kvdCrashRate = 0.0005
        public var partitionRate = 0.003
        public var healRate = 0.01
        public var proposeRate = 0.15
        public var keepSomeUnsynced = true

        public init() {}
    }

    public let seed: UInt64
    public let options: Options
    public private(set) var nodes: [SimulatedRaftd] = []
    private var random: SeededGenerator
    private var network = SimulatedPeerNetwork()
    private var now: UInt64 = 1_000_000_000
    private static let step: UInt64 = 1_000_000
    /// Every index known committed, with its entry's fingerprint.
    public private(set) var committed: [UInt64: UInt64] = [:]
    private var checkedCommit: [UInt64: UInt64] = [:]
    private var downUntil: [UInt64: UInt64] = [:]
    public private(set) var violations: [String] = []
    /// The last events, for a failure's report.
    public private(set) var transcript: [String] = []
    public private(set) var crashes = 0
    public private(set) var maxApplied: UInt64 = 0

    public init(seed: UInt64, options: Options = Options()) {
        self.seed = seed
        self.options = options
        random = SeededGenerator(seed: seed)
        let ids = (1...UInt64(options.nodeCount)).map { $0 }
        var config = RaftDriverConfig(nodeID: 1, tick: .milliseconds(5))
        config.snapshotLogBytes = 1_500
        config.snapshotCatchUpBytes = 200
        config.applyChunkBytes = 300
        config.snapshotRequestRetry = .milliseconds(500)
        for id in ids {
            config.nodeID = id
            let node = SimulatedRaftd(id: id, peers: ids, config: config)
            node.disk.chunkSize = 256
            nodes.append(node)
        }
    }

    /// Runs the chaos, then the calm, and the final checks. Returns the violations (empty: passed).
    public mutating func run() -> [String] {
        for node in nodes {
            node.start(now: now, seed: random.next())
            node.connectKvd(now: now)
        }
        for _ in 0..<options.chaosSteps where violations.isEmpty { step(chaos: true) }
        network.healAll()
        for node in nodes where !node.isUp { restart(node) }
        for _ in 0..<options.calmSteps where violations.isEmpty { step(chaos: false) }
        if violations.isEmpty { finalChecks() }
        return violations
    }

    private mutating func note(_ text: String) {
        transcript.append("t=\((now - 1_000_000_000) / 1_000_000)ms \(text)")
        if transcript.count > 120 { transcript.removeFirst(transcript.count - 120) }
    }

    private mutating func step(chaos: Bool) {
        now += Self.step
        for delivery in network.deliveries(upTo: now) {
            guard let node = nodes.first(where: { $0.id == delivery.message.to }), let driver = node.driver else { continue }
            if let data = delivery.snapshotData, let snapshot = delivery.message.snapshot {
                node.disk.receiveLeaderSnapshot(snapshot, data: data)
            }
            driver.receive(delivery.message, now: now)
        }
        for node in nodes {
            guard let driver = node.driver else { continue }
            if driver.nextDeadline <= now { driver.wake(now: now) }
            if random.chance(0.5) {
                for commit in node.disk.completeCommits() { driver.snapshotCommitted(commit) }
            }
            node.kvdReads(random.int(in: 0...3), now: now)
            // The calm proposes nothing, so every kvd can catch up with the last commit.
            if chaos, node.kvd.isLeader, node.kvdLinkUp, random.chance(options.proposeRate) {
                driver.kvdReceived(node.kvd.makeProposal(), now: now)
            }
        }
        if chaos { injectFaults() }
        for node in nodes where !node.isUp {
            if let until = downUntil[node.id], now >= until { restart(node) }
        }
        for node in nodes {
            guard let driver = node.driver else { continue }
            let dies = chaos && random.chance(options.crashInSyncRate)
            node.disk.crashAtNextSync = dies
            driver.processReady(now: now)
            node.disk.crashAtNextSync = false
            if dies, node.persistFailure != nil {
                node.crash(random: &random, keepSomeUnsynced: true)
                crashes += 1
                downUntil[node.id] = now + UInt64(random.int(in: 5...200)) * Self.step
                note("node \(node.id) died in fdatasync (disk: term \(node.disk.durable.hardState.term), last \(node.disk.durable.lastIndex))")
                continue
            }
            if let failure = node.persistFailure { violations.append("node \(node.id) failed to persist: \(failure)") }
            if node.kvdClosedByRaftd > 0 { violations.append("node \(node.id)'s raftd closed its kvd link") }
            for message in node.outbox {
                var data: [UInt8]?
                if message.type == .snapshot, let snapshot = message.snapshot {
                    // The transport streams the snapshot file; an outdated one is not sent.
                    guard let bytes = node.disk.snapshotData(index: snapshot.index, term: snapshot.term) else { continue }
                    data = bytes
                }
                network.send(message, snapshotData: data, now: now, random: &random)
            }
            node.outbox.removeAll()
        }
        check()
    }

    private mutating func injectFaults() {
        if random.chance(options.crashRate) {
            let node = random.element(of: nodes)
            if node.isUp {
                node.crash(random: &random, keepSomeUnsynced: options.keepSomeUnsynced)
                crashes += 1
                downUntil[node.id] = now + UInt64(random.int(in: 5...200)) * Self.step
                note("crash node \(node.id) (disk: term \(node.disk.durable.hardState.term), last \(node.disk.durable.lastIndex), snapshot \(node.disk.durable.offset))")
            }
        }
        if random.chance(options.kvdCrashRate) {
            let node = random.element(of: nodes)
            note("kvd \(node.id) restarts empty (had applied \(node.kvd.lastApplied))")
            node.disconnectKvd()
            node.kvd.crash()
            if node.isUp { node.connectKvd(now: now) }
        }
        if random.chance(options.partitionRate) {
            let ids = nodes.map(\.id)
            let isolated = random.element(of: ids)
            network.partition([isolated], ids.filter { $0 != isolated })
            note("partition node \(isolated) away")
        }
        if random.chance(options.healRate), !network.cut.isEmpty {
            network.healAll()
            note("heal")
        }
    }

    private mutating func restart(_ node: SimulatedRaftd) {
        downUntil[node.id] = nil
        let image = node.disk.durable
        let lastTerm = image.entries.last?.term ?? image.snapshot?.term ?? 0
        guard lastTerm <= image.hardState.term else {
            // RaftNode refuses such a log (a precondition): report instead of trapping.
            violations.append("node \(node.id)'s disk holds entries of term \(lastTerm) past its hard state's term \(image.hardState.term) (a torn write kept the entries, not the hard state)")
            return
        }
        node.start(now: now, seed: random.next())
        node.connectKvd(now: now)
        checkedCommit[node.id] = nil
        note("restart node \(node.id) (commit \(node.driver?.status.commitIndex ?? 0), last \(node.driver?.status.lastIndex ?? 0))")
    }

    /// Safety after every step.
    private mutating func check() {
        for node in nodes {
            if let problem = node.kvd.violations.first { violations.append(problem) }
            for (index, print) in node.kvd.drainApplied() {
                record(index: index, print: print, by: "kvd \(node.id)")
                maxApplied = max(maxApplied, index)
            }
            guard let driver = node.driver else { continue }
            let commit = driver.status.commitIndex
            var index = max(checkedCommit[node.id] ?? 0, driver.node.firstIndex - 1)
            while index < commit {
                index += 1
                if let entry = driver.node.entry(at: index) { record(index: index, print: Fingerprint.of(entry), by: "node \(node.id)'s log") }
            }
            checkedCommit[node.id] = commit
        }
        var leaders: [UInt64: UInt64] = [:]
        for node in nodes {
            guard let status = node.driver?.status, status.role == .leader else { continue }
            if let other = leaders[status.term] { violations.append("two leaders in term \(status.term): \(other) and \(node.id)") }
            leaders[status.term] = node.id
        }
    }

    private mutating func record(index: UInt64, print: UInt64, by whom: String) {
        if let known = committed[index] {
            if known != print { violations.append("\(whom) has a different entry committed at index \(index)") }
        } else {
            committed[index] = print
        }
    }

    private mutating func finalChecks() {
        for node in nodes {
            if node.kvd.lastApplied < maxApplied {
                violations.append("kvd \(node.id) applied only up to \(node.kvd.lastApplied) after the calm; some kvd applied \(maxApplied) (node: \(String(describing: node.driver?.status)))")
            }
            for (position, print) in node.kvd.applied.enumerated() where committed[UInt64(position + 1)].map({ $0 != print }) ?? false {
                violations.append("kvd \(node.id)'s state differs from the committed entry at \(position + 1)")
                break
            }
        }
    }

    /// What to print when the run failed: the seed, the violations, the last events.
    public var report: String {
        var text = "seed=\(seed) nodes=\(options.nodeCount) crashes=\(crashes) maxApplied=\(maxApplied)"
        text += " compactions=\(nodes.map(\.disk.compactions).reduce(0, +)) installs=\(nodes.map(\.disk.installs).reduce(0, +))"
        text += " kvdRestores=\(nodes.map(\.kvd.snapshotsRestored).reduce(0, +))\n"
        text += violations.prefix(5).map { "  violation: \($0)" }.joined(separator: "\n") + "\n"
        for node in nodes {
            let status = node.driver.map { "\($0.status.role.name) term=\($0.status.term) commit=\($0.status.commitIndex) first=\($0.node.firstIndex) last=\($0.status.lastIndex)" } ?? "down"
            text += "  node \(node.id): \(status) kvd applied=\(node.kvd.lastApplied)\n"
        }
        return text + transcript.suffix(40).joined(separator: "\n")
    }
}
