/// Checks that the snapshot chunks of one link arrive in order, without holding their bytes.
///
/// A chunk at offset 0 starts a new snapshot (dropping any unfinished one: the sender gave up on
/// it and started again). Every other chunk must continue the snapshot in progress exactly (same
/// index, term and total size, offset = bytes received so far); anything else is a protocol
/// error and the snapshot in progress is dropped, so a lost or reordered chunk can never produce
/// a spliced snapshot.
public struct SnapshotChunkOrder: Sendable {
    /// What an accepted chunk did.
    public struct Step: Equatable, Sendable {
        /// It began a new snapshot (any unfinished one is dropped).
        public var startsNew: Bool
        /// Its bytes were the last of the snapshot.
        public var completes: Bool
    }

    /// Largest snapshot accepted (bounds what a peer can make us hold or write).
    public let maxTotalSize: UInt64
    public private(set) var index: UInt64 = 0
    public private(set) var term: UInt64 = 0
    public private(set) var totalSize: UInt64 = 0
    /// Bytes of the snapshot in progress received so far.
    public private(set) var received: UInt64 = 0
    public private(set) var inProgress = false

    public static let defaultMaxTotalSize: UInt64 = 4 << 30

    public init(maxTotalSize: UInt64 = SnapshotChunkOrder.defaultMaxTotalSize) {
        self.maxTotalSize = maxTotalSize
    }

    /// Accepts `chunk` if it starts a snapshot or continues the one in progress; throws (and
    /// drops the one in progress) otherwise.
    public mutating func accept(_ chunk: SnapshotChunk) throws(WireError) -> Step {
        let startsNew = chunk.offset == 0
        if startsNew {
            guard chunk.totalSize <= maxTotalSize else {
                reset()
                throw .invalid("snapshot of \(chunk.totalSize) bytes exceeds the limit of \(maxTotalSize)")
            }
            reset()
            index = chunk.index
            term = chunk.term
            totalSize = chunk.totalSize
            inProgress = true
        } else {
            guard inProgress, chunk.index == index, chunk.term == term, chunk.totalSize == totalSize,
                  chunk.offset == received else {
                let expected = inProgress ? "offset \(received) of snapshot (\(index), t\(term))" : "a first chunk"
                reset()
                throw .invalid("snapshot chunk (\(chunk.index), t\(chunk.term)) at offset \(chunk.offset) does not continue the snapshot being assembled (expected \(expected))")
            }
        }
        guard chunk.offset + UInt64(chunk.data.count) <= totalSize else {
            reset()
            throw .invalid("snapshot chunk at offset \(chunk.offset) with \(chunk.data.count) bytes overruns the total of \(totalSize)")
        }
        received += UInt64(chunk.data.count)
        let completes = received == totalSize
        if completes { inProgress = false }
        return Step(startsNew: startsNew, completes: completes)
    }

    public mutating func reset() {
        inProgress = false
        index = 0
        term = 0
        totalSize = 0
        received = 0
    }
}
