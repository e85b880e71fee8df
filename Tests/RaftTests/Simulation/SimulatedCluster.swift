import Raft
import SeededRandom

/// N Raft nodes on a simulated clock, network and disk, all driven by one seeded generator, with
/// the safety checker run after every step. Given a seed, a run replays bit for bit.
///
/// Each node's shell applies committed entries to a `SimulatedStateMachine`, and (with
/// `compactRate` set) snapshots it at random ticks and compacts the core's log, keeping a random
/// number of entries; snapshots are persisted with the log and restored on restart, and a
/// `Ready.snapshot` replaces the state machine.
final class SimulatedCluster {
    /// What survives a crash: exactly what `Ready`s handed to the simulated fsync, plus the
    /// latest snapshot the shell persisted. `entries` follow the snapshot (or start at index 1).
    struct Disk {
        var hardState = HardState()
        var entries: [Entry] = []
        var snapshot: Snapshot?

        var offset: UInt64 { snapshot?.index ?? 0 }
        var lastIndex: UInt64 { offset + UInt64(entries.count) }
    }

    /// Simulation steps per Raft tick: message delays are a few steps, so a round trip is well
    /// under a heartbeat interval on a healthy network.
    static let stepsPerTick = 5

    let seed: UInt64
    /// Every node that may ever run: the seed voters, then the spares (which start with no
    /// configuration, as `raftd --join`, and take part once a leader adds them).
    let ids: [UInt64]
    /// The voters a brand-new cluster is seeded with.
    let seedVoters: [UInt64]
    var random: SeededGenerator
    var network = SimulatedNetwork()
    private(set) var checker = SafetyChecker()
    private(set) var transcript = Transcript()
    private let electionTicks: Int
    private let preVote: Bool
    private let checkQuorum: Bool
    private let maxInflightAppends: Int
    private let maxAppendBytes: Int
    private let readLease: ReadLease?

    private var nodes: [UInt64: RaftNode] = [:]
    private(set) var disks: [UInt64: Disk] = [:]
    /// Each live node's state machine (restored from its snapshot on restart).
    private(set) var stateMachines: [UInt64: SimulatedStateMachine] = [:]
    private(set) var step = 0
    /// Probability that a node crashes in the middle of handling a `Ready` (before or right after
    /// its fsync), to exercise exactly what is and is not durable at those points.
    var crashDuringReadyRate = 0.0
    /// When set, each fsync takes this many steps, during which the node keeps receiving messages.
    var fsyncDelay: ClosedRange<Int>?
    private var pendingFsync: [UInt64: (ready: Ready, doneAt: Int)] = [:]
    /// Nodes that crashed during a `Ready`; they stay down until `restart`.
    private(set) var crashedDuringReady: [UInt64] = []
    /// Probability per node and tick that its shell snapshots its state machine and compacts the
    /// log, keeping `0...maxRetaining` entries before the snapshot's index.
    var compactRate = 0.0
    var maxRetaining = 10
    /// How often snapshots were made, installed from a `Ready`, and restored from disk at restart.
    private(set) var snapshotsMade = 0
    private(set) var snapshotsInstalled: [UInt64: Int] = [:]
    private(set) var restartsFromSnapshot = 0

    init(seed: UInt64, nodeCount: Int, electionTicks: Int = 10, preVote: Bool = true, checkQuorum: Bool = true,
         maxInflightAppends: Int = 64, maxAppendBytes: Int = 1 << 20, disks: [UInt64: Disk] = [:],
         readLease: ReadLease? = nil, spareCount: Int = 0) {
        self.seed = seed
        seedVoters = (1...UInt64(nodeCount)).map { $0 }
        ids = (1...UInt64(nodeCount + spareCount)).map { $0 }
        random = SeededGenerator(seed: seed)
        self.electionTicks = electionTicks
        self.preVote = preVote
        self.checkQuorum = checkQuorum
        self.maxInflightAppends = maxInflightAppends
        self.maxAppendBytes = maxAppendBytes
        self.readLease = readLease
        for id in ids {
            self.disks[id] = disks[id] ?? Disk()
            start(id)
        }
    }

    // MARK: Observation

    var violations: [String] { checker.violations }
    var failed: Bool { !checker.violations.isEmpty }
    var tick: Int { step / Self.stepsPerTick }
    func node(_ id: UInt64) -> RaftNode? { nodes[id] }
    func isUp(_ id: UInt64) -> Bool { nodes[id] != nil }
    var upIDs: [UInt64] { ids.filter { nodes[$0] != nil } }

