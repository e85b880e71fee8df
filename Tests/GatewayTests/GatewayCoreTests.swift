@testable import Gateway
import Testing
import Wire

/// Single scenarios of the gateway core, step by step (the simulation covers their mixtures).
struct GatewayCoreTests {
    static let ms: UInt64 = 1_000_000

    func makeCore() -> GatewayCore {
        GatewayCore(config: GatewayCoreConfig(nodeIDs: [1, 2, 3], maxKeyBytes: 1024, maxValueBytes: 1024, seed: 7))
    }

    func sends(_ actions: [GatewayAction]) -> [(node: UInt64, request: KvRequest)] {
        actions.compactMap { if case let .sendUpstream(node, request) = $0 { (node, request) } else { nil } }
    }

    func replies(_ actions: [GatewayAction]) -> [KvResponse] {
        actions.compactMap { if case let .reply(_, response) = $0 { response } else { nil } }
    }

    /// Connects every node and tells the core node `leader` leads `term` (as a subscription would).
    func connected(leader: UInt64, term: UInt64, at now: UInt64) -> GatewayCore {
        var core = makeCore()
        for node: UInt64 in [1, 2, 3] {
            let watch = sends(core.upstreamConnected(node: node, now: now)).first!.request
            #expect(watch.op == .status && watch.watchLeadership)
            _ = core.upstreamResponse(node: node, KvResponse(requestID: watch.requestID, status: .ok, leaderHint: String(leader), leaderTerm: term), now: now)
        }
        #expect(core.leader == { var k = LeaderKnowledge(); k.learn(term: term, node: leader); return k }())
        return core
    }

    @Test func requestWaitsWithNoUpstreamAndGoesOutOnConnect() {
        var core = makeCore()
        let accepted = core.clientRequest(client: 1, KvRequest(requestID: 9, clientID: 5, seq: 1, op: .put, key: [1]), now: 0)
        #expect(sends(accepted).isEmpty && replies(accepted).isEmpty)
        #expect(core.invariantViolation(now: 0) == nil)
        let afterConnect = sends(core.upstreamConnected(node: 2, now: 10 * Self.ms))
        #expect(afterConnect.contains { $0.node == 2 && $0.request.op == .put && $0.request.clientID == 5 && $0.request.seq == 1 })
    }

    @Test func silentLeaderTurnsSuspectAndItsRequestsMoveWithTheSameSeq() {
        var core = connected(leader: 1, term: 4, at: 0)
        let first = sends(core.clientRequest(client: 1, KvRequest(requestID: 1, clientID: 77, seq: 3, op: .append, key: [1], value: [2]), now: Self.ms))
        #expect(first.map(\.node) == [1])
        // Nodes 2 and 3 keep answering their health checks; node 1 says nothing.
        var now = Self.ms
        var moved: [(node: UInt64, request: KvRequest)] = []
        while now < 600 * Self.ms && moved.isEmpty {
            now += 50 * Self.ms
            let actions = core.tick(now: now)
            for (node, request) in sends(actions) where request.op == .status && node != 1 {
                _ = core.upstreamResponse(node: node, KvResponse(requestID: request.requestID, status: .ok,
                                                                 nodes: [NodeStatus(nodeID: node, reachable: true, role: "follower", term: 4, leaderID: 1)]), now: now)
            }
            moved = sends(actions).filter { $0.request.op == .append }
        }
        #expect(core.upstreams[1]!.suspect)
        #expect(now <= 500 * Self.ms, "suspicion took \(now / Self.ms) ms")
        #expect(moved.count == 1 && moved[0].node != 1 && moved[0].request.clientID == 77 && moved[0].request.seq == 3)
        // The follower's stale hint (term 4, node 1) is ignored: node 1 stays given up on.
        _ = core.upstreamResponse(node: moved[0].node, KvResponse(requestID: moved[0].request.requestID, status: .wrongLeader, leaderHint: "1", leaderTerm: 4), now: now)
        #expect(core.leader.nodeID == 0)
        // A newer term's claim is taken, and the request goes there at once.
        let retry = sends(core.upstreamResponse(node: 3, KvResponse(requestID: core.upstreams[3]!.watchID, status: .ok, leaderHint: "2", leaderTerm: 5), now: now + Self.ms))
        #expect(core.leader.nodeID == 2 && core.leader.term == 5)
        #expect(retry.contains { $0.node == 2 && $0.request.seq == 3 && $0.request.clientID == 77 } || core.requests.values.contains { if case .backingOff = $0.place { true } else { false } })
        #expect(core.invariantViolation(now: now + Self.ms) == nil)
    }

