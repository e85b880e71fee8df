import Testing
@testable import KVStore
import Wire
import Raft
import SeededRandom

/// Small limits, so that a random log of 40 clients expires, evicts and forgets sessions.
private let limits = (sessionTimeoutMs: UInt64(2_000), maxSessions: 16, tombstoneTimeoutMs: UInt64(5_000), maxTombstones: 20)

private func smallMachine() -> KVStateMachine {
    KVStateMachine(sessionTimeoutMs: limits.sessionTimeoutMs, maxSessions: limits.maxSessions,
                   tombstoneTimeoutMs: limits.tombstoneTimeoutMs, maxTombstones: limits.maxTombstones)
}

/// The snapshot carries the limits: restoring needs nothing else.
private func restoreSmall(_ bytes: [UInt8]) throws -> KVStateMachine {
    try KVStateMachine(restoring: bytes)
}

/// `original` restored, then a limits entry (at the snapshot's log time) setting `limits`.
private func restored(_ original: Replica, thenLimitedTo limits: SessionLimits) throws -> Replica {
    var r = Replica(try KVStateMachine(restoring: original.machine.snapshot()))
    r.index = original.index
    r.index += 1
    _ = r.machine.apply(batch: CommandBatch(timestampMs: 0, commands: [], setLimits: limits), index: r.index)
    return r
}

private func limited(sessions: UInt64 = 1_000_000, tombstones: UInt64 = 1_000_000,
                     sessionTimeoutMs: UInt64 = 3_600_000, tombstoneTimeoutMs: UInt64 = 86_400_000) -> SessionLimits {
    SessionLimits(sessionTimeoutMs: sessionTimeoutMs, maxSessions: sessions, tombstoneTimeoutMs: tombstoneTimeoutMs, maxTombstones: tombstones)
}

private func apply(_ entry: Entry, at index: UInt64, to machine: inout KVStateMachine) -> [CommandResult] {
    switch entry {
    case .noop:
        machine.applyNoop(index: index)
        return []
    case .batch(let batch):
        return machine.apply(batch: batch, index: index)
    }
}

@Suite struct SnapshotRoundTripTests {
    @Test func emptyMachine() throws {
        let empty = KVStateMachine()
        #expect(empty.stateSnapshot() == StateSnapshot(limits: .defaults))
        let restored = try KVStateMachine(restoring: empty.snapshot())
        #expect(restored == empty)
        #expect(restored.appliedIndex == 0 && restored.clockMs == 0)
        #expect(try KVStateMachine(restoring: []) == empty)  // no limits: the defaults
    }

