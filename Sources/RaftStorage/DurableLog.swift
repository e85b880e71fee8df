import Glibc
import Logging
import Raft

/// The durable Raft log and hard state of one node, in a data dir.
///
/// Layout of the data dir:
/// - `metadata`: cluster and node id (see `DataDirMetadata`), written once, atomically.
/// - `LOCK`: held with `flock` while open, so two processes never share a data dir.
/// - `wal-<seq>.log`: append-only segments of records (see `WALRecord`), replayed in order on open.
///
/// Writes are group-committed: `append` and `save(hardState:)` only encode into a memory buffer;
/// `sync()` writes that buffer with one `write()` and makes it durable with one `fdatasync`.
/// Nothing is durable until `sync()` returns. Not thread-safe: one owner (the node's loop) uses it.
public final class DurableLog {
    public static let defaultSegmentSize = 64 << 20

    public let directory: String
    public let clusterID: UInt64
    public let nodeID: UInt64
    /// The last hard state saved (or recovered).
    public private(set) var hardState: HardState
    /// The whole log, from index 1, contiguous: `entries[i].index == i + 1`.
    public private(set) var entries: [Entry]
    /// What recovery found when this log was opened.
    public let recovery: RecoverySummary

    /// Index of the last entry, 0 when the log is empty.
    public var lastIndex: UInt64 { UInt64(entries.count) }

    /// fdatasyncs of the log so far (for status and benchmarks: group commit shows here).
    public private(set) var syncCount: UInt64 = 0

    private enum State {
        case open
        /// An I/O failure left the disk in an unknown state (a failed fdatasync may have dropped
        /// dirty pages): refuse everything until a restart re-establishes the truth by recovery.
        case failed(String)
        case closed
    }

    private var state = State.open
    private var writer: WALSegmentWriter
    private var pending: [UInt8] = []
    private let segmentSize: Int
    /// Bytes reserved in each new segment (0: none), so that appends within them change no
    /// file size and each fdatasync flushes data only (about 40% cheaper here).
    private let preallocation: Int
    private var lockFD: Int32
    private let logger: Logger

    /// Unsynced bytes past this are written (not synced) early, bounding the buffer's memory.
    private static let pendingFlushThreshold = 8 << 20

    private init(
        directory: String, clusterID: UInt64, nodeID: UInt64, hardState: HardState, entries: [Entry],
        recovery: RecoverySummary, writer: WALSegmentWriter, segmentSize: Int, preallocation: Int, lockFD: Int32, logger: Logger
    ) {
        self.directory = directory
        self.clusterID = clusterID
        self.nodeID = nodeID
        self.hardState = hardState
        self.entries = entries
        self.recovery = recovery
        self.writer = writer
        self.segmentSize = segmentSize
        self.preallocation = preallocation
        self.lockFD = lockFD
        self.logger = logger
    }

    /// Dropping a log without `close()` behaves like a crash: unsynced appends are lost.
    deinit {
        releaseFiles()
    }

    // MARK: Opening and recovery

