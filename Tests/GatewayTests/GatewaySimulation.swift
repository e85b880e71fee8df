@testable import Gateway
import Wire

/// Drives the pure `GatewayCore` through a seeded world: many clients on few connections, a
/// fake kvd per node behind a FIFO link each, and faults (crash and restart, freeze and thaw,
/// slow answers, leader changes learnt late by followers, client connections closing).
/// After every step it checks the core's promises; the first broken one ends the run and is
/// reported with the seed and the last events.
final class GatewaySimulation {
    enum Event {
        case coreTimer(at: UInt64)
        case toNode(node: UInt64, epoch: Int, request: KvRequest)
        case toGateway(node: UInt64, epoch: Int, response: KvResponse)
        case nodeLearns(node: UInt64, term: UInt64, leader: UInt64)
        case election
        case clientStarts(client: Int)
        case clientImpatient(client: Int, requestID: UInt64)
        case clientRetries(client: Int)
        case fault
        case restart(node: UInt64)
        case thaw(node: UInt64)
        case steady(node: UInt64)
        case heal
        case statusProbe
    }

    let seed: UInt64
    private var random: GatewayRandom
    private var clientRandom: UInt64
    private var core: GatewayCore
    private var cluster: FakeKvdCluster
    private var events = DeadlineHeap<Event>()
    private(set) var now: UInt64 = 1_000_000_000
    private var armedAt: UInt64?
    private var clients: [SimulatedClient] = []
    /// Connection slot → its current connection id (a closed one is replaced by a new id).
    private var connectionIDs: [UInt64]
    private var nextConnectionID: UInt64
    private var nextRequestID: UInt64 = 1
    /// Accepted requests by (connection, request id): when their answer is due at the latest.
    private var owed: [Pair: UInt64] = [:]
    /// (connection, request id) → (client_id, seq) every copy of a write must carry.
    private var writeIdentity: [Pair: Pair] = [:]
    private var statusOwed: [Pair: UInt64] = [:]
    /// Elements acknowledged OK or SESSION_EXPIRED (applied): they must be in the store.
    private var acknowledged: [[UInt8]] = []
    /// Per link (node, direction): when its last frame arrives.
    private var lastLinkDelivery: [Int: UInt64] = [:]
    private(set) var steps = 0
    private var healed = false
    private var completedAtHeal: [Int] = []
    let faultPhase: UInt64 = 4_000_000_000
    let healPhase: UInt64 = 3_000_000_000
    var violation: String?

    struct Pair: Hashable {
        let a: UInt64
        let b: UInt64
    }

    init(seed: UInt64) {
        self.seed = seed
        random = GatewayRandom(seed: seed)
        clientRandom = seed
        let nodeIDs: [UInt64] = [1, 2, 3]
        var config = GatewayCoreConfig(nodeIDs: nodeIDs, maxKeyBytes: 1024, maxValueBytes: 1024, seed: seed &+ 1)
        config.requestDeadline = 2_000_000_000
        config.attemptTimeout = 1_000_000_000
        core = GatewayCore(config: config)
        cluster = FakeKvdCluster(nodeIDs: nodeIDs)
        let connectionCount = 2 + Int(seed % 3)
        connectionIDs = (1...UInt64(connectionCount)).map { $0 }
        nextConnectionID = UInt64(connectionCount) + 1
        for index in 0..<(8 + Int(seed % 5)) {
            let owned = index % 3 != 0
            clients.append(SimulatedClient(index: index, clientID: owned ? UInt64(1000 + index) : 0,
                                           impatienceNs: owned && index % 2 == 0 ? 300_000_000 : 0,
                                           connection: index % connectionCount))
        }
    }

    // MARK: Running

    /// Runs the fault phase, then the heal phase; returns the first violation, or nil.
    func run() -> String? {
        for node in cluster.nodeIDs where random.next() % 4 != 0 {  // some kvds come up late
            apply(core.upstreamConnected(node: node, now: now))
        }
        for node in cluster.nodeIDs where !isConnected(node) {
            cluster.nodes[node]!.up = false
            schedule(after: ms(50 + random.next() % 400), .restart(node: node))
        }
        for node in cluster.nodeIDs where isConnected(node) { learnLater(node) }
        for client in clients.indices { schedule(after: ms(random.next() % 20), .clientStarts(client: client)) }
        schedule(after: ms(100), .fault)
        schedule(after: ms(250), .statusProbe)
        schedule(after: faultPhase, .heal)
        let end = now + faultPhase + healPhase
        while violation == nil, let next = events.earliest, next <= end {
            now = next
            guard let event = events.popDue(now: now) else { break }
            steps += 1
            handle(event)
            if violation == nil { check() }
        }
        if violation == nil { checkEnd() }
        if violation != nil {
            let core = describeCore()
            note("core: \(core)")
        }
        return violation
    }

