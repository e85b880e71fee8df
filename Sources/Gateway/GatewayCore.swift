import ServiceSupport
import Wire

/// The gateway's forwarding logic as a pure, deterministic state machine (the shape of
/// `Sources/Raft`): client requests, upstream events and ticks go in, with the time; actions
/// (frames to send, replies, a timer to arm) come out. It does no I/O and reads no clock;
/// the shell (`Gateway`) executes what it returns, and the simulation test drives it directly.
///
/// Promises, checked by `invariantViolation(now:)` in the simulation after every step:
/// - every accepted request is answered (a reply, or UNAVAILABLE / SESSION_EXPIRED) by its
///   deadline: a deadline entry in the timer heap answers it at the latest then;
/// - a request is never sent to a suspect node, and requests at a node that turns suspect are
///   re-sent elsewhere at once, with the same client_id and seq;
/// - a request waits unsent only while no node is usable, and leaves that wait on the next
///   connect, the next answer from a suspect node, or the next tick — a client's reading is
///   never paused for want of an upstream.
public struct GatewayCore {
    public private(set) var config: GatewayCoreConfig
    private var random: GatewayRandom
    private var sessions: SessionPool
    private(set) var leader = LeaderKnowledge()
    private(set) var upstreams: [UInt64: UpstreamState] = [:]
    private(set) var requests: [UInt64: PendingRequest] = [:]
    /// Keys of requests in `.waiting`, oldest first (entries for answered ones are skipped).
    private(set) var waiting: [UInt64] = []
    private var timers = DeadlineHeap<TimerEntry>()
    private var statusQueries: [UInt64: StatusQuery] = [:]
    /// Nodes forgotten because the leader's configuration no longer named them: a lagging
    /// node's status that still lists one does not bring it back; only a leader's does.
    private(set) var departed: Set<UInt64> = []
    private var nextKey: UInt64 = 1
    private var nextUpstreamID: UInt64 = 1
    private var roundRobin = 0
    private var nextHealthAt: UInt64?
    private var armedAt: UInt64?
    var armedAtForChecks: UInt64? { armedAt }
    private var actions: [GatewayAction] = []
    public private(set) var isStopping = false
    /// Counts for metrics (recorded only when `stats.isEnabled`).
    public var stats = GatewayStats()

    enum TimerEntry {
        case attempt(key: UInt64, upstreamID: UInt64)
        case deadline(key: UInt64)
        case retry(key: UInt64, token: UInt64)
        case status(query: UInt64)
    }

    public init(config: GatewayCoreConfig) {
        precondition(!config.nodeIDs.isEmpty && !config.nodeIDs.contains(0), "node ids must be nonzero, at least one")
        precondition(config.suspectAfter > config.healthInterval, "a node must miss more than one health check to be suspect")
        self.config = config
        random = GatewayRandom(seed: config.seed)
        sessions = SessionPool(maxIdle: config.maxIdleSessions)
        for id in config.nodeIDs { upstreams[id] = UpstreamState() }
    }

    /// Whether a leader is known (and not given up on), for the gateway's health.
    public var knowsLeader: Bool { leader.nodeID != 0 }

    /// Each node's kvd link: connected and not suspect.
    public func upstreamIsUp(_ node: UInt64) -> Bool { upstreams[node]?.isUsable ?? false }

    /// Hands the answers recorded for metrics over (see `GatewayStats`).
    public mutating func drainStats(into buffer: inout [GatewayStats.Answer]) { stats.drainAnswers(into: &buffer) }

    /// Requests accepted and not answered yet.
    public var inFlight: Int { requests.count }

    /// (A scan: only a draining gateway asks.)
    public func hasRequests(of client: UInt64) -> Bool { requests.values.contains { $0.client == client } }

    // MARK: Inputs

    public mutating func clientRequest(client: UInt64, _ request: KvRequest, now: UInt64) -> [GatewayAction] {
        accept(client: client, request, now: now)
        return finishInput(now: now)
    }

    /// The client is gone: its requests need no answer (a lent session whose write may still
    /// apply is dropped with it).
    public mutating func clientClosed(client: UInt64, now: UInt64) -> [GatewayAction] {
        // A scan over every request: closes are rare next to requests, and an index per client
        // would cost every request two set updates.
        for key in requests.keys.sorted() where requests[key]!.client == client {
            abandonAttempt(requests.removeValue(forKey: key)!)
        }
        statusQueries = statusQueries.filter { $0.value.client != client }
        return finishInput(now: now)
    }

