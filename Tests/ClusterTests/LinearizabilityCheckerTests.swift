import ClusterTestSupport
import Dispatch
import Testing
import Raft
import SeededRandom

// Shorthands: String keys/values, times in nanoseconds.
private func get(_ c: Int, _ k: String, _ v: String?, _ t0: UInt64, _ t1: UInt64) -> Operation {
    .get(client: c, k, v, call: t0, return: t1)
}
private func put(_ c: Int, _ k: String, _ v: String, _ t0: UInt64, _ t1: UInt64, unknown: Bool = false) -> Operation {
    .put(client: c, k, v, call: t0, return: t1, outcome: unknown ? .unknown : .ok)
}
private func app(_ c: Int, _ k: String, _ v: String, _ t0: UInt64, _ t1: UInt64, unknown: Bool = false) -> Operation {
    .append(client: c, k, v, call: t0, return: t1, outcome: unknown ? .unknown : .ok)
}
private func del(_ c: Int, _ k: String, _ existed: Bool, _ t0: UInt64, _ t1: UInt64, unknown: Bool = false)
    -> Operation
{
    .delete(client: c, k, existed: existed, call: t0, return: t1, outcome: unknown ? .unknown : .ok)
}

private func check(_ ops: [Operation]) -> CheckResult {
    LinearizabilityChecker.check(ops, timeout: .seconds(10))
}

