import Raft
import RaftServer
import SeededRandom
import Wire

/// An in-memory disk for `RaftDriver`: a log that keeps what was synced and loses, at a
/// `crash`, what was not (or keeps a random prefix of the unsynced writes, the last one
/// possibly torn to a prefix of its entries, as a real WAL may); and snapshot "files" kept as
/// bytes. It implements both of the driver's storage protocols.
public final class SimulatedDisk: RaftLogStore, SnapshotStore {
    /// What the log holds: the snapshot it starts after, the entries, the hard state.
    public struct Image: Sendable {
        public var hardState = HardState()
        public var snapshot: Snapshot?
        public var entries: [Entry] = []
        public var offset: UInt64 { snapshot?.index ?? 0 }
        public var lastIndex: UInt64 { offset + UInt64(entries.count) }

        mutating func append(_ new: [Entry]) {
            guard let first = new.first else { return }
            precondition(first.index >= offset + 1 && first.index <= lastIndex + 1, "append at \(first.index) leaves a gap after \(lastIndex)")
            entries.removeSubrange(Int(first.index - offset - 1)...)
            entries.append(contentsOf: new)
        }

        func entry(at index: UInt64) -> Entry? {
            guard index > offset, index <= lastIndex else { return nil }
            return entries[Int(index - offset - 1)]
        }

        /// Drops the entries through `snapshot.index` and starts after it.
        mutating func compact(to snapshot: Snapshot) {
            guard snapshot.index > offset else { return }
            if snapshot.index <= lastIndex {
                entries.removeFirst(Int(snapshot.index - offset))
            } else {
                entries.removeAll()
            }
            self.snapshot = snapshot
        }
    }

    private enum Write {
        case entries([Entry])
        case hardState(HardState)
    }

    /// What survives a crash.
    public private(set) var durable = Image()
    /// What the driver sees: durable plus the writes not yet synced.
    public private(set) var current = Image()
    private var unsynced: [Write] = []
    public private(set) var syncCount: UInt64 = 0
    /// Leaders' snapshots installed, and compactions to kvd's snapshots (for reports).
    public private(set) var installs = 0
    public private(set) var compactions = 0
    /// The snapshot "file" (kvd's encoded state), durable once committed or installed.
    public private(set) var snapshotFile: (snapshot: Snapshot, data: [UInt8])?
    /// Leaders' snapshots that arrived whole, by (index, term).
    private var received: [(snapshot: Snapshot, data: [UInt8])] = []
    /// kvd's snapshot being received.
    private var incoming: (index: UInt64, term: UInt64, total: Int, data: [UInt8])?
    private var pending: [UInt64: [UInt8]] = [:]
    private var nextPendingID: UInt64 = 1
    /// Commits started and not yet completed (`completeCommits`).
    public private(set) var commitsInFlight: [PendingSnapshot] = []
    /// When set, the next `sync` (or append) throws this (a failing disk).
    public var failNextWrite: String?
    /// When set, the next `sync` throws instead (the process dies in fdatasync; see `crash`).
    public var crashAtNextSync = false
    /// Told of every append, hard state and sync (tests that check order).
    public var onWrite: ((String) -> Void)?
    /// Chunk size of snapshots read back for kvd.
    public var chunkSize = 64

    public init() {}

    // MARK: RaftLogStore

    public var lastIndex: UInt64 { current.lastIndex }

    public func append(_ entries: [Entry]) throws {
        if let failure = failNextWrite { failNextWrite = nil; throw SimulatedDiskError(description: failure) }
        onWrite?("append \(entries.first?.index ?? 0)...\(entries.last?.index ?? 0)")
        current.append(entries)
        unsynced.append(.entries(entries))
    }

    public func save(hardState: HardState) throws {
        guard hardState != current.hardState else { return }
        onWrite?("hardState term=\(hardState.term) vote=\(hardState.vote) commit=\(hardState.commit)")
        current.hardState = hardState
        unsynced.append(.hardState(hardState))
    }

    public func sync() throws {
        if crashAtNextSync {
            crashAtNextSync = false
            throw SimulatedDiskError(description: "crashed in sync")
        }
        if let failure = failNextWrite { failNextWrite = nil; throw SimulatedDiskError(description: failure) }
        onWrite?("sync")
        if !unsynced.isEmpty { syncCount += 1 }
        unsynced.removeAll()
        durable = current
    }

    public func installReceivedSnapshot(index: UInt64, term: UInt64, configuration: Configuration?) throws -> Int {
        guard let position = received.firstIndex(where: { $0.snapshot.index == index && $0.snapshot.term == term }) else {
            throw SnapshotFileMismatch(description: "no snapshot (\(index), t\(term)) arrived")
        }
        var (snapshot, data) = received.remove(at: position)
        installs += 1
        snapshot.configuration = configuration
        try sync()
        snapshotFile = (snapshot, data)
        current.entries = current.entry(at: index)?.term == term ? Array(current.entries.drop { $0.index <= index }) : []
        current.snapshot = snapshot
        durable = current
        return data.count
    }

    public func discardReceivedSnapshots() { received.removeAll() }

    public func compact(through index: UInt64, term: UInt64, dataSize: Int) throws {
        guard let file = snapshotFile, file.snapshot.index == index, file.snapshot.term == term else {
            throw SnapshotFileMismatch(description: "compacting to (\(index), t\(term)) but the file holds \(String(describing: snapshotFile?.snapshot))")
        }
        try sync()
        precondition(current.entry(at: index)?.term == term, "compacting to (\(index), t\(term)), which the log does not hold")
        current.compact(to: file.snapshot)
        durable = current
        compactions += 1
    }

