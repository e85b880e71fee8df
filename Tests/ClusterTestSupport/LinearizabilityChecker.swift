import Raft
import SeededRandom
// LinearizabilityChecker: decides whether a concurrent key/value history is linearizable.
//
// The history is split by key (operations on different keys commute, and linearizability is
// compositional: a history is linearizable iff each key's sub-history is). Each key's
// sub-history is searched with the Wing & Gong algorithm as improved by Lowe (and as done in
// Porcupine): call/return events in one time-ordered doubly linked list; the search repeatedly
// takes the earliest pending call, applies it to the model, "lifts" it (and its return) out of
// the list and restarts from the head; reaching a return event means that operation was not
// linearized before it returned, so the search backtracks. A memo cache of
// (set of linearized operations, model state) pairs prunes re-exploration of equivalent
// configurations; the set is a bitset with a Zobrist hash kept incrementally, and model
// states are interned to small integers (see KVModel.swift).
//
// Time: operation A precedes B iff A.return < B.call; equal timestamps count as concurrent.
// An operation with unknown outcome has no return event (return = +infinity) and an
// unconstrained output; it may take effect anywhere after its call, or never: the search
// succeeds once every completed operation is linearized. Unknown-outcome gets are dropped.

public enum CheckResult: Sendable, Equatable, CustomStringConvertible {
    case linearizable
    /// `key` is the first key (in order of first appearance) whose history is not linearizable.
    case notLinearizable(key: [UInt8], explanation: String)
    /// The time budget ran out before every key was decided (and no violation was found).
    case timedOut

    public var isLinearizable: Bool { self == .linearizable }

    public var description: String {
        switch self {
        case .linearizable: return "linearizable"
        case .timedOut: return "timed out"
        case .notLinearizable(_, let explanation): return explanation
        }
    }
}

public enum LinearizabilityChecker {
    /// Checks `ops` (any order) for linearizability against the key/value model.
    /// `timeout` bounds the whole check; nil means no bound.
    public static func check(_ ops: [Operation], timeout: Duration? = nil) -> CheckResult {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        var byKey: [[UInt8]: [Operation]] = [:]
        var keyOrder: [[UInt8]] = []
        for op in ops {
            if op.kind == .get && op.outcome == .unknown { continue }  // no effect, no constraint
            if byKey[op.key] == nil { keyOrder.append(op.key) }
            byKey[op.key, default: []].append(op)
        }
        for key in keyOrder {
            var search = KeySearch(ops: byKey[key]!)
            switch search.run(deadline: deadline) {
            case .linearizable: continue
            case .timedOut: return .timedOut
            case .stuck(let path): return .notLinearizable(key: key, explanation: search.explain(key: key, path: path))
            }
        }
        return .linearizable
    }
}

/// Wing–Gong–Lowe search over one key's operations.
struct KeySearch {
    enum Outcome {
        case linearizable
        case timedOut
        /// Not linearizable; carries the longest partial linearization found (op indices).
        case stuck([Int])
    }

    var model: KVKeyModel
    var ops: [Operation] { model.ops }
    private let n: Int
    // Entry list: index 0 is the head sentinel; entries 1... are events in time order.
    private var next: [Int32]
    private var prev: [Int32]
    private var entryOp: [Int32]
    private var entryIsCall: [Bool]
    private var returnEntry: [Int32]  // per op; -1 for unknown outcome (no return event)
    private var zobrist: [UInt64]
    private(set) var explored = 0

