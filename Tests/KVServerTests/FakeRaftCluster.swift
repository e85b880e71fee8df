import KVStore
import Wire

/// What the raftds of a simulated cluster agree on, without running Raft: the committed log
/// (consensus is assumed correct here; the Raft simulations check it), the leader's entries
/// not committed yet, who leads in which term, the compacted snapshot, and the state machine
/// as every prefix of the log leaves it (the reference every kvd must match).
struct FakeRaftCluster {
    private(set) var term: UInt64 = 1
    /// Index of the leading node, nil while there is none.
    private(set) var leader: Int? = 0
    private(set) var committed: [LogEntry] = []
    /// Appended by the leader, not committed; indexes follow `committed`.
    private(set) var tail: [LogEntry] = [LogEntry(term: 1, index: 1, isNoop: true)]
    /// `history[i]`: the state machine after applying the first `i` entries.
    private(set) var history: [KVStateMachine] = [KVStateMachine()]
    /// The latest snapshot raftd holds; entries up to its index are no longer in the log.
    private(set) var snapshot: (index: UInt64, term: UInt64, bytes: [UInt8])?

    var commitIndex: UInt64 { UInt64(committed.count) }
    var lastIndex: UInt64 { commitIndex + UInt64(tail.count) }

    func leadership(of node: Int) -> Leadership {
        Leadership(term: term, leaderID: leader.map { UInt64($0 + 1) } ?? 0, isLeader: leader == node)
    }

    /// The leader appends a proposal: where it landed.
    mutating func append(_ data: [UInt8]) -> (index: UInt64, term: UInt64) {
        precondition(leader != nil, "only a leader appends")
        let entry = LogEntry(term: term, index: lastIndex + 1, data: data)
        tail.append(entry)
        return (entry.index, entry.term)
    }

    /// Commits the first `count` entries of the tail.
    mutating func commit(_ count: Int) {
        precondition(leader != nil && count <= tail.count, "a leader commits what it appended")
        for entry in tail.prefix(count) {
            var machine = history.last!
            Self.apply(entry, to: &machine)
            history.append(machine)
            committed.append(entry)
        }
        tail.removeFirst(count)
    }

    /// A new term: the new leader (nil: none yet) holds the first `kept` uncommitted entries
    /// of the old one and appends a no-op; the rest are lost and their positions reused.
    mutating func elect(_ node: Int?, keeping kept: Int) {
        term += 1
        tail = Array(tail.prefix(kept))
        leader = node
        if node != nil { tail.append(LogEntry(term: term, index: lastIndex + 1, isNoop: true)) }
    }

    /// raftd compacts its log up to the commit index (from its own copy of the state).
    mutating func compact() {
        guard commitIndex > (snapshot?.index ?? 0) else { return }
        snapshot = (commitIndex, committed.last!.term, history[committed.count].snapshot())
    }

    /// kvd sent a snapshot at `index`: raftd keeps it if newer.
    mutating func installSnapshot(index: UInt64, bytes: [UInt8]) {
        guard index > (snapshot?.index ?? 0), index <= commitIndex else { return }
        snapshot = (index, committed[Int(index) - 1].term, bytes)
    }

    /// What kvd does with a committed entry, on the reference machine.
    static func apply(_ entry: LogEntry, to machine: inout KVStateMachine) {
        if entry.isNoop || entry.data.isEmpty {
            machine.applyNoop(index: entry.index)
        } else if let batch = try? CommandBatch(serialized: entry.data[...]) {
            _ = machine.apply(batch: batch, index: entry.index)
        } else {
            machine.applyNoop(index: entry.index)
        }
    }
}