    public mutating func upstreamConnected(node: UInt64, now: UInt64) -> [GatewayAction] {
        guard upstreams[node] != nil else { return finishInput(now: now) }
        upstreams[node] = UpstreamState(connected: true, lastHeard: now)
        // The subscription's first answer doubles as the first health check.
        let id = takeUpstreamID()
        upstreams[node]!.watchID = id
        upstreams[node]!.sent(id, .watch, now: now)
        actions.append(.sendUpstream(node: node, request: KvRequest(requestID: id, op: .status, watchLeadership: true)))
        if nextHealthAt == nil { nextHealthAt = now + config.healthInterval }
        return finishInput(now: now)
    }

    /// The connection ended (or a dial failed): what waited there goes elsewhere.
    public mutating func upstreamDisconnected(node: UInt64, now: UInt64) -> [GatewayAction] {
        guard let state = upstreams[node], state.connected else { return finishInput(now: now) }
        upstreams[node] = UpstreamState()
        leader.giveUp(on: node)
        redistribute(state.owed, from: node, now: now, reason: "connection lost")
        return finishInput(now: now)
    }

    public mutating func upstreamResponse(node: UInt64, _ response: KvResponse, now: UInt64) -> [GatewayAction] {
        guard upstreams[node]?.connected == true else { return finishInput(now: now) }
        // In place: a copy of the state taken out and written back made every answer copy the
        // whole table of what the node owes.
        let owed = upstreams[node]!.heard(response.requestID, now: now)
        let wasSuspect = upstreams[node]!.suspect
        upstreams[node]!.suspect = false
        if wasSuspect { actions.append(.suspectChanged(node: node, suspect: false)) }
        if response.requestID == upstreams[node]!.watchID {
            learn(fromStatusOrPush: response, node: node, now: now)
        } else if let owed {
            handle(response, answering: owed, from: node, now: now)
        }
        if wasSuspect { retryBackedOffNow(now: now) }
        return finishInput(now: now)
    }

    /// Time passes: timers due, health checks, silent nodes turned suspect.
    public mutating func tick(now: UInt64) -> [GatewayAction] {
        if let due = armedAt, now > due + config.stallTolerance { discountOwnStall(of: now - due, now: now) }
        armedAt = nil
        // Suspicion first: a timer firing now (an attempt's, a backoff's) must not dispatch to a
        // node this very tick finds silent.
        markSilentNodesSuspect(now: now)
        while let entry = timers.popDue(now: now) { fire(entry, now: now) }
        if let due = nextHealthAt, due <= now { healthRound(now: now) }
        drainWaiting(now: now)
        return finishInput(now: now)
    }

    /// Graceful stop: new requests are refused; clients are closed as their last answer goes.
    public mutating func stop(now: UInt64) -> [GatewayAction] {
        isStopping = true
        return finishInput(now: now)
    }

    // MARK: Client requests

    private mutating func accept(client: UInt64, _ request: KvRequest, now: UInt64) {
        if request.op == .status { return startStatusQuery(client: client, request, now: now) }
        if let problem = RequestValidation.problem(with: request, maxKeyBytes: config.maxKeyBytes, maxValueBytes: config.maxValueBytes) {
            stats.answered(request.op, .badRequest, startedAt: now)
            return reply(client, KvResponse(requestID: request.requestID, status: .badRequest, message: problem))
        }
        guard !isStopping else {
            stats.answered(request.op, .unavailable, startedAt: now)
            return reply(client, KvResponse(requestID: request.requestID, status: .unavailable, message: "gateway shutting down; use another"))
        }
        guard requests.count < config.maxInFlight else {
            stats.answered(request.op, .unavailable, startedAt: now)
            return reply(client, KvResponse(requestID: request.requestID, status: .unavailable, message: "gateway overloaded; retry later"))
        }
        let key = nextKey
        nextKey += 1
        var pending = PendingRequest(client: client, clientRequestID: request.requestID, request: request,
                                     deadline: now + config.requestDeadline)
        if request.clientID == 0, request.op != .member {
            let session = sessions.borrow(&random)
            pending.lentSession = session
            pending.request.clientID = session.clientID
            pending.request.seq = session.nextSeq
        }
        requests[key] = pending
        dispatch(key, now: now)
    }

