import Raft
import ServiceSupport
import Wire

/// The apply socket: kvd's messages in, committed entries (or the snapshot first) streamed out
/// as the link has room.
extension RaftDriver {
    /// A kvd connected; a previous one is dropped.
    public func kvdConnected() {
        if kvd != nil {
            logger.warning("a new kvd connected; dropping the previous one")
            kvdDisconnected()
        }
        kvd = KvdLink()
    }

    /// The kvd link is gone: forgets it, and the snapshot it was sending.
    public func kvdDisconnected() {
        guard kvd != nil else { return }
        snapshots.abandonFromKvd()
        kvd = nil
        followerStreamAt = nil
        node.setStateMachineAttached(false)
    }

    /// The kvd link drained below its low-water mark: stream on.
    public func kvdWritable(now: UInt64) {
        guard !stopped else { return }
        streamCommitted(now: now)
    }

    /// One message from kvd. A message that breaks the apply protocol closes the link.
    public func kvdReceived(_ message: KvdToRaft, now: UInt64) {
        guard !stopped, kvd != nil else { return }
        do {
            try handle(message, now: now)
        } catch {
            logger.warning("closing kvd connection: \(error)")
            io.closeKvd()
            kvdDisconnected()
        }
    }

    private func handle(_ message: KvdToRaft, now: UInt64) throws {
        switch message {
        case let .hello(lastApplied):
            let status = node.status
            if lastApplied > status.lastIndex {
                logger.error("kvd has applied up to \(lastApplied) but this log ends at \(status.lastIndex); was the data dir replaced?")
            }
            logger.info("kvd attached", metadata: ["lastApplied": "\(lastApplied)", "commit": "\(committedIndex)"])
            kvd?.streamedIndex = lastApplied
            kvd?.snapshotOut = nil
            node.setStateMachineAttached(true)
            sendToKvd(.leadership(Leadership(term: status.term, leaderID: status.leader, isLeader: status.role == .leader)))
            streamCommitted(now: now)
        case let .propose(proposals):
            guard !proposals.isEmpty else { return }
            switch node.propose(batch: proposals.map(\.data)) {
            case let .accepted(firstIndex, term):
                kvd?.acceptedResults.append(contentsOf: proposals.enumerated().map { offset, proposal in
                    ProposeResult(proposalID: proposal.proposalID, accepted: true, index: firstIndex + UInt64(offset), term: term)
                })
            case let .notLeader(leader):
                sendToKvd(.results(proposals.map { ProposeResult(proposalID: $0.proposalID, accepted: false, leaderID: leader) }))
            }
        case let .memberCommand(queryID, command):
            sendToKvd(.memberAnswer(queryID: queryID, memberCommand(command)))
        case let .statusQuery(queryID):
            sendToKvd(.status(queryID: queryID, nodeStatus()))
        case let .snapshot(chunk):
            // kvd sends no term; 0 (which no entry has) if the log does not hold that index.
            let term = chunk.offset == 0 ? node.entry(at: chunk.index)?.term ?? 0 : 0
            guard let written = try snapshots.receiveFromKvd(chunk, term: term) else { return }
            kvd?.snapshotRequestedAt = nil
            try compact(with: written)
        case let .read(ids):
            guard config.readMode != .log else {
                return sendToKvd(.readResults(ids.map { ReadResult(readID: $0, outcome: .useLog) }))
            }
            observeClock(now)
            var coreIDs: [UInt64] = []
            coreIDs.reserveCapacity(ids.count)
            for id in ids {
                kvd?.readIDs[nextCoreReadID] = id
                coreIDs.append(nextCoreReadID)
                nextCoreReadID += 1
            }
            node.requestRead(ids: coreIDs)
        case let .snapshotRejected(index, reason, lastApplied):
            let delayMs = kvdSnapshotRetry.refused(index: index, nowNanos: now)
            logger.error("kvd refused the snapshot at index \(index): \(reason); resending it in \(delayMs) ms (if this repeats, the snapshot file in the data dir is damaged: restore this node's data dir from a healthy node)")
            kvd?.snapshotOut = nil
            kvd?.streamedIndex = lastApplied
            kvdSnapshotRetryAt = now + delayMs * 1_000_000
        }
    }

    /// What `kvctl status` shows of this node.
    func nodeStatus() -> NodeStatus {
        let status = node.status
        var answer = NodeStatus(
            nodeID: config.nodeID, reachable: true, role: status.role.name, term: status.term, leaderID: status.leader,
            commitIndex: status.commitIndex, appliedIndex: committedIndex, address: config.listenAddress, error: refusal ?? "",
            fsyncs: log.syncCount, lastIndex: status.lastIndex, snapshotIndex: node.snapshot?.index ?? 0,
            readMode: config.readMode.rawValue)
        answer.members = memberList()
        return answer
    }

