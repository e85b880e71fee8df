import Testing
@testable import KVStore
import Wire
import Raft
import SeededRandom

/// A log entry as raftd would deliver it: a command batch or a leader's no-op.
enum Entry {
    case batch(CommandBatch)
    case noop
}

/// Generates a random log from many clients with retries, late duplicates, seq gaps,
/// unknown ops, client ID 0, and leader clocks that sometimes jump back.
struct RandomLog {
    private var rng: SeededGenerator
    private var nextSeq: [UInt64: UInt64] = [:]
    private var sent: [UInt64: [Command]] = [:]
    private var clockMs: UInt64 = 1_000_000

    init(seed: UInt64) { rng = SeededGenerator(seed: seed) }

    mutating func entries(commands total: Int) -> [Entry] {
        var entries: [Entry] = []
        var made = 0
        while made < total {
            if Int.random(in: 0..<20, using: &rng) == 0 {
                entries.append(.noop)
                continue
            }
            // Mostly forward, sometimes a big idle gap, sometimes a leader whose clock is behind.
            switch Int.random(in: 0..<20, using: &rng) {
            case 0: clockMs -= min(clockMs, UInt64.random(in: 0...3_000, using: &rng))
            case 1: clockMs += UInt64.random(in: 1_000...6_000, using: &rng)
            default: clockMs += UInt64.random(in: 0...150, using: &rng)
            }
            let count = Int.random(in: 0...8, using: &rng)
            var commands: [Command] = []
            for _ in 0..<count { commands.append(command()) }
            made += count
            entries.append(.batch(CommandBatch(timestampMs: clockMs, commands: commands)))
        }
        return entries
    }

    private mutating func command() -> Command {
        let client = UInt64.random(in: 0...40, using: &rng)
        let history = sent[client, default: []]
        let roll = Int.random(in: 0..<100, using: &rng)
        if client != 0, let last = history.last, roll < 25 {
            return last  // retry
        }
        if client != 0, history.count > 1, roll < 30 {
            return history[Int.random(in: 0..<(history.count - 1), using: &rng)]  // late duplicate
        }
        var seq = nextSeq[client, default: 1]
        if client != 0, roll < 35 { seq += UInt64.random(in: 1...3, using: &rng) }  // gap
        if client != 0, roll == 35 { seq = UInt64.random(in: 0...5, using: &rng) }  // nonsense
        nextSeq[client] = seq + 1
        let command = randomOp(client: client, seq: seq)
        sent[client, default: []].append(command)
        return command
    }

