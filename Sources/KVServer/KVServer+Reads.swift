import EventLoop
import Wire

/// Gets without the log: read index from raftd, then the state machine once it has applied it.
extension KVServer {
    /// Sends this loop pass's Gets to raftd under one read id (one heartbeat round serves them all).
    func flushReads() {
        guard !reads.batch.isEmpty else { return }
        guard raftReady, leadership.isLeader, let connection = raftLink.connection else {
            let waiters = reads.takeAll()
            return answer(reads: waiters, status: .wrongLeader, message: "leadership changed before the read was sent")
        }
        let id = nextReadID
        nextReadID += 1
        let deadline = EventLoop.monotonicNanos() + UInt64(config.requestTimeoutMs * 1_000_000)
        _ = reads.sendBatch(id: id, deadline: deadline)
        scratch.removeAll(keepingCapacity: true)
        KvdToRaft.read(ids: [id]).appendFrame(to: &scratch)
        connection.write(scratch)
    }

    func readResult(_ result: ReadResult) {
        guard let batch = reads.awaitingIndex.removeValue(forKey: result.readID) else { return }  // expired or failed
        switch result.outcome {
        case let .ready(index, term):
            batch.index = index
            batch.term = term
            reads.indexKnown(batch)
            answerAppliedReads()
        case let .notLeader(leaderID):
            if leaderID != 0 && leaderID != config.nodeID {
                leadership = Leadership(term: leadership.term, leaderID: leaderID, isLeader: false)
            }
            answer(reads: reads.finished(batch), status: .wrongLeader, message: "not the leader")
        case .useLog:
            // raftd runs --read-mode log: these Gets, and every later one, go through the log.
            if !readsThroughLog { logger.info("raftd serves reads through the log (--read-mode log)") }
            readsThroughLog = true
            for waiter in reads.finished(batch) { propose(waiter.request, from: waiter.client) }
        }
    }

    /// Answers every Get whose read index is now applied, from the state machine as it is: it
    /// holds every write that completed before the Get arrived.
    func answerAppliedReads() {
        for batch in reads.takeApplied(through: machine.appliedIndex) {
            for waiter in batch.takeWaiters() {
                let result = machine.read(waiter.request.key)
                metrics?.answered(.get, result.status)
                waiter.client.reply(KvResponse(requestID: waiter.request.requestID, status: result.status, value: result.value,
                                               leaderTerm: batch.term))
            }
        }
    }

    func answer(reads waiters: [ReadWaiter], status: Status, message: String) {
        let hint = leadership.leaderID == 0 || leadership.isLeader ? "" : String(leadership.leaderID)
        for waiter in waiters {
            metrics?.answered(.get, status)
            waiter.client.reply(KvResponse(requestID: waiter.request.requestID, status: status, leaderHint: hint, message: message,
                                           leaderTerm: hint.isEmpty ? 0 : leadership.term))
        }
    }
}