private func expectViolation(_ ops: [Operation], key: String, sourceLocation: SourceLocation = #_sourceLocation)
    -> String
{
    let r = check(ops)
    guard case .notLinearizable(let k, let explanation) = r else {
        Issue.record("expected a violation on key \(key), got \(r)", sourceLocation: sourceLocation)
        return ""
    }
    #expect(k == Array(key.utf8), sourceLocation: sourceLocation)
    #expect(explanation.contains("\"\(key)\""), sourceLocation: sourceLocation)
    return explanation
}

// MARK: - Hand-written histories

@Suite struct LinearizabilityBasics {
    @Test func emptyHistory() {
        #expect(check([]) == .linearizable)
    }

    @Test func sequentialHistory() {
        let ops = [
            get(0, "k", nil, 0, 10),
            put(0, "k", "a", 20, 30),
            get(1, "k", "a", 40, 50),
            app(1, "k", "b", 60, 70),
            get(0, "k", "ab", 80, 90),
            del(0, "k", true, 100, 110),
            get(1, "k", nil, 120, 130),
            app(0, "k", "c", 140, 150),
            get(1, "k", "c", 160, 170),
        ]
        #expect(check(ops) == .linearizable)
        // Input order doesn't matter.
        #expect(check(ops.reversed()) == .linearizable)
    }

    @Test func concurrentPutGetSeesEitherValue() {
        let before = put(0, "k", "1", 0, 10)
        let overlapping = put(1, "k", "2", 20, 40)
        #expect(check([before, overlapping, get(2, "k", "1", 25, 35)]) == .linearizable)
        #expect(check([before, overlapping, get(2, "k", "2", 25, 35)]) == .linearizable)
        _ = expectViolation([before, overlapping, get(2, "k", "3", 25, 35)], key: "k")
        // Two reads of one client can't see 2 then 1 (the second read starts after the first ends).
        _ = expectViolation(
            [before, overlapping, get(2, "k", "2", 21, 25), get(2, "k", "1", 26, 30)], key: "k")
        // Equal timestamps count as concurrent, not ordered.
        #expect(check([put(0, "k", "1", 0, 10), get(1, "k", nil, 10, 20)]) == .linearizable)
    }

    @Test func staleReadAfterCompletedPutIsNotLinearizable() {
        let ops = [
            put(0, "k", "a", 0, 10),
            put(1, "k", "b", 20, 30),
            get(2, "k", "a", 40, 50),
        ]
        let explanation = expectViolation(ops, key: "k")
        #expect(explanation.contains("get returned \"a\", but the value is \"b\""))
        #expect(explanation.contains("put(\"k\", \"b\")"))
        #expect(explanation.contains("[0.040µs, 0.050µs]"))
    }

    @Test func getMissingAfterCompletedPutIsNotLinearizable() {
        let explanation = expectViolation([put(0, "k", "v", 0, 10), get(1, "k", nil, 20, 30)], key: "k")
        #expect(explanation.contains("get returned missing, but the value is \"v\""))
        // But a concurrent get may still see missing.
        #expect(check([put(0, "k", "v", 0, 10), get(1, "k", nil, 5, 30)]) == .linearizable)
    }

    @Test func unknownOutcomePut() {
        // Took effect, and is seen much later.
        #expect(
            check([put(0, "k", "v", 0, 10, unknown: true), get(1, "k", "v", 1000, 1010)]) == .linearizable)
        // Never took effect.
        #expect(
            check([put(0, "k", "v", 0, 10, unknown: true), get(1, "k", nil, 1000, 1010)]) == .linearizable)
        // Took effect late: missing, then v.
        #expect(
            check([
                put(0, "k", "v", 0, 10, unknown: true),
                get(1, "k", nil, 1000, 1010), get(1, "k", "v", 2000, 2010),
            ]) == .linearizable)
        // But it cannot take effect before its call.
        _ = expectViolation([get(1, "k", "v", 0, 10), put(0, "k", "v", 20, 30, unknown: true)], key: "k")
        // Nor take effect, be undone, and appear again.
        _ = expectViolation(
            [
                put(0, "k", "v", 0, 10, unknown: true),
                get(1, "k", "v", 100, 110), get(1, "k", nil, 200, 210), get(1, "k", "v", 300, 310),
            ], key: "k")
        // Unknown-outcome gets are ignored whatever they "returned".
        let unknownGet = Operation(
            clientID: 3, kind: .get, key: Array("k".utf8), output: .value(Array("zzz".utf8)),
            call: 0, return: 5, outcome: .unknown)
        #expect(check([unknownGet, get(1, "k", nil, 10, 20)]) == .linearizable)
    }

    @Test func appendOrdering() {
        let a = app(0, "k", "a", 0, 10)
        let b = app(1, "k", "b", 0, 10)
        #expect(check([a, b, get(2, "k", "ab", 20, 30)]) == .linearizable)
        #expect(check([a, b, get(2, "k", "ba", 20, 30)]) == .linearizable)
        let explanation = expectViolation([a, b, get(2, "k", "a", 20, 30)], key: "k")
        #expect(explanation.contains("get returned \"a\""))
        _ = expectViolation([a, b, get(2, "k", "abb", 20, 30)], key: "k")
        // A get concurrent with both appends may see any prefix state.
        for seen in [nil, "a", "b", "ab", "ba"] as [String?] {
            #expect(check([a, b, get(2, "k", seen, 5, 6)]) == .linearizable)
        }
        // Once "ab" was observed, "ba" can't be.
        _ = expectViolation([a, b, get(2, "k", "ab", 20, 30), get(3, "k", "ba", 40, 50)], key: "k")
        // Appending to a missing key starts from empty.
        #expect(check([del(0, "k", false, 0, 1), app(0, "k", "x", 2, 3), get(0, "k", "x", 4, 5)]) == .linearizable)
        // An empty value is present, not missing.
        _ = expectViolation([app(0, "k", "", 0, 1), get(0, "k", nil, 2, 3)], key: "k")
    }

    @Test func deleteExistedSemantics() {
        let p = put(0, "k", "v", 0, 10)
        #expect(check([p, del(1, "k", true, 20, 30), get(0, "k", nil, 40, 50)]) == .linearizable)
        let explanation = expectViolation([p, del(1, "k", false, 20, 30)], key: "k")
        #expect(explanation.contains("delete reported existed=false, but the key is present"))
        #expect(check([del(1, "k", false, 0, 10)]) == .linearizable)
        _ = expectViolation([del(1, "k", true, 0, 10)], key: "k")
        // Two deletes after one put: exactly one can report existed=true.
        #expect(check([p, del(1, "k", true, 20, 30), del(2, "k", false, 20, 30)]) == .linearizable)
        _ = expectViolation([p, del(1, "k", true, 20, 30), del(2, "k", true, 20, 30)], key: "k")
        // A delete concurrent with a put may see either.
        #expect(check([put(0, "k", "v", 0, 10), del(1, "k", false, 5, 15), get(2, "k", "v", 20, 30)]) == .linearizable)
        #expect(check([put(0, "k", "v", 0, 10), del(1, "k", true, 5, 15), get(2, "k", nil, 20, 30)]) == .linearizable)
        _ = expectViolation([put(0, "k", "v", 0, 10), del(1, "k", false, 5, 15), get(2, "k", nil, 20, 30)], key: "k")
        // Unknown-outcome delete: output ignored, may or may not have happened.
        #expect(check([p, del(1, "k", false, 20, 30, unknown: true), get(2, "k", nil, 40, 50)]) == .linearizable)
        #expect(check([p, del(1, "k", false, 20, 30, unknown: true), get(2, "k", "v", 40, 50)]) == .linearizable)
    }

    @Test func keysAreIndependent() {
        // Interleaved operations on two keys; each key's value is its own.
        let ok = [
            put(0, "a", "1", 0, 10), put(1, "b", "2", 0, 10),
            get(2, "a", "1", 20, 30), get(3, "b", "2", 20, 30),
            app(0, "a", "x", 40, 50), del(1, "b", true, 40, 50),
            get(2, "b", nil, 60, 70), get(3, "a", "1x", 60, 70),
        ]
        #expect(check(ok) == .linearizable)
        // A stale read on "b" only is reported on "b".
        let bad = ok + [put(4, "b", "3", 200, 210), get(4, "b", "1", 220, 230), get(4, "a", "1x", 240, 250)]
        _ = expectViolation(bad, key: "b")
        // Keys are bytes: non-UTF-8 keys are rendered in hex.
        let raw = Operation(
            clientID: 0, kind: .get, key: [0xff, 0x00], output: .value([1]), call: 0, return: 1)
        guard case .notLinearizable(let key, let explanation) = check([raw]) else {
            Issue.record("expected a violation")
            return
        }
        #expect(key == [0xff, 0x00])
        #expect(explanation.contains("0xff00"))
    }

    @Test func timeoutIsReported() {
        // 18 fully concurrent appends and a put, then a read of something never appended: as
        // long as the put is pending every order of appends is a distinct state worth trying.
        var ops: [Operation] = (0..<18).map { app($0, "k", "<\($0)>", 0, 1000) }
        ops.append(put(50, "k", "p", 0, 1000))
        ops.append(get(99, "k", "p<99>", 2000, 2001))
        #expect(LinearizabilityChecker.check(ops, timeout: .milliseconds(50)) == .timedOut)
    }
}

