/// What `DurableLog.open` found on disk.
public struct RecoverySummary: Sendable, Equatable {
    /// Segment files replayed (compaction may delete some of them right after, see `DurableLog`).
    public var segments: Int
    /// Index of the snapshot loaded (0: none); the log continues after it.
    public var snapshotIndex: UInt64
    /// Entries in the recovered log after the snapshot (after suffix overwrites were applied).
    public var entries: Int
    /// Bytes of WAL read.
    public var bytesRead: Int
    /// Bytes cut off the end of the last segment as a torn write (0 if it ended cleanly).
    public var truncatedBytes: Int
    public var duration: Duration
}
