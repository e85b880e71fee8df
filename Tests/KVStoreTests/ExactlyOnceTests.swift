import Testing
@testable import KVStore
import Wire

@Suite struct ExactlyOnceTests {
    /// A retried Get is read again where the retry lands in the log: still inside the
    /// client's invocation, so the newer value is a linearizable answer; no value is kept.
    @Test func retriedGetIsReadAgainAfterTheKeyChanged() {
        var r = Replica()
        r.run(put("k", "x"))
        r.run(get("k", client: 1, seq: 1))  // opens client 1's session
        #expect(r.run(get("k", client: 1, seq: 5)) == ok("x"))
        r.run(put("k", "y", client: 2, seq: 1))
        #expect(r.run(get("k", client: 1, seq: 5)) == ok("y"))
        #expect(r.run(get("k", client: 1, seq: 4)) == .badRequest)  // still fenced
        #expect(r.run(get("k", client: 1, seq: 6)) == ok("y"))
        #expect(r.machine.stateSnapshot().sessions.allSatisfy { $0.lastValue.isEmpty })
    }

    @Test func aWriteRetriedUnderTheSeqOfAGetIsNotApplied() {
        var r = Replica()
        r.run(put("k", "x"))
        #expect(r.run(get("k", client: 1, seq: 1)) == ok("x"))
        #expect(r.run(put("k", "z", client: 1, seq: 1)) == .ok)  // the stored status, nothing applied
        #expect(r.machine.get(bytes("k")) == bytes("x"))
    }

    @Test func duplicatedAppendIsAppliedOnce() {
        var r = Replica()
        #expect(r.run(append("k", "a", client: 1, seq: 1)) == .ok)
        // The same request again, in a later entry and twice within one entry.
        #expect(r.run(append("k", "a", client: 1, seq: 1)) == .ok)
        #expect(r.run([append("k", "b", client: 1, seq: 2), append("k", "b", client: 1, seq: 2)]) == [.ok, .ok])
        #expect(r.machine.get(bytes("k")) == bytes("ab"))
    }

    @Test func retriedDeleteGetsItsOriginalStatus() {
        var r = Replica()
        r.run(put("k", "v"))
        #expect(r.run(delete("k", client: 1, seq: 1)) == .ok)
        #expect(r.run(delete("k", client: 1, seq: 1)) == .ok)  // not NO_KEY: it is the first delete's reply
        #expect(r.run(delete("k", client: 1, seq: 2)) == .noKey)
        #expect(r.run(delete("k", client: 1, seq: 2)) == .noKey)
    }

    @Test func retriedNoKeyGetSeesTheKeyCreatedSince() {
        var r = Replica()
        #expect(r.run(get("k", client: 1, seq: 1)) == .noKey)
        r.run(put("k", "v"))
        #expect(r.run(get("k", client: 1, seq: 1)) == ok("v"))
    }

    @Test func gapsInSeqAreAllowed() {
        var r = Replica()
        #expect(r.run(append("k", "1", client: 1, seq: 1)) == .ok)
        #expect(r.run(append("k", "4", client: 1, seq: 4)) == .ok)
        #expect(r.run(append("k", "9", client: 1, seq: 1_000)) == .ok)
        #expect(r.run(append("k", "9", client: 1, seq: 1_000)) == .ok)
        #expect(r.machine.get(bytes("k")) == bytes("149"))
    }

    @Test func olderSeqIsRefusedAndNotReapplied() {
        var r = Replica()
        r.run(append("k", "a", client: 1, seq: 1))
        r.run(append("k", "b", client: 1, seq: 2))
        #expect(r.run(append("k", "a", client: 1, seq: 1)) == .badRequest)
        #expect(r.run(get("k", client: 1, seq: 0)) == .badRequest)
        #expect(r.machine.get(bytes("k")) == bytes("ab"))
        // The session still answers its latest request.
        #expect(r.run(append("k", "b", client: 1, seq: 2)) == .ok)
        #expect(r.machine.get(bytes("k")) == bytes("ab"))
    }

    @Test func clientZeroHasNoSessionAndAlwaysApplies() {
        var r = Replica()
        let command = append("k", "a", client: 0, seq: 7)
        #expect(r.run([command, command]) == [.ok, .ok])
        #expect(r.run(command) == .ok)
        #expect(r.machine.get(bytes("k")) == bytes("aaa"))
        #expect(r.machine.sessionCount == 0)
    }

    /// A client whose seq 1 never reached the log (it gave up on it) continues at seq 2;
    /// a late copy of seq 1 must then never be applied after seq 2.
    @Test func firstRequestMayCarryAnySeqAndFencesLowerOnes() {
        var r = Replica()
        #expect(r.run(append("k", "a", client: 1, seq: 0)) == .badRequest)
        #expect(r.run(append("k", "b", client: 1, seq: 2)) == .ok)
        #expect(r.machine.sessionCount == 1)
        #expect(r.run(append("k", "a", client: 1, seq: 1)) == .badRequest)
        #expect(r.machine.get(bytes("k")) == bytes("b"))
    }

    @Test func interleavedClientsKeepSeparateSessions() {
        var r = Replica()
        let results = r.run([
            append("k", "A1", client: 1, seq: 1),
            append("k", "B1", client: 2, seq: 1),
            append("k", "A1", client: 1, seq: 1),   // dup of A1
            append("k", "A2", client: 1, seq: 2),
            get("k", client: 2, seq: 2),
            append("k", "B1", client: 2, seq: 1),   // stale: client 2 moved on
            append("k", "A3", client: 1, seq: 3),
            get("k", client: 2, seq: 2),            // dup: read again, after A3
        ])
        #expect(results == [.ok, .ok, .ok, .ok, ok("A1B1A2"), .badRequest, .ok, ok("A1B1A2A3")])
        #expect(r.machine.get(bytes("k")) == bytes("A1B1A2A3"))
        #expect(r.machine.sessionCount == 2)
    }
}
