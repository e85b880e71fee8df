import Wire

/// OP_STATUS and OP_MEMBER: relayed to raftd under a query id; answered by raftd, or by kvd
/// itself when raftd is detached or lets `statusAnswerTimeout` pass.
extension KVDriver {
    mutating func queryStatus(client: UInt64, _ request: KvRequest, now: KVTime) {
        let waiter = Waiter(client: client, requestID: request.requestID, op: .status)
        if request.watchLeadership, let news = watchers.add(waiter, current: leadership, selfID: config.nodeID) {
            reply(client, news, op: nil)
        }
        guard raftAttached, !isStopping else { return answerStatusOnOwn(waiter, error: "raftd unreachable") }
        let queryID = statusQueries.add(waiter, deadline: now.monotonicNanos + config.statusAnswerTimeout.wholeNanoseconds)
        send(.statusQuery(queryID: queryID))
    }

    /// OP_MEMBER: handed to raftd like a status query; only the leader's raftd acts on it.
    mutating func queryMember(client: UInt64, _ request: KvRequest, now: KVTime) {
        let waiter = Waiter(client: client, requestID: request.requestID, op: .member)
        guard raftAttached, !isStopping else { return answerStatusOnOwn(waiter, error: "raftd unreachable") }
        let queryID = statusQueries.add(waiter, deadline: now.monotonicNanos + config.statusAnswerTimeout.wholeNanoseconds)
        send(.memberCommand(queryID: queryID, request.member ?? MemberCommand(action: .list)))
    }

    mutating func statusAnswered(_ queryID: UInt64, _ status: NodeStatus) {
        guard let waiter = statusQueries.answer(queryID) else { return }
        var node = status
        node.appliedIndex = machine.appliedIndex
        node.address = config.address
        reply(waiter.client, KvResponse(requestID: waiter.requestID, status: .ok, nodes: [node]), op: nil)
    }

    mutating func memberAnswered(_ queryID: UInt64, _ answer: MemberAnswer) {
        guard let waiter = statusQueries.answer(queryID) else { return }
        reply(waiter.client, memberResponse(waiter.requestID, answer), op: nil)
    }

    /// raftd's answer to a member command as the client sees it: OK, WRONG_LEADER with the
    /// leader's id, or BAD_REQUEST with the reason.
    private func memberResponse(_ requestID: UInt64, _ answer: MemberAnswer) -> KvResponse {
        var response = KvResponse(requestID: requestID, status: .ok, message: answer.error)
        if !answer.ok {
            let notLeader = answer.leaderID != config.nodeID && answer.error.hasPrefix("not the leader")
            response.status = notLeader ? .wrongLeader : .badRequest
            if notLeader, answer.leaderID != 0 {
                response.leaderHint = String(answer.leaderID)
                response.leaderTerm = leadership.term
            }
        }
        response.members = answer.members
        response.configurationIndex = answer.configurationIndex
        return response
    }

    /// raftd (frozen, or busy) let status queries wait past their deadline: they get this
    /// node's own view (a member command: UNAVAILABLE).
    mutating func expireStatusQueries(now: KVTime) {
        for waiter in statusQueries.takeExpired(now: now.monotonicNanos) {
            if waiter.op == .member {
                reply(waiter.client, KvResponse(requestID: waiter.requestID, status: .unavailable, message: "raftd did not answer"), op: nil)
                continue
            }
            answerStatusOnOwn(waiter, error: "raftd did not answer within \(config.statusAnswerTimeout.wholeMilliseconds) ms")
        }
    }

    /// What kvd knows without raftd: its own applied index and the leadership last reported.
    mutating func answerStatusOnOwn(_ waiter: Waiter, error: String) {
        if waiter.op == .member {
            return reply(waiter.client, KvResponse(requestID: waiter.requestID, status: .unavailable, message: error), op: nil)
        }
        reply(waiter.client, KvResponse(requestID: waiter.requestID, status: .ok, nodes: [
            NodeStatus(nodeID: config.nodeID, reachable: true, term: leadership.term, leaderID: leadership.leaderID,
                       appliedIndex: machine.appliedIndex, address: config.address, error: error),
        ]), op: nil)
    }
}