    private func handle(_ event: Event) {
        switch event {
        case let .coreTimer(at):
            guard at == armedAt else { return }
            armedAt = nil
            apply(core.tick(now: now))
        case let .toNode(node, epoch, request):
            deliverToNode(node, epoch: epoch, request)
        case let .toGateway(node, epoch, response):
            guard cluster.nodes[node]!.epoch == epoch, cluster.nodes[node]!.up else { return }
            apply(core.upstreamResponse(node: node, response, now: now))
        case let .nodeLearns(node, term, leader):
            nodeLearns(node, term: term, leader: leader)
        case .election:
            elect()
        case let .clientStarts(client):
            startOperation(client)
        case let .clientImpatient(client, requestID):
            resendIfStillWaiting(client, requestID)
        case let .clientRetries(client):
            retry(client)
        case .fault:
            injectFault()
        case let .restart(node):
            restart(node)
        case let .thaw(node):
            thaw(node)
        case let .steady(node):
            cluster.nodes[node]!.slowNs = 0
        case .heal:
            heal()
        case .statusProbe:
            probeStatus()
        }
    }

    private func schedule(after delay: UInt64, _ event: Event) {
        events.insert(at: now + delay, event)
    }

    private func ms(_ value: UInt64) -> UInt64 { value * 1_000_000 }

    /// The last events, formatted only when a run fails (formatting every step would cost
    /// more than the run).
    private var recent: [(at: UInt64, line: () -> String)] = []
    private var recentHead = 0

    private func note(_ line: @autoclosure @escaping () -> String) {
        if recent.count < 60 { recent.append((now, line)) } else { recent[recentHead] = (now, line) }
        recentHead = (recentHead + 1) % 60
    }

    var transcript: [String] {
        let ordered = recent.count < 60 ? recent : Array(recent[recentHead...] + recent[..<recentHead])
        return ordered.map { "\(Double($0.at) / 1e9)s: \($0.line())" }
    }

    // MARK: The core's actions

    private func apply(_ actions: [GatewayAction]) {
        for action in actions {
            switch action {
            case let .sendUpstream(node, request):
                sendToNode(node, request)
            case let .reply(connection, response):
                clientReceives(connection, response)
            case .closeClient, .addUpstream, .removeUpstream:
                break  // the simulated nodes report no configuration
            case let .suspectChanged(node, suspect):
                note("gateway: node \(node) \(suspect ? "suspect" : "answers again")")
            case let .armTimer(at):
                if at < now { violation = violation ?? "timer armed in the past (\(at) < \(now))" }
                armedAt = at
                events.insert(at: at, .coreTimer(at: at))
            }
        }
    }

    private func sendToNode(_ node: UInt64, _ request: KvRequest) {
        if request.op != .status {
            if core.upstreams[node]?.suspect == true { violation = violation ?? "request sent to suspect node \(node)" }
            if core.upstreams[node]?.connected != true { violation = violation ?? "request sent to disconnected node \(node)" }
            checkIdentity(of: request, sentTo: node)
        }
        let state = cluster.nodes[node]!
        guard state.up else { return }
        deliver(.toNode(node: node, epoch: state.epoch, request: request), link: Int(node) * 2)
    }

    /// Every copy of a write carries the client's (client_id, seq): kvd's session table then
    /// applies it at most once.
    private func checkIdentity(of request: KvRequest, sentTo node: UInt64) {
        guard let key = core.requests.first(where: { $0.value.place == .sent(node: node, upstreamID: request.requestID) })?.value else {
            violation = violation ?? "request \(request.requestID) sent to node \(node) but not recorded as sent there"
            return
        }
        guard request.op != .get else { return }  // a lent-session read may move to a fresh session
        let origin = Pair(a: key.client, b: key.clientRequestID)
        let identity = Pair(a: request.clientID, b: request.seq)
        if let first = writeIdentity[origin], first != identity {
            violation = violation ?? "a write went out as (client_id \(identity.a), seq \(identity.b)) after (\(first.a), \(first.b))"
        }
        writeIdentity[origin] = identity
    }