    private mutating func randomOp(client: UInt64, seq: UInt64) -> Command {
        let key = Array("k\(Int.random(in: 0..<12, using: &rng))".utf8)
        let value = (0..<Int.random(in: 0...4, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let op: Op = Int.random(in: 0..<50, using: &rng) == 0 ? Op(rawValue: Int32.random(in: 4...9, using: &rng))
                                                             : Op(rawValue: Int32.random(in: 0...3, using: &rng))
        return Command(clientID: client, seq: seq, op: op, key: key, value: value)
    }
}

@Suite struct DeterminismTests {
    static func makeMachine() -> KVStateMachine {
        KVStateMachine(sessionTimeoutMs: 2_000, maxSessions: 16, tombstoneTimeoutMs: 5_000, maxTombstones: 20)
    }

    @Test(arguments: [UInt64(1), 2, 3, 0xDEAD_BEEF])
    func replicasFedTheSameLogEndIdentical(seed: UInt64) throws {
        var log = RandomLog(seed: seed)
        let entries = log.entries(commands: 4_000)
        var a = Self.makeMachine()
        var b = Self.makeMachine()
        var statuses: [Status: Int] = [:]
        for (i, entry) in entries.enumerated() {
            let index = UInt64(i + 1)
            switch entry {
            case .noop:
                a.applyNoop(index: index)
                b.applyNoop(index: index)
            case .batch(let batch):
                let resultsA = a.apply(batch: batch, index: index)
                // Replica b gets the entry as it travels: serialized and decoded.
                let received = try CommandBatch(serialized: batch.serialized())
                let resultsB = b.apply(batch: received, index: index)
                try #require(resultsA == resultsB, "seed \(seed): replicas disagree at entry \(index)")
                for result in resultsA { statuses[result.status, default: 0] += 1 }
            }
        }
        #expect(a == b, "seed \(seed)")
        #expect(a.appliedIndex == UInt64(entries.count))
        for k in 0..<12 {
            #expect(a.get(Array("k\(k)".utf8)) == b.get(Array("k\(k)".utf8)))
        }
        // The log exercised every kind of outcome.
        for status in [Status.ok, .noKey, .badRequest, .sessionExpired] {
            #expect(statuses[status, default: 0] > 0, "seed \(seed): no \(status) in \(statuses)")
        }
        #expect(a.sessionCount <= 16)
        #expect(a.tombstoneCount <= 20)
    }

    @Test func differentLogsGiveDifferentStates() {
        // Guards the test above: equality of state machines is not vacuous.
        var a = KVStateMachine(), b = KVStateMachine()
        _ = a.apply(batch: CommandBatch(timestampMs: 1, commands: [put("k", "v", client: 1, seq: 1)]), index: 1)
        _ = b.apply(batch: CommandBatch(timestampMs: 1, commands: [put("k", "v", client: 2, seq: 1)]), index: 1)
        #expect(a != b)
    }
}

/// The obvious implementation of the semantics, without expiry or bounds: a retried write
/// gets its stored reply, a retried Get is read again.
struct ReferenceStore {
    var data: [[UInt8]: [UInt8]] = [:]
    var sessions: [UInt64: (seq: UInt64, result: CommandResult, wasGet: Bool)] = [:]

    mutating func apply(_ c: Command) -> CommandResult {
        if c.clientID != 0 {
            if let s = sessions[c.clientID] {
                if c.seq == s.seq && s.wasGet && c.op == .get { return read(c.key) }
                if c.seq == s.seq { return CommandResult(status: s.result.status) }
                if c.seq < s.seq { return .badRequest }
            } else if c.seq == 0 {
                return .badRequest
            }
        }
        let result: CommandResult
        switch c.op {
        case .get: result = read(c.key)
        case .put: data[c.key] = c.value; result = .ok
        case .append: data[c.key] = (data[c.key] ?? []) + c.value; result = .ok
        case .delete: result = data.removeValue(forKey: c.key) != nil ? .ok : .noKey
        default: result = .badRequest
        }
        if c.clientID != 0 { sessions[c.clientID] = (c.seq, result, c.op == .get) }
        return result
    }

    func read(_ key: [UInt8]) -> CommandResult {
        data[key].map { CommandResult(status: .ok, value: $0) } ?? .noKey
    }
}

@Suite struct ModelTests {
    @Test(arguments: [UInt64(7), 8, 9])
    func uniqueSeqsMatchAPlainMap(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        var machine = KVStateMachine()
        var model: [[UInt8]: [UInt8]] = [:]
        var nextSeq: [UInt64: UInt64] = [:]
        for index in UInt64(1)...500 {
            var commands: [Command] = []
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let client = UInt64.random(in: 1...10, using: &rng)
                let seq = nextSeq[client, default: 1]
                nextSeq[client] = seq + UInt64.random(in: 1...2, using: &rng)
                let key = Array("k\(Int.random(in: 0..<8, using: &rng))".utf8)
                let value = Array("v\(Int.random(in: 0..<100, using: &rng))".utf8)
                commands.append(Command(clientID: client, seq: seq, op: Op(rawValue: Int32.random(in: 0...3, using: &rng)),
                                        key: key, value: value))
            }
            let results = machine.apply(batch: CommandBatch(timestampMs: index * 10, commands: commands), index: index)
            for (command, result) in zip(commands, results) {
                let expected: CommandResult
                switch command.op {
                case .get: expected = model[command.key].map { CommandResult(status: .ok, value: $0) } ?? .noKey
                case .put: model[command.key] = command.value; expected = .ok
                case .append: model[command.key, default: []] += command.value; expected = .ok
                default: expected = model.removeValue(forKey: command.key) != nil ? .ok : .noKey
                }
                #expect(result == expected, "seed \(seed), entry \(index): \(command.op) by client \(command.clientID) seq \(command.seq)")
            }
        }
        #expect(machine.count == model.count)
        for (key, value) in model { #expect(machine.get(key) == value) }
    }

    @Test(arguments: [UInt64(11), 12, 13])
    func retriesAndDuplicatesMatchTheReference(seed: UInt64) {
        var log = RandomLog(seed: seed)
        var machine = KVStateMachine()  // defaults: nothing expires or is evicted in this log
        var reference = ReferenceStore()
        for (i, entry) in log.entries(commands: 3_000).enumerated() {
            guard case .batch(let batch) = entry else {
                machine.applyNoop(index: UInt64(i + 1))
                continue
            }
            let results = machine.apply(batch: batch, index: UInt64(i + 1))
            for (command, result) in zip(batch.commands, results) {
                let expected = reference.apply(command)
                #expect(result == expected, "seed \(seed), entry \(i + 1): \(command.op) by client \(command.clientID) seq \(command.seq)")
            }
        }
        #expect(machine.count == reference.data.count)
        for (key, value) in reference.data { #expect(machine.get(key) == value) }
        #expect(machine.sessionCount == reference.sessions.count)
    }
}
