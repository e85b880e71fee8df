import ClusterTestSupport
@testable import Gateway
@testable import KVServer
import KVStore
import Raft
import RaftServer
import SeededRandom
import SimulationSupport
import Wire

/// The whole service on one seeded clock: 3 or 5 nodes, each the real `RaftDriver` (on a
/// `SimulatedDisk`) and the real `KVDriver` joined by a simulated apply socket; 1–2 real
/// `GatewayCore`s with a lossy, delayed, resettable connection to every kvd; clients that send
/// Gets, Puts and Appends through the gateways under sessions and retry as real clients do.
/// Time moves in 1 ms steps; messages carry their own delays within and across steps.
///
/// Faults during the chaos: peer drops, delays, reorders, duplicates and partitions
/// (`SimulatedPeerNetwork`); raftd crashes (unsynced writes lost or torn, also inside
/// fdatasync); kvd crashes (its state comes back from raftd's snapshot and log); apply-link
/// resets; gateway links reset or cut off from a node for a while; gateway crashes (a fresh
/// gateway in its place); client connections closing;
/// frozen processes (a raftd, a kvd, or both, not stepped, their inputs and timers waiting).
/// Then everything heals, the clients finish, and the kvds converge.
///
/// Checked after every step: no two different entries committed at one index (raftds' logs and
/// what kvds were streamed), one leader per term, the drivers' own invariants
/// (`KVDriver.invariantViolation`, `GatewayCore.invariantViolation`), raftd never closing
/// kvd's link, persisting never failing. At the end: every client finished after the heal,
/// every kvd reached the same state, the history is linearizable, and every append's unique
/// element is in its key at most once (and exactly once when acknowledged).
final class WholeNodeSimulation {
    struct Options {
        var nodeCount = 3
        var gatewayCount = 1
        var clientCount = 5
        /// How raftd serves reads (`--read-mode`).
        var readMode = ReadMode.index
        /// The session limits kvd's leader proposes (a small table makes sessions evict each other).
        var sessionLimits = SessionLimits.defaults
        /// Each kvd's wall clock (which stamps proposals: sessions expire by it) is off by up to this.
        var wallClockSkewMs = 0
        /// The gateway answers UNAVAILABLE this long after a request came in (clients then retry).
        var gatewayDeadlineMs: UInt64 = 1_500
        /// Simulated milliseconds of chaos; then the clients finish (at most `calmMs`) and the
        /// kvds converge (at most `settleMs`).
        var chaosMs = 1_500
        var calmMs = 4_000
        var settleMs = 2_000
        /// Per step (1 ms) of chaos.
        var raftdCrashRate = 0.0012
        var crashInSyncRate = 0.0005
        var kvdCrashRate = 0.0015
        var applyLinkResetRate = 0.002
        var gatewayLinkResetRate = 0.003
        var gatewayCutRate = 0.0008
        var peerPartitionRate = 0.0025
        var peerHealRate = 0.008
        var freezeRate = 0.002
        var clientCloseRate = 0.0015
        /// Per peer message: it also arrives a second time.
        var peerDuplicateRate = 0.02
        /// Per step: a gateway process dies and a fresh one takes its place.
        var gatewayCrashRate = 0.0006
    }

    struct GatewayLink {
        var up = false
        var epoch: UInt64 = 0
        var connectAt: UInt64?
        var toKvd: [(at: UInt64, request: KvRequest)] = []
        var toGateway: [(at: UInt64, response: KvResponse)] = []
    }

    enum KvdMail {
        case raftDisconnected
        case clientClosed(UInt64)
    }

    static let ms: UInt64 = 1_000_000
    let seed: UInt64
    let options: Options
    private var random: SeededGenerator
    private(set) var now: UInt64 = 1_000_000_000
    private var network = SimulatedPeerNetwork()
    private(set) var nodes: [WholeNode] = []
    private var gateways: [GatewayCore] = []
    private var gatewayTimers: [UInt64?] = []
    /// [gateway][node index]
    private var links: [[GatewayLink]] = []
    private var clients: [WholeNodeClient] = []
    private var replies: [(at: UInt64, gateway: Int, connection: UInt64, response: KvResponse)] = []
    private var nextConnection: UInt64 = 1
    /// Per gateway: the connection status probes come on, and the probes owed an answer (by when).
    private var statusConnections: [UInt64] = []
    private var statusOwed: [(gateway: Int, requestID: UInt64, due: UInt64)] = []
    private var nextStatusID: UInt64 = 1
    private var wallOffsetMs: [Int] = []
    /// Inputs a frozen kvd gets when it thaws, and raftd's missed disconnect.
    private var kvdMail: [[KvdMail]] = []
    private var raftMissedDisconnect: [Bool] = []
    private let kvdConfig: KVDriverConfig
    private var issuing = true
    private(set) var committed: [UInt64: UInt64] = [:]
    private var checkedCommit: [UInt64] = []
    private var leaders: [UInt64: UInt64] = [:]
    private(set) var violation: String?
    private(set) var steps = 0
    private(set) var stats: [String: Int] = [:]
    private var recent: [(time: UInt64, line: () -> String)] = []