    /// FIFO per link, like TCP: a frame never overtakes an earlier one.
    private func deliver(_ event: Event, link: Int, extra: UInt64 = 0) {
        let at = max(lastLinkDelivery[link] ?? 0, now + 50_000 + random.next() % 1_000_000 + extra)
        lastLinkDelivery[link] = at
        events.insert(at: at, event)
    }

    private func deliverToNode(_ node: UInt64, epoch: Int, _ request: KvRequest) {
        guard cluster.nodes[node]!.epoch == epoch, cluster.nodes[node]!.up else { return }
        if cluster.nodes[node]!.frozen { return cluster.nodes[node]!.held.append(request) }
        let response = cluster.answer(request, at: node, random: &random)
        if let problem = cluster.violation { violation = violation ?? problem }
        deliver(.toGateway(node: node, epoch: epoch, response: response), link: Int(node) * 2 + 1, extra: cluster.nodes[node]!.slowNs)
    }

    // MARK: Clients

    private func startOperation(_ index: Int) {
        let operation = clients[index].startOperation(random: &clientRandom)
        note("client \(index) starts \(operation.op) \(String(decoding: operation.element, as: UTF8.self))")
        send(index)
    }

    private func send(_ index: Int) {
        let id = nextRequestID
        nextRequestID += 1
        let connection = connectionIDs[clients[index].connection]
        clients[index].outstanding.insert(id)
        clients[index].lastSentAt = now
        owed[Pair(a: connection, b: id)] = now + core.config.requestDeadline
        apply(core.clientRequest(client: connection, clients[index].request(id: id), now: now))
        if clients[index].impatienceNs > 0 { schedule(after: clients[index].impatienceNs, .clientImpatient(client: index, requestID: id)) }
    }

    /// A client whose own attempt timeout is shorter than the gateway's sends the same
    /// operation again (same seq); the first request is still owed an answer.
    private func resendIfStillWaiting(_ index: Int, _ requestID: UInt64) {
        guard clients[index].outstanding.contains(requestID), clients[index].outstanding.count < 4 else { return }
        send(index)
    }

    private func clientReceives(_ connection: UInt64, _ response: KvResponse) {
        let key = Pair(a: connection, b: response.requestID)
        if statusOwed.removeValue(forKey: key) != nil {
            if response.nodes.count != cluster.nodeIDs.count { violation = violation ?? "status answer lists \(response.nodes.count) nodes" }
            return
        }
        guard let due = owed.removeValue(forKey: key) else {
            violation = violation ?? "reply to connection \(connection) for request \(response.requestID) that nobody asked or that was answered already"
            return
        }
        if now > due { violation = violation ?? "request \(response.requestID) answered at \(now), after its deadline \(due)" }
        guard let index = clients.firstIndex(where: { connectionIDs[$0.connection] == connection && $0.outstanding.contains(response.requestID) })
        else { return }  // a resent operation's other copy already settled it
        settle(index, response)
    }

    private func settle(_ index: Int, _ response: KvResponse) {
        var client = clients[index]
        let operation = client.operation!
        note("client \(index) gets \(response.status) for \(operation.op)")
        switch response.status {
        case .ok, .noKey:
            if operation.op == .append { acknowledged.append(operation.element) }
        case .sessionExpired:
            if client.clientID == 0 && operation.op == .get {
                violation = violation ?? "a read under a lent session was answered SESSION_EXPIRED (it should run again)"
            }
            if operation.op == .append { acknowledged.append(operation.element) }
        case .unavailable, .timeout:
            if client.clientID != 0 {  // own session: retry the same seq shortly
                client.outstanding.removeAll()
                clients[index] = client
                return schedule(after: ms(5), .clientRetries(client: index))
            }
        default:
            violation = violation ?? "client got \(response.status) (\(response.message)) for \(operation.op)"
        }
        client.outstanding.removeAll()
        client.operation = nil
        client.completed += 1
        clients[index] = client
        schedule(after: ms(30 + random.next() % 150), .clientStarts(client: index))
    }