    /// Sends `message` to kvd (if one is attached), with the proposal results waiting to ride along.
    func sendToKvd(_ message: RaftToKvd) {
        guard kvd != nil, let frames = kvd?.frames(with: message) else { return }
        io.sendToKvd(frames)
    }

    /// Sends queued results on their own, when nothing else went to kvd for a while (a leader
    /// that cannot commit); kvd must still learn where its proposals went.
    func sendAcceptedResults() {
        guard let results = kvd?.acceptedResults, !results.isEmpty else { return }
        kvd?.acceptedResults.removeAll(keepingCapacity: true)
        io.sendToKvd([.results(results)])
    }

    /// Sends the core's answers to the kvd that asked (answers for a previous kvd are dropped).
    func answerReads(_ states: [ReadState]) {
        guard kvd != nil else { return }
        var results: [ReadResult] = []
        for state in states {
            guard let id = kvd?.readIDs.removeValue(forKey: state.id) else { continue }
            results.append(ReadResult(kvdID: id, state))
        }
        if !results.isEmpty { sendToKvd(.readResults(results)) }
    }

    /// The leader streams at once (its kvd answers clients); a follower coalesces.
    func streamCommittedSoon(now: UInt64) {
        if lastSoftState?.role == .leader { return streamCommitted(now: now) }
        guard followerStreamAt == nil, kvd?.streamedIndex != nil else { return }
        followerStreamAt = now + config.followerApplyDelay.wholeNanoseconds
    }

    /// Sends committed entries kvd has not seen yet, while its link keeps up; a kvd behind the
    /// compacted log gets the snapshot first.
    func streamCommitted(now: UInt64) {
        // Not `let link = kvd`: a copy of the link would make every later change to it
        // (the results riding along, emptied per send) copy its arrays.
        guard var next = kvd?.streamedIndex.map({ $0 + 1 }) else { return }
        if kvd?.snapshotOut == nil, next <= committedIndex, next < node.firstIndex, let snapshot = node.snapshot {
            let waitMs = kvdSnapshotRetry.waitMs(index: snapshot.index, nowNanos: now)
            guard waitMs == 0 else {
                kvdSnapshotRetryAt = now + waitMs * 1_000_000
                return
            }
            do {
                kvd?.snapshotOut = try snapshots.openForKvd(index: snapshot.index, term: snapshot.term)
                logger.info("restoring kvd from snapshot (\(snapshot.index), t\(snapshot.term)): it has applied up to \(next - 1), the log starts at \(node.firstIndex)")
            } catch is SnapshotFileMismatch {
                // A newer snapshot is in place and the core is about to compact to it: the
                // next stream attempt (every commit, every few ms on a follower) sends that one.
                return logger.debug("kvd's snapshot waits for the compaction to the newer file")
            } catch {
                return logger.error("cannot send kvd the snapshot it needs: \(error)")
            }
        }
        if var chunks = kvd?.snapshotOut {
            do {
                while io.kvdIsWritable, let chunk = try chunks.next() {
                    sendToKvd(.snapshot(chunk))
                }
            } catch {
                // kvd drops the half it has when the next snapshot starts at offset 0.
                kvd?.snapshotOut = nil
                return logger.error("stopped sending kvd the snapshot: \(error)")
            }
            guard chunks.isFinished else {
                kvd?.snapshotOut = chunks
                return
            }
            kvd?.snapshotOut = nil
            kvd?.streamedIndex = chunks.index
            next = chunks.index + 1
        }
        while next <= committedIndex, io.kvdIsWritable {
            var batch: [LogEntry] = []
            var bytes = 0
            while next <= committedIndex, bytes < config.applyChunkBytes, let entry = node.entry(at: next) {
                // kvd has no use for configurations: it applies them as no-ops.
                batch.append(entry.kind == .config ? LogEntry(term: entry.term, index: entry.index, isNoop: true) : LogEntry(entry))
                bytes += entry.byteSize
                next += 1
            }
            guard let last = batch.last else { break }
            precondition(last.index <= committedIndex && last.index <= node.status.commitIndex,
                         "streaming entry \(last.index) past the committed index \(committedIndex)")
            sendToKvd(.committed(batch))
            kvd?.streamedIndex = next - 1
        }
    }
}

/// kvd broke the apply protocol; its connection is closed.
struct ApplyProtocolViolation: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
