import Raft
import SeededRandom

/// One seeded run of random faults followed by a liveness check: the building block of the seed
/// sweep. Everything (fault kinds, timing, node seeds, message fates) comes from the seed.
struct ChaosRun {
    enum Profile: CaseIterable {
        /// Clean partitions: random minority/majority splits and an isolated leader.
        case partitions
        /// FoundationDB swizzle-clogging: cut links one at a time, heal them in another order.
        case swizzle
        /// Drops, duplicates, delays and reorders.
        case unreliable
        /// Crashes (also in the middle of a Ready) and restarts.
        case crashes
        /// All of the above at lower rates.
        case mixed
    }

    let seed: UInt64
    let nodeCount: Int
    let chaosTicks: Int
    /// Membership changes among the faults: the leader adds spare nodes as learners (most
    /// promoted automatically), promotes and removes members, itself included.
    var membership = false
    /// Spare nodes (with `membership`), started with no configuration like `raftd --join`.
    var spareCount = 2
    /// After healing, a leader must be elected and a proposal applied everywhere within this bound.
    static let livenessTicks = 80

    /// The cluster size a seed runs with, so that a seed alone replays a run.
    static func nodeCount(forSeed seed: UInt64) -> Int {
        [3, 5, 7][Int(seed % 3)]
    }

    /// One line about a finished run, for replays and sanity checks of the sweep itself.
    private(set) var summary = ""
    /// What a finished run did with snapshots, so the sweep can check it exercised them.
    struct SnapshotStats {
        var made = 0
        var sent = 0
        var installed = 0
        var restartsFromSnapshot = 0
    }
    private(set) var snapshotStats = SnapshotStats()
    /// Membership changes a finished run made.
    private(set) var configChangesAccepted = 0

    /// Runs the schedule; returns nil on success or a failure report.
    mutating func run() -> String? {
        var random = SeededGenerator(seed: seed ^ 0xC4A0_5C4A_05C4_A05C)
        let profile = random.element(of: Profile.allCases)
        // One entry per append and a short pipeline expose orderings that big batches hide
        // (e.g. Figure 8: an old-term entry replicated without the new leader's no-op).
        let maxAppendBytes = random.element(of: [1, 100, 1 << 20])
        let maxInflight = random.element(of: [1, 4, 64])
        let cluster = SimulatedCluster(seed: seed, nodeCount: nodeCount,
                                       maxInflightAppends: maxInflight, maxAppendBytes: maxAppendBytes,
                                       spareCount: membership ? spareCount : 0)
        // Half the runs fsync asynchronously: nodes step messages between ready() and advance().
        let asyncFsync = random.chance(0.5)
        if asyncFsync { cluster.fsyncDelay = 1...4 }
        // Most runs compact: rarely (followers mostly catch up with appends) or often (lagging and
        // restarted nodes mostly need the snapshot), keeping few or many entries.
        cluster.compactRate = random.element(of: [0, 0.02, 0.1, 0.1])
        cluster.maxRetaining = random.element(of: [0, 4, 30])
        // Half the runs see crashes as connection resets, and then some resets while leaders live.
        cluster.resetsOnCrash = random.chance(0.5)
        cluster.note("resetsOnCrash=\(cluster.resetsOnCrash)")
        cluster.note("profile \(profile) maxAppendBytes=\(maxAppendBytes) maxInflight=\(maxInflight) asyncFsync=\(asyncFsync) compactRate=\(cluster.compactRate) maxRetaining=\(cluster.maxRetaining)")
        var schedule = FaultState(profile: profile, ids: cluster.ids)
        schedule.membership = membership
        var proposalCounter = 0

        for _ in 0..<chaosTicks where !cluster.failed {
            schedule.apply(to: cluster, random: &random)
            if random.chance(0.4) {
                proposalCounter += 1
                let data: [UInt8] = [0xC0, UInt8(truncatingIfNeeded: proposalCounter), UInt8(truncatingIfNeeded: proposalCounter >> 8)]
                // Mostly at the leader; sometimes at a random node, which must refuse politely.
                let target = cluster.leader.flatMap { random.chance(0.8) ? $0 : nil } ?? random.element(of: cluster.ids)
                if let outcome = cluster.propose(data, at: target), case .notLeader(let named) = outcome {
                    if named == target { return cluster.report("node \(target) refused a proposal naming itself leader") }
                }
            }
            cluster.runOneTick()
        }
        if cluster.failed { return cluster.report("safety violation during faults (profile \(profile))") }

        // Heal everything; the cluster must recover on its own.
        cluster.healNetwork()
        cluster.network.faults = .reliable
        cluster.crashDuringReadyRate = 0
        for id in cluster.ids { cluster.restart(id) }
        // Some state machines stay detached: the cluster must still elect (only later) and commit.
        for id in cluster.stateMachineDetached.sorted() where random.chance(0.5) { cluster.setStateMachineAttached(id, true) }
        let marker: [UInt8] = [0xFF, UInt8(truncatingIfNeeded: seed), UInt8(truncatingIfNeeded: seed >> 8)]
        // Without batching a lagging node fetches one entry per round trip (under a tick each) per
        // pipeline slot; allow for that on top of the election and agreement bound.
        let longestLog = cluster.upIDs.map { cluster.node($0)!.status.lastIndex }.max() ?? 0
        let catchUpTicks = maxAppendBytes == 1 ? 2 * Int(longestLog) / maxInflight : 0
        // Nodes without their state machine let up to maxDeferredElections timeouts (each under
        // 2 * electionTicks) pass before campaigning.
        let deferTicks = cluster.stateMachineDetached.isEmpty ? 0 : RaftNode.maxDeferredElections * 2 * 10
        let bound = Self.livenessTicks + catchUpTicks + deferTicks
        if membership {
            // Every member of the final configuration must apply it; removed nodes need not.
            var members: [UInt64] = []
            let applied = cluster.one(marker, expectedNodes: 1, maxTicks: bound) != nil && cluster.run(upTo: bound) {
                guard let leader = cluster.leader, let node = cluster.node(leader) else { return false }
                members = node.configuration.ids
                return members.allSatisfy { cluster.stateMachine($0)?.commands.contains(marker) ?? false }
            }
            if !applied {
                return cluster.report("liveness: no proposal applied on every member \(members) within \(bound) ticks after healing (profile \(profile))")
            }
        } else if cluster.one(marker, expectedNodes: nodeCount, maxTicks: bound) == nil {
            return cluster.report("liveness: no proposal applied on all \(nodeCount) nodes within \(bound) ticks after healing (profile \(profile))")
        }
        if cluster.failed { return cluster.report("safety violation after healing (profile \(profile))") }
        configChangesAccepted = cluster.configChangesAccepted
        snapshotStats = SnapshotStats(made: cluster.snapshotsMade, sent: cluster.network.sentCountByType[.snapshot] ?? 0,
                                      installed: cluster.snapshotsInstalled.values.reduce(0, +),
                                      restartsFromSnapshot: cluster.restartsFromSnapshot)
        summary = "seed=\(seed) nodes=\(nodeCount) profile=\(profile) maxAppendBytes=\(maxAppendBytes) maxInflight=\(maxInflight) asyncFsync=\(asyncFsync) ticks=\(cluster.tick) committed=\(cluster.checker.committed.count) "
            + "terms-with-leader=\(cluster.checker.leaderOfTerm.count) messages=\(cluster.network.sentCount) "
            + "config changes: accepted=\(cluster.configChangesAccepted) refused=\(cluster.configChangesRefused) "
            + "snapshots: made=\(snapshotStats.made) sent=\(snapshotStats.sent) installed=\(snapshotStats.installed) restarts-from-snapshot=\(snapshotStats.restartsFromSnapshot)"
        return nil
    }
}