    /// Sends the request to the best usable node, or parks it until one is usable. Each place a
    /// request can be in has a timer entry no later than its deadline (an attempt's, a
    /// backoff's, or for a parked one the deadline itself), and each of those entries leads
    /// back here, where a request past its deadline is answered.
    private mutating func dispatch(_ key: UInt64, now: UInt64) {
        guard var pending = requests[key] else { return }
        guard now < pending.deadline else { return expire(key) }
        guard let node = pickNode(avoiding: pending.lastNode) else {
            pending.place = .waiting
            requests[key] = pending
            waiting.append(key)
            timers.insert(at: pending.deadline, .deadline(key: key))
            // Keys of requests answered while waiting stay until the next drain; a long outage
            // must not let them pile up.
            if waiting.count > 2 * requests.count + 64 { waiting.removeAll { requests[$0]?.place != .waiting } }
            return
        }
        let upstreamID = takeUpstreamID()
        pending.place = .sent(node: node, upstreamID: upstreamID)
        pending.attempts += 1
        pending.lastNode = node
        requests[key] = pending
        upstreams[node]!.sent(upstreamID, .request(key: key), now: now)
        var copy = pending.request
        copy.requestID = upstreamID
        actions.append(.sendUpstream(node: node, request: copy))
        timers.insert(at: min(pending.deadline, now + config.attemptTimeout), .attempt(key: key, upstreamID: upstreamID))
    }

    /// The known leader if usable; otherwise the next usable node in turn, another than
    /// `avoided` (the one that just failed this request) if there is one.
    private mutating func pickNode(avoiding avoided: UInt64) -> UInt64? {
        if leader.nodeID != 0, upstreams[leader.nodeID]?.isUsable == true { return leader.nodeID }
        var fallback: UInt64?
        for _ in 0..<config.nodeIDs.count {
            roundRobin = (roundRobin + 1) % config.nodeIDs.count
            let node = config.nodeIDs[roundRobin]
            guard upstreams[node]!.isUsable else { continue }
            if node != avoided { return node }
            fallback = node
        }
        return fallback
    }

    /// Tries again after a pause growing with the attempts made (no node can usefully take it
    /// now: no leader known, or the hinted one unreachable).
    private mutating func retryLater(_ key: UInt64, now: UInt64) {
        guard var pending = requests[key] else { return }
        let doublings = UInt64(min(max(pending.attempts, 1) - 1, 16))
        let pause = min(config.retryBackoffMax, config.retryBackoffMin << doublings)
        let token = takeUpstreamID()
        pending.place = .backingOff(retryToken: token)
        requests[key] = pending
        timers.insert(at: min(pending.deadline, now + pause), .retry(key: key, token: token))
    }

    /// A suspect node answered again: requests pausing between tries (they were bounced
    /// off followers naming it) go now rather than at the end of their backoff.
    private mutating func retryBackedOffNow(now: UInt64) {
        let pausing = requests.filter { if case .backingOff = $0.value.place { true } else { false } }.keys.sorted()
        for key in pausing { dispatch(key, now: now) }
    }

    private mutating func drainWaiting(now: UInt64) {
        guard !waiting.isEmpty, upstreams.values.contains(where: { $0.isUsable }) else { return }
        let keys = waiting
        waiting.removeAll()
        for key in keys where requests[key]?.place == .waiting { dispatch(key, now: now) }
    }

    /// Forgets the request's attempt at its node (a late answer to it is then ignored: the
    /// copy sent elsewhere gets the same reply through kvd's session table).
    private mutating func abandonAttempt(_ pending: PendingRequest) {
        guard case let .sent(node, upstreamID) = pending.place, upstreams[node]?.connected == true else { return }
        _ = upstreams[node]!.owed.removeValue(forKey: upstreamID)
        if upstreams[node]!.owed.isEmpty { upstreams[node]!.waitingSince = nil }
    }

    private mutating func answer(_ key: UInt64, _ response: KvResponse) {
        guard let pending = requests.removeValue(forKey: key) else { return }
        abandonAttempt(pending)
        if var session = pending.lentSession, response.status == .ok || response.status == .noKey {
            session.nextSeq = pending.request.seq + 1
            sessions.giveBack(session)
        }
        var reply = response
        reply.requestID = pending.clientRequestID
        stats.answered(pending.request.op, reply.status, startedAt: pending.deadline &- config.requestDeadline)
        self.reply(pending.client, reply)
        if isStopping, !hasRequests(of: pending.client) { actions.append(.closeClient(client: pending.client)) }
    }

