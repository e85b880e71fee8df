import RaftStorage
import Wire

/// Cuts the snapshot file into chunks on demand, each read from disk only when the link has
/// room for it: the file-backed counterpart of `SnapshotChunker`, so raftd never holds a
/// snapshot in memory to send it (to a follower, or to a kvd that is behind the log).
struct SnapshotFileChunker {
    private let reader: SnapshotReader
    private let chunkSize: Int
    private var sentEmpty = false

    init(reader: SnapshotReader, chunkSize: Int = SnapshotChunker.defaultChunkSize) {
        precondition(chunkSize > 0, "chunkSize must be positive")
        self.reader = reader
        self.chunkSize = chunkSize
    }

    var index: UInt64 { reader.index }
    var term: UInt64 { reader.term }
    var isFinished: Bool { reader.dataSize == 0 ? sentEmpty : reader.isAtEnd }

    /// The next chunk, nil once every byte was handed out (an empty snapshot is one empty
    /// chunk). Throws if the file cannot be read or fails its checksum: the last chunk of a
    /// damaged file is never handed out, so no receiver completes it.
    mutating func next() throws -> SnapshotChunk? {
        if reader.dataSize == 0 {
            guard !sentEmpty else { return nil }
            sentEmpty = true
            return SnapshotChunk(index: index, term: term, offset: 0, totalSize: 0, data: [])
        }
        guard !reader.isAtEnd else { return nil }
        let offset = reader.offset
        let data = try reader.read(upTo: chunkSize)
        return SnapshotChunk(index: index, term: term, offset: UInt64(offset), totalSize: UInt64(reader.dataSize), data: data)
    }

    /// A chunker over the data dir's snapshot file, which must hold the snapshot (`index`,
    /// `term`). Throws `SnapshotFileMismatch` if it holds another one or there is none (the
    /// caller tries again later), or the file's own errors.
    static func open(directory: String, index: UInt64, term: UInt64) throws -> SnapshotFileChunker {
        guard let reader = try SnapshotReader.open(directory: directory) else {
            throw SnapshotFileMismatch(description: "no snapshot file, wanted (\(index), t\(term))")
        }
        guard reader.index == index, reader.term == term else {
            throw SnapshotFileMismatch(description: "the snapshot file holds (\(reader.index), t\(reader.term)), wanted (\(index), t\(term))")
        }
        return SnapshotFileChunker(reader: reader)
    }
}

/// The snapshot file does not (yet, or any more) hold the snapshot a sender wanted.
public struct SnapshotFileMismatch: Error, CustomStringConvertible {
    public let description: String

    public init(description: String) {
        self.description = description
    }
}
