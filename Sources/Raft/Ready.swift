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
/// 1. send `messages` (any time, even before persisting: the leader's appends, heartbeats and
///    snapshots go out in parallel with its own fsync, thesis §10.2.1);
/// 2. persist `snapshot`, `entries` and `hardState` together with one fsync, in that order: a
///    `snapshot` replaces the whole stored log (storage drops every entry and continues after
///    `snapshot.index`); `entries` may start at or below the last persisted index, in which case
///    storage first truncates its log from `entries.first.index` on, then appends;
/// 3. send `messagesAfterPersist` (votes, vote and append responses: they promise durable state);
/// 4. install `snapshot` (replacing the state machine with its state), then apply
///    `committedEntries` in order;
/// 5. call `advance(ready)`.
public struct Ready: Sendable, Hashable {
    /// Present only when term, vote or commit changed since the last `Ready`.
    public var hardState: HardState?
    /// Present only when leader, role or term changed since the last `Ready`.
    public var softState: SoftState?
    /// A snapshot from the leader that replaced this node's log, because its log lacked or
    /// conflicted with the snapshot's last entry. Persist it before `entries` and install it in
    /// the state machine before applying `committedEntries`, which continue after its index.
    /// Snapshots the shell itself makes (`RaftNode.compact`) never appear here.
    public var snapshot: Snapshot?
    /// Entries to persist, in index order, contiguous.
    public var entries: [Entry]
    /// Messages that may be sent before `snapshot`/`entries`/`hardState` are durable.
    public var messages: [Message]
    /// Messages that must be sent only after `snapshot`/`entries`/`hardState` are durable.
    public var messagesAfterPersist: [Message]
    /// Entries that are both committed and persisted locally, to apply in order.
    public var committedEntries: [Entry]
    /// Answers to `RaftNode.requestRead`, in the order they were decided. Send them to whoever
    /// asked at any time: a read index promises nothing about this node's durable state.
    public var readStates: [ReadState] = []
    /// The configuration in force (the latest in the log, committed or not), present when it
    /// may have changed since the last `Ready`: the shell updates where
    /// it sends and whom it reports as members.
    public var configuration: Configuration? = nil

    /// True when there is nothing to do.
    public var isEmpty: Bool {
        hardState == nil && softState == nil && snapshot == nil && entries.isEmpty && messages.isEmpty
            && messagesAfterPersist.isEmpty && committedEntries.isEmpty && readStates.isEmpty && configuration == nil
    }
}
