import ClusterTestSupport
@testable import KVServer
import KVStore
import SeededRandom
import Wire

/// Three kvd drivers, each attached to a simulated raftd of one simulated cluster
/// (`FakeRaftCluster`), serving simulated clients (`SimulatedKVClient`), all on one seeded
/// clock. The fake raftds accept proposals on the leader and refuse them elsewhere, commit or
/// lose them, change leader and term, stream committed entries in order (the snapshot first
/// to a kvd behind the compacted log), answer read indexes (or "not leader", or "use the
/// log"), answer status queries or let them wait, and ask for snapshots. The links between
/// kvd and raftd drop, and kvds crash and come back empty.
///
/// Checked: the driver's invariants after every step; every snapshot kvd sends equals the
/// reference state at its index; at the end every kvd's state equals the reference at its
/// applied index, nothing waits in any driver, every client finished (liveness once faults
/// stop), the clients' history is linearizable, and no append was applied twice or lost after
/// being acknowledged.
final class KVDriverSimulation {
    enum Event {
        case toKvd(node: Int, link: Int, RaftToKvd)
        case toRaft(node: Int, link: Int, KvdToRaft)
        case request(node: Int, incarnation: Int, client: Int, KvRequest)
        case reply(client: Int, KvResponse)
        case timer(node: Int, incarnation: Int, at: UInt64)
        case passEnd(node: Int, incarnation: Int)
        case raftConnect(node: Int, incarnation: Int)
        case raftWritable(node: Int, link: Int)
        /// raftd tells its kvd the leadership it now sees (sometimes well after the change).
        case announce(node: Int, link: Int)
        case encodingStarted(node: Int, incarnation: Int, id: UInt64, index: UInt64, size: Int)
        case encodingPart(node: Int, incarnation: Int, id: UInt64, [UInt8])
        case encodingFinished(node: Int, incarnation: Int, id: UInt64)
        case clientWake(client: Int, token: UInt64)
        case commit
        case fault
    }

    struct Node {
        var driver: KVDriver
        var incarnation = 0
        /// The kvd ⇄ raftd link: its epoch (messages of an older one are dropped) and state.
        var link = 0
        var linkUp = false
        /// raftd's side: the hello came, and how far it has streamed committed entries.
        var attached = false
        var streamed: UInt64 = 0
        /// The leadership raftd last told its kvd: a node told it leads keeps accepting
        /// proposals (at positions another leader will take) until it hears otherwise.
        var view = Leadership(term: 0, leaderID: 0, isLeader: false)
        var staleProposals: UInt64 = 0
        /// The last index of this node's log when it was deposed: its stale appends go after it,
        /// so no (index, term) ever names two entries (Raft's log matching).
        var staleBase: UInt64 = 0
        /// Messages on the link are delivered in order: no earlier than the previous one.
        var lastToKvd: UInt64 = 0
        var lastToRaft: UInt64 = 0
        var timerAt: UInt64?
        /// kvd's snapshot arriving at raftd.
        var snapshotIn: [UInt8] = []
    }

    static let ms: UInt64 = 1_000_000
    static let nodeCount = 3
    static let clientCount = 4
    static let operationsPerClient = 30
    let seed: UInt64
    private var random: SeededGenerator
    private var queue = SimulationEventQueue<Event>()
    private(set) var now: UInt64 = 1_000 * KVDriverSimulation.ms
    private var cluster = FakeRaftCluster()
    private var nodes: [Node] = []
    private var clients: [SimulatedKVClient] = []
    private let readsThroughLog: Bool
    private let faultsUntil: UInt64
    private let config: KVDriverConfig
    private var violation: String?
    private(set) var steps = 0
    /// What happened, for the sweep's summary.
    private(set) var stats: [String: Int] = [:]
    /// The latest events, rendered only when asked for (formatting every step dominated the run time).
    private var recent: [(time: UInt64, line: () -> String)] = []
    var transcript: [String] { recent.map { "\($0.time / 1000)µs \($0.line())" } }

