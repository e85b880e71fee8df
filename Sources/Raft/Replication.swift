/// The leader's side of log replication: step function, appends, heartbeats, commit, check quorum.
extension RaftNode {
    func tickLeader(_ state: LeaderState) {
        heartbeatElapsed += 1
        for id in state.followers { state.progress[id]!.tick(snapshotTimeout: snapshotTimeout) }
        if leaveIfRemoved(state) { return }
        tickLingering(state)
        if config.checkQuorum && !heardFromQuorum(state) {
            // We may be on the minority side of a partition: stop serving as leader within one
            // election timeout, so clients go elsewhere before the majority elects someone new.
            becomeFollower(term: term, leader: 0)
            return
        }
        if state.transferee != 0 {
            state.transferElapsed += 1
            if state.transferElapsed >= config.electionTicks { state.transferee = 0 }  // gave up: lead on
        }
        handOverIfDetached(state)
        maybeAutoPromote(state)
        if heartbeatElapsed >= config.heartbeatTicks {
            broadcastHeartbeat(state)
        }
    }

    /// Whether a quorum (ourselves included) answered within the last election timeout.
    private func heardFromQuorum(_ state: LeaderState) -> Bool {
        var active = isVoter ? 1 : 0
        for id in otherVoters where state.progress[id]!.ticksSinceHeard < config.electionTicks {
            active += 1
        }
        return active >= quorum
    }

    func stepLeader(_ message: Message, _ state: LeaderState) {
        guard state.progress[message.from] != nil else { return }
        switch message.type {
        case .appendResponse:
            state.progress[message.from]!.ticksSinceHeard = 0
            state.progress[message.from]!.stateMachineAttached = !message.stateMachineDetached
            // An index we never sent (a confused or hostile peer): acting on it would point
            // replication past our log.
            guard message.index <= log.lastIndex else { return }
            if message.reject, message.rejectTerm == 0, message.rejectHint > 0,
               message.rejectHint <= state.progress[message.from]!.match {
                // Its log ends (at hint - 1) below what we recorded as matching: it lost it.
                if state.progress[message.from]!.followerLogEnds(at: message.rejectHint - 1) {
                    sendAppend(to: message.from, state, includeEmpty: true)
                }
            } else if message.reject {
                let suggested = nextIndexAfterRejection(message)
                if state.progress[message.from]!.reject(rejectedIndex: message.index, suggestedNext: suggested) {
                    sendAppends(to: message.from, state)
                }
            } else {
                if state.progress[message.from]!.acknowledge(message.index), maybeCommit(state) {
                    // A new commit index rides on the next append or heartbeat rather than an
                    // append of its own: followers' state machines only need it eventually (clients
                    // are answered by the leader), and an extra message per commit costs every
                    // node a wakeup and an acknowledgement.
                    broadcastAppend(state, includeEmpty: false)
                } else {
                    sendAppends(to: message.from, state)
                }
                if message.from == state.transferee, state.progress[message.from]!.match == log.lastIndex {
                    send(Message(type: .timeoutNow, from: config.id, to: message.from, term: term))
                }
            }
        case .heartbeatResponse:
            state.progress[message.from]!.ticksSinceHeard = 0
            state.progress[message.from]!.stateMachineAttached = !message.stateMachineDetached
            // Answered in our term: it still followed us when it got that round.
            if message.readRound != 0 { readRoundAcknowledged(message.readRound, by: message.from, state) }
            if message.reject {
                // Our heartbeat's commit lay beyond its log: it lost its log (a wiped data dir).
                // Restart replication from where its log really ends; if we compacted that away,
                // the probe becomes our snapshot.
                if state.progress[message.from]!.followerLogEnds(at: message.index) {
                    sendAppend(to: message.from, state, includeEmpty: true)
                }
                return
            }
            guard state.progress[message.from]!.match < log.lastIndex else { return }
            // Lagging, or its appends were lost: (re)start replication; an empty append probes.
            if state.progress[message.from]!.heartbeatAnswered(lastIndex: log.lastIndex),
               sendAppend(to: message.from, state, includeEmpty: true) {
                sendAppends(to: message.from, state)
            }
        case .preVote, .vote, .preVoteResponse, .voteResponse, .append, .heartbeat, .timeoutNow, .snapshot:
            break
        }
    }

