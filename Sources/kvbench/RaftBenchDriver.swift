import EventLoop
import Histogram
import Wire
import SeededRandom

struct RaftBenchConfig {
    var nodes: [(id: UInt64, path: String)]
    var inflight: Int
    var entrySize: Int
    var durationSeconds: Double
    var total: Int?
    var warmupSeconds: Double
    var stallTimeoutSeconds: Double
    var abortOnLeaderChange: Bool
    var label: String
    var progress: Bool
}

/// One raftd's apply socket, as a stand-in kvd.
final class RaftNodeLink {
    let id: UInt64
    let path: String
    let dialer: Dialer
    var reader = FrameReader<RaftToKvd>(frameLimit: Limits.standard.internalFrameBytes)
    var connected = false
    /// Set once raftd answered the first status query and hello went out.
    var attached = false
    var leadership: Leadership?
    /// Highest committed index this socket's stream delivered.
    var streamedIndex: UInt64 = 0
    /// Answers to status queries, by query id.
    var statuses: [UInt64: NodeStatus] = [:]
    var out: [UInt8] = []

    init(id: UInt64, path: String, dialer: Dialer) {
        self.id = id
        self.path = path
        self.dialer = dialer
    }
}

/// Drives proposals on one loop, on one thread.
final class RaftBenchDriver {
    enum Phase { case connecting, warmup, startingMeasure, measure, finishing, done }

    /// A proposal sent, waiting for raftd's result (its index), then for its commit.
    struct Pending {
        var sentNanos: UInt64
        var measured: Bool
        var term: UInt64 = 0
    }

    private static let initialQuery: UInt64 = 1
    private static let beforeQuery: UInt64 = 2
    private static let afterQuery: UInt64 = 3

    private let config: RaftBenchConfig
    private let loop: EventLoop
    private let accounting: ProcessAccounting
    private let log: (String) -> Void
    private var links: [RaftNodeLink] = []
    private var payloads: [[UInt8]] = []

    private(set) var phase: Phase = .connecting
    private let flush: DeferredAction
    private let secondTimer: Timer
    private let phaseTimer: Timer
    private let retryTimer: Timer

    /// The link proposals go to; nil while no leader is known.
    private var leader: Int?
    private var leaderTerm: UInt64 = 0
    private var nextProposalID: UInt64 = 1
    private var byProposal: [UInt64: Pending] = [:]
    private var byIndex: [UInt64: Pending] = [:]
    private var outgoing: [Proposal] = []
    private var inflight: Int { byProposal.count + byIndex.count }

    private var histogram = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
    private var issuedMeasured = 0
    /// Measured proposals that left without committing (refused, abandoned, lost).
    private var droppedMeasured = 0
    private var completedMeasured = 0
    private var completedTotal = 0
    private var lastProgressCompleted = 0
    private var lastCommitNanos: UInt64 = 0
    private var leaderChanges = 0
    private var socketLosses = 0
    private var refused = 0
    private var abandoned = 0
    private var lost = 0
    private var phaseStartNanos: UInt64 = 0
    private var measureStartNanos: UInt64 = 0
    private var measureEndNanos: UInt64 = 0
    private var benchCPUAtStart = 0.0
    private var benchCPUAtEnd = 0.0
    private var failure: String?

