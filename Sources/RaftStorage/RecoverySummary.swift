/// What `DurableLog.open` found on disk.
public struct RecoverySummary: Sendable, Equatable {
    /// Segment files replayed.
    public var segments: Int
    /// Entries in the recovered log (after suffix overwrites were applied).
    public var entries: Int
    /// Bytes of WAL read.
    public var bytesRead: Int
    /// Bytes cut off the end of the last segment as a torn write (0 if it ended cleanly).
    public var truncatedBytes: Int
    public var duration: Duration
}
