import Raft
import Testing
import Wire

@Suite("Snapshots cut into chunks and reassembled")
struct SnapshotTransferTests {
    private func chunks(of data: [UInt8], index: UInt64 = 7, term: UInt64 = 3, chunkSize: Int) -> [SnapshotChunk] {
        var chunker = SnapshotChunker(index: index, term: term, data: data, chunkSize: chunkSize)
        var result: [SnapshotChunk] = []
        while let chunk = chunker.next() { result.append(chunk) }
        #expect(chunker.isFinished)
        return result
    }

    @Test("every size, every chunk size: the chunks reassemble to the original bytes", arguments: [1, 3, 64, 1000])
    func roundTrip(chunkSize: Int) throws {
        var (seed, rng) = TestSeed.generator(40 + UInt64(chunkSize))
        for size in [0, 1, 2, 63, 64, 65, 999, 1000, 1001, 4096] {
            let data = rng.bytes(count: size)
            let pieces = chunks(of: data, chunkSize: chunkSize)
            #expect(pieces.count == max(1, (size + chunkSize - 1) / chunkSize), "seed \(seed) size \(size)")
            #expect(pieces.allSatisfy { $0.data.count <= chunkSize })
            var assembler = SnapshotAssembler()
            var complete: SnapshotAssembler.Complete?
            for (position, piece) in pieces.enumerated() {
                // Through the wire and back, as the links carry them.
                let decoded = try #require(try PeerMessage(serialized: PeerMessage(type: .snapshot, snapshot: piece).serialized()).snapshot)
                complete = try assembler.add(decoded)
                #expect((complete != nil) == (position == pieces.count - 1), "seed \(seed) size \(size) chunk \(position)")
            }
            #expect(complete == SnapshotAssembler.Complete(index: 7, term: 3, data: data), "seed \(seed) size \(size)")
            #expect(assembler.bufferedBytes == 0)
        }
    }

    @Test("a chunk that does not continue the snapshot drops it; a new first chunk starts over")
    func outOfOrderChunks() throws {
        let data = [UInt8](0..<200)
        let pieces = chunks(of: data, chunkSize: 50)
        var assembler = SnapshotAssembler()
        #expect(try assembler.add(pieces[0]) == nil)
        // A lost chunk: offset 100 arrives where 50 was expected.
        #expect(throws: WireError.self) { try assembler.add(pieces[2]) }
        #expect(assembler.bufferedBytes == 0)
        // The rest of the broken stream cannot complete anything.
        #expect(throws: WireError.self) { try assembler.add(pieces[3]) }
        // A resend from the start succeeds.
        var complete: SnapshotAssembler.Complete?
        for piece in pieces { complete = try assembler.add(piece) }
        #expect(complete?.data == data)

        // A different snapshot's chunk in the middle of one is refused, not spliced in.
        var other = chunks(of: data, index: 8, chunkSize: 50)
        #expect(try assembler.add(pieces[0]) == nil)
        #expect(throws: WireError.self) { try assembler.add(other[1]) }
        // Restarting with another snapshot's first chunk abandons the partial one.
        #expect(try assembler.add(pieces[0]) == nil)
        other[0].data = Array(data[0..<50])
        for piece in other { complete = try assembler.add(piece) }
        #expect(complete?.index == 8 && complete?.data == data)
    }

    @Test("sizes beyond the limit and chunks that overrun the total are refused")
    func limits() throws {
        var assembler = SnapshotAssembler(maxTotalSize: 100)
        #expect(throws: WireError.self) {
            try assembler.add(SnapshotChunk(index: 1, term: 1, offset: 0, totalSize: 101, data: [1]))
        }
        #expect(throws: WireError.self) {
            try assembler.add(SnapshotChunk(index: 1, term: 1, offset: 0, totalSize: 10, data: [UInt8](repeating: 0, count: 11)))
        }
        #expect(try assembler.add(SnapshotChunk(index: 1, term: 1, offset: 0, totalSize: 10, data: [1, 2, 3])) == nil)
        #expect(throws: WireError.self) {
            try assembler.add(SnapshotChunk(index: 1, term: 1, offset: 3, totalSize: 10, data: [UInt8](repeating: 0, count: 8)))
        }
        // A continuation chunk with nothing started.
        #expect(throws: WireError.self) {
            try assembler.add(SnapshotChunk(index: 1, term: 1, offset: 3, totalSize: 10, data: [4]))
        }
    }
}
