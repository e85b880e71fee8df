import Wire

/// Where kvd's snapshots are written, and where the current snapshot is read back to restore a
/// kvd that is behind the compacted log. raftd implements it with snapshot files written on
/// their own queue (`RaftDisk`); a simulation keeps them in memory.
public protocol SnapshotStore: AnyObject {
    /// Takes one chunk of a snapshot kvd streams (a first chunk starts a new one, for the
    /// chunk's index and `term`). Returns the snapshot once its last byte is taken, for the
    /// driver to `commit` or `abandon`. Throws for chunks out of order (the snapshot is dropped).
    func receiveFromKvd(_ chunk: SnapshotChunk, term: UInt64) throws -> PendingSnapshot?
    /// The kvd link dropped: forgets the snapshot it was sending.
    func abandonFromKvd()
    func abandon(_ snapshot: PendingSnapshot)
    /// Makes `snapshot` the current snapshot, off the loop; the outcome comes back through
    /// `RaftDriver.snapshotCommitted`. At most one commit is in flight.
    func commit(_ snapshot: PendingSnapshot)
    /// The current snapshot, cut into chunks as they are taken. Throws `SnapshotFileMismatch`
    /// when it is not (`index`, `term`) (a newer one is about to be compacted to; try later).
    func openForKvd(index: UInt64, term: UInt64) throws -> any SnapshotChunkSource
}

/// A snapshot of kvd's whose bytes are all taken, not yet committed.
public struct PendingSnapshot: Sendable, Hashable {
    public let id: UInt64
    public let index: UInt64
    public let term: UInt64
    public let dataSize: Int

    public init(id: UInt64, index: UInt64, term: UInt64, dataSize: Int) {
        self.id = id
        self.index = index
        self.term = term
        self.dataSize = dataSize
    }
}

/// How a snapshot commit ended (`SnapshotStore.commit`).
public struct SnapshotCommit: Sendable {
    public let snapshot: PendingSnapshot
    /// Why it failed; nil when the snapshot is now the current one.
    public let error: String?
    public let duration: Duration

    public init(snapshot: PendingSnapshot, error: String?, duration: Duration) {
        self.snapshot = snapshot
        self.error = error
        self.duration = duration
    }
}

/// Chunks of a stored snapshot, read as they are asked for.
public protocol SnapshotChunkSource {
    var index: UInt64 { get }
    var term: UInt64 { get }
    var isFinished: Bool { get }
    /// The next chunk, nil once all were handed out. Throws if the bytes cannot be read or are
    /// damaged (the last chunk of a damaged snapshot is never handed out).
    mutating func next() throws -> SnapshotChunk?
}

extension SnapshotFileChunker: SnapshotChunkSource {}
