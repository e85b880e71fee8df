import Testing
@testable import KVStore
import Wire
import Raft
import SeededRandom

@Suite struct SessionExpiryTests {
    @Test func idleSessionExpiresByLogTimeAndLeavesItsLastSeqBehind() {
        var r = Replica(KVStateMachine(sessionTimeoutMs: 10_000))
        #expect(r.run(append("k", "a", client: 1, seq: 1), atMs: 1_000) == .ok)
        #expect(r.run(append("k", "b", client: 1, seq: 2), atMs: 2_000) == .ok)
        // Idle for exactly the timeout: still alive.
        #expect(r.run(append("k", "b", client: 1, seq: 2), atMs: 12_000) == .ok)
        #expect(r.machine.sessionCount == 1)
        // Idle for more than the timeout (since the retry at 12 000).
        r.run(put("other", "x", client: 2, seq: 1), atMs: 22_001)
        #expect(r.machine.sessionCount == 1)  // only client 2
        #expect(r.machine.tombstoneCount == 1)
        #expect(r.machine.stateSnapshot().tombstones == [TombstoneRecord(clientID: 1, atMs: 22_001, lastSeq: 2)])
        // Applied earlier, reply no longer kept: SESSION_EXPIRED, and not applied again.
        #expect(r.run(append("k", "b", client: 1, seq: 2)) == .sessionExpired)  // retry
        #expect(r.run(append("k", "a", client: 1, seq: 1)) == .sessionExpired)  // late copy of seq 1
        #expect(r.machine.get(bytes("k")) == bytes("ab"))
        // A higher seq was never applied: it applies and reopens the session.
        #expect(r.run(append("k", "c", client: 1, seq: 3)) == .ok)  // continuation
        #expect(r.machine.get(bytes("k")) == bytes("abc"))
        #expect(r.machine.tombstoneCount == 0 && r.machine.sessionCount == 2)
        #expect(r.run(append("k", "c", client: 1, seq: 3)) == .ok)  // its retry: the stored reply
        #expect(r.run(append("k", "b", client: 1, seq: 2)) == .badRequest)  // fenced by the session again
        #expect(r.machine.get(bytes("k")) == bytes("abc"))
    }

    /// The scenario: "a" seq 1, "b" seq 2, the reply to seq 2 is lost, the session
    /// expires while other clients write, and seq 2 is sent again. Counted: "b" applies once.
    @Test func aRetryAfterExpiryIsNeverAppliedTwice() {
        var r = Replica(KVStateMachine(sessionTimeoutMs: 2_000))
        #expect(r.run(append("list", "a", client: 7, seq: 1), atMs: 1_000) == .ok)
        #expect(r.run(append("list", "b", client: 7, seq: 2), atMs: 1_100) == .ok)  // reply lost
        for t in stride(from: UInt64(1_200), through: 4_200, by: 100) {
            r.run(put("other-\(t)", "x", client: 100 + t, seq: 1), atMs: t)
        }
        #expect(r.machine.sessionCount > 0 && r.machine.stateSnapshot().sessions.allSatisfy { $0.clientID != 7 })
        #expect(r.run(append("list", "b", client: 7, seq: 2), atMs: 4_300) == .sessionExpired)
        #expect(r.run(append("list", "b", client: 7, seq: 2), atMs: 4_400) == .sessionExpired)
        let value = r.machine.get(bytes("list")) ?? []
        #expect(value.filter { $0 == UInt8(ascii: "b") }.count == 1, "\(String(decoding: value, as: UTF8.self))")
        #expect(value == bytes("ab"))
    }

    @Test func evictionAlsoLeavesTheLastSeqBehind() {
        var r = Replica(KVStateMachine(maxSessions: 1))
        #expect(r.run(append("k", "a", client: 1, seq: 5), atMs: 1) == .ok)
        #expect(r.run(append("k", "x", client: 2, seq: 1), atMs: 2) == .ok)  // evicts client 1
        #expect(r.run(append("k", "a", client: 1, seq: 5), atMs: 3) == .sessionExpired)
        #expect(r.run(append("k", "a", client: 1, seq: 4), atMs: 3) == .sessionExpired)
        #expect(r.machine.get(bytes("k")) == bytes("ax"))
        #expect(r.run(append("k", "b", client: 1, seq: 6), atMs: 4) == .ok)  // evicts client 2
        #expect(r.machine.get(bytes("k")) == bytes("axb"))
    }

