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
    var snapshotOut: SnapshotChunker?
    /// Reassembles the snapshots kvd sends to let the log be compacted.
    var snapshotIn = SnapshotAssembler()
    /// When we last asked kvd for a snapshot (monotonic ns), while that request is unanswered.
    var snapshotRequestedAt: UInt64?

    init(connection: Connection) {
        self.connection = connection
    }

    func send(_ message: RaftToKvd) {
        var frame: [UInt8] = []
        message.appendFrame(to: &frame)
        connection.write(frame)
    }
}
