import Wire

/// A snapshot arriving in chunks (raftd restoring kvd), decoded and restored as the chunks
/// come: what is held is the state being rebuilt and at most one field in flight, never the
/// whole encoding (`StateSnapshotReader`, `SnapshotRestorer`).
///
/// A snapshot that does not decode or breaks an invariant is refused as soon as that is seen;
/// its remaining chunks are then dropped until a new snapshot starts (offset 0). Chunks out of
/// order are the sender's protocol error and throw, as `SnapshotChunkOrder` says.
public struct IncomingSnapshot: Sendable {
    public enum Outcome: Sendable {
        /// More chunks to come.
        case incomplete
        /// The last chunk is in: the restored machine, at the snapshot's index.
        case restored(KVStateMachine, bytes: UInt64)
        /// Refused at this chunk; the rest of the snapshot will be dropped.
        case refused(index: UInt64, SnapshotRestoreError)
        /// A chunk of a snapshot refused earlier: dropped.
        case dropped
    }

    private var order: SnapshotChunkOrder
    private var reader = StateSnapshotReader()
    private var restorer = SnapshotRestorer()
    private var fields: [StateSnapshotReader.Field] = []
    /// The snapshot refused last, whose later chunks are dropped.
    private var refused: (index: UInt64, term: UInt64)?

    public init(maxTotalSize: UInt64 = SnapshotChunkOrder.defaultMaxTotalSize) {
        order = SnapshotChunkOrder(maxTotalSize: maxTotalSize)
    }

    /// Bytes held for a field not yet complete (the rest is already restored state).
    public var bufferedBytes: Int { reader.bufferedBytes }

    public mutating func add(_ chunk: SnapshotChunk) throws(WireError) -> Outcome {
        if chunk.offset != 0, let refused, refused.index == chunk.index, refused.term == chunk.term, !order.inProgress {
            return .dropped
        }
        let step: SnapshotChunkOrder.Step
        do {
            step = try order.accept(chunk)
        } catch {
            reset()
            throw error
        }
        if step.startsNew {
            refused = nil
            reader = StateSnapshotReader()
            restorer = SnapshotRestorer()
        }
        do throws(SnapshotRestoreError) {
            do throws(WireError) {
                try reader.read(chunk.data[...], into: &fields)
                if step.completes { try reader.finish() }
            } catch {
                throw SnapshotRestoreError.undecodable(bytes: Int(order.received), error)
            }
            for field in fields { try restorer.add(field) }
            fields.removeAll(keepingCapacity: true)
            guard step.completes else { return .incomplete }
            let finished = restorer
            restorer = SnapshotRestorer()  // `finished` holds the only reference to the new map
            let machine = try finished.finish()
            guard machine.appliedIndex == chunk.index else {
                throw SnapshotRestoreError.inconsistent(appliedIndex: machine.appliedIndex,
                                                        "it was sent as the state at index \(chunk.index)")
            }
            return .restored(machine, bytes: chunk.totalSize)
        } catch {
            let index = chunk.index
            let term = chunk.term
            reset()
            refused = (index, term)
            return .refused(index: index, error)
        }
    }

    /// Drops the snapshot in progress (a new connection).
    public mutating func reset() {
        order.reset()
        reader = StateSnapshotReader()
        restorer = SnapshotRestorer()
        fields = []
        refused = nil
    }
}