    @Test(arguments: [UInt64(21), 22, 23])
    func restoringTheSnapshotAtAnyPointGivesAnEqualMachineAndTheSameBytes(seed: UInt64) throws {
        var log = RandomLog(seed: seed)
        var machine = smallMachine()
        for (i, entry) in log.entries(commands: 3_000).enumerated() {
            _ = apply(entry, at: UInt64(i + 1), to: &machine)
            guard i % 37 == 0 else { continue }
            let bytes = machine.snapshot()
            let restored = try restoreSmall(bytes)
            try #require(restored == machine, "seed \(seed), entry \(i + 1)")
            try #require(restored.snapshot() == bytes, "seed \(seed), entry \(i + 1)")
            try #require(restored.appliedIndex == machine.appliedIndex && restored.clockMs == machine.clockMs)
            try #require(restored.count == machine.count && restored.sessionCount == machine.sessionCount
                         && restored.tombstoneCount == machine.tombstoneCount)
        }
    }

    /// A state of several encoding parts (~4 MiB of keys and values each) comes out in parts
    /// that, concatenated, are the one-piece snapshot, of the size announced first.
    @Test func aLargeStateIsEncodedInPartsThatMakeTheSnapshot() throws {
        var r = Replica()
        let value = String(repeating: "v", count: 100_000)
        for batch in 0..<5 {
            _ = r.run((0..<20).map { put("key-\(batch)-\($0)", value) })
        }
        var announced = -1
        var parts: [[UInt8]] = []
        r.machine.encodeSnapshot(size: { announced = $0 }, part: { parts.append($0); return true })
        let whole = r.machine.snapshot()
        #expect(parts.count >= 2, "10 MB of values in parts of about 4 MiB")
        #expect(parts.flatMap { $0 } == whole && announced == whole.count)
        let restored = try KVStateMachine(restoring: parts.flatMap { $0 })
        #expect(restored.count == 100 && restored.snapshot() == whole)

        var handedOut = 0
        r.machine.encodeSnapshot(size: { _ in }, part: { _ in handedOut += 1; return false })
        #expect(handedOut == 1, "stops at the first part when told to")
    }

    @Test func pairsAreSortedByUnsignedKeyBytes() throws {
        var r = Replica()
        let keys: [[UInt8]] = [[0xff], [1], [], [0, 0], [0], [0x80, 1], [0x7f, 0xff, 0xff], [0x80]]
        r.run(keys.map { Command(clientID: 0, seq: 0, op: .put, key: $0, value: $0 + [9]) })
        let snapshot = r.machine.stateSnapshot()
        #expect(snapshot.pairs.map(\.key) == [[], [0], [0, 0], [1], [0x7f, 0xff, 0xff], [0x80], [0x80, 1], [0xff]])
        #expect(snapshot.pairs.allSatisfy { $0.value == $0.key + [9] })
        let restored = try KVStateMachine(restoring: r.machine.snapshot())
        for key in keys { #expect(restored.get(key) == key + [9]) }
    }

    @Test func sessionsAreListedInActivityOrderWithTiesInLogOrder() throws {
        var r = Replica(KVStateMachine(maxSessions: 3))
        r.run([put("a", "1", client: 5, seq: 1), put("b", "1", client: 2, seq: 1)], atMs: 1_000)
        r.run(put("c", "1", client: 9, seq: 1), atMs: 1_000)
        r.run(put("a", "1", client: 5, seq: 1), atMs: 1_500)  // a retry touches client 5
        let snapshot = r.machine.stateSnapshot()
        #expect(snapshot.sessions.map(\.clientID) == [2, 9, 5])
        #expect(snapshot.sessions.map(\.lastActiveMs) == [1_000, 1_000, 1_500])

        // Restored, the table evicts in the same order: client 2, then client 9.
        var restored = Replica(try KVStateMachine(restoring: r.machine.snapshot()))
        restored.index = r.index
        for replica in [r, restored] {
            var replica = replica
            replica.run(put("d", "1", client: 11, seq: 1), atMs: 2_000)
            #expect(replica.run(put("b", "1", client: 2, seq: 1)) == .sessionExpired)
            replica.run(put("e", "1", client: 12, seq: 1))
            #expect(replica.run(put("c", "1", client: 9, seq: 1)) == .sessionExpired)
            #expect(replica.run(put("a", "1", client: 5, seq: 1)) == .ok)
            #expect(replica.machine.stateSnapshot().tombstones == [TombstoneRecord(clientID: 2, atMs: 2_000, lastSeq: 1),
                                                                   TombstoneRecord(clientID: 9, atMs: 2_000, lastSeq: 1)])
        }
    }

    @Test func storedRepliesSurviveARestore() throws {
        var r = Replica()
        r.run(put("k", "v1", client: 1, seq: 1))
        #expect(r.run(get("k", client: 1, seq: 2)) == ok("v1"))
        #expect(r.run(delete("nope", client: 2, seq: 4)) == .noKey)
        #expect(r.run(Command(clientID: 3, seq: 1, op: Op(rawValue: 9), key: [])) == .badRequest)
        r.run(put("k", "v2"))
        var restored = Replica(try KVStateMachine(restoring: r.machine.snapshot()))
        restored.index = r.index
        #expect(restored.run(get("k", client: 1, seq: 2)) == ok("v2"))  // a Get is read again
        #expect(restored.run(get("k", client: 1, seq: 1)) == .badRequest)
        #expect(restored.run(delete("nope", client: 2, seq: 4)) == .noKey)
        #expect(restored.run(Command(clientID: 3, seq: 1, op: Op(rawValue: 9), key: [])) == .badRequest)
        #expect(restored.run(get("k", client: 1, seq: 3)) == ok("v2"))
    }
}

