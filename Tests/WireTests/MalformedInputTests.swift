import Testing
import Wire

@Suite("Malformed and random input")
struct MalformedInputTests {
    @Test("random bodies decode to a stable value or throw WireError", arguments: Codec.all)
    func randomBodies(codec: Codec) {
        var (seed, rng) = TestSeed.generator(40 + codec.salt)
        for i in 0..<3000 {
            let body = rng.bytes(count: Int.random(in: 0...48, using: &rng))
            do {
                let stable = try codec.decodeIsStable(body[...])
                #expect(stable, "seed \(seed), body \(i): \(hex(body)) decodes but does not re-encode to the same value")
            } catch {
                // Typed throws: `error` is a WireError. Body decoding never reports framing errors.
                if case .frameTooLarge = error { Issue.record("seed \(seed), body \(i): \(error)") }
            }
        }
    }

    @Test("mutated and truncated valid encodings decode or throw, never crash", arguments: Codec.all)
    func mutatedBodies(codec: Codec) {
        var (seed, rng) = TestSeed.generator(60 + codec.salt)
        for i in 0..<500 {
            var body = codec.randomBody(&rng)
            guard !body.isEmpty else { continue }
            rng.mutate(&body)
            if let stable = try? codec.decodeIsStable(body[...]) {
                #expect(stable, "seed \(seed), body \(i): \(hex(body.prefix(64)))")
            }
        }
    }

    static let malformed: [(name: String, body: [UInt8])] = [
        ("truncated length-delimited field", [0x0a, 0xff]),
        ("bad wire type 7", [0x0f]),
        ("bad wire type 6", [0x0e]),
        ("varint tag with no value", [0x08]),
        ("truncated varint", [0x08, 0x80]),
        ("length past the end", [0x2a, 0x05, 0x61, 0x62]),
        ("11-byte varint", [0x08] + [UInt8](repeating: 0xff, count: 10) + [0x01]),
        ("truncated fixed64", [0x09, 1, 2, 3]),
        ("truncated fixed32", [0x0d, 1, 2]),
    ]

    @Test("known-malformed bodies throw .malformed for every message type",
          arguments: Codec.all, malformed.indices)
    func knownMalformed(codec: Codec, index: Int) {
        let (name, body) = Self.malformed[index]
        let error = #expect(throws: WireError.self, "\(name): \(hex(body))") {
            try codec.decodeIsStable(body[...])
        }
        guard case .malformed(let message, let bytes)? = error else {
            Issue.record("\(name): expected .malformed, got \(String(describing: error))")
            return
        }
        #expect(message == codec.description)
        #expect(bytes == body.count)
    }

    @Test("a body cut inside a field does not decode")
    func truncatedBodies() throws {
        let request = KvRequest(requestID: 1, clientID: 2, seq: 3, op: .put, key: Array("key".utf8), value: Array("value".utf8))
        let body = request.serialized()
        // key is bytes 8..<13 (2a 03 'k' 'e' 'y'), value is 13..<20 (32 05 'v' 'a' 'l' 'u' 'e').
        #expect(body.count == 20 && body[8] == 0x2a && body[13] == 0x32)
        // A prefix ending inside either length-delimited field must fail; one ending
        // between fields is a valid shorter message.
        for cut in Array(9..<13) + Array(14..<20) {
            #expect(throws: WireError.malformed(message: "KvRequest", bytes: cut), "cut at \(cut): \(hex(body[..<cut]))") {
                try KvRequest(serialized: body[..<cut])
            }
        }
        #expect(try KvRequest(serialized: body[..<13]) == KvRequest(requestID: 1, clientID: 2, seq: 3, op: .put, key: Array("key".utf8)))
    }

    @Test("a oneof with no case set is invalid")
    func emptyOneof() {
        #expect(throws: WireError.invalid("KvdToRaft has no body")) { try KvdToRaft(serialized: []) }
        #expect(throws: WireError.invalid("RaftToKvd has no body")) { try RaftToKvd(serialized: []) }
        // Only unknown fields: still no case.
        #expect(throws: WireError.self) { try KvdToRaft(serialized: [0x78, 0x01]) }
    }

    @Test("unknown fields are skipped")
    func unknownFields() throws {
        // field 15 varint 1, field 16 length-delimited "ab", then request_id = 7.
        let body: [UInt8] = [0x78, 0x01, 0x82, 0x01, 0x02, 0x61, 0x62, 0x08, 0x07]
        #expect(try KvRequest(serialized: body) == KvRequest(requestID: 7))
    }

    @Test("decoding a slice of a larger buffer reads only the slice")
    func sliceDecoding() throws {
        let request = KvRequest(requestID: 3, key: [1, 2, 3])
        let padded: [UInt8] = [0x0f, 0x0f] + request.serialized() + [0x0f, 0xff]
        #expect(try KvRequest(serialized: padded[2..<(padded.count - 2)]) == request)
    }
}
