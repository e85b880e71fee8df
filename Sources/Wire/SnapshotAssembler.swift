/// Reassembles a snapshot from its chunks as they arrive on one link.
///
/// A chunk at offset 0 starts a new snapshot (dropping any unfinished one: the sender gave up on
/// it and started again). Every other chunk must continue the snapshot being assembled exactly
/// (same index, term and total size, offset = bytes received so far); anything else is a
/// protocol error and the partial snapshot is dropped, so a lost or reordered chunk can never
/// produce a spliced snapshot.
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

    /// Largest snapshot accepted (bounds the memory a peer can make us hold).
    public let maxTotalSize: UInt64
    private var index: UInt64 = 0
    private var term: UInt64 = 0
    private var totalSize: UInt64 = 0
    private var data: [UInt8] = []
    private var assembling = false

    public static let defaultMaxTotalSize: UInt64 = 4 << 30

    public init(maxTotalSize: UInt64 = SnapshotAssembler.defaultMaxTotalSize) {
        self.maxTotalSize = maxTotalSize
    }

    /// Bytes of the unfinished snapshot held so far.
    public var bufferedBytes: Int { data.count }

    /// Adds one chunk; returns the snapshot it completes, if any.
    public mutating func add(_ chunk: SnapshotChunk) throws(WireError) -> Complete? {
        if chunk.offset == 0 {
            guard chunk.totalSize <= maxTotalSize else {
                reset()
                throw .invalid("snapshot of \(chunk.totalSize) bytes exceeds the limit of \(maxTotalSize)")
            }
            reset()
            index = chunk.index
            term = chunk.term
            totalSize = chunk.totalSize
            assembling = true
            data.reserveCapacity(Int(chunk.totalSize))
        } else {
            guard assembling, chunk.index == index, chunk.term == term, chunk.totalSize == totalSize,
                  chunk.offset == UInt64(data.count) else {
                let expected = assembling ? "offset \(data.count) of snapshot (\(index), t\(term))" : "a first chunk"
                reset()
                throw .invalid("snapshot chunk (\(chunk.index), t\(chunk.term)) at offset \(chunk.offset) does not continue the snapshot being assembled (expected \(expected))")
            }
        }
        guard chunk.offset + UInt64(chunk.data.count) <= totalSize else {
            reset()
            throw .invalid("snapshot chunk at offset \(chunk.offset) with \(chunk.data.count) bytes overruns the total of \(totalSize)")
        }
        data.append(contentsOf: chunk.data)
        guard UInt64(data.count) == totalSize else { return nil }
        let complete = Complete(index: index, term: term, data: data)
        reset()
        return complete
    }

    public mutating func reset() {
        assembling = false
        index = 0
        term = 0
        totalSize = 0
        data = []
    }
}