    /// The live leader with the highest term, if any.
    var leader: UInt64? {
        var best: (id: UInt64, term: UInt64)?
        for id in upIDs {
            let status = nodes[id]!.status
            if status.role == .leader, status.term > best?.term ?? 0 { best = (id, status.term) }
        }
        return best?.id
    }

    /// 6.824's `checkOneLeader`: waits until the connected live nodes have exactly one leader in
    /// their highest term, and returns it (nil if none within `maxTicks`).
    func awaitOneLeader(maxTicks: Int = 60) -> UInt64? {
        var found: UInt64?
        run(upTo: maxTicks) {
            let connectedLeaders = connectedUpIDs.filter { nodes[$0]!.status.role == .leader }
            let topTerm = connectedLeaders.map { nodes[$0]!.status.term }.max()
            let top = connectedLeaders.filter { nodes[$0]!.status.term == topTerm }
            found = top.count == 1 ? top[0] : nil
            return found != nil
        }
        return found
    }

    /// The term all connected live nodes agree on, or nil if they disagree.
    var agreedTerm: UInt64? {
        let terms = Set(connectedUpIDs.map { nodes[$0]!.status.term })
        return terms.count == 1 ? terms.first : nil
    }

    /// Live nodes that currently believe they lead (possibly in different terms).
    var leaders: [UInt64] { upIDs.filter { nodes[$0]!.status.role == .leader } }

    /// A report for a failure: seed, violations, then the last events.
    func report(_ headline: String = "") -> String {
        var text = "seed=\(seed) nodes=\(ids.count) tick=\(tick) \(headline)\n"
        for violation in violations { text += "VIOLATION: \(violation)\n" }
        for id in ids {
            if let status = nodes[id]?.status {
                text += "  node \(id): \(status.role) term=\(status.term) leader=\(status.leader) commit=\(status.commitIndex) applied=\(status.appliedIndex) first=\(status.firstIndex) last=\(status.lastIndex) snapshot=\(status.snapshotIndex)\n"
            } else {
                let disk = disks[id]!
                text += "  node \(id): down (disk: term=\(disk.hardState.term) snapshot=\(disk.offset) last=\(disk.lastIndex))\n"
            }
        }
        text += "last events:\n" + transcript.render()
        return text
    }

    // MARK: Driving time

    /// Runs `ticks` ticks (or until a safety violation).
    func run(ticks: Int) {
        for _ in 0..<ticks where !failed {
            runOneTick()
        }
    }

    /// Runs until `condition` holds, checking after every tick; returns whether it did within `maxTicks`.
    @discardableResult
    func run(upTo maxTicks: Int, until condition: () -> Bool) -> Bool {
        for _ in 0..<maxTicks {
            if condition() { return true }
            if failed { return false }
            runOneTick()
        }
        return condition()
    }

    func runOneTick() {
        for _ in 0..<Self.stepsPerTick {
            completeDueFsyncs()
            deliverDueMessages()
            deliverDueResets()
            step += 1
        }
        for id in ids {
            guard let node = nodes[id], !frozen.contains(id) else { continue }
            if random.chance(compactRate) { compact(id) }
            observeClock(id)
            node.tick()
            drainReady(id)
        }
    }

    /// The shell snapshots its state machine at what it applied and lets the core compact. This
    /// may happen while a `Ready` is out (its fsync pending), as in a shell with an async disk.
    private func compact(_ id: UInt64) {
        guard let node = nodes[id], let machine = stateMachines[id] else { return }
        let retaining = random.int(in: 0...maxRetaining)
        guard let snapshot = node.compact(through: machine.appliedIndex, data: machine.snapshotData, retaining: retaining) else { return }
        snapshotsMade += 1
        transcript.record(step, .note("node \(id) compacts: \(snapshot), retaining \(retaining), log now \(node.firstIndex)...\(node.status.lastIndex)"))
        checker.observeSnapshotMade(id, snapshot)
        // Persist it; stored entries it covers are no longer needed.
        var disk = disks[id]!
        precondition(disk.lastIndex >= snapshot.index, "seed=\(seed): node \(id) snapshot \(snapshot.index) beyond its durable log \(disk.lastIndex)")
        disk.entries.removeFirst(Int(snapshot.index - disk.offset))
        disk.snapshot = snapshot
        checker.observeDurableSnapshot(id, snapshot)
        disks[id] = disk
    }