    init(seed: UInt64) {
        self.seed = seed
        random = SeededGenerator(seed: seed)
        readsThroughLog = Int.random(in: 0..<5, using: &random) == 0
        var config = KVDriverConfig(nodeID: 1, address: "sim")
        config.requestTimeout = .milliseconds(300)
        config.statusAnswerTimeout = .milliseconds(100)
        config.groupCommitMaxWait = .milliseconds(2)
        config.maxProposalsInFlight = Int.random(in: 0...3, using: &random)
        self.config = config
        faultsUntil = now + UInt64.random(in: 500...2_000, using: &random) * Self.ms
        for node in 0..<Self.nodeCount {
            nodes.append(Node(driver: Self.makeDriver(config, node: node)))
            queue.schedule(.raftConnect(node: node, incarnation: 0), at: now + UInt64.random(in: 0...5, using: &random) * Self.ms)
        }
        for index in 1...Self.clientCount {
            clients.append(SimulatedKVClient(index: index, clientID: UInt64.random(in: 1...UInt64.max, using: &random),
                                             operations: Self.operationsPerClient, target: Int.random(in: 0..<Self.nodeCount, using: &random)))
            queue.schedule(.clientWake(client: index, token: 0), at: now + UInt64.random(in: 5...20, using: &random) * Self.ms)
        }
        queue.schedule(.commit, at: now + Self.ms)
        queue.schedule(.fault, at: now + 20 * Self.ms)
    }

    private static func makeDriver(_ base: KVDriverConfig, node: Int) -> KVDriver {
        var config = base
        config.nodeID = UInt64(node + 1)
        return KVDriver(config: config)
    }

    private var time: KVTime { KVTime(monotonicNanos: now, wallClockMillis: 1_700_000_000_000 + now / Self.ms) }

    private func note(_ line: @escaping @autoclosure () -> String) {
        recent.append((now, line))
        if recent.count > 400 { recent.removeFirst(200) }
    }

    private func fail(_ problem: String) {
        if violation == nil { violation = "at \(now / 1000)µs: \(problem)" }
    }

    // MARK: Running

    /// Runs the seed; returns the first violation found, or nil.
    func run() -> String? {
        let end = faultsUntil + 30_000 * Self.ms
        while violation == nil, now < end, !(clients.allSatisfy(\.isDone)), let (time, event) = queue.pop() {
            now = time
            steps += 1
            handle(event)
        }
        if violation == nil, !clients.allSatisfy(\.isDone) {
            let views = nodes.enumerated().map { "kvd\($0.offset + 1): \($0.element.driver.leadership), attached \($0.element.driver.raftAttached)" }
            fail("clients not done 30 s after the faults stopped: \(clients.filter { !$0.isDone }.map { "client \($0.index) seq \($0.seq)" }); cluster term \(cluster.term) leader \(cluster.leader.map { String($0 + 1) } ?? "none"); \(views)")
        }
        // Let every deadline in the drivers pass: afterwards nothing may wait.
        let quiet = now + 2 * config.requestTimeout.wholeNanoseconds
        while violation == nil, let (time, event) = queue.pop(), time <= quiet {
            now = time
            handle(event)
        }
        return violation ?? finalChecks()
    }

    private func finalChecks() -> String? {
        for (index, node) in nodes.enumerated() {
            if node.driver.pendingRequests != 0 { return "kvd \(index + 1) still holds \(node.driver.pendingRequests) requests" }
            let applied = Int(node.driver.machine.appliedIndex)
            guard applied < cluster.history.count else { return "kvd \(index + 1) applied \(applied), beyond the commit index" }
            if node.driver.machine.snapshot() != cluster.history[applied].snapshot() {
                return "kvd \(index + 1)'s state at \(applied) differs from the log's"
            }
        }
        let history = clients.flatMap(\.history)
        let result = LinearizabilityChecker.check(history, timeout: .seconds(20))
        if !result.isLinearizable { return "history not linearizable: \(result)" }
        let final = cluster.history.last!
        for key in SimulatedKVClient.appendKeys {
            var appends: [Int: [AppendAttempt]] = [:]
            for client in clients { appends[client.index] = client.appends[key] ?? [] }
            let check = LinearizabilityChecker.checkAppendsExactlyOnce(finalValue: final.get(key) ?? [], appends: appends)
            if check != .ok { return "key \(String(decoding: key, as: UTF8.self)): \(check)" }
        }
        return nil
    }