/// The evolving fault state of a chaos run: which links are cut, which nodes are down and when they
/// come back, and the swizzle plan.
private struct FaultState {
    let profile: ChaosRun.Profile
    let ids: [UInt64]
    var downUntilTick: [UInt64: Int] = [:]
    var swizzleCuts: [(UInt64, UInt64)] = []
    var swizzleHeals: [(UInt64, UInt64)] = []
    var nextSwizzleTick = 0
    var membership = false

    init(profile: ChaosRun.Profile, ids: [UInt64]) {
        self.profile = profile
        self.ids = ids
    }

    mutating func apply(to cluster: SimulatedCluster, random: inout SeededGenerator) {
        let mixed = profile == .mixed
        if cluster.tick == 0 {
            if profile == .unreliable || (mixed && random.chance(0.5)) {
                cluster.network.faults = .unreliable
            }
            if profile == .crashes || mixed {
                cluster.crashDuringReadyRate = mixed ? 0.002 : 0.005
            }
        }
        if profile == .partitions || (mixed && random.chance(0.5)) {
            partitionStep(cluster, &random)
        }
        if profile == .swizzle || mixed {
            swizzleStep(cluster, &random)
        }
        if profile == .crashes || mixed {
            crashStep(cluster, &random, rate: mixed ? 0.02 : 0.04)
        }
        if mixed {
            transferStep(cluster, &random)
            detachStep(cluster, &random)
        }
        if membership { membershipStep(cluster, &random) }
        if cluster.resetsOnCrash, random.chance(0.02) {
            // A spurious reset: a follower sees its live leader's link reset.
            let follower = random.element(of: ids)
            if let leader = cluster.node(follower)?.status.leader, leader != 0, leader != follower {
                cluster.resetConnection(of: follower, to: leader)
            }
        }
    }

