import Wire

/// kvd's snapshot on its way to raftd while it is still being encoded: the encoder hands over
/// parts of a few MiB, the driver cuts them into chunks as the link has room, and returns a
/// credit to the encoder for each part sent (`KVDriverAction.snapshotPartSent`), so neither
/// the encoding nor the link ever holds the whole encoded state.
struct OutgoingSnapshot {
    /// The encoding this snapshot comes from.
    let encodingID: UInt64
    let index: UInt64
    let totalSize: Int
    /// Bytes of the snapshot sent so far (the next chunk's offset).
    private(set) var sent = 0
    private var parts: [[UInt8]] = []
    private var offsetInFirstPart = 0
    private var sentEmpty = false

    /// Parts the encoder may hand over before the first is sent.
    static let partsAhead = 2

    init(encodingID: UInt64, index: UInt64, totalSize: Int) {
        precondition(totalSize >= 0, "a snapshot's size is not negative")
        self.encodingID = encodingID
        self.index = index
        self.totalSize = totalSize
    }

    var isFinished: Bool { totalSize == 0 ? sentEmpty : sent == totalSize }

    /// Parts received and not yet wholly sent.
    var partsHeld: Int { parts.count }

    /// A part from the encoder, in order; false for an empty part (whose credit goes back at once).
    mutating func add(_ part: [UInt8]) -> Bool {
        guard !part.isEmpty else { return false }
        precondition(sent + parts.reduce(0) { $0 + $1.count } - offsetInFirstPart + part.count <= totalSize,
                     "the encoder handed over more than the size it announced")
        parts.append(part)
        return true
    }

    /// The next chunk of at most `chunkSize` bytes, nil while the next part has not arrived yet
    /// (or when finished), and whether it finished a part (whose credit then goes back).
    mutating func nextChunk(chunkSize: Int = SnapshotChunker.defaultChunkSize) -> (chunk: SnapshotChunk, partDone: Bool)? {
        if totalSize == 0 {
            guard !sentEmpty else { return nil }
            sentEmpty = true
            return (SnapshotChunk(index: index, term: 0, offset: 0, totalSize: 0, data: []), false)
        }
        guard let part = parts.first else { return nil }
        let end = min(part.count, offsetInFirstPart + chunkSize)
        let chunk = SnapshotChunk(index: index, term: 0, offset: UInt64(sent), totalSize: UInt64(totalSize),
                                  data: Array(part[offsetInFirstPart..<end]))
        sent += end - offsetInFirstPart
        offsetInFirstPart = end
        guard end == part.count else { return (chunk, false) }
        parts.removeFirst()
        offsetInFirstPart = 0
        return (chunk, true)
    }
}