    private func handle(_ event: Event) {
        switch event {
        case let .toKvd(node, link, message):
            guard nodes[node].linkUp, nodes[node].link == link else { return }
            note("raftd\(node + 1) → kvd: \(Self.brief(message))")
            step(node) { $0.raftMessage(message, at: $1) }
        case let .toRaft(node, link, message):
            guard nodes[node].linkUp, nodes[node].link == link else { return }
            note("kvd\(node + 1) → raftd: \(Self.brief(message))")
            raftd(node, receives: message)
        case let .request(node, incarnation, client, request):
            guard nodes[node].incarnation == incarnation else { return }  // the connection died with that kvd
            note("client \(client) → kvd\(node + 1): \(request.op) seq \(request.seq) rid \(request.requestID)")
            step(node) { $0.clientRequest(client: UInt64(client), request, at: $1) }
        case let .reply(client, response):
            clientReceives(client, response)
        case let .timer(node, incarnation, at):
            guard nodes[node].incarnation == incarnation, nodes[node].timerAt == at else { return }
            nodes[node].timerAt = nil
            step(node) { $0.tick(at: $1) }
        case let .passEnd(node, incarnation):
            guard nodes[node].incarnation == incarnation else { return }
            step(node) { $0.passEnded(at: $1) }
        case let .raftConnect(node, incarnation):
            guard nodes[node].incarnation == incarnation, !nodes[node].linkUp else { return }
            nodes[node].linkUp = true
            nodes[node].link += 1
            nodes[node].attached = false
            nodes[node].snapshotIn = []
            note("kvd\(node + 1) connects to raftd")
            step(node) { $0.raftConnected(at: $1) }
        case let .announce(node, link):
            guard nodes[node].linkUp, nodes[node].link == link else { return }
            tellLeadership(node)
        case let .raftWritable(node, link):
            guard nodes[node].linkUp, nodes[node].link == link else { return }
            let room = roomOnLink()
            step(node) { $0.raftWritable(room: room, at: $1) }
        case let .encodingStarted(node, incarnation, id, index, size):
            guard nodes[node].incarnation == incarnation else { return }
            let room = nodes[node].linkUp ? roomOnLink() : 0
            step(node) { $0.snapshotEncodingStarted(id: id, index: index, size: size, raftRoom: room, at: $1) }
        case let .encodingPart(node, incarnation, id, part):
            guard nodes[node].incarnation == incarnation else { return }
            let room = nodes[node].linkUp ? roomOnLink() : 0
            step(node) { $0.snapshotPartEncoded(id: id, part: part, raftRoom: room, at: $1) }
        case let .encodingFinished(node, incarnation, id):
            guard nodes[node].incarnation == incarnation else { return }
            let room = nodes[node].linkUp ? roomOnLink() : 0
            step(node) { $0.snapshotEncodingFinished(id: id, keys: 0, sessions: 0, duration: .zero, raftRoom: room, at: $1) }
        case let .clientWake(client, token):
            clientWakes(client, token: token)
        case .commit:
            commitSome()
            queue.schedule(.commit, at: now + UInt64.random(in: 500...3_000, using: &random) * 1000)
        case .fault:
            if now < faultsUntil {
                injectFault()
                queue.schedule(.fault, at: now + UInt64.random(in: 10...80, using: &random) * Self.ms)
            } else {
                heal()
            }
        }
    }