    init(ops: [Operation]) {
        model = KVKeyModel(ops: ops)
        n = ops.count
        // (time, isReturn, op): calls sort before returns at equal times (=> concurrent).
        var events: [(UInt64, Bool, Int32)] = []
        events.reserveCapacity(2 * n)
        for (i, op) in ops.enumerated() {
            events.append((op.call, false, Int32(i)))
            if op.outcome == .ok { events.append((max(op.call, op.return), true, Int32(i))) }
        }
        events.sort { a, b in
            if a.0 != b.0 { return a.0 < b.0 }
            if a.1 != b.1 { return !a.1 }
            return a.2 < b.2
        }
        let e = events.count
        next = (0...e).map { $0 == e ? -1 : Int32($0 + 1) }
        prev = (0...e).map { Int32($0 - 1) }
        entryOp = [-1] + events.map { $0.2 }
        entryIsCall = [false] + events.map { !$0.1 }
        returnEntry = Array(repeating: -1, count: n)
        for (k, ev) in events.enumerated() where ev.1 { returnEntry[Int(ev.2)] = Int32(k + 1) }
        var rng = SeededGenerator(seed: 0x5EED_1234_ABCD_0001)
        zobrist = (0..<n).map { _ in rng.next() }
    }

    private mutating func unlink(_ e: Int32) {
        let p = prev[Int(e)], q = next[Int(e)]
        next[Int(p)] = q
        if q >= 0 { prev[Int(q)] = p }
    }

    private mutating func relink(_ e: Int32) {
        let p = prev[Int(e)], q = next[Int(e)]
        next[Int(p)] = e
        if q >= 0 { prev[Int(q)] = e }
    }

    /// Removes op's call entry (and its return entry, if any) from the list.
    private mutating func lift(_ callEntry: Int32) {
        unlink(callEntry)
        let r = returnEntry[Int(entryOp[Int(callEntry)])]
        if r >= 0 { unlink(r) }
    }

    /// Undoes `lift` (must be done in reverse order of lifting).
    private mutating func unlift(_ callEntry: Int32) {
        let r = returnEntry[Int(entryOp[Int(callEntry)])]
        if r >= 0 { relink(r) }
        relink(callEntry)
    }

    // Reset ops (puts, and deletes that may remove something), ranked by call time, for the
    // append-prefix pruning rule below.
    private var resetRank: [Int] = []
    private var resetsBeforeReturn: [Int] = []  // per op: resets with call <= its return
    private var resetDone: [Bool] = []
    private var resetOps: [Int] = []
    private var firstPendingReset = 0
    // Completed gets ranked by call time, for looking ahead at the next few pending ones.
    private var getRank: [Int] = []
    private var getsByCall: [Int] = []
    private var getDone: [Bool] = []
    private var firstPendingGet = 0
    private static let lookahead = 8

