/// Status queries and member commands sent to raftd and not yet answered, oldest first. Every
/// one gets an answer: raftd's, or — when raftd does not answer within the deadline (frozen,
/// or stuck behind a slow disk) or its link drops — kvd's own. There is no cap on how many
/// wait: each is a client's request, bounded by the connection cap and the output budget.
///
/// Way out of every entry: raftd's answer, the link dropping (`takeAll`), or its deadline
/// (`takeExpired`; the driver's timer is armed for `nextDeadline`).
struct StatusQueries {
    private var waiting: [UInt64: Waiter] = [:]
    /// Query ids with their deadlines, in the order they were asked (ids and deadlines both grow).
    private var byAge = DeadlineQueue()
    private var nextID: UInt64 = 1

    var count: Int { waiting.count }

    /// Registers a waiter; returns the query id to send raftd.
    mutating func add(_ waiter: Waiter, deadline: UInt64) -> UInt64 {
        let id = nextID
        nextID += 1
        waiting[id] = waiter
        byAge.append(id: id, deadline: deadline)
        return id
    }

    /// raftd's answer arrived: who asked (nil if it was already answered otherwise).
    mutating func answer(_ id: UInt64) -> Waiter? {
        waiting.removeValue(forKey: id)
    }

    /// The waiters whose deadline passed and raftd did not answer.
    mutating func takeExpired(now: UInt64) -> [Waiter] {
        var expired: [Waiter] = []
        while let oldest = byAge.first, oldest.deadline <= now {
            _ = byAge.popFirst()
            if let waiter = waiting.removeValue(forKey: oldest.id) { expired.append(waiter) }
        }
        return expired
    }

    /// Every waiter, oldest first.
    mutating func takeAll() -> [Waiter] {
        let all = byAge.entries.compactMap { waiting[$0.id] }
        waiting.removeAll()
        byAge.removeAll()
        return all
    }

    /// The oldest queued deadline, which may belong to an entry already finished (at or
    /// before `nextDeadline()`; no lookup).
    var oldestQueuedDeadline: UInt64? { byAge.first?.deadline }

    /// When the oldest query still waiting expires (entries answered by raftd are skipped).
    mutating func nextDeadline() -> UInt64? {
        while let oldest = byAge.first, waiting[oldest.id] == nil { _ = byAge.popFirst() }
        return byAge.first?.deadline
    }
}
