import Testing
@testable import KVStore
import Wire
import Raft
import SeededRandom

/// Restoring from a snapshot as its chunks arrive (`IncomingSnapshot`), refusing a bad one.
@Suite struct IncomingSnapshotTests {
    /// A machine with keys, sessions (a Get among them) and tombstones.
    static func machine() -> KVStateMachine {
        var r = Replica(KVStateMachine(sessionTimeoutMs: 500, maxSessions: 50))
        for i in 0..<300 {
            r.run(put("key-\(i)", String(repeating: "v", count: i % 40), client: UInt64(i % 70 + 1), seq: UInt64(i / 70 + 1)),
                  atMs: 1_000 + UInt64(i) * 5)
        }
        r.run(get("key-1", client: 500, seq: 3))
        return r.machine
    }

    static func chunks(of bytes: [UInt8], index: UInt64, size: Int) -> [SnapshotChunk] {
        stride(from: 0, to: max(bytes.count, 1), by: size).map { offset in
            SnapshotChunk(index: index, term: 2, offset: UInt64(offset), totalSize: UInt64(bytes.count),
                          data: Array(bytes[offset..<min(bytes.count, offset + size)]))
        }
    }

    @Test func chunksOfAnySizeRestoreAnEqualMachine() throws {
        let original = Self.machine()
        let bytes = original.snapshot()
        #expect(original.tombstoneCount > 0 && original.sessionCount == 50)
        for size in [1, 13, 1_000, bytes.count] {
            var incoming = IncomingSnapshot()
            var restored: KVStateMachine?
            for chunk in Self.chunks(of: bytes, index: original.appliedIndex, size: size) {
                switch try incoming.add(chunk) {
                case .incomplete: #expect(incoming.bufferedBytes < 200, "only the field in flight is held")
                case let .restored(machine, total):
                    restored = machine
                    #expect(total == UInt64(bytes.count))
                case .refused, .dropped: Issue.record("chunk size \(size): unexpected \(chunk.offset)")
                }
            }
            #expect(restored == original, "chunk size \(size)")
            #expect(restored?.snapshot() == bytes, "chunk size \(size)")
        }
    }

    @Test func aCorruptSnapshotIsRefusedItsRestDroppedAndTheNextOneRestores() throws {
        let original = Self.machine()
        let bytes = original.snapshot()
        var corrupt = bytes
        corrupt[bytes.count / 3] ^= 0xff
        var incoming = IncomingSnapshot()
        var outcomes: [String] = []
        for chunk in Self.chunks(of: corrupt, index: original.appliedIndex, size: 256) {
            switch try incoming.add(chunk) {
            case .incomplete: outcomes.append("incomplete")
            case .restored: outcomes.append("restored")
            case let .refused(index, error):
                #expect(index == original.appliedIndex)
                outcomes.append("refused: \(error)")
            case .dropped: outcomes.append("dropped")
            }
        }
        let refusals = outcomes.filter { $0.hasPrefix("refused") }
        #expect(refusals.count == 1, "\(refusals)")
        #expect(!outcomes.contains("restored"))
        let refusedAt = try #require(outcomes.firstIndex { $0.hasPrefix("refused") })
        #expect(outcomes[(refusedAt + 1)...].allSatisfy { $0 == "dropped" }, "the rest of a refused snapshot is dropped")

        var restored: KVStateMachine?
        for chunk in Self.chunks(of: bytes, index: original.appliedIndex, size: 256) {
            if case let .restored(machine, _) = try incoming.add(chunk) { restored = machine }
        }
        #expect(restored == original)
    }

    @Test func aSnapshotClaimingAnotherIndexIsRefused() throws {
        let original = Self.machine()
        var incoming = IncomingSnapshot()
        var refusal: SnapshotRestoreError?
        for chunk in Self.chunks(of: original.snapshot(), index: original.appliedIndex + 7, size: 4_096) {
            if case let .refused(_, error) = try incoming.add(chunk) { refusal = error }
        }
        #expect(refusal == .inconsistent(appliedIndex: original.appliedIndex, "it was sent as the state at index \(original.appliedIndex + 7)"))
    }

    @Test func chunksOutOfOrderAreTheSendersProtocolError() throws {
        let bytes = Self.machine().snapshot()
        let chunks = Self.chunks(of: bytes, index: 9, size: 100)
        var incoming = IncomingSnapshot()
        _ = try incoming.add(chunks[0])
        #expect(throws: WireError.self) { try incoming.add(chunks[2]) }
    }
}

/// Limits come from the log: replicas that apply the same entries agree, whatever they would
/// have been configured with, and a snapshot carries the limits to a restored replica.
@Suite struct ReplicatedLimitsTests {
    @Test(arguments: [UInt64(21), 22])
    func replicasAgreeAcrossLimitsEntriesAndRestores(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        var log: [CommandBatch] = []
        var nextSeq: [UInt64: UInt64] = [:]
        for i in 0..<400 {
            var batch = CommandBatch(timestampMs: 1_000 + UInt64(i) * 20, commands: [])
            if i % 97 == 5 {  // a new leader proposing its flags' limits
                batch.setLimits = SessionLimits(sessionTimeoutMs: UInt64.random(in: 50...2_000, using: &rng),
                                                maxSessions: UInt64.random(in: 1...30, using: &rng),
                                                tombstoneTimeoutMs: UInt64.random(in: 0...3_000, using: &rng),
                                                maxTombstones: UInt64.random(in: 0...40, using: &rng))
            }
            for _ in 0..<Int.random(in: 0...4, using: &rng) {
                let client = UInt64.random(in: 1...40, using: &rng)
                // Mostly new seqs, sometimes a retry of the last one.
                let seq = Bool.random(using: &rng) ? nextSeq[client, default: 1] : max(1, nextSeq[client, default: 1] - 1)
                nextSeq[client] = max(nextSeq[client, default: 1], seq + 1)
                batch.commands.append(Command(clientID: client, seq: seq, op: Op(rawValue: Int32.random(in: 0...3, using: &rng)),
                                              key: bytes("k\(Int.random(in: 0..<6, using: &rng))"), value: bytes("\(i)")))
            }
            log.append(batch)
        }
        var first = KVStateMachine()
        var results: [[CommandResult]] = []
        for (i, batch) in log.enumerated() {
            results.append(first.apply(batch: batch, index: UInt64(i + 1)))
        }
        #expect(first.limits != .defaults)
        // Another replica, restored from a snapshot at a random point, then fed the rest.
        for _ in 0..<5 {
            let cut = Int.random(in: 1..<log.count, using: &rng)
            var prefix = KVStateMachine()
            for (i, batch) in log[..<cut].enumerated() { _ = prefix.apply(batch: batch, index: UInt64(i + 1)) }
            var second = try KVStateMachine(restoring: prefix.snapshot())
            for (i, batch) in log[cut...].enumerated() {
                let index = cut + i
                #expect(second.apply(batch: batch, index: UInt64(index + 1)) == results[index], "seed \(seed), restored at \(cut), entry \(index + 1)")
            }
            #expect(second.snapshot() == first.snapshot(), "seed \(seed), restored at \(cut)")
        }
    }
}