    init(seed: UInt64, options: Options) {
        self.seed = seed
        self.options = options
        random = SeededGenerator(seed: seed)
        network.faults.duplicateRate = options.peerDuplicateRate
        let ids = (1...UInt64(options.nodeCount)).map { $0 }
        var raftConfig = RaftDriverConfig(nodeID: 1, tick: .milliseconds(5))
        raftConfig.snapshotLogBytes = 3_000
        raftConfig.snapshotCatchUpBytes = 400
        raftConfig.applyChunkBytes = 400
        raftConfig.snapshotRequestRetry = .milliseconds(300)
        raftConfig.readMode = options.readMode
        var kvdConfig = KVDriverConfig(nodeID: 1, address: "sim")
        kvdConfig.requestTimeout = .milliseconds(500)
        kvdConfig.statusAnswerTimeout = .milliseconds(200)
        kvdConfig.groupCommitMaxWait = .milliseconds(2)
        kvdConfig.maxProposalsInFlight = random.int(in: 0...2)
        kvdConfig.requestedSessionLimits = options.sessionLimits
        self.kvdConfig = kvdConfig
        for id in ids {
            raftConfig.nodeID = id
            var config = kvdConfig
            config.nodeID = id
            let node = WholeNode(id: id, peers: ids, raftConfig: raftConfig, kvdConfig: config)
            node.disk.chunkSize = 256
            nodes.append(node)
        }
        kvdMail = Array(repeating: [], count: nodes.count)
        raftMissedDisconnect = Array(repeating: false, count: nodes.count)
        checkedCommit = Array(repeating: 0, count: nodes.count)
        for _ in 0..<options.gatewayCount {
            gateways.append(GatewayCore(config: makeGatewayConfig()))
            gatewayTimers.append(nil)
            links.append(Array(repeating: GatewayLink(), count: nodes.count))
        }
        for _ in gateways { statusConnections.append(takeConnectionID()) }
        wallOffsetMs = nodes.map { _ in random.int(in: -options.wallClockSkewMs...options.wallClockSkewMs) }
        for index in 0..<options.clientCount {
            // Most clients own a session; every third borrows one from its gateway.
            let clientID: UInt64 = index % 3 == 2 ? 0 : random.next() | 1
            clients.append(WholeNodeClient(index: index, clientID: clientID, gateway: index % options.gatewayCount,
                                           connection: takeConnectionID()))
        }
    }

    private func takeConnectionID() -> UInt64 {
        defer { nextConnection += 1 }
        return nextConnection
    }

    /// kvd `index`'s clocks: the monotonic one shared, the wall clock its own.
    private func time(_ index: Int) -> KVTime {
        KVTime(monotonicNanos: now, wallClockMillis: UInt64(1_700_000_000_000 + Int(now / Self.ms) + wallOffsetMs[index]))
    }

    private func note(_ line: @escaping @autoclosure () -> String) {
        recent.append((now, line))
        if recent.count > 400 { recent.removeFirst(200) }
    }

    var transcript: [String] { recent.map { "t=\(($0.time - 1_000_000_000) / 1000)µs \($0.line())" } }

    private func fail(_ problem: String) {
        if violation == nil { violation = "t=\((now - 1_000_000_000) / Self.ms)ms: \(problem)" }
    }

    private func count(_ what: String) { stats[what, default: 0] += 1 }

    private func delay(_ range: ClosedRange<Int>) -> UInt64 { UInt64(random.int(in: range)) * 1000 }

    // MARK: Running

    /// Runs the seed; returns the first violation, or nil.
    func run() -> String? {
        for node in nodes {
            node.startRaft(now: now, seed: random.next())
            node.kvd = KVDriver(config: node.kvdConfig)
            node.redialAt = now + delay(0...5_000)
        }
        for gateway in links.indices {
            for node in nodes.indices { links[gateway][node].connectAt = now + delay(0...20_000) }
        }
        for index in clients.indices { clients[index].wakeAt = now + delay(5_000...30_000) }
        for _ in 0..<options.chaosMs where violation == nil { step(chaos: true) }
        guard violation == nil else { return violation }
        heal()
        issuing = false
        var calm = 0
        while violation == nil, !clients.allSatisfy(\.isIdle) {
            guard calm < options.calmMs else {
                fail("clients not done \(calm) ms after every fault healed: " + clients.filter { !$0.isIdle }.map { "client \($0.index) seq \($0.seq)" }.joined(separator: ", "))
                break
            }
            step(chaos: false)
            calm += 1
        }
        var settle = 0
        while violation == nil, !converged {
            guard settle < options.settleMs else {
                fail("kvds did not converge \(options.settleMs) ms after the clients finished: applied " + nodes.map { "\($0.kvd?.machine.appliedIndex ?? 0)" }.joined(separator: ", "))
                break
            }
            step(chaos: false)
            settle += 1
        }
        if violation == nil { finalChecks() }
        stats["peer messages duplicated"] = network.duplicated
        return violation
    }