    private mutating func reply(_ client: UInt64, _ response: KvResponse) {
        actions.append(.reply(client: client, response: response))
    }

    // MARK: Upstream answers

    private mutating func handle(_ response: KvResponse, answering owed: UpstreamState.Owed, from node: UInt64, now: UInt64) {
        switch owed {
        case .health:
            upstreams[node]!.healthSentAt = nil
            learn(fromStatusOrPush: response, node: node, now: now)
        case .watch:
            learn(fromStatusOrPush: response, node: node, now: now)
        case let .status(query):
            record(response.nodes.first ?? NodeStatus(nodeID: node, reachable: true, error: "empty status"), from: node, in: query)
        case let .request(key):
            handle(response, for: key, from: node, now: now)
        }
    }

    private mutating func handle(_ response: KvResponse, for key: UInt64, from node: UInt64, now: UInt64) {
        guard var pending = requests[key] else { return }
        pending.place = .waiting  // not sent anywhere until dispatched again
        requests[key] = pending
        switch response.status {
        case .wrongLeader:
            leader.giveUp(on: node)
            if let hint = UInt64(response.leaderHint), hint != node { learn(term: response.leaderTerm, leader: hint, now: now) }
            if leader.nodeID != 0, leader.nodeID != node, upstreams[leader.nodeID]?.isUsable == true {
                dispatch(key, now: now)
            } else {
                retryLater(key, now: now)
            }
        case .timeout, .unavailable:
            // The node could not serve it in time (cut off from a majority, raftd gone): ask the
            // others (a follower's WRONG_LEADER hint names the new leader).
            leader.giveUp(on: node)
            retryLater(key, now: now)
        case .sessionExpired where pending.lentSession != nil:
            sessionExpired(key, pending, now: now)
        default:
            if response.status == .ok || response.status == .noKey { learn(term: response.leaderTerm, leader: node, now: now) }
            answer(key, response)
        }
    }

    /// kvd says this seq of our lent session was applied before and its reply is gone; it was
    /// not applied again. A Get changes nothing, so it runs again under a fresh session; a
    /// write must never run again under another client_id, so the client hears what happened.
    private mutating func sessionExpired(_ key: UInt64, _ pending: PendingRequest, now: UInt64) {
        guard pending.request.op == .get else {
            return answer(key, KvResponse(status: .sessionExpired, message:
                "the \(pending.request.op) was applied, but its reply was lost (the gateway's session for it expired); " +
                "it was not applied again: read the key to see its effect before repeating it"))
        }
        var fresh = pending
        let session = SessionPool.Session(clientID: random.clientID(), nextSeq: 1)
        fresh.lentSession = session
        fresh.request.clientID = session.clientID
        fresh.request.seq = session.nextSeq
        requests[key] = fresh
        dispatch(key, now: now)
    }

    /// A node's status (health check, subscription answer) or a leadership push.
    private mutating func learn(fromStatusOrPush response: KvResponse, node: UInt64, now: UInt64) {
        if let status = response.nodes.first {
            // The leader of the newest term the gateway knows has the newest configuration.
            let fromLeader = status.role == "leader" && status.error.isEmpty && status.term >= leader.term
            learnMembers(status.members, fromLeader: fromLeader, reporter: node, now: now)
            if !status.error.isEmpty {
                leader.giveUp(on: node)  // e.g. its raftd is unreachable: it serves nothing
            } else if status.role == "leader" {
                learn(term: status.term, leader: node, now: now)
            } else {
                if leader.nodeID == node, status.term >= leader.term { leader.giveUp(on: node) }
                learn(term: status.term, leader: status.leaderID, now: now)
            }
        } else if let hinted = UInt64(response.leaderHint) {
            learn(term: response.leaderTerm, leader: hinted, now: now)
        }
    }

    /// `--nodes` only seeds: members the cluster's configuration names with a kvd address
    /// that the gateway does not know yet become upstreams (dialed by the shell). Nodes the
    /// leader's configuration no longer names are forgotten (except the leader itself, which
    /// may be removing itself and still leads until it hands over).
    private mutating func learnMembers(_ members: [MemberInfo], fromLeader: Bool, reporter: UInt64, now: UInt64) {
        for member in members where member.id != 0 && !member.kvdAddress.isEmpty && upstreams[member.id] == nil {
            if departed.contains(member.id) {
                guard fromLeader else { continue }
                departed.remove(member.id)
            }
            upstreams[member.id] = UpstreamState()
            config.nodeIDs = (config.nodeIDs + [member.id]).sorted()
            config.nodeAddresses[member.id] = member.kvdAddress
            actions.append(.addUpstream(node: member.id, address: member.kvdAddress))
        }
        guard fromLeader, !members.isEmpty else { return }
        let named = Set(members.map(\.id))
        for node in config.nodeIDs.filter({ $0 != reporter && !named.contains($0) }) { forget(node, now: now) }
    }