    private func roomOnLink() -> Int { Int.random(in: 1...(2 << 20), using: &random) }

    // MARK: kvd

    /// Feeds one input to node `node`'s driver, checks its invariants, executes its actions.
    private func step(_ node: Int, _ input: (inout KVDriver, KVTime) -> [KVDriverAction]) {
        let actions = input(&nodes[node].driver, time)
        if let broken = nodes[node].driver.invariantViolation() { fail("kvd \(node + 1): \(broken)") }
        for action in actions { perform(action, node: node) }
    }

    private func perform(_ action: KVDriverAction, node: Int) {
        let incarnation = nodes[node].incarnation
        switch action {
        case let .reply(client, response, _):
            queue.schedule(.reply(client: Int(client), response), at: now + UInt64.random(in: 50...2_000, using: &random) * 1000)
        case let .sendToRaft(message):
            guard nodes[node].linkUp else { return fail("kvd \(node + 1) sent to raftd without a link") }
            let at = max(nodes[node].lastToRaft, now + UInt64.random(in: 20...500, using: &random) * 1000)
            nodes[node].lastToRaft = at
            queue.schedule(.toRaft(node: node, link: nodes[node].link, message), at: at)
            if case .snapshot = message { queue.schedule(.raftWritable(node: node, link: nodes[node].link), at: at + Self.ms) }
        case .resetRaftLink:
            note("kvd\(node + 1) resets its raftd link")
            linkDown(node, tellDriver: false)
        case .schedulePassEnd:
            queue.schedule(.passEnd(node: node, incarnation: incarnation), at: now)
        case let .armTimer(at):
            nodes[node].timerAt = at
            queue.schedule(.timer(node: node, incarnation: incarnation, at: at), at: max(at, now))
        case let .encodeSnapshot(id, machine):
            var parts: [[UInt8]] = []
            var size = 0
            machine.encodeSnapshot(size: { size = $0 }, part: { parts.append($0); return true })
            var at = now + UInt64.random(in: 1...5, using: &random) * Self.ms
            queue.schedule(.encodingStarted(node: node, incarnation: incarnation, id: id, index: machine.appliedIndex, size: size), at: at)
            for part in parts {
                at += UInt64.random(in: 0...2, using: &random) * Self.ms
                queue.schedule(.encodingPart(node: node, incarnation: incarnation, id: id, part), at: at)
            }
            queue.schedule(.encodingFinished(node: node, incarnation: incarnation, id: id), at: at + Self.ms)
        case .snapshotPartSent, .cancelSnapshotEncoding, .releaseFreeMemory:
            break
        case let .log(level, message):
            note("kvd\(node + 1) log \(level): \(message)")
        }
    }

    /// The kvd ⇄ raftd link drops; kvd's dialer tries again a little later.
    private func linkDown(_ node: Int, tellDriver: Bool) {
        guard nodes[node].linkUp else { return }
        nodes[node].linkUp = false
        nodes[node].link += 1
        nodes[node].attached = false
        if tellDriver { step(node) { $0.raftDisconnected(reason: "simulated link loss", at: $1) } }
        queue.schedule(.raftConnect(node: node, incarnation: nodes[node].incarnation),
                       at: now + UInt64.random(in: 5...50, using: &random) * Self.ms)
    }

    // MARK: raftd

    private func toKvd(_ node: Int, _ message: RaftToKvd) {
        guard nodes[node].linkUp else { return }
        let at = max(nodes[node].lastToKvd, now + UInt64.random(in: 20...500, using: &random) * 1000)
        nodes[node].lastToKvd = at
        queue.schedule(.toKvd(node: node, link: nodes[node].link, message), at: at)
    }

