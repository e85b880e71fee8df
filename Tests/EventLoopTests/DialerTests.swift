import EventLoop
import Testing

@Suite struct DialerTests {
    /// The dialer starts before anything listens, connects once the listener appears, and
    /// dials again after the server drops the connection.
    @Test func connectsLateAndReconnects() throws {
        let loop = EventLoop()
        let port = try unusedTCPPort(loop: loop)
        let endpoint = Endpoint.tcp(host: "127.0.0.1", port: port)
        var reasons: [Connection.CloseReason] = []
        var connects = 0
        var serverSide: [Connection] = []
        var listener: Listener?

        let dialer = Dialer(loop: loop, endpoint: endpoint, minBackoffMs: 10, maxBackoffMs: 50)
        dialer.onDisconnected = { reasons.append($0) }
        dialer.onConnected = { _ in
            connects += 1
            if connects == 2 { loop.stop() }
        }
        let appear = Timer(loop: loop) {
            do {
                listener = try Listener(loop: loop, endpoint: endpoint) { connection in
                    serverSide.append(connection)
                    // The first connection is dropped by the server; later ones are kept.
                    if serverSide.count == 1 { connection.close() }
                }
            } catch {
                Issue.record("listener: \(error)")
                loop.stop()
            }
        }
        appear.schedule(milliseconds: 100)
        dialer.start()
        runLoop(loop, keeping: appear, dialer)
        dialer.stop()
        #expect(connects == 2)
        #expect(serverSide.count == 2)
        // Refused before the listener appeared, then the server's close arrived as EOF.
        guard let eofIndex = reasons.firstIndex(of: .eof) else {
            Issue.record("no EOF among \(reasons)")
            return
        }
        #expect(eofIndex > 0)
        #expect(reasons[..<eofIndex].allSatisfy { if case .connectFailed = $0 { true } else { false } })
        #expect(dialer.connection == nil)
        #expect(listener != nil)
    }
}