@Suite struct SnapshotEquivalenceTests {
    /// One machine applies the whole log; the other is restored from a snapshot taken
    /// `percent` of the way through, then applies the rest, and is itself replaced by a
    /// restore of its own snapshot every 97 entries. Every reply after the snapshot must
    /// match, and so must the final states.
    @Test(arguments: [(UInt64(31), 50), (32, 20), (33, 90), (0xDEAD_BEEF, 0)])
    func aRestoredMachineBehavesLikeTheOriginal(seed: UInt64, percent: Int) throws {
        var log = RandomLog(seed: seed)
        let entries = log.entries(commands: 8_000)
        let from = entries.count * percent / 100
        var original = smallMachine()
        for i in 0..<from {
            _ = apply(entries[i], at: UInt64(i + 1), to: &original)
        }
        var restored = try restoreSmall(original.snapshot())
        var statuses: [Status: Int] = [:]
        var sawFullTable = false, sawExpiry = false, sawFullTombstones = false
        for i in from..<entries.count {
            let index = UInt64(i + 1)
            let sessionsBefore = original.sessionCount
            let expected = apply(entries[i], at: index, to: &original)
            let got = apply(entries[i], at: index, to: &restored)
            if got != expected {
                guard case .batch(let batch) = entries[i] else { throw ReplyMismatch(seed: seed, index: index, detail: "noop") }
                let diff = zip(batch.commands, zip(expected, got)).filter { $1.0 != $1.1 }
                    .map { "client \($0.clientID) seq \($0.seq) \($0.op): expected \($1.0), got \($1.1)" }
                throw ReplyMismatch(seed: seed, index: index, detail: diff.joined(separator: "; "))
            }
            for result in expected { statuses[result.status, default: 0] += 1 }
            sawFullTable = sawFullTable || original.sessionCount == limits.maxSessions
            sawFullTombstones = sawFullTombstones || original.tombstoneCount == limits.maxTombstones
            // Only expiry shrinks the table (an eviction makes room for a new session).
            sawExpiry = sawExpiry || original.sessionCount < sessionsBefore
            if i % 97 == 0 {
                restored = try restoreSmall(restored.snapshot())
            }
        }
        #expect(restored == original, "seed \(seed)")
        #expect(restored.snapshot() == original.snapshot(), "seed \(seed)")
        for k in 0..<12 {
            #expect(restored.get(Array("k\(k)".utf8)) == original.get(Array("k\(k)".utf8)))
        }
        // The part of the log after the snapshot exercised every path.
        for status in [Status.ok, .noKey, .badRequest, .sessionExpired] {
            #expect(statuses[status, default: 0] > 0, "seed \(seed): no \(status) in \(statuses)")
        }
        #expect(sawFullTable, "seed \(seed): the session table never filled, so nothing was evicted")
        #expect(sawFullTombstones, "seed \(seed): tombstones never reached their bound")
        #expect(sawExpiry, "seed \(seed): no session expired")
    }

    struct ReplyMismatch: Error, CustomStringConvertible {
        let seed: UInt64, index: UInt64, detail: String
        var description: String { "seed \(seed): the restored machine disagrees at entry \(index): \(detail)" }
    }
}

@Suite struct SnapshotLimitTests {
    /// Clients 1…15 each write once, 10 ms apart, into a table of 10: clients 1…5 are
    /// evicted by clients 11…15, and leave tombstones at those clients' times.
    static func fifteenClients() -> Replica {
        var r = Replica(KVStateMachine(maxSessions: 10))
        for client in UInt64(1)...15 {
            r.run(put("k\(client)", "v", client: client, seq: 1), atMs: 1_000 + client * 10)
        }
        return r
    }

    @Test func theSnapshotHoldsWhatTheTableHolds() {
        let snapshot = Self.fifteenClients().machine.stateSnapshot()
        #expect(snapshot.sessions.map(\.clientID) == Array(6...15))
        #expect(snapshot.tombstones == (1...5).map { TombstoneRecord(clientID: $0, atMs: 1_000 + ($0 + 10) * 10, lastSeq: 1) })
        #expect(snapshot.clockMs == 1_150)
    }