    private func raftd(_ node: Int, receives message: KvdToRaft) {
        switch message {
        case let .hello(lastApplied):
            nodes[node].attached = true
            nodes[node].streamed = lastApplied
            if let snapshot = cluster.snapshot, lastApplied < snapshot.index { sendSnapshot(to: node, snapshot) }
            tellLeadership(node)
            stream(to: node)
        case let .propose(proposals):
            guard nodes[node].attached else { return fail("proposal before the hello") }
            var results: [ProposeResult] = []
            for proposal in proposals {
                if cluster.leader == node, Int.random(in: 0..<50, using: &random) != 0 {
                    let (index, term) = cluster.append(proposal.data)
                    results.append(ProposeResult(proposalID: proposal.proposalID, accepted: true, index: index, term: term))
                } else if nodes[node].view.isLeader, nodes[node].view.term < cluster.term {
                    // A deposed leader that has not heard yet: appended where the new leader's
                    // entries will go, never committed.
                    nodes[node].staleProposals += 1
                    results.append(ProposeResult(proposalID: proposal.proposalID, accepted: true,
                                                 index: nodes[node].staleBase + nodes[node].staleProposals, term: nodes[node].view.term))
                } else {
                    results.append(ProposeResult(proposalID: proposal.proposalID, accepted: false, leaderID: refusingLeader(node)))
                }
            }
            toKvd(node, .results(results))
        case let .read(ids):
            let outcome: ReadResult.Outcome
            if readsThroughLog {
                outcome = .useLog
            } else if nodes[node].view.isLeader, nodes[node].view.term < cluster.term {
                return  // a deposed leader's heartbeat round never completes: kvd's deadline answers
            } else if cluster.leader == node, Int.random(in: 0..<20, using: &random) != 0 {
                // Everything committed when the read arrived: what a confirmed ReadIndex gives.
                outcome = .ready(index: cluster.commitIndex, term: cluster.term)
            } else {
                outcome = .notLeader(leaderID: refusingLeader(node))
            }
            toKvd(node, .readResults(ids.map { ReadResult(readID: $0, outcome: outcome) }))
        case let .statusQuery(queryID):
            if Int.random(in: 0..<4, using: &random) != 0 {
                toKvd(node, .status(queryID: queryID, NodeStatus(nodeID: UInt64(node + 1), term: cluster.term)))
            }
        case .memberCommand:
            fail("no client sends member commands here")
        case let .snapshot(chunk):
            if chunk.offset == 0 { nodes[node].snapshotIn = [] }
            guard chunk.offset == UInt64(nodes[node].snapshotIn.count) else { return fail("kvd's snapshot chunk at \(chunk.offset) out of order") }
            nodes[node].snapshotIn += chunk.data
            guard nodes[node].snapshotIn.count == Int(chunk.totalSize) else { return }
            let bytes = nodes[node].snapshotIn
            nodes[node].snapshotIn = []
            guard chunk.index < UInt64(cluster.history.count), cluster.history[Int(chunk.index)].snapshot() == bytes else {
                return fail("kvd \(node + 1)'s snapshot at \(chunk.index) is not the state at that index")
            }
            stats["snapshots from kvd", default: 0] += 1
            note("raftd\(node + 1) keeps kvd's snapshot at \(chunk.index)")
            cluster.installSnapshot(index: chunk.index, bytes: bytes)
        case let .snapshotRejected(index, reason, _):
            fail("kvd \(node + 1) refused the snapshot at \(index): \(reason)")
        }
    }

    /// The leader a refusal names: the one raftd knows, or — when this node leads but refuses
    /// anyway, as during a leadership transfer that may still be abandoned — the transferee.
    private func refusingLeader(_ node: Int) -> UInt64 {
        guard let leader = cluster.leader else { return 0 }
        guard leader == node else { return UInt64(leader + 1) }
        return UInt64((node + Int.random(in: 1..<Self.nodeCount, using: &random)) % Self.nodeCount + 1)
    }