// MARK: - HistoryRecorder

@Suite struct HistoryRecorderTests {
    @Test func recordsTimesAndOutcomes() {
        let r = HistoryRecorder()
        let t1 = r.begin(clientID: 1, kind: .put, key: Array("k".utf8), value: Array("v".utf8))
        let t2 = r.begin(clientID: 2, kind: .get, key: Array("k".utf8))
        r.end(t1)
        let t3 = r.begin(clientID: 3, kind: .append, key: Array("k".utf8), value: Array("w".utf8))
        r.end(t2, output: .value(Array("v".utf8)))
        r.endUnknown(t3)
        _ = r.begin(clientID: 4, kind: .delete, key: Array("k".utf8))  // never ended
        let ops = r.operations
        #expect(ops.count == 4)
        #expect(ops[0].outcome == .ok && ops[1].outcome == .ok)
        #expect(ops[2].outcome == .unknown && ops[3].outcome == .unknown)
        #expect(ops[0].call <= ops[1].call && ops[1].call <= ops[0].return)
        #expect(ops[0].return <= ops[2].call)
        #expect(ops.allSatisfy { $0.call <= $0.return })
        #expect(LinearizabilityChecker.check(ops) == .linearizable)
    }

    /// Clerks on several threads against a lock-protected in-memory store: the recorded
    /// history must be linearizable.
    @Test func concurrentClerksAgainstAtomicStore() {
        final class Store: @unchecked Sendable {
            let queue = DispatchQueue(label: "store")
            var data: [[UInt8]: [UInt8]] = [:]
            func apply(_ kind: Operation.Kind, _ key: [UInt8], _ value: [UInt8]) -> Operation.Output {
                queue.sync {
                    switch kind {
                    case .get: return data[key].map { .value($0) } ?? .missing
                    case .put: data[key] = value; return .none
                    case .append: data[key, default: []] += value; return .none
                    case .delete: return .existed(data.removeValue(forKey: key) != nil)
                    }
                }
            }
        }
        let store = Store()
        let recorder = HistoryRecorder()
        let clients = 8
        DispatchQueue.concurrentPerform(iterations: clients) { c in
            var rng = SeededGenerator(seed: UInt64(c) + 1)
            for i in 0..<300 {
                let key = Array("k\(Int.random(in: 0..<3, using: &rng))".utf8)
                let kind: Operation.Kind = [.get, .get, .put, .append, .append, .delete].randomElement(using: &rng)!
                let value = Array("x \(c) \(i) y".utf8)
                let token = recorder.begin(clientID: c, kind: kind, key: key, value: value)
                let output = store.apply(kind, key, value)
                if i % 50 == 49 && kind != .get {
                    recorder.endUnknown(token)  // pretend the answer got lost
                } else {
                    recorder.end(token, output: output)
                }
            }
        }
        let ops = recorder.operations
        #expect(ops.count == clients * 300)
        let clock = ContinuousClock()
        var result = CheckResult.timedOut
        let elapsed = clock.measure { result = LinearizabilityChecker.check(ops, timeout: .seconds(30)) }
        print("recorded history: \(ops.count) ops, 3 keys, \(clients) threads: \(result) in \(elapsed)")
        #expect(result == .linearizable)
    }
}