    /// Every kvd applied everything committed (and the same state).
    private var converged: Bool {
        guard let commit = nodes.compactMap({ $0.raft?.status.commitIndex }).max() else { return false }
        return nodes.allSatisfy { node in
            node.kvd.map { $0.machine.appliedIndex >= commit && $0.raftAttached } ?? false
        }
    }

    private func step(chaos: Bool) {
        now += Self.ms
        steps += 1
        deliverPeerMessages()
        for node in nodes.indices { raftTimers(node) }
        for node in nodes.indices { applyLink(node) }
        for node in nodes.indices { kvdShell(node) }
        for gateway in links.indices { gatewayLinks(gateway) }
        for node in nodes.indices { endPass(node) }
        for gateway in gateways.indices {
            if let at = gatewayTimers[gateway], at <= now {
                gatewayTimers[gateway] = nil
                gatewayStep(gateway) { $0.tick(now: $1) }
            }
        }
        clientsStep()
        probeStatus()
        if chaos { injectFaults() }
        restartDue()
        for node in nodes.indices { processReady(node, chaos: chaos) }
        check()
    }

    // MARK: raftd

    private func deliverPeerMessages() {
        for delivery in network.deliveries(upTo: now) {
            let node = nodes[Int(delivery.message.to - 1)]
            guard node.raftIsUp else { continue }
            if node.raftFrozen(now) {
                node.heldDeliveries.append(delivery)
            } else {
                deliver(delivery, to: node)
            }
        }
        for node in nodes where node.raftIsUp && !node.raftFrozen(now) && !node.heldDeliveries.isEmpty {
            let held = node.heldDeliveries
            node.heldDeliveries.removeAll()
            for delivery in held where !network.isCut(delivery.message.from, delivery.message.to) { deliver(delivery, to: node) }
        }
    }

    private func deliver(_ delivery: SimulatedPeerNetwork.Delivery, to node: WholeNode) {
        if let data = delivery.snapshotData, let snapshot = delivery.message.snapshot {
            node.disk.receiveLeaderSnapshot(snapshot, data: data)
        }
        node.raft?.receive(delivery.message, now: now)
    }

    private func raftTimers(_ index: Int) {
        let node = nodes[index]
        guard let raft = node.raft, !node.raftFrozen(now) else { return }
        if raftMissedDisconnect[index] {
            raftMissedDisconnect[index] = false
            raft.kvdDisconnected()
        }
        if raft.nextDeadline <= now { raft.wake(now: now) }
        if random.chance(0.5) {
            for commit in node.disk.completeCommits() { raft.snapshotCommitted(commit) }
        }
    }

    private func processReady(_ index: Int, chaos: Bool) {
        let node = nodes[index]
        guard let raft = node.raft, !node.raftFrozen(now) else { return }
        let dies = chaos && random.chance(options.crashInSyncRate)
        node.disk.crashAtNextSync = dies
        raft.processReady(now: now)
        node.disk.crashAtNextSync = false
        if dies, node.persistFailure != nil {
            note("raftd \(node.id) dies in fdatasync")
            crashRaft(index)
            return
        }
        if let failure = node.persistFailure { fail("raftd \(node.id) failed to persist: \(failure)") }
        for message in node.outbox {
            var data: [UInt8]?
            if message.type == .snapshot, let snapshot = message.snapshot {
                guard let bytes = node.disk.snapshotData(index: snapshot.index, term: snapshot.term) else { continue }
                data = bytes
            }
            network.send(message, snapshotData: data, now: now, random: &random)
        }
        node.outbox.removeAll()
    }

    private func crashRaft(_ index: Int) {
        let node = nodes[index]
        count("raftd crashes")
        linkDown(index, tellRaft: false, tellKvd: true)
        raftMissedDisconnect[index] = false
        node.crashRaft(random: &random)
        node.raftDownUntil = now + delay(20_000...300_000)
        checkedCommit[index] = 0
        note("raftd \(node.id) crashes (disk: term \(node.disk.durable.hardState.term), last \(node.disk.durable.lastIndex), snapshot \(node.disk.durable.offset))")
    }

    private func restartDue() {
        for node in nodes {
            if let until = node.raftDownUntil, now >= until {
                node.raftDownUntil = nil
                let image = node.disk.durable
                let lastTerm = image.entries.last?.term ?? image.snapshot?.term ?? 0
                guard lastTerm <= image.hardState.term else {
                    fail("raftd \(node.id)'s disk holds entries of term \(lastTerm) past its hard state's term \(image.hardState.term)")
                    return
                }
                node.startRaft(now: now, seed: random.next())
                note("raftd \(node.id) restarts (commit \(node.raft!.status.commitIndex), last \(node.raft!.status.lastIndex))")
            }
            if let until = node.kvdDownUntil, now >= until {
                node.kvdDownUntil = nil
                node.kvd = KVDriver(config: node.kvdConfig)
                node.redialAt = now
                note("kvd \(node.id) restarts empty")
            }
        }
    }

    // MARK: The apply link

