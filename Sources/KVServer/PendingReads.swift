import Wire

/// A Get answered without the log, waiting for its read index and then for kvd to apply it.
struct ReadWaiter: Equatable {
    let client: UInt64
    let request: KvRequest
}

/// The Gets of one loop pass, sent to raftd under one read id.
struct ReadBatch {
    let id: UInt64
    var waiters: [ReadWaiter]
    /// Monotonic nanoseconds after which the waiters get TIMEOUT.
    let deadline: UInt64
    /// The read index and leader term raftd answered, once it did (`indexKnown`).
    var indexKnown = false
    var index: UInt64 = 0
    var term: UInt64 = 0
}

/// Every Get kvd owes an answer under ReadIndex or a lease: gathered in a loop pass, then
/// waiting for raftd's read index, then for the state machine to apply it. Each leaves by its
/// answer, its deadline, a refusal from raftd, leadership lost, or raftd detached.
struct PendingReads {
    /// Accepted this loop pass, not yet sent to raftd.
    private(set) var batch: [ReadWaiter] = []
    /// Sent to raftd and not answered, by read id.
    private(set) var sent: [UInt64: ReadBatch] = [:]
    /// (index, read id) of batches whose read index is known, ascending by index; batches
    /// answered otherwise meanwhile are skipped.
    private var awaitingApply: [(index: UInt64, id: UInt64)] = []
    private var awaitingApplyHead = 0
    /// Batches in creation order with their deadlines; answered ones are skipped.
    private var byAge = DeadlineQueue()
    /// Waiters not yet answered.
    private(set) var count = 0

    mutating func add(_ waiter: ReadWaiter) {
        batch.append(waiter)
        count += 1
    }

    /// Moves this pass's Gets into a batch waiting for raftd under `id`.
    mutating func sendBatch(id: UInt64, deadline: UInt64) {
        precondition(!batch.isEmpty && sent[id] == nil, "a read batch holds Gets and a fresh id")
        sent[id] = ReadBatch(id: id, waiters: batch, deadline: deadline)
        batch.removeAll(keepingCapacity: true)
        byAge.append(id: id, deadline: deadline)
    }

    /// Whether read `id` is still waiting for raftd's index.
    func awaitsIndex(_ id: UInt64) -> Bool { sent[id].map { !$0.indexKnown } ?? false }

    /// raftd answered read `id` with a read index: it now waits for kvd to apply it.
    mutating func indexKnown(_ id: UInt64, index: UInt64, term: UInt64) {
        precondition(awaitsIndex(id), "a read index is recorded once")
        sent[id]!.indexKnown = true
        sent[id]!.index = index
        sent[id]!.term = term
        // Read indexes come in nondecreasing order in a term; an earlier one slots in behind.
        var position = awaitingApply.count
        while position > awaitingApplyHead, awaitingApply[position - 1].index > index { position -= 1 }
        awaitingApply.insert((index, id), at: position)
    }

    /// Batches whose index is applied (`applied`), oldest index first.
    mutating func takeApplied(through applied: UInt64) -> [ReadBatch] {
        var ready: [ReadBatch] = []
        while awaitingApplyHead < awaitingApply.count, awaitingApply[awaitingApplyHead].index <= applied {
            if let batch = finish(awaitingApply[awaitingApplyHead].id) { ready.append(batch) }
            awaitingApplyHead += 1
        }
        if awaitingApplyHead == awaitingApply.count {
            awaitingApply.removeAll(keepingCapacity: true)
            awaitingApplyHead = 0
        } else if awaitingApplyHead > 1024 && awaitingApplyHead * 2 > awaitingApply.count {
            awaitingApply.removeFirst(awaitingApplyHead)
            awaitingApplyHead = 0
        }
        return ready
    }

    /// Marks batch `id` answered (or refused) and hands it over.
    mutating func finish(_ id: UInt64) -> ReadBatch? {
        guard let batch = sent.removeValue(forKey: id) else { return nil }
        count -= batch.waiters.count
        precondition(count >= 0, "more reads answered than pending")
        return batch
    }

    /// Takes this pass's Gets without sending them.
    mutating func takeBatch() -> [ReadWaiter] {
        defer { batch.removeAll(keepingCapacity: true) }
        count -= batch.count
        return batch
    }

    /// Waiters whose deadline passed, wherever they wait.
    mutating func takeExpired(now: UInt64) -> [ReadWaiter] {
        var expired: [ReadWaiter] = []
        while let oldest = byAge.first, oldest.deadline <= now {
            _ = byAge.popFirst()
            if let batch = finish(oldest.id) { expired.append(contentsOf: batch.waiters) }
        }
        return expired
    }

    /// The oldest queued deadline, which may belong to an entry already finished (at or
    /// before `nextDeadline()`; no lookup).
    var oldestQueuedDeadline: UInt64? { byAge.first?.deadline }

    /// When the oldest unanswered batch expires.
    mutating func nextDeadline() -> UInt64? {
        while let oldest = byAge.first, sent[oldest.id] == nil { _ = byAge.popFirst() }
        return byAge.first?.deadline
    }

    mutating func takeAll() -> [ReadWaiter] {
        var all = batch
        for entry in byAge.entries { if let waiting = sent[entry.id] { all.append(contentsOf: waiting.waiters) } }
        batch.removeAll()
        sent.removeAll()
        awaitingApply.removeAll()
        awaitingApplyHead = 0
        byAge.removeAll()
        count = 0
        return all
    }
}
