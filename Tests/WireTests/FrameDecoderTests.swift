import Testing
import Wire

@Suite("Framing and FrameDecoder")
struct FrameDecoderTests {
    @Test("appendHeader writes a 4-byte big-endian length")
    func headerIsBigEndian() {
        var out: [UInt8] = []
        Framing.appendHeader(length: 0x0102_0304, to: &out)
        #expect(out == [0x01, 0x02, 0x03, 0x04])
        out.removeAll()
        Framing.appendHeader(length: Int(UInt32.max), to: &out)
        #expect(out == [0xff, 0xff, 0xff, 0xff])
    }

    @Test("a frame appended by appendFrame decodes back", arguments: [0, 1, 2, 127, 128, 255, 256, 65_535, 65_536, 1 << 20])
    func roundTrip(bodyLength: Int) throws {
        var (_, rng) = TestSeed.generator(UInt64(bodyLength))
        let body = rng.bytes(count: bodyLength)
        var stream: [UInt8] = []
        Framing.appendFrame(body: body, to: &stream)
        #expect(stream.count == Framing.headerSize + bodyLength)

        var decoder = FrameDecoder(frameLimit: 2 << 20)
        decoder.append(stream)
        let frame = try #require(try decoder.nextFrame())
        #expect(Array(frame) == body)
        #expect(try decoder.nextFrame() == nil)
        #expect(decoder.bufferedBytes == 0)
    }

    @Test("a message's framed() output decodes through FrameDecoder")
    func messageFrameRoundTrip() throws {
        let request = KvRequest(requestID: 9, clientID: 8, seq: 7, op: .append, key: [0, 1, 0], value: Array("tail".utf8))
        var decoder = FrameDecoder()
        decoder.append(request.framed())
        let body = try #require(try decoder.nextFrame())
        #expect(Array(body) == request.serialized())
        #expect(try KvRequest(serialized: body) == request)
    }

    @Test("a frame fed one byte at a time is returned only once complete")
    func oneByteAtATime() throws {
        var (_, rng) = TestSeed.generator(1)
        let body = rng.bytes(count: 300)
        var stream: [UInt8] = []
        Framing.appendFrame(body: body, to: &stream)

        var decoder = FrameDecoder()
        for (i, byte) in stream.enumerated() {
            decoder.append(CollectionOfOne(byte))
            if i < stream.count - 1 {
                #expect(try decoder.nextFrame() == nil, "returned a frame after \(i + 1) of \(stream.count) bytes")
                #expect(decoder.bufferedBytes == i + 1)
            }
        }
        let frame = try #require(try decoder.nextFrame())
        #expect(Array(frame) == body)
        #expect(try decoder.nextFrame() == nil)
        #expect(decoder.bufferedBytes == 0)
    }

    @Test("frames split into random chunks come out whole and in order", arguments: 0..<8)
    func randomChunks(round: Int) throws {
        var (seed, rng) = TestSeed.generator(100 + UInt64(round))
        let bodies = (0..<40).map { _ in rng.bytes(upTo: 200) }
        var stream: [UInt8] = []
        for body in bodies { Framing.appendFrame(body: body, to: &stream) }

        var decoder = FrameDecoder()
        var received: [[UInt8]] = []
        var offset = 0
        while offset < stream.count {
            let chunk = min(Int.random(in: 1...64, using: &rng), stream.count - offset)
            decoder.append(stream[offset..<(offset + chunk)])
            offset += chunk
            while let frame = try decoder.nextFrame() { received.append(Array(frame)) }
            // Whatever is still buffered is exactly the unfinished tail of the stream.
            let completeBytes = received.reduce(0) { $0 + Framing.headerSize + $1.count }
            #expect(decoder.bufferedBytes == offset - completeBytes, "seed \(seed)")
        }
        #expect(received == bodies, "seed \(seed)")
        #expect(decoder.bufferedBytes == 0, "seed \(seed)")
    }

    @Test("bytes appended through withAppendableBuffer are decoded")
    func appendableBuffer() throws {
        var decoder = FrameDecoder()
        decoder.withAppendableBuffer { Framing.appendFrame(body: [1, 2, 3], to: &$0) }
        decoder.withAppendableBuffer { $0.append(contentsOf: [0, 0]) }
        #expect(try decoder.nextFrame().map(Array.init) == [1, 2, 3])
        #expect(try decoder.nextFrame() == nil)
        decoder.withAppendableBuffer { $0.append(contentsOf: [0, 1, 9]) }
        #expect(try decoder.nextFrame().map(Array.init) == [9])
        #expect(decoder.bufferedBytes == 0)
    }

    @Test("1,000 frames in one buffer come out in order with nothing left over")
    func thousandFrames() throws {
        var (seed, rng) = TestSeed.generator(2)
        let bodies = (0..<1000).map { i in [UInt8(truncatingIfNeeded: i), UInt8(truncatingIfNeeded: i >> 8)] + rng.bytes(upTo: 100) }
        var stream: [UInt8] = []
        for body in bodies { Framing.appendFrame(body: body, to: &stream) }

        var decoder = FrameDecoder()
        decoder.append(stream)
        var received: [[UInt8]] = []
        while let frame = try decoder.nextFrame() { received.append(Array(frame)) }
        #expect(received.count == 1000)
        #expect(received == bodies, "seed \(seed)")
        #expect(decoder.bufferedBytes == 0)
    }

