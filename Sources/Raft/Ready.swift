/// Volatile state the process reacts to: who leads, in which term, and our own role.
public struct SoftState: Sendable, Hashable {
    /// 0 when no leader is known.
    public var leader: UInt64
    public var role: RaftRole
    public var term: UInt64

    public init(leader: UInt64, role: RaftRole, term: UInt64) {
        self.leader = leader
        self.role = role
        self.term = term
    }
}

/// Everything a node wants done, handed out by `RaftNode.ready()`.
///
/// The shell processes it in this order, then calls `RaftNode.advance(_:)`:
/// 1. send `messages` (any time, even before persisting: the leader's appends and heartbeats go
///    out in parallel with its own fsync, thesis §10.2.1);
/// 2. persist `entries` and `hardState` together with one fsync; `entries` may start at or below
///    the last persisted index, in which case storage first truncates its log from
///    `entries.first.index` on, then appends;
/// 3. send `messagesAfterPersist` (votes, vote and append responses: they promise durable state);
/// 4. apply `committedEntries` in order;
/// 5. call `advance(ready)`.
public struct Ready: Sendable, Hashable {
    /// Present only when term, vote or commit changed since the last `Ready`.
    public var hardState: HardState?
    /// Present only when leader, role or term changed since the last `Ready`.
    public var softState: SoftState?
    /// Entries to persist, in index order, contiguous.
    public var entries: [Entry]
    /// Messages that may be sent before `entries`/`hardState` are durable.
    public var messages: [Message]
    /// Messages that must be sent only after `entries`/`hardState` are durable.
    public var messagesAfterPersist: [Message]
    /// Entries that are both committed and persisted locally, to apply in order.
    public var committedEntries: [Entry]

    /// True when there is nothing to do.
    public var isEmpty: Bool {
        hardState == nil && softState == nil && entries.isEmpty && messages.isEmpty
            && messagesAfterPersist.isEmpty && committedEntries.isEmpty
    }
}