// MARK: - Randomized histories

/// Random histories from a real sequential execution: each client issues operations one at a
/// time; each operation takes effect at a random point strictly inside its interval, and the
/// outputs come from applying operations in order of those points.
struct HistoryGenerator {
    var clients = 5
    var opsPerClient = 40
    var keys = ["a", "b", "c"]
    /// Relative weights of get, put, append, delete.
    var weights = (get: 4, put: 1, append: 4, delete: 1)
    /// Probability that a put/append/delete (or get) ends with unknown outcome.
    var unknownRate = 0.03
    var maxDuration: UInt64 = 50_000
    var maxGap: UInt64 = 5_000

    func generate(seed: UInt64) -> [Operation] {
        var rng = SeededGenerator(seed: seed)
        struct Pending {
            var op: Operation
            var at: UInt64
            var takesEffect: Bool
        }
        var pending: [Pending] = []
        let total = weights.get + weights.put + weights.append + weights.delete
        for c in 0..<clients {
            var t = UInt64.random(in: 0...maxGap, using: &rng)
            for i in 0..<opsPerClient {
                let d = UInt64.random(in: 2...maxDuration, using: &rng)
                let call = t
                let ret = t + d
                let at = call + UInt64.random(in: 1..<d, using: &rng)
                t = ret + UInt64.random(in: 1...maxGap, using: &rng)
                let w = Int.random(in: 0..<total, using: &rng)
                let kind: Operation.Kind =
                    w < weights.get ? .get
                    : w < weights.get + weights.put ? .put
                    : w < weights.get + weights.put + weights.append ? .append : .delete
                let key = keys.randomElement(using: &rng)!
                let unknown = Double.random(in: 0..<1, using: &rng) < unknownRate
                let value = kind == .put || kind == .append ? AppendElement.bytes(clientID: c, index: i) : []
                let op = Operation(
                    clientID: c, kind: kind, key: Array(key.utf8), value: value,
                    call: call, return: ret, outcome: unknown ? .unknown : .ok)
                pending.append(Pending(op: op, at: at, takesEffect: !unknown || Bool.random(using: &rng)))
            }
        }
        pending.sort { $0.at < $1.at }
        var state: [[UInt8]: [UInt8]] = [:]
        var ops: [Operation] = []
        for p in pending {
            var op = p.op
            if p.takesEffect {
                switch op.kind {
                case .get: op.output = state[op.key].map { .value($0) } ?? .missing
                case .put: state[op.key] = op.value
                case .append: state[op.key, default: []] += op.value
                case .delete: op.output = .existed(state.removeValue(forKey: op.key) != nil)
                }
            }
            ops.append(op)
        }
        ops.shuffle(using: &rng)
        return ops
    }
}

@Suite struct RandomizedHistories {
    @Test func generatedHistoriesAreLinearizable() {
        let gen = HistoryGenerator()
        for seed in UInt64(1)...40 {
            let ops = gen.generate(seed: seed)
            let r = check(ops)
            #expect(r == .linearizable, "seed \(seed): \(r)")
        }
    }