    private func deliverDueMessages() {
        for message in network.deliveries(at: step) {
            guard let node = nodes[message.to] else { continue }
            if frozen.contains(message.to) {
                heldForFrozen[message.to, default: []].append(message)
                continue
            }
            observeClock(message.to)
            transcript.record(step, .deliver(message))
            node.step(message)
            drainReady(message.to)
            if failed { return }
        }
    }

    /// The shell loop: send what may go early, persist, send the rest, apply, advance. With
    /// `fsyncDelay` set the fsync takes time, and the node keeps stepping messages meanwhile
    /// (between `ready()` and `advance()`), as a shell with an asynchronous disk does.
    private func drainReady(_ id: UInt64) {
        var rounds = 0
        defer {
            if let node = nodes[id], !node.hasReady, pendingFsync[id] == nil {
                checker.observeSettled(node, stateMachines[id]!)
            }
        }
        // Every input that moved a leader's commit index is checked against the configuration
        // it was computed with, even while a Ready is out (an async fsync).
        if let node = nodes[id] { checkLeaderCommitQuorum(node) }
        while let node = nodes[id], node.hasReady, pendingFsync[id] == nil {
            rounds += 1
            precondition(rounds < 100, "seed=\(seed): node \(id) keeps producing Ready without input")
            checker.observeCommit(node)
            checkLeaderCommitQuorum(node)
            let ready = node.ready()
            if !ready.readStates.isEmpty { onReadStates?(id, ready.readStates) }
            if let soft = ready.softState {
                transcript.record(step, .role(id, soft))
                if soft.role == .leader { checker.observeLeader(node) }
            }
            for message in ready.messages { network.send(message, now: step, random: &random) }
            if random.chance(crashDuringReadyRate) {
                crash(id, reason: "before fsync")
                crashedDuringReady.append(id)
                return
            }
            if let fsyncDelay {
                pendingFsync[id] = (ready, step + random.int(in: fsyncDelay))
                return
            }
            completeReady(id, ready)
        }
    }

    /// Finishes a `Ready` once its fsync is done.
    private func completeReady(_ id: UInt64, _ ready: Ready) {
        guard let node = nodes[id] else { return }
        persist(id, ready)
        if random.chance(crashDuringReadyRate) {
            crash(id, reason: "after fsync, before sending")
            crashedDuringReady.append(id)
            return
        }
        for message in ready.messagesAfterPersist { network.send(message, now: step, random: &random) }
        checker.observeCommit(node)
        var machine = stateMachines[id]!
        if let snapshot = ready.snapshot {
            // Install: the leader's snapshot replaces the state machine.
            transcript.record(step, .note("node \(id) installs \(snapshot)"))
            snapshotsInstalled[id, default: 0] += 1
            checker.observeInstall(id, snapshot)
            machine = SimulatedStateMachine(snapshotData: snapshot.data) ?? machine
        }
        checker.observeApply(id, ready.committedEntries)
        for entry in ready.committedEntries { machine.apply(entry) }
        checker.observeStateMachine(id, machine)
        stateMachines[id] = machine
        node.advance(ready)
        checker.observeCommit(node)
    }

    private func completeDueFsyncs() {
        for id in ids {
            guard let pending = pendingFsync[id], pending.doneAt <= step, !frozen.contains(id) else { continue }
            pendingFsync[id] = nil
            completeReady(id, pending.ready)
            drainReady(id)
        }
    }

    /// The simulated fsync: a snapshot replaces the whole log; then storage truncates a conflicting
    /// suffix and appends.
    private func persist(_ id: UInt64, _ ready: Ready) {
        var disk = disks[id]!
        if let snapshot = ready.snapshot {
            checker.observeDurableSnapshot(id, snapshot)
            disk.snapshot = snapshot
            disk.entries = []
        }
        if let first = ready.entries.first {
            precondition(first.index > disk.offset && first.index <= disk.lastIndex + 1,
                         "seed=\(seed): Ready entries start at \(first.index), outside the disk's log \(disk.offset + 1)...\(disk.lastIndex) + 1")
            disk.entries.removeSubrange(Int(first.index - disk.offset - 1)...)
            disk.entries.append(contentsOf: ready.entries)
        }
        if let hardState = ready.hardState {
            disk.hardState = hardState
            checker.observeDurableCommit(id, hardState.commit)
        }
        precondition(disk.hardState.commit <= disk.lastIndex,
                     "seed=\(seed): node \(id) durable commit \(disk.hardState.commit) beyond its durable log \(disk.lastIndex)")
        disks[id] = disk
    }

