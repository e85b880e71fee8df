import Raft

/// The durable log as `RaftDriver` sees it: hard state, entries, and the snapshots that replace
/// a prefix of them. raftd implements it over `DurableLog` and `MembershipFile` (`RaftDisk`); a
/// simulation supplies an in-memory disk that can lose what was not synced.
///
/// Calls are synchronous and made on the loop in the order Raft needs: nothing written is
/// durable before `sync` returns.
public protocol RaftLogStore: AnyObject {
    /// The last index written (synced or not).
    var lastIndex: UInt64 { get }
    /// How many fsyncs the log has made (shown in the node's status).
    var syncCount: UInt64 { get }
    /// Writes entries after the log, replacing any at or after the first one's index.
    func append(_ entries: [Entry]) throws
    func save(hardState: HardState) throws
    /// Makes everything written so far durable.
    func sync() throws
    /// Replaces the log with the leader's snapshot (`index`, `term`) that arrived whole since the
    /// last `discardReceivedSnapshots`; durable on return. Returns the snapshot's data size.
    func installReceivedSnapshot(index: UInt64, term: UInt64, configuration: Configuration?) throws -> Int
    /// Drops the leaders' snapshots that arrived and were not installed.
    func discardReceivedSnapshots()
    /// The snapshot (`index`, `term`) is durable (see `SnapshotStore.commit`): the log before it
    /// may go (the core keeps its own catch-up tail in memory).
    func compact(through index: UInt64, term: UInt64, dataSize: Int) throws
}