    @Test func corruptedGetIsDetected() {
        let gen = HistoryGenerator()
        var rng = SeededGenerator(seed: 99)
        var detectedRealistic = 0
        var trials = 0
        for seed in UInt64(1)...40 {
            var ops = gen.generate(seed: seed)
            let gets = ops.indices.filter { ops[$0].kind == .get && ops[$0].outcome == .ok }
            guard let g = gets.randomElement(using: &rng) else { continue }
            let key = ops[g].key

            // A value nobody ever wrote: must always be detected.
            var bogus = ops
            bogus[g].output = .value(Array("bogus".utf8))
            let r = check(bogus)
            #expect(r == .notLinearizable(key: key, explanation: r.description), "seed \(seed)")

            // A value this key really had at some other time, or missing: usually detected.
            let otherOutputs = Set(gets.filter { ops[$0].key == key }.map { ops[$0].output })
                .union([.missing]).subtracting([ops[g].output])
            if let other = otherOutputs.sorted(by: { "\($0)" < "\($1)" }).randomElement(using: &rng) {
                ops[g].output = other
                trials += 1
                if case .notLinearizable = check(ops) { detectedRealistic += 1 }
            }
        }
        print("realistic get corruption detected in \(detectedRealistic)/\(trials) histories")
        #expect(detectedRealistic * 2 > trials)
    }

    @Test func corruptedConstructedCasesAreDetected() {
        // Sequential history with a deterministic mutation: the read at the end sees an older
        // value; each variant must be caught.
        var ops: [Operation] = []
        var t: UInt64 = 0
        for i in 0..<50 {
            ops.append(app(i % 5, "k", "<\(i)>", t, t + 10))
            t += 20
        }
        let full = (0..<50).map { "<\($0)>" }.joined()
        #expect(check(ops + [get(9, "k", full, t, t + 10)]) == .linearizable)
        _ = expectViolation(ops + [get(9, "k", String(full.dropLast(4)), t, t + 10)], key: "k")
        _ = expectViolation(ops + [get(9, "k", nil, t, t + 10)], key: "k")
        var swapped = (0..<50).map { "<\($0)>" }
        swapped.swapAt(10, 11)
        _ = expectViolation(ops + [get(9, "k", swapped.joined(), t, t + 10)], key: "k")
    }
}

// MARK: - Performance (prints timings; no assertions on time)

@Suite struct CheckerPerformance {
    /// `expect` nil: the search may time out (known hard case), but must not report a violation.
    static func measure(_ label: String, _ ops: [Operation], expect: Bool?, timeout: Duration = .seconds(15)) {
        let clock = ContinuousClock()
        var result = CheckResult.timedOut
        let elapsed = clock.measure { result = LinearizabilityChecker.check(ops, timeout: timeout) }
        let verdict = result.isLinearizable ? "linearizable" : result == .timedOut ? "timed out" : "not linearizable"
        print("PERF \(label): \(ops.count) ops -> \(verdict) in \(elapsed)")
        if let expect {
            #expect(result.isLinearizable == expect, "\(label): \(result)")
        } else {
            #expect(result == .linearizable || result == .timedOut, "\(label): \(result)")
        }
    }

    @Test func largeHistories() {
        var gen = HistoryGenerator()
        gen.clients = 15
        gen.opsPerClient = 67
        gen.keys = ["k"]
        gen.unknownRate = 0
        gen.weights = (get: 4, put: 1, append: 4, delete: 1)
        for seed in UInt64(1)...3 {
            // Known hard case: many overlapping puts/deletes at 15-way concurrency.
            Self.measure(
                "1 key, 15 clients, 40% get/10% put/40% append/10% delete, seed \(seed)",
                gen.generate(seed: seed), expect: nil, timeout: .seconds(3))
        }
        gen.clients = 5
        gen.opsPerClient = 200
        Self.measure("1 key, 5 clients, 40% get/10% put/40% append/10% delete", gen.generate(seed: 1), expect: true)
        gen.clients = 15
        gen.opsPerClient = 67

        gen.weights = (get: 1, put: 0, append: 1, delete: 0)
        for seed in UInt64(1)...3 {
            Self.measure("1 key, 15 clients, 50% append/50% get, seed \(seed)", gen.generate(seed: seed), expect: true)
        }

        gen.unknownRate = 0.05
        Self.measure("1 key, 15 clients, append/get, 5% unknown outcome", gen.generate(seed: 7), expect: true)

        gen.weights = (get: 1, put: 0, append: 3, delete: 0)
        gen.unknownRate = 0
        Self.measure("1 key, 15 clients, 75% append/25% get", gen.generate(seed: 8), expect: true)

        gen.weights = (get: 4, put: 1, append: 4, delete: 1)
        gen.keys = (0..<10).map { "key\($0)" }
        gen.opsPerClient = 667
        Self.measure("10 keys, 15 clients, ~10k ops", gen.generate(seed: 11), expect: true)

        // Non-linearizable: corrupt the last completed get of a 1,000-op append history.
        gen.keys = ["k"]
        gen.opsPerClient = 67
        gen.weights = (get: 1, put: 0, append: 1, delete: 0)
        var ops = gen.generate(seed: 2)
        let last = ops.indices.filter { ops[$0].kind == .get }.max { ops[$0].call < ops[$1].call }!
        ops[last].output = .value(Array("bogus".utf8))
        Self.measure("1 key, 15 clients, append/get, last get corrupted", ops, expect: false)
    }
}

