/// Leader election: timeouts, pre-vote, vote, and the candidate roles' step function.
extension RaftNode {
    func tickElection() {
        electionElapsed += 1
        guard electionElapsed >= randomizedElectionTimeout else { return }
        guard canCampaign else {
            // A learner, a joining node or a removed one never campaigns; forget the leader we
            // no longer hear (so our lease does not keep refusing other candidates).
            becomeFollower(term: term, leader: 0)
            return
        }
        if shouldDeferElection() {
            // No leader for a whole timeout, so follow none (a remembered leader would keep a
            // lease that makes us refuse other candidates' votes); wait another timeout.
            becomeFollower(term: term, leader: 0)
            return
        }
        startElection()
    }

    func startElection() {
        if config.preVote {
            becomePreCandidate()
        } else {
            becomeCandidate()
        }
    }

    /// Asks whether peers would vote for us at `term + 1` without adopting that term, so a node
    /// that cannot win leaves the cluster's term alone.
    func becomePreCandidate() {
        guard canCampaign else { return }
        var tally = VoteTally(quorum: quorum)
        if isVoter { tally.record(config.id, granted: true) }
        role = .preCandidate(tally)
        leader = 0
        resetElectionTimer()
        if tally.outcome == .won {
            becomeCandidate()
            return
        }
        for peer in otherVoters {
            send(Message(type: .preVote, from: config.id, to: peer, term: term + 1,
                         logTerm: log.lastTerm, index: log.lastIndex))
        }
    }

    /// `transfer`: the leader handed over (`timeoutNow`), so skip pre-vote and tell voters to
    /// set their leader lease aside.
    func becomeCandidate(transfer: Bool = false) {
        guard canCampaign else { return }
        term += 1
        vote = config.id
        leader = 0
        var tally = VoteTally(quorum: quorum)
        if isVoter { tally.record(config.id, granted: true) }
        role = .candidate(tally)
        resetElectionTimer()
        if tally.outcome == .won {
            becomeLeader()
            return
        }
        for peer in otherVoters {
            send(Message(type: .vote, from: config.id, to: peer, term: term,
                         logTerm: log.lastTerm, index: log.lastIndex, transfer: transfer))
        }
    }

    /// Answers a vote or pre-vote whose term is at least ours (and outside any leader lease).
    func handleVoteRequest(_ request: Message) {
        let isPreVote = request.type == .preVote
        // One vote per term; a pre-vote for a future term commits us to nothing.
        let canVote = vote == request.from
            || (vote == 0 && leader == 0)
            || (isPreVote && request.term > term)
        let responseType: MessageType = isPreVote ? .preVoteResponse : .voteResponse
        if canVote && log.isUpToDate(lastIndex: request.index, lastTerm: request.logTerm) {
            // A grant echoes the request's term: for a pre-vote that is a term we do not hold.
            send(Message(type: responseType, from: config.id, to: request.from, term: request.term))
            if !isPreVote {
                vote = request.from
                electionElapsed = 0
            }
        } else {
            send(Message(type: responseType, from: config.id, to: request.from, term: term, reject: true))
        }
    }

    /// Step function of pre-candidates and candidates.
    func stepCandidate(_ message: Message) {
        switch message.type {
        case .append:
            // Someone won this term; follow them.
            becomeFollower(term: term, leader: message.from)
            handleAppend(message)
        case .heartbeat:
            becomeFollower(term: term, leader: message.from)
            handleHeartbeat(message)
        case .snapshot:
            becomeFollower(term: term, leader: message.from)
            handleSnapshot(message)
        case .preVoteResponse:
            guard case .preCandidate(var tally) = role else { return }
            // Grants echo term + 1; rejections carry our own term (higher ones made us follower).
            let expectedTerm = message.reject ? term : term + 1
            // Only voters of our configuration count.
            guard message.term == expectedTerm, voters.contains(message.from) else { return }
            tally.record(message.from, granted: !message.reject)
            role = .preCandidate(tally)
            switch tally.outcome {
            case .won: becomeCandidate()
            case .lost: becomeFollower(term: term, leader: 0)
            case .pending: break
            }
        case .voteResponse:
            guard case .candidate(var tally) = role, voters.contains(message.from) else { return }
            tally.record(message.from, granted: !message.reject)
            role = .candidate(tally)
            switch tally.outcome {
            case .won: becomeLeader()
            case .lost: becomeFollower(term: term, leader: 0)
            case .pending: break
            }
        case .preVote, .vote, .appendResponse, .heartbeatResponse, .timeoutNow:
            break
        }
    }

    func becomeLeader() {
        let state = LeaderState(followers: replicationTargets, next: log.lastIndex + 1, maxInflight: config.maxInflightAppends)
        role = .leader(state)
        leader = config.id
        resetElectionTimer()
        // A no-op of our own term lets us commit (and so learn the commit point of) earlier terms'
        // entries, which Figure 8 forbids committing by counting replicas.
        log.appendAsLeader([Entry(term: term, index: log.lastIndex + 1, kind: .noop)])
        broadcastAppend(state, includeEmpty: false)
    }
}
