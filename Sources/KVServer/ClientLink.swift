import EventLoop
import Wire

/// One client (or gateway) connection to kvd.
final class ClientLink {
    let connection: Connection
    var decoder: FrameDecoder
    private var scratch: [UInt8] = []

    init(connection: Connection, frameLimit: Int) {
        self.connection = connection
        decoder = FrameDecoder(frameLimit: frameLimit)
    }

    /// Sends a response; a client that stops reading is paused until its socket drains,
    /// so it cannot make kvd buffer without bound.
    func reply(_ response: KvResponse) {
        guard !connection.isClosed else { return }
        scratch.removeAll(keepingCapacity: true)
        response.appendFrame(to: &scratch)
        connection.write(scratch)
        if !connection.isWritable { connection.pauseReading() }
    }
}