    /// Opens (creating if needed) the data dir `directory` for node `nodeID` of cluster `clusterID`,
    /// and recovers its log. Throws `identityMismatch` if the dir belongs to another cluster or node,
    /// `corruptRecord` / `missingSegment` if the log is damaged other than by a torn final write,
    /// `locked` if it is already open, and `io` for system call failures.
    public static func open(
        directory: String, clusterID: UInt64, nodeID: UInt64,
        segmentSize: Int = DurableLog.defaultSegmentSize, preallocateSegments: Bool = true, logger: Logger
    ) throws -> DurableLog {
        precondition(segmentSize > 0, "segmentSize must be positive")
        let clock = ContinuousClock()
        let started = clock.now
        try SystemFile.makeDirectories(directory)

        let lockPath = "\(directory)/LOCK"
        let lockFD = try SystemFile.open(lockPath, flags: O_RDWR | O_CREAT)
        do {
            guard try SystemFile.tryLock(lockFD, path: lockPath) else {
                throw StorageError.locked(directory: directory)
            }
            let segments = try WALSegment.list(in: directory)
            try checkIdentity(directory: directory, clusterID: clusterID, nodeID: nodeID, hasSegments: !segments.isEmpty)
            try checkNoGaps(segments, directory: directory)

            var hardState = HardState()
            var entries: [Entry] = []
            var bytesRead = 0
            var lastOutcome: WALSegment.ReplayOutcome?
            for (position, segment) in segments.enumerated() {
                let outcome = try segment.replay(isLast: position == segments.count - 1) { kind, payload in
                    apply(kind, payload, hardState: &hardState, entries: &entries)
                }
                bytesRead += outcome.fileSize
                lastOutcome = outcome
            }

            let writer: WALSegmentWriter
            var truncated = 0
            if let last = segments.last, let outcome = lastOutcome {
                if let damage = outcome.tailDamage {
                    truncated = outcome.fileSize - outcome.validLength
                    logger.warning(
                        "dropped \(truncated) bytes of torn write at the end of \(last.path) (offset \(outcome.validLength): \(damage))",
                        metadata: [
                            "file": "\(last.path)", "offset": "\(outcome.validLength)",
                            "droppedBytes": "\(truncated)", "reason": "\(damage)",
                        ])
                }
                writer = try WALSegmentWriter.resume(last, validLength: outcome.validLength,
                                                     damagedTail: outcome.tailDamage != nil,
                                                     preallocate: preallocateSegments ? segmentSize : 0)
            } else {
                writer = try WALSegmentWriter.create(WALSegment(directory: directory, sequence: 1), directory: directory,
                                                     preallocate: preallocateSegments ? segmentSize : 0)
            }

            let recovery = RecoverySummary(
                segments: segments.count, entries: entries.count, bytesRead: bytesRead,
                truncatedBytes: truncated, duration: clock.now - started)
            logger.info("recovered raft log", metadata: [
                "dataDir": "\(directory)", "segments": "\(recovery.segments)", "entries": "\(recovery.entries)",
                "bytes": "\(bytesRead)", "truncatedBytes": "\(truncated)",
                "term": "\(hardState.term)", "vote": "\(hardState.vote)", "commit": "\(hardState.commit)",
                "duration": "\(recovery.duration)",
            ])
            return DurableLog(
                directory: directory, clusterID: clusterID, nodeID: nodeID, hardState: hardState, entries: entries,
                recovery: recovery, writer: writer, segmentSize: segmentSize, preallocation: preallocateSegments ? segmentSize : 0,
                lockFD: lockFD, logger: logger)
        } catch {
            SystemFile.close(lockFD)
            throw error
        }
    }

    private static func checkIdentity(directory: String, clusterID: UInt64, nodeID: UInt64, hasSegments: Bool) throws {
        if let found = try DataDirMetadata.read(directory: directory) {
            guard found.clusterID == clusterID, found.nodeID == nodeID else {
                throw StorageError.identityMismatch(
                    directory: directory, foundCluster: found.clusterID, foundNode: found.nodeID,
                    expectedCluster: clusterID, expectedNode: nodeID)
            }
        } else {
            // A log without its identity could belong to anyone: never adopt it.
            guard !hasSegments else { throw StorageError.missingMetadata(directory: directory) }
            try DataDirMetadata(clusterID: clusterID, nodeID: nodeID).write(directory: directory)
        }
    }

    private static func checkNoGaps(_ segments: [WALSegment], directory: String) throws {
        guard let first = segments.first else { return }
        for (offset, segment) in segments.enumerated() where segment.sequence != first.sequence + UInt64(offset) {
            throw StorageError.missingSegment(
                directory: directory, expectedName: WALSegment.fileName(sequence: first.sequence + UInt64(offset)))
        }
    }

    /// Applies one checksummed record to the recovering state; returns why it is malformed, or nil.
    private static func apply(
        _ kind: WALRecord.Kind, _ payload: UnsafeRawBufferPointer, hardState: inout HardState, entries: inout [Entry]
    ) -> String? {
        switch kind {
        case .hardState:
            guard let decoded = WALRecord.decodeHardState(payload) else {
                return "hard state record of \(payload.count) bytes"
            }
            hardState = decoded
        case .entries:
            guard let firstIndex = WALRecord.firstIndex(ofEntries: payload) else {
                return "entries record of \(payload.count) bytes"
            }
            guard firstIndex >= 1, firstIndex <= UInt64(entries.count) + 1 else {
                return "entries record starts at index \(firstIndex) but the log ends at \(entries.count)"
            }
            // An entry at index i discards everything at or after i.
            entries.removeSubrange(Int(firstIndex - 1)...)
            return WALRecord.decodeEntries(payload, appendingTo: &entries)
        }
        return nil
    }

