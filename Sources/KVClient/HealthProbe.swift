import EventLoop

/// One `GET` to a process's operator endpoint (`--metrics-listen`), blocking, with a
/// deadline: `/health` is what `kvctl health` asks every process; tests scrape `/metrics`.
public struct HealthProbe {
    public struct Result: Sendable {
        /// The HTTP status (200 serving, 503 not), or nil when no answer came.
        public let status: Int?
        /// The JSON body, or why there was no answer.
        public let detail: String
        public let milliseconds: Double
    }

    public static func check(_ endpoint: Endpoint, timeoutMs: Double) -> Result {
        get(endpoint, path: "/health", timeoutMs: timeoutMs)
    }

    public static func get(_ endpoint: Endpoint, path: String, timeoutMs: Double) -> Result {
        let loop = EventLoop()
        let started = EventLoop.monotonicNanos()
        var received: [UInt8] = []
        var failure: String?
        var done = false
        let connection: Connection
        do {
            connection = try Connection.connect(loop: loop, to: endpoint)
        } catch {
            return Result(status: nil, detail: "\(error)", milliseconds: 0)
        }
        connection.onConnected = { conn in
            conn.write(Array("GET \(path) HTTP/1.0\r\nHost: \(endpoint)\r\n\r\n".utf8))
        }
        connection.onRead = { conn in conn.readAvailable(appendingTo: &received) }
        connection.onClose = { _, reason in
            if case .eof = reason {} else { failure = "\(reason)" }
            done = true
        }
        let timer = Timer(loop: loop) { failure = "no answer within \(Int(timeoutMs)) ms"; done = true }
        timer.schedule(milliseconds: timeoutMs)
        while !done { loop.runOnce(blocking: true) }
        timer.cancel()
        connection.close()
        let elapsed = Double(EventLoop.monotonicNanos() - started) / 1_000_000
        if let failure { return Result(status: nil, detail: failure, milliseconds: elapsed) }
        let text = String(decoding: received, as: UTF8.self)
        // "HTTP/1.0 200 OK\r\n…\r\n\r\n{json}"
        let statusLine = text.prefix { $0 != "\r" && $0 != "\n" }
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else {
            return Result(status: nil, detail: "not an HTTP answer", milliseconds: elapsed)
        }
        // The body follows the first empty line.
        var body = ""
        if let blank = text.split(separator: "\r\n\r\n", maxSplits: 1, omittingEmptySubsequences: false).dropFirst().first { body = String(blank) }
        return Result(status: status, detail: String(body.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed()), milliseconds: elapsed)
    }
}