    /// Each end reads a few frames of what the other wrote; a drained end tells its writer.
    private func applyLink(_ index: Int) {
        let node = nodes[index]
        guard node.linkUp else { return }
        // raftd's output backed up (past its high-water mark): it hears when kvd drains it.
        if node.toKvd.count >= WholeNode.toKvdLimit { node.raftSawFull = true }
        if !node.kvdFrozen(now), node.kvd != nil {
            for _ in 0..<random.int(in: 0...4) {
                guard node.linkUp, !node.toKvd.isEmpty else { break }
                let frame = node.toKvd.removeFirst()
                if case let .committed(entries) = frame {
                    for entry in entries { record(index: entry.index, print: Fingerprint.of(entry), by: "kvd \(node.id)") }
                } else if case let .snapshot(chunk) = frame, chunk.offset == 0 {
                    count("kvd restores from raftd's snapshot")
                }
                kvdStep(index) { $0.raftMessage(frame, at: $1) }
            }
        }
        if node.linkUp, node.raftSawFull, node.toKvd.count <= WholeNode.toKvdLimit / 2, let raft = node.raft, !node.raftFrozen(now) {
            node.raftSawFull = false
            raft.kvdWritable(now: now)
        }
        if let raft = node.raft, !node.raftFrozen(now) {
            for _ in 0..<random.int(in: 0...4) {
                guard node.linkUp, !node.toRaft.isEmpty else { break }
                let frame = node.toRaft.removeFirst()
                node.toRaftBytes -= WholeNode.size(of: frame)
                let closed = node.closedByRaftd
                raft.kvdReceived(frame, now: now)
                if node.closedByRaftd != closed {
                    fail("raftd \(node.id) closed kvd's link after \(frame)")
                    linkDown(index, tellRaft: false, tellKvd: true, force: true)
                }
            }
        }
        if node.linkUp, node.kvdSawFull, node.toRaftBytes <= WholeNode.toRaftHighWater / 2, node.kvd != nil, !node.kvdFrozen(now) {
            node.kvdSawFull = false
            let room = node.kvdRoom
            kvdStep(index) { $0.raftWritable(room: room, at: $1) }
        }
    }

    /// The apply link drops; kvd dials again a little later.
    private func linkDown(_ index: Int, tellRaft: Bool, tellKvd: Bool, force: Bool = false) {
        let node = nodes[index]
        guard node.linkUp || force else { return }
        node.linkClosed()
        if tellRaft, let raft = node.raft {
            if node.raftFrozen(now) { raftMissedDisconnect[index] = true } else { raft.kvdDisconnected() }
        }
        if tellKvd, node.kvd != nil {
            if node.kvdFrozen(now) {
                kvdMail[index].append(.raftDisconnected)
            } else {
                kvdStep(index) { $0.raftDisconnected(reason: "simulated link loss", at: $1) }
            }
        }
        node.redialAt = now + delay(5_000...50_000)
    }

    // MARK: kvd's shell

    private func kvdStep(_ index: Int, _ input: (inout KVDriver, KVTime) -> [KVDriverAction]) {
        let node = nodes[index]
        guard node.kvd != nil else { return }
        let actions = input(&node.kvd!, time(index))
        if let broken = node.kvd!.invariantViolation() { fail("kvd \(node.id): \(broken)") }
        for action in actions { perform(action, node: index) }
    }

    private func perform(_ action: KVDriverAction, node index: Int) {
        let node = nodes[index]
        switch action {
        case let .reply(client, response, _):
            let gateway = Int(client >> 40) - 1
            let epoch = client & 0xFF_FFFF_FFFF
            guard links.indices.contains(gateway), links[gateway][index].up, links[gateway][index].epoch == epoch else { return }
            let at = max(links[gateway][index].toGateway.last?.at ?? 0, now + delay(50...2_000))
            links[gateway][index].toGateway.append((at, response))
        case let .sendToRaft(message):
            guard node.linkUp else { return fail("kvd \(node.id) wrote to raftd without a link") }
            node.toRaft.append(message)
            node.toRaftBytes += WholeNode.size(of: message)
            if node.toRaftBytes > WholeNode.toRaftHighWater { node.kvdSawFull = true }
        case .resetRaftLink:
            note("kvd \(node.id) resets its raftd link")
            count("kvd link resets by kvd")
            linkDown(index, tellRaft: true, tellKvd: false)
        case .schedulePassEnd:
            node.passEndDue = true
        case let .armTimer(at):
            node.kvdTimerAt = at
        case let .encodeSnapshot(id, machine):
            var parts: [[UInt8]] = []
            var size = 0
            machine.encodeSnapshot(size: { size = $0 }, part: { parts.append($0); return true })
            node.encodings.append(WholeNode.Encoding(id: id, index: machine.appliedIndex, size: size, parts: parts,
                                                     readyAt: now + delay(500...4_000)))
            count("snapshots encoded")
        case let .snapshotPartSent(id):
            if let at = node.encodings.firstIndex(where: { $0.id == id }) { node.encodings[at].credits += 1 }
        case let .cancelSnapshotEncoding(id):
            if let at = node.encodings.firstIndex(where: { $0.id == id }) { node.encodings[at].cancelled = true }
        case .releaseFreeMemory:
            break
        case let .log(level, message):
            if level >= .info { note("kvd \(node.id) \(level): \(message)") }
        }
    }