    /// Drops a node that left the cluster: its requests go elsewhere at once, status queries
    /// waiting for it get "left the cluster", and the shell closes its link.
    private mutating func forget(_ node: UInt64, now: UInt64) {
        guard let state = upstreams.removeValue(forKey: node) else { return }
        config.nodeIDs.removeAll { $0 == node }
        config.nodeAddresses[node] = nil
        departed.insert(node)
        leader.giveUp(on: node)
        actions.append(.removeUpstream(node: node))
        // Gone from `upstreams` first, so none of its requests is dispatched back to it.
        redistribute(state.owed, from: node, now: now, reason: "left the cluster")
    }

    /// Takes a leadership claim if it is news; requests sent to the replaced leader go to the
    /// new one at once. A claim naming a suspect node is stale unless its term is newer than
    /// the one known when that node went silent.
    private mutating func learn(term: UInt64, leader claimed: UInt64, now: UInt64) {
        guard let state = upstreams[claimed] else { return }
        if state.suspect, term <= state.suspectAtTerm { return }
        let previous = leader.nodeID
        guard leader.learn(term: term, node: claimed) else { return }
        stats.leaderLearnt(claimed)
        if previous != 0, previous != claimed, let old = upstreams[previous] {
            redistribute(old.owed, from: previous, now: now, reason: "leader replaced")
        }
        drainWaiting(now: now)
    }

    /// Re-sends at once the requests that were waiting at `node` (its answers to them, if any
    /// come, are ignored; `node` may already be forgotten).
    private mutating func redistribute(_ owed: [UInt64: UpstreamState.Owed], from node: UInt64, now: UInt64, reason: String) {
        for (upstreamID, what) in owed.sorted(by: { $0.key < $1.key }) {
            switch what {
            case let .request(key):
                guard var pending = requests[key], pending.place == .sent(node: node, upstreamID: upstreamID) else { continue }
                if upstreams[node]?.connected == true {
                    _ = upstreams[node]!.owed.removeValue(forKey: upstreamID)
                    if upstreams[node]!.owed.isEmpty { upstreams[node]!.waitingSince = nil }
                }
                pending.place = .waiting
                requests[key] = pending
                dispatch(key, now: now)
            case let .status(query):
                record(NodeStatus(nodeID: node, reachable: false, error: reason), from: node, in: query)
            case .health, .watch:
                continue
            }
        }
    }

    // MARK: Timers and health

    private mutating func fire(_ entry: TimerEntry, now: UInt64) {
        switch entry {
        case let .deadline(key):
            guard let pending = requests[key], now >= pending.deadline else { return }
            expire(key)
        case let .attempt(key, upstreamID):
            guard var pending = requests[key], case let .sent(node, id) = pending.place, id == upstreamID else { return }
            abandonAttempt(pending)
            pending.place = .waiting
            requests[key] = pending
            leader.giveUp(on: node)
            dispatch(key, now: now)
        case let .retry(key, token):
            guard requests[key]?.place == .backingOff(retryToken: token) else { return }
            dispatch(key, now: now)
        case let .status(query):
            completeStatus(query)
        }
    }

    /// The request's deadline passed without a definite answer.
    private mutating func expire(_ key: UInt64) {
        guard let pending = requests[key] else { return }
        let seconds = Double(config.requestDeadline) / 1e9
        let how = pending.lentSession == nil ? "retry with the same client_id/seq" : "read before repeating a write"
        answer(key, KvResponse(status: .unavailable, message: "no leader answered within \(seconds) s; outcome unknown, \(how)"))
    }

    /// Asks every connected node for its status (through raftd) unless the last ask is still
    /// unanswered: a frozen node gets one, and goes suspect when it stays unanswered.
    private mutating func healthRound(now: UInt64) {
        nextHealthAt = upstreams.values.contains(where: { $0.connected }) ? now + config.healthInterval : nil
        for node in config.nodeIDs where upstreams[node]!.connected && upstreams[node]!.healthSentAt == nil
            && !upstreams[node]!.owed.values.contains(.watch) {
            let id = takeUpstreamID()
            upstreams[node]!.sent(id, .health, now: now)
            upstreams[node]!.healthSentAt = now
            actions.append(.sendUpstream(node: node, request: KvRequest(requestID: id, op: .status)))
        }
    }

