import Raft

/// What compaction needs to know about one WAL segment.
struct SegmentUsage {
    var segment: WALSegment
    /// Highest log index a record in this segment still speaks for (0: none). Every entry the
    /// segment holds is at or below it; a later reset record supersedes the whole segment (0).
    /// Once a snapshot covers it, replay no longer needs the segment.
    var lastIndex: UInt64
    /// Whether the segment's first record is a hard state record, so that replay can start at
    /// this segment when the ones before it are deleted.
    var startsWithHardState: Bool
}

/// The state replay builds from the WAL segments, in order, before it is reconciled with the snapshot.
///
/// When compaction deleted the oldest segments, the first remaining one starts somewhere in the
/// middle of the log: its first entries record at index f says the log (as far as it matters)
/// restarts at f, the entries before f having been in deleted segments, all covered by the snapshot.
struct LogReplay {
    var hardState = HardState()
    /// The replayed log: `entries[i].index == base + i + 1`.
    var entries: [Entry] = []
    /// Index just before `entries[0]`; nil until known (the first segment is not `wal-1` and no
    /// entries or reset record has been replayed yet).
    private(set) var base: UInt64?
    /// True when `base` is a fact (the log starts at index 1, or a reset record restarted it),
    /// false when it was inferred from the first entries record after deleted segments.
    private var baseIsExact: Bool
    /// The last reset record replayed.
    private(set) var reset: (index: UInt64, term: UInt64)?
    private(set) var segments: [SegmentUsage] = []
    private var recordsInSegment = 0

    init(firstSequence: UInt64) {
        base = firstSequence == 1 ? 0 : nil
        baseIsExact = firstSequence == 1
    }

    var lastIndex: UInt64 { (base ?? 0) + UInt64(entries.count) }

    /// Called before the records of each segment.
    mutating func begin(_ segment: WALSegment) {
        segments.append(SegmentUsage(segment: segment, lastIndex: 0, startsWithHardState: false))
        recordsInSegment = 0
    }

    /// Applies one checksummed record; returns why it is malformed, or nil.
    mutating func apply(_ kind: WALRecord.Kind, _ payload: UnsafeRawBufferPointer) -> String? {
        defer { recordsInSegment += 1 }
        let current = segments.count - 1
        switch kind {
        case .hardState:
            guard let decoded = WALRecord.decodeHardState(payload) else {
                return "hard state record of \(payload.count) bytes"
            }
            hardState = decoded
            if recordsInSegment == 0 { segments[current].startsWithHardState = true }
        case .entries:
            guard let firstIndex = WALRecord.firstIndex(ofEntries: payload) else {
                return "entries record of \(payload.count) bytes"
            }
            if let base {
                if firstIndex <= base, !baseIsExact, firstIndex >= 1 {
                    // Rewrites entries from deleted segments: the log now restarts at firstIndex.
                    entries.removeAll()
                    self.base = firstIndex - 1
                } else {
                    guard firstIndex > base, firstIndex <= lastIndex + 1 else {
                        if base > 0, firstIndex <= base {
                            return "entries record starts at index \(firstIndex) but the log restarted after index \(base)"
                        }
                        return "entries record starts at index \(firstIndex) but the log ends at \(lastIndex)"
                    }
                    // An entry at index i discards everything at or after i.
                    entries.removeSubrange(Int(firstIndex - base - 1)...)
                }
            } else {
                guard firstIndex >= 1 else { return "entries record starts at index 0" }
                base = firstIndex - 1
            }
            if let problem = WALRecord.decodeEntries(payload, appendingTo: &entries) { return problem }
            segments[current].lastIndex = max(segments[current].lastIndex, lastIndex)
        case .reset:
            guard let (index, term) = WALRecord.decodeReset(payload) else {
                return "reset record of \(payload.count) bytes"
            }
            entries.removeAll()
            base = index
            baseIsExact = true
            reset = (index, term)
            // Nothing before the reset matters any more, in this segment or earlier ones.
            for earlier in 0..<current { segments[earlier].lastIndex = 0 }
            segments[current].lastIndex = index
        }
        return nil
    }

    /// How the replayed log relates to the snapshot.
    enum Reconciliation: Equatable {
        /// The log continues right after the snapshot (or there is no snapshot).
        case continues
        /// The log holds the snapshot's last entry; the `dropped` entries up to it were removed.
        case trimmed(dropped: Int)
        /// The log does not hold the snapshot's last entry (it ends at `logLastIndex`, or holds
        /// term `logTerm` there): a crash came between writing an installed snapshot and its reset
        /// record. All `dropped` entries were removed; the reset record still has to be written.
        case discarded(dropped: Int, logLastIndex: UInt64, logTerm: UInt64?)
    }

    /// Makes the log start right after `snapshot` (etcd's rule): if the log holds the snapshot's
    /// index with its term, the entries up to it are dropped; if it holds another term there or
    /// does not reach it, every entry is dropped. A log that starts after the snapshot's index + 1,
    /// or restarts after a reset the snapshot does not match, has lost data: that throws.
    mutating func reconcile(with snapshot: Snapshot?, directory: String) throws -> Reconciliation {
        guard let snapshot else {
            // The caller checked the segments start at wal-1, so only a reset can move the base.
            if let reset, let base, base > 0 {
                throw StorageError.inconsistentDataDir(
                    directory: directory,
                    reason: "the WAL restarts after index \(reset.index) (an installed snapshot) but there is no snapshot file")
            }
            return .continues
        }
        // After deleted segments, with no entries or reset since: nothing follows the snapshot yet.
        let base = self.base ?? snapshot.index
        self.base = base
        if let reset {  // base == reset.index: only another reset moves an exact base
            guard reset.index <= snapshot.index else {
                throw StorageError.inconsistentDataDir(
                    directory: directory,
                    reason: "the WAL restarts after index \(reset.index) (an installed snapshot) but the snapshot file only reaches index \(snapshot.index)")
            }
            guard reset.index < snapshot.index || reset.term == snapshot.term else {
                throw StorageError.inconsistentDataDir(
                    directory: directory,
                    reason: "the WAL restarts after index \(reset.index) term \(reset.term) but the snapshot file has term \(snapshot.term) there")
            }
        }
        guard base <= snapshot.index else {
            throw StorageError.inconsistentDataDir(
                directory: directory,
                reason: "the snapshot file reaches index \(snapshot.index) but the WAL starts at index \(base + 1), so entries \(snapshot.index + 1)…\(base) are missing")
        }
        if base == snapshot.index { return .continues }
        let last = lastIndex
        let heldTerm = snapshot.index <= last ? entries[Int(snapshot.index - base - 1)].term : nil
        self.base = snapshot.index
        if heldTerm == snapshot.term {
            let dropped = Int(snapshot.index - base)
            entries.removeFirstReleasingMemory(dropped)
            return .trimmed(dropped: dropped)
        }
        let dropped = entries.count
        entries = []
        return .discarded(dropped: dropped, logLastIndex: last, logTerm: heldTerm)
    }
}

extension Array {
    /// Removes the first `count` elements and, when that leaves the buffer much larger than what
    /// remains, moves the rest to a right-sized one so the memory is actually given back.
    mutating func removeFirstReleasingMemory(_ count: Int) {
        guard count > 0 else { return }
        let remaining = self.count - count
        if capacity > 2 * remaining {
            var compact: [Element] = []
            compact.reserveCapacity(remaining)
            compact.append(contentsOf: self[count...])
            self = compact
        } else {
            removeFirst(count)
        }
    }
}
