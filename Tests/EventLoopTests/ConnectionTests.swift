import EventLoop
import Testing
import Wire

@Suite struct ConnectionTests {
    /// 10,000 requests pipelined at once; the server answers under a 2 KiB high-water mark,
    /// pausing its reads whenever its output is full. libevent 2.1 reads at most 4 KiB per
    /// callback and flushes between callbacks, so the mark must be below one read's worth of
    /// replies for backpressure to trigger; the client also starts reading only after 150 ms.
    @Test(arguments: [false, true]) func tenThousandFramesWithBackpressure(tls: Bool) throws {
        let loop = EventLoop()
        let limits = Connection.Limits(lowWater: 512, highWater: 2 * 1024, maxOutputBytes: 1024 * 1024, readChunk: 64 * 1024)
        let link = try tls ? TestTLS() : nil
        defer { link?.remove() }
        let server = try EchoServer(loop: loop, limits: limits, tls: link?.accept)
        let count = 10_000
        let value = [UInt8](repeating: 0x5A, count: 100)
        var responseFrameSize = 0
        var requests: [UInt8] = []
        for id in 1...count {
            KvRequest(requestID: UInt64(id), clientID: 7, seq: UInt64(id), op: .put, key: Array("k\(id)".utf8), value: value)
                .appendFrame(to: &requests)
            responseFrameSize = max(responseFrameSize, KvResponse(requestID: UInt64(id), status: .ok, value: value).framed().count)
        }

        let reader = ResponseReader()
        var received = 0
        var outOfOrder = 0
        var closeReason: Connection.CloseReason?
        let client = try Connection.connect(loop: loop, to: .tcp(host: "127.0.0.1", port: server.port), tls: link?.dial)
        client.onConnected = { connection in
            connection.pauseReading()
            connection.write(requests)
        }
        let startReading = Timer(loop: loop) { client.resumeReading() }
        startReading.schedule(milliseconds: 150)
        client.onRead = { connection in
            do {
                for response in try reader.read(from: connection) {
                    received += 1
                    if response.requestID != UInt64(received) || response.value != value || response.status != .ok { outOfOrder += 1 }
                }
            } catch {
                Issue.record("client could not decode a response: \(error)")
                loop.stop()
            }
            if received == count { loop.stop() }
        }
        client.onClose = { _, reason in
            closeReason = reason
            loop.stop()
        }
        runLoop(loop, seconds: 10, keeping: client, server, startReading)
        #expect(closeReason == nil)
        #expect(received == count)
        #expect(outOfOrder == 0)
        #expect(server.requestsServed == count)
        #expect(server.readPauses > 0, "backpressure never triggered")
        #expect(server.maxOutputBufferedBytes <= limits.highWater + responseFrameSize)
    }

    /// The client stops reading; a server that honours `isWritable` keeps its queue bounded
    /// while the kernel buffers fill, and everything arrives once the client reads again.
    @Test(arguments: [false, true]) func slowReaderKeepsServerOutputBounded(tls: Bool) throws {
        let loop = EventLoop()
        let link = try tls ? TestTLS() : nil
        defer { link?.remove() }
        let limits = Connection.Limits(lowWater: 16 * 1024, highWater: 64 * 1024, maxOutputBytes: 1024 * 1024, readChunk: 64 * 1024)
        let chunkSize = 16 * 1024
        var written = 0
        var maxQueued = 0
        var lastProgress = EventLoop.monotonicNanos()
        var producing = true
        var serverConnection: Connection?

        func produce(_ connection: Connection) {
            while producing, connection.isWritable {
                // Chunk n is filled with n % 251, so the reader can tell order and loss.
                let chunk = [UInt8](repeating: UInt8(truncatingIfNeeded: (written / chunkSize) % 251), count: chunkSize)
                #expect(connection.write(chunk))
                written += chunkSize
                maxQueued = max(maxQueued, connection.outputBufferedBytes)
                lastProgress = EventLoop.monotonicNanos()
            }
        }
        let listener = try Listener(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: 0), limits: limits, tls: link?.accept) { connection in
            serverConnection = connection
            connection.onWritable = { produce($0) }
            produce(connection)
        }

