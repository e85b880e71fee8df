import Raft

/// Raft's safety properties (Figure 3), checked incrementally as the simulation runs, so each check
/// costs only the new work: a leader elected, a commit index moved, entries applied.
struct SafetyChecker {
    /// Election safety: the leader ever seen for each term.
    private(set) var leaderOfTerm: [UInt64: UInt64] = [:]
    /// The cluster-wide committed log as observed so far (index i at position i - 1).
    private(set) var committed: [Entry] = []
    /// For each committed index, the term of the node that first saw it committed: an upper bound on
    /// the term in which it was committed, so leaders of later terms must hold it.
    private var committedSeenInTerm: [UInt64] = []
    /// Per node, the commit index and applied count of the current incarnation.
    private var commitIndex: [UInt64: UInt64] = [:]
    private var appliedCount: [UInt64: UInt64] = [:]
    /// Per node, the commit index last made durable (it survives crashes, so it never moves back).
    private var durableCommit: [UInt64: UInt64] = [:]
    private(set) var violations: [String] = []

    private mutating func violation(_ text: String) {
        violations.append(text)
    }

    /// A node reported itself leader of `term`: one leader per term, and it holds every entry
    /// committed in an earlier term (leader completeness).
    mutating func observeLeader(_ node: RaftNode) {
        let status = node.status
        if let previous = leaderOfTerm[status.term], previous != status.id {
            violation("election safety: term \(status.term) has two leaders, \(previous) and \(status.id)")
        }
        leaderOfTerm[status.term] = status.id
        for (position, entry) in committed.enumerated() where committedSeenInTerm[position] < status.term {
            if node.entry(at: entry.index)?.term != entry.term {
                violation("leader completeness: leader \(status.id) of term \(status.term) lacks committed entry \(entry.index) (term \(entry.term)), has \(node.entry(at: entry.index).map { "term \($0.term)" } ?? "nothing")")
                return
            }
        }
    }

    /// Log matching on committed prefixes: every node's committed entries equal the cluster's.
    mutating func observeCommit(_ node: RaftNode) {
        let status = node.status
        let previous = commitIndex[status.id] ?? 0
        if status.commitIndex < previous {
            violation("commit index of \(status.id) moved back from \(previous) to \(status.commitIndex)")
        }
        guard status.commitIndex > previous else { return }
        for index in (previous + 1)...status.commitIndex {
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
                committed.append(entry)
                committedSeenInTerm.append(status.term)
            }
        }
        commitIndex[status.id] = status.commitIndex
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

    mutating func observeDurableCommit(_ id: UInt64, _ commit: UInt64) {
        if commit < durableCommit[id] ?? 0 {
            violation("durable commit of \(id) moved back from \(durableCommit[id] ?? 0) to \(commit)")
        }
        durableCommit[id] = commit
    }

    /// A crash loses the in-memory commit index and state machine; both restart from scratch.
    mutating func forgetIncarnation(_ id: UInt64) {
        commitIndex[id] = nil
        appliedCount[id] = nil
    }

    func appliedCount(of id: UInt64) -> UInt64 {
        appliedCount[id] ?? 0
    }

    private func describe(_ entry: Entry) -> String {
        "(i\(entry.index) t\(entry.term) \(entry.kind) \(entry.data))"
    }
}
