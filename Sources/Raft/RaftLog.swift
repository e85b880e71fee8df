/// What the log knows about the term of the entry at some index.
enum TermLookup: Equatable {
    /// The entry was discarded by compaction (it lies before `offset`). It is committed and
    /// covered by the latest snapshot, but its term is gone.
    case compacted
    case term(UInt64)
    /// The index is past the last entry.
    case beyondLog

    /// The term when the log knows it.
    var known: UInt64? {
        if case .term(let term) = self { return term }
        return nil
    }
}

/// The log in memory after a compacted prefix, plus the indexes that say how far it is durable,
/// committed and applied.
///
/// Entries up to `offset` were discarded (a snapshot covers them); `entries[i]` holds index
/// `offset + i + 1`, so a term lookup is O(1), and `offsetTerm` is the term at `offset` so an
/// append right after the compacted prefix can still be checked. Invariants (checked):
/// `offset <= applied <= commit <= lastIndex`, `offset <= persisted <= lastIndex`, and the
/// committed prefix never changes.
struct RaftLog {
    private(set) var entries: [Entry]
    /// Index just before the first held entry (0 when nothing was ever compacted).
    private(set) var offset: UInt64
    /// Term of the entry at `offset` (0 when `offset` is 0).
    private(set) var offsetTerm: UInt64
    /// Highest index known committed; never decreases.
    private(set) var commit: UInt64
    /// Highest index handed out for applying and acknowledged through `advance` (or restored from
    /// a snapshot).
    private(set) var applied: UInt64
    /// Entries up to here are durable (acknowledged through `advance`).
    private(set) var persisted: UInt64
    /// Lowest index truncated since the last `Ready` was cut, minus one: a `Ready` handed out
    /// before a truncation must not mark the replaced entries durable.
    private var truncatedSinceReady: UInt64 = .max
    /// The configuration in force at `offset`: the snapshot's, or the initial one.
    private(set) var baseConfiguration: Configuration
    /// Every `.config` entry held, ascending by index, decoded.
    private(set) var configEntries: [(index: UInt64, configuration: Configuration)] = []
    /// Bumped whenever the latest configuration may have changed (a config entry appended or
    /// truncated, a snapshot restored), so the node recomputes what depends on it.
    private(set) var configurationVersion: UInt64 = 0

    /// A log restored from storage: `entries` follow `snapshot` (or start at index 1 without one).
    /// The snapshot's prefix counts as committed and applied (the state machine holds it).
    init(snapshot: Snapshot? = nil, entries: [Entry], commit: UInt64, applied: UInt64,
         initialConfiguration: Configuration = Configuration()) {
        let offset = snapshot?.index ?? 0
        let offsetTerm = snapshot?.term ?? 0
        for (position, entry) in entries.enumerated() {
            precondition(entry.index == offset + UInt64(position) + 1,
                         "raft log: restored entry at position \(position) has index \(entry.index); the log must be contiguous from \(offset + 1)")
            let previousTerm = position == 0 ? offsetTerm : entries[position - 1].term
            precondition(previousTerm <= entry.term, "raft log: term decreases at index \(entry.index)")
        }
        self.entries = entries
        self.offset = offset
        self.offsetTerm = offsetTerm
        self.commit = max(commit, offset)
        self.applied = max(applied, offset)
        self.persisted = offset + UInt64(entries.count)
        self.baseConfiguration = snapshot?.configuration ?? initialConfiguration
        for entry in entries { noteConfiguration(entry) }
        precondition(self.commit <= lastIndex,
                     "raft log: hard state commit \(commit) is beyond the restored log's last index \(lastIndex)")
        precondition(self.applied <= self.commit, "raft log: applied \(applied) is beyond commit \(self.commit)")
    }

    /// First index held in memory (`offset + 1`; may be `lastIndex + 1` when no entry is held).
    var firstIndex: UInt64 { offset + 1 }
    var lastIndex: UInt64 { offset + UInt64(entries.count) }
    var lastTerm: UInt64 { entries.last?.term ?? offsetTerm }

    /// Term of the entry at `index`; `offset` itself (and index 0) still has a known term.
    func term(at index: UInt64) -> TermLookup {
        if index < offset { return .compacted }
        if index == offset { return .term(offsetTerm) }
        guard index <= lastIndex else { return .beyondLog }
        return .term(entries[position(of: index)].term)
    }

