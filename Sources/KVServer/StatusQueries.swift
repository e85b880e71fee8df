import EventLoop

/// Status queries sent to raftd and not yet answered, oldest first. Every one gets an answer:
/// raftd's, or — when raftd does not answer within the deadline (frozen, or stuck behind a
/// slow disk) or its link drops — kvd's own view with an error. There is no cap on how many
/// wait: each is a client's request, bounded by the connection cap and the output budget.
///
/// Way out of every entry: raftd's answer, the link dropping (`takeAll`), or its deadline
/// (`takeExpired`, called from a timer that is scheduled whenever an entry waits).
struct StatusQueries {
    private var waiting: [UInt64: Waiter] = [:]
    /// Query ids with their deadlines, in the order they were asked (ids and deadlines both grow).
    private var byAge: [(id: UInt64, deadline: UInt64)] = []
    private var head = 0
    private var nextID: UInt64 = 1

    var count: Int { waiting.count }

    /// Registers a waiter; returns the query id to send raftd.
    mutating func add(_ waiter: Waiter, deadline: UInt64) -> UInt64 {
        let id = nextID
        nextID += 1
        assert(byAge.last.map { $0.deadline <= deadline } ?? true, "status deadlines must not go backwards")
        waiting[id] = waiter
        byAge.append((id, deadline))
        return id
    }

    /// raftd's answer arrived: who asked (nil if it was already answered otherwise).
    mutating func answer(_ id: UInt64) -> Waiter? {
        waiting.removeValue(forKey: id)
    }

    /// The waiters whose deadline passed and raftd did not answer.
    mutating func takeExpired(now: UInt64) -> [Waiter] {
        var expired: [Waiter] = []
        while head < byAge.count, byAge[head].deadline <= now {
            if let waiter = waiting.removeValue(forKey: byAge[head].id) { expired.append(waiter) }
            head += 1
        }
        compact()
        return expired
    }

    mutating func takeAll() -> [Waiter] {
        let all = Array(waiting.values)
        waiting.removeAll()
        byAge.removeAll()
        head = 0
        return all
    }

    /// When the oldest query still waiting expires (entries answered by raftd are skipped).
    mutating func nextDeadline() -> UInt64? {
        while head < byAge.count, waiting[byAge[head].id] == nil { head += 1 }
        compact()
        return head < byAge.count ? byAge[head].deadline : nil
    }

    private mutating func compact() {
        if head == byAge.count {
            byAge.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024, head * 2 >= byAge.count {
            byAge.removeFirst(head)
            head = 0
        }
    }
}
