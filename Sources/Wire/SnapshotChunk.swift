import CProtobufC

/// One piece of a state machine snapshot covering the log up to (`index`, `term`)
/// (`kvraft.raft.SnapshotChunk`). Snapshots travel in chunks so that no frame exceeds a link's
/// frame limit and a sender can pace them by the link's backpressure.
public struct SnapshotChunk: Hashable, Sendable {
    public var index: UInt64
    public var term: UInt64
    /// Where `data` starts within the whole snapshot.
    public var offset: UInt64
    /// Bytes in the whole snapshot.
    public var totalSize: UInt64
    public var data: [UInt8]

    public init(index: UInt64, term: UInt64, offset: UInt64, totalSize: UInt64, data: [UInt8]) {
        self.index = index
        self.term = term
        self.offset = offset
        self.totalSize = totalSize
        self.data = data
    }

    /// True for the chunk that completes its snapshot.
    public var isLast: Bool { offset + UInt64(data.count) == totalSize }

    func makeC(in arena: CArena) -> UnsafeMutablePointer<Kvraft__Raft__SnapshotChunk> {
        let m = arena.make(Kvraft__Raft__SnapshotChunk.self)
        kvraft__raft__snapshot_chunk__init(m)
        m.pointee.index = index
        m.pointee.term = term
        m.pointee.offset = offset
        m.pointee.total_size = totalSize
        m.pointee.data = arena.bytes(data)
        return m
    }

    init(c m: UnsafeMutablePointer<Kvraft__Raft__SnapshotChunk>) {
        self.init(index: m.pointee.index, term: m.pointee.term, offset: m.pointee.offset,
                  totalSize: m.pointee.total_size, data: CValue.bytes(m.pointee.data))
    }
}

/// Cuts one snapshot into chunks on demand, so a sender produces the next chunk only when its
/// link has room for it (a large snapshot never sits whole in an output buffer).
public struct SnapshotChunker: Sendable {
    public let index: UInt64
    public let term: UInt64
    public let data: [UInt8]
    public let chunkSize: Int
    public private(set) var offset = 0
    private var sentEmpty = false

    public static let defaultChunkSize = 1 << 20

    public init(index: UInt64, term: UInt64, data: [UInt8], chunkSize: Int = SnapshotChunker.defaultChunkSize) {
        precondition(chunkSize > 0, "chunkSize must be positive")
        self.index = index
        self.term = term
        self.data = data
        self.chunkSize = chunkSize
    }

    public var isFinished: Bool { data.isEmpty ? sentEmpty : offset == data.count }

    /// The next chunk, nil once every byte was handed out. An empty snapshot is one empty chunk.
    public mutating func next() -> SnapshotChunk? {
        if data.isEmpty {
            guard !sentEmpty else { return nil }
            sentEmpty = true
            return SnapshotChunk(index: index, term: term, offset: 0, totalSize: 0, data: [])
        }
        guard offset < data.count else { return nil }
        let end = min(data.count, offset + chunkSize)
        let chunk = SnapshotChunk(index: index, term: term, offset: UInt64(offset), totalSize: UInt64(data.count),
                                  data: Array(data[offset..<end]))
        offset = end
        return chunk
    }
}