    /// The held entry at `index`; nil when compacted or beyond the log.
    func entry(at index: UInt64) -> Entry? {
        guard index > offset, index <= lastIndex else { return nil }
        return entries[position(of: index)]
    }

    /// Whether our entry at `index` has `term`. A compacted index gives false: callers handle
    /// indexes at or below the commit point (which covers every compacted one) before asking.
    func matches(index: UInt64, term: UInt64) -> Bool {
        self.term(at: index) == .term(term)
    }

    /// Raft §5.4.1: a candidate's log is at least as up to date as ours.
    func isUpToDate(lastIndex candidateIndex: UInt64, lastTerm candidateTerm: UInt64) -> Bool {
        candidateTerm > lastTerm || (candidateTerm == lastTerm && candidateIndex >= lastIndex)
    }

    /// Entries in `from...` up to `maxBytes` (at least one entry when any exists). `index` must
    /// not be compacted: the leader sends a snapshot instead.
    func entries(from index: UInt64, maxBytes: Int) -> [Entry] {
        precondition(index > offset, "raft log: entries from \(index) are compacted (log starts at \(firstIndex))")
        guard index <= lastIndex else { return [] }
        var result: [Entry] = []
        var bytes = 0
        for position in position(of: index)..<entries.count {
            let entry = entries[position]
            if !result.isEmpty && bytes + entry.byteSize > maxBytes { break }
            bytes += entry.byteSize
            result.append(entry)
        }
        return result
    }

    /// First index whose term is `term`, searching back from `index` (which must hold a known
    /// term). The search stops at the first held entry: what lies before it is committed, so a
    /// leader that resumes there finds a match at `offset`.
    func firstIndex(ofTermAt index: UInt64) -> UInt64 {
        guard let term = term(at: index).known, index > offset else { return index }
        var first = index
        while first > firstIndex, entries[position(of: first - 1)].term == term { first -= 1 }
        return first
    }

    /// Last index holding `term` (`offset` counts), or nil when the held log has none of it.
    func lastIndex(ofTerm term: UInt64) -> UInt64? {
        // Terms never decrease along the log, so scan back only while terms are >= `term`.
        var index = lastIndex
        while index > offset {
            let entryTerm = entries[position(of: index)].term
            if entryTerm == term { return index }
            if entryTerm < term { return nil }
            index -= 1
        }
        return offset > 0 && offsetTerm == term ? offset : nil
    }

    /// Appends entries produced by this node as leader; they must extend the log.
    mutating func appendAsLeader(_ newEntries: [Entry]) {
        for entry in newEntries {
            precondition(entry.index == lastIndex + 1, "raft log: a leader only appends at its end, never overwrites")
            entries.append(entry)
            noteConfiguration(entry)
        }
    }

    /// Follower append (Raft Figure 2, AppendEntries steps 3–4): skips entries we already hold,
    /// truncates at the first conflict and appends the rest. A stale or duplicated append whose
    /// entries all match changes nothing, so it cannot truncate entries the leader already counts.
    /// Returns the last index covered by the message.
    mutating func appendAsFollower(after prevIndex: UInt64, _ newEntries: [Entry]) -> UInt64 {
        for (position, entry) in newEntries.enumerated() {
            precondition(entry.index == prevIndex + UInt64(position) + 1, "raft log: append entries are not contiguous")
            switch term(at: entry.index) {
            case .compacted:
                continue  // committed, so it matches any leader's
            case .term(let existing):
                if existing == entry.term { continue }
                precondition(entry.index > commit,
                             "raft log: refusing to truncate committed entry \(entry.index) (commit \(commit)); the leader sent a conflicting committed entry")
                truncate(from: entry.index)
            case .beyondLog:
                break
            }
            entries.append(entry)
            noteConfiguration(entry)
        }
        return prevIndex + UInt64(newEntries.count)
    }

    private mutating func truncate(from index: UInt64) {
        entries.removeSubrange(position(of: index)...)
        if let last = configEntries.last, last.index >= index {
            configEntries.removeAll { $0.index >= index }
            configurationVersion += 1
        }
        persisted = min(persisted, index - 1)
        truncatedSinceReady = min(truncatedSinceReady, index - 1)
    }

