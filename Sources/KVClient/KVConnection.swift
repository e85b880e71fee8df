import EventLoop
import Wire

/// Why a single request/response exchange failed.
public enum KVCallError: Error, Equatable, Sendable, CustomStringConvertible {
    case connectFailed(String)
    case connectionLost(String)
    case timedOut
    case badResponse(String)

    public var description: String {
        switch self {
        case let .connectFailed(why): "cannot connect: \(why)"
        case let .connectionLost(why): "connection lost: \(why)"
        case .timedOut: "no response in time"
        case let .badResponse(why): "bad response: \(why)"
        }
    }
}

/// A blocking connection to a gateway or kvd, for scripts, tests and tools: it owns a
/// private event loop and runs it only while waiting. Not thread-safe; one per thread.
public final class KVConnection {
    public let endpoint: Endpoint
    private let loop = EventLoop()
    private var connection: Connection?
    private var reader = FrameReader<KvResponse>()
    private var responses: [UInt64: KvResponse] = [:]
    private var failure: KVCallError?
    private var nextRequestID: UInt64 = 1

    /// With TLS, the server's certificate must chain to `tls`'s CA (any name).
    private let tls: TLSContext?

    public init(endpoint: Endpoint, tls: TLSContext? = nil) {
        self.endpoint = endpoint
        self.tls = tls
    }

    deinit {
        connection?.close()
    }

    public func close() {
        connection?.close()
        connection = nil
    }

    /// Sends `request` (its request_id is replaced by a fresh one) and waits for the answer.
    public func call(_ request: KvRequest, timeoutMs: Double) throws(KVCallError) -> KvResponse {
        let deadline = EventLoop.monotonicNanos() + UInt64(timeoutMs * 1_000_000)
        try connectIfNeeded(deadline: deadline)
        var request = request
        request.requestID = nextRequestID
        nextRequestID += 1
        connection!.write(request.framed())
        return try waitFor(request.requestID, deadline: deadline)
    }

    /// Sends raw bytes (for tests of malformed input) and waits for any response, or the close.
    public func sendRaw(_ bytes: [UInt8], timeoutMs: Double) throws(KVCallError) -> KvResponse {
        let deadline = EventLoop.monotonicNanos() + UInt64(timeoutMs * 1_000_000)
        try connectIfNeeded(deadline: deadline)
        connection!.write(bytes)
        try runUntil(deadline: deadline) { !self.responses.isEmpty }
        return responses.removeValue(forKey: responses.keys.first!)!
    }

    /// True while the server keeps this connection open.
    public var isOpen: Bool { connection.map { !$0.isClosed } ?? false }

    /// Waits until the server closes the connection (or the deadline passes).
    public func waitForClose(timeoutMs: Double) -> Bool {
        let deadline = EventLoop.monotonicNanos() + UInt64(timeoutMs * 1_000_000)
        do { try runUntil(deadline: deadline) { self.connection == nil } } catch {}
        return connection == nil
    }

    private func connectIfNeeded(deadline: UInt64) throws(KVCallError) {
        if let connection, !connection.isClosed { return }
        failure = nil
        reader = FrameReader()
        let fresh: Connection
        do {
            fresh = try Connection.connect(loop: loop, to: endpoint, tls: tls.map { TLSDial(context: $0, expectedName: nil) })
        } catch {
            throw .connectFailed("\(endpoint): \(error)")
        }
        connection = fresh
        fresh.onRead = { [weak self] conn in self?.receive(conn) }
        fresh.onClose = { [weak self] conn, reason in
            guard let self, self.connection === conn else { return }
            self.connection = nil
            self.failure = conn.isConnected ? .connectionLost("\(reason)") : .connectFailed("\(self.endpoint): \(reason)")
        }
        do {
            try runUntil(deadline: deadline) { fresh.isConnected }
        } catch {
            fresh.close()
            connection = nil
            throw error == .timedOut ? .connectFailed("\(endpoint): timed out") : error
        }
    }

    private func waitFor(_ requestID: UInt64, deadline: UInt64) throws(KVCallError) -> KvResponse {
        try runUntil(deadline: deadline) { self.responses[requestID] != nil }
        return responses.removeValue(forKey: requestID)!
    }

    private func runUntil(deadline: UInt64, _ done: () -> Bool) throws(KVCallError) {
        let timer = Timer(loop: loop) {}
        while !done() {
            if let failure, connection == nil {
                self.failure = nil
                throw failure
            }
            let now = EventLoop.monotonicNanos()
            guard now < deadline else { throw .timedOut }
            // Wake up at the deadline even if nothing arrives.
            timer.schedule(micros: Int64((deadline - now) / 1000) + 1)
            loop.runOnce(blocking: true)
        }
        timer.cancel()
    }

    private func receive(_ connection: Connection) {
        do {
            try reader.readMessages(from: connection) { response in
                responses[response.requestID] = response
                return .more
            }
        } catch {
            connection.close()
            self.connection = nil
            failure = .badResponse("\(error)")
        }
    }
}
