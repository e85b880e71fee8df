import Testing
import Wire

/// `FrameReader` on bytes alone: what a connection's read callback delivers, without sockets.
@Suite("FrameReader: bytes in, messages out")
struct FrameReaderTests {
    /// Requests of varied sizes (including the empty one, a zero-length frame), and their stream.
    private static func requests(_ count: Int, seed: UInt64) -> (messages: [KvRequest], stream: [UInt8]) {
        var (_, rng) = TestSeed.generator(seed)
        var messages: [KvRequest] = []
        var stream: [UInt8] = []
        for i in 0..<count {
            let request = i % 4 == 0
                ? KvRequest()
                : KvRequest(requestID: UInt64(i), clientID: 7, seq: UInt64(i), op: .put,
                            key: rng.bytes(count: i % 5), value: rng.bytes(count: (i * 37) % 300))
            messages.append(request)
            request.appendFrame(to: &stream)
        }
        return (messages, stream)
    }

    /// Delivers everything complete, the handler asking for more every time.
    private static func drain(_ reader: FrameReader<KvRequest>, into received: inout [KvRequest]) throws -> FrameReader<KvRequest>.Next {
        try reader.deliver { request in
            received.append(request)
            return .more
        }
    }

    @Test("a stream split at every byte boundary delivers the same messages, in order")
    func splitAtEveryBoundary() throws {
        let (messages, stream) = Self.requests(6, seed: 11)
        for cut in 0...stream.count {
            let reader = FrameReader<KvRequest>()
            var received: [KvRequest] = []
            reader.append(stream[..<cut])
            #expect(try Self.drain(reader, into: &received) == .more)
            let before = received.count
            reader.append(stream[cut...])
            #expect(try Self.drain(reader, into: &received) == .more)
            #expect(received == messages, "cut at byte \(cut) of \(stream.count)")
            #expect(reader.bufferedBytes == 0)
            #expect(reader.framesCompleted == UInt64(messages.count))
            // What was delivered before the cut is exactly the frames that ended before it.
            var ends: [Int] = []
            var offset = 0
            for message in messages { offset += message.framed().count; ends.append(offset) }
            #expect(before == ends.filter { $0 <= cut }.count, "cut at byte \(cut)")
        }
    }

    @Test("bytes fed one at a time: each message comes out as its last byte arrives")
    func oneByteAtATime() throws {
        let (messages, stream) = Self.requests(5, seed: 12)
        let reader = FrameReader<KvRequest>()
        var received: [KvRequest] = []
        for byte in stream {
            reader.fill { $0.append(byte); return 1 }
            _ = try Self.drain(reader, into: &received)
        }
        #expect(received == messages)
        #expect(reader.bufferedBytes == 0)
    }

    @Test("many frames in one read all come out of one deliver")
    func manyFramesPerRead() throws {
        let (messages, stream) = Self.requests(2_000, seed: 13)
        let reader = FrameReader<KvRequest>()
        #expect(reader.fill { $0.append(contentsOf: stream); return stream.count } == stream.count)
        var received: [KvRequest] = []
        #expect(try Self.drain(reader, into: &received) == .more)
        #expect(received == messages)
        #expect(reader.framesCompleted == 2_000)
        #expect(reader.bufferedBytes == 0)
    }

    @Test("zero-length frames are delivered as the message they decode to")
    func emptyFrames() throws {
        let reader = FrameReader<KvRequest>()
        var stream: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0]
        KvRequest(requestID: 5).appendFrame(to: &stream)
        stream += [0, 0, 0, 0]
        reader.append(stream)
        var received: [KvRequest] = []
        #expect(try Self.drain(reader, into: &received) == .more)
        #expect(received == [KvRequest(), KvRequest(), KvRequest(requestID: 5), KvRequest()])
        #expect(reader.bufferedBytes == 0)