    /// The compacted snapshot, in chunks of a few hundred bytes.
    private func sendSnapshot(to node: Int, _ snapshot: (index: UInt64, term: UInt64, bytes: [UInt8])) {
        var offset = 0
        repeat {
            let end = min(snapshot.bytes.count, offset + Int.random(in: 64...512, using: &random))
            toKvd(node, .snapshot(SnapshotChunk(index: snapshot.index, term: snapshot.term, offset: UInt64(offset),
                                                totalSize: UInt64(snapshot.bytes.count), data: Array(snapshot.bytes[offset..<end]))))
            offset = end
        } while offset < snapshot.bytes.count
        nodes[node].streamed = snapshot.index
        stats["snapshots to kvd", default: 0] += 1
    }

    /// Committed entries the node's kvd has not been sent, a few per message.
    private func stream(to node: Int, hearingOfTheNewTerm: Bool = false) {
        guard nodes[node].linkUp, nodes[node].attached else { return }
        // A deposed leader that has not heard of the new term is cut off from its commits too.
        guard hearingOfTheNewTerm || !(nodes[node].view.isLeader && nodes[node].view.term < cluster.term) else { return }
        while nodes[node].streamed < cluster.commitIndex {
            let from = Int(nodes[node].streamed)
            let to = min(cluster.committed.count, from + Int.random(in: 1...4, using: &random))
            toKvd(node, .committed(Array(cluster.committed[from..<to])))
            nodes[node].streamed = UInt64(to)
        }
    }

    private func commitSome() {
        guard cluster.leader != nil, !cluster.tail.isEmpty, Int.random(in: 0..<10, using: &random) != 0 else { return }
        cluster.commit(Int.random(in: 1...cluster.tail.count, using: &random))
        for node in nodes.indices { stream(to: node) }
    }

    /// Every raftd learns of the new term; some tell their kvd late (a deposed leader cut off).
    private func announceLeadership() {
        for node in nodes.indices where nodes[node].attached {
            let delay = Int.random(in: 0..<3, using: &random) == 0 ? UInt64.random(in: 5...40, using: &random) * Self.ms : 0
            queue.schedule(.announce(node: node, link: nodes[node].link), at: now + delay)
        }
    }

    private func tellLeadership(_ node: Int) {
        let view = cluster.leadership(of: node)
        // raftd learns the new term and the entries committed in it from the same message:
        // kvd may get either first (entries first: at the positions of its stale proposals).
        if Bool.random(using: &random) { stream(to: node, hearingOfTheNewTerm: true) }
        if view != nodes[node].view { nodes[node].staleProposals = 0 }
        nodes[node].view = view
        toKvd(node, .leadership(view))
        stream(to: node)
    }

    // MARK: Faults

    private func injectFault() {
        let node = Int.random(in: 0..<Self.nodeCount, using: &random)
        switch Int.random(in: 0..<100, using: &random) {
        case 0..<30:
            let leader: Int? = Int.random(in: 0..<10, using: &random) == 0 ? nil : Int.random(in: 0..<Self.nodeCount, using: &random)
            if let deposed = cluster.leader { nodes[deposed].staleBase = cluster.lastIndex }
            cluster.elect(leader, keeping: Int.random(in: 0...cluster.tail.count, using: &random))
            stats["elections", default: 0] += 1
            let term = cluster.term
            note("term \(term): leader \(leader.map { String($0 + 1) } ?? "none")")
            announceLeadership()
        case 30..<45:
            note("link of kvd\(node + 1) drops")
            linkDown(node, tellDriver: true)
        case 45..<55:
            stats["kvd crashes", default: 0] += 1
            note("kvd\(node + 1) crashes and restarts empty")
            nodes[node].linkUp = false
            nodes[node].link += 1
            nodes[node].attached = false
            nodes[node].incarnation += 1
            nodes[node].timerAt = nil
            nodes[node].driver = Self.makeDriver(config, node: node)
            queue.schedule(.raftConnect(node: node, incarnation: nodes[node].incarnation),
                           at: now + UInt64.random(in: 10...50, using: &random) * Self.ms)
        case 55..<70:
            cluster.compact()
            let through = cluster.snapshot?.index ?? 0
            note("raftds compact through \(through)")
        case 70..<85:
            if nodes[node].attached { toKvd(node, .snapshotRequest(appliedAtLeast: 0)) }
        default:
            break
        }
    }