    private mutating func prepareResets() {
        resetOps = (0..<n).filter { model.resets[$0] }.sorted { (ops[$0].call, $0) < (ops[$1].call, $1) }
        getsByCall = (0..<n).filter { ops[$0].kind == .get && ops[$0].outcome == .ok }
            .sorted { (ops[$0].call, $0) < (ops[$1].call, $1) }
        getRank = Array(repeating: -1, count: n)
        for (r, i) in getsByCall.enumerated() { getRank[i] = r }
        getDone = Array(repeating: false, count: getsByCall.count)
        firstPendingGet = 0
        resetRank = Array(repeating: -1, count: n)
        for (r, i) in resetOps.enumerated() { resetRank[i] = r }
        let calls = resetOps.map { ops[$0].call }
        resetsBeforeReturn = ops.map { op in
            // Number of reset calls <= op.return (binary search).
            var lo = 0, hi = calls.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if calls[mid] <= op.return { lo = mid + 1 } else { hi = mid }
            }
            return lo
        }
        resetDone = Array(repeating: false, count: resetOps.count)
        firstPendingReset = 0
    }

    private mutating func noteLinearized(_ op: Int) {
        let g = getRank[op]
        if g >= 0 {
            getDone[g] = true
            while firstPendingGet < getDone.count && getDone[firstPendingGet] { firstPendingGet += 1 }
        }
        let r = resetRank[op]
        guard r >= 0 else { return }
        resetDone[r] = true
        while firstPendingReset < resetDone.count && resetDone[firstPendingReset] { firstPendingReset += 1 }
    }

    private mutating func noteUnlinearized(_ op: Int) {
        let g = getRank[op]
        if g >= 0 {
            getDone[g] = false
            firstPendingGet = min(firstPendingGet, g)
        }
        let r = resetRank[op]
        guard r >= 0 else { return }
        resetDone[r] = false
        firstPendingReset = min(firstPendingReset, r)
    }

    /// Can pending completed get `g` still return what it did, starting from `state`? Only
    /// ops called before g returned can come before it: appends extend the state; a put
    /// replaces it by its value; a delete by missing. False means certainly not.
    private mutating func getStillPossible(_ state: Int32, _ g: Int) -> Bool {
        if model.appendsCanReach(state, get: g) { return true }
        var r = firstPendingReset
        let limit = resetsBeforeReturn[g]
        while r < limit {
            if !resetDone[r] {
                let op = resetOps[r]
                if ops[op].kind == .delete || model.appendsCanReach(model.putState(op), get: g) { return true }
            }
            r += 1
        }
        return false
    }

    /// The candidates to try from a configuration, best first; empty if it is dead.
    ///
    /// Candidates are the pending calls before the first pending return event (just-in-time
    /// linearization: an operation that returned must be linearized before anything called
    /// after its return).
    ///
    /// Dead: one of the pending completed gets (the candidates, and the next few by call
    /// time) can no longer return what it did (`getStillPossible`).
    ///
    /// Forced: if a candidate is read-only (get; delete that found nothing) and its output
    /// matches the state, it is the only candidate. Any valid continuation can be reordered to
    /// take it first: it does not change the state, and no pending operation must precede it
    /// in real time since its call is before every pending return.
    ///
    /// Order (a heuristic; the search stays exhaustive): candidates that keep more pending gets
    /// satisfiable come first (see the scoring below), ties by call time.
    private mutating func candidates(_ state: Int32) -> [Int32] {
        var window: [Int32] = []
        var firstDeadlineGet = -1
        var e = next[0]
        while e >= 0 && entryIsCall[Int(e)] {
            let op = Int(entryOp[Int(e)])
            if model.readOnly[op] {
                if model.step(state, op) != nil { return [e] }
                if ops[op].kind == .get {
                    if !getStillPossible(state, op) { return [] }
                }
            } else {
                window.append(e)
            }
            e = next[Int(e)]
        }
        if e >= 0 {
            let op = Int(entryOp[Int(e)])
            if ops[op].kind == .get { firstDeadlineGet = op }
        }
        var checked = 0
        var p = firstPendingGet
        while p < getsByCall.count && checked < Self.lookahead {
            if !getDone[p] {
                checked += 1
                if !getStillPossible(state, getsByCall[p]) { return [] }
            }
            p += 1
        }
        if window.count <= 1 { return window }
        // Score each candidate by the pending gets (candidates and lookahead) it keeps in reach:
        // +2 for each whose output it produces, +1 for each still reachable by appends alone.
        var goals: [Int] = []
        e = next[0]
        while e >= 0 && entryIsCall[Int(e)] {
            let op = Int(entryOp[Int(e)])
            if ops[op].kind == .get && ops[op].outcome == .ok { goals.append(op) }
            e = next[Int(e)]
        }
        if firstDeadlineGet >= 0 { goals.append(firstDeadlineGet) }
        checked = 0
        p = firstPendingGet
        while p < getsByCall.count && checked < Self.lookahead {
            if !getDone[p] {
                checked += 1
                goals.append(getsByCall[p])
            }
            p += 1
        }
        var scored: [(score: Int, order: Int, entry: Int32)] = []
        scored.reserveCapacity(window.count)
        for (i, c) in window.enumerated() {
            let op = Int(entryOp[Int(c)])
            guard let ns = model.step(state, op) else { continue }
            var score = 0
            for g in goals {
                if model.step(ns, g) != nil {
                    score += 2
                } else if model.appendsCanReach(ns, get: g) {
                    score += 1
                }
            }
            scored.append((score, i, c))
        }
        return scored.sorted { ($1.score, $0.order) < ($0.score, $1.order) }.map(\.entry)
    }

    mutating func run(deadline: ContinuousClock.Instant?) -> Outcome {
        prepareResets()
        let words = (n + 63) / 64
        var bits = [UInt64](repeating: 0, count: words)
        var bitsHash: UInt64 = 0
        var cache = MemoCache(words: words)
        // One node per linearized operation (plus the root): the call entry lifted to reach
        // it, the state there, and its remaining candidates.
        struct Node {
            var via: Int32
            var state: Int32
            var candidates: [Int32]
            var cursor = 0
        }
        var remaining = ops.reduce(0) { $0 + ($1.outcome == .ok ? 1 : 0) }
        var stack = [Node(via: -1, state: KVStateTable.missing, candidates: [])]
        stack[0].candidates = candidates(KVStateTable.missing)
        var best: [Int] = []
        var steps = 0

        while remaining > 0 {
            steps &+= 1
            if steps & 0xFFF == 0, let deadline, ContinuousClock.now >= deadline { return .timedOut }
            let top = stack.count - 1
            if stack[top].cursor < stack[top].candidates.count {
                let c = stack[top].candidates[stack[top].cursor]
                stack[top].cursor += 1
                let op = Int(entryOp[Int(c)])
                guard let newState = model.step(stack[top].state, op) else { continue }
                bits[op >> 6] |= 1 << UInt64(op & 63)
                bitsHash ^= zobrist[op]
                if cache.insertIfAbsent(hash: bitsHash, bits: bits, state: newState) {
                    explored += 1
                    lift(c)
                    noteLinearized(op)
                    if ops[op].outcome == .ok { remaining -= 1 }
                    stack.append(Node(via: c, state: newState, candidates: []))
                    stack[top + 1].candidates = candidates(newState)
                } else {
                    bits[op >> 6] &= ~(1 << UInt64(op & 63))
                    bitsHash ^= zobrist[op]
                }
            } else {
                // Every candidate failed: backtrack.
                if stack.count - 1 > best.count { best = stack.dropFirst().map { Int(entryOp[Int($0.via)]) } }
                let node = stack.removeLast()
                if stack.isEmpty { return .stuck(best) }
                let op = Int(entryOp[Int(node.via)])
                bits[op >> 6] &= ~(1 << UInt64(op & 63))
                bitsHash ^= zobrist[op]
                unlift(node.via)
                noteUnlinearized(op)
                if ops[op].outcome == .ok { remaining += 1 }
            }
        }
        return .linearizable
    }

    /// Human-readable account of where linearization fails, given the longest partial
    /// linearization found.
    mutating func explain(key: [UInt8], path: [Int]) -> String {
        let origin = ops.map(\.call).min() ?? 0
        var state = KVStateTable.missing
        for i in path { state = model.step(state, i) ?? state }
        var inPath = [Bool](repeating: false, count: n)
        for i in path { inPath[i] = true }
        let completed = ops.indices.filter { ops[$0].outcome == .ok }
        let doneCount = path.filter { ops[$0].outcome == .ok }.count

        var out = "history of key \(renderBytes(key)) is not linearizable "
        out += "(\(n) operations on this key; times in µs relative to t0 = \(origin) ns).\n"
        out += "Longest linearizable prefix found: \(path.count) operations"
        out += " (\(doneCount) of \(completed.count) completed ones), in linearization order:\n"
        let shown = 12
        if path.count > shown { out += "  … \(path.count - shown) earlier operations\n" }
        for (pos, i) in path.enumerated().suffix(shown) {
            out += "  #\(pos + 1) \(ops[i].describe(origin: origin))\n"
        }
        out += "Value after that prefix: \(model.table.render(state))\n"

        // The deadline: the remaining completed operation that returns first.
        let pending = completed.filter { !inPath[$0] }
        guard let deadline = pending.min(by: { (ops[$0].return, $0) < (ops[$1].return, $1) }) else {
            return out
        }
        let deadlineTime = max(ops[deadline].call, ops[deadline].return)
        out += "Next, \(ops[deadline].describe(origin: origin)) must take effect before it returns,"
        out += " but no pending operation can be linearized next:\n"
        let candidates = ops.indices.filter { !inPath[$0] && ops[$0].call <= deadlineTime }
            .sorted { (ops[$0].call, $0) < (ops[$1].call, $1) }
        for c in candidates.prefix(20) {
            let why =
                model.whyImpossible(state, c)
                ?? "could take effect here, but every continuation from there fails"
            out += "  \(ops[c].describe(origin: origin))\n      ✗ \(why)\n"
        }
        if candidates.count > 20 { out += "  … \(candidates.count - 20) more\n" }

        // The sub-history around the failure point.
        let windowStart = candidates.filter { ops[$0].outcome == .ok }.map { ops[$0].call }.min() ?? deadlineTime
        let window = ops.indices.filter { i in
            let end = ops[i].outcome == .ok ? max(ops[i].call, ops[i].return) : UInt64.max
            return ops[i].call <= deadlineTime && end >= windowStart
        }.sorted { (ops[$0].call, $0) < (ops[$1].call, $1) }
        out += "Sub-history overlapping [\(renderTime(windowStart, origin: origin)), "
        out += "\(renderTime(deadlineTime, origin: origin))] (✓ = in the prefix above):\n"
        let maxWindow = 40
        for i in window.suffix(maxWindow) {
            out += "  \(inPath[i] ? "✓" : " ") \(ops[i].describe(origin: origin))\n"
        }
        if window.count > maxWindow { out += "  (\(window.count - maxWindow) earlier overlapping operations omitted)\n" }
        return out
    }
}