        // A message type for which empty is not valid refuses it like any garbage.
        let strict = FrameReader<RaftToKvd>()
        strict.append([0, 0, 0, 0])
        #expect(throws: WireError.self) { try strict.deliver { _ in .more } }
        #expect(strict.framesCompleted == 1)
    }

    @Test("an oversize header is refused as soon as its 4 bytes arrive, before any body is buffered")
    func oversizeHeaderRefused() throws {
        let reader = FrameReader<KvRequest>(frameLimit: 100)
        var stream: [UInt8] = []
        KvRequest(requestID: 1).appendFrame(to: &stream)
        Framing.appendHeader(length: 101, to: &stream)
        reader.append(stream.dropLast())
        var received: [KvRequest] = []
        #expect(try Self.drain(reader, into: &received) == .more, "3 header bytes: wait")
        reader.append(stream.suffix(1))
        #expect(throws: WireError.frameTooLarge(length: 101, limit: 100)) {
            _ = try Self.drain(reader, into: &received)
        }
        #expect(received == [KvRequest(requestID: 1)], "frames before the oversize one are delivered")
        #expect(reader.hasFailed)
        #expect(reader.bufferedBytes == 0, "the buffer is dropped")
        // The body that follows is read (draining the source) but never buffered.
        let body = [UInt8](repeating: 9, count: 101)
        #expect(reader.fill { $0.append(contentsOf: body); return body.count } == 101)
        reader.append(body)
        #expect(reader.bufferedBytes == 0)
        // Reported once: later delivers are silent and deliver nothing.
        #expect(try Self.drain(reader, into: &received) == .stop)
        #expect(received.count == 1)
    }

    @Test("a frame that does not decode is reported once; nothing after it is delivered")
    func garbageFrame() throws {
        let reader = FrameReader<KvRequest>()
        var stream: [UInt8] = []
        KvRequest(requestID: 1).appendFrame(to: &stream)
        Framing.appendFrame(body: [0xff, 0xff, 0xff], to: &stream)  // field 31, wire type 7: no such thing
        KvRequest(requestID: 3).appendFrame(to: &stream)
        reader.append(stream)
        var received: [KvRequest] = []
        do {
            _ = try Self.drain(reader, into: &received)
            Issue.record("garbage was accepted")
        } catch let error as WireError {
            if case .malformed = error {} else { Issue.record("unexpected \(error)") }
            #expect("\(error)".contains("does not decode"), "the owner logs this text: \(error)")
        }
        #expect(received == [KvRequest(requestID: 1)])
        #expect(reader.framesCompleted == 2)
        #expect(reader.hasFailed)
        #expect(try Self.drain(reader, into: &received) == .stop)
        #expect(received.count == 1)
    }

    @Test("a handler that stops mid-batch gets the remaining frames on the next deliver")
    func handlerStopsMidBatch() throws {
        let (messages, stream) = Self.requests(5, seed: 14)
        let reader = FrameReader<KvRequest>()
        reader.append(stream)
        var received: [KvRequest] = []
        let first = try reader.deliver { request in
            received.append(request)
            return received.count == 2 ? .stop : .more
        }
        #expect(first == .stop)
        #expect(received == Array(messages.prefix(2)))
        let rest = messages.dropFirst(2).reduce(0) { $0 + $1.framed().count }
        #expect(reader.bufferedBytes == rest, "the undelivered frames stay buffered")
        #expect(reader.framesCompleted == 2)

        // A stop on the last frame still says stop; the next deliver then finds nothing.
        let second = try reader.deliver { request in
            received.append(request)
            return received.count == messages.count ? .stop : .more
        }
        #expect(second == .stop)
        #expect(received == messages)
        #expect(try Self.drain(reader, into: &received) == .more)
        #expect(received == messages)
    }

    @Test("an error the handler throws is passed on once and fails the reader")
    func handlerError() throws {
        struct Refused: Error, Equatable {}
        let (messages, stream) = Self.requests(3, seed: 15)
        let reader = FrameReader<KvRequest>()
        reader.append(stream)
        var seen = 0
        #expect(throws: Refused()) {
            try reader.deliver { _ in
                seen += 1
                if seen == 2 { throw Refused() }
                return .more
            }
        }
        #expect(seen == 2)
        #expect(reader.hasFailed)
        #expect(try reader.deliver { _ in seen += 1; return .more } == .stop)
        #expect(seen == 2, "nothing of the \(messages.count) after the failure")
    }

    @Test("a handler may deliver from the same reader (re-entry): order holds, nothing is lost")
    func reentrantDeliver() throws {
        let (messages, stream) = Self.requests(6, seed: 16)
        let reader = FrameReader<KvRequest>()
        reader.append(stream)
        var received: [KvRequest] = []
        var nested = false
        try reader.deliver { request in
            received.append(request)
            if !nested {
                nested = true
                _ = try Self.drain(reader, into: &received)
            }
            return .more
        }
        #expect(received == messages)
    }
}