    @Test func theSnapshotCarriesTheLimits() throws {
        let original = Self.fifteenClients().machine
        #expect(original.stateSnapshot().limits == SessionLimits(sessionTimeoutMs: 3_600_000, maxSessions: 10,
                                                                tombstoneTimeoutMs: 86_400_000, maxTombstones: 1_000_000))
        let restored = try KVStateMachine(restoring: original.snapshot())
        #expect(restored == original)
        #expect(restored.limits == original.limits)
    }

    @Test func aSnapshotWithoutLimitsRestoresUnderTheDefaults() throws {
        var snapshot = Self.fifteenClients().machine.stateSnapshot()
        snapshot.limits = nil
        let restored = try KVStateMachine(restoring: snapshot.serialized())
        #expect(restored.limits == .defaults)
        #expect(restored.sessionCount == 10 && restored.tombstoneCount == 5)
    }

    @Test func smallerCountLimitsEvictAndForgetAtOnceOldestFirst() throws {
        let original = Self.fifteenClients()
        var r = try restored(original, thenLimitedTo: limited(sessions: 4, tombstones: 8))
        let snapshot = r.machine.stateSnapshot()
        // Sessions 6…11 are evicted at the entry's log time; 11 tombstones keep the 8 newest.
        #expect(snapshot.sessions.map(\.clientID) == [12, 13, 14, 15])
        #expect(snapshot.tombstones == [TombstoneRecord(clientID: 4, atMs: 1_140, lastSeq: 1), TombstoneRecord(clientID: 5, atMs: 1_150, lastSeq: 1)]
                + (6...11).map { TombstoneRecord(clientID: $0, atMs: 1_150, lastSeq: 1) })
        #expect(snapshot.pairs.count == 15)
        // Deterministic: the same entry on the same state gives the same machine.
        #expect(try restored(original, thenLimitedTo: limited(sessions: 4, tombstones: 8)).machine == r.machine)
        // And the same entry on the unrestored original, too.
        var unrestored = original
        unrestored.index += 1
        _ = unrestored.machine.apply(batch: CommandBatch(timestampMs: 0, commands: [], setLimits: limited(sessions: 4, tombstones: 8)),
                                 index: unrestored.index)
        #expect(unrestored.machine == r.machine)
        #expect(unrestored.machine.snapshot() == r.machine.snapshot())

        #expect(r.run(put("k6", "w", client: 6, seq: 1), atMs: 1_200) == .sessionExpired)
        #expect(r.run(put("k15", "w", client: 15, seq: 1)) == .ok)  // a retry: the stored reply
        #expect(r.machine.get(bytes("k15")) == bytes("v"))
        // Client 1's tombstone was forgotten: the documented residual risk, it starts afresh.
        #expect(r.run(put("k1", "w", client: 1, seq: 1)) == .ok)
        #expect(r.machine.get(bytes("k1")) == bytes("w"))
    }

    @Test func noTombstonesAtAll() throws {
        let machine = try restored(Self.fifteenClients(), thenLimitedTo: limited(sessions: 3, tombstones: 0)).machine
        #expect(machine.sessionCount == 3 && machine.tombstoneCount == 0)
        #expect(machine.stateSnapshot().sessions.map(\.clientID) == [13, 14, 15])
    }

    @Test func largerLimitsKeepEverything() throws {
        let original = Self.fifteenClients()
        let machine = try restored(original, thenLimitedTo: limited(sessions: 100)).machine
        #expect(machine.stateSnapshot().sessions == original.machine.stateSnapshot().sessions)
        #expect(machine.stateSnapshot().tombstones == original.machine.stateSnapshot().tombstones)
        #expect(machine.limits.maxSessions == 100)
    }

    @Test func unusableLimitsAreIgnoredOnEveryReplica() throws {
        let original = Self.fifteenClients()
        let machine = try restored(original, thenLimitedTo: limited(sessions: 0)).machine
        #expect(machine.limits == original.machine.limits)
        #expect(machine.sessionCount == 10)
    }

    @Test func shorterTimeoutsApplyAtTheNextBatch() throws {
        let original = Self.fifteenClients()
        // Sessions were last active at 1 060…1 150, tombstones laid at 1 110…1 150. The limits
        // entry itself runs expiry after setting them, at log time 1 150.
        var r = Replica(try KVStateMachine(restoring: original.machine.snapshot()))
        r.index = original.index
        #expect(r.machine.sessionCount == 10 && r.machine.tombstoneCount == 5)  // nothing happens at restore
        r.noop()
        #expect(r.machine.sessionCount == 10)  // nor at a no-op
        r.index += 1
        _ = r.machine.apply(batch: CommandBatch(timestampMs: 1_150, commands: [],
                                            setLimits: limited(sessions: 10, sessionTimeoutMs: 50, tombstoneTimeoutMs: 20)),
                        index: r.index)
        // Sessions idle for more than 50 ms went.
        #expect(r.machine.stateSnapshot().sessions.map(\.clientID) == [10, 11, 12, 13, 14, 15])
        // Clients 6…9 left tombstones at 1 150; those older than 20 ms (clients 1 and 2) went.
        #expect(r.machine.stateSnapshot().tombstones.map(\.clientID) == [3, 4, 5, 6, 7, 8, 9])
    }
}

