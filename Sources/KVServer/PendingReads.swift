import ServiceSupport
import Wire

/// A Get answered without the log, waiting for its read index and then for kvd to apply it.
struct ReadWaiter {
    let client: ClientLink
    let request: KvRequest
}

/// The Gets of one loop pass, sent to raftd under one read id.
final class ReadBatch {
    let id: UInt64
    private(set) var waiters: [ReadWaiter]
    /// Monotonic nanoseconds after which the waiters get TIMEOUT.
    let deadline: UInt64
    /// The read index and leader term raftd answered, once it did.
    var index: UInt64 = 0
    var term: UInt64 = 0

    init(id: UInt64, waiters: [ReadWaiter], deadline: UInt64) {
        self.id = id
        self.waiters = waiters
        self.deadline = deadline
    }

    func takeWaiters() -> [ReadWaiter] {
        defer { waiters = [] }
        return waiters
    }
}

/// Every Get kvd owes an answer under ReadIndex or a lease: gathered in a loop pass, then
/// waiting for raftd's read index, then for the state machine to apply it. Each leaves by its
/// answer, its deadline, a refusal from raftd, leadership lost, or raftd detached.
struct PendingReads {
    /// Accepted this loop pass, not yet sent to raftd.
    var batch: [ReadWaiter] = []
    /// Sent to raftd, waiting for the read index, by read id.
    var awaitingIndex: [UInt64: ReadBatch] = [:]
    /// Read index known, waiting for kvd to apply it; ascending by index.
    private(set) var awaitingApply: [ReadBatch] = []
    private var awaitingApplyHead = 0
    /// Batches in creation order, for deadline sweeps (deadlines grow with creation).
    private var byAge: [ReadBatch] = []
    private var byAgeHead = 0
    /// Waiters not yet answered.
    private(set) var count = 0

    mutating func add(_ waiter: ReadWaiter) {
        batch.append(waiter)
        count += 1
    }

    /// Moves this pass's Gets into a batch waiting for raftd under `id`.
    mutating func sendBatch(id: UInt64, deadline: UInt64) -> ReadBatch {
        let sent = ReadBatch(id: id, waiters: batch, deadline: deadline)
        batch.removeAll(keepingCapacity: true)
        awaitingIndex[id] = sent
        byAge.append(sent)
        return sent
    }

    /// raftd answered `batch` with a read index: it now waits for kvd to apply it.
    mutating func indexKnown(_ batch: ReadBatch) {
        // Read indexes come in nondecreasing order in a term; an earlier one slots in behind.
        var position = awaitingApply.count
        while position > awaitingApplyHead, awaitingApply[position - 1].index > batch.index { position -= 1 }
        awaitingApply.insert(batch, at: position)
    }

    /// Batches whose index is applied (`applied`), oldest index first.
    mutating func takeApplied(through applied: UInt64) -> [ReadBatch] {
        var ready: [ReadBatch] = []
        while awaitingApplyHead < awaitingApply.count, awaitingApply[awaitingApplyHead].index <= applied {
            ready.append(awaitingApply[awaitingApplyHead])
            awaitingApplyHead += 1
        }
        compactAwaitingApply()
        for batch in ready { count -= batch.waiters.count }
        return ready
    }

    /// Marks `batch` answered (or refused) and hands over its waiters.
    mutating func finished(_ batch: ReadBatch) -> [ReadWaiter] {
        count -= batch.waiters.count
        return batch.takeWaiters()
    }

    /// Waiters whose deadline passed, wherever they wait.
    mutating func takeExpired(now: UInt64) -> [ReadWaiter] {
        var expired: [ReadWaiter] = []
        while byAgeHead < byAge.count, byAge[byAgeHead].deadline <= now {
            let batch = byAge[byAgeHead]
            byAgeHead += 1
            awaitingIndex[batch.id] = nil
            expired.append(contentsOf: finished(batch))
        }
        if byAgeHead > 1024 && byAgeHead * 2 > byAge.count {
            byAge.removeFirst(byAgeHead)
            byAgeHead = 0
        }
        // Expired batches still in `awaitingApply` hold no waiters; they leave when applied.
        return expired
    }

    mutating func takeAll() -> [ReadWaiter] {
        var all = batch
        for sent in byAge[byAgeHead...] { all.append(contentsOf: sent.takeWaiters()) }
        batch.removeAll()
        awaitingIndex.removeAll()
        awaitingApply.removeAll()
        awaitingApplyHead = 0
        byAge.removeAll()
        byAgeHead = 0
        count = 0
        return all
    }

    private mutating func compactAwaitingApply() {
        if awaitingApplyHead > 1024 && awaitingApplyHead * 2 > awaitingApply.count {
            awaitingApply.removeFirst(awaitingApplyHead)
            awaitingApplyHead = 0
        }
    }
}