    /// kvd's mail, timer, snapshot encoder and dialer.
    private func kvdShell(_ index: Int) {
        let node = nodes[index]
        guard node.kvd != nil, !node.kvdFrozen(now) else { return }
        while !kvdMail[index].isEmpty {
            switch kvdMail[index].removeFirst() {
            case .raftDisconnected: kvdStep(index) { $0.raftDisconnected(reason: "simulated link loss", at: $1) }
            case let .clientClosed(client): kvdStep(index) { $0.clientClosed(client: client, at: $1) }
            }
        }
        if let at = node.kvdTimerAt, at <= now {
            node.kvdTimerAt = nil
            kvdStep(index) { $0.tick(at: $1) }
        }
        encoderReports(index)
        if !node.linkUp, let at = node.redialAt, at <= now {
            if node.raft != nil, !node.raftFrozen(now), !raftMissedDisconnect[index] {
                node.redialAt = nil
                node.linkOpened()
                node.raft!.kvdConnected()
                note("kvd \(node.id) connects to raftd")
                kvdStep(index) { $0.raftConnected(at: $1) }
            } else {
                node.redialAt = now + delay(10_000...50_000)
            }
        }
    }

    /// The encoder thread's reports, in order: started, parts as credits allow, finished.
    private func encoderReports(_ index: Int) {
        let node = nodes[index]
        guard let first = node.encodings.first, first.readyAt <= now else { return }
        let id = first.id
        if !first.started {
            node.encodings[0].started = true
            let room = node.kvdRoom
            kvdStep(index) { $0.snapshotEncodingStarted(id: id, index: first.index, size: first.size, raftRoom: room, at: $1) }
        }
        for _ in 0..<random.int(in: 1...3) {
            guard let at = node.encodings.firstIndex(where: { $0.id == id }) else { return }
            let encoding = node.encodings[at]
            guard !encoding.cancelled, encoding.credits > 0, encoding.nextPart < encoding.parts.count else { break }
            node.encodings[at].credits -= 1
            node.encodings[at].nextPart += 1
            let part = encoding.parts[encoding.nextPart]
            let room = node.kvdRoom
            kvdStep(index) { $0.snapshotPartEncoded(id: id, part: part, raftRoom: room, at: $1) }
        }
        guard let at = node.encodings.firstIndex(where: { $0.id == id }) else { return }
        let encoding = node.encodings[at]
        if encoding.cancelled || encoding.nextPart == encoding.parts.count {
            node.encodings.remove(at: at)
            let room = node.kvdRoom
            kvdStep(index) { $0.snapshotEncodingFinished(id: id, keys: 0, sessions: 0, duration: .zero, raftRoom: room, at: $1) }
        }
    }

    private func endPass(_ index: Int) {
        let node = nodes[index]
        var passes = 0
        while node.passEndDue, node.kvd != nil, !node.kvdFrozen(now) {
            passes += 1
            guard passes <= 8 else { return fail("kvd \(node.id) asks for a pass end after every pass end") }
            node.passEndDue = false
            kvdStep(index) { $0.passEnded(at: $1) }
        }
    }

    private func crashKvd(_ index: Int) {
        let node = nodes[index]
        guard node.kvd != nil else { return }
        count("kvd crashes")
        note("kvd \(node.id) crashes (had applied \(node.kvd!.machine.appliedIndex))")
        linkDown(index, tellRaft: true, tellKvd: false)
        for gateway in links.indices { resetGatewayLink(gateway, index, kvdAlive: false) }
        node.kvd = nil
        node.encodings.removeAll()
        node.kvdTimerAt = nil
        node.passEndDue = false
        node.kvdFrozenUntil = 0
        kvdMail[index].removeAll()
        node.kvdDownUntil = now + delay(5_000...100_000)
    }

    // MARK: Gateways

    private func connectionID(gateway: Int, epoch: UInt64) -> UInt64 { UInt64(gateway + 1) << 40 | epoch }

    private func gatewayLinks(_ gateway: Int) {
        for index in nodes.indices {
            let node = nodes[index]
            let cut = now < node.gatewayCutUntil
            if !links[gateway][index].up, let at = links[gateway][index].connectAt, at <= now {
                if node.kvd != nil, !cut {
                    links[gateway][index].up = true
                    links[gateway][index].epoch += 1
                    links[gateway][index].connectAt = nil
                    links[gateway][index].toKvd.removeAll()
                    links[gateway][index].toGateway.removeAll()
                    gatewayStep(gateway) { $0.upstreamConnected(node: node.id, now: $1) }
                } else {
                    links[gateway][index].connectAt = now + delay(20_000...100_000)
                }
            }
            guard links[gateway][index].up, !cut else { continue }
            if node.kvd != nil, !node.kvdFrozen(now) {
                let client = connectionID(gateway: gateway, epoch: links[gateway][index].epoch)
                while links[gateway][index].up, let first = links[gateway][index].toKvd.first, first.at <= now {
                    links[gateway][index].toKvd.removeFirst()
                    kvdStep(index) { $0.clientRequest(client: client, first.request, at: $1) }
                }
            }
            while links[gateway][index].up, let first = links[gateway][index].toGateway.first, first.at <= now {
                links[gateway][index].toGateway.removeFirst()
                gatewayStep(gateway) { $0.upstreamResponse(node: node.id, first.response, now: $1) }
            }
        }
    }