    // MARK: Membership

    /// Per node, the (term, commit index) last checked while it led.
    private var leaderCommitChecked: [UInt64: (term: UInt64, commit: UInt64)] = [:]
    /// Membership changes accepted by a leader, and refused ones by reason.
    private(set) var configChangesAccepted = 0
    private(set) var configChangesRefused: [String: Int] = [:]

    /// Proposes a membership change at `id` if it is up; records the outcome in the transcript.
    @discardableResult
    func proposeConfigChange(_ change: ConfigChange, at id: UInt64) -> Result<(index: UInt64, term: UInt64), ConfigChangeError>? {
        guard let node = nodes[id], !frozen.contains(id) else { return nil }
        let outcome = node.proposeConfigChange(change)
        switch outcome {
        case .success(let at):
            configChangesAccepted += 1
            transcript.record(step, .note("\(id) proposes \(change) at \(at.index) t\(at.term) → \(node.configuration)"))
        case .failure(let error):
            let key = "\(error)".split(separator: " ").prefix(2).joined(separator: " ")
            configChangesRefused[key, default: 0] += 1
            transcript.record(step, .note("\(id) refuses \(change): \(error)"))
        }
        drainReady(id)
        return outcome
    }

    /// Learners never count: whenever a leader's commit index moves, a majority of the voters
    /// of its configuration (the latest in its log) must hold the entry there durably, and a
    /// leader must be a voter of its own configuration when elected.
    private func checkLeaderCommitQuorum(_ node: RaftNode) {
        let status = node.status
        guard status.role == .leader else {
            leaderCommitChecked[status.id] = nil
            return
        }
        let configuration = node.configuration
        guard let previous = leaderCommitChecked[status.id], previous.term == status.term else {
            // Only a voter leads, or a node the latest (uncommitted) change removed (`canCampaign`).
            if !configuration.isVoter(status.id) && node.configurationIndex <= status.commitIndex {
                checker.report("node \(status.id) leads term \(status.term) but is no voter of its configuration \(configuration)")
            }
            leaderCommitChecked[status.id] = (status.term, status.commitIndex)
            return
        }
        guard status.commitIndex > previous.commit else { return }
        leaderCommitChecked[status.id] = (status.term, status.commitIndex)
        let index = status.commitIndex
        guard let entry = node.entry(at: index) else { return }
        let holders = configuration.voters.filter { voter in
            guard let disk = disks[voter] else { return false }
            if disk.offset >= index { return true }
            guard index <= disk.lastIndex else { return false }
            return disk.entries[Int(index - disk.offset - 1)].term == entry.term
        }
        if holders.count < configuration.quorum {
            checker.report("leader \(status.id) of term \(status.term) committed \(index) held durably only by voters \(holders) of \(configuration)")
        }
    }

    // MARK: Faults

    /// Loses the node's memory: whatever was not persisted is gone.
    func crash(_ id: UInt64, reason: String = "") {
        guard nodes[id] != nil else { return }
        nodes[id] = nil
        pendingFsync[id] = nil
        stateMachines[id] = nil
        frozen.remove(id)
        heldForFrozen[id] = nil
        heldReads[id] = nil
        checker.forgetIncarnation(id)
        transcript.record(step, .crash(id, reason))
        if resetsOnCrash {
            // The dead process's connections reset on every peer its links still reach, after
            // what it had already sent (as TCP delivers data before the FIN or RST).
            let due = step + network.faults.maxDelay + 1
            for other in upIDs where !network.isCut(id, other) { pendingResets.append((due, other, id)) }
        }
    }

    /// Connection resets still to be seen: (step, node seeing it, peer whose link reset).
    private var pendingResets: [(step: Int, id: UInt64, peer: UInt64)] = []

    private func deliverDueResets() {
        guard pendingResets.contains(where: { $0.step <= step }) else { return }
        let due = pendingResets.filter { $0.step <= step }
        pendingResets.removeAll { $0.step <= step }
        for reset in due where nodes[reset.peer] == nil { resetConnection(of: reset.id, to: reset.peer) }
    }