    // MARK: Writing

    /// Appends consecutive `entries`. If the first index is at or below `lastIndex`, the log from that
    /// index on is replaced. Buffered in memory: durable only after `sync()`. Throws (changing nothing)
    /// on a gap, non-consecutive indexes, an oversized entry, or a change to an entry at or below the
    /// saved commit index (rewriting identical committed entries is allowed).
    public func append(_ entries: [Entry]) throws {
        try checkUsable()
        guard let first = entries.first else { return }
        guard first.index >= 1, first.index <= lastIndex + 1 else {
            throw StorageError.appendGap(lastIndex: lastIndex, firstIndex: first.index)
        }
        var previous = first.index - 1
        for entry in entries {
            guard entry.index == previous + 1 else {
                throw StorageError.nonContiguousEntries(previousIndex: previous, nextIndex: entry.index)
            }
            guard entry.data.count <= WALRecord.maxEntryDataSize else {
                throw StorageError.entryTooLarge(index: entry.index, bytes: entry.data.count, limit: WALRecord.maxEntryDataSize)
            }
            if entry.index <= hardState.commit, entry.index <= lastIndex, self.entries[Int(entry.index - 1)] != entry {
                throw StorageError.overwritesCommitted(commit: hardState.commit, firstIndex: entry.index)
            }
            previous = entry.index
        }

        WALRecord.appendEntries(entries, to: &pending)
        self.entries.removeSubrange(Int(first.index - 1)...)
        self.entries.append(contentsOf: entries)
        if pending.count >= Self.pendingFlushThreshold {
            try flush()
        }
    }

    /// Records `hardState`; durable only after `sync()`. Saving the current value again writes nothing.
    public func save(hardState: HardState) throws {
        try checkUsable()
        guard hardState != self.hardState else { return }
        WALRecord.appendHardState(hardState, to: &pending)
        self.hardState = hardState
    }

    /// Makes everything appended and saved so far durable: one write() of the buffer, one fdatasync.
    /// Does nothing if nothing changed since the last sync.
    public func sync() throws {
        try checkUsable()
        try flush()
        do {
            if writer.hasUnsyncedWrites { syncCount += 1 }
            try writer.sync()
        } catch {
            state = .failed("\(error)")
            throw error
        }
    }

    /// Syncs what is pending (logging, not throwing, a failure) and releases the files. Idempotent.
    public func close() {
        if case .open = state {
            do {
                try sync()
            } catch {
                logger.error("could not sync the raft log while closing; unsynced entries are lost", metadata: [
                    "dataDir": "\(directory)", "error": "\(error)",
                ])
            }
        }
        state = .closed
        pending = []
        releaseFiles()
    }

    /// Closes each descriptor once: a second close could hit a descriptor number reused by someone else.
    private func releaseFiles() {
        writer.closeDescriptor()
        if lockFD >= 0 {
            SystemFile.close(lockFD)
            lockFD = -1
        }
    }

    /// Writes the buffer to the current segment (rolling first if it is full), without syncing.
    func flush() throws {
        guard !pending.isEmpty else { return }
        do {
            if writer.size >= segmentSize {
                try roll()
            }
            try writer.write(pending)
        } catch {
            state = .failed("\(error)")
            throw error
        }
        pending.removeAll(keepingCapacity: pending.capacity <= Self.pendingFlushThreshold * 2)
    }

    /// Starts the next segment. The full one is synced first, so only the last segment can hold a torn write.
    private func roll() throws {
        try writer.sync()
        let next = WALSegment(directory: directory, sequence: writer.segment.sequence + 1)
        let newWriter = try WALSegmentWriter.create(next, directory: directory, preallocate: preallocation)
        writer.closeDescriptor()
        writer = newWriter
        logger.debug("rolled WAL segment", metadata: ["file": "\(next.path)"])
    }

    private func checkUsable() throws {
        switch state {
        case .open: return
        case let .failed(cause): throw StorageError.failed(cause: cause)
        case .closed: throw StorageError.closed
        }
    }
}