    /// A gateway as kvgateway starts: knowing only the `--nodes` seeds, nothing else.
    private func makeGatewayConfig() -> GatewayCoreConfig {
        var config = GatewayCoreConfig(nodeIDs: nodes.map(\.id), maxKeyBytes: 1024, maxValueBytes: 1 << 16, seed: random.next())
        config.requestDeadline = options.gatewayDeadlineMs * Self.ms
        config.attemptTimeout = options.gatewayDeadlineMs * 2 / 5 * Self.ms
        return config
    }

    /// The gateway process dies and a fresh one starts in its place (it keeps nothing on disk):
    /// its kvd links drop with what was on them (each kvd sees its client close), the replies
    /// and status answers it owed are lost, and its clients' connections break. Clients of
    /// their own sessions retry with the same seq; a lent session's write has an unknown outcome.
    private func crashGateway(_ gateway: Int) {
        count("gateway crashes")
        note("gateway \(gateway) crashes; a fresh one starts")
        for index in nodes.indices where links[gateway][index].up {
            tellKvdClosed(index, client: closeLink(gateway, index))
        }
        for index in nodes.indices { links[gateway][index].connectAt = max(now + delay(5_000...50_000), nodes[index].gatewayCutUntil) }
        replies.removeAll { $0.gateway == gateway }
        statusOwed.removeAll { $0.gateway == gateway }
        gatewayTimers[gateway] = nil
        gateways[gateway] = GatewayCore(config: makeGatewayConfig())
        for index in clients.indices where clients[index].gateway == gateway {
            clientLostConnection(index, outcome: "unknown outcomes (lent session, gateway crashed)", retryAfter: 5_000...20_000)
        }
    }

    /// Link `index` of `gateway` goes down with what was on it; returns the connection id kvd
    /// knew it by.
    private func closeLink(_ gateway: Int, _ index: Int) -> UInt64 {
        let client = connectionID(gateway: gateway, epoch: links[gateway][index].epoch)
        links[gateway][index].up = false
        links[gateway][index].toKvd.removeAll()
        links[gateway][index].toGateway.removeAll()
        return client
    }

    /// kvd `index` (if running) sees its client `client` close: now, or when it thaws.
    private func tellKvdClosed(_ index: Int, client: UInt64) {
        guard nodes[index].kvd != nil else { return }
        if nodes[index].kvdFrozen(now) {
            kvdMail[index].append(.clientClosed(client))
        } else {
            kvdStep(index) { $0.clientClosed(client: client, at: $1) }
        }
    }

    /// The connection drops with what was on it; both ends are told; the gateway dials again.
    private func resetGatewayLink(_ gateway: Int, _ index: Int, kvdAlive: Bool = true) {
        guard links[gateway][index].up else { return }
        let client = closeLink(gateway, index)
        links[gateway][index].connectAt = max(now + delay(10_000...100_000), nodes[index].gatewayCutUntil)
        gatewayStep(gateway) { $0.upstreamDisconnected(node: UInt64(index + 1), now: $1) }
        if kvdAlive { tellKvdClosed(index, client: client) }
    }

    private func gatewayStep(_ gateway: Int, _ input: (inout GatewayCore, UInt64) -> [GatewayAction]) {
        let actions = input(&gateways[gateway], now)
        if let broken = gateways[gateway].invariantViolation(now: now) { fail("gateway \(gateway): \(broken)") }
        for action in actions {
            switch action {
            case let .sendUpstream(node, request):
                let index = Int(node - 1)
                guard links[gateway][index].up else {
                    if request.op != .status { fail("gateway \(gateway) sent to node \(node) without a connection") }
                    continue
                }
                let at = max(links[gateway][index].toKvd.last?.at ?? 0, now + delay(50...2_000))
                links[gateway][index].toKvd.append((at, request))
            case let .reply(client, response):
                replies.append((now + delay(0...1_000), gateway, client, response))
            case let .suspectChanged(node, suspect):
                note("gateway \(gateway): node \(node) \(suspect ? "suspect" : "answers again")")
            case let .armTimer(at):
                if at < now { fail("gateway \(gateway) armed its timer in the past") }
                gatewayTimers[gateway] = at
            case .closeClient, .addUpstream, .removeUpstream:
                break
            }
        }
    }

    // MARK: Clients

