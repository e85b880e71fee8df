import Raft

/// When to ask kvd for a snapshot, whether to take the one it sends, and what of the log to
/// keep once it is durable.
extension RaftDriver {
    /// Asks kvd for a snapshot once enough log accumulated since the last one (one request at a
    /// time; an unanswered one is repeated after a while, e.g. if kvd reconnected meanwhile).
    func requestSnapshotIfDue(now: UInt64) {
        guard logBytesSinceSnapshot >= max(config.snapshotLogBytes, lastSnapshotBytes), snapshotCommitInFlight == nil,
              let link = kvd, link.streamedIndex != nil, link.snapshotOut == nil,
              node.status.appliedIndex >= link.snapshotWaitsForApplied else { return }
        if let asked = link.snapshotRequestedAt, now - asked < config.snapshotRequestRetry.nanoseconds { return }
        kvd?.snapshotRequestedAt = now
        sendToKvd(.snapshotRequest(appliedAtLeast: committedIndex))
    }

    /// kvd's state at `snapshot.index`, whose bytes the store has taken: committed off the loop,
    /// then (in `snapshotCommitted`) the log before it is discarded, except a catch-up tail, in
    /// memory and on disk. The write (MiBs plus three fsyncs) never stalls replication.
    func compact(with snapshot: PendingSnapshot) throws {
        let index = snapshot.index
        guard let streamed = kvd?.streamedIndex, index <= streamed else {
            snapshots.abandon(snapshot)
            throw ApplyProtocolViolation("kvd sent a snapshot at index \(index) but was only sent entries up to \(kvd?.streamedIndex ?? 0)")
        }
        // kvd can be ahead of us: after a kill -9 our last commit index (not synced on its own)
        // may trail what kvd applied before, and kvd keeps its state across our restart. Our log
        // cannot be compacted past what we know is applied; put it off until we have relearned
        // that commit index (asked again then, see `requestSnapshotIfDue`).
        let applied = node.status.appliedIndex
        guard index <= applied else {
            snapshots.abandon(snapshot)
            kvd?.snapshotWaitsForApplied = index
            logger.notice("kvd's snapshot at \(index) is ahead of what this raftd knows to be applied (\(applied)); compacting once it has caught up")
            return
        }
        // Already covered by a newer snapshot, compacted away meanwhile, or one is being written.
        guard snapshotCommitInFlight == nil, index > node.snapshot?.index ?? 0, node.entry(at: index)?.term == snapshot.term else {
            snapshots.abandon(snapshot)
            return
        }
        snapshotCommitInFlight = snapshot
        snapshots.commit(snapshot)
    }

    /// A commit started by `compact` ended.
    public func snapshotCommitted(_ commit: SnapshotCommit) {
        precondition(snapshotCommitInFlight == commit.snapshot, "a snapshot commit finished that was not in flight")
        snapshotCommitInFlight = nil
        guard !stopped else { return }
        let snapshot = commit.snapshot
        let name = "snapshot (\(snapshot.index), t\(snapshot.term), \(snapshot.dataSize) bytes)"
        if let error = commit.error {
            // The log is intact on disk; only compaction is put off.
            return logger.error("cannot save \(name): \(error); the log stays uncompacted")
        }
        metrics?.snapshotDuration.record(duration: commit.duration)
        // Installed over by a newer snapshot from the leader meanwhile.
        guard snapshot.index > node.snapshot?.index ?? 0, node.entry(at: snapshot.index)?.term == snapshot.term else { return }
        do {
            try log.compact(through: snapshot.index, term: snapshot.term, dataSize: snapshot.dataSize)
        } catch {
            return logger.error("cannot compact the log with \(name): \(error); the log stays uncompacted")
        }
        // The core keeps only index and term; the bytes are in the store.
        node.compact(through: snapshot.index, data: [], retaining: entriesToRetain(before: snapshot.index))
        precondition(node.snapshot?.index == snapshot.index, "the core did not compact to \(snapshot.index)")
        logBytesSinceSnapshot = Self.bytes(of: node, after: snapshot.index)
        lastSnapshotBytes = snapshot.dataSize
        logger.info("compacted the log through \(snapshot.index)", metadata: [
            "snapshotBytes": "\(snapshot.dataSize)", "firstIndex": "\(node.firstIndex)", "writeDuration": "\(commit.duration)",
        ])
    }

    /// Entries to keep before `index` when compacting: those a live follower still needs (so it
    /// catches up with appends, not a whole snapshot), unless they exceed four compaction
    /// thresholds; at least `snapshotCatchUpBytes` worth.
    func entriesToRetain(before index: UInt64) -> Int {
        let catchUp = entries(backFrom: index, downTo: 0, withinBytes: config.snapshotCatchUpBytes).count
        guard let slowest = node.slowestLiveFollowerMatch, slowest < index else { return catchUp }
        let needed = entries(backFrom: index, downTo: slowest, withinBytes: 4 * config.snapshotLogBytes)
        return needed.overLimit ? catchUp : max(catchUp, needed.count)
    }

    /// How many entries, going back from `index` and staying above `floor` (and stopping at a
    /// compacted one), fit in `limit` bytes; `overLimit` when the limit is what stopped it.
    private func entries(backFrom index: UInt64, downTo floor: UInt64, withinBytes limit: Int) -> (count: Int, overLimit: Bool) {
        var bytes = 0
        var position = index
        while position > floor, let entry = node.entry(at: position) {
            bytes += entry.byteSize
            if bytes > limit { return (Int(index - position), true) }
            position -= 1
        }
        return (Int(index - position), false)
    }
}
