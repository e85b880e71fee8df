import EventLoop
import Wire

/// The one kvd attached to this raftd through the apply socket.
///
/// kvd opens with `hello(lastApplied)`; from then on raftd streams every committed entry
/// after that index, in order, as fast as kvd reads (the stream pauses while the socket is
/// backed up and resumes when it drains, so a slow kvd costs raftd bounded memory). A kvd
/// behind the compacted log gets the snapshot first, in chunks paced the same way.
final class ApplySession {
    let connection: Connection
    var decoder = FrameDecoder(frameLimit: PeerTransport.frameLimit)
    /// nil until kvd said hello.
    var streamedIndex: UInt64?
    /// Restoring kvd from our snapshot (it is behind the compacted log): the chunks still to send.
    var snapshotOut: SnapshotFileChunker?
    /// Writes the snapshots kvd sends (to let the log be compacted) into the next snapshot file.
    var snapshotIn: SnapshotFileReceiver
    /// When we last asked kvd for a snapshot (monotonic ns), while that request is unanswered.
    var snapshotRequestedAt: UInt64?
    /// kvd's last snapshot was ahead of what we know to be applied (we restarted and have not
    /// relearned the commit index yet); the next request waits until we have applied this far.
    var snapshotWaitsForApplied: UInt64 = 0
    /// Reads this kvd asked for, by the id the core knows them under (raftd-wide, so a read
    /// of an earlier kvd connection is never answered under a new connection's id).
    var readIDs: [UInt64: UInt64] = [:]

    /// Where accepted proposals landed, not yet told. kvd needs them only to match the
    /// committed entries that follow, so they ride along with the next message instead of
    /// waking kvd on their own: one wakeup fewer per proposal, and the appends to the
    /// followers are not queued behind it.
    private var acceptedResults: [ProposeResult] = []

    init(connection: Connection, snapshotIn: SnapshotFileReceiver) {
        self.connection = connection
        self.snapshotIn = snapshotIn
    }

    func send(_ message: RaftToKvd) {
        var frame: [UInt8] = []
        if !acceptedResults.isEmpty {
            RaftToKvd.results(acceptedResults).appendFrame(to: &frame)
            acceptedResults.removeAll(keepingCapacity: true)
        }
        message.appendFrame(to: &frame)
        connection.write(frame)
    }

    /// Queues results for accepted proposals until the next message (or `sendAcceptedResults`).
    func deferAccepted(_ results: [ProposeResult]) {
        acceptedResults.append(contentsOf: results)
    }

    /// Sends queued results on their own, when nothing else went to kvd for a while (a leader
    /// that cannot commit); kvd must still learn where its proposals went.
    func sendAcceptedResults() {
        guard !acceptedResults.isEmpty else { return }
        let results = acceptedResults
        acceptedResults.removeAll(keepingCapacity: true)
        send(.results(results))
    }
}