    @Test("frames keep decoding correctly across buffer compaction (> 64 KiB consumed)")
    func compaction() throws {
        var (seed, rng) = TestSeed.generator(3)
        var decoder = FrameDecoder()
        var expected: [[UInt8]] = []
        var received: [[UInt8]] = []
        var pending: [UInt8] = []
        var fed = 0
        for i in 0..<400 {
            let body = rng.bytes(count: Int.random(in: 0...2000, using: &rng))
            expected.append(body)
            Framing.appendFrame(body: body, to: &pending)
            // Leave a partial frame in the buffer at every append, so compaction must move it.
            let cut = Int.random(in: 0...pending.count, using: &rng)
            decoder.append(pending[..<cut])
            pending.removeSubrange(..<cut)
            fed += cut
            while let frame = try decoder.nextFrame() { received.append(Array(frame)) }
            let completeBytes = received.reduce(0) { $0 + Framing.headerSize + $1.count }
            #expect(decoder.bufferedBytes == fed - completeBytes, "seed \(seed), iteration \(i)")
        }
        decoder.append(pending)
        while let frame = try decoder.nextFrame() { received.append(Array(frame)) }
        #expect(received == expected, "seed \(seed)")
        #expect(decoder.bufferedBytes == 0)
    }

    @Test("a zero-length frame yields an empty body, which is the all-default KvRequest")
    func zeroLengthFrame() throws {
        var decoder = FrameDecoder()
        decoder.append([0, 0, 0, 0, 0, 0, 0, 1, 0x08])
        let empty = try #require(try decoder.nextFrame())
        #expect(empty.isEmpty)
        let next = try #require(try decoder.nextFrame())
        #expect(Array(next) == [0x08])
        #expect(decoder.bufferedBytes == 0)

        #expect(try KvRequest(serialized: []) == KvRequest())
        #expect(try KvRequest(serialized: empty) == KvRequest())
        #expect(KvRequest().serialized() == [])
        #expect(KvRequest().framed() == [0, 0, 0, 0])
    }

    @Test("length 0xFFFFFFFF is refused as soon as the header arrives")
    func maximalLengthRefused() throws {
        var decoder = FrameDecoder()
        decoder.append([0xff, 0xff, 0xff])
        #expect(try decoder.nextFrame() == nil)
        decoder.append([0xff])
        #expect(throws: WireError.frameTooLarge(length: 0xFFFF_FFFF, limit: Framing.defaultFrameLimit)) {
            try decoder.nextFrame()
        }
        // No body bytes were needed to decide, and the error is sticky.
        #expect(decoder.bufferedBytes == 4)
        #expect(throws: WireError.self) { try decoder.nextFrame() }
    }

    @Test("the frame limit is inclusive: limit bytes accepted, limit + 1 refused")
    func customLimit() throws {
        let limit = 10
        var atLimit = FrameDecoder(frameLimit: limit)
        var header: [UInt8] = []
        Framing.appendHeader(length: limit, to: &header)
        atLimit.append(header)
        #expect(try atLimit.nextFrame() == nil, "waits for the body")
        atLimit.append([UInt8](repeating: 7, count: limit))
        #expect(try atLimit.nextFrame().map(Array.init) == [UInt8](repeating: 7, count: limit))

        var overLimit = FrameDecoder(frameLimit: limit)
        header.removeAll()
        Framing.appendHeader(length: limit + 1, to: &header)
        overLimit.append(header)
        #expect(throws: WireError.frameTooLarge(length: UInt64(limit + 1), limit: limit)) {
            try overLimit.nextFrame()
        }

        // A limit of 0 still accepts empty frames.
        var zero = FrameDecoder(frameLimit: 0)
        zero.append([0, 0, 0, 0, 0, 0, 0, 1])
        #expect(try zero.nextFrame().map(Array.init) == [])
        #expect(throws: WireError.frameTooLarge(length: 1, limit: 0)) { try zero.nextFrame() }
    }

    @Test("an oversize frame after valid ones: the valid ones come out first")
    func oversizeAfterValidFrames() throws {
        var decoder = FrameDecoder(frameLimit: 100)
        var stream: [UInt8] = []
        Framing.appendFrame(body: [1], to: &stream)
        Framing.appendFrame(body: [2, 2], to: &stream)
        Framing.appendHeader(length: 101, to: &stream)
        decoder.append(stream)
        #expect(try decoder.nextFrame().map(Array.init) == [1])
        #expect(try decoder.nextFrame().map(Array.init) == [2, 2])
        #expect(throws: WireError.frameTooLarge(length: 101, limit: 100)) { try decoder.nextFrame() }
    }
}
