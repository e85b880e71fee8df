import EventLoop
import Wire

/// One client connection to a server speaking the client protocol (kvd, kvgateway):
/// splits frames into requests, answers a frame that does not decode with BAD_REQUEST
/// (request_id 0) and closes, and applies backpressure — a client that does not read its
/// replies is not read from until its socket drains.
public final class ClientLink {
    public let connection: Connection
    private var decoder: FrameDecoder
    private var scratch: [UInt8] = []
    private let onRequest: (KvRequest, ClientLink) -> Void

    /// `onRequest` gets each decoded request; `onClose` runs once when the connection ends.
    public init(connection: Connection, frameLimit: Int, onRequest: @escaping (KvRequest, ClientLink) -> Void,
                onClose: @escaping (ClientLink) -> Void) {
        self.connection = connection
        self.onRequest = onRequest
        decoder = FrameDecoder(frameLimit: frameLimit)
        connection.onRead = { [weak self] conn in
            guard let self else { return conn.close() }
            self.decoder.withAppendableBuffer { _ = conn.readAvailable(appendingTo: &$0) }
            self.processFrames()
        }
        connection.onWritable = { [weak self] conn in
            guard let self, conn.isReadingPaused else { return }
            conn.resumeReading()
            // Requests that arrived before the pause are still waiting in the decoder.
            self.processFrames()
        }
        connection.onClose = { [weak self] _, _ in
            guard let self else { return }
            onClose(self)
        }
    }

    /// Sends a response; pauses reading while the client is not reading its replies.
    public func reply(_ response: KvResponse) {
        guard !connection.isClosed else { return }
        scratch.removeAll(keepingCapacity: true)
        response.appendFrame(to: &scratch)
        connection.write(scratch)
        if !connection.isWritable { connection.pauseReading() }
    }

    private func processFrames() {
        do {
            while !connection.isReadingPaused, !connection.isClosed, let frame = try decoder.nextFrame() {
                onRequest(try KvRequest(serialized: frame), self)
            }
        } catch {
            reply(KvResponse(requestID: 0, status: .badRequest, message: "\(error); closing connection"))
            connection.closeAfterFlush()
        }
    }
}