    private func retry(_ index: Int) {
        guard clients[index].operation != nil, clients[index].outstanding.isEmpty else { return }
        send(index)
    }

    /// The client's connection closes: its requests are owed nothing; its clients reconnect
    /// and go on (an own-session client resends with the same seq).
    private func closeConnection(slot: Int) {
        let old = connectionIDs[slot]
        note("client connection \(old) closes")
        owed = owed.filter { $0.key.a != old }
        statusOwed = statusOwed.filter { $0.key.a != old }
        apply(core.clientClosed(client: old, now: now))
        connectionIDs[slot] = nextConnectionID
        nextConnectionID += 1
        for index in clients.indices where clients[index].connection == slot && clients[index].operation != nil {
            clients[index].outstanding.removeAll()
            if clients[index].clientID == 0 {  // outcome unknown: move on
                clients[index].operation = nil
                schedule(after: ms(1), .clientStarts(client: index))
            } else {
                send(index)
            }
        }
    }

    private func probeStatus() {
        let connection = connectionIDs[0]
        let id = nextRequestID
        nextRequestID += 1
        statusOwed[Pair(a: connection, b: id)] = now + core.config.statusTimeout
        apply(core.clientRequest(client: connection, KvRequest(requestID: id, op: .status), now: now))
        schedule(after: ms(300 + random.next() % 700), .statusProbe)
    }

    // MARK: Faults

    private func injectFault() {
        defer { if !healed { schedule(after: ms(100 + random.next() % 500), .fault) } }
        let node = cluster.nodeIDs[Int(random.next() % UInt64(cluster.nodeIDs.count))]
        let isLeader = node == cluster.leader
        switch random.next() % 7 {
        case 0:
            guard cluster.nodes[node]!.up else { return }
            note("node \(node) crashes\(isLeader ? " (leader)" : "")")
            cluster.nodes[node]!.up = false
            cluster.nodes[node]!.epoch += 1
            cluster.nodes[node]!.held = []
            cluster.nodes[node]!.frozen = false
            apply(core.upstreamDisconnected(node: node, now: now))
            if isLeader { startElection() }
            schedule(after: ms(100 + random.next() % 900), .restart(node: node))
        case 1:
            guard cluster.nodes[node]!.up, !cluster.nodes[node]!.frozen else { return }
            note("node \(node) freezes\(isLeader ? " (leader)" : "")")
            cluster.nodes[node]!.frozen = true
            if isLeader { startElection() }
            schedule(after: ms(300 + random.next() % 1700), .thaw(node: node))
        case 2:
            note("node \(node) answers slowly")
            cluster.nodes[node]!.slowNs = ms(50 + random.next() % 500)
            schedule(after: ms(200 + random.next() % 1000), .steady(node: node))
        case 3, 4:
            let others = cluster.nodeIDs.filter { $0 != cluster.leader && canLead($0) }
            guard cluster.leader != 0, !others.isEmpty else { return }
            let next = others[Int(random.next() % UInt64(others.count))]
            let from = cluster.leader
            note("leadership moves from \(from) to \(next)")
            makeLeader(next)
        case 5:
            closeConnection(slot: Int(random.next() % UInt64(connectionIDs.count)))
        default:
            break
        }
    }

    private func canLead(_ node: UInt64) -> Bool { cluster.nodes[node]!.up && !cluster.nodes[node]!.frozen }

    private func startElection() {
        cluster.leader = 0
        schedule(after: ms(150 + random.next() % 250), .election)
    }

    private func elect() {
        guard cluster.leader == 0 else { return }
        let candidates = cluster.nodeIDs.filter(canLead)
        guard !candidates.isEmpty else { return schedule(after: ms(100), .election) }
        makeLeader(candidates[Int(random.next() % UInt64(candidates.count))])
    }

    /// A new term with a new leader; every node hears of it after its own delay.
    private func makeLeader(_ node: UInt64) {
        cluster.term += 1
        cluster.leader = node
        let term = cluster.term
        note("node \(node) leads term \(term)")
        for id in cluster.nodeIDs {
            let lag = id == node ? ms(random.next() % 5) : ms(random.next() % 300)
            schedule(after: lag, .nodeLearns(node: id, term: cluster.term, leader: node))
        }
    }