    /// Whether a crash is seen at once by the peers it was connected to, as raftd sees a TCP
    /// reset (`RaftNode.peerConnectionLost`).
    var resetsOnCrash = false

    /// `id`'s shell sees its connection to `peer` reset (also while `peer` lives: a spurious reset).
    func resetConnection(of id: UInt64, to peer: UInt64) {
        guard let node = nodes[id] else { return }
        transcript.record(step, .note("\(id) sees its link to \(peer) reset"))
        node.peerConnectionLost(peer)
        drainReady(id)
    }

    /// Restarts a crashed node from its disk, with a fresh election-timeout seed.
    func restart(_ id: UInt64) {
        guard nodes[id] == nil else { return }
        crashedDuringReady.removeAll { $0 == id }
        start(id)
        transcript.record(step, .restart(id))
    }

    /// Starts a node from its disk; its state machine is restored from the durable snapshot.
    private func start(_ id: UInt64) {
        let disk = disks[id]!
        let config = RaftConfig(id: id, peers: seedVoters.contains(id) ? seedVoters : [], electionTicks: electionTicks,
                                maxInflightAppends: maxInflightAppends, maxAppendBytes: maxAppendBytes,
                                preVote: preVote, checkQuorum: checkQuorum, randomSeed: random.next(),
                                readLease: readLease, autoPromoteLag: 10)
        checker.observeRestart(id, from: disk.snapshot)
        var machine = SimulatedStateMachine()
        if let snapshot = disk.snapshot {
            restartsFromSnapshot += 1
            machine = SimulatedStateMachine(snapshotData: snapshot.data) ?? machine
        }
        stateMachines[id] = machine
        nodes[id] = RaftNode(config: config, hardState: disk.hardState, snapshot: disk.snapshot,
                             entries: disk.entries, applied: machine.appliedIndex)
        if stateMachineDetached.contains(id) { nodes[id]!.setStateMachineAttached(false) }
        checker.observeCommit(nodes[id]!)
        drainReady(id)
    }

    /// Nodes whose shell reports its state machine (kvd) as detached; kept across restarts, as
    /// a kvd process outlives its raftd's crashes.
    private(set) var stateMachineDetached: Set<UInt64> = []

    /// Detaches or reattaches the state machine (kvd) of `id`, as raftd reports its apply session.
    func setStateMachineAttached(_ id: UInt64, _ attached: Bool) {
        if attached { stateMachineDetached.remove(id) } else { stateMachineDetached.insert(id) }
        nodes[id]?.setStateMachineAttached(attached)
        transcript.record(step, .note("state machine of \(id) \(attached ? "attached" : "detached")"))
    }

    /// Nodes cut off from everyone by `disconnect` (6.824's `cfg.disconnect`).
    private(set) var disconnected: Set<UInt64> = []
    var connectedUpIDs: [UInt64] { upIDs.filter { !disconnected.contains($0) } }

    /// Cuts `id` off from everyone (both directions).
    func disconnect(_ id: UInt64) {
        disconnected.insert(id)
        for other in ids where other != id { network.cutLink(id, other) }
        transcript.record(step, .note("disconnect \(id)"))
    }

    /// Restores the links between `id` and every node that is not itself disconnected.
    func reconnect(_ id: UInt64) {
        disconnected.remove(id)
        for other in ids where other != id && !disconnected.contains(other) { network.healLink(id, other) }
        transcript.record(step, .note("reconnect \(id)"))
    }

    func partition(_ sideA: [UInt64], _ sideB: [UInt64]) {
        network.partition(sideA, sideB)
        transcript.record(step, .note("partition \(sideA) | \(sideB)"))
    }

    func note(_ text: String) {
        transcript.record(step, .note(text))
    }

    func healNetwork() {
        disconnected.removeAll()
        network.healAll()
        transcript.record(step, .note("heal all links"))
    }

    // MARK: Reads, clocks and pauses

    /// Real time of one simulation step, in nanoseconds (a tick is `stepsPerTick` steps).
    static let stepNanos: UInt64 = 200_000
    static var tickNanos: UInt64 { stepNanos * UInt64(stepsPerTick) }
    /// Each node's clock rate relative to real time (1 when unset): clock skew for leases.
    var clockRate: [UInt64: Double] = [:]
    /// Called when node `id`'s core is asked for reads (after a freeze: when it continues).
    var onReadRequested: ((UInt64, [UInt64]) -> Void)?
    /// Called with every node's answered reads as its shell takes them from a `Ready`.
    var onReadStates: ((UInt64, [ReadState]) -> Void)?

