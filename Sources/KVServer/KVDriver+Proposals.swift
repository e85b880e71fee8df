import KVStore
import Wire

/// Writes through the log: group commit, raftd's results, applying committed entries and
/// answering the request each one carries.
extension KVDriver {
    /// Adds a command to the batch proposed next.
    mutating func propose(client: UInt64, _ request: KvRequest, now: KVTime) {
        let command = Command(clientID: request.clientID, seq: request.seq, op: request.op, key: request.key, value: request.value)
        let size = request.key.count + request.value.count + 32
        if pending.batchBytes + size > config.maxProposalBytes && !pending.isBatchEmpty {
            flushProposals(now: now)
        }
        pending.addToBatch(command, Waiter(client: client, requestID: request.requestID, op: request.op), bytes: size)
        scheduleFlush(now: now)
    }

    /// Proposes the batch at the end of this loop pass if fewer than `maxProposalsInFlight`
    /// proposals are being committed; otherwise when one of them finishes (`proposeIfRoom`),
    /// or once `groupCommitMaxWait` has passed.
    private mutating func scheduleFlush(now: KVTime) {
        if hasRoomForProposal {
            proposalFlushDue = true
            return requestPassEnd()
        }
        if groupCommitDeadline == nil {
            groupCommitDeadline = now.monotonicNanos + config.groupCommitMaxWait.wholeNanoseconds
        }
    }

    var hasRoomForProposal: Bool {
        config.maxProposalsInFlight == 0 || pending.inFlight.count < config.maxProposalsInFlight
    }

    /// A proposal finished (applied, refused or expired): the batch held back for it goes now.
    mutating func proposeIfRoom() {
        guard !pending.isBatchEmpty, hasRoomForProposal else { return }
        proposalFlushDue = true
        requestPassEnd()
    }

    /// Sends everything batched since the last flush as one proposal (one log entry).
    mutating func flushProposals(now: KVTime) {
        groupCommitDeadline = nil
        proposalFlushDue = false
        guard !pending.isBatchEmpty else { return }
        let (commands, waiters) = pending.takeBatch()
        guard raftAttached, leadership.isLeader else {
            pending.finish(waiters: waiters.count)
            return answer(waiters, status: .wrongLeader, message: "leadership changed before proposing")
        }
        let batch = CommandBatch(timestampMs: now.wallClockMillis, commands: commands)
        sendProposal(batch, waiters: waiters, now: now)
    }

    private mutating func sendProposal(_ batch: CommandBatch, waiters: [Waiter], now: KVTime) {
        let id = nextProposalID
        nextProposalID += 1
        let deadline = now.monotonicNanos + config.requestTimeout.wholeNanoseconds
        pending.add(ProposalInFlight(id: id, waiters: waiters, deadline: deadline))
        send(.propose([Proposal(proposalID: id, data: batch.serialized())]))
    }

    mutating func proposalResult(_ result: ProposeResult) {
        guard let proposal = pending.inFlight[result.proposalID], proposal.index == 0 else { return }
        if result.accepted && result.term == leadership.term && leadership.isLeader {
            if let displaced = pending.placed(proposal.id, index: result.index, term: result.term),
               let taken = pending.finish(displaced) {
                answer(taken.waiters, status: .wrongLeader, message: "log position reused")
            }
            return
        }
        // Refused: the waiters go to the leader raftd names. Our view of leadership stays
        // raftd's last report: a leader refuses during a handover that may yet be abandoned
        // (and then no leadership news follows), and taking the refusal for a step-down left
        // this kvd redirecting to a follower that redirected back, for the rest of the term.
        let refused = pending.finish(proposal.id)!
        answer(refused.waiters, status: .wrongLeader, message: "not the leader", naming: result.accepted ? 0 : result.leaderID)
        proposeIfRoom()
    }

    mutating func apply(_ entry: LogEntry, now: KVTime) {
        guard entry.index == machine.appliedIndex + 1 else {
            if entry.index <= machine.appliedIndex { return }  // already applied: a replay after reconnect
            if snapshotRefused { return }  // raftd streamed past the snapshot we refused; it resends it
            log(.critical, "raftd skipped entries: got \(entry.index) after \(machine.appliedIndex); reconnecting")
            return resetRaftLink(reason: "gap in the committed stream")
        }
        snapshotRefused = false  // entries follow on again: raftd has heard of the refusal
        var results: [CommandResult] = []
        if entry.isNoop || entry.data.isEmpty {
            machine.applyNoop(index: entry.index)
        } else {
            do {
                let batch = try CommandBatch(serialized: entry.data)
                results = machine.apply(batch: batch, index: entry.index)
            } catch {
                // Deterministic on every replica: the same bytes fail everywhere.
                log(.error, "log entry \(entry.index) is not a command batch (\(error)); skipped")
                machine.applyNoop(index: entry.index)
            }
        }
        precondition(machine.appliedIndex == entry.index, "the state machine applies the entry it is given")
        reportLimitsIfChanged()
        proposeLimitsIfDue(afterApplying: entry, now: now)
        answerAppliedReads()
        guard let id = pending.byIndex[entry.index], let proposal = pending.finish(id) else { return }
        defer { proposeIfRoom() }
        if proposal.term == entry.term && results.count == proposal.waiters.count {
            for (waiter, result) in zip(proposal.waiters, results) {
                // An applied Append is refused past the stored-value cap (or, as any write, below its session's seq).
                let message = result.status == .badRequest && waiter.op == .append
                    ? "not applied: the value would exceed \(Limits.maxStoredValueBytes) bytes (the most one key holds), or the seq is below this client's last" : ""
                reply(waiter.client, KvResponse(requestID: waiter.requestID, status: result.status, value: result.value,
                                                message: message, leaderTerm: entry.term), op: waiter.op)
            }
        } else {
            // Another leader's entry took this position: ours was never applied.
            answer(proposal.waiters, status: .wrongLeader, message: "log position taken by another leader's entry")
        }
    }

    // MARK: Session limits

    /// Once this node leads and has applied an entry of its own term (so every limits entry
    /// of earlier leaders is applied here), it proposes its flags' limits if the replicated
    /// ones differ: once per term, as an entry without commands and without waiters.
    private mutating func proposeLimitsIfDue(afterApplying entry: LogEntry, now: KVTime) {
        let requested = config.requestedSessionLimits
        guard leadership.isLeader, entry.term == leadership.term, limitsProposedInTerm != leadership.term,
              machine.limits != requested, raftAttached else { return }
        limitsProposedInTerm = leadership.term
        log(.notice, "proposing this kvd's session limits (replicated \(machine.limits), proposed \(requested), term \(leadership.term))")
        sendProposal(CommandBatch(timestampMs: now.wallClockMillis, commands: [], setLimits: requested), waiters: [], now: now)
    }

    /// Logs the replicated limits when they change, and says so when this kvd's flags differ
    /// (they act only through a leader's proposal).
    mutating func reportLimitsIfChanged() {
        guard machine.limits != reportedLimits else { return }
        reportedLimits = machine.limits
        let requested = config.requestedSessionLimits
        if machine.limits == requested {
            log(.info, "session limits in force: \(machine.limits)")
        } else {
            log(.notice, "the replicated session limits differ from this kvd's flags, which take effect only once this node leads and proposes them (replicated \(machine.limits), flags \(requested))")
        }
    }
}