@Suite struct SnapshotValidationTests {
    static let valid = StateSnapshot(
        appliedIndex: 10, clockMs: 5_000,
        pairs: [KeyValuePair(key: bytes("a"), value: bytes("1")), KeyValuePair(key: bytes("b"), value: [])],
        sessions: [SessionRecord(clientID: 1, lastSeq: 3, lastStatus: .ok, lastValue: bytes("1"), lastActiveMs: 4_000),
                   SessionRecord(clientID: 2, lastSeq: 1, lastStatus: .noKey, lastActiveMs: 4_000),
                   SessionRecord(clientID: 3, lastSeq: 7, lastStatus: .badRequest, lastActiveMs: 5_000)],
        tombstones: [TombstoneRecord(clientID: 8, atMs: 100), TombstoneRecord(clientID: 9, atMs: 100),
                     TombstoneRecord(clientID: 10, atMs: 3_000)])

    static func broken(_ change: (inout StateSnapshot) -> Void) -> StateSnapshot {
        var snapshot = valid
        change(&snapshot)
        return snapshot
    }

    static let cases: [(snapshot: StateSnapshot, reason: String)] = [
        (broken { $0.pairs.append(KeyValuePair(key: bytes("b"), value: [1])) }, "pairs 1 and 2 have the same key \"b\""),
        (broken { $0.pairs.insert(KeyValuePair(key: [0xff, 0], value: []), at: 0) },
         "pair 1 has key \"a\", which sorts before the key of pair 0, \"\\xff\\x00\"; pairs must be sorted by key"),
        (broken { $0.sessions[1].clientID = 1 }, "session 1 (client 1, seq 1, active at 4000 ms): client 1 has two sessions"),
        (broken { $0.sessions[2].clientID = 9 }, "session 2 (client 9, seq 7, active at 5000 ms): client 9 also has a tombstone"),
        (broken { $0.tombstones[2].clientID = 8 }, "tombstone 2 (client 8, removed at 3000 ms): client 8 has two tombstones"),
        (broken { $0.sessions.swapAt(1, 2) },
         "session 2 (client 2, seq 1, active at 4000 ms) was active before the session listed before it (5000 ms); sessions must be listed least recently active first"),
        (broken { $0.tombstones.swapAt(0, 2) },
         "tombstone 1 (client 9, removed at 100 ms) is older than the tombstone before it (3000 ms); tombstones must be listed oldest first"),
        (broken { $0.sessions[0].clientID = 0 }, "session 0 (client 0, seq 3, active at 4000 ms) has client ID 0, which never has a session"),
        (broken { $0.tombstones[0].clientID = 0 }, "tombstone 0 (client 0, removed at 100 ms) has client ID 0, which never has a session"),
        (broken { $0.sessions[0].lastSeq = 0 }, "session 0 (client 1, seq 0, active at 4000 ms) has seq 0, which never opens a session"),
        (broken { $0.sessions[2].lastActiveMs = 5_001 }, "session 2 (client 3, seq 7, active at 5001 ms) is later than the snapshot's log time (5000 ms)"),
        (broken { $0.tombstones[2].atMs = 6_000 }, "tombstone 2 (client 10, removed at 6000 ms) is later than the snapshot's log time (5000 ms)"),
        (broken { $0.sessions[1].lastStatus = .sessionExpired },
         "session 1 (client 2, seq 1, active at 4000 ms) stores reply SESSION_EXPIRED, which applying a command never returns"),
        (broken { $0.sessions[1].lastStatus = Status(rawValue: 77) },
         "session 1 (client 2, seq 1, active at 4000 ms) stores reply STATUS(77), which applying a command never returns"),
        (broken { $0.sessions[1].lastValue = [1, 2] },
         "session 1 (client 2, seq 1, active at 4000 ms) stores reply NO_KEY with a 2-byte value; only OK carries a value"),
        (StateSnapshot(pairs: [KeyValuePair(key: [], value: [])]),
         "it holds 1 keys, 0 sessions and 0 tombstones before any entry was applied"),
    ]