    init(config: RaftBenchConfig, loop: EventLoop, accounting: ProcessAccounting, log: @escaping (String) -> Void) {
        self.config = config
        self.loop = loop
        flush = DeferredAction(loop: loop)
        secondTimer = Timer(loop: loop, repeating: true)
        phaseTimer = Timer(loop: loop)
        retryTimer = Timer(loop: loop)
        self.accounting = accounting
        self.log = log
        var rng = SeededGenerator(seed: 0x5EED_5EED)
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)
        payloads = (0..<16).map { _ in
            (0..<config.entrySize).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
        }
    }

    func run() throws -> RaftBenchResult {
        flush.action = { [unowned self] in self.flushOutgoing() }
        secondTimer.action = { [unowned self] in self.everySecond() }
        phaseTimer.action = { [unowned self] in self.phaseTimerFired() }
        retryTimer.action = { [unowned self] in self.refill() }
        for node in config.nodes {
            let dialer = Dialer(loop: loop, endpoint: .unix(path: node.path), limits: Connection.Limits(),
                                minBackoffMs: 20, maxBackoffMs: 500)
            let link = RaftNodeLink(id: node.id, path: node.path, dialer: dialer)
            links.append(link)
            dialer.onConnected = { [unowned self, unowned link] connection in self.connected(link, connection) }
            dialer.onDisconnected = { [unowned self, unowned link] reason in self.disconnected(link, reason) }
        }
        for link in links { link.dialer.start() }
        secondTimer.schedule(milliseconds: 1000)
        phaseStartNanos = EventLoop.monotonicNanos()
        loop.run()
        for link in links { link.dialer.stop() }
        if let failure { throw BenchFailure(failure) }
        return makeResult()
    }

    // MARK: Links

    private func connected(_ link: RaftNodeLink, _ connection: Connection) {
        guard phase != .done else { return }
        if phase != .connecting { log("kvbench raft: apply socket of raftd \(link.id) reconnected; attaching again") }
        link.connected = true
        link.reader = FrameReader(frameLimit: Limits.standard.internalFrameBytes)
        connection.onRead = { [unowned self, unowned link] conn in self.receive(link, conn) }
        // Ask first where the log ends, then say hello from there: only entries committed
        // after that are streamed (an existing log is not replayed).
        send(.statusQuery(queryID: Self.initialQuery), on: link)
    }

    private func disconnected(_ link: RaftNodeLink, _ reason: Connection.CloseReason) {
        let was = link.connected
        link.connected = false
        link.attached = false
        guard was, phase != .done else { return }
        socketLosses += 1
        log("kvbench raft: lost the apply socket of raftd \(link.id) (\(link.path)): \(reason) (raftd died, or another client attached)")
        if socketLosses > 5 { return fail("lost apply sockets \(socketLosses) times; is a kvd or another bench attached to these raftds?") }
        // It no longer tells us who leads; if it led, proposals move to the next leader.
        link.leadership = nil
        updateLeader()
        // A status query it will not answer must not hold up the window's start or end.
        statusArrived(phase == .finishing ? Self.afterQuery : Self.beforeQuery)
    }

    private func send(_ message: KvdToRaft, on link: RaftNodeLink) {
        guard let connection = link.dialer.connection else { return }
        connection.write(message.framed())
    }

    private func receive(_ link: RaftNodeLink, _ connection: Connection) {
        do {
            try link.reader.readMessages(from: connection) { message in
                handle(message, from: link)
                return phase == .done ? .stop : .more
            }
        } catch {
            fail("bad frame from raftd \(link.id): \(error)")
        }
    }

    private func handle(_ message: RaftToKvd, from link: RaftNodeLink) {
        switch message {
        case let .status(queryID, status):
            link.statuses[queryID] = status
            if queryID == Self.initialQuery, !link.attached {
                link.attached = true
                link.streamedIndex = status.lastIndex
                send(.hello(lastApplied: status.lastIndex), on: link)
                // Re-attached while the window opens or closes: it has to answer that query too.
                if phase == .startingMeasure { send(.statusQuery(queryID: Self.beforeQuery), on: link) }
                if phase == .finishing { send(.statusQuery(queryID: Self.afterQuery), on: link) }
            }
            statusArrived(queryID)
        case let .leadership(leadership):
            link.leadership = leadership
            updateLeader()
        case let .results(results):
            guard let index = links.firstIndex(where: { $0 === link }) else { return }
            for result in results { resultArrived(result, onLink: index) }
        case let .committed(entries):
            guard let last = entries.last else { return }
            link.streamedIndex = max(link.streamedIndex, last.index)
            guard let leader, links[leader] === link else { return }
            let now = EventLoop.monotonicNanos()
            for entry in entries {
                guard let pending = byIndex.removeValue(forKey: entry.index) else { continue }
                if entry.term == pending.term {
                    complete(pending, now: now)
                } else {
                    // Our entry was overwritten by another leader's: it never committed.
                    lost += 1
                    if pending.measured { droppedMeasured += 1 }
                }
            }
            refill()
        case let .snapshot(chunk):
            // Only when attaching below raftd's compacted prefix; the bench keeps no state.
            link.streamedIndex = max(link.streamedIndex, chunk.index)
        case .snapshotRequest:
            // The bench's state machine holds nothing: an empty snapshot at what it has seen
            // lets raftd compact its log as it would under a real kvd.
            send(.snapshot(SnapshotChunk(index: link.streamedIndex, term: 0, offset: 0, totalSize: 0, data: [])), on: link)
        case .readResults, .memberAnswer:
            break  // the raft bench proposes only
        }
    }

    // MARK: Leadership

    /// The link whose raftd says it leads, in the highest term any raftd reported.
    private func updateLeader() {
        var best: Int?
        var bestTerm: UInt64 = 0
        var highestTerm: UInt64 = 0
        for (i, link) in links.enumerated() {
            guard let l = link.leadership else { continue }
            highestTerm = max(highestTerm, l.term)
            if l.isLeader, l.term >= bestTerm {
                best = i
                bestTerm = l.term
            }
        }
        // A leader of an old term that has not heard of the new one yet does not count.
        if bestTerm < highestTerm { best = nil }
        guard best != leader || (best != nil && bestTerm != leaderTerm) else { return }
        let previous = leader
        leader = best
        leaderTerm = bestTerm
        if let best {
            log("kvbench raft: leader is raftd \(links[best].id) (term \(bestTerm))")
        } else {
            log("kvbench raft: no leader known (highest term \(highestTerm))")
        }
        switch phase {
        case .connecting: return maybeStart()
        case .finishing, .done: return
        case .warmup, .startingMeasure, .measure: break
        }
        if previous != nil {
            // Lost (or replaced) the leader proposals went to.
            leaderChanges += 1
            if config.abortOnLeaderChange, phase == .measure || phase == .startingMeasure {
                return fail("the leader changed during the measured run (now \(best.map { "raftd \(links[$0].id)" } ?? "none"), term \(highestTerm))")
            }
            // Proposals outstanding on the old leader may or may not commit: they leave the
            // measurement, and fresh ones go to the new leader.
            for pending in byProposal.values where pending.measured { droppedMeasured += 1 }
            for pending in byIndex.values where pending.measured { droppedMeasured += 1 }
            abandoned += byProposal.count + byIndex.count
            byProposal.removeAll()
            byIndex.removeAll()
            outgoing.removeAll()
        }
        refill()
    }

    // MARK: Phases

    private func maybeStart() {
        guard phase == .connecting, links.allSatisfy(\.attached), leader != nil else { return }
        log("kvbench raft: \(links.count) apply sockets attached; \(config.inflight) in flight, \(config.entrySize)-byte entries")
        if config.warmupSeconds > 0 {
            phase = .warmup
            phaseStartNanos = EventLoop.monotonicNanos()
            lastCommitNanos = phaseStartNanos
            log("kvbench raft: warming up for \(config.warmupSeconds) s")
            phaseTimer.schedule(milliseconds: config.warmupSeconds * 1000)
            refill()
        } else {
            beginMeasure()
        }
    }

    /// Asks every raftd for its status; the measured window opens when all answered.
    private func beginMeasure() {
        phase = .startingMeasure
        phaseStartNanos = EventLoop.monotonicNanos()
        if lastCommitNanos == 0 { lastCommitNanos = phaseStartNanos }
        for link in links { send(.statusQuery(queryID: Self.beforeQuery), on: link) }
    }

    private func statusArrived(_ queryID: UInt64) {
        switch (queryID, phase) {
        case (Self.initialQuery, .connecting):
            maybeStart()
        case (Self.beforeQuery, .startingMeasure):
            guard links.allSatisfy({ $0.statuses[Self.beforeQuery] != nil || !$0.attached }) else { return }
            phase = .measure
            let now = EventLoop.monotonicNanos()
            measureStartNanos = now
            phaseStartNanos = now
            accounting.begin()
            benchCPUAtStart = ProcessAccounting.selfCPUSeconds()
            if config.total == nil { phaseTimer.schedule(milliseconds: config.durationSeconds * 1000) }
            refill()
        case (Self.afterQuery, .finishing):
            guard links.allSatisfy({ $0.statuses[Self.afterQuery] != nil || !$0.attached }) else { return }
            phase = .done
            loop.stop()
        default:
            break
        }
    }

    private func endMeasure() {
        guard phase == .measure else { return }
        phase = .finishing
        measureEndNanos = EventLoop.monotonicNanos()
        accounting.sample()
        benchCPUAtEnd = ProcessAccounting.selfCPUSeconds()
        for link in links { send(.statusQuery(queryID: Self.afterQuery), on: link) }
    }

    private func phaseTimerFired() {
        switch phase {
        case .warmup: beginMeasure()
        case .measure: endMeasure()
        default: break
        }
    }

    private func everySecond() {
        let now = EventLoop.monotonicNanos()
        switch phase {
        case .connecting:
            if now - phaseStartNanos > UInt64(config.stallTimeoutSeconds * 1e9) {
                let missing = links.filter { !$0.attached }.map { "raftd \($0.id) (\($0.path))" }
                fail(missing.isEmpty
                     ? "no leader within \(config.stallTimeoutSeconds) s"
                     : "could not attach within \(config.stallTimeoutSeconds) s to \(missing.joined(separator: ", "))")
            }
            return
        case .done:
            return
        case .startingMeasure, .finishing:
            if now - phaseStartNanos > UInt64(config.stallTimeoutSeconds * 1e9) {
                fail("a raftd did not answer a status query within \(config.stallTimeoutSeconds) s")
            }
        case .warmup, .measure:
            break
        }
        if inflight > 0 || leader == nil, now - lastCommitNanos > UInt64(config.stallTimeoutSeconds * 1e9) {
            return fail("nothing committed for \(config.stallTimeoutSeconds) s (leader: \(leader.map { "raftd \(links[$0].id)" } ?? "none"), \(inflight) in flight)")
        }
        accounting.sample()
        guard config.progress else { return }
        switch phase {
        case .warmup:
            log("kvbench raft: warmup \(fixed(Double(now - phaseStartNanos) / 1e9, 0)) s, \(completedTotal) committed, \(inflight) in flight")
        case .measure:
            let elapsed = Double(now - measureStartNanos) / 1e9
            let delta = completedMeasured - lastProgressCompleted
            lastProgressCompleted = completedMeasured
            let p99 = Double(histogram.valueAtPercentile(99)) / 1000
            log("kvbench raft: [\(fixed(elapsed, 1).leftPad(5)) s] \(delta) proposals/s  total \(completedMeasured)  in flight \(inflight)  p99 so far \(fixed(p99, 2)) ms  leader changes \(leaderChanges)")
        default:
            break
        }
    }

    private func fail(_ message: String) {
        guard failure == nil else { return }
        failure = message
        phase = .done
        loop.stop()
    }

    // MARK: Proposals

    /// Tops the in-flight proposals up to --inflight on the current leader.
    private func refill() {
        guard phase == .warmup || phase == .startingMeasure || phase == .measure, leader != nil else { return }
        let now = EventLoop.monotonicNanos()
        while inflight < config.inflight {
            let measured = phase == .measure
            if measured, let total = config.total {
                guard issuedMeasured - droppedMeasured < total else { break }
            }
            if measured { issuedMeasured += 1 }
            let id = nextProposalID
            nextProposalID += 1
            byProposal[id] = Pending(sentNanos: now, measured: measured)
            outgoing.append(Proposal(proposalID: id, data: payloads[Int(id % UInt64(payloads.count))]))
        }
        if !outgoing.isEmpty { flush.schedule() }
    }

    /// One propose frame per loop pass with everything issued in it (what kvd does too).
    private func flushOutgoing() {
        guard !outgoing.isEmpty, let leader else { return }
        send(.propose(outgoing), on: links[leader])
        outgoing.removeAll(keepingCapacity: true)
    }

    private func resultArrived(_ result: ProposeResult, onLink index: Int) {
        guard var pending = byProposal.removeValue(forKey: result.proposalID) else { return }
        guard result.accepted else {
            // This raftd no longer leads; its leadership message follows (or came first).
            refused += 1
            if pending.measured { droppedMeasured += 1 }
            retryTimer.schedule(milliseconds: 10)
            return
        }
        pending.term = result.term
        // Accepted by a raftd that is not (or no longer) the leader we follow, or at an index
        // already streamed (raftd answers before it replicates, so this should not happen):
        // its commit cannot be matched.
        if index != leader || result.index <= links[index].streamedIndex {
            abandoned += 1
            if pending.measured { droppedMeasured += 1 }
            return
        }
        byIndex[result.index] = pending
    }

    private func complete(_ pending: Pending, now: UInt64) {
        completedTotal += 1
        lastCommitNanos = now
        guard phase == .measure, pending.measured else { return }
        completedMeasured += 1
        _ = histogram.record(max(1, (now - pending.sentNanos) / 1000))
        if let total = config.total, completedMeasured >= total { endMeasure() }
    }

    // MARK: Result

    private func makeResult() -> RaftBenchResult {
        let elapsed = Double(measureEndNanos - measureStartNanos) / 1e9
        let ms = { (micros: UInt64) in Double(micros) / 1000 }
        let processes = accounting.report()
        let cpu = processes.reduce(0) { $0 + $1.cpuSeconds }
        let leaderID = leader.map { links[$0].id }
        var nodes: [RaftNodeUsage] = []
        for link in links {
            // A raftd that restarted or was unreachable at either end has no counts.
            guard let before = link.statuses[Self.beforeQuery], let after = link.statuses[Self.afterQuery],
                  after.fsyncs >= before.fsyncs, after.lastIndex >= before.lastIndex else {
                nodes.append(RaftNodeUsage(id: link.id, role: link.statuses[Self.afterQuery]?.role ?? "unknown",
                                           isLeader: link.id == leaderID))
                continue
            }
            let fsyncs = after.fsyncs - before.fsyncs
            let appended = after.lastIndex - before.lastIndex
            nodes.append(RaftNodeUsage(
                id: link.id, role: after.role, isLeader: link.id == leaderID, fsyncs: Int(fsyncs),
                fsyncsPerSecond: elapsed > 0 ? Double(fsyncs) / elapsed : 0,
                entriesAppended: Int(appended),
                entriesPerFsync: fsyncs > 0 ? Double(appended) / Double(fsyncs) : nil))
        }
        let leaderNode = nodes.first(where: \.isLeader)
        let followers = nodes.filter { !$0.isLeader }.compactMap(\.fsyncsPerSecond)
        let followerFsyncs = followers.isEmpty ? nil : followers.reduce(0, +) / Double(followers.count)
        return RaftBenchResult(
            label: config.label,
            sockets: config.nodes.map { "\($0.id)=\($0.path)" }.joined(separator: ","),
            inflight: config.inflight, entrySize: config.entrySize, warmupSeconds: config.warmupSeconds,
            elapsedSeconds: elapsed, proposals: completedMeasured,
            proposalsPerSecond: elapsed > 0 ? Double(completedMeasured) / elapsed : 0,
            latency: LatencySummary(
                p50Ms: ms(histogram.valueAtPercentile(50)), p90Ms: ms(histogram.valueAtPercentile(90)),
                p99Ms: ms(histogram.valueAtPercentile(99)), p999Ms: ms(histogram.valueAtPercentile(99.9)),
                maxMs: ms(histogram.max), meanMs: histogram.mean / 1000),
            leaderID: leaderID, leaderChanges: leaderChanges, socketLosses: socketLosses, refused: refused, abandoned: abandoned, lost: lost,
            nodes: nodes,
            leaderFsyncsPerSecond: leaderNode?.fsyncsPerSecond,
            followerFsyncsPerSecond: followerFsyncs,
            entriesPerLeaderFsync: leaderNode?.entriesPerFsync,
            processes: processes,
            cpuMicrosPerProposal: processes.isEmpty || completedMeasured == 0 ? nil : cpu / Double(completedMeasured) * 1e6,
            benchCpuSeconds: benchCPUAtEnd - benchCPUAtStart)
    }
}
