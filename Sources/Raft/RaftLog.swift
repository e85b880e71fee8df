/// The whole log in memory (no compaction yet), plus the indexes that say how far it is durable,
/// committed and applied.
///
/// `entries[i]` holds index `i + 1`, so a term lookup is O(1). Invariants (checked):
/// `applied <= commit <= lastIndex`, `persisted <= lastIndex`, and the committed prefix never
/// changes.
struct RaftLog {
    private(set) var entries: [Entry]
    /// Highest index known committed; never decreases.
    private(set) var commit: UInt64
    /// Highest index handed out for applying and acknowledged through `advance`.
    private(set) var applied: UInt64
    /// Entries up to here are durable (acknowledged through `advance`).
    private(set) var persisted: UInt64
    /// Lowest index truncated since the last `Ready` was cut, minus one: a `Ready` handed out
    /// before a truncation must not mark the replaced entries durable.
    private var truncatedSinceReady: UInt64 = .max

    init(entries: [Entry], commit: UInt64, applied: UInt64) {
        for (offset, entry) in entries.enumerated() {
            precondition(entry.index == UInt64(offset + 1),
                         "raft log: restored entry at position \(offset) has index \(entry.index); the log must be contiguous from 1")
            precondition(offset == 0 || entries[offset - 1].term <= entry.term,
                         "raft log: term decreases at index \(entry.index)")
        }
        precondition(commit <= UInt64(entries.count),
                     "raft log: hard state commit \(commit) is beyond the restored log's last index \(entries.count)")
        precondition(applied <= commit, "raft log: applied \(applied) is beyond commit \(commit)")
        self.entries = entries
        self.commit = commit
        self.applied = applied
        self.persisted = UInt64(entries.count)
    }

    var lastIndex: UInt64 { UInt64(entries.count) }
    var lastTerm: UInt64 { entries.last?.term ?? 0 }

    /// Term of the entry at `index`, 0 for index 0, nil when beyond the log.
    func term(at index: UInt64) -> UInt64? {
        if index == 0 { return 0 }
        guard index <= lastIndex else { return nil }
        return entries[Int(index - 1)].term
    }

    func entry(at index: UInt64) -> Entry? {
        guard index >= 1, index <= lastIndex else { return nil }
        return entries[Int(index - 1)]
    }

    func matches(index: UInt64, term: UInt64) -> Bool {
        self.term(at: index) == term
    }

    /// Raft §5.4.1: a candidate's log is at least as up to date as ours.
    func isUpToDate(lastIndex candidateIndex: UInt64, lastTerm candidateTerm: UInt64) -> Bool {
        candidateTerm > lastTerm || (candidateTerm == lastTerm && candidateIndex >= lastIndex)
    }

    /// Entries in `from...` up to `maxBytes` (at least one entry when any exists).
    func entries(from index: UInt64, maxBytes: Int) -> [Entry] {
        guard index >= 1, index <= lastIndex else { return [] }
        var result: [Entry] = []
        var bytes = 0
        for position in Int(index - 1)..<entries.count {
            let entry = entries[position]
            if !result.isEmpty && bytes + entry.byteSize > maxBytes { break }
            bytes += entry.byteSize
            result.append(entry)
        }
        return result
    }

    /// First index whose term is `term`, searching back from `index` (which must hold `term`).
    func firstIndex(ofTermAt index: UInt64) -> UInt64 {
        guard let term = term(at: index), index > 0 else { return index }
        var first = index
        while first > 1, entries[Int(first - 2)].term == term { first -= 1 }
        return first
    }

    /// Last index holding `term`, or nil when the log has no entry of that term.
    func lastIndex(ofTerm term: UInt64) -> UInt64? {
        // Terms never decrease along the log, so scan back only while terms are >= `term`.
        var index = lastIndex
        while index > 0 {
            let entryTerm = entries[Int(index - 1)].term
            if entryTerm == term { return index }
            if entryTerm < term { return nil }
            index -= 1
        }
        return nil
    }

    /// Appends entries produced by this node as leader; they must extend the log.
    mutating func appendAsLeader(_ newEntries: [Entry]) {
        for entry in newEntries {
            precondition(entry.index == lastIndex + 1, "raft log: a leader only appends at its end, never overwrites")
            entries.append(entry)
        }
    }

    /// Follower append (Raft Figure 2, AppendEntries steps 3–4): skips entries we already hold,
    /// truncates at the first conflict and appends the rest. A stale or duplicated append whose
    /// entries all match changes nothing, so it cannot truncate entries the leader already counts.
    /// Returns the last index covered by the message.
    mutating func appendAsFollower(after prevIndex: UInt64, _ newEntries: [Entry]) -> UInt64 {
        for (offset, entry) in newEntries.enumerated() {
            precondition(entry.index == prevIndex + UInt64(offset) + 1, "raft log: append entries are not contiguous")
            if let existing = term(at: entry.index) {
                if existing == entry.term { continue }
                precondition(entry.index > commit,
                             "raft log: refusing to truncate committed entry \(entry.index) (commit \(commit)); the leader sent a conflicting committed entry")
                truncate(from: entry.index)
            }
            entries.append(entry)
        }
        return prevIndex + UInt64(newEntries.count)
    }

    private mutating func truncate(from index: UInt64) {
        entries.removeSubrange(Int(index - 1)...)
        persisted = min(persisted, index - 1)
        truncatedSinceReady = min(truncatedSinceReady, index - 1)
    }

    mutating func commit(to index: UInt64) {
        precondition(index <= lastIndex, "raft log: cannot commit \(index) beyond last index \(lastIndex)")
        if index > commit { commit = index }
    }

    /// Entries not yet durable, to hand out in a `Ready`.
    var unpersistedEntries: ArraySlice<Entry> { entries[Int(persisted)...] }

    /// Committed entries that are also durable here and not yet applied.
    var entriesToApply: ArraySlice<Entry> {
        let upTo = min(commit, persisted)
        guard upTo > applied else { return [] }
        return entries[Int(applied)..<Int(upTo)]
    }

    /// Marks the start of a `Ready`: truncations from now on are remembered until it is acknowledged.
    mutating func cutReady() {
        truncatedSinceReady = .max
    }

    /// The shell made entries up to `index` durable; a truncation since the `Ready` was cut lowers that.
    mutating func persisted(through index: UInt64) {
        let durable = min(index, truncatedSinceReady, lastIndex)
        if durable > persisted { persisted = durable }
    }

    mutating func applied(through index: UInt64) {
        precondition(index <= commit, "raft log: applied \(index) beyond commit \(commit)")
        precondition(index >= applied, "raft log: applied index moves back from \(applied) to \(index)")
        applied = index
    }
}