    private func clientsStep() {
        var due: [(at: UInt64, gateway: Int, connection: UInt64, response: KvResponse)] = []
        replies.removeAll { reply in
            guard reply.at <= now else { return false }
            due.append(reply)
            return true
        }
        for reply in due {
            if reply.connection == statusConnections[reply.gateway] {
                statusAnswered(reply.gateway, reply.response)
                continue
            }
            guard let index = clients.firstIndex(where: { $0.gateway == reply.gateway && $0.connection == reply.connection }) else { continue }
            clientReceives(index, reply.response)
        }
        for index in clients.indices {
            guard let at = clients[index].wakeAt, at <= now else { continue }
            clients[index].wakeAt = nil
            if clients[index].current == nil {
                guard issuing else { continue }
                clients[index].begin(choice: random.int(in: 0...99), keyChoice: random.int(in: 0...5), now: now)
            }
            let request = clients[index].nextAttempt()
            let (gateway, connection) = (clients[index].gateway, clients[index].connection)
            note("client \(index) → gateway \(gateway): \(request.op) seq \(request.seq) rid \(request.requestID)")
            gatewayStep(gateway) { $0.clientRequest(client: connection, request, now: $1) }
        }
    }

    /// Now and then a status query through each gateway: answered in time, listing every node.
    private func probeStatus() {
        for owed in statusOwed where owed.due < now {
            return fail("gateway \(owed.gateway) did not answer status query \(owed.requestID) by \(owed.due / Self.ms) ms")
        }
        guard issuing, random.chance(0.004) else { return }
        let gateway = random.int(in: 0...(gateways.count - 1))
        let id = nextStatusID
        nextStatusID += 1
        let connection = statusConnections[gateway]
        statusOwed.append((gateway, id, now + gateways[gateway].config.statusTimeout + 50 * Self.ms))
        count("status queries")
        gatewayStep(gateway) { $0.clientRequest(client: connection, KvRequest(requestID: id, op: .status), now: $1) }
    }

    private func statusAnswered(_ gateway: Int, _ response: KvResponse) {
        guard let at = statusOwed.firstIndex(where: { $0.gateway == gateway && $0.requestID == response.requestID }) else {
            return fail("gateway \(gateway) answered status query \(response.requestID), not owed")
        }
        statusOwed.remove(at: at)
        if response.nodes.count != nodes.count { fail("gateway \(gateway)'s status answer lists \(response.nodes.count) nodes: \(response.nodes)") }
    }

    private func clientReceives(_ index: Int, _ response: KvResponse) {
        guard clients[index].current != nil, response.requestID == clients[index].attempt else { return }
        note("client \(index) ← \(response.status) rid \(response.requestID)")
        clients[index].attempt = 0
        switch response.status {
        case .ok, .noKey:
            clients[index].complete(response, now: now)
            count("operations completed")
            clients[index].wakeAt = now + delay(0...5_000)
        case .unavailable, .timeout:
            count("retries")
            if clients[index].mayRetry {
                // An own session's retry may go through another gateway: same client_id and seq.
                if clients[index].clientID != 0, gateways.count > 1, random.chance(0.5) {
                    clients[index].gateway = (clients[index].gateway + 1) % gateways.count
                    clients[index].connection = takeConnectionID()
                }
                clients[index].wakeAt = now + delay(2_000...10_000)
            } else {
                clients[index].giveUp()
                count("unknown outcomes (lent session, no answer)")
                clients[index].wakeAt = now + delay(1_000...5_000)
            }
        case .sessionExpired where clients[index].current?.kind != .get:
            // The write was applied; its reply was lost (a lent session expired, or our own
            // session was evicted from the table before this retry came).
            count(clients[index].clientID == 0 ? "writes answered SESSION_EXPIRED (lent)" : "writes answered SESSION_EXPIRED (own)")
            clients[index].complete(response, now: now)
            clients[index].wakeAt = now + delay(0...5_000)
        case .sessionExpired where clients[index].clientID != 0:
            // Our session was evicted and this seq is remembered as used: read again under a new one.
            count("gets answered SESSION_EXPIRED")
            clients[index].renumber()
            clients[index].wakeAt = now + delay(0...5_000)
        default:
            fail("client \(index) got \(response.status) for seq \(clients[index].seq): \(response.message)")
        }
    }

    private func closeClientConnection(_ index: Int) {
        let old = clients[index].connection
        count("client connections closed")
        note("client \(index)'s connection closes")
        gatewayStep(clients[index].gateway) { $0.clientClosed(client: old, now: $1) }
        clientLostConnection(index, outcome: "unknown outcomes (lent session, connection closed)", retryAfter: 1_000...5_000)
    }

    /// Client `index`'s connection broke with its attempt (if any) unanswered: under its own
    /// session it retries later with the same seq; a lent session's write has an unknown
    /// outcome (counted as `outcome`).
    private func clientLostConnection(_ index: Int, outcome: String, retryAfter wait: ClosedRange<Int>) {
        clients[index].connection = takeConnectionID()
        guard clients[index].current != nil else { return }
        clients[index].attempt = 0
        if !clients[index].mayRetry {
            clients[index].giveUp()
            count(outcome)
        }
        clients[index].wakeAt = now + delay(wait)
    }

    // MARK: Faults

