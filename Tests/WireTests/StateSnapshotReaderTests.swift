import Testing
@testable import Wire
import Raft
import SeededRandom

/// The snapshot the fields describe (scalars and limits: the last occurrence counts).
private func assemble(_ fields: [StateSnapshotReader.Field]) -> StateSnapshot {
    var snapshot = StateSnapshot()
    for field in fields {
        switch field {
        case let .appliedIndex(index): snapshot.appliedIndex = index
        case let .clockMs(ms): snapshot.clockMs = ms
        case let .pair(pair): snapshot.pairs.append(pair)
        case let .session(session): snapshot.sessions.append(session)
        case let .tombstone(tombstone): snapshot.tombstones.append(tombstone)
        case let .limits(limits): snapshot.limits = limits
        }
    }
    return snapshot
}

/// Feeds `bytes` to a reader in pieces of random sizes (1 byte up to `maxPiece`).
private func readInPieces<G: RandomNumberGenerator>(_ bytes: [UInt8], maxPiece: Int, using rng: inout G,
                                                    maxFieldBytes: Int = 64 << 20) throws(WireError) -> StateSnapshot {
    var reader = StateSnapshotReader(maxFieldBytes: maxFieldBytes)
    var fields: [StateSnapshotReader.Field] = []
    var start = 0
    while start < bytes.count {
        let end = min(bytes.count, start + Int.random(in: 1...maxPiece, using: &rng))
        try reader.read(bytes[start..<end], into: &fields)
        start = end
    }
    try reader.finish()
    return assemble(fields)
}

@Suite("StateSnapshotReader: decoding a snapshot as it streams in")
struct StateSnapshotReaderTests {
    @Test("random snapshots read in random pieces give back the snapshot")
    func randomPieces() throws {
        var (seed, rng) = TestSeed.generator(140)
        for i in 0..<60 {
            let snapshot = rng.stateSnapshot(maxCount: 30)
            let bytes = snapshot.serialized()
            for maxPiece in [1, 7, 300, max(1, bytes.count)] {
                #expect(try readInPieces(bytes, maxPiece: maxPiece, using: &rng) == snapshot, "seed \(seed), snapshot \(i), pieces ≤ \(maxPiece)")
            }
        }
    }

    @Test("a snapshot encoded in parts reads back whole")
    func encodedInParts() throws {
        var (seed, rng) = TestSeed.generator(141)
        let snapshot = rng.stateSnapshot(maxCount: 200)
        var bytes: [UInt8] = []
        snapshot.forEachEncodedPart(groupBytes: 64) { part in
            bytes += part
            return true
        }
        #expect(try readInPieces(bytes, maxPiece: 1_000, using: &rng) == snapshot, "seed \(seed)")
    }

    @Test("cut anywhere: refused inside a field, a valid prefix at a field boundary, as protobuf-c says")
    func truncation() throws {
        var (seed, rng) = TestSeed.generator(142)
        for i in 0..<40 {
            let bytes = rng.stateSnapshot(maxCount: 5).serialized()
            // Every cut near the start (scalars, first field headers), then a sample of the rest.
            let cuts = Array(0..<min(bytes.count, 40)) + (0..<40).map { _ in Int.random(in: 0..<max(1, bytes.count), using: &rng) }
            for cut in cuts where cut < bytes.count {
                let prefix = Array(bytes[..<cut])
                let streamed = try? readInPieces(prefix, maxPiece: 5, using: &rng)
                let whole = try? StateSnapshot(serialized: prefix)
                #expect(streamed == whole, "seed \(seed), snapshot \(i), cut at \(cut) of \(bytes.count)")
            }
        }
    }

    @Test("bit flips: refused or read exactly as protobuf-c reads them, never a trap")
    func bitFlips() throws {
        var (seed, rng) = TestSeed.generator(143)
        var refused = 0
        for i in 0..<600 {
            var bytes = rng.stateSnapshot(maxCount: 4).serialized()
            guard !bytes.isEmpty else { continue }
            for _ in 0..<Int.random(in: 1...2, using: &rng) {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= 1 << UInt8.random(in: 0...7, using: &rng)
            }
            let streamed = try? readInPieces(bytes, maxPiece: 16, using: &rng)
            let whole = try? StateSnapshot(serialized: bytes)
            if streamed == nil { refused += 1 }
            #expect(streamed == whole, "seed \(seed), body \(i): \(hex(bytes.prefix(64)))")
        }
        #expect(refused > 20, "seed \(seed): bit flips should often break the encoding")
    }

    @Test("a field announcing more than the limit is refused before its bytes are buffered")
    func oversizedField() {
        // Field 3 (a pair), announcing 1 GiB.
        let header: [UInt8] = [0x1a, 0x80, 0x80, 0x80, 0x80, 0x04]
        var reader = StateSnapshotReader(maxFieldBytes: 1 << 20)
        var fields: [StateSnapshotReader.Field] = []
        #expect(throws: WireError.self) { try reader.read(header[...], into: &fields) }
        #expect(reader.bufferedBytes <= header.count)
    }

    @Test("unknown fields are skipped, known fields with another wire type are refused")
    func unknownAndMistyped() throws {
        let known = StateSnapshot(appliedIndex: 3, clockMs: 4).serialized()
        // Field 99 as a varint, field 100 as 8 bytes, field 101 as a length-delimited blob.
        let unknown: [UInt8] = [0x98, 0x06, 0x2a, 0xa1, 0x06, 1, 2, 3, 4, 5, 6, 7, 8, 0xaa, 0x06, 0x02, 0xff, 0xff]
        var rng = SeededGenerator(seed: 1)
        #expect(try readInPieces(unknown + known + unknown, maxPiece: 3, using: &rng) == StateSnapshot(appliedIndex: 3, clockMs: 4))
        // applied_index (field 1) as a length-delimited field.
        #expect(throws: WireError.self) { try readInPieces([0x0a, 0x01, 0x05], maxPiece: 3, using: &rng) }
    }
}
