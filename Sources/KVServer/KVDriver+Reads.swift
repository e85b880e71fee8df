import Wire

/// Gets without the log: read index from raftd, then the state machine once it has applied it.
extension KVDriver {
    /// Sends this loop pass's Gets to raftd under one read id (one heartbeat round serves them all).
    mutating func flushReads(now: KVTime) {
        guard !reads.batch.isEmpty else { return }
        guard raftAttached, leadership.isLeader else {
            return answer(reads: reads.takeBatch(), status: .wrongLeader, message: "leadership changed before the read was sent")
        }
        let id = nextReadID
        nextReadID += 1
        reads.sendBatch(id: id, deadline: now.monotonicNanos + config.requestTimeout.wholeNanoseconds)
        send(.read(ids: [id]))
    }

    mutating func readResult(_ result: ReadResult, now: KVTime) {
        guard reads.awaitsIndex(result.readID) else { return }  // expired or failed
        switch result.outcome {
        case let .ready(index, term):
            reads.indexKnown(result.readID, index: index, term: term)
            answerAppliedReads()
        case let .notLeader(leaderID):
            // As for a refused proposal: the hint for these Gets, not a change of leadership.
            answer(reads: reads.finish(result.readID)!.waiters, status: .wrongLeader, message: "not the leader", naming: leaderID)
        case .useLog:
            // raftd runs --read-mode log: these Gets, and every later one, go through the log.
            if !readsThroughLog { log(.info, "raftd serves reads through the log (--read-mode log)") }
            readsThroughLog = true
            for waiter in reads.finish(result.readID)!.waiters { propose(client: waiter.client, waiter.request, now: now) }
        }
    }

    /// Answers every Get whose read index is now applied, from the state machine as it is: it
    /// holds every write that completed before the Get arrived.
    mutating func answerAppliedReads() {
        for batch in reads.takeApplied(through: machine.appliedIndex) {
            precondition(batch.index <= machine.appliedIndex, "a read is answered only once its index is applied")
            for waiter in batch.waiters {
                let result = machine.read(waiter.request.key)
                reply(waiter.client, KvResponse(requestID: waiter.request.requestID, status: result.status, value: result.value,
                                                leaderTerm: batch.term), op: .get)
            }
        }
    }
}
