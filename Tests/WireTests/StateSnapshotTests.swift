import Testing
@testable import Wire
import Raft
import SeededRandom

extension RandomNumberGenerator {
    mutating func stateSnapshot(maxCount: Int = 6) -> StateSnapshot {
        StateSnapshot(
            appliedIndex: varintValue(), clockMs: varintValue(),
            pairs: (0..<Int.random(in: 0...maxCount, using: &self)).map { _ in
                KeyValuePair(key: bytes(upTo: 32), value: bytes())
            },
            sessions: (0..<Int.random(in: 0...maxCount, using: &self)).map { _ in
                SessionRecord(clientID: varintValue(), lastSeq: varintValue(), lastStatus: status(),
                              lastValue: bytes(), lastActiveMs: varintValue(), lastWasGet: bool())
            },
            tombstones: (0..<Int.random(in: 0...maxCount, using: &self)).map { _ in
                TombstoneRecord(clientID: varintValue(), atMs: varintValue(), lastSeq: varintValue())
            },
            limits: bool() ? nil : SessionLimits(sessionTimeoutMs: varintValue(), maxSessions: varintValue(),
                                                 tombstoneTimeoutMs: varintValue(), maxTombstones: varintValue()))
    }
}

@Suite("StateSnapshot encoding")
struct StateSnapshotTests {
    static let codec = Codec.of(StateSnapshot.self, salt: 100) { $0.stateSnapshot() }

    @Test("byte-exact against protoc --encode=kvraft.state.StateSnapshot")
    func knownEncoding() throws {
        // applied_index: 5 clock_ms: 300 pairs { key: "a" value: "b" } pairs { key: "" value: "" }
        // sessions { client_id: 7 last_seq: 2 last_status: STATUS_NO_KEY last_active_ms: 1 }
        // tombstones { client_id: 9 at_ms: 3 }
        let expected: [UInt8] = [0x08, 0x05, 0x10, 0xac, 0x02,
                                 0x1a, 0x06, 0x0a, 0x01, 0x61, 0x12, 0x01, 0x62,
                                 0x1a, 0x00,
                                 0x22, 0x08, 0x08, 0x07, 0x10, 0x02, 0x18, 0x01, 0x28, 0x01,
                                 0x2a, 0x04, 0x08, 0x09, 0x10, 0x03]
        let snapshot = StateSnapshot(
            appliedIndex: 5, clockMs: 300,
            pairs: [KeyValuePair(key: Array("a".utf8), value: Array("b".utf8)), KeyValuePair(key: [], value: [])],
            sessions: [SessionRecord(clientID: 7, lastSeq: 2, lastStatus: .noKey, lastActiveMs: 1)],
            tombstones: [TombstoneRecord(clientID: 9, atMs: 3)])
        #expect(snapshot.serialized() == expected)
        #expect(snapshot.framed() == [0, 0, 0, UInt8(expected.count)] + expected)
        #expect(try StateSnapshot(serialized: expected) == snapshot)
        #expect(StateSnapshot().serialized() == [])
        #expect(try StateSnapshot(serialized: []) == StateSnapshot())
    }

    @Test("random snapshots round trip, also appended after other bytes")
    func randomRoundTrip() throws {
        var (seed, rng) = TestSeed.generator(101)
        for i in 0..<300 {
            let snapshot = rng.stateSnapshot(maxCount: 40)
            #expect(try roundTrip(snapshot) == snapshot, "seed \(seed), snapshot \(i)")
            var out: [UInt8] = [1, 2, 3]
            snapshot.appendFrame(to: &out)
            let frame = Array(out.dropFirst(3))
            #expect(frame == snapshot.framed(), "seed \(seed), snapshot \(i)")
            #expect(try StateSnapshot(serialized: out[7...]) == snapshot, "seed \(seed), snapshot \(i)")
        }
    }

    @Test("random, truncated and mutated bodies decode to a stable value or throw WireError")
    func garbage() {
        var (seed, rng) = TestSeed.generator(102)
        for i in 0..<3000 {
            let body = rng.bytes(count: Int.random(in: 0...64, using: &rng))
            if let stable = try? Self.codec.decodeIsStable(body[...]) {
                #expect(stable, "seed \(seed), body \(i): \(hex(body))")
            }
        }
        for i in 0..<1000 {
            var body = Self.codec.randomBody(&rng)
            guard !body.isEmpty else { continue }
            rng.mutate(&body)
            if let stable = try? Self.codec.decodeIsStable(body[...]) {
                #expect(stable, "seed \(seed), body \(i): \(hex(body.prefix(64)))")
            }
        }
    }

