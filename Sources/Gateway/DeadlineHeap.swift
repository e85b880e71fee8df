/// The core's one timer queue (attempt deadlines, request deadlines, retry backoffs, status
/// query timeouts): entries come out earliest first, equal times in insertion order, from an
/// in-order queue and a binary min-heap. Entries are never removed early; each is
/// checked for staleness when it comes due, and each is due no later than the deadline of the
/// request or query that made it, so the heap holds no more than those live ones make.
struct DeadlineHeap<Payload> {
    private struct Item {
        let at: UInt64
        let order: UInt64
        let payload: Payload
    }

    /// Entries inserted in time order (nearly all: an attempt is due a fixed time after it is
    /// sent), kept as a queue: O(1) in and out, where a heap of ~rate × attempt timeout entries
    /// cost a cache-missing sift per request.
    private var inOrder: [Item] = []
    private var inOrderHead = 0
    /// The rest, due before the newest queued entry: a binary min-heap.
    private var heap: [Item] = []
    /// Ties break by insertion order, so runs are deterministic.
    private var nextOrder: UInt64 = 0

    var isEmpty: Bool { count == 0 }
    var count: Int { inOrder.count - inOrderHead + heap.count }
    var earliest: UInt64? { takesFromQueue.map { $0 ? inOrder[inOrderHead].at : heap[0].at } }

    mutating func insert(at time: UInt64, _ payload: Payload) {
        let item = Item(at: time, order: nextOrder, payload: payload)
        nextOrder += 1
        if inOrderHead == inOrder.count || inOrder[inOrder.count - 1].at <= time {
            inOrder.append(item)
            return
        }
        heap.append(item)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard precedes(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    mutating func popDue(now: UInt64) -> Payload? {
        guard let fromQueue = takesFromQueue else { return nil }
        if fromQueue {
            let first = inOrder[inOrderHead]
            guard first.at <= now else { return nil }
            inOrderHead += 1
            if inOrderHead == inOrder.count {
                inOrder.removeAll(keepingCapacity: true)
                inOrderHead = 0
            } else if inOrderHead >= 1024 && inOrderHead * 2 >= inOrder.count {
                inOrder.removeFirst(inOrderHead)
                inOrderHead = 0
            }
            return first.payload
        }
        let first = heap[0]
        guard first.at <= now else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var smallest = parent
                if left < heap.count, precedes(heap[left], heap[smallest]) { smallest = left }
                if right < heap.count, precedes(heap[right], heap[smallest]) { smallest = right }
                if smallest == parent { break }
                heap.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return first.payload
    }

    /// Whether the earliest entry is the queue's (true) or the heap's (false); nil when empty.
    private var takesFromQueue: Bool? {
        let queued = inOrderHead < inOrder.count
        if !queued { return heap.isEmpty ? nil : false }
        if heap.isEmpty { return true }
        return precedes(inOrder[inOrderHead], heap[0])
    }

    private func precedes(_ a: Item, _ b: Item) -> Bool {
        a.at < b.at || (a.at == b.at && a.order < b.order)
    }
}