    @Test func aTombstoneFromAnOldSnapshotRefusesEverySeq() throws {
        let snapshot = StateSnapshot(appliedIndex: 3, clockMs: 1_000, tombstones: [TombstoneRecord(clientID: 4, atMs: 900)])
        var r = Replica(try KVStateMachine(restoring: snapshot.serialized()))
        r.index = 3
        #expect(r.run(put("k", "v", client: 4, seq: 1_000)) == .sessionExpired)
        #expect(r.machine.get(bytes("k")) == nil)
    }

    @Test func reopenedClientsLeaveABoundedTombstoneQueue() {
        var r = Replica(KVStateMachine(maxSessions: 1, maxTombstones: 1_000))
        // Two clients take turns: each one evicts the other, and comes back with a higher seq.
        for seq in UInt64(1)...2_000 {
            r.run(put("k", "v", client: 1 + seq % 2, seq: seq), atMs: seq)
        }
        #expect(r.machine.tombstoneCount == 1)
        #expect(r.machine.tombstoneBacklog <= 2 * r.machine.tombstoneCount + 65)
    }

    @Test func expiryFollowsLogTimeNotWallClock() {
        // Log time stands still however long the test takes; only timestamps move it.
        var r = Replica(KVStateMachine(sessionTimeoutMs: 1))
        r.run(append("k", "a", client: 1, seq: 1), atMs: 100)
        r.noop()
        r.run([], atMs: 101)
        #expect(r.run(append("k", "a", client: 1, seq: 1), atMs: 101) == .ok)
        r.run([], atMs: 103)
        #expect(r.machine.sessionCount == 0)
    }

    @Test func leaderClockGoingBackwardsDoesNotUnexpire() {
        var r = Replica(KVStateMachine(sessionTimeoutMs: 10_000))
        r.run(append("k", "a", client: 1, seq: 1), atMs: 1_000)
        r.run(append("k", "a", client: 2, seq: 1), atMs: 95_000)
        r.run([], atMs: 100_000)  // client 1 expires
        #expect(r.machine.clockMs == 100_000)
        // A new leader whose wall clock is far behind.
        #expect(r.run(append("k", "a", client: 1, seq: 1), atMs: 2_000) == .sessionExpired)
        #expect(r.machine.clockMs == 100_000)
        // Client 2 was last active at 95 000 of log time, and it is now 100 000, not 2 000.
        #expect(r.run(append("k", "b", client: 2, seq: 2), atMs: 2_000) == .ok)
        r.run([], atMs: 50_000)
        #expect(r.machine.sessionCount == 1)
        r.run([], atMs: 110_001)
        #expect(r.machine.sessionCount == 0)
        #expect(r.machine.get(bytes("k")) == bytes("aab"))
    }

    @Test func retriesKeepASessionAlive() {
        var r = Replica(KVStateMachine(sessionTimeoutMs: 1_000))
        r.run(put("k", "v", client: 1, seq: 1), atMs: 0)
        for t in stride(from: UInt64(900), through: 9_000, by: 900) {
            #expect(r.run(put("k", "v", client: 1, seq: 1), atMs: t) == .ok)
        }
        #expect(r.machine.sessionCount == 1)
    }

    @Test func staleRequestsDoNotKeepASessionAlive() {
        var r = Replica(KVStateMachine(sessionTimeoutMs: 1_000))
        r.run(put("k", "v", client: 1, seq: 1), atMs: 0)
        r.run(put("k", "v", client: 1, seq: 2), atMs: 0)
        #expect(r.run(put("k", "v", client: 1, seq: 1), atMs: 900) == .badRequest)
        r.run([], atMs: 1_001)
        #expect(r.machine.sessionCount == 0)
    }

