import Wire

/// A client request waiting for an answer: who asked, under which request id, and what (for
/// the request counters).
struct Waiter: Equatable {
    let client: UInt64
    let requestID: UInt64
    var op: Op = .get
}

/// Commands proposed together as one log entry, and who waits for each.
struct ProposalInFlight {
    let id: UInt64
    var waiters: [Waiter]
    /// Monotonic nanoseconds after which the waiters get TIMEOUT.
    let deadline: UInt64
    /// Where raftd appended it, once it said so (0: not yet).
    var index: UInt64 = 0
    var term: UInt64 = 0
}

/// Every write kvd owes an answer, from arrival until its entry applies, its leader loses the
/// term, its log position is taken by another entry, or its deadline passes.
struct PendingRequests {
    /// Accepted from clients, not yet sent to raftd.
    private(set) var batchCommands: [Command] = []
    private(set) var batchWaiters: [Waiter] = []
    private(set) var batchBytes = 0
    /// Sent to raftd and not finished, by proposal id: waiting for (index, term), then to apply.
    private(set) var inFlight: [UInt64: ProposalInFlight] = [:]
    /// Proposal ids by the log index raftd appended them at.
    private(set) var byIndex: [UInt64: UInt64] = [:]
    /// Proposal ids in creation order with their deadlines (deadlines grow with creation);
    /// finished ones are skipped.
    private var byAge = DeadlineQueue()
    /// Waiters not answered yet, batched or in flight.
    private(set) var count = 0

    var isBatchEmpty: Bool { batchCommands.isEmpty }

    mutating func addToBatch(_ command: Command, _ waiter: Waiter, bytes: Int) {
        batchCommands.append(command)
        batchWaiters.append(waiter)
        batchBytes += bytes
        count += 1
    }

    /// Empties the batch (its waiters stay counted until `add` or `finish(waiters:)`).
    mutating func takeBatch() -> (commands: [Command], waiters: [Waiter]) {
        defer {
            batchCommands.removeAll(keepingCapacity: true)
            batchWaiters.removeAll(keepingCapacity: true)
            batchBytes = 0
        }
        return (batchCommands, batchWaiters)
    }

    /// A batch sent to raftd.
    mutating func add(_ proposal: ProposalInFlight) {
        precondition(inFlight[proposal.id] == nil, "proposal ids are never reused")
        inFlight[proposal.id] = proposal
        byAge.append(id: proposal.id, deadline: proposal.deadline)
    }

    /// Waiters answered without being sent (taken with `takeBatch`).
    mutating func finish(waiters: Int) {
        count -= waiters
        precondition(count >= 0, "more requests answered than pending")
    }

    /// raftd appended proposal `id` at (index, term): returns the proposal that held that
    /// position before (another leader's entry will take it), if any.
    mutating func placed(_ id: UInt64, index: UInt64, term: UInt64) -> UInt64? {
        precondition(index > 0, "log indexes start at 1")
        inFlight[id]!.index = index
        inFlight[id]!.term = term
        return byIndex.updateValue(id, forKey: index)
    }

    /// Marks proposal `id` answered and hands over its waiters.
    mutating func finish(_ id: UInt64) -> ProposalInFlight? {
        guard let proposal = inFlight.removeValue(forKey: id) else { return nil }
        if proposal.index != 0, byIndex[proposal.index] == id { byIndex[proposal.index] = nil }
        finish(waiters: proposal.waiters.count)
        return proposal
    }

    /// Removes and returns proposals whose deadline has passed and that are still unanswered.
    mutating func takeExpired(now: UInt64) -> [ProposalInFlight] {
        var expired: [ProposalInFlight] = []
        while let oldest = byAge.first, oldest.deadline <= now {
            _ = byAge.popFirst()
            if let proposal = finish(oldest.id) { expired.append(proposal) }
        }
        return expired
    }

    /// The oldest queued deadline, which may belong to an entry already finished (at or
    /// before `nextDeadline()`; no lookup).
    var oldestQueuedDeadline: UInt64? { byAge.first?.deadline }

    /// When the oldest unanswered proposal expires.
    mutating func nextDeadline() -> UInt64? {
        while let oldest = byAge.first, inFlight[oldest.id] == nil { _ = byAge.popFirst() }
        return byAge.first?.deadline
    }

    mutating func takeAll() -> [Waiter] {
        var all = batchWaiters
        for id in inFlight.keys.sorted() { all.append(contentsOf: inFlight[id]!.waiters) }
        batchCommands.removeAll()
        batchWaiters.removeAll()
        batchBytes = 0
        inFlight.removeAll()
        byIndex.removeAll()
        byAge.removeAll()
        count = 0
        return all
    }
}
