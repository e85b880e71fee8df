import EventLoop
import Wire

/// The one kvd connection attached to this raftd through the apply socket, as the shell sees
/// it: the socket and the frames half read from it. What was streamed and asked for is the
/// driver's (`KvdLink`).
final class ApplySession {
    let connection: Connection
    var decoder = FrameDecoder(frameLimit: PeerTransport.frameLimit)

    init(connection: Connection) {
        self.connection = connection
    }
}