    @Test("known-malformed bodies throw .malformed", arguments: MalformedInputTests.malformed.indices)
    func knownMalformed(index: Int) {
        let (name, body) = MalformedInputTests.malformed[index]
        #expect(throws: WireError.malformed(message: "StateSnapshot", bytes: body.count), "\(name): \(hex(body))") {
            try StateSnapshot(serialized: body)
        }
    }

    @Test("a snapshot cut inside a pair, a session or a tombstone does not decode")
    func truncated() throws {
        let snapshot = StateSnapshot(appliedIndex: 1, clockMs: 2,
                                     pairs: [KeyValuePair(key: Array("key".utf8), value: Array("value".utf8))],
                                     sessions: [SessionRecord(clientID: 3, lastSeq: 4, lastStatus: .ok, lastValue: [9], lastActiveMs: 2)],
                                     tombstones: [TombstoneRecord(clientID: 5, atMs: 1)])
        let body = snapshot.serialized()
        // Every prefix either ends between top-level fields (a valid shorter snapshot) or
        // inside one (malformed). Count the ones that are malformed: all but 5 boundaries.
        var malformed = 0
        for cut in 0..<body.count {
            do {
                let shorter = try StateSnapshot(serialized: body[..<cut])
                #expect(shorter.pairs.count + shorter.sessions.count + shorter.tombstones.count <= 3)
            } catch {
                #expect(error == .malformed(message: "StateSnapshot", bytes: cut))
                malformed += 1
            }
        }
        #expect(malformed == body.count - 5)
    }

    @Test("keyPrecedes is unsigned lexicographic order, a proper prefix first")
    func keyOrder() {
        #expect(StateSnapshot.keyPrecedes([], [0]))
        #expect(!StateSnapshot.keyPrecedes([], []))
        #expect(!StateSnapshot.keyPrecedes([1, 2], [1, 2]))
        #expect(StateSnapshot.keyPrecedes([1, 2], [1, 2, 0]))
        #expect(StateSnapshot.keyPrecedes([0x7f, 0xff], [0x80]))
        #expect(!StateSnapshot.keyPrecedes([0xff], [0x00, 0xff]))
        var (seed, rng) = TestSeed.generator(104)
        var snapshot = StateSnapshot()
        for _ in 0..<2_000 {
            // Short keys over a small alphabet, so that shared prefixes and equal keys are common.
            let alphabet: [UInt8] = [0x00, 0x01, 0x7f, 0x80, 0xff]
            let key = (0..<Int.random(in: 0...4, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
            let other = (0..<Int.random(in: 0...4, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
            #expect(StateSnapshot.keyPrecedes(key, other) == key.lexicographicallyPrecedes(other), "seed \(seed): \(key) vs \(other)")
            snapshot.pairs.append(KeyValuePair(key: key, value: other))
        }
        let expected = snapshot.pairs.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map(\.key)
        snapshot.sortPairsByKey()
        #expect(snapshot.pairs.map(\.key) == expected, "seed \(seed)")
    }

    @Test("sortPairsByKey: keys sharing a prefix, and differing only past 16 more bytes")
    func sortWithSharedPrefixes() {
        var (seed, rng) = TestSeed.generator(105)
        for round in 0..<20 {
            let shared = rng.bytes(count: Int.random(in: 0...12, using: &rng))
            let stem = rng.bytes(count: Int.random(in: 0...20, using: &rng))
            var snapshot = StateSnapshot()
            for _ in 0..<Int.random(in: 0...300, using: &rng) {
                // Mostly stem + a short tail over {0, 1, 0xff}, so keys tie on the 16 bytes
                // after the shared prefix, end inside them, or are zero-padded lookalikes.
                let cut = Int.random(in: 0...stem.count, using: &rng)
                let tail = (0..<Int.random(in: 0...3, using: &rng)).map { _ in [0, 1, 0xff].randomElement(using: &rng)! as UInt8 }
                snapshot.pairs.append(KeyValuePair(key: shared + stem.prefix(cut) + tail, value: []))
            }
            let expected = snapshot.pairs.map(\.key).sorted { $0.lexicographicallyPrecedes($1) }
            snapshot.sortPairsByKey()
            #expect(snapshot.pairs.map(\.key) == expected, "seed \(seed), round \(round)")
        }
    }

    @Test("encoding in parts (one per pair, a few pairs, all at once) gives the same bytes")
    func partsChangeNoByte() throws {
        var (seed, rng) = TestSeed.generator(77)
        for round in 0..<40 {
            var snapshot = rng.stateSnapshot(maxCount: 30)
            snapshot.sortPairsByKey()
            var whole: [UInt8] = []
            snapshot.append(to: &whole, groupBytes: Int.max)
            for groupBytes in [1, 16, 100] {
                var parts: [UInt8] = []
                snapshot.append(to: &parts, groupBytes: groupBytes)
                #expect(parts == whole, "seed \(seed) round \(round) groupBytes \(groupBytes)")
                // Handed out one part at a time: the same bytes, the size known beforehand.
                var streamed: [UInt8] = []
                var count = 0
                snapshot.forEachEncodedPart(groupBytes: groupBytes) { part in
                    streamed += part
                    count += 1
                    return true
                }
                #expect(streamed == whole && snapshot.encodedSize(groupBytes: groupBytes) == whole.count,
                        "seed \(seed) round \(round) groupBytes \(groupBytes)")
                #expect(count >= 1 && count <= max(1, snapshot.pairs.count))
                var first = 0
                snapshot.forEachEncodedPart(groupBytes: groupBytes) { part in
                    first += 1
                    return false
                }
                #expect(first == 1, "stops when asked")
            }
            #expect(try StateSnapshot(serialized: whole) == snapshot, "seed \(seed) round \(round)")
            #expect(snapshot.serialized() == whole)
        }
    }

    @Test("200k pairs round trip through one encoding")
    func large() throws {
        var rng = SeededGenerator(seed: 103)
        var pairs: [KeyValuePair] = []
        pairs.reserveCapacity(200_000)
        for i in 0..<200_000 {
            pairs.append(KeyValuePair(key: Array("key-\(i)".utf8), value: rng.bytes(count: Int.random(in: 0...32, using: &rng))))
        }
        let snapshot = StateSnapshot(appliedIndex: 1_000_000, clockMs: 42, pairs: pairs)
        let body = snapshot.serialized()
        #expect(body.count > 200_000 * 8)
        #expect(try StateSnapshot(serialized: body) == snapshot)
    }
}