    /// The tick came late: the gateway itself did not run (CPU starved, stopped). Answers that
    /// arrived meanwhile may still wait unread behind the first chunk read, so the stall does not
    /// count as the nodes' silence.
    private mutating func discountOwnStall(of stall: UInt64, now: UInt64) {
        for node in config.nodeIDs {
            guard let since = upstreams[node]!.waitingSince else { continue }
            upstreams[node]!.waitingSince = min(now, since + stall)
        }
    }

    private mutating func markSilentNodesSuspect(now: UInt64) {
        // Every silent node is marked before anything is redistributed, so what leaves one
        // silent node never goes to another that is silent too (soak seed 703562397922).
        var silent: [(node: UInt64, owed: [UInt64: UpstreamState.Owed])] = []
        for node in config.nodeIDs {
            guard let state = upstreams[node], state.connected, !state.suspect,
                  state.isSilent(now: now, after: config.suspectAfter) else { continue }
            upstreams[node]!.suspect = true
            upstreams[node]!.suspectAtTerm = leader.term
            actions.append(.suspectChanged(node: node, suspect: true))
            leader.giveUp(on: node)
            silent.append((node, state.owed))
        }
        for (node, owed) in silent { redistribute(owed, from: node, now: now, reason: "no answer") }
    }

    // MARK: Status at the gateway

    private mutating func startStatusQuery(client: UInt64, _ request: KvRequest, now: UInt64) {
        let id = nextKey
        nextKey += 1
        var query = StatusQuery(client: client, clientRequestID: request.requestID, deadline: now + config.statusTimeout)
        for node in config.nodeIDs {
            guard upstreams[node]!.connected else {
                query.results[node] = NodeStatus(nodeID: node, reachable: false, address: address(of: node), error: "not connected")
                continue
            }
            let upstreamID = takeUpstreamID()
            upstreams[node]!.sent(upstreamID, .status(query: id), now: now)
            query.asked.insert(node)
            actions.append(.sendUpstream(node: node, request: KvRequest(requestID: upstreamID, op: .status)))
        }
        statusQueries[id] = query
        if query.asked.isEmpty { return completeStatus(id) }
        timers.insert(at: query.deadline, .status(query: id))
    }

    private mutating func record(_ status: NodeStatus, from node: UInt64, in id: UInt64) {
        guard var query = statusQueries[id] else { return }
        var status = status
        status.nodeID = node
        if status.address.isEmpty { status.address = address(of: node) }
        query.results[node] = status
        statusQueries[id] = query
        if query.asked.isSubset(of: Set(query.results.keys)) { completeStatus(id) }
    }

    private mutating func completeStatus(_ id: UInt64) {
        guard let query = statusQueries.removeValue(forKey: id) else { return }
        let nodes = config.nodeIDs.map { node in
            query.results[node] ?? NodeStatus(nodeID: node, reachable: false, address: address(of: node), error: "no answer")
        }
        reply(query.client, KvResponse(requestID: query.clientRequestID, status: .ok, nodes: nodes))
    }

    private func address(of node: UInt64) -> String { config.nodeAddresses[node] ?? "" }

    // MARK: Plumbing

    private mutating func takeUpstreamID() -> UInt64 {
        defer { nextUpstreamID += 1 }
        return nextUpstreamID
    }

    /// The earliest time anything is due: a timer entry, the next health round, or the moment
    /// a node with something owed becomes suspect.
    var nextWakeup: UInt64? {
        var wake = timers.earliest
        if let health = nextHealthAt { wake = min(wake ?? health, health) }
        for state in upstreams.values where state.connected && !state.suspect {
            if let since = state.waitingSince {
                let due = since + config.suspectAfter
                wake = min(wake ?? due, due)
            }
        }
        return wake
    }

    private mutating func finishInput(now: UInt64) -> [GatewayAction] {
        // Whatever this input made usable (a connect, an answer from a suspect node) takes the
        // requests that waited for it.
        drainWaiting(now: now)
        if let wake = nextWakeup, wake != armedAt {
            armedAt = wake
            actions.append(.armTimer(at: max(wake, now)))
        }
        defer { actions.removeAll(keepingCapacity: true) }
        return actions
    }
}