    /// Faults stop: a leader is chosen if there is none (links come back by themselves).
    private func heal() {
        guard cluster.leader == nil else { return }
        cluster.elect(Int.random(in: 0..<Self.nodeCount, using: &random), keeping: cluster.tail.count)
        let (term, leader) = (cluster.term, cluster.leader! + 1)
        note("healed: term \(term), leader \(leader)")
        announceLeadership()
    }

    // MARK: Clients

    private func clientWakes(_ index: Int, token: UInt64) {
        var client = clients[index - 1]
        defer { clients[index - 1] = client }
        guard client.token == token else { return }
        if client.current == nil {
            guard client.operationsLeft > 0 else { return }
            client.begin(choice: Int.random(in: 0..<100, using: &random), keyChoice: Int.random(in: 0..<6, using: &random),
                         now: now, giveUpAfter: 3_000 * Self.ms)
        } else if client.attempt != 0 {
            // The attempt went unanswered (a kvd that crashed, or froze its answer): try elsewhere.
            client.target = Int.random(in: 0..<Self.nodeCount, using: &random)
        }
        if now >= client.current!.giveUpAt {
            note("client \(index) gives up on seq \(client.seq)")
            client.giveUp()
            stats["gave up", default: 0] += 1
            client.token += 1
            queue.schedule(.clientWake(client: index, token: client.token), at: now + Self.ms)
            return
        }
        let request = client.nextAttempt()
        let node = client.target
        // Arrivals are bunched on 100 µs boundaries, so some share a loop pass.
        let arrival = (now / 100_000 + UInt64.random(in: 1...10, using: &random)) * 100_000
        queue.schedule(.request(node: node, incarnation: nodes[node].incarnation, client: index, request), at: arrival)
        client.token += 1
        queue.schedule(.clientWake(client: index, token: client.token), at: now + 400 * Self.ms)
    }

    private func clientReceives(_ index: Int, _ response: KvResponse) {
        var client = clients[index - 1]
        defer { clients[index - 1] = client }
        guard client.current != nil, response.requestID == client.attempt else { return }
        note("client \(index) ← \(response.status) rid \(response.requestID) \(response.leaderHint)")
        client.token += 1
        var delay = UInt64.random(in: 1...3, using: &random) * Self.ms
        switch response.status {
        case .ok, .noKey:
            client.complete(response, now: now)
            stats["completed", default: 0] += 1
            delay = UInt64.random(in: 0...5, using: &random) * Self.ms
        case .wrongLeader:
            if let hinted = Int(response.leaderHint), (1...Self.nodeCount).contains(hinted) {
                client.target = hinted - 1
            } else {
                client.target = Int.random(in: 0..<Self.nodeCount, using: &random)
            }
        case .timeout, .unavailable:
            client.target = Int.random(in: 0..<Self.nodeCount, using: &random)
            delay = UInt64.random(in: 2...10, using: &random) * Self.ms
        default:
            fail("client \(index) got \(response.status) for seq \(client.seq): \(response.message)")
        }
        client.attempt = 0
        queue.schedule(.clientWake(client: index, token: client.token), at: now + delay)
    }

    private static func brief(_ message: RaftToKvd) -> String {
        switch message {
        case let .committed(entries): "committed \(entries.first!.index)...\(entries.last!.index)"
        case let .snapshot(chunk): "snapshot \(chunk.index) @\(chunk.offset)/\(chunk.totalSize)"
        default: "\(message)"
        }
    }

    private static func brief(_ message: KvdToRaft) -> String {
        switch message {
        case let .propose(list): "propose \(list.map(\.proposalID))"
        case let .snapshot(chunk): "snapshot \(chunk.index) @\(chunk.offset)/\(chunk.totalSize)"
        default: "\(message)"
        }
    }
}
