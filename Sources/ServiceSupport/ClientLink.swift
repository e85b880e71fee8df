import EventLoop
import Logging
import Wire

/// One client connection to a server speaking the client protocol (kvd, kvgateway):
/// splits frames into requests, answers a frame that does not decode with BAD_REQUEST
/// (request_id 0) and closes, and keeps what one client can hold bounded, by the process
/// limits of the connection's loop (`EventLoop.limits`):
/// - backpressure: a client that does not read its replies is not read from until its
///   socket drains. Way out of that pause: the socket draining (`onWritable`), or the
///   disconnect — by the process's output budget when the client is over its cap or the
///   budget is exceeded, else by the idle timeout (a client that reads nothing makes no
///   progress);
/// - its unsent output counts against the process's output budget;
/// - a frame started and not finished within the partial-frame timeout closes the link;
/// - a link quiet for the idle timeout is closed.
public final class ClientLink {
    public let connection: Connection
    private let reader: FrameReader<KvRequest>
    private var scratch: [UInt8] = []
    private let onRequest: (KvRequest, ClientLink) -> Void
    private let onClose: (ClientLink) -> Void
    private let partialFrameWatch: PartialFrameWatch
    private let idleWatch: IdleWatch
    private let log: RateLimitedLog
    /// Held strongly: the loop keeps only a weak reference to the budget.
    private let inputBudget: InputBudget

    /// `onRequest` gets each decoded request; `onClose` runs once when the connection ends
    /// (closed by the client, or by this link for breaking a limit).
    public init(connection: Connection, frameLimit: Int, onRequest: @escaping (KvRequest, ClientLink) -> Void,
                onClose: @escaping (ClientLink) -> Void) {
        self.connection = connection
        self.onRequest = onRequest
        self.onClose = onClose
        reader = FrameReader(frameLimit: frameLimit)
        let loop = connection.eventLoop
        log = loop.connectionLog
        connection.chargeOutput(to: loop.clientOutput)
        inputBudget = loop.clientInput
        partialFrameWatch = PartialFrameWatch(loop: loop, timeoutMs: loop.limits.partialFrameTimeoutMs)
        idleWatch = IdleWatch(loop: loop, timeoutMs: loop.limits.idleTimeoutMs,
                              progress: { [weak connection] in connection?.outputDrainedBytes ?? 0 })
        partialFrameWatch.onExpired = { [weak self] in
            self?.expire("sent part of a frame and did not finish it within \(Int(loop.limits.partialFrameTimeoutMs)) ms")
        }
        idleWatch.onExpired = { [weak self] in
            self?.expire("was idle for \(Int(loop.limits.idleTimeoutMs / 1000)) s", level: .info)
        }
        connection.onRead = { [weak self] conn in
            guard let self else { return conn.close() }
            self.idleWatch.activity &+= 1
            self.reader.fill(from: conn)
            self.processFrames()
        }
        connection.onWritable = { [weak self] conn in
            guard let self, conn.isReadingPaused else { return }
            conn.resumeReading()
            // Requests that arrived before the pause are still waiting in the reader.
            self.processFrames()
        }
        // (A disconnect by the output budget is logged there, with the numbers.)
        connection.onClose = { [weak self] _, _ in
            guard let self else { return }
            self.stopWatching()
            onClose(self)
        }
    }

    /// Sends a response; pauses reading while the client is not reading its replies.
    public func reply(_ response: KvResponse) {
        guard !connection.isClosed else { return }
        idleWatch.activity &+= 1
        scratch.removeAll(keepingCapacity: true)
        response.appendFrame(to: &scratch)
        connection.write(scratch)
        if !connection.isWritable {
            // Way out: the socket draining (onWritable), the output budget, or the idle watch.
            assert(idleWatch.isWatching, "a client link paused its reads with no idle watch to end the pause")
            connection.pauseReading()
        }
    }

    private func processFrames() {
        do {
            if !connection.isReadingPaused, !connection.isClosed {
                try reader.deliver { request in
                    onRequest(request, self)
                    return connection.isReadingPaused || connection.isClosed ? .stop : .more
                }
            }
        } catch {
            reply(KvResponse(requestID: 0, status: .badRequest, message: "\(error); closing connection"))
            connection.closeAfterFlush()
            return
        }
        // Not paused: every whole frame was taken, so what is left is the start of one.
        partialFrameWatch.observe(holdsPartialFrame: !connection.isReadingPaused && reader.bufferedBytes > 0,
                                  framesCompleted: reader.framesCompleted)
        // Whole frames waiting behind a pause count too: they are held memory all the same.
        inputBudget.hold(self, bytes: reader.bufferedBytes) { [weak self] in
            self?.expire("was cut to keep unfinished frames within the input budget")
        }
    }

    /// Closes the link for breaking a limit; the owner hears of it through `onClose`.
    private func expire(_ why: String, level: Logger.Level = .warning) {
        guard !connection.isClosed else { return }
        log.log(level, key: why, "closing client \(connection.peer): it \(why)")
        stopWatching()
        connection.close()
        onClose(self)
    }

    private func stopWatching() {
        inputBudget.release(self)
        partialFrameWatch.cancel()
        idleWatch.cancel()
    }
}