    /// Now and then a node's state machine (kvd) detaches or comes back, more often the
    /// leader's: leaders hand over, detached nodes hold back their campaigns.
    private func detachStep(_ cluster: SimulatedCluster, _ random: inout SeededGenerator) {
        guard random.chance(0.03) else { return }
        if !cluster.stateMachineDetached.isEmpty, random.chance(0.5) {
            cluster.setStateMachineAttached(random.element(of: cluster.stateMachineDetached.sorted()), true)
        } else {
            let victim = random.chance(0.5) ? (cluster.leader ?? random.element(of: ids)) : random.element(of: ids)
            cluster.setStateMachineAttached(victim, false)
        }
    }

    /// Now and then the leader is asked for a membership change: add an outsider as a learner
    /// (mostly to be promoted automatically), promote a learner, or remove a member (the leader
    /// too); refusals (one change at a time, own term not committed) are part of the test.
    private func membershipStep(_ cluster: SimulatedCluster, _ random: inout SeededGenerator) {
        guard random.chance(0.08), let leader = cluster.leader, let node = cluster.node(leader) else { return }
        let configuration = node.configuration
        var changes: [ConfigChange] = []
        let outsiders = ids.filter { configuration.member($0) == nil }
        if !outsiders.isEmpty {
            changes.append(.addLearner(Member(id: random.element(of: outsiders), role: .learner, autoPromote: random.chance(0.7))))
        }
        if !configuration.learners.isEmpty { changes.append(.promote(random.element(of: configuration.learners))) }
        let removable = configuration.members.filter { !$0.isVoter || configuration.voters.count > 2 }.map(\.id)
        if !removable.isEmpty {
            let victim = random.chance(0.3) ? leader : random.element(of: removable)
            changes.append(.remove(victim))
        }
        guard !changes.isEmpty else { return }
        cluster.proposeConfigChange(random.element(of: changes), at: leader)
    }

    /// Now and then the leader hands leadership to a random node (maybe unreachable, maybe
    /// behind, maybe itself — which it refuses), as raftd does on SIGTERM.
    private func transferStep(_ cluster: SimulatedCluster, _ random: inout SeededGenerator) {
        guard random.chance(0.01), let leader = cluster.leader, cluster.isUp(leader) else { return }
        cluster.node(leader)?.transferLeadership(to: random.chance(0.3) ? nil : random.element(of: ids))
    }

    private func partitionStep(_ cluster: SimulatedCluster, _ random: inout SeededGenerator) {
        guard random.chance(0.07) else { return }
        switch random.int(in: 0...2) {
        case 0:
            cluster.healNetwork()
        case 1:
            // Random split: a shuffled prefix is one side.
            let shuffled = random.shuffled(ids)
            let cut = random.int(in: 1...(ids.count - 1))
            cluster.healNetwork()
            cluster.partition(Array(shuffled[..<cut]), Array(shuffled[cut...]))
        default:
            if let leader = cluster.leader {
                cluster.healNetwork()
                cluster.disconnect(leader)
            }
        }
    }

    private mutating func swizzleStep(_ cluster: SimulatedCluster, _ random: inout SeededGenerator) {
        guard cluster.tick >= nextSwizzleTick else { return }
        if let link = swizzleCuts.first {
            swizzleCuts.removeFirst()
            cluster.network.cutLink(link.0, link.1)
            cluster.note("swizzle: cut \(link.0)-\(link.1)")
            nextSwizzleTick = cluster.tick + random.int(in: 1...4)
            if swizzleCuts.isEmpty { nextSwizzleTick += random.int(in: 5...20) }
        } else if let link = swizzleHeals.first {
            swizzleHeals.removeFirst()
            cluster.network.healLink(link.0, link.1)
            cluster.note("swizzle: heal \(link.0)-\(link.1)")
            nextSwizzleTick = cluster.tick + random.int(in: 1...4)
        } else if random.chance(0.1) {
            // A new round: a random subset of links, cut one at a time, healed in another order.
            var links: [(UInt64, UInt64)] = []
            for a in ids { for b in ids where a < b { links.append((a, b)) } }
            let chosen = Array(random.shuffled(links).prefix(random.int(in: 1...links.count)))
            swizzleCuts = chosen
            swizzleHeals = random.shuffled(chosen)
        }
    }

    private mutating func crashStep(_ cluster: SimulatedCluster, _ random: inout SeededGenerator, rate: Double) {
        for id in ids where !cluster.isUp(id) {
            let until = downUntilTick[id] ?? cluster.tick
            if cluster.tick >= until {
                cluster.restart(id)
                downUntilTick[id] = nil
            } else if downUntilTick[id] == nil {
                downUntilTick[id] = cluster.tick + random.int(in: 1...20)
            }
        }
        guard random.chance(rate) else { return }
        let victim = random.chance(0.5) ? (cluster.leader ?? random.element(of: ids)) : random.element(of: ids)
        guard cluster.isUp(victim) else { return }
        cluster.crash(victim, reason: "scheduled")
        downUntilTick[victim] = cluster.tick + random.int(in: 1...20)
    }
}