    // MARK: SnapshotStore

    public func receiveFromKvd(_ chunk: SnapshotChunk, term: UInt64) throws -> PendingSnapshot? {
        if chunk.offset == 0 {
            incoming = (chunk.index, term, Int(chunk.totalSize), [])
        }
        guard var file = incoming, file.index == chunk.index, UInt64(file.data.count) == chunk.offset else {
            incoming = nil
            throw SimulatedDiskError(description: "kvd's snapshot chunk at offset \(chunk.offset) is out of order")
        }
        file.data += chunk.data
        guard file.data.count >= file.total else {
            incoming = file
            return nil
        }
        incoming = nil
        let snapshot = PendingSnapshot(id: nextPendingID, index: file.index, term: file.term, dataSize: file.data.count)
        nextPendingID += 1
        pending[snapshot.id] = file.data
        return snapshot
    }

    public func abandonFromKvd() { incoming = nil }

    public func abandon(_ snapshot: PendingSnapshot) { pending[snapshot.id] = nil }

    public func commit(_ snapshot: PendingSnapshot) {
        precondition(commitsInFlight.isEmpty, "two snapshot commits in flight")
        precondition(pending[snapshot.id] != nil, "committing a snapshot the disk does not hold")
        commitsInFlight.append(snapshot)
    }

    /// Finishes the commits in flight (the snapshot queue's work), for the driver's `snapshotCommitted`.
    public func completeCommits() -> [SnapshotCommit] {
        let done = commitsInFlight
        commitsInFlight.removeAll()
        return done.map { snapshot in
            guard let data = pending.removeValue(forKey: snapshot.id) else {
                return SnapshotCommit(snapshot: snapshot, error: "abandoned", duration: .zero)
            }
            if (snapshotFile?.snapshot.index ?? 0) < snapshot.index {
                snapshotFile = (Snapshot(index: snapshot.index, term: snapshot.term, data: [], configuration: nil), data)
            }
            return SnapshotCommit(snapshot: snapshot, error: nil, duration: .milliseconds(1))
        }
    }

    public func openForKvd(index: UInt64, term: UInt64) throws -> any SnapshotChunkSource {
        guard let file = snapshotFile, file.snapshot.index == index, file.snapshot.term == term else {
            throw SnapshotFileMismatch(description: "the snapshot file does not hold (\(index), t\(term))")
        }
        return MemorySnapshotChunks(index: index, term: term, data: file.data, chunkSize: chunkSize)
    }

    // MARK: The simulation's side

    /// A leader's snapshot arrived whole over the network (with its bytes).
    public func receiveLeaderSnapshot(_ snapshot: Snapshot, data: [UInt8]) {
        received.append((snapshot, data))
    }

    /// The data of the snapshot file if it holds (`index`, `term`).
    public func snapshotData(index: UInt64, term: UInt64) -> [UInt8]? {
        guard let file = snapshotFile, file.snapshot.index == index, file.snapshot.term == term else { return nil }
        return file.data
    }

    /// The process died: what was not synced is lost, except (with `keepSomeUnsynced`) a random
    /// prefix of the unsynced writes in order, the last of them possibly torn. Snapshot commits
    /// in flight are lost, and so is every snapshot not yet whole.
    public func crash(random: inout SeededGenerator, keepSomeUnsynced: Bool) {
        var image = durable
        if keepSomeUnsynced, !unsynced.isEmpty {
            let kept = random.int(in: 0...unsynced.count)
            for (position, write) in unsynced.prefix(kept).enumerated() {
                switch write {
                case let .entries(entries):
                    let torn = position == kept - 1 && random.chance(0.5)
                    image.append(torn ? Array(entries.prefix(random.int(in: 0...entries.count))) : entries)
                case let .hardState(hardState):
                    image.hardState = hardState
                }
            }
        }
        // A restarted node trusts a snapshot file newer than the log's if the log holds it (etcd's rule).
        if let file = snapshotFile, file.snapshot.index > image.offset {
            if image.entry(at: file.snapshot.index)?.term == file.snapshot.term {
                image.compact(to: file.snapshot)
            } else {
                snapshotFile = nil
            }
        }
        durable = image
        current = image
        unsynced.removeAll()
        received.removeAll()
        incoming = nil
        pending.removeAll()
        commitsInFlight.removeAll()
    }
}

/// Thrown by a failing `SimulatedDisk`.
public struct SimulatedDiskError: Error, CustomStringConvertible {
    public let description: String
}

/// A snapshot held in memory, cut into chunks.
public struct MemorySnapshotChunks: SnapshotChunkSource {
    public let index: UInt64
    public let term: UInt64
    private let data: [UInt8]
    private let chunkSize: Int
    private var offset = 0
    private var sentEmpty = false

    public init(index: UInt64, term: UInt64, data: [UInt8], chunkSize: Int) {
        precondition(chunkSize > 0, "chunks hold at least a byte")
        self.index = index
        self.term = term
        self.data = data
        self.chunkSize = chunkSize
    }

    public var isFinished: Bool { data.isEmpty ? sentEmpty : offset >= data.count }

    public mutating func next() throws -> SnapshotChunk? {
        if data.isEmpty {
            guard !sentEmpty else { return nil }
            sentEmpty = true
            return SnapshotChunk(index: index, term: term, offset: 0, totalSize: 0, data: [])
        }
        guard offset < data.count else { return nil }
        let end = min(data.count, offset + chunkSize)
        let chunk = SnapshotChunk(index: index, term: term, offset: UInt64(offset), totalSize: UInt64(data.count),
                                  data: Array(data[offset..<end]))
        offset = end
        return chunk
    }
}