// MARK: - Exactly-once appends

@Suite struct AppendsExactlyOnce {
    func value(_ elements: [(Int, Int)]) -> [UInt8] {
        elements.flatMap { AppendElement.bytes(clientID: $0.0, index: $0.1) }
    }

    let appends: [Int: [AppendAttempt]] = [
        0: [AppendAttempt(index: 0, acknowledged: true), AppendAttempt(index: 1, acknowledged: true)],
        1: [
            AppendAttempt(index: 0, acknowledged: true), AppendAttempt(index: 1, acknowledged: false),
            AppendAttempt(index: 2, acknowledged: true),
        ],
    ]

    @Test func elementFormat() {
        #expect(AppendElement.make(clientID: 3, index: 7) == "x 3 7 y")
        guard case .success(let els) = AppendElement.parse(Array("x 3 7 yx 10 0 y".utf8)) else {
            Issue.record("parse failed")
            return
        }
        #expect(els.map(\.clientID) == [3, 10] && els.map(\.index) == [7, 0])
        guard case .failure = AppendElement.parse(Array("x 3 7 yx 1".utf8)) else {
            Issue.record("truncated element accepted")
            return
        }
    }

    @Test func acceptsInterleavingsWithOrWithoutUnacknowledged() {
        let check = LinearizabilityChecker.checkAppendsExactlyOnce
        #expect(check(value([(0, 0), (1, 0), (1, 1), (0, 1), (1, 2)]), appends) == .ok)
        #expect(check(value([(1, 0), (0, 0), (1, 2), (0, 1)]), appends) == .ok)
    }

    @Test func detectsDuplicates() {
        let r = LinearizabilityChecker.checkAppendsExactlyOnce(
            finalValue: value([(0, 0), (1, 0), (0, 0), (0, 1), (1, 2)]), appends: appends)
        #expect(r != .ok)
        #expect(r.description.contains("\"x 0 0 y\" appears more than once"))
        // Unacknowledged elements may appear at most once too.
        let r2 = LinearizabilityChecker.checkAppendsExactlyOnce(
            finalValue: value([(0, 0), (1, 0), (1, 1), (1, 1), (0, 1), (1, 2)]), appends: appends)
        #expect(r2.description.contains("\"x 1 1 y\" appears more than once"))
    }

    @Test func detectsMissingAcknowledged() {
        let r = LinearizabilityChecker.checkAppendsExactlyOnce(
            finalValue: value([(0, 0), (1, 0), (0, 1)]), appends: appends)
        #expect(r.description.contains("acknowledged element \"x 1 2 y\" is missing"))
        #expect(!r.description.contains("x 1 1 y"))  // unacknowledged: fine to be missing
    }

    @Test func detectsReorder() {
        let r = LinearizabilityChecker.checkAppendsExactlyOnce(
            finalValue: value([(0, 0), (1, 2), (1, 0), (0, 1)]), appends: appends)
        #expect(r.description.contains("client 1's elements are out of order"))
    }

    @Test func detectsForeignAndMalformed() {
        let r = LinearizabilityChecker.checkAppendsExactlyOnce(
            finalValue: value([(0, 0), (1, 0), (0, 1), (1, 2), (5, 5)]), appends: appends)
        #expect(r.description.contains("\"x 5 5 y\" at position 4 was never appended"))
        let r2 = LinearizabilityChecker.checkAppendsExactlyOnce(
            finalValue: value([(0, 0)]) + Array("garbage".utf8), appends: appends)
        #expect(r2.description.contains("malformed"))
    }
}
