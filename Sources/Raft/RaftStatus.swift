/// The role a node currently plays, without the role's private state.
public enum RaftRole: Sendable, Hashable {
    case follower
    /// Asking peers whether they would vote, without having bumped the term (pre-vote).
    case preCandidate
    case candidate
    case leader
}

/// A snapshot of a node's observable state, for logs, status endpoints and tests.
public struct RaftStatus: Sendable, Hashable {
    public var id: UInt64
    public var role: RaftRole
    public var term: UInt64
    /// The leader this node follows (itself when leader), 0 when unknown.
    public var leader: UInt64
    public var commitIndex: UInt64
    public var appliedIndex: UInt64
    public var lastIndex: UInt64
    /// Entries up to this index have been persisted (reported through `advance`).
    public var persistedIndex: UInt64
    /// First index held in the log; earlier ones are compacted into the snapshot.
    public var firstIndex: UInt64
    /// Index of the latest snapshot, 0 when there is none.
    public var snapshotIndex: UInt64
}
