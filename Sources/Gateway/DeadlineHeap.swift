/// A binary min-heap of timed entries: the core's one timer queue (attempt deadlines, request
/// deadlines, retry backoffs, status query timeouts). Entries are never removed early; each is
/// checked for staleness when it comes due, and each is due no later than the deadline of the
/// request or query that made it, so the heap holds no more than those live ones make.
struct DeadlineHeap<Payload> {
    private struct Item {
        let at: UInt64
        let order: UInt64
        let payload: Payload
    }

    private var items: [Item] = []
    /// Ties break by insertion order, so runs are deterministic.
    private var nextOrder: UInt64 = 0

    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }
    var earliest: UInt64? { items.first?.at }

    mutating func insert(at time: UInt64, _ payload: Payload) {
        items.append(Item(at: time, order: nextOrder, payload: payload))
        nextOrder += 1
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard precedes(child, parent) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    mutating func popDue(now: UInt64) -> Payload? {
        guard let first = items.first, first.at <= now else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var smallest = parent
                if left < items.count, precedes(left, smallest) { smallest = left }
                if right < items.count, precedes(right, smallest) { smallest = right }
                if smallest == parent { break }
                items.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return first.payload
    }

    private func precedes(_ a: Int, _ b: Int) -> Bool {
        items[a].at < items[b].at || (items[a].at == items[b].at && items[a].order < items[b].order)
    }
}
