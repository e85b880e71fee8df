import Testing
@testable import KVStore
import Wire

/// Appends stop at `Limits.maxStoredValueBytes`: without the cap a key grew by Appends past what
/// a Get reply (client frame) or a snapshot field could carry, and its node could no longer
/// answer that Get or ship its snapshot.
@Suite struct StoredValueCapTests {
    @Test func anAppendPastTheCapIsRefusedAndChangesNothing() {
        var r = Replica()
        let chunk = [UInt8](repeating: 7, count: 4 << 20)
        let cap = Limits.maxStoredValueBytes
        var held = 0
        var seq: UInt64 = 0
        while held + chunk.count <= cap {
            seq += 1
            #expect(r.run(Command(clientID: 1, seq: seq, op: .append, key: bytes("big"), value: chunk)) == .ok)
            held += chunk.count
        }
        seq += 1
        #expect(r.run(Command(clientID: 1, seq: seq, op: .append, key: bytes("big"), value: chunk)).status == .badRequest)
        #expect(r.machine.get(bytes("big"))?.count == held)
        // The refusal is the session's answer to that seq, as any other result is.
        #expect(r.run(Command(clientID: 1, seq: seq, op: .append, key: bytes("big"), value: chunk)).status == .badRequest)
        // Filling up to the cap exactly still works.
        seq += 1
        let rest = [UInt8](repeating: 1, count: cap - held)
        #expect(r.run(Command(clientID: 1, seq: seq, op: .append, key: bytes("big"), value: rest)) == .ok)
        #expect(r.machine.get(bytes("big"))?.count == cap)
        seq += 1
        #expect(r.run(Command(clientID: 1, seq: seq, op: .append, key: bytes("big"), value: [0])).status == .badRequest)
    }

    @Test func aValueAtTheCapSurvivesASnapshot() throws {
        var r = Replica()
        r.run(put("big", String(repeating: "x", count: Limits.maxStoredValueBytes)))
        let snapshot = r.machine.snapshot()
        let restored = try KVStateMachine(restoring: snapshot)
        #expect(restored.get(bytes("big"))?.count == Limits.maxStoredValueBytes)
        #expect(restored == r.machine)
    }
}
