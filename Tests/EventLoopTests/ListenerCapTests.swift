import EventLoop
import Testing

@Suite struct ListenerCapTests {
    /// At the cap, a new connection is closed at once (the client sees it end, rather than
    /// wait); once an accepted one closes, a new one is accepted again.
    @Test func connectionsBeyondTheCapAreClosedAtOnce() throws {
        let loop = EventLoop()
        var accepted: [Connection] = []
        let listener = try Listener(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: 0), maxConnections: 3) { accepted.append($0) }
        var clients: [Connection] = []
        var clientsClosed = 0
        func dial() throws -> Connection {
            let client = try Connection.connect(loop: loop, to: .tcp(host: "127.0.0.1", port: listener.port))
            client.onClose = { _, _ in
                clientsClosed += 1
                if clientsClosed == 2 && accepted.count == 3 { loop.stop() }
            }
            clients.append(client)
            return client
        }
        for _ in 0..<5 { _ = try dial() }
        runLoop(loop, keeping: listener)
        #expect(listener.openConnections == 3)
        #expect(listener.refusedConnections == 2)
        #expect(clientsClosed == 2)

        // One accepted connection goes: room for one more.
        accepted.removeFirst().close()
        #expect(listener.openConnections == 2)
        let late = try dial()
        let settle = Timer(loop: loop) { loop.stop() }
        settle.schedule(milliseconds: 200)
        runLoop(loop, keeping: listener, settle, late)
        #expect(listener.openConnections == 3)
        #expect(listener.refusedConnections == 2)
        #expect(!late.isClosed)
        #expect(accepted.count == 3)
    }

    /// A connection the owner drops without closing still frees its place.
    @Test func droppedConnectionFreesItsPlace() throws {
        let loop = EventLoop()
        var accepted: [Connection] = []
        let listener = try Listener(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: 0), maxConnections: 1) {
            accepted.append($0)
            loop.stop()
        }
        let client = try Connection.connect(loop: loop, to: .tcp(host: "127.0.0.1", port: listener.port))
        runLoop(loop, keeping: listener, client)
        #expect(listener.openConnections == 1)
        accepted.removeAll()
        #expect(listener.openConnections == 0)
    }
}