    /// The gateway itself stalls (its tick comes a second late): that second is not the nodes'
    /// silence, so nobody turns suspect on the late tick.
    @Test func theGatewaysOwnStallIsNotTakenForSilence() {
        var core = connected(leader: 1, term: 4, at: 0)
        let actions = core.clientRequest(client: 1, KvRequest(requestID: 1, clientID: 77, seq: 3, op: .put, key: [1]), now: Self.ms)
        let asked = actions.compactMap { if case let .armTimer(at) = $0 { at } else { nil } }.last ?? core.armedAtForChecks!
        let late = core.tick(now: asked + 1000 * Self.ms)
        #expect(!late.contains { if case .suspectChanged = $0 { true } else { false } })
        #expect(core.upstreams.values.allSatisfy { !$0.suspect })
    }

    @Test func lentSessionExpiredWriteIsAnsweredAndReadRunsAgain() {
        var core = connected(leader: 1, term: 2, at: 0)
        let write = sends(core.clientRequest(client: 1, KvRequest(requestID: 10, op: .put, key: [1], value: [1]), now: Self.ms))[0]
        let read = sends(core.clientRequest(client: 1, KvRequest(requestID: 11, op: .get, key: [1]), now: Self.ms))[0]
        #expect(write.request.clientID != 0 && read.request.clientID != 0 && write.request.clientID != read.request.clientID)
        let writeAnswer = core.upstreamResponse(node: 1, KvResponse(requestID: write.request.requestID, status: .sessionExpired), now: 2 * Self.ms)
        #expect(sends(writeAnswer).isEmpty, "a write must never run again under a new client_id")
        let answered = replies(writeAnswer)
        #expect(answered.count == 1 && answered[0].requestID == 10 && answered[0].status == .sessionExpired && answered[0].message.contains("applied"))
        let readAgain = core.upstreamResponse(node: 1, KvResponse(requestID: read.request.requestID, status: .sessionExpired), now: 2 * Self.ms)
        let resent = sends(readAgain)
        #expect(replies(readAgain).isEmpty)
        #expect(resent.count == 1 && resent[0].request.op == .get && resent[0].request.clientID != read.request.clientID && resent[0].request.seq == 1)
    }

    @Test func ownSessionExpiredPassesThrough() {
        var core = connected(leader: 1, term: 2, at: 0)
        let sent = sends(core.clientRequest(client: 1, KvRequest(requestID: 3, clientID: 9, seq: 4, op: .append, key: [1], value: [1]), now: Self.ms))[0]
        let answer = replies(core.upstreamResponse(node: 1, KvResponse(requestID: sent.request.requestID, status: .sessionExpired, message: "x"), now: 2 * Self.ms))
        #expect(answer.count == 1 && answer[0].status == .sessionExpired && answer[0].requestID == 3)
    }

    @Test func everyRequestIsAnsweredByItsDeadlineWhenNothingAnswers() {
        var core = connected(leader: 1, term: 2, at: 0)
        _ = core.clientRequest(client: 1, KvRequest(requestID: 1, clientID: 9, seq: 1, op: .put, key: [1]), now: 0)
        var now: UInt64 = 0
        var answer: [KvResponse] = []
        while answer.isEmpty && now <= core.config.requestDeadline {
            now += 10 * Self.ms
            answer = replies(core.tick(now: now))
        }
        #expect(answer.count == 1 && answer[0].status == .unavailable)
        #expect(now <= core.config.requestDeadline)
    }

    @Test func statusAtTheGatewayIsAnsweredEvenWhenNodesAreSilent() {
        var core = connected(leader: 1, term: 2, at: 0)
        var answered: [KvResponse] = []
        for id in 1...200 { answered += replies(core.clientRequest(client: 1, KvRequest(requestID: UInt64(id), op: .status), now: 0)) }
        answered += replies(core.tick(now: core.config.statusTimeout))
        #expect(answered.count == 200)
        #expect(answered.allSatisfy { $0.nodes.count == 3 })
    }