    @Test func fullTableEvictsTheLeastRecentlyActiveSession() {
        var r = Replica(KVStateMachine(maxSessions: 3))
        r.run(put("k", "1", client: 1, seq: 1), atMs: 1)
        r.run(put("k", "2", client: 2, seq: 1), atMs: 2)
        r.run(put("k", "3", client: 3, seq: 1), atMs: 3)
        r.run(put("k", "1", client: 1, seq: 1), atMs: 4)  // retry: client 1 is now more recent than 2
        #expect(r.machine.sessionCount == 3)
        #expect(r.run(put("k", "4", client: 4, seq: 1), atMs: 5) == .ok)
        #expect(r.machine.sessionCount == 3)
        #expect(r.run(put("k", "2", client: 2, seq: 1), atMs: 6) == .sessionExpired)
        #expect(r.run(put("k", "1", client: 1, seq: 1), atMs: 6) == .ok)
        #expect(r.run(put("k", "3", client: 3, seq: 1), atMs: 6) == .ok)
        #expect(r.machine.get(bytes("k")) == bytes("4"))
    }

    @Test func evictionTiesAreBrokenByLogOrder() {
        // Clients 30, 10, 20 all active at the same log time: the earliest in the log goes first.
        var r = Replica(KVStateMachine(maxSessions: 3))
        r.run([put("a", "", client: 30, seq: 1), put("a", "", client: 10, seq: 1), put("a", "", client: 20, seq: 1)], atMs: 7)
        r.run([put("a", "", client: 40, seq: 1), put("a", "", client: 50, seq: 1)], atMs: 7)
        #expect(r.run(put("a", "", client: 30, seq: 1)) == .sessionExpired)
        #expect(r.run(put("a", "", client: 10, seq: 1)) == .sessionExpired)
        #expect(r.run(put("a", "", client: 20, seq: 1)) == .ok)
        #expect(r.machine.sessionCount == 3)
    }

    @Test func tombstonesAreBoundedByCountOldestFirst() {
        var r = Replica(KVStateMachine(sessionTimeoutMs: 10, maxTombstones: 2))
        for client in UInt64(1)...3 {
            r.run(put("k", "\(client)", client: client, seq: 1), atMs: client * 100)
        }
        r.run([], atMs: 1_000)
        #expect(r.machine.sessionCount == 0)
        #expect(r.machine.tombstoneCount == 2)
        #expect(r.run(put("k", "2", client: 2, seq: 1)) == .sessionExpired)
        #expect(r.run(put("k", "3", client: 3, seq: 1)) == .sessionExpired)
        // Client 1's tombstone is gone: a late retry of its opens a new session and is applied
        // again — the documented residual risk of bounded tombstones.
        #expect(r.run(put("k", "1", client: 1, seq: 1)) == .ok)
        #expect(r.machine.get(bytes("k")) == bytes("1"))
    }

    @Test func tombstonesAgeOut() {
        var r = Replica(KVStateMachine(sessionTimeoutMs: 10, tombstoneTimeoutMs: 1_000))
        r.run(put("k", "v", client: 1, seq: 1), atMs: 0)
        r.run([], atMs: 11)
        #expect(r.machine.tombstoneCount == 1)
        r.run([], atMs: 1_011)
        #expect(r.machine.tombstoneCount == 1)
        r.run([], atMs: 1_012)
        #expect(r.machine.tombstoneCount == 0)
    }

    @Test func withoutTombstonesAnExpiredClientStartsAfresh() {
        var r = Replica(KVStateMachine(sessionTimeoutMs: 10, maxTombstones: 0))
        r.run(put("k", "v", client: 1, seq: 1), atMs: 0)
        r.run([], atMs: 11)
        #expect(r.machine.tombstoneCount == 0)
        #expect(r.machine.sessionCount == 0)
        #expect(r.run(put("k", "w", client: 1, seq: 2)) == .ok)
    }

    @Test func memoryStaysBoundedUnderClientChurn() {
        let maxSessions = 50, maxTombstones = 80
        var r = Replica(KVStateMachine(sessionTimeoutMs: 500, maxSessions: maxSessions, maxTombstones: maxTombstones))
        var rng = SeededGenerator(seed: 42)
        for step in UInt64(1)...2_000 {
            let client = UInt64.random(in: 1...400, using: &rng)
            r.run(append("k\(client % 7)", "x", client: client, seq: 1), atMs: step * 3)
            #expect(r.machine.sessionCount <= maxSessions)
            #expect(r.machine.tombstoneCount <= maxTombstones)
        }
        // One busy client touching its session over and over: stale activity entries are swept.
        for step in UInt64(1)...5_000 {
            r.run(get("k0", client: 9_999, seq: step), atMs: 10_000)
            #expect(r.machine.sessionActivityBacklog <= 2 * r.machine.sessionCount + 65)
        }
    }
}
