/// A first-in first-out queue with amortized O(1) `append` and `removeFirst`: an array
/// plus a head index, compacted once the consumed prefix is at least half the storage.
struct FIFOQueue<Element: Equatable & Sendable>: Equatable, Sendable {
    private var storage: [Element] = []
    private var head = 0

    var count: Int { storage.count - head }
    var isEmpty: Bool { head == storage.count }
    var first: Element? { isEmpty ? nil : storage[head] }
    /// The elements, first to last.
    var elements: ArraySlice<Element> { storage[head...] }

    mutating func append(_ element: Element) {
        storage.append(element)
    }

    @discardableResult
    mutating func removeFirst() -> Element {
        precondition(!isEmpty, "removeFirst on an empty FIFOQueue")
        let element = storage[head]
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64 && head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return element
    }

    /// Keeps only the elements for which `isIncluded` is true, in order. O(count).
    mutating func retain(where isIncluded: (Element) -> Bool) {
        storage = storage[head...].filter(isIncluded)
        head = 0
    }

    /// Two queues are equal when they hold the same elements in the same order,
    /// whatever their consumed prefixes.
    static func == (lhs: FIFOQueue, rhs: FIFOQueue) -> Bool {
        lhs.storage[lhs.head...] == rhs.storage[rhs.head...]
    }
}
