@testable import Gateway
import Wire

/// A model of the kvds behind a gateway: one simulated leader per term, nodes that learn of
/// leadership changes late (so followers give stale hints), and kvd's session table — a seq
/// applied once is never applied again; a duplicate gets the kept reply, or SESSION_EXPIRED
/// when that reply was dropped. Applying an append element twice is an exactly-once violation.
struct FakeKvdCluster {
    struct Node {
        /// The kvd process runs (its connection to the gateway is up while it does).
        var up = true
        /// Bumped on every crash: frames of an older incarnation are dropped.
        var epoch = 0
        var frozen = false
        /// Requests that arrived while frozen, answered in order on thaw.
        var held: [KvRequest] = []
        /// Extra delay on every answer (a slow disk, a long GC).
        var slowNs: UInt64 = 0
        var knownTerm: UInt64 = 0
        var knownLeader: UInt64 = 0
        /// The leadership subscription on the current connection, 0 if none.
        var watchID: UInt64 = 0
    }

    struct Session {
        var lastSeq: UInt64 = 0
        var lastReply: KvResponse?
    }

    let nodeIDs: [UInt64]
    var nodes: [UInt64: Node] = [:]
    /// The true leadership: the node that leads, in which term (0: an election is on).
    var term: UInt64 = 1
    var leader: UInt64
    var sessions: [UInt64: Session] = [:]
    var values: [[UInt8]: [UInt8]] = [:]
    /// Every append element applied, to catch a second application.
    var applied: Set<[UInt8]> = []
    var violation: String?

    init(nodeIDs: [UInt64]) {
        self.nodeIDs = nodeIDs
        leader = nodeIDs[0]
        for id in nodeIDs { nodes[id] = Node(knownTerm: 1, knownLeader: nodeIDs[0]) }
    }

    func nodeActsAsLeader(_ id: UInt64) -> Bool {
        let node = nodes[id]!
        return id == leader && node.knownLeader == id && node.knownTerm == term
    }

    /// Node `id` handles one request (it is up and not frozen); returns its answer.
    mutating func answer(_ request: KvRequest, at id: UInt64, random: inout GatewayRandom) -> KvResponse {
        let node = nodes[id]!
        if request.op == .status {
            if request.watchLeadership { nodes[id]!.watchID = request.requestID }
            let role = node.knownLeader == id ? "leader" : "follower"
            return KvResponse(requestID: request.requestID, status: .ok,
                              nodes: [NodeStatus(nodeID: id, reachable: true, role: role, term: node.knownTerm, leaderID: node.knownLeader)])
        }
        guard nodeActsAsLeader(id) else {
            // A stale leader that has not heard of the new term names itself (ignored: a hint
            // naming the answering node is no hint).
            return KvResponse(requestID: request.requestID, status: .wrongLeader,
                              leaderHint: node.knownLeader == 0 ? "" : String(node.knownLeader), leaderTerm: node.knownTerm)
        }
        var reply = apply(request, random: &random)
        reply.requestID = request.requestID
        reply.leaderTerm = term
        return reply
    }

    private mutating func apply(_ request: KvRequest, random: inout GatewayRandom) -> KvResponse {
        var session = sessions[request.clientID] ?? Session()
        if request.seq <= session.lastSeq {
            if request.seq == session.lastSeq, let kept = session.lastReply { return kept }
            return KvResponse(status: .sessionExpired, message: "seq \(request.seq) applied earlier; reply no longer kept")
        }
        var reply = KvResponse(status: .ok)
        switch request.op {
        case .get:
            if let value = values[request.key] { reply.value = value } else { reply.status = .noKey }
        case .put:
            values[request.key] = request.value
        case .append:
            if applied.contains(request.value) {
                violation = violation ?? "append element \(String(decoding: request.value, as: UTF8.self)) applied twice (client_id \(request.clientID) seq \(request.seq))"
            }
            applied.insert(request.value)
            values[request.key, default: []] += request.value
        case .delete:
            if values.removeValue(forKey: request.key) == nil { reply.status = .noKey }
        default:
            reply = KvResponse(status: .badRequest)
        }
        session.lastSeq = request.seq
        // One time in four the kept reply is dropped (the session expired): a duplicate then gets
        // SESSION_EXPIRED.
        session.lastReply = random.next() % 4 == 0 ? nil : reply
        sessions[request.clientID] = session
        return reply
    }
}
