import EventLoop
import Testing
import Wire

/// `FrameReader.readMessages(from: Connection)` on real sockets: what arrives in libevent's
/// pieces comes out as whole messages; an oversize header is refused on arrival.
@Suite struct ConnectionFrameReadingTests {
    @Test("a large frame among small ones arrives whole, over many reads, in order")
    func largeFrameAmongSmallOnes() throws {
        let loop = EventLoop()
        let big = [UInt8](repeating: 0xA5, count: 6 << 20)
        let sent = [KvRequest(requestID: 1), KvRequest(requestID: 2, op: .put, key: [1], value: big), KvRequest(requestID: 3)]
        var stream: [UInt8] = []
        for request in sent { request.appendFrame(to: &stream) }

        let reader = FrameReader<KvRequest>(frameLimit: 8 << 20)
        var received: [KvRequest] = []
        var reads = 0
        var accepted: [Connection] = []  // the loop holds connections weakly
        let listener = try Listener(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: 0)) { connection in
            accepted.append(connection)
            connection.onRead = { conn in
                reads += 1
                do {
                    try reader.readMessages(from: conn) { request in
                        received.append(request)
                        return .more
                    }
                } catch {
                    Issue.record("\(error)")
                    loop.stop()
                }
                if received.count == sent.count { loop.stop() }
            }
        }
        let client = try Connection.connect(loop: loop, to: .tcp(host: "127.0.0.1", port: listener.port))
        client.onConnected = { $0.write(stream) }
        runLoop(loop, seconds: 20, keeping: listener, client)
        accepted.removeAll()
        // (Compared by summary: a failing #expect would print 6 MiB of values.)
        #expect(received.map(\.requestID) == [1, 2, 3])
        let intact = received == sent
        #expect(intact, "the messages differ from those sent")
        #expect(reads > 1, "the large frame should take several reads")
        #expect(reader.bufferedBytes == 0)
    }

    @Test("an oversize header is refused once, when its 4 bytes arrive")
    func oversizeRefusedOnArrival() throws {
        let loop = EventLoop()
        let reader = FrameReader<KvRequest>(frameLimit: 1_000)
        var errors: [String] = []
        var delivered = 0
        var accepted: [Connection] = []
        var stream: [UInt8] = []
        KvRequest(requestID: 1).appendFrame(to: &stream)
        Framing.appendHeader(length: 1_001, to: &stream)
        let listener = try Listener(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: 0)) { connection in
            accepted.append(connection)
            connection.onRead = { conn in
                do {
                    try reader.readMessages(from: conn) { _ in
                        delivered += 1
                        return .more
                    }
                } catch {
                    errors.append("\(error)")
                    conn.close()
                    loop.stop()
                }
            }
        }
        let client = try Connection.connect(loop: loop, to: .tcp(host: "127.0.0.1", port: listener.port))
        client.onConnected = { $0.write(stream) }
        runLoop(loop, seconds: 5, keeping: listener, client)
        accepted.removeAll()
        #expect(delivered == 1)
        #expect(errors == ["frame length 1001 exceeds the limit of 1000 bytes"])
        #expect(reader.hasFailed)
        #expect(reader.bufferedBytes == 0)
    }
}
