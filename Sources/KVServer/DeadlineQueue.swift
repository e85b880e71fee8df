/// Ids with their deadlines in the order they were added, which is also deadline order (each
/// deadline is its creation time plus one fixed timeout): an array and a head index,
/// compacted once the consumed prefix is at least half the storage.
struct DeadlineQueue {
    private var storage: [(id: UInt64, deadline: UInt64)] = []
    private var head = 0

    var isEmpty: Bool { head == storage.count }
    var count: Int { storage.count - head }
    var first: (id: UInt64, deadline: UInt64)? { isEmpty ? nil : storage[head] }
    var last: (id: UInt64, deadline: UInt64)? { isEmpty ? nil : storage[storage.count - 1] }
    /// The entries, oldest first.
    var entries: ArraySlice<(id: UInt64, deadline: UInt64)> { storage[head...] }

    mutating func append(id: UInt64, deadline: UInt64) {
        precondition(last.map { $0.deadline <= deadline } ?? true, "deadlines must not go backwards")
        storage.append((id, deadline))
    }

    mutating func popFirst() -> (id: UInt64, deadline: UInt64)? {
        guard !isEmpty else { return nil }
        let entry = storage[head]
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024 && head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return entry
    }

    mutating func removeAll() {
        storage.removeAll()
        head = 0
    }
}
