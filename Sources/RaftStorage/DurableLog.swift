import Glibc
import Logging
import Raft

/// The durable Raft log, hard state and latest snapshot of one node, in a data dir.
///
/// Layout of the data dir:
/// - `metadata`: cluster and node id and this directory's random id (see `DataDirMetadata`),
///   written once, atomically.
/// - `peers`: the data-dir id each peer was first seen with (see `PeerIdentities`).
/// - `LOCK`: held with `flock` while open, so two processes never share a data dir.
/// - `snapshot`: the latest durable snapshot (see `SnapshotFile`), replaced atomically via
///   `snapshot.tmp` (a leftover `snapshot.tmp` is what a crash left mid-write, removed on open).
/// - `wal-<seq>.log`: append-only segments of records (see `WALRecord`), replayed in order on open.
///   Consecutive; the oldest are deleted once the snapshot covers them, so the first remaining one
///   may be past `wal-1` — it then starts with a hard state record, as every rolled segment does.
///
/// Writes are group-committed: `append` and `save(hardState:)` only encode into a memory buffer;
/// `sync()` writes that buffer with one `write()` and makes it durable with one `fdatasync`.
/// Nothing is durable until `sync()` returns (`saveSnapshot` and `installSnapshot` sync as they go).
/// Not thread-safe: one owner (the node's loop) uses it.
///
/// Compaction: `saveSnapshot` (the node's own snapshot) drops the entries it covers and deletes
/// the segments that hold nothing after it; `installSnapshot` (a leader's snapshot) replaces the
/// whole log, marked in the WAL by a reset record. On open, the log is reconciled with the
/// snapshot, so that a crash at any point of either leaves a log that continues the snapshot.
public final class DurableLog {
    public static let defaultSegmentSize = 64 << 20

    public let directory: String
    public let clusterID: UInt64
    public let nodeID: UInt64
    /// This data dir's random identity (see `DataDirMetadata`); peers tell a wiped copy by it.
    public let dataDirID: UInt64
    /// The data dir was created by this `open` (it was empty): a new node, or one whose
    /// directory was wiped — its peers can tell which.
    public let dataDirCreated: Bool
    /// The data-dir ids of peers, as first seen.
    public let peerIdentities: PeerIdentities
    /// The last hard state saved (or recovered).
    public private(set) var hardState: HardState
    /// The latest durable snapshot (saved, installed, or loaded on open); nil before the first.
    /// Without its data when the log was opened with `keepsSnapshotData: false` (read it with
    /// `SnapshotReader`).
    public private(set) var snapshot: Snapshot?
    /// Bytes of data in the latest snapshot (0 without one), whether or not `snapshot` holds them.
    public private(set) var snapshotDataSize = 0
    /// Whether `snapshot` keeps its data in memory, or only its index and term.
    public let keepsSnapshotData: Bool
    /// The log after the snapshot, contiguous: `entries[i].index == firstIndex + i`.
    public private(set) var entries: [Entry]
    /// What recovery found when this log was opened.
    public private(set) var recovery: RecoverySummary

    /// Index of `entries[0]` (when there is one): the snapshot's index + 1, 1 without a snapshot.
    public var firstIndex: UInt64 { (snapshot?.index ?? 0) + 1 }

    /// Index of the last entry; the snapshot's index when no entry follows it, 0 when both are empty.
    public var lastIndex: UInt64 { firstIndex - 1 + UInt64(entries.count) }

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
    /// Every segment on disk, oldest first; the last one is the writer's.
    private var segments: [SegmentUsage]
    private var pending: [UInt8] = []
    /// Highest index an entries or reset record in `pending` speaks for (for `SegmentUsage`).
    private var pendingLastIndex: UInt64 = 0
    /// The hard state as of the bytes written to segments so far (before `pending`): what a new
    /// segment starts with.
    private var writtenHardState: HardState
    private let segmentSize: Int
    /// Bytes reserved in each new segment (0: none), so that appends within them change no
    /// file size; with the zeros the writer writes ahead of its data, each fdatasync then
    /// flushes data only.
    private let preallocation: Int
    private var lockFD: Int32
    private let logger: Logger
    private let remover: SegmentRemover

    /// Unsynced bytes past this are written (not synced) early, bounding the buffer's memory.
    private static let pendingFlushThreshold = 8 << 20

