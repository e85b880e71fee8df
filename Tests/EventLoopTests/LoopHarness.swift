import EventLoop
import Foundation
import Testing
import Wire

/// Runs `loop` on this thread until the test calls `loop.stop()` from a callback. A safety
/// timer stops it after `seconds` and records a failure, so a stuck test ends instead of hanging.
/// `keeping` holds timers and other loop objects alive for the whole run: Swift may end a
/// local's lifetime right after its last use, which would free a timer before it fires.
@discardableResult
func runLoop(_ loop: EventLoop, seconds: Double = 5, keeping objects: AnyObject?...,
             sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
    var timedOut = false
    let safety = Timer(loop: loop) {
        timedOut = true
        loop.stop()
    }
    safety.schedule(milliseconds: seconds * 1000)
    withExtendedLifetime(objects) { loop.run() }
    safety.cancel()
    if timedOut {
        Issue.record("event loop test did not finish within \(seconds) s", sourceLocation: sourceLocation)
    }
    return !timedOut
}

/// A TCP port nothing listens on (bound once, then released).
func unusedTCPPort(loop: EventLoop) throws -> Int {
    let probe = try Listener(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: 0)) { $0.close() }
    let port = probe.port
    probe.close()
    return port
}

/// A fresh Unix socket path, short enough for sun_path and unique per test.
func temporarySocketPath() -> String {
    "/tmp/kvraft-evt-\(getpid())-\(UUID().uuidString.prefix(8)).sock"
}

/// Reads framed KvResponses off a connection, in order.
struct ResponseReader {
    let reader = FrameReader<KvResponse>()

    func read(from connection: Connection) throws -> [KvResponse] {
        var responses: [KvResponse] = []
        try reader.readMessages(from: connection) { response in
            responses.append(response)
            return .more
        }
        return responses
    }
}

/// A KV-protocol echo server that honours backpressure: it answers each KvRequest with a
/// KvResponse carrying the same id and value, writes only while the connection is
/// writable, and otherwise stops reading that client until `onWritable`. Undecodable input
/// gets one BAD_REQUEST (request id 0), then the connection is closed after flushing.
final class EchoServer {
    final class Session {
        let connection: Connection
        var decoder = FrameDecoder()
        var out: [UInt8] = []
        weak var server: EchoServer?

        init(connection: Connection, server: EchoServer) {
            self.connection = connection
            self.server = server
        }

        func pump() {
            guard let server, !connection.isClosed else { return }
            do {
                while connection.isWritable, let body = try decoder.nextFrame() {
                    let request = try KvRequest(serialized: body)
                    out.removeAll(keepingCapacity: true)
                    KvResponse(requestID: request.requestID, status: .ok, value: request.value).appendFrame(to: &out)
                    connection.write(out)
                    server.requestsServed += 1
                    server.maxOutputBufferedBytes = max(server.maxOutputBufferedBytes, connection.outputBufferedBytes)
                }
            } catch {
                server.badRequests += 1
                connection.write(KvResponse(requestID: 0, status: .badRequest, message: "\(error)").framed())
                connection.closeAfterFlush()
                return
            }
            if !connection.isWritable {
                if !connection.isReadingPaused { server.readPauses += 1 }
                connection.pauseReading()
            } else if connection.isReadingPaused {
                connection.resumeReading()
            }
        }
    }

    private(set) var listener: Listener!
    private var sessions: [ObjectIdentifier: Session] = [:]
    var requestsServed = 0
    var badRequests = 0
    var readPauses = 0
    var maxOutputBufferedBytes = 0
    var accepted = 0

    init(loop: EventLoop, endpoint: Endpoint = .tcp(host: "127.0.0.1", port: 0), limits: Connection.Limits = Connection.Limits(),
         tls: TLSAccept? = nil) throws {
        listener = try Listener(loop: loop, endpoint: endpoint, limits: limits, tls: tls) { [unowned self] connection in
            self.accept(connection)
        }
    }

    var port: Int { listener.port }
    var liveSessions: Int { sessions.count }

    private func accept(_ connection: Connection) {
        accepted += 1
        let session = Session(connection: connection, server: self)
        sessions[ObjectIdentifier(connection)] = session
        connection.onRead = { [weak session] connection in
            guard let session else { return }
            session.decoder.withAppendableBuffer { _ = connection.readAvailable(appendingTo: &$0) }
            session.pump()
        }
        connection.onWritable = { [weak session] _ in session?.pump() }
        connection.onClose = { [weak self] connection, _ in
            self?.sessions[ObjectIdentifier(connection)] = nil
        }
    }
}
