import Dispatch
import RaftStorage
import Wire

/// Receives the snapshot kvd streams (so the log can be compacted) straight into the data dir's
/// next snapshot file: chunks are checked for order here, on the loop, and written on the
/// snapshot queue in arrival order, so raftd never holds a whole snapshot from kvd.
struct SnapshotFileReceiver {
    private var order = SnapshotChunkOrder()
    private var writer: SnapshotFileWriter?
    private let directory: String
    private let queue: DispatchQueue

    init(directory: String, queue: DispatchQueue) {
        self.directory = directory
        self.queue = queue
    }

    /// Takes one chunk. A first chunk starts a new file for (index, `termOfIndex(index)`): kvd
    /// sends no term, the log knows it (0 when it does not, which no entry has). Returns the
    /// writer once the last byte is queued, for the caller to commit (or abandon) on the queue.
    /// Throws for chunks out of order; the snapshot in progress is then dropped.
    mutating func add(_ chunk: SnapshotChunk, termOfIndex: (UInt64) -> UInt64?) throws(WireError) -> SnapshotFileWriter? {
        let step: SnapshotChunkOrder.Step
        do {
            step = try order.accept(chunk)
        } catch {
            abandon()
            throw error
        }
        if step.startsNew {
            abandon()
            writer = SnapshotFileWriter(directory: directory, index: chunk.index, term: termOfIndex(chunk.index) ?? 0,
                                        dataSize: Int(chunk.totalSize))
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
