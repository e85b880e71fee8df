import Dispatch
import Synchronization
import Wire

/// kvd's snapshot on its way to raftd while it is still being encoded: the encoding thread
/// hands over parts of a few MiB, the loop cuts them into chunks as the link drains, and at most
/// `partsAhead` parts wait at a time, so neither the encoding nor the link ever holds the whole
/// encoded state.
final class OutgoingSnapshot {
    let index: UInt64
    let totalSize: Int
    /// Shared with the encoding thread.
    let flow: Flow
    /// Bytes of the snapshot sent so far (the next chunk's offset).
    private(set) var sent = 0
    private var parts: [[UInt8]] = []
    private var offsetInFirstPart = 0
    private var sentEmpty = false

    static let partsAhead = 2

    /// What the encoding thread and the loop share: credits for parts (the thread waits for one
    /// before encoding each part; the loop returns one for each part it has sent) and a flag
    /// that stops the encoding when the snapshot is no longer wanted.
    final class Flow: Sendable {
        private let credits = DispatchSemaphore(value: OutgoingSnapshot.partsAhead)
        private let cancelled = Atomic<Bool>(false)

        /// On the encoding thread: waits until another part may be handed over; false once the
        /// snapshot was cancelled (the encoding then stops).
        func awaitTurn() -> Bool {
            credits.wait()
            return !cancelled.load(ordering: .acquiring)
        }

        func partSent() { credits.signal() }

        /// Stops the encoding: a thread waiting for its turn wakes and gives up.
        func cancel() {
            cancelled.store(true, ordering: .releasing)
            credits.signal()
        }

        var isCancelled: Bool { cancelled.load(ordering: .acquiring) }
    }

    init(index: UInt64, totalSize: Int, flow: Flow) {
        self.index = index
        self.totalSize = totalSize
        self.flow = flow
    }

    var isFinished: Bool { totalSize == 0 ? sentEmpty : sent == totalSize }

    /// A part from the encoding thread, in order.
    func add(_ part: [UInt8]) {
        guard !part.isEmpty else { return flow.partSent() }
        parts.append(part)
    }

    /// The next chunk of at most `chunkSize` bytes, nil while the next part has not arrived yet
    /// (or when finished). Returns the part's credit once its last byte is cut.
    func nextChunk(chunkSize: Int = SnapshotChunker.defaultChunkSize) -> SnapshotChunk? {
        if totalSize == 0 {
            guard !sentEmpty else { return nil }
            sentEmpty = true
            return SnapshotChunk(index: index, term: 0, offset: 0, totalSize: 0, data: [])
        }
        guard let part = parts.first else { return nil }
        let end = min(part.count, offsetInFirstPart + chunkSize)
        let chunk = SnapshotChunk(index: index, term: 0, offset: UInt64(sent), totalSize: UInt64(totalSize),
                                  data: Array(part[offsetInFirstPart..<end]))
        sent += end - offsetInFirstPart
        offsetInFirstPart = end
        if end == part.count {
            parts.removeFirst()
            offsetInFirstPart = 0
            flow.partSent()
        }
        return chunk
    }
}
