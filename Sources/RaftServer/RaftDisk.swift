import Dispatch
import EventLoop
import Logging
import Raft
import RaftStorage
import Wire

/// raftd's disk behind `RaftDriver`'s storage protocols: the WAL (`DurableLog`), the
/// membership file, and snapshot files written on their own queue, one at a time, with
/// results posted back to the loop (`LoopMailbox`).
final class RaftDisk: RaftLogStore, SnapshotStore {
    let storage: DurableLog
    /// The configuration entries of the durable log by index (Membership.swift).
    let membershipFile: MembershipFile
    private let directory: String
    private let logger: Logger
    /// Snapshot files are written on this queue, one at a time, and reported back on the loop.
    let snapshotQueue = DispatchQueue(label: "kvraft.raftd-snapshot-writer")
    private let commits: LoopMailbox<SnapshotCommit>
    /// Where commit outcomes go (set by the server once its driver exists).
    var onCommitted: ((SnapshotCommit) -> Void)?
    /// Leaders' snapshots that arrived whole (in files) since the last `discardReceivedSnapshots`.
    var receivedSnapshots: [SnapshotFileWriter] = []
    /// kvd's snapshot being received, and the finished ones not yet committed or abandoned.
    private var fromKvd: SnapshotFileReceiver
    private var pending: [UInt64: SnapshotFileWriter] = [:]
    private var nextPendingID: UInt64 = 1
    /// Times the fsyncs when the process serves metrics.
    var metrics: RaftMetrics?

    init(loop: EventLoop, directory: String, clusterID: UInt64, nodeID: UInt64, logger: Logger) throws {
        self.directory = directory
        self.logger = logger
        // Snapshot bytes stay on disk: they are streamed from the file when a follower or kvd
        // needs them, so a large state is not held in raftd's memory as well.
        storage = try DurableLog.open(directory: directory, clusterID: clusterID, nodeID: nodeID,
                                      keepsSnapshotData: false, logger: logger)
        membershipFile = try MembershipFile.open(directory: directory)
        // The file is written before the log: after a crash it may name entries the log never
        // got. Past the snapshot, the log itself is the truth.
        try membershipFile.logWritten(from: (storage.snapshot?.index ?? 0) + 1, entries: storage.entries)
        fromKvd = SnapshotFileReceiver(directory: directory, queue: snapshotQueue, name: "from-kvd")
        let callback = CommitCallback()
        commits = LoopMailbox(loop: loop) { commit in callback.deliver?(commit) }
        callback.deliver = { [weak self] commit in self?.onCommitted?(commit) }
    }

    /// Holds the mailbox's destination until the disk exists.
    private final class CommitCallback {
        var deliver: ((SnapshotCommit) -> Void)?
    }

    // MARK: RaftLogStore

    var lastIndex: UInt64 { storage.lastIndex }
    var syncCount: UInt64 { storage.syncCount }

    func append(_ entries: [Entry]) throws {
        guard let first = entries.first else { return }
        if first.index <= storage.lastIndex || entries.contains(where: { $0.kind == .config }) {
            try membershipFile.logWritten(from: first.index, entries: entries)
        }
        try storage.append(entries)
    }

    func save(hardState: HardState) throws { try storage.save(hardState: hardState) }

    func sync() throws { try RaftMetrics.timeFsync(metrics) { try storage.sync() } }

    func installReceivedSnapshot(index: UInt64, term: UInt64, configuration: Configuration?) throws -> Int {
        guard let position = receivedSnapshots.firstIndex(where: { $0.index == index && $0.term == term }) else {
            throw SnapshotFileMismatch(description: "the core restored snapshot (\(index), t\(term)) but no file of it arrived")
        }
        let file = receivedSnapshots.remove(at: position)
        snapshotQueue.sync {}  // its last bytes are written, and no other snapshot file is being renamed
        try storage.installSnapshot(from: file)
        try membershipFile.snapshotInstalled(index: index, configuration: configuration)
        return file.dataSize
    }

    func discardReceivedSnapshots() {
        for file in receivedSnapshots { snapshotQueue.async { file.abandon() } }
        receivedSnapshots.removeAll()
    }

    func compact(through index: UInt64, term: UInt64, dataSize: Int) throws {
        try storage.saveSnapshot(writtenIndex: index, term: term, dataSize: dataSize)
        do { try membershipFile.compacted(through: index) } catch {
            logger.error("cannot rewrite the membership file: \(error)")
        }
    }

    // MARK: SnapshotStore

    func receiveFromKvd(_ chunk: SnapshotChunk, term: UInt64) throws -> PendingSnapshot? {
        guard let file = try fromKvd.add(chunk, fileTerm: term) else { return nil }
        let snapshot = PendingSnapshot(id: nextPendingID, index: file.index, term: file.term, dataSize: file.dataSize)
        nextPendingID += 1
        pending[snapshot.id] = file
        return snapshot
    }

    func abandonFromKvd() { fromKvd.abandon() }

    func abandon(_ snapshot: PendingSnapshot) {
        guard let file = pending.removeValue(forKey: snapshot.id) else { return }
        snapshotQueue.async { file.abandon() }
    }

    func commit(_ snapshot: PendingSnapshot) {
        guard let file = pending.removeValue(forKey: snapshot.id) else {
            preconditionFailure("committing snapshot \(snapshot.id), which the disk does not hold")
        }
        let mailbox = commits
        snapshotQueue.async {
            let clock = ContinuousClock()
            let started = clock.now
            var failure: String?
            do {
                try file.commit()
            } catch {
                file.abandon()
                failure = "\(error)"
            }
            mailbox.post(SnapshotCommit(snapshot: snapshot, error: failure, duration: clock.now - started))
        }
    }

    func openForKvd(index: UInt64, term: UInt64) throws -> any SnapshotChunkSource {
        try SnapshotFileChunker.open(directory: directory, index: index, term: term)
    }

    /// Lets every queued snapshot write finish, then syncs and closes the log.
    func close() {
        fromKvd.abandon()
        for file in pending.values { snapshotQueue.async { file.abandon() } }
        pending.removeAll()
        snapshotQueue.sync {}  // a snapshot file being written finishes before the data dir is let go
        do { try storage.sync() } catch { logger.error("final sync failed: \(error)") }
        storage.close()
    }
}
