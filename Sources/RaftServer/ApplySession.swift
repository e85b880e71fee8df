import EventLoop
import Wire

/// The one kvd attached to this raftd through the apply socket.
///
/// kvd opens with `hello(lastApplied)`; from then on raftd streams every committed entry
/// after that index, in order, as fast as kvd reads (the stream pauses while the socket is
/// backed up and resumes when it drains, so a slow kvd costs raftd bounded memory).
final class ApplySession {
    let connection: Connection
    var decoder = FrameDecoder(frameLimit: PeerTransport.frameLimit)
    /// nil until kvd said hello.
    var streamedIndex: UInt64?

    init(connection: Connection) {
        self.connection = connection
    }

    func send(_ message: RaftToKvd) {
        var frame: [UInt8] = []
        message.appendFrame(to: &frame)
        connection.write(frame)
    }
}