    @Test func deadlineHeapPopsInTimeOrder() {
        var heap = DeadlineHeap<Int>()
        var random = GatewayRandom(seed: 3)
        var times: [UInt64] = []
        for i in 0..<500 {
            let time = random.next() % 1000
            times.append(time)
            heap.insert(at: time, i)
        }
        var popped: [UInt64] = []
        while let index = heap.popDue(now: 1000) { popped.append(times[index]) }
        #expect(popped == times.sorted())
    }

    /// Mostly increasing times (the queue's lane) mixed with earlier ones (the heap's), popped
    /// while inserting: always earliest first, equal times in insertion order.
    @Test func deadlineHeapMixesInOrderAndEarlierEntries() {
        var heap = DeadlineHeap<Int>()
        var random = GatewayRandom(seed: 11)
        var entries: [(at: UInt64, index: Int)] = []
        var expected: [(at: UInt64, index: Int)] = []
        var popped: [Int] = []
        var now: UInt64 = 0
        for i in 0..<5_000 {
            now += random.next() % 3
            let at = random.next() % 10 == 0 ? now + random.next() % 50 : now + 100
            entries.append((at, i))
            heap.insert(at: at, i)
            if i % 7 == 0 {
                let due = now + 40
                while let index = heap.popDue(now: due) { popped.append(index) }
                let ready = entries.filter { $0.at <= due }.sorted { ($0.at, $0.index) < ($1.at, $1.index) }
                expected += ready
                entries.removeAll { $0.at <= due }
            }
        }
        while let index = heap.popDue(now: .max) { popped.append(index) }
        expected += entries.sorted { ($0.at, $0.index) < ($1.at, $1.index) }
        #expect(popped == expected.map(\.index))
        #expect(heap.isEmpty && heap.earliest == nil)
    }
}

/// `--nodes` only seeds: a kvd the cluster's configuration names is dialed and then used.
struct GatewayMembershipTests {
    @Test func membersNamedByAStatusAnswerBecomeUpstreams() {
        let helper = GatewayCoreTests()
        var core = helper.connected(leader: 1, term: 2, at: 0)
        var status = NodeStatus(nodeID: 2, reachable: true, role: "follower", term: 2, leaderID: 1)
        status.members = [MemberInfo(id: 1, kvdAddress: "127.0.0.1:9001"), MemberInfo(id: 4, kvdAddress: "127.0.0.1:9004"),
                          MemberInfo(id: 5)]
        let watch = helper.sends(core.tick(now: 200 * GatewayCoreTests.ms)).first { $0.node == 2 && $0.request.op == .status }!
        let actions = core.upstreamResponse(node: 2, KvResponse(requestID: watch.request.requestID, status: .ok, nodes: [status]),
                                            now: 201 * GatewayCoreTests.ms)
        #expect(actions.contains(.addUpstream(node: 4, address: "127.0.0.1:9004")))
        #expect(!actions.contains { if case .addUpstream(5, _) = $0 { true } else { false } }, "no kvd address: nothing to dial")
        #expect(core.config.nodeIDs == [1, 2, 3, 4])
        // Once connected and leading, node 4 gets the requests.
        let watch4 = helper.sends(core.upstreamConnected(node: 4, now: 202 * GatewayCoreTests.ms)).first!.request
        _ = core.upstreamResponse(node: 4, KvResponse(requestID: watch4.requestID, status: .ok, leaderHint: "4", leaderTerm: 3),
                                  now: 203 * GatewayCoreTests.ms)
        let sent = helper.sends(core.clientRequest(client: 1, KvRequest(requestID: 1, clientID: 9, seq: 1, op: .put, key: [1]),
                                                   now: 204 * GatewayCoreTests.ms))
        #expect(sent.map(\.node) == [4])
        #expect(core.invariantViolation(now: 204 * GatewayCoreTests.ms) == nil)
    }

    /// Answers the gateway's health checks: each `answer` ticks the core (which sends a health
    /// round's status requests when one is due) and answers `node`'s oldest unanswered one.
    struct StatusAnswers {
        var asked: [UInt64: [UInt64]] = [:]

