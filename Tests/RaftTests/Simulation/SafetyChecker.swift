import Raft

/// Raft's safety properties (Figure 3), checked incrementally as the simulation runs, so each check
/// costs only the new work: a leader elected, a commit index moved, entries applied, a snapshot
/// made, installed or restored.
///
/// Snapshots: the cluster's committed prefix is also kept as the state a `SimulatedStateMachine`
/// would reach after each index (hash chain and command list), so any snapshot can be checked to
/// be exactly the committed prefix it claims to cover; a node's compacted entries count as held
/// only through such a verified snapshot.
struct SafetyChecker {
    /// Election safety: the leader ever seen for each term.
    private(set) var leaderOfTerm: [UInt64: UInt64] = [:]
    /// The cluster-wide committed log as observed so far (index i at position i - 1).
    private(set) var committed: [Entry] = []
    /// For each committed index, the term of the node that first saw it committed: an upper bound on
    /// the term in which it was committed, so leaders of later terms must hold it.
    private var committedSeenInTerm: [UInt64] = []
    /// `committedHashes[i]`: the state machine's hash after applying the first i committed entries.
    private var committedHashes: [UInt64] = [SimulatedStateMachine.emptyHash]
    /// The committed normal entries' data, and how many of them the first i committed entries hold.
    private var committedCommands: [[UInt8]] = []
    private var committedCommandCounts: [Int] = [0]
    /// Per node, the commit index and applied count of the current incarnation.
    private var commitIndex: [UInt64: UInt64] = [:]
    private var appliedCount: [UInt64: UInt64] = [:]
    /// Per node, the commit index and snapshot index last made durable (they survive crashes, so
    /// they never move back).
    private var durableCommit: [UInt64: UInt64] = [:]
    private var durableSnapshot: [UInt64: UInt64] = [:]
    private(set) var violations: [String] = []

    private mutating func violation(_ text: String) {
        violations.append(text)
    }

    /// A violation found by the simulation itself (e.g. a commit quorum of learners).
    mutating func report(_ text: String) {
        violation(text)
    }

    /// A node reported itself leader of `term`: one leader per term, and it holds every entry
    /// committed in an earlier term (leader completeness), in its log or in its snapshot.
    mutating func observeLeader(_ node: RaftNode) {
        let status = node.status
        if let previous = leaderOfTerm[status.term], previous != status.id {
            violation("election safety: term \(status.term) has two leaders, \(previous) and \(status.id)")
        }
        leaderOfTerm[status.term] = status.id
        let firstHeld = node.firstIndex
        if firstHeld > 1 && !committed.isEmpty {
            guard let snapshot = node.snapshot, snapshot.index >= firstHeld - 1 else {
                violation("leader \(status.id) of term \(status.term) compacted its log before \(firstHeld) without a snapshot covering it")
                return
            }
            verify(snapshot, "snapshot of leader \(status.id) in term \(status.term)")
        }
        for (position, entry) in committed.enumerated() where committedSeenInTerm[position] < status.term && entry.index >= firstHeld {
            if node.entry(at: entry.index)?.term != entry.term {
                violation("leader completeness: leader \(status.id) of term \(status.term) lacks committed entry \(entry.index) (term \(entry.term)), has \(node.entry(at: entry.index).map { "term \($0.term)" } ?? "nothing")")
                return
            }
        }
    }

    /// Log matching on committed prefixes: every node's committed entries equal the cluster's. A
    /// commit index that jumps over compacted entries (a restored snapshot) is vouched for by
    /// the node's snapshot, which must equal the cluster's committed prefix.
    mutating func observeCommit(_ node: RaftNode) {
        let status = node.status
        let previous = commitIndex[status.id] ?? 0
        if status.commitIndex < previous {
            violation("commit index of \(status.id) moved back from \(previous) to \(status.commitIndex)")
        }
        guard status.commitIndex > previous else { return }
        let firstHeld = node.firstIndex
        if previous + 1 < firstHeld {
            guard let snapshot = node.snapshot, snapshot.index >= firstHeld - 1 else {
                violation("node \(status.id) committed through compacted index \(firstHeld - 1) without a snapshot covering it")
                return
            }
            guard verify(snapshot, "snapshot of node \(status.id), committed through \(status.commitIndex)") else { return }
        }
        for index in stride(from: max(previous + 1, firstHeld), through: status.commitIndex, by: 1) {
            guard let entry = node.entry(at: index) else {
                violation("node \(status.id) committed \(index) but has no entry there")
                return
            }
            if index <= UInt64(committed.count) {
                let known = committed[Int(index - 1)]
                if known != entry {
                    violation("log matching: node \(status.id) committed \(describe(entry)) at \(index), cluster committed \(describe(known))")
                    return
                }
            } else {
                appendCommitted(entry, seenInTerm: status.term)
            }
        }
        commitIndex[status.id] = status.commitIndex
    }

    private mutating func appendCommitted(_ entry: Entry, seenInTerm term: UInt64) {
        committed.append(entry)
        committedSeenInTerm.append(term)
        committedHashes.append(SimulatedStateMachine.chain(committedHashes.last!, entry))
        if entry.kind == .normal { committedCommands.append(entry.data) }
        committedCommandCounts.append(committedCommands.count)
    }

