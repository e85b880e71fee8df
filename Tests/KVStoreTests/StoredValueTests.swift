import Raft
import Testing
import Wire

@testable import KVStore
import SeededRandom

/// Values kept in pieces: appends give the same bytes as one growing array, split into full
/// pieces; a copy taken before appends (a snapshot's) keeps its bytes; encoding hands the
/// pieces over without changing a byte of the snapshot.
struct StoredValueTests {
    private let piece = StoredValue.pieceSize

    @Test(arguments: [UInt64(1), 2, 3])
    func appendsGiveTheBytesOfOneGrowingArray(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        var value = StoredValue([])
        var model: [UInt8] = []
        for step in 0..<60 {
            // Mostly small appends, now and then one larger than a piece.
            let size = step % 7 == 6 ? Int.random(in: piece...(3 * piece), using: &rng) : Int.random(in: 1...9_000, using: &rng)
            let more = (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
            value.append(more)
            model.append(contentsOf: more)
            #expect(value.count == model.count)
        }
        #expect(value.bytes == model, "seed \(seed)")
        #expect(value.pieceCount == (model.count + piece - 1) / piece, "full pieces, the last one shorter")
    }

    @Test func aCopyKeepsItsBytesWhileTheOriginalGrows() {
        var value = StoredValue(Array(repeating: 1, count: piece + 10))
        value.append([2, 2, 2])
        let frozen = value
        value.append(Array(repeating: 3, count: 2 * piece))
        #expect(frozen.bytes == Array(repeating: 1, count: piece + 10) + [2, 2, 2])
        #expect(value.count == 3 * piece + 13)
        #expect(value.bytes.suffix(2 * piece).allSatisfy { $0 == 3 })
    }

    @Test func valuesAreEqualByTheirBytesHoweverTheyAreHeld() {
        let bytes = (0..<(2 * piece + 5)).map { UInt8(truncatingIfNeeded: $0) }
        var grown = StoredValue(Array(bytes[..<100]))
        grown.append(Array(bytes[100...]))
        #expect(grown.pieceCount == 3)
        #expect(grown == StoredValue(bytes))
        #expect(grown != StoredValue(Array(bytes.dropLast())))
    }

    @Test func aSnapshotOfPiecesEncodesAsTheWholeValue() throws {
        let bytes = (0..<(3 * piece + 77)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var grown = StoredValue([7])
        grown.append(Array(bytes.dropFirst()))
        let pieces = StateSnapshot(appliedIndex: 4, pairs: [grown.snapshotPair(key: [1])])
        let whole = StateSnapshot(appliedIndex: 4, pairs: [KeyValuePair(key: [1], value: [7] + bytes.dropFirst())])
        #expect(pieces.serialized() == whole.serialized())
        #expect(pieces.encodedSize() == whole.serialized().count)
        var parts: [UInt8] = []
        pieces.forEachEncodedPart(groupBytes: piece) { parts.append(contentsOf: $0); return true }
        #expect(parts == whole.serialized())
        #expect(try StateSnapshot(serialized: whole.serialized()[...]) == pieces)
    }
}