        /// `node` says it is `role` in `term` under a configuration of `members`.
        mutating func answer(_ core: inout GatewayCore, from node: UInt64, role: String, term: UInt64, leaderID: UInt64,
                             members: [UInt64], now: UInt64) -> [GatewayAction] {
            for sent in GatewayCoreTests().sends(core.tick(now: now)) where sent.request.op == .status {
                asked[sent.node, default: []].append(sent.request.requestID)
            }
            guard let requestID = asked[node]?.first else {
                Issue.record("no status request to node \(node) by \(now)")
                return []
            }
            asked[node]!.removeFirst()
            var status = NodeStatus(nodeID: node, reachable: true, role: role, term: term, leaderID: leaderID)
            status.members = members.map { MemberInfo(id: $0, kvdAddress: "127.0.0.1:900\($0)") }
            return core.upstreamResponse(node: node, KvResponse(requestID: requestID, status: .ok, nodes: [status]), now: now + 1)
        }
    }

    /// A node the leader's configuration no longer names is forgotten: its requests move at
    /// once, the shell closes its link; a lagging follower's older configuration does not bring
    /// it back, a leader's naming it again does.
    @Test func nodeTheLeadersConfigurationDropsIsForgotten() {
        let helper = GatewayCoreTests()
        let ms = GatewayCoreTests.ms
        var core = helper.connected(leader: 3, term: 2, at: 0)
        var status = StatusAnswers()
        let sent = helper.sends(core.clientRequest(client: 1, KvRequest(requestID: 1, clientID: 9, seq: 1, op: .put, key: [1]), now: ms))
        #expect(sent.map(\.node) == [3])
        // Node 1 leads in term 3, under a configuration without node 3.
        let actions = status.answer(&core, from: 1, role: "leader", term: 3, leaderID: 1, members: [1, 2], now: 200 * ms)
        #expect(actions.contains(.removeUpstream(node: 3)))
        #expect(core.config.nodeIDs == [1, 2] && core.departed == [3])
        let resent = helper.sends(actions).filter { $0.request.op == .put }
        #expect(resent.count == 1 && resent.first?.node != 3 && resent.first?.request.seq == 1, "the request held at node 3 moved: \(resent)")
        #expect(core.invariantViolation(now: 201 * ms) == nil)
        // Node 2 has not applied the removal yet: its status still lists node 3.
        let lagging = status.answer(&core, from: 2, role: "follower", term: 3, leaderID: 1, members: [1, 2, 3], now: 400 * ms)
        #expect(!lagging.contains { if case .addUpstream = $0 { true } else { false } }, "a lagging view brought node 3 back")
        #expect(core.config.nodeIDs == [1, 2])
        // Node 3 is added again: the leader names it.
        let readded = status.answer(&core, from: 1, role: "leader", term: 3, leaderID: 1, members: [1, 2, 3], now: 600 * ms)
        #expect(readded.contains(.addUpstream(node: 3, address: "127.0.0.1:9003")))
        #expect(core.config.nodeIDs == [1, 2, 3] && core.departed.isEmpty)
        #expect(core.invariantViolation(now: 601 * ms) == nil)
    }

    /// A leader removing itself still leads until it hands over: the gateway keeps it; a
    /// stale leader (older term) cannot make the gateway forget anyone.
    @Test func theReportingLeaderAndStaleLeadersForgetNoOne() {
        let helper = GatewayCoreTests()
        let ms = GatewayCoreTests.ms
        var core = helper.connected(leader: 1, term: 5, at: 0)
        var status = StatusAnswers()
        let selfRemoval = status.answer(&core, from: 1, role: "leader", term: 5, leaderID: 1, members: [2, 3], now: 200 * ms)
        #expect(!selfRemoval.contains(.removeUpstream(node: 1)) && core.config.nodeIDs == [1, 2, 3])
        let stale = status.answer(&core, from: 2, role: "leader", term: 4, leaderID: 2, members: [2], now: 400 * ms)
        #expect(!stale.contains { if case .removeUpstream = $0 { true } else { false } }, "a stale leader's configuration was taken")
        #expect(core.config.nodeIDs == [1, 2, 3])
    }
}
