// KVModel: the sequential specification of one key, with states interned so that the
// checker's memo cache can key on a small integer.
//
// State of a key: missing, or present with a byte value (an empty value is present).
//   get:    output must equal the state (.missing <-> missing)
//   put:    state = value
//   append: state = (state ?? []) + value
//   delete: output existed == (state != nil); state = missing
// Operations with unknown outcome have unconstrained output.

/// Interned key states. Id 0 is "missing"; every other id is a distinct byte string, so two
/// states are equal iff their ids are equal. Appends are hashed incrementally
/// (polynomial hash: H(s + v) = H(s) * B^|v| + H(v)) and memoized per (state, op).
struct KVStateTable {
    static let missing: Int32 = 0
    private static let base: UInt64 = 0x100_0000_01b3  // odd multiplier (FNV prime)

    private(set) var values: [[UInt8]] = [[]]  // index 0 unused (missing)
    private var hashes: [UInt64] = [0]
    private var chain: [Int32] = [-1]  // next id with the same bucket key
    private var buckets: [UInt64: Int32] = [:]  // bucket key -> first id
    private var transitions: [UInt64: Int32] = [:]  // (state << 32 | op) -> append result

    static func hash(_ b: some Collection<UInt8>) -> UInt64 {
        var h: UInt64 = 0
        for x in b { h = h &* base &+ UInt64(x) &+ 1 }
        return h
    }

    static func power(_ n: Int) -> UInt64 {
        var r: UInt64 = 1
        var b = base
        var e = n
        while e > 0 {
            if e & 1 == 1 { r = r &* b }
            b = b &* b
            e >>= 1
        }
        return r
    }

    private static func bucketKey(hash: UInt64, count: Int) -> UInt64 {
        hash ^ (UInt64(count) &* 0x9E37_79B9_7F4A_7C15)
    }

    /// Id of the state with exactly these bytes.
    mutating func intern(_ bytes: [UInt8]) -> Int32 {
        let h = Self.hash(bytes)
        if let id = find(hash: h, count: bytes.count, matches: { values[Int($0)] == bytes }) { return id }
        return insert(bytes, hash: h)
    }

    /// Id of `state + suffix` (state may be missing, meaning empty). `suffixHash` is
    /// `hash(suffix)` and `suffixPower` is `power(suffix.count)`.
    mutating func appending(
        _ state: Int32, op: Int, suffix: [UInt8], suffixHash: UInt64, suffixPower: UInt64
    ) -> Int32 {
        let tkey = UInt64(UInt32(bitPattern: state)) << 32 | UInt64(UInt32(truncatingIfNeeded: op))
        if let r = transitions[tkey] { return r }
        let prefix = state == Self.missing ? [] : values[Int(state)]
        let prefixHash = state == Self.missing ? 0 : hashes[Int(state)]
        let h = prefixHash &* suffixPower &+ suffixHash
        let n = prefix.count + suffix.count
        let found = find(hash: h, count: n) { id in
            let v = values[Int(id)]
            return v[..<prefix.count].elementsEqual(prefix) && v[prefix.count...].elementsEqual(suffix)
        }
        let r = found ?? insert(prefix + suffix, hash: h)
        transitions[tkey] = r
        return r
    }

    private func find(hash h: UInt64, count: Int, matches: (Int32) -> Bool) -> Int32? {
        var id = buckets[Self.bucketKey(hash: h, count: count)] ?? -1
        while id >= 0 {
            if hashes[Int(id)] == h && values[Int(id)].count == count && matches(id) { return id }
            id = chain[Int(id)]
        }
        return nil
    }

    private mutating func insert(_ bytes: [UInt8], hash h: UInt64) -> Int32 {
        let id = Int32(values.count)
        let bk = Self.bucketKey(hash: h, count: bytes.count)
        values.append(bytes)
        hashes.append(h)
        chain.append(buckets[bk] ?? -1)
        buckets[bk] = id
        return id
    }

    func hash(of state: Int32) -> UInt64 { hashes[Int(state)] }

    /// hash(prefix of length l) for l in 0...count, for a present state.
    func prefixHashes(of state: Int32) -> [UInt64] {
        var out: [UInt64] = [0]
        let v = values[Int(state)]
        out.reserveCapacity(v.count + 1)
        var h: UInt64 = 0
        for x in v {
            h = h &* Self.base &+ UInt64(x) &+ 1
            out.append(h)
        }
        return out
    }

    func render(_ state: Int32) -> String {
        state == Self.missing ? "missing" : renderBytes(values[Int(state)])
    }
}

