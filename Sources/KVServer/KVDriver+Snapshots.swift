import KVStore
import Wire

/// Snapshots both ways: ours to raftd when its log outgrew its threshold (encoded by the shell
/// from a copy of the state machine, streamed as the link has room), and raftd's to us when
/// we are behind its compacted log (restored as the chunks arrive).
extension KVDriver {
    // MARK: Out

    /// raftd asks for a snapshot. One at a time: a request while one is under way is dropped
    /// (raftd asks again).
    mutating func snapshotRequested() {
        guard outgoing == nil, encoding == nil, raftAttached else { return }
        let id = nextEncodingID
        nextEncodingID += 1
        encoding = (id, false)
        // A copy-on-write copy: the loop keeps applying while it is encoded.
        actions.append(.encodeSnapshot(id: id, machine: machine))
    }

    /// The encoder began encoding `size` bytes at `index`.
    public mutating func snapshotEncodingStarted(id: UInt64, index: UInt64, size: Int, raftRoom: Int, at now: KVTime) -> [KVDriverAction] {
        if let encoding, encoding.id == id, !encoding.cancelled, outgoing == nil, raftAttached {
            outgoing = OutgoingSnapshot(encodingID: id, index: index, totalSize: size)
            log(.info, "sending raftd a snapshot (index \(index), \(size) bytes)")
            sendSnapshotChunks(room: raftRoom)
        } else {
            actions.append(.cancelSnapshotEncoding(id: id))
        }
        return finishInput(now: now)
    }

    /// The next part of encoding `id`, in order.
    public mutating func snapshotPartEncoded(id: UInt64, part: [UInt8], raftRoom: Int, at now: KVTime) -> [KVDriverAction] {
        // A cancelled snapshot's parts are dropped; its encoding has stopped.
        if outgoing?.encodingID == id {
            if !outgoing!.add(part) { actions.append(.snapshotPartSent(id: id)) }
            sendSnapshotChunks(room: raftRoom)
        }
        return finishInput(now: now)
    }

    /// Encoding `id` ended (all parts handed over, or stopped after a cancel).
    public mutating func snapshotEncodingFinished(id: UInt64, keys: Int, sessions: Int, duration: Duration,
                                                  raftRoom: Int, at now: KVTime) -> [KVDriverAction] {
        if let encoding, encoding.id == id {
            self.encoding = nil
            if !encoding.cancelled {
                log(.info, "encoded the snapshot (\(keys) keys, \(sessions) sessions, in \(duration))")
                sendSnapshotChunks(room: raftRoom)
            }
        }
        return finishInput(now: now)
    }

    /// Cuts chunks while raftd's link has room; the link's next drain (`raftWritable`) or the
    /// next part continues.
    mutating func sendSnapshotChunks(room: Int) {
        guard raftAttached, var out = outgoing else { return }
        var room = room
        while room > 0, let (chunk, partDone) = out.nextChunk() {
            send(.snapshot(chunk))
            if partDone { actions.append(.snapshotPartSent(id: out.encodingID)) }
            room -= chunk.data.count + 64
        }
        if out.isFinished {
            outgoing = nil
            actions.append(.releaseFreeMemory)
        } else {
            outgoing = out
        }
    }

    /// The raftd connection it was for is gone: the snapshot is no longer wanted.
    mutating func cancelOutgoingSnapshot() {
        outgoing = nil
        if let encoding, !encoding.cancelled {
            self.encoding = (encoding.id, true)
            actions.append(.cancelSnapshotEncoding(id: encoding.id))
        }
    }

    // MARK: In

    mutating func snapshotChunk(_ chunk: SnapshotChunk) {
        do {
            switch try incoming.add(chunk) {
            case .incomplete, .dropped:
                return
            case let .restored(restored, bytes):
                restore(restored, bytes: bytes)
            case let .refused(index, error):
                refuseSnapshot(index: index, error)
            }
        } catch {
            log(.error, "bad frame from raftd: \(error); reconnecting")
            resetRaftLink(reason: "\(error)")
        }
    }

    /// Replaces the state machine with raftd's snapshot: we were behind its compacted log.
    private mutating func restore(_ restored: KVStateMachine, bytes: UInt64) {
        snapshotRefused = false
        guard restored.appliedIndex > machine.appliedIndex else { return }
        log(.info, "restored from raftd's snapshot (index \(restored.appliedIndex), \(bytes) bytes, \(restored.count) keys, previously applied \(machine.appliedIndex))")
        machine = restored
        answerAppliedReads()
        actions.append(.releaseFreeMemory)
        reportLimitsIfChanged()
        // Requests whose entries the snapshot covers can no longer learn their replies here.
        for (index, id) in pending.byIndex.sorted(by: { $0.key < $1.key }) where index <= restored.appliedIndex {
            guard let covered = pending.finish(id) else { continue }
            answer(covered.waiters, status: .unavailable, message: "applied from a snapshot; outcome unknown, retry")
        }
        proposeIfRoom()
    }

    /// raftd's snapshot does not decode or is inconsistent: we keep our state, tell raftd (which
    /// backs off before sending it again, instead of resending it in a loop), and drop the
    /// entries after it that raftd sent meanwhile.
    private mutating func refuseSnapshot(index: UInt64, _ error: SnapshotRestoreError) {
        log(.error, "refusing raftd's snapshot at index \(index): \(error); staying at \(machine.appliedIndex) and asking raftd to resend it later; if it persists, raftd's snapshot file is damaged: restore that node's data dir from a healthy node")
        snapshotRefused = true
        send(.snapshotRejected(index: index, reason: "\(error)", lastApplied: machine.appliedIndex))
    }
}