    /// What node `id`'s monotonic clock reads now: it keeps running while the node is frozen.
    func clockNanos(_ id: UInt64) -> UInt64 {
        UInt64(Double(UInt64(step) * Self.stepNanos) * (clockRate[id] ?? 1))
    }

    private func observeClock(_ id: UInt64) {
        nodes[id]?.observeClock(nanos: clockNanos(id))
    }

    /// Nodes paused like a SIGSTOPped process: no ticks, no messages handled (they wait in the
    /// socket buffers, `heldForFrozen`), while every clock keeps running.
    private(set) var frozen: Set<UInt64> = []
    private var heldForFrozen: [UInt64: [Message]] = [:]
    /// Reads asked of a frozen node, handled when it continues (in order with its messages).
    private var heldReads: [UInt64: [UInt64]] = [:]

    func freeze(_ id: UInt64) {
        frozen.insert(id)
        transcript.record(step, .note("freeze \(id)"))
    }

    /// SIGCONT: the node handles what piled up, reads first (as a shell reading its kvd socket
    /// before its peers'), its clock having run on.
    func thaw(_ id: UInt64) {
        guard frozen.remove(id) != nil else { return }
        transcript.record(step, .note("thaw \(id)"))
        if let ids = heldReads.removeValue(forKey: id) { requestRead(ids, at: id) }
        for message in heldForFrozen.removeValue(forKey: id) ?? [] {
            guard let node = nodes[id] else { break }
            observeClock(id)
            transcript.record(step, .deliver(message))
            node.step(message)
            drainReady(id)
        }
    }

    /// Asks node `id` for read indexes (held while it is frozen); answers reach `onReadStates`.
    func requestRead(_ readIDs: [UInt64], at id: UInt64) {
        guard let node = nodes[id] else { return }
        if frozen.contains(id) {
            heldReads[id, default: []].append(contentsOf: readIDs)
            return
        }
        observeClock(id)
        transcript.record(step, .note("read \(readIDs) at \(id)"))
        onReadRequested?(id, readIDs)
        node.requestRead(ids: readIDs)
        drainReady(id)
    }

    /// Node `id`'s state machine (nil when down).
    func stateMachine(_ id: UInt64) -> SimulatedStateMachine? { stateMachines[id] }

    // MARK: Clients

    /// Proposes at `id` if it is up; records the outcome in the transcript.
    @discardableResult
    func propose(_ data: [UInt8], at id: UInt64) -> ProposeOutcome? {
        guard let node = nodes[id] else { return nil }
        let outcome = node.propose(data)
        transcript.record(step, .propose(id, data, outcome))
        drainReady(id)
        return outcome
    }

    /// How many live nodes applied `data`, judged from their state machines (which may have got
    /// it through a snapshot).
    func appliedCount(of data: [UInt8]) -> Int {
        upIDs.filter { stateMachines[$0]!.commands.contains(data) }.count
    }

    /// 6.824's `cfg.one`: keeps proposing `data` at whoever leads until at least `expectedNodes` live
    /// nodes applied it, for up to `maxTicks`. Returns the index it committed at, or nil.
    func one(_ data: [UInt8], expectedNodes: Int, retry: Bool = true, maxTicks: Int = 100) -> UInt64? {
        var proposedAt: (index: UInt64, term: UInt64)?
        var ticksSinceProposal = 0
        for _ in 0..<maxTicks where !failed {
            if let found = committedIndex(of: data), appliedCount(of: data) >= expectedNodes {
                return found
            }
            if proposedAt == nil || (retry && ticksSinceProposal > 2 * electionTicks) {
                if let leader, case .accepted(let index, let term)? = propose(data, at: leader) {
                    proposedAt = (index, term)
                    ticksSinceProposal = 0
                }
            }
            runOneTick()
            ticksSinceProposal += 1
        }
        if let found = committedIndex(of: data), appliedCount(of: data) >= expectedNodes { return found }
        return nil
    }

    /// Index at which `data` is in the cluster's committed log.
    func committedIndex(of data: [UInt8]) -> UInt64? {
        checker.committed.first { $0.data == data && $0.kind == .normal }?.index
    }
}
