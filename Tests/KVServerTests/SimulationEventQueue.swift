/// The simulation's agenda: events by time, ties in the order they were scheduled, so a seed
/// replays exactly. The heap holds only (time, seq, slot); events stay put in their slots (a
/// debug build copies a large enum slowly, and a heap moves its entries often).
struct SimulationEventQueue<Event> {
    private struct Key {
        var time: UInt64
        var seq: UInt64
        var slot: Int

        func isBefore(_ other: Key) -> Bool { time != other.time ? time < other.time : seq < other.seq }
    }

    private var heap: [Key] = []
    private var slots: [Event?] = []
    private var freeSlots: [Int] = []
    private var nextSeq: UInt64 = 0

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }

    mutating func schedule(_ event: Event, at time: UInt64) {
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            slots[slot] = event
        } else {
            slot = slots.count
            slots.append(event)
        }
        heap.append(Key(time: time, seq: nextSeq, slot: slot))
        nextSeq += 1
        var child = heap.count - 1
        let key = heap[child]
        while child > 0 {
            let parent = (child - 1) / 2
            guard key.isBefore(heap[parent]) else { break }
            heap[child] = heap[parent]
            child = parent
        }
        heap[child] = key
    }

    mutating func pop() -> (time: UInt64, event: Event)? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var first = last
                var firstIndex = -1
                if left < heap.count, heap[left].isBefore(first) { first = heap[left]; firstIndex = left }
                if right < heap.count, heap[right].isBefore(first) { first = heap[right]; firstIndex = right }
                guard firstIndex >= 0 else { break }
                heap[parent] = first
                parent = firstIndex
            }
            heap[parent] = last
        }
        let event = slots[top.slot].take()!
        freeSlots.append(top.slot)
        return (top.time, event)
    }
}