    private func learnLater(_ node: UInt64) {
        guard cluster.leader != 0 else { return }
        schedule(after: ms(20 + random.next() % 200), .nodeLearns(node: node, term: cluster.term, leader: cluster.leader))
    }

    private func nodeLearns(_ node: UInt64, term: UInt64, leader: UInt64) {
        let state = cluster.nodes[node]!
        guard state.up else { return }
        if state.frozen { return schedule(after: ms(50), .nodeLearns(node: node, term: term, leader: leader)) }
        guard term >= state.knownTerm else { return }
        cluster.nodes[node]!.knownTerm = term
        cluster.nodes[node]!.knownLeader = leader
        if state.watchID != 0 {
            deliver(.toGateway(node: node, epoch: state.epoch, response: KvResponse(requestID: state.watchID, status: .ok,
                                                                                     leaderHint: String(leader), leaderTerm: term)),
                    link: Int(node) * 2 + 1, extra: state.slowNs)
        }
    }

    private func restart(_ node: UInt64) {
        guard !cluster.nodes[node]!.up else { return }
        note("node \(node) restarts")
        cluster.nodes[node]!.up = true
        cluster.nodes[node]!.epoch += 1
        cluster.nodes[node]!.knownLeader = 0
        cluster.nodes[node]!.watchID = 0
        apply(core.upstreamConnected(node: node, now: now))
        if cluster.leader == 0 { schedule(after: ms(100), .election) } else { learnLater(node) }
    }

    private func thaw(_ node: UInt64) {
        guard cluster.nodes[node]!.frozen else { return }
        note("node \(node) thaws")
        cluster.nodes[node]!.frozen = false
        let held = cluster.nodes[node]!.held
        cluster.nodes[node]!.held = []
        for request in held { deliverToNode(node, epoch: cluster.nodes[node]!.epoch, request) }
        learnLater(node)
    }

    /// Every fault ends: all nodes up, thawed, fast, one leader everyone knows of.
    private func heal() {
        healed = true
        note("heal")
        for node in cluster.nodeIDs {
            cluster.nodes[node]!.slowNs = 0
            if !cluster.nodes[node]!.up { restart(node) }
            if cluster.nodes[node]!.frozen { thaw(node) }
        }
        if cluster.leader == 0 { elect() } else { for node in cluster.nodeIDs { learnLater(node) } }
        completedAtHeal = clients.map(\.completed)
    }

    private func describeCore() -> String {
        let nodes = cluster.nodeIDs.map { id in
            let state = core.upstreams[id]!
            let node = cluster.nodes[id]!
            return "node \(id): connected \(state.connected) suspect \(state.suspect)@\(state.suspectAtTerm) owed \(state.owed.count) "
                + "waitingSince \(state.waitingSince.map { String($0) } ?? "-") | up \(node.up) frozen \(node.frozen) knows (\(node.knownTerm), \(node.knownLeader))"
        }
        let requests = core.requests.values.map { "\($0.request.op) \($0.place) attempts \($0.attempts) deadline \($0.deadline)" }
        return "leader (\(core.leader.term), \(core.leader.nodeID)); cluster (\(cluster.term), \(cluster.leader)); "
            + nodes.joined(separator: "; ") + "; requests: " + requests.joined(separator: ", ")
    }

    private func isConnected(_ node: UInt64) -> Bool { core.upstreams[node]?.connected == true }

    // MARK: Checks

    private func check() {
        if let problem = core.invariantViolation(now: now) { violation = violation ?? problem }
        for (key, due) in owed where due < now {
            violation = violation ?? "request \(key.b) on connection \(key.a) not answered by its deadline \(due)"
            break
        }
        for (key, due) in statusOwed where due < now {
            violation = violation ?? "status query \(key.b) not answered by \(due)"
            break
        }
    }

    /// After the heal phase: every client made progress, and every acknowledged append is in
    /// the store exactly once.
    private func checkEnd() {
        for (index, client) in clients.enumerated() where client.completed < completedAtHeal[index] + 3 {
            violation = "client \(index) completed only \(client.completed - completedAtHeal[index]) operations in the \(healPhase / 1_000_000_000) s after every fault healed"
            return
        }
        for element in acknowledged where !cluster.applied.contains(element) {
            violation = "acknowledged append \(String(decoding: element, as: UTF8.self)) is not in the store"
            return
        }
    }
}
