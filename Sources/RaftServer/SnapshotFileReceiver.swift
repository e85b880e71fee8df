import Dispatch
import RaftStorage
import Wire

/// Receives a snapshot streamed over one link (kvd's, so the log can be compacted, or a
/// leader's) straight into a snapshot file: chunks are checked for order here, on the loop, and
/// written on the snapshot queue in arrival order, so raftd never holds a whole snapshot.
struct SnapshotFileReceiver {
    private var order = SnapshotChunkOrder()
    private var writer: SnapshotFileWriter?
    private let directory: String
    private let queue: DispatchQueue
    /// The writers' file is `snapshot.<name>.tmp`: one name per link.
    private let name: String

    init(directory: String, queue: DispatchQueue, name: String) {
        self.directory = directory
        self.queue = queue
        self.name = name
    }

    /// Takes one chunk. A first chunk starts a new file, for the chunk's index and `fileTerm`
    /// (kvd sends no term; the caller looks it up). Returns the writer once its last byte is
    /// queued, for the caller to commit (or abandon) after the queue is done with it. Throws for
    /// chunks out of order; the snapshot in progress is then dropped.
    mutating func add(_ chunk: SnapshotChunk, fileTerm: UInt64) throws(WireError) -> SnapshotFileWriter? {
        let step: SnapshotChunkOrder.Step
        do {
            step = try order.accept(chunk)
        } catch {
            abandon()
            throw error
        }
        if step.startsNew {
            abandon()
            writer = SnapshotFileWriter(directory: directory, index: chunk.index, term: fileTerm,
                                        dataSize: Int(chunk.totalSize), name: name)
        }
        guard let writer else { return nil }
        let data = chunk.data
        // An error here sticks in the writer and comes back from its commit.
        if !data.isEmpty { queue.async { try? writer.append(data) } }
        guard step.completes else { return nil }
        self.writer = nil
        return writer
    }

    /// Drops the snapshot in progress, removing its file (in order with the queued writes).
    mutating func abandon() {
        guard let writer else { return }
        self.writer = nil
        queue.async { writer.abandon() }
    }
}