/// One key's history compiled against the model: per-operation step data.
struct KVKeyModel {
    var table = KVStateTable()
    let ops: [Operation]
    // Per op: the state a get must observe, or a put's resulting state.
    private var target: [Int32]
    private var suffixHash: [UInt64]
    private var suffixPower: [UInt64]
    private var prefixHashes: [[UInt64]]  // per interned state id, computed on demand
    /// Per op: a completed op that never changes the state (get; delete that found nothing).
    let readOnly: [Bool]
    /// Per op: may replace the state by something that does not extend it (put; delete).
    let resets: [Bool]

    init(ops: [Operation]) {
        self.ops = ops
        target = Array(repeating: -1, count: ops.count)
        suffixHash = Array(repeating: 0, count: ops.count)
        suffixPower = Array(repeating: 1, count: ops.count)
        readOnly = ops.map { op in
            op.outcome == .ok && (op.kind == .get || (op.kind == .delete && op.output == .existed(false)))
        }
        resets = ops.map { op in
            op.kind == .put || (op.kind == .delete && !(op.outcome == .ok && op.output == .existed(false)))
        }
        prefixHashes = []
        for (i, op) in ops.enumerated() {
            switch op.kind {
            case .get:
                switch op.output {
                case .value(let v): target[i] = table.intern(v)
                case .missing: target[i] = KVStateTable.missing
                default: target[i] = -1  // malformed get output: never matches
                }
            case .put:
                target[i] = table.intern(op.value)
            case .append:
                suffixHash[i] = KVStateTable.hash(op.value)
                suffixPower[i] = KVStateTable.power(op.value.count)
            case .delete:
                break
            }
        }
    }

    /// The state after applying op `i` to `state`, or nil if its output is impossible there.
    mutating func step(_ state: Int32, _ i: Int) -> Int32? {
        let op = ops[i]
        switch op.kind {
        case .get:
            if op.outcome == .unknown { return state }
            return target[i] == state ? state : nil
        case .put:
            return target[i]
        case .append:
            return table.appending(
                state, op: i, suffix: op.value, suffixHash: suffixHash[i], suffixPower: suffixPower[i])
        case .delete:
            if op.outcome == .ok {
                guard case .existed(let e) = op.output, e == (state != KVStateTable.missing) else { return nil }
            }
            return KVStateTable.missing
        }
    }

    /// The state a put establishes.
    func putState(_ i: Int) -> Int32 { target[i] }

    /// For a completed get `i`: could appends alone (no put or delete) take `state` to the
    /// value the get returned? False means certainly not; true may be a hash collision.
    mutating func appendsCanReach(_ state: Int32, get i: Int) -> Bool {
        let t = target[i]
        if t < 0 { return true }
        if t == KVStateTable.missing { return state == KVStateTable.missing }
        if state == KVStateTable.missing { return true }
        if Int(t) >= prefixHashes.count {
            prefixHashes.append(contentsOf: repeatElement([], count: Int(t) + 1 - prefixHashes.count))
        }
        if prefixHashes[Int(t)].isEmpty { prefixHashes[Int(t)] = table.prefixHashes(of: t) }
        let len = table.values[Int(state)].count
        let ph = prefixHashes[Int(t)]
        return len < ph.count && ph[len] == table.hash(of: state)
    }

    /// Why op `i` cannot be applied to `state`, if it cannot.
    func whyImpossible(_ state: Int32, _ i: Int) -> String? {
        let op = ops[i]
        switch op.kind {
        case .get where op.outcome == .ok:
            if target[i] == state { return nil }
            switch op.output {
            case .missing:
                return "get returned missing, but the value is \(table.render(state))"
            case .value(let v):
                if state == KVStateTable.missing {
                    return "get returned \(renderBytes(v)), but the key is missing"
                }
                let cur = table.values[Int(state)]
                let common = zip(v, cur).prefix { $0 == $1 }.count
                return "get returned \(renderBytes(v)), but the value is \(renderBytes(cur))"
                    + " (first difference at byte \(common); lengths \(v.count) vs \(cur.count))"
            default:
                return "get has a malformed output \(op.output)"
            }
        case .delete where op.outcome == .ok:
            guard case .existed(let e) = op.output else { return "delete has a malformed output \(op.output)" }
            let exists = state != KVStateTable.missing
            if e == exists { return nil }
            return "delete reported existed=\(e), but the key is \(exists ? "present" : "missing")"
        default:
            return nil
        }
    }
}