    private func injectFaults() {
        let index = random.int(in: 0...(nodes.count - 1))
        let node = nodes[index]
        if random.chance(options.raftdCrashRate), node.raftIsUp { crashRaft(index) }
        if random.chance(options.kvdCrashRate) { crashKvd(index) }
        if random.chance(options.applyLinkResetRate), node.linkUp {
            count("apply link resets")
            note("apply link of node \(node.id) resets")
            linkDown(index, tellRaft: true, tellKvd: true)
        }
        if random.chance(options.gatewayLinkResetRate) {
            let gateway = random.int(in: 0...(gateways.count - 1))
            if links[gateway][index].up {
                count("gateway link resets")
                note("gateway \(gateway)'s link to kvd \(node.id) resets")
                resetGatewayLink(gateway, index)
            }
        }
        if random.chance(options.gatewayCutRate) {
            count("gateway cuts")
            node.gatewayCutUntil = now + delay(50_000...400_000)
            let cutMs = (node.gatewayCutUntil - now) / Self.ms
            note("node \(node.id) cut off from the gateways for \(cutMs) ms")
            for gateway in links.indices where random.chance(0.5) { resetGatewayLink(gateway, index) }
        }
        if random.chance(options.peerPartitionRate) {
            let ids = nodes.map(\.id)
            network.partition([node.id], ids.filter { $0 != node.id })
            count("peer partitions")
            note("partition node \(node.id) away from its peers")
        }
        if random.chance(options.peerHealRate), !network.cut.isEmpty {
            network.healAll()
            note("peers heal")
        }
        if random.chance(options.freezeRate) {
            let until = now + delay(20_000...300_000)
            switch random.int(in: 0...2) {
            case 0: node.raftFrozenUntil = until
            case 1: node.kvdFrozenUntil = until
            default:
                node.raftFrozenUntil = until
                node.kvdFrozenUntil = until
            }
            count("freezes")
            note("node \(node.id) freezes (raftd until \(node.raftFrozenUntil / Self.ms), kvd until \(node.kvdFrozenUntil / Self.ms))")
        }
        if random.chance(options.clientCloseRate) { closeClientConnection(random.int(in: 0...(clients.count - 1))) }
        if random.chance(options.gatewayCrashRate) { crashGateway(random.int(in: 0...(gateways.count - 1))) }
    }

    private func heal() {
        network.healAll()
        for node in nodes {
            node.raftFrozenUntil = 0
            node.kvdFrozenUntil = 0
            node.gatewayCutUntil = 0
            if node.raftDownUntil != nil { node.raftDownUntil = now }
            if node.kvdDownUntil != nil { node.kvdDownUntil = now }
        }
        note("every fault heals")
    }

    // MARK: Checks

    private func record(index: UInt64, print: UInt64, by whom: String) {
        if let known = committed[index] {
            if known != print { fail("\(whom) has a different entry committed at index \(index)") }
        } else {
            committed[index] = print
        }
    }

    private func check() {
        for (index, node) in nodes.enumerated() {
            guard let raft = node.raft else { continue }
            let status = raft.status
            var at = max(checkedCommit[index], raft.node.firstIndex - 1)
            while at < status.commitIndex {
                at += 1
                if let entry = raft.node.entry(at: at) { record(index: at, print: Fingerprint.of(entry), by: "raftd \(node.id)'s log") }
            }
            checkedCommit[index] = status.commitIndex
            if status.role == .leader {
                if let other = leaders[status.term], other != node.id { fail("two leaders in term \(status.term): \(other) and \(node.id)") }
                if leaders[status.term] == nil { count("leaders elected") }
                leaders[status.term] = node.id
            }
        }
    }

    private func finalChecks() {
        let reference = nodes[0].kvd!.machine
        for node in nodes.dropFirst() where node.kvd!.machine.snapshot() != reference.snapshot() {
            return fail("kvd \(node.id)'s state differs from kvd 1's at applied index \(reference.appliedIndex)")
        }
        let history = clients.flatMap(\.history)
        let result = LinearizabilityChecker.check(history, timeout: .seconds(20))
        if !result.isLinearizable { return fail("history not linearizable: \(result)") }
        for key in WholeNodeClient.appendKeys {
            var appends: [Int: [AppendAttempt]] = [:]
            for client in clients { appends[client.index] = client.appends[key] ?? [] }
            let check = LinearizabilityChecker.checkAppendsExactlyOnce(finalValue: reference.get(key) ?? [], appends: appends)
            if check != .ok { return fail("key \(String(decoding: key, as: UTF8.self)): \(check)") }
        }
    }

    /// The seed, the outcome, the counts, each node's state and the last events.
    var report: String {
        var text = "whole-node simulation seed=\(seed) nodes=\(options.nodeCount) gateways=\(options.gatewayCount) read mode \(options.readMode) steps=\(steps)\n"
        text += "  \(violation ?? "no violation")\n"
        text += "  " + stats.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ") + "\n"
        for node in nodes {
            let raft = node.raft.map { "\($0.status.role.name) term=\($0.status.term) commit=\($0.status.commitIndex) first=\($0.node.firstIndex) last=\($0.status.lastIndex)" } ?? "down"
            let kvd = node.kvd.map { "applied=\($0.machine.appliedIndex) attached=\($0.raftAttached) leader=\($0.leadership)" } ?? "down"
            text += "  node \(node.id): raftd \(raft); kvd \(kvd)\n"
        }
        return text + transcript.suffix(60).joined(separator: "\n")
    }
}