    @Test func theValidSnapshotRestores() throws {
        let machine = try KVStateMachine(restoring: Self.valid.serialized())
        // Written before limits were replicated and values dropped: the defaults hold, and the
        // session that stores a value was left by a Get, which is read again on a retry.
        var expected = Self.valid
        expected.limits = .defaults
        expected.sessions[0].lastValue = []
        expected.sessions[0].lastWasGet = true
        #expect(machine.stateSnapshot() == expected)
        var r = Replica(machine)
        r.index = 10
        #expect(r.run(get("a", client: 1, seq: 3)) == ok("1"))
        #expect(r.run(get("b", client: 2, seq: 1)) == .noKey)  // no value stored: a write's reply, replayed
    }

    @Test(arguments: cases.indices)
    func inconsistentSnapshotsAreRefused(index: Int) throws {
        let (snapshot, reason) = Self.cases[index]
        let error = #expect(throws: SnapshotRestoreError.self) { try KVStateMachine(restoring: snapshot.serialized()) }
        #expect(error == .inconsistent(appliedIndex: snapshot.appliedIndex, reason))
        #expect(error?.description.contains("refusing to restore") == true)
    }

    @Test func undecodableBytesAreRefused() {
        for body: [UInt8] in [[0x0a, 0xff], [0x0f], [0x1a, 0x05, 0x0a], Array("not a snapshot at all".utf8)] {
            let error = #expect(throws: SnapshotRestoreError.self) { try KVStateMachine(restoring: body) }
            guard case .undecodable(let count, _)? = error else {
                Issue.record("\(body): \(String(describing: error))")
                continue
            }
            #expect(count == body.count)
        }
    }

    /// Garbage and damaged snapshots either are refused or restore to a machine that
    /// snapshots stably and keeps applying entries: never a trap.
    @Test func garbageNeverCrashes() throws {
        var rng = SeededGenerator(seed: 41)
        var log = RandomLog(seed: 42)
        var machine = smallMachine()
        var good: [[UInt8]] = []
        for (i, entry) in log.entries(commands: 1_500).enumerated() {
            _ = apply(entry, at: UInt64(i + 1), to: &machine)
            if i % 50 == 0 { good.append(machine.snapshot()) }
        }
        var restoredCount = 0
        for i in 0..<4_000 {
            var body: [UInt8]
            if i % 4 == 0 {
                body = (0..<Int.random(in: 0...80, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                body = good.randomElement(using: &rng)!
                guard !body.isEmpty else { continue }
                if i % 4 == 1 {
                    body.removeLast(Int.random(in: 1...body.count, using: &rng))
                } else {
                    for _ in 0..<Int.random(in: 1...3, using: &rng) {
                        body[Int.random(in: 0..<body.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                    }
                }
            }
            guard var restored = try? restoreSmall(body) else { continue }
            restoredCount += 1
            #expect(try restoreSmall(restored.snapshot()) == restored, "body \(i)")
            let index = restored.appliedIndex == .max ? nil : restored.appliedIndex + 1
            if let index {
                _ = restored.apply(batch: CommandBatch(timestampMs: restored.clockMs &+ 3_000, commands: [
                    put("k1", "x", client: 1, seq: 1_000), get("k2", client: 7, seq: 1), put("k3", "y", client: 99, seq: 1),
                ]), index: index)
            }
        }
        #expect(restoredCount > 100)
    }
}

@Suite struct LargeSnapshotTests {
    @Test func twoHundredThousandKeysRoundTrip() throws {
        // Every fifth command opens a session for a new client: 40 000 clients pass through
        // a table of 1 000 sessions and 5 000 tombstones.
        var machine = KVStateMachine(maxSessions: 1_000, maxTombstones: 5_000)
        var index: UInt64 = 0
        for batch in 0..<200 {
            index += 1
            let commands = (0..<1_000).map { i in
                let n = batch * 1_000 + i
                return Command(clientID: n % 5 == 0 ? UInt64(n / 5 + 1) : 0, seq: 1, op: .put,
                               key: Array("user:\(n * 7919 % 200_000)".utf8), value: Array("value-\(n)".utf8))
            }
            _ = machine.apply(batch: CommandBatch(timestampMs: UInt64(batch) * 10, commands: commands), index: index)
        }
        #expect(machine.count == 200_000)
        #expect(machine.sessionCount == 1_000 && machine.tombstoneCount == 5_000)
        let bytes = machine.snapshot()
        let restored = try KVStateMachine(restoring: bytes)
        #expect(restored == machine)
        #expect(restored.snapshot() == bytes)
    }
}