    /// State machine safety: every node applies the same entries in index order.
    mutating func observeApply(_ id: UInt64, _ entries: [Entry]) {
        for entry in entries {
            let expected = (appliedCount[id] ?? 0) + 1
            if entry.index != expected {
                violation("node \(id) applied index \(entry.index), expected \(expected)")
                return
            }
            guard entry.index <= UInt64(committed.count) else {
                violation("node \(id) applied \(entry.index) before any node reported it committed")
                return
            }
            if committed[Int(entry.index - 1)] != entry {
                violation("state machine safety: node \(id) applied \(describe(entry)), cluster committed \(describe(committed[Int(entry.index - 1)]))")
                return
            }
            appliedCount[id] = expected
        }
    }

    /// After applying (or installing): the state machine is exactly the committed prefix up to
    /// what this node applied — the applied sequence and the installed snapshots fit together.
    mutating func observeStateMachine(_ id: UInt64, _ machine: SimulatedStateMachine) {
        let applied = appliedCount[id] ?? 0
        if machine.appliedIndex != applied {
            violation("node \(id)'s state machine is at \(machine.appliedIndex), but it was handed entries and snapshots through \(applied)")
            return
        }
        guard applied <= UInt64(committed.count) else { return }  // reported by observeApply
        if machine.hash != committedHashes[Int(applied)] {
            violation("state machine safety: node \(id)'s state at \(applied) differs from the committed prefix")
        }
    }

    /// The shell made `snapshot` from its state machine and the core accepted it.
    mutating func observeSnapshotMade(_ id: UInt64, _ snapshot: Snapshot) {
        verify(snapshot, "snapshot made by node \(id)")
    }

    /// A `Ready` handed `snapshot` to node `id` to install: it must be the committed prefix and
    /// move the state machine forward.
    mutating func observeInstall(_ id: UInt64, _ snapshot: Snapshot) {
        verify(snapshot, "snapshot installed on node \(id)")
        let applied = appliedCount[id] ?? 0
        if snapshot.index <= applied {
            violation("node \(id) was handed snapshot \(snapshot.index) to install, but already applied \(applied)")
        }
        appliedCount[id] = snapshot.index
    }

    /// Node `id` restarted; its state machine was restored from its durable snapshot, if any.
    mutating func observeRestart(_ id: UInt64, from snapshot: Snapshot?) {
        commitIndex[id] = nil
        appliedCount[id] = nil
        guard let snapshot else { return }
        verify(snapshot, "durable snapshot node \(id) restarted from")
        appliedCount[id] = snapshot.index
    }

    mutating func observeDurableCommit(_ id: UInt64, _ commit: UInt64) {
        if commit < durableCommit[id] ?? 0 {
            violation("durable commit of \(id) moved back from \(durableCommit[id] ?? 0) to \(commit)")
        }
        durableCommit[id] = commit
    }

    mutating func observeDurableSnapshot(_ id: UInt64, _ snapshot: Snapshot) {
        if snapshot.index <= durableSnapshot[id] ?? 0 {
            violation("durable snapshot of \(id) replaced by one that is not newer: \(durableSnapshot[id] ?? 0) by \(snapshot.index)")
        }
        durableSnapshot[id] = snapshot.index
    }

    /// A node with nothing left to hand out applied exactly what its core counts as applied.
    mutating func observeSettled(_ node: RaftNode, _ machine: SimulatedStateMachine) {
        let status = node.status
        if machine.appliedIndex != status.appliedIndex {
            violation("node \(status.id) settled with its state machine at \(machine.appliedIndex) but the core at applied \(status.appliedIndex)")
        }
    }

    /// A crash loses the in-memory commit index and state machine.
    mutating func forgetIncarnation(_ id: UInt64) {
        commitIndex[id] = nil
        appliedCount[id] = nil
    }

    func appliedCount(of id: UInt64) -> UInt64 {
        appliedCount[id] ?? 0
    }

    /// Whether `snapshot` is exactly the cluster's committed prefix through `snapshot.index`:
    /// the term of its last entry, and a state machine (index, hash chain, commands) equal to
    /// the one that applying that prefix gives.
    @discardableResult
    private mutating func verify(_ snapshot: Snapshot, _ what: String) -> Bool {
        guard snapshot.index >= 1, snapshot.index <= UInt64(committed.count) else {
            violation("\(what): covers index \(snapshot.index), but the cluster committed only \(committed.count)")
            return false
        }
        let last = committed[Int(snapshot.index - 1)]
        guard snapshot.term == last.term else {
            violation("\(what): says index \(snapshot.index) has term \(snapshot.term), cluster committed \(describe(last))")
            return false
        }
        guard let machine = SimulatedStateMachine(snapshotData: snapshot.data) else {
            violation("\(what): data (\(snapshot.data.count) bytes) does not decode")
            return false
        }
        let commandCount = committedCommandCounts[Int(snapshot.index)]
        guard machine.appliedIndex == snapshot.index, machine.hash == committedHashes[Int(snapshot.index)],
              machine.commands.count == commandCount, machine.commands[...] == committedCommands[..<commandCount] else {
            violation("\(what): state (applied \(machine.appliedIndex), \(machine.commands.count) commands) is not the committed prefix through \(snapshot.index) (\(commandCount) commands)")
            return false
        }
        return true
    }

    private func describe(_ entry: Entry) -> String {
        "(i\(entry.index) t\(entry.term) \(entry.kind) \(entry.data))"
    }
}