    /// Ticks a leader waits for a snapshot's acknowledgement before sending it again: long
    /// enough for a big snapshot to cross, short enough that a lost one does not stall a follower
    /// for long.
    var snapshotTimeout: Int { 2 * config.electionTicks }

    /// Where to resume after a rejection, from the follower's conflict term and hint: past our
    /// last entry of that term if we have it (our logs agree up to there), else at its first index.
    private func nextIndexAfterRejection(_ rejection: Message) -> UInt64 {
        if rejection.rejectTerm != 0, let last = log.lastIndex(ofTerm: rejection.rejectTerm) {
            return last + 1
        }
        return max(rejection.rejectHint, 1)
    }

    /// Sends at most one append to `peer`, or the snapshot when the entries it needs were
    /// compacted away; returns whether it sent anything.
    @discardableResult
    func sendAppend(to peer: UInt64, _ state: LeaderState, includeEmpty: Bool) -> Bool {
        let progress = state.progress[peer]!
        if progress.isPaused { return false }
        let prevIndex = progress.next - 1
        let prevTerm: UInt64
        switch log.term(at: prevIndex) {
        case .term(let term):
            prevTerm = term
        case .compacted:
            sendSnapshot(to: peer, state)
            return true
        case .beyondLog:
            preconditionFailure("raft: next index \(progress.next) for \(peer) is beyond our last index \(log.lastIndex)")
        }
        let entries = log.entries(from: progress.next, maxBytes: config.maxAppendBytes)
        if entries.isEmpty && !includeEmpty { return false }
        send(Message(type: .append, from: config.id, to: peer, term: term, logTerm: prevTerm,
                     index: prevIndex, commit: log.commit, entries: entries))
        state.progress[peer]!.sent(through: entries.last?.index ?? prevIndex, entryCount: entries.count)
        return true
    }

    /// Sends the latest snapshot to a follower whose next entry is compacted away, and pauses it
    /// until the snapshot is acknowledged (or its timeout passes).
    private func sendSnapshot(to peer: UInt64, _ state: LeaderState) {
        guard let snapshot else {
            preconditionFailure("raft: log compacted through \(log.offset) but no snapshot recorded")
        }
        precondition(snapshot.index >= log.offset, "raft: snapshot \(snapshot.index) is older than the compacted prefix \(log.offset)")
        send(Message(type: .snapshot, from: config.id, to: peer, term: term, snapshot: snapshot))
        state.progress[peer]!.sentSnapshot(index: snapshot.index)
    }

    /// Sends appends to `peer` while there is something to send and its window allows; bounded by
    /// the in-flight limit in replicate mode and by one append in probe mode.
    func sendAppends(to peer: UInt64, _ state: LeaderState) {
        while sendAppend(to: peer, state, includeEmpty: false) {}
    }

    /// Appends to every follower; `includeEmpty` also sends entry-less appends to carry a new commit index.
    func broadcastAppend(_ state: LeaderState, includeEmpty: Bool) {
        for peer in state.followers {
            if sendAppend(to: peer, state, includeEmpty: includeEmpty) {
                sendAppends(to: peer, state)
            }
        }
    }

    /// Every heartbeat broadcast is a read round (ReadIndex.swift).
    func broadcastHeartbeat(_ state: LeaderState) {
        heartbeatElapsed = 0
        let round = startReadRound(state)
        for peer in state.followers {
            let commit = min(log.commit, state.progress[peer]!.match)
            send(Message(type: .heartbeat, from: config.id, to: peer, term: term, commit: commit, readRound: round))
        }
    }

    /// Commits the highest index a quorum holds durably, if it is from our term (Figure 8: an
    /// earlier term's entry is committed only indirectly, by committing one of ours after it).
    /// Returns whether the commit index moved.
    func maybeCommit(_ state: LeaderState) -> Bool {
        // Voters only (learners never count); ourselves only while we vote (a leader that
        // appended its own removal manages the cluster without counting itself, thesis §4.2.2).
        var matches = otherVoters.map { state.progress[$0]!.match }
        if isVoter { matches.append(log.persisted) }
        matches.sort(by: >)
        guard matches.count >= quorum else { return false }
        let candidate = matches[quorum - 1]
        // Above the commit point, so never compacted.
        guard candidate > log.commit, log.term(at: candidate) == .term(term) else { return false }
        log.commit(to: candidate)
        ownTermCommitted(state)
        if log.configurationIndex != 0, log.configurationIndex <= candidate { configurationCommitted(state) }
        return true
    }
}