    private init(
        directory: String, clusterID: UInt64, nodeID: UInt64, identity: DataDirIdentity, hardState: HardState,
        snapshot: Snapshot?, entries: [Entry], recovery: RecoverySummary, writer: WALSegmentWriter, segments: [SegmentUsage], segmentSize: Int, preallocation: Int,
        lockFD: Int32, keepsSnapshotData: Bool, logger: Logger
    ) {
        self.directory = directory
        self.clusterID = clusterID
        self.nodeID = nodeID
        dataDirID = identity.dataDirID
        dataDirCreated = identity.created
        peerIdentities = identity.peers
        self.hardState = hardState
        self.writtenHardState = hardState
        self.keepsSnapshotData = keepsSnapshotData
        self.entries = entries
        self.recovery = recovery
        self.writer = writer
        self.segments = segments
        self.segmentSize = segmentSize
        self.preallocation = preallocation
        self.lockFD = lockFD
        self.logger = logger
        remover = SegmentRemover(directory: directory, logger: logger)
        if let snapshot { remember(snapshot) }
    }

    /// Makes `snapshot` the latest, keeping its data only if this log keeps snapshot data.
    private func remember(_ snapshot: Snapshot, dataSize: Int? = nil) {
        snapshotDataSize = dataSize ?? snapshot.data.count
        self.snapshot = keepsSnapshotData ? snapshot : Snapshot(index: snapshot.index, term: snapshot.term, data: [])
    }

    /// Dropping a log without `close()` behaves like a crash: unsynced appends are lost.
    deinit {
        releaseFiles()
    }

    // MARK: Opening and recovery