    mutating func commit(to index: UInt64) {
        precondition(index <= lastIndex, "raft log: cannot commit \(index) beyond last index \(lastIndex)")
        if index > commit { commit = index }
    }

    /// Discards the held entries up to `index` (already applied, so committed and durable). The
    /// array is rebuilt when it would keep far more capacity than it uses, so a long-lived node's
    /// memory follows its retained log rather than its peak.
    mutating func compact(through index: UInt64) {
        guard index > offset else { return }
        precondition(index <= applied, "raft log: cannot compact through \(index), only \(applied) is applied")
        let newOffsetTerm = entries[position(of: index)].term
        let kept = entries[position(of: index + 1)...]
        if entries.capacity > 2 * kept.count + Self.slackCapacity {
            var rebuilt: [Entry] = []
            rebuilt.reserveCapacity(kept.count)
            rebuilt.append(contentsOf: kept)
            entries = rebuilt
        } else {
            entries.removeFirst(Int(index - offset))
        }
        baseConfiguration = configuration(at: index)
        configEntries.removeAll { $0.index <= index }
        offset = index
        offsetTerm = newOffsetTerm
    }

    /// Unused capacity below which compaction does not bother rebuilding the array.
    static let slackCapacity = 64

    /// Replaces the whole log with a snapshot received from the leader: everything up to it is
    /// committed, applied (the shell installs it) and durable (the shell persists it before
    /// anything after it), and no held entry survives (ours conflicted or were missing).
    mutating func restore(_ snapshot: Snapshot) {
        precondition(snapshot.index > commit, "raft log: restoring snapshot \(snapshot.index) at or below commit \(commit)")
        entries = []
        baseConfiguration = snapshot.configuration ?? configuration(at: snapshot.index)
        configEntries = []
        configurationVersion += 1
        offset = snapshot.index
        offsetTerm = snapshot.term
        commit = snapshot.index
        applied = snapshot.index
        persisted = snapshot.index
        // A Ready cut before the restore must not mark entries appended after it durable.
        truncatedSinceReady = min(truncatedSinceReady, snapshot.index)
    }

    /// Entries not yet durable, to hand out in a `Ready`.
    var unpersistedEntries: ArraySlice<Entry> { entries[position(of: persisted + 1)...] }

    /// Committed entries that are also durable here and not yet applied.
    var entriesToApply: ArraySlice<Entry> {
        let upTo = min(commit, persisted)
        guard upTo > applied else { return [] }
        return entries[position(of: applied + 1)...position(of: upTo)]
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

    /// The shell applied entries up to `index`. A snapshot restored since the `Ready` was cut may
    /// already have moved `applied` past it.
    mutating func applied(through index: UInt64) {
        precondition(index <= commit, "raft log: applied \(index) beyond commit \(commit)")
        if index > applied { applied = index }
    }

    // MARK: Configuration

    /// The latest configuration in the log (committed or not): the one in force.
    var configuration: Configuration { configEntries.last?.configuration ?? baseConfiguration }

    /// Index of the latest held `.config` entry; 0 when the configuration in force comes from
    /// the snapshot or the initial one (it is then committed).
    var configurationIndex: UInt64 { configEntries.last?.index ?? 0 }

    /// The configuration in force once the log up to `index` is applied (index >= offset for an
    /// exact answer; below it, the base is the best known).
    func configuration(at index: UInt64) -> Configuration {
        configEntries.last { $0.index <= index }?.configuration ?? baseConfiguration
    }

    /// The configuration in force before the latest `.config` entry.
    var previousConfiguration: Configuration {
        configEntries.count >= 2 ? configEntries[configEntries.count - 2].configuration : baseConfiguration
    }

    private mutating func noteConfiguration(_ entry: Entry) {
        // An entry that does not decode changes nothing, identically on every node.
        guard entry.kind == .config, let decoded = Configuration(encoded: entry.data) else { return }
        configEntries.append((entry.index, decoded))
        configurationVersion += 1
    }

    /// Array position of `index`, which must be held (or one past the end).
    private func position(of index: UInt64) -> Int {
        Int(index - offset - 1)
    }
}