/// Set of (linearized-set bitset, state) pairs: chained hash table over flat storage.
struct MemoCache {
    private let words: Int
    private var heads: [Int32]
    private var mask: Int
    private var storage: [UInt64] = []
    private var states: [Int32] = []
    private var hashes: [UInt64] = []
    private var chain: [Int32] = []

    init(words: Int) {
        self.words = max(words, 1)
        heads = [Int32](repeating: -1, count: 1024)
        mask = 1023
    }

    var count: Int { states.count }

    private static func mix(_ h: UInt64, _ state: Int32) -> UInt64 {
        var x = h ^ (UInt64(UInt32(bitPattern: state)) &* 0x9E37_79B9_7F4A_7C15)
        x = (x ^ (x >> 31)) &* 0xBF58_476D_1CE4_E5B9
        return x ^ (x >> 29)
    }

    /// Inserts the pair; returns false if it was already present.
    mutating func insertIfAbsent(hash bitsHash: UInt64, bits: [UInt64], state: Int32) -> Bool {
        let h = Self.mix(bitsHash, state)
        var e = heads[Int(truncatingIfNeeded: h) & mask]
        while e >= 0 {
            let ei = Int(e)
            if hashes[ei] == h && states[ei] == state {
                let base = ei * words
                var same = true
                for w in 0..<bits.count where storage[base + w] != bits[w] {
                    same = false
                    break
                }
                if same { return false }
            }
            e = chain[ei]
        }
        let id = Int32(states.count)
        storage.append(contentsOf: bits)
        if bits.count < words { storage.append(contentsOf: repeatElement(0, count: words - bits.count)) }
        states.append(state)
        hashes.append(h)
        let slot = Int(truncatingIfNeeded: h) & mask
        chain.append(heads[slot])
        heads[slot] = id
        if states.count > heads.count { grow() }
        return true
    }

    private mutating func grow() {
        let size = heads.count * 2
        heads = [Int32](repeating: -1, count: size)
        mask = size - 1
        for i in 0..<states.count {
            let slot = Int(truncatingIfNeeded: hashes[i]) & mask
            chain[i] = heads[slot]
            heads[slot] = Int32(i)
        }
    }
}