    /// Opens (creating if needed) the data dir `directory` for node `nodeID` of cluster `clusterID`,
    /// and recovers its snapshot and log. Throws `identityMismatch` if the dir belongs to another
    /// cluster or node, `corruptRecord` / `missingSegment` / `corruptSnapshot` / `inconsistentDataDir`
    /// if the log or snapshot is damaged other than by a torn final write or an interrupted
    /// compaction, `locked` if it is already open, and `io` for system call failures.
    ///
    /// `keepsSnapshotData: false`: `snapshot` holds only the latest snapshot's index and term
    /// (its data stays on disk, for `SnapshotReader`), so a large state costs no memory here.
    ///
    /// Recovery loads the snapshot (S, T), replays the segments, then makes the log continue the
    /// snapshot: if it holds index S with term T, the entries up to S are dropped; if it holds
    /// another term at S or ends before S (a crash between writing an installed snapshot and its
    /// reset record), every entry is dropped and the missing reset record is written. Segments
    /// that compaction was about to delete are deleted.
    public static func open(
        directory: String, clusterID: UInt64, nodeID: UInt64,
        segmentSize: Int = DurableLog.defaultSegmentSize, preallocateSegments: Bool = true, keepsSnapshotData: Bool = true,
        logger: Logger
    ) throws -> DurableLog {
        precondition(segmentSize > 0, "segmentSize must be positive")
        let clock = ContinuousClock()
        let started = clock.now
        try SystemFile.makeDirectories(directory)

        let lockPath = "\(directory)/LOCK"
        let lockFD = try SystemFile.open(lockPath, flags: O_RDWR | O_CREAT)
        let log: DurableLog
        let reconciliation: LogReplay.Reconciliation
        do {
            guard try SystemFile.tryLock(lockFD, path: lockPath) else {
                throw StorageError.locked(directory: directory)
            }
            let segments = try WALSegment.list(in: directory)
            let identity = try checkIdentity(directory: directory, clusterID: clusterID, nodeID: nodeID,
                                             hasData: !segments.isEmpty || SnapshotFile.exists(in: directory))
            if try SnapshotFile.removeStaleTemporary(directory: directory) {
                logger.notice("removed an unfinished snapshot file a crash interrupted mid-write; the previous snapshot stands",
                              metadata: ["dataDir": "\(directory)"])
            }
            let snapshot = try SnapshotFile.read(directory: directory)
            try checkNoGaps(segments, directory: directory)
            try checkStart(of: segments, snapshot: snapshot, directory: directory)

            var replay = LogReplay(firstSequence: segments.first?.sequence ?? 1)
            var bytesRead = 0
            var lastOutcome: WALSegment.ReplayOutcome?
            for (position, segment) in segments.enumerated() {
                replay.begin(segment)
                let outcome = try segment.replay(isLast: position == segments.count - 1) { kind, payload in
                    replay.apply(kind, payload)
                }
                bytesRead += outcome.fileSize
                lastOutcome = outcome
            }
            if let first = segments.first, first.sequence > 1, !replay.segments[0].startsWithHardState {
                throw StorageError.inconsistentDataDir(
                    directory: directory,
                    reason: "the segments before \(WALSegment.fileName(sequence: first.sequence)) were deleted but it does not start with a hard state record, so the term and vote are lost")
            }
            reconciliation = try replay.reconcile(with: snapshot, directory: directory)

            let writer: WALSegmentWriter
            var usage = replay.segments
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
                let first = WALSegment(directory: directory, sequence: 1)
                writer = try WALSegmentWriter.create(first, directory: directory,
                                                     preallocate: preallocateSegments ? segmentSize : 0)
                usage = [SegmentUsage(segment: first, lastIndex: 0, startsWithHardState: false)]
            }

            let recovery = RecoverySummary(
                segments: segments.count, snapshotIndex: snapshot?.index ?? 0, entries: replay.entries.count,
                bytesRead: bytesRead, truncatedBytes: truncated, duration: .zero)
            log = DurableLog(
                directory: directory, clusterID: clusterID, nodeID: nodeID, identity: identity, hardState: replay.hardState,
                snapshot: snapshot, entries: replay.entries, recovery: recovery, writer: writer, segments: usage, segmentSize: segmentSize,
                preallocation: preallocateSegments ? segmentSize : 0, lockFD: lockFD, keepsSnapshotData: keepsSnapshotData,
                logger: logger)
        } catch {
            SystemFile.close(lockFD)
            throw error
        }
        // From here the log owns the descriptors: on a throw, its deinit closes them.
        try log.finishRecovery(reconciliation)
        log.recovery.duration = clock.now - started
        let recovery = log.recovery
        logger.info("recovered raft log", metadata: [
            "dataDir": "\(directory)", "segments": "\(recovery.segments)", "snapshotIndex": "\(recovery.snapshotIndex)",
            "entries": "\(recovery.entries)", "bytes": "\(recovery.bytesRead)", "truncatedBytes": "\(recovery.truncatedBytes)",
            "term": "\(log.hardState.term)", "vote": "\(log.hardState.vote)", "commit": "\(log.hardState.commit)",
            "duration": "\(recovery.duration)",
        ])
        return log
    }

    struct DataDirIdentity {
        let dataDirID: UInt64
        let created: Bool
        let peers: PeerIdentities
    }

    private static func checkIdentity(directory: String, clusterID: UInt64, nodeID: UInt64, hasData: Bool) throws -> DataDirIdentity {
        let dataDirID: UInt64
        let created: Bool
        if let found = try DataDirMetadata.read(directory: directory) {
            guard found.clusterID == clusterID, found.nodeID == nodeID else {
                throw StorageError.identityMismatch(
                    directory: directory, foundCluster: found.clusterID, foundNode: found.nodeID,
                    expectedCluster: clusterID, expectedNode: nodeID)
            }
            created = false
            if found.dataDirID != 0 {
                dataDirID = found.dataDirID
            } else {
                // Written by a version without data-dir ids, so no peer recorded one for us yet:
                // any new id is the first they will see.
                dataDirID = DataDirMetadata.newDataDirID()
                try DataDirMetadata(clusterID: clusterID, nodeID: nodeID, dataDirID: dataDirID).write(directory: directory)
            }
        } else {
            // A log without its identity could belong to anyone: never adopt it.
            guard !hasData else { throw StorageError.missingMetadata(directory: directory) }
            dataDirID = DataDirMetadata.newDataDirID()
            created = true
            try DataDirMetadata(clusterID: clusterID, nodeID: nodeID, dataDirID: dataDirID).write(directory: directory)
        }
        return DataDirIdentity(dataDirID: dataDirID, created: created, peers: try PeerIdentities.open(directory: directory))
    }

    private static func checkNoGaps(_ segments: [WALSegment], directory: String) throws {
        guard let first = segments.first else { return }
        for (offset, segment) in segments.enumerated() where segment.sequence != first.sequence + UInt64(offset) {
            throw StorageError.missingSegment(
                directory: directory, expectedName: WALSegment.fileName(sequence: first.sequence + UInt64(offset)))
        }
    }

    /// Only compaction deletes segments, and only ones a snapshot covers; it never deletes the last.
    private static func checkStart(of segments: [WALSegment], snapshot: Snapshot?, directory: String) throws {
        if let first = segments.first {
            guard first.sequence == 1 || snapshot != nil else {
                throw StorageError.inconsistentDataDir(
                    directory: directory,
                    reason: "the WAL segments before \(WALSegment.fileName(sequence: first.sequence)) were deleted but there is no snapshot file covering them")
            }
        } else if let snapshot {
            throw StorageError.inconsistentDataDir(
                directory: directory,
                reason: "it holds a snapshot (index \(snapshot.index)) but no WAL segments, so the term and vote are lost")
        }
    }

    /// The writes recovery decided on, once the log is open: the reset record an interrupted
    /// `installSnapshot` did not write, and the deletions an interrupted compaction did not make.
    private func finishRecovery(_ reconciliation: LogReplay.Reconciliation) throws {
        switch reconciliation {
        case .continues:
            break
        case let .trimmed(dropped):
            logger.debug("dropped \(dropped) log entries the snapshot covers", metadata: ["snapshotIndex": "\(firstIndex - 1)"])
        case let .discarded(dropped, logLastIndex, logTerm):
            let snapshot = snapshot!
            let found = logTerm.map { "term \($0) at index \(snapshot.index)" } ?? "entries up to index \(logLastIndex)"
            logger.warning(
                "the log holds \(found), not the snapshot's entry (index \(snapshot.index), term \(snapshot.term)): a crash interrupted installing that snapshot; dropped all \(dropped) entries, the log restarts after the snapshot",
                metadata: [
                    "snapshotIndex": "\(snapshot.index)", "snapshotTerm": "\(snapshot.term)",
                    "droppedEntries": "\(dropped)", "logLastIndex": "\(logLastIndex)",
                ])
            try writeReset(index: snapshot.index, term: snapshot.term)
        }
        if let last = segments.last, last.segment.sequence > 1, !last.startsWithHardState, writer.size == 0 {
            // A crash came right after a roll created this segment: give it its leading hard state.
            var record: [UInt8] = []
            WALRecord.appendHardState(hardState, to: &record)
            try failing {
                try writer.write(record)
                try writer.sync()
            }
            segments[segments.count - 1].startsWithHardState = true
        }
        deleteCoveredSegments()
    }

    // MARK: Writing

    /// Appends consecutive `entries`. If the first index is at or below `lastIndex`, the log from that
    /// index on is replaced. Buffered in memory: durable only after `sync()`. Throws (changing nothing)
    /// on a gap, an index at or below the snapshot's, non-consecutive indexes, an oversized entry, or
    /// a change to an entry at or below the saved commit index (rewriting identical committed entries
    /// is allowed).
    public func append(_ entries: [Entry]) throws {
        try checkUsable()
        guard let first = entries.first else { return }
        guard first.index >= 1, first.index <= lastIndex + 1 else {
            throw StorageError.appendGap(lastIndex: lastIndex, firstIndex: first.index)
        }
        guard first.index >= firstIndex else {
            throw StorageError.appendBelowSnapshot(snapshotIndex: firstIndex - 1, firstIndex: first.index)
        }
        var previous = first.index - 1
        for entry in entries {
            guard entry.index == previous + 1 else {
                throw StorageError.nonContiguousEntries(previousIndex: previous, nextIndex: entry.index)
            }
            guard entry.data.count <= WALRecord.maxEntryDataSize else {
                throw StorageError.entryTooLarge(index: entry.index, bytes: entry.data.count, limit: WALRecord.maxEntryDataSize)
            }
            if entry.index <= hardState.commit, entry.index <= lastIndex, self.entries[Int(entry.index - firstIndex)] != entry {
                throw StorageError.overwritesCommitted(commit: hardState.commit, firstIndex: entry.index)
            }
            previous = entry.index
        }

        WALRecord.appendEntries(entries, to: &pending)
        pendingLastIndex = max(pendingLastIndex, previous)
        self.entries.removeSubrange(Int(first.index - firstIndex)...)
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
        try failing {
            if writer.hasUnsyncedWrites { syncCount += 1 }
            try writer.sync()
        }
    }

    // MARK: Snapshots

    /// Compacts the log with the node's own snapshot: its state machine's state after applying the
    /// entries up to `snapshot.index`, which this log holds with `snapshot.term`.
    ///
    /// Syncs what is pending (so the log is durable through the snapshot's index), writes the
    /// snapshot file durably, drops the entries up to `snapshot.index` from memory, and deletes the
    /// oldest segments that hold nothing after it (never the segment being written). A snapshot not
    /// newer than the current one is ignored. Throws `snapshotBeyondLog` / `snapshotTermMismatch`
    /// (changing nothing) if the log does not hold that entry. If writing the snapshot file fails,
    /// the log is unchanged and usable; a failure after that makes the log refuse further use.
    public func saveSnapshot(_ snapshot: Snapshot) throws {
        try saveSnapshot(snapshot, fileWritten: false, dataSize: snapshot.data.count)
    }

    private func saveSnapshot(_ snapshot: Snapshot, fileWritten: Bool, dataSize: Int) throws {
        try checkUsable()
        guard snapshot.index >= firstIndex else { return }
        guard snapshot.index <= lastIndex else {
            throw StorageError.snapshotBeyondLog(snapshotIndex: snapshot.index, lastIndex: lastIndex)
        }
        let held = entries[Int(snapshot.index - firstIndex)]
        guard held.term == snapshot.term else {
            throw StorageError.snapshotTermMismatch(index: snapshot.index, snapshotTerm: snapshot.term, logTerm: held.term)
        }
        try sync()
        // Either the old snapshot file or this one may survive a failure here: the synced log
        // continues both, so the log stays usable.
        if !fileWritten { try SnapshotFile.write(snapshot, directory: directory) }
        let covered = Int(snapshot.index - firstIndex + 1)
        remember(snapshot, dataSize: dataSize)
        entries.removeFirstReleasingMemory(covered)
        logger.debug("saved snapshot", metadata: [
            "snapshotIndex": "\(snapshot.index)", "snapshotTerm": "\(snapshot.term)", "bytes": "\(dataSize)",
            "droppedEntries": "\(covered)",
        ])
        deleteCoveredSegments()
    }

    /// Compacts the log with the node's own snapshot (`index`, `term`) whose file a committed
    /// `SnapshotFileWriter` (`dataSize` bytes of data) already made durable, off the log's thread:
    /// `saveSnapshot` without writing the file. The snapshot must cover only entries already
    /// synced to this log when the file was written (a crash then recovers the log and
    /// reconciles it with the file). Only for a log that does not keep snapshot data.
    public func saveSnapshot(writtenIndex index: UInt64, term: UInt64, dataSize: Int) throws {
        precondition(!keepsSnapshotData, "a log that keeps snapshot data saves it with saveSnapshot(_:)")
        try saveSnapshot(Snapshot(index: index, term: term, data: []), fileWritten: true, dataSize: dataSize)
    }

    /// Replaces the whole log with a snapshot received from the leader. Its index may be beyond
    /// `lastIndex`, and the entry this log holds at that index (if any) may conflict: every entry
    /// goes. Afterwards the log is empty, `lastIndex == snapshot.index`, and `append` continues
    /// at `snapshot.index + 1`.
    ///
    /// Writes the snapshot file durably, then a reset record ("the log restarts after (index,
    /// term)") at the start of a new segment, synced with everything pending; then deletes the
    /// older segments, all superseded. A snapshot not newer than the current one is ignored. Any
    /// failure makes the log refuse further use (recovery establishes what is on disk).
    public func installSnapshot(_ snapshot: Snapshot) throws {
        try checkUsable()
        guard snapshot.index >= firstIndex else { return }
        try failing { try SnapshotFile.write(snapshot, directory: directory) }
        try restartLog(after: snapshot, dataSize: snapshot.data.count)
    }

    /// `installSnapshot` for a leader's snapshot that arrived in pieces into `file` (every
    /// `append` of it done): commits the file (fsync, rename) only if the snapshot is newer than
    /// the current one, then goes on as `installSnapshot`. Abandons the file otherwise.
    /// Only for a log that does not keep snapshot data (it holds index and term of this one).
    public func installSnapshot(from file: SnapshotFileWriter) throws {
        precondition(!keepsSnapshotData, "a log that keeps snapshot data installs it with installSnapshot(_:)")
        try checkUsable()
        guard file.index >= firstIndex else { return file.abandon() }
        try failing { try file.commit() }
        try restartLog(after: Snapshot(index: file.index, term: file.term, data: []), dataSize: file.dataSize)
    }

    /// The rest of an install, once the snapshot file is durable: every entry goes, the reset
    /// record is synced, and the superseded segments are deleted.
    private func restartLog(after snapshot: Snapshot, dataSize: Int) throws {
        let dropped = entries.count
        remember(snapshot, dataSize: dataSize)
        entries = []
        try writeReset(index: snapshot.index, term: snapshot.term)
        logger.info("installed snapshot", metadata: [
            "snapshotIndex": "\(snapshot.index)", "snapshotTerm": "\(snapshot.term)", "bytes": "\(dataSize)",
            "droppedEntries": "\(dropped)",
        ])
        deleteCoveredSegments()
    }

    /// Writes "the log restarts after (index, term)" as the first record after the hard state of a
    /// new segment, and syncs it: every older segment is then superseded.
    private func writeReset(index: UInt64, term: UInt64) throws {
        try flush()
        try failing { try roll() }
        WALRecord.appendReset(index: index, term: term, to: &pending)
        pendingLastIndex = max(pendingLastIndex, index)
        try sync()
        for older in segments.indices.dropLast() { segments[older].lastIndex = 0 }
    }

    /// Drops the longest run of oldest segments that the snapshot covers entirely, such that the
    /// first segment kept starts with a hard state record; never the segment being written. The
    /// files are deleted in the background (see `SegmentRemover`).
    private func deleteCoveredSegments() {
        guard let covered = snapshot?.index else { return }
        var count = 0
        for position in segments.indices.dropLast() {
            guard segments[position].lastIndex <= covered else { break }
            if segments[position + 1].startsWithHardState { count = position + 1 }
        }
        let paths = segments.prefix(count).map(\.segment.path)
        segments.removeFirst(count)
        remover.remove(paths, snapshotIndex: covered)
    }

    /// Waits for background segment deletions (for tests, and before closing).
    public func waitForSegmentDeletions() {
        remover.waitUntilIdle()
    }

    // MARK: Closing

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
        // Deletions finish before the lock goes, so the next opener sees a settled directory.
        remover.waitUntilIdle()
        writer.closeDescriptor()
        if lockFD >= 0 {
            SystemFile.close(lockFD)
            lockFD = -1
        }
    }

    // MARK: Segments

    /// Writes the buffer to the current segment (rolling first if it is full), without syncing.
    func flush() throws {
        guard !pending.isEmpty else { return }
        try failing {
            if writer.size >= segmentSize {
                try roll()
            }
            try writer.write(pending)
        }
        segments[segments.count - 1].lastIndex = max(segments[segments.count - 1].lastIndex, pendingLastIndex)
        pendingLastIndex = 0
        writtenHardState = hardState
        pending.removeAll(keepingCapacity: pending.capacity <= Self.pendingFlushThreshold * 2)
    }

    /// Starts the next segment with a hard state record (as of what is written so far, so replay
    /// of the older segments then this one sees the same states). The full segment is synced
    /// first, so only the last segment can hold a torn write.
    private func roll() throws {
        try writer.sync()
        let next = WALSegment(directory: directory, sequence: writer.segment.sequence + 1)
        let newWriter = try WALSegmentWriter.create(next, directory: directory, preallocate: preallocation)
        writer.closeDescriptor()
        writer = newWriter
        segments.append(SegmentUsage(segment: next, lastIndex: 0, startsWithHardState: true))
        var record: [UInt8] = []
        WALRecord.appendHardState(writtenHardState, to: &record)
        try writer.write(record)
        logger.debug("rolled WAL segment", metadata: ["file": "\(next.path)"])
    }

    /// Runs `body`; if it throws, the disk is in an unknown state: the log refuses further use.
    private func failing(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch {
            state = .failed("\(error)")
            throw error
        }
    }

    private func checkUsable() throws {
        switch state {
        case .open: return
        case let .failed(cause): throw StorageError.failed(cause: cause)
        case .closed: throw StorageError.closed
        }
    }
}
