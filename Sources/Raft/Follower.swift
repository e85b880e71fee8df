/// The follower's step function and its handling of the leader's appends, heartbeats and snapshots.
extension RaftNode {
    func stepFollower(_ message: Message) {
        switch message.type {
        case .append:
            heardFromLeader(message.from)
            handleAppend(message)
        case .heartbeat:
            heardFromLeader(message.from)
            handleHeartbeat(message)
        case .snapshot:
            heardFromLeader(message.from)
            handleSnapshot(message)
        case .timeoutNow:
            // Our leader hands leadership to us (it checked that our log is complete): campaign now.
            guard message.from == leader, canCampaign else { return }
            becomeCandidate(transfer: true)
        case .preVote, .vote, .preVoteResponse, .voteResponse, .appendResponse, .heartbeatResponse:
            break
        }
    }

    private func heardFromLeader(_ id: UInt64) {
        electionElapsed = 0
        leader = id
        // A leader is there: campaigns deferred for lack of a state machine start counting anew.
        deferredElections = 0
    }

    /// AppendEntries (Raft Figure 2). The answer is sent only after what it acknowledges is durable.
    func handleAppend(_ append: Message) {
        if append.index < log.commit {
            // Old news below our commit point: our committed prefix matches any leader's, so say
            // how far it reaches and let the leader continue from there.
            send(Message(type: .appendResponse, from: config.id, to: append.from, term: term, index: log.commit))
            return
        }
        if log.matches(index: append.index, term: append.logTerm) {
            let lastNew = log.appendAsFollower(after: append.index, append.entries)
            // Only entries known to match the leader's log may be committed here.
            log.commit(to: min(append.commit, lastNew))
            send(Message(type: .appendResponse, from: config.id, to: append.from, term: term, index: lastNew))
            return
        }
        // Fast backtracking: name the conflicting term and where it starts in our log, so the
        // leader skips a whole term per round trip instead of one entry.
        let conflictTerm: UInt64
        switch log.term(at: append.index) {
        case .term(let term): conflictTerm = term
        case .beyondLog: conflictTerm = 0
        case .compacted: preconditionFailure("raft: compacted index \(append.index) is below commit \(log.commit), handled above")
        }
        let hint = conflictTerm == 0 ? log.lastIndex + 1 : log.firstIndex(ofTermAt: append.index)
        send(Message(type: .appendResponse, from: config.id, to: append.from, term: term,
                     index: append.index, reject: true, rejectHint: hint, rejectTerm: conflictTerm))
    }

    func handleHeartbeat(_ heartbeat: Message) {
        // The leader sends min(its commit, our match), which our log holds, unless we lost our
        // log since it recorded that match (a wiped or replaced data dir). A peer's message must
        // never stop this process: commit nothing (we do not hold those entries) and tell the
        // leader where our log really ends, so it replicates (or sends its snapshot) from there.
        guard heartbeat.commit <= log.lastIndex else {
            send(Message(type: .heartbeatResponse, from: config.id, to: heartbeat.from, term: term,
                         index: log.lastIndex, reject: true, readRound: heartbeat.readRound))
            return
        }
        log.commit(to: heartbeat.commit)
        send(Message(type: .heartbeatResponse, from: config.id, to: heartbeat.from, term: term, readRound: heartbeat.readRound))
    }

    /// The leader's snapshot, sent because the entries we need are compacted away on its side.
    /// The answer is an append response, so the leader resumes replication after the index it names.
    func handleSnapshot(_ message: Message) {
        guard let snapshot = message.snapshot else { return }  // malformed: nothing to act on
        if snapshot.index <= log.commit {
            // Stale or duplicated: we are already past it; say how far.
            send(Message(type: .appendResponse, from: config.id, to: message.from, term: term, index: log.commit))
            return
        }
        if log.matches(index: snapshot.index, term: snapshot.term) {
            // Our log already holds the snapshot's last entry, so (log matching) all of its
            // prefix: commit and apply entries as usual instead of replacing the state machine.
            log.commit(to: snapshot.index)
        } else {
            // Our log is missing or conflicts at the snapshot's index: nothing of it is worth
            // keeping. Nothing committed is lost: the snapshot is committed state reaching past
            // our commit index, so it contains (and agrees with) our whole committed prefix.
            log.restore(snapshot)
            self.snapshot = snapshot
            pendingSnapshot = snapshot
        }
        // Queued after persistence: it vouches for the snapshot (or the entries) being durable.
        send(Message(type: .appendResponse, from: config.id, to: message.from, term: term, index: snapshot.index))
    }
}