        var received = 0
        var corrupt = false
        var buffer: [UInt8] = []
        let client = try Connection.connect(loop: loop, to: .tcp(host: "127.0.0.1", port: listener.port), tls: link?.dial)
        client.onConnected = { $0.pauseReading() }
        client.onRead = { connection in
            buffer.removeAll(keepingCapacity: true)
            connection.readAvailable(appendingTo: &buffer)
            // Check the first and last byte of what arrived (a per-byte loop is slow in debug).
            for offset in [0, buffer.count - 1] where !buffer.isEmpty {
                let expected = UInt8(truncatingIfNeeded: ((received + offset) / chunkSize) % 251)
                if buffer[offset] != expected { corrupt = true }
            }
            received += buffer.count
            if !producing, received == written { loop.stop() }
        }
        var stalledQueue = 0
        // Once the server has made no progress for 200 ms the kernel buffers are full and the
        // producer waits for `onWritable` (over TLS the last flush may have left less than
        // `highWater` but more than `lowWater`): stop producing and let the client drain everything.
        let watchdog = Timer(loop: loop, repeating: true) {
            guard producing, let server = serverConnection, server.outputBufferedBytes > limits.lowWater,
                  EventLoop.monotonicNanos() - lastProgress > 200_000_000 else { return }
            producing = false
            stalledQueue = server.outputBufferedBytes
            client.resumeReading()
        }
        watchdog.schedule(milliseconds: 20)
        runLoop(loop, seconds: 15, keeping: listener, client, watchdog)
        #expect(!producing, "the server never stalled on the paused reader")
        #expect(stalledQueue > limits.lowWater)
        #expect(maxQueued <= limits.highWater + chunkSize)
        #expect(written < 256 * 1024 * 1024)
        #expect(received == written)
        #expect(!corrupt)
        serverConnection = nil
    }

    /// A producer that ignores `isWritable` is cut off at `maxOutputBytes`.
    @Test func ignoringBackpressureOverflowsAndCloses() throws {
        let loop = EventLoop()
        let limits = Connection.Limits(lowWater: 16 * 1024, highWater: 64 * 1024, maxOutputBytes: 1024 * 1024, readChunk: 64 * 1024)
        var accepted = 0
        var rejectedAt: Int?
        var reason: Connection.CloseReason?
        var wasClosed = false
        let listener = try Listener(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: 0), limits: limits) { connection in
            connection.onClose = { connection, why in
                reason = why
                wasClosed = connection.isClosed
            }
            let chunk = [UInt8](repeating: 1, count: 64 * 1024)
            for attempt in 0..<100 {
                if connection.write(chunk) { accepted += 1 } else { rejectedAt = attempt; break }
            }
            loop.stop()
        }
        let client = try Connection.connect(loop: loop, to: .tcp(host: "127.0.0.1", port: listener.port))
        client.onConnected = { $0.pauseReading() }
        runLoop(loop, keeping: listener, client)
        #expect(reason == .outputOverflow)
        #expect(wasClosed)
        #expect(accepted == 16)
        #expect(rejectedAt == 16)
    }

    @Test func tcpConnectToClosedPortFailsAsync() throws {
        let loop = EventLoop()
        let port = try unusedTCPPort(loop: loop)
        var reason: Connection.CloseReason?
        var connected = false
        let client = try Connection.connect(loop: loop, to: .tcp(host: "127.0.0.1", port: port))
        client.onConnected = { _ in connected = true }
        client.onClose = { _, why in
            reason = why
            loop.stop()
        }
        runLoop(loop, keeping: client)
        #expect(!connected)
        if case .connectFailed = reason {} else { Issue.record("expected connectFailed, got \(String(describing: reason))") }
        #expect(client.isClosed)
    }

    /// Clients sending garbage get one BAD_REQUEST and EOF; another client is unaffected.
    @Test func garbageClientDoesNotDisturbOthers() throws {
        let loop = EventLoop()
        let server = try EchoServer(loop: loop)
        let endpoint = Endpoint.tcp(host: "127.0.0.1", port: server.port)
        let garbage: [[UInt8]] = [
            [0, 0, 0, 5, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],      // body protobuf-c rejects
            [0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3],               // 4 GiB length announced
        ]
        var badReplies: [[KvResponse]] = Array(repeating: [], count: garbage.count)
        var badCloses: [Connection.CloseReason?] = Array(repeating: nil, count: garbage.count)
        var badClients: [Connection] = []
        var goodReplies: [UInt64] = []
        let goodReader = ResponseReader()

        let good = try Connection.connect(loop: loop, to: endpoint)
        func sendGood(_ id: UInt64) {
            good.write(KvRequest(requestID: id, op: .get, key: Array("key".utf8), value: [UInt8(id)]).framed())
        }
        func garbageDone() {
            guard badCloses.allSatisfy({ $0 != nil }) else { return }
            #expect(server.liveSessions == 1)
            sendGood(2)
        }
        func startGarbageClients() throws {
            for (index, bytes) in garbage.enumerated() {
                let reader = ResponseReader()
                let bad = try Connection.connect(loop: loop, to: endpoint)
                bad.onConnected = { $0.write(bytes) }
                bad.onRead = { connection in
                    do { badReplies[index] += try reader.read(from: connection) } catch {
                        Issue.record("garbage client \(index) could not decode the reply: \(error)")
                    }
                }
                bad.onClose = { _, reason in
                    badCloses[index] = reason
                    garbageDone()
                }
                badClients.append(bad)
            }
        }
        good.onConnected = { _ in sendGood(1) }
        good.onRead = { connection in
            do {
                for response in try goodReader.read(from: connection) {
                    #expect(response.status == .ok)
                    #expect(response.value == [UInt8(response.requestID)])
                    goodReplies.append(response.requestID)
                    if response.requestID == 1 { try startGarbageClients() }
                    if response.requestID == 2 { loop.stop() }
                }
            } catch {
                Issue.record("good client: \(error)")
                loop.stop()
            }
        }
        good.onClose = { _, reason in
            Issue.record("good client lost its connection: \(reason)")
            loop.stop()
        }
        runLoop(loop, keeping: server, good)
        #expect(goodReplies == [1, 2])
        #expect(server.badRequests == garbage.count)
        for index in garbage.indices {
            #expect(badReplies[index].map(\.requestID) == [0])
            #expect(badReplies[index].map(\.status) == [.badRequest])
            #expect(badCloses[index] == .eof)
        }
        badClients.removeAll()
    }
}
