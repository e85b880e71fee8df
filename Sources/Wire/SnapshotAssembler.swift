/// Reassembles a snapshot from its chunks as they arrive on one link, in memory (the order
/// rules are `SnapshotChunkOrder`'s).
public struct SnapshotAssembler: Sendable {
    public struct Complete: Sendable, Hashable {
        public var index: UInt64
        public var term: UInt64
        public var data: [UInt8]

        public init(index: UInt64, term: UInt64, data: [UInt8]) {
            self.index = index
            self.term = term
            self.data = data
        }
    }

    private var order: SnapshotChunkOrder
    private var data: [UInt8] = []

    public static let defaultMaxTotalSize = SnapshotChunkOrder.defaultMaxTotalSize

    public init(maxTotalSize: UInt64 = SnapshotAssembler.defaultMaxTotalSize) {
        order = SnapshotChunkOrder(maxTotalSize: maxTotalSize)
    }

    /// Largest snapshot accepted (bounds the memory a peer can make us hold).
    public var maxTotalSize: UInt64 { order.maxTotalSize }

    /// Bytes of the unfinished snapshot held so far.
    public var bufferedBytes: Int { data.count }

    /// Adds one chunk; returns the snapshot it completes, if any.
    public mutating func add(_ chunk: SnapshotChunk) throws(WireError) -> Complete? {
        let step: SnapshotChunkOrder.Step
        do {
            step = try order.accept(chunk)
        } catch {
            data = []
            throw error
        }
        if step.startsNew {
            data = []
            data.reserveCapacity(Int(chunk.totalSize))
        }
        data.append(contentsOf: chunk.data)
        guard step.completes else { return nil }
        let complete = Complete(index: chunk.index, term: chunk.term, data: data)
        data = []
        return complete
    }

    public mutating func reset() {
        order.reset()
        data = []
    }
}
