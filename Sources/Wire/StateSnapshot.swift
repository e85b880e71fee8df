import CProtobufC
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One key and its value in a `StateSnapshot` (`kvraft.state.KeyValue`).
///
/// A state machine that keeps a large value in pieces hands them over as they are
/// (`init(key:valuePieces:)`): encoding copies them back to back into the output, so taking a
/// snapshot never joins a large value into one more copy of it. Pairs are equal when their
/// keys and value bytes are, however the bytes are split.
public struct KeyValuePair: Hashable, Sendable {
    public var key: [UInt8]
    private var pieces: Pieces

    private enum Pieces: Sendable {
        case one([UInt8])
        case several([[UInt8]])
    }

    public init(key: [UInt8], value: [UInt8]) {
        self.key = key
        pieces = .one(value)
    }

    /// A value that is the concatenation of `valuePieces`.
    public init(key: [UInt8], valuePieces: [[UInt8]]) {
        self.key = key
        pieces = valuePieces.count == 1 ? .one(valuePieces[0]) : .several(valuePieces)
    }

    /// The value's bytes (joined into one array if it is held in pieces).
    public var value: [UInt8] {
        get {
            switch pieces {
            case let .one(value): return value
            case let .several(list): return list.concatenated()
            }
        }
        set { pieces = .one(newValue) }
    }

    public var valueCount: Int {
        switch pieces {
        case let .one(value): return value.count
        case let .several(list): return list.reduce(0) { $0 + $1.count }
        }
    }

    /// Calls `body` with each piece of the value in order.
    public func forEachValuePiece(_ body: ([UInt8]) -> Void) {
        switch pieces {
        case let .one(value): body(value)
        case let .several(list): list.forEach(body)
        }
    }

    public static func == (a: KeyValuePair, b: KeyValuePair) -> Bool {
        a.key == b.key && a.value == b.value
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(key)
        hasher.combine(value)
    }
}

/// One open client session in a `StateSnapshot` (`kvraft.state.Session`): the client's last
/// seq, the reply status it got, whether it was a Get, and the log time it was last active.
///
/// `lastValue` is only ever set by snapshots written before kvd stopped keeping the last
/// Get's value: a session with a value was left by a Get.
public struct SessionRecord: Hashable, Sendable {
    public var clientID: UInt64
    public var lastSeq: UInt64
    public var lastStatus: Status
    public var lastValue: [UInt8]
    public var lastActiveMs: UInt64
    public var lastWasGet: Bool

    public init(clientID: UInt64, lastSeq: UInt64, lastStatus: Status, lastValue: [UInt8] = [], lastActiveMs: UInt64,
                lastWasGet: Bool = false) {
        self.clientID = clientID
        self.lastSeq = lastSeq
        self.lastStatus = lastStatus
        self.lastValue = lastValue
        self.lastActiveMs = lastActiveMs
        self.lastWasGet = lastWasGet
    }
}

/// One expired or evicted client in a `StateSnapshot` (`kvraft.state.Tombstone`), with the
/// log time it was removed and its session's last seq (0 in snapshots written before that
/// was kept: every seq is then refused).
public struct TombstoneRecord: Hashable, Sendable {
    public var clientID: UInt64
    public var atMs: UInt64
    public var lastSeq: UInt64

    public init(clientID: UInt64, atMs: UInt64, lastSeq: UInt64 = 0) {
        self.clientID = clientID
        self.atMs = atMs
        self.lastSeq = lastSeq
    }
}

/// The key/value state machine as of one log index (`kvraft.state.StateSnapshot`).
///
/// This type carries the fields and encodes them as they are; it checks nothing. The state
/// machine that writes a snapshot puts it in canonical order (pairs by key, see
/// `keyPrecedes`; sessions least recently active first; tombstones oldest first) and the
/// one that restores it checks that.
public struct StateSnapshot: Hashable, Sendable {
    public var appliedIndex: UInt64
    public var clockMs: UInt64
    public var pairs: [KeyValuePair]
    public var sessions: [SessionRecord]
    public var tombstones: [TombstoneRecord]
    /// The session table's limits; nil in snapshots written before they were replicated
    /// (`SessionLimits.defaults` then hold).
    public var limits: SessionLimits?

    public init(appliedIndex: UInt64 = 0, clockMs: UInt64 = 0, pairs: [KeyValuePair] = [],
                sessions: [SessionRecord] = [], tombstones: [TombstoneRecord] = [], limits: SessionLimits? = nil) {
        self.appliedIndex = appliedIndex
        self.clockMs = clockMs
        self.pairs = pairs
        self.sessions = sessions
        self.tombstones = tombstones
        self.limits = limits
    }
}

extension StateSnapshot {
    /// The canonical order of a snapshot's keys: bytes compared as unsigned numbers, first
    /// difference decides, a proper prefix first (`memcmp` order; the same order as
    /// `lexicographicallyPrecedes`).
    public static func keyPrecedes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        let common = min(a.count, b.count)
        let order: Int32 = common == 0 ? 0 : a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in memcmp(pa.baseAddress!, pb.baseAddress!, common) }
        }
        return order != 0 ? order < 0 : a.count < b.count
    }

    /// Sorts `pairs` into canonical order (`keyPrecedes`): O(n log n) comparisons, most of
    /// them between two integers held in a compact array rather than between two keys
    /// scattered over the heap. The bytes every key shares say nothing about the order, so
    /// each key is summarized by the 16 bytes after them (big-endian, zero-padded, which
    /// orders like the keys do); only keys that tie on those are compared in full.
    public mutating func sortPairsByKey() {
        guard pairs.count > 1 else { return }
        let shared = Self.sharedPrefixCount(pairs)
        struct Entry {
            var high: UInt64
            var low: UInt64
            var index: Int
        }
        var entries: [Entry] = []
        entries.reserveCapacity(pairs.count)
        for (index, pair) in pairs.enumerated() {
            entries.append(Entry(high: Self.word(pair.key, at: shared), low: Self.word(pair.key, at: shared + 8), index: index))
        }
        let unsorted = pairs
        unsorted.withUnsafeBufferPointer { pairs in
            entries.sort { a, b in
                if a.high != b.high { return a.high < b.high }
                if a.low != b.low { return a.low < b.low }
                return Self.keyPrecedes(pairs[a.index].key, pairs[b.index].key)
            }
        }
        pairs = entries.map { unsorted[$0.index] }
    }

    /// How many leading bytes all keys have in common.
    private static func sharedPrefixCount(_ pairs: [KeyValuePair]) -> Int {
        let first = pairs[0].key
        var shared = first.count
        for pair in pairs.dropFirst() where shared > 0 {
            let key = pair.key
            var i = 0
            let limit = min(shared, key.count)
            while i < limit && key[i] == first[i] { i += 1 }
            shared = i
        }
        return shared
    }

    /// Bytes `offset..<offset + 8` of `key` as a big-endian integer, zero past the end.
    private static func word(_ key: [UInt8], at offset: Int) -> UInt64 {
        var word: UInt64 = 0
        for i in offset..<offset + 8 {
            word = word << 8 | (i < key.count ? UInt64(key[i]) : 0)
        }
        return word
    }
}

extension StateSnapshot: WireMessage {
    /// Encodes in time linear in the snapshot's size, and in memory beyond the output bounded
    /// by one group of pairs: a message whose repeated fields are split over several encoded
    /// messages, concatenated, is the same bytes as the whole message encoded at once (fields
    /// go out in number order, and the scalars only in the first part). Each group's C structs
    /// live in one block, its keys and values are copied once into one byte block, and
    /// protobuf-c packs straight into `out`. (`CArena` makes one allocation per struct and per
    /// byte string: fine for a batch, not for a million pairs.)
    public func append(to out: inout [UInt8], framed: Bool) {
        guard !framed else {
            let body = serialized()
            Framing.appendHeader(length: body.count, to: &out)
            out.append(contentsOf: body)
            return
        }
        append(to: &out, groupBytes: Self.groupBytes)
    }

    /// Unframed encoding in parts of about `groupBytes` of keys and values each (tests check
    /// that the split changes no byte).
    func append(to out: inout [UInt8], groupBytes: Int) {
        // Sized first (lengths only, nothing copied), so the output is allocated once.
        out.reserveCapacity(out.count + encodedSize(groupBytes: groupBytes))
        forEachGroup(groupBytes) { group, first, last in
            _ = part(pairs: group, first: first, last: last, sizeOnly: false, to: &out)
        }
    }

    /// Bytes of the unframed encoding, computed from lengths alone (nothing is copied).
    public func encodedSize() -> Int {
        encodedSize(groupBytes: Self.groupBytes)
    }

    func encodedSize(groupBytes: Int) -> Int {
        var total = 0
        var unused: [UInt8] = []
        forEachGroup(groupBytes) { group, first, last in
            total += part(pairs: group, first: first, last: last, sizeOnly: true, to: &unused)
        }
        return total
    }

    /// The unframed encoding in consecutive parts of about `groupBytes` of keys and values each,
    /// handed to `body` one at a time, so a large state is never encoded whole in memory. Their
    /// concatenation is `serialized()`, `encodedSize()` bytes. `body` returns false to stop early.
    public func forEachEncodedPart(groupBytes: Int = StateSnapshot.groupBytes, _ body: ([UInt8]) -> Bool) {
        var stopped = false
        forEachGroup(groupBytes) { group, first, last in
            guard !stopped else { return }
            var unused: [UInt8] = []
            var encoded: [UInt8] = []
            encoded.reserveCapacity(part(pairs: group, first: first, last: last, sizeOnly: true, to: &unused))
            _ = part(pairs: group, first: first, last: last, sizeOnly: false, to: &encoded)
            stopped = !body(encoded)
        }
    }

    private func forEachGroup(_ limit: Int, _ body: (ArraySlice<KeyValuePair>, _ first: Bool, _ last: Bool) -> Void) {
        var start = 0
        repeat {
            var end = start
            var groupBytes = 0
            while end < pairs.count, end == start || groupBytes < limit {
                groupBytes += pairs[end].key.count + pairs[end].valueCount
                end += 1
            }
            body(pairs[start..<end], start == 0, end == pairs.count)
            start = end
        } while start < pairs.count
    }

    /// Bytes of keys and values encoded per part.
    public static let groupBytes = 4 << 20

    /// One part: the scalars if `first`, `pairs`, and the sessions, tombstones and limits if `last`.
    /// Packs it at the end of `out`, or with `sizeOnly` only computes its encoded size (the
    /// byte fields then carry their lengths but no copy of the bytes). Returns its size.
    private func part(pairs: ArraySlice<KeyValuePair>, first: Bool, last: Bool, sizeOnly: Bool, to out: inout [UInt8]) -> Int {
        var byteCount = 0
        if !sizeOnly {
            for pair in pairs { byteCount += pair.key.count + pair.valueCount }
            if last { for session in sessions { byteCount += session.lastValue.count } }
        }
        let bytes = ByteBlock(capacity: byteCount, sizingOnly: sizeOnly)
        defer { bytes.deallocate() }

        var kvTemplate = Kvraft__State__KeyValue()
        kvraft__state__key_value__init(&kvTemplate)
        let kvs = CStructs(template: kvTemplate, count: pairs.count)
        defer { kvs.deallocate() }
        for (i, pair) in pairs.enumerated() {
            kvs.structs[i].key = bytes.copy(pair.key)
            kvs.structs[i].value = bytes.copy(valueOf: pair)
        }

        let partSessions = last ? sessions : []
        var sessionTemplate = Kvraft__State__Session()
        kvraft__state__session__init(&sessionTemplate)
        let cSessions = CStructs(template: sessionTemplate, count: partSessions.count)
        defer { cSessions.deallocate() }
        for (i, session) in partSessions.enumerated() {
            cSessions.structs[i].client_id = session.clientID
            cSessions.structs[i].last_seq = session.lastSeq
            cSessions.structs[i].last_status = Kvraft__Status(rawValue: .init(truncatingIfNeeded: session.lastStatus.rawValue))
            cSessions.structs[i].last_value = bytes.copy(session.lastValue)
            cSessions.structs[i].last_active_ms = session.lastActiveMs
            cSessions.structs[i].last_was_get = session.lastWasGet ? 1 : 0
        }

        let partTombstones = last ? tombstones : []
        var tombstoneTemplate = Kvraft__State__Tombstone()
        kvraft__state__tombstone__init(&tombstoneTemplate)
        let cTombstones = CStructs(template: tombstoneTemplate, count: partTombstones.count)
        defer { cTombstones.deallocate() }
        for (i, tombstone) in partTombstones.enumerated() {
            cTombstones.structs[i].client_id = tombstone.clientID
            cTombstones.structs[i].at_ms = tombstone.atMs
            cTombstones.structs[i].last_seq = tombstone.lastSeq
        }

        var cLimits = Kvraft__State__SessionLimits()
        kvraft__state__session_limits__init(&cLimits)
        if let limits { withUnsafeMutablePointer(to: &cLimits) { limits.fill($0) } }

        var m = Kvraft__State__StateSnapshot()
        kvraft__state__state_snapshot__init(&m)
        if first {
            m.applied_index = appliedIndex
            m.clock_ms = clockMs
        }
        let withLimits = last && limits != nil
        m.n_pairs = pairs.count
        m.pairs = kvs.pointers.baseAddress
        m.n_sessions = partSessions.count
        m.sessions = cSessions.pointers.baseAddress
        m.n_tombstones = partTombstones.count
        m.tombstones = cTombstones.pointers.baseAddress

        return withUnsafeMutablePointer(to: &cLimits) { limitsPointer in
            m.limits = withLimits ? limitsPointer : nil
            return pack(&m, sizeOnly: sizeOnly, to: &out)
        }
    }

    private func pack(_ m: inout Kvraft__State__StateSnapshot, sizeOnly: Bool, to out: inout [UInt8]) -> Int {
        let length = withUnsafePointer(to: &m) { kvraft__state__state_snapshot__get_packed_size($0) }
        guard length > 0, !sizeOnly else { return length }
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: length))
        return withUnsafePointer(to: &m) { message in
            let written = out.withUnsafeMutableBufferPointer { buffer in
                kvraft__state__state_snapshot__pack(message, buffer.baseAddress! + start)
            }
            precondition(written == length, "protobuf-c packed \(written) bytes, announced \(length)")
            return length
        }
    }

    public init(serialized body: ArraySlice<UInt8>) throws(WireError) {
        self = try withUnpacked(body, name: "StateSnapshot", unpack: { kvraft__state__state_snapshot__unpack(nil, $0, $1) },
                                free: { kvraft__state__state_snapshot__free_unpacked($0, nil) }) { m throws(WireError) in
            var pairs: [KeyValuePair] = []
            pairs.reserveCapacity(m.pointee.n_pairs)
            for i in 0..<m.pointee.n_pairs {
                guard let p = m.pointee.pairs[i] else { throw .invalid("StateSnapshot pair \(i) is missing") }
                pairs.append(KeyValuePair(c: p))
            }
            var sessions: [SessionRecord] = []
            sessions.reserveCapacity(m.pointee.n_sessions)
            for i in 0..<m.pointee.n_sessions {
                guard let s = m.pointee.sessions[i] else { throw .invalid("StateSnapshot session \(i) is missing") }
                sessions.append(SessionRecord(c: s))
            }
            var tombstones: [TombstoneRecord] = []
            tombstones.reserveCapacity(m.pointee.n_tombstones)
            for i in 0..<m.pointee.n_tombstones {
                guard let t = m.pointee.tombstones[i] else { throw .invalid("StateSnapshot tombstone \(i) is missing") }
                tombstones.append(TombstoneRecord(c: t))
            }
            return StateSnapshot(appliedIndex: m.pointee.applied_index, clockMs: m.pointee.clock_ms,
                                 pairs: pairs, sessions: sessions, tombstones: tombstones,
                                 limits: m.pointee.limits.map { SessionLimits(c: $0) })
        }
    }
}

/// `count` copies of a C struct in one allocation, and the array of pointers to them that a
/// protobuf-c repeated message field wants. Freed by `deallocate()`.
private struct CStructs<T> {
    let structs: UnsafeMutableBufferPointer<T>
    let pointers: UnsafeMutableBufferPointer<UnsafeMutablePointer<T>?>

    init(template: T, count: Int) {
        structs = .allocate(capacity: count)
        structs.initialize(repeating: template)
        pointers = .allocate(capacity: count)
        for i in 0..<count { pointers[i] = structs.baseAddress! + i }
    }

    func deallocate() {
        structs.deallocate()
        pointers.deallocate()
    }
}

/// One block that byte strings are copied into back to back, for protobuf-c bytes fields.
/// Freed by `deallocate()`.
private final class ByteBlock {
    private let block: UnsafeMutableBufferPointer<UInt8>
    private var used = 0
    /// Only lengths matter (for `get_packed_size`): `copy` copies nothing and points every
    /// field at one byte that is never read.
    private let sizingOnly: Bool

    init(capacity: Int, sizingOnly: Bool = false) {
        self.sizingOnly = sizingOnly
        block = .allocate(capacity: sizingOnly ? 1 : capacity)
    }

    func copy(_ value: [UInt8]) -> ProtobufCBinaryData {
        copy(count: value.count) { $0(value) }
    }

    /// A pair's value, its pieces copied back to back.
    func copy(valueOf pair: KeyValuePair) -> ProtobufCBinaryData {
        copy(count: pair.valueCount, pair.forEachValuePiece)
    }

    /// Copies the `count` bytes that `pieces` hands over, in order, into one field.
    private func copy(count: Int, _ pieces: (([UInt8]) -> Void) -> Void) -> ProtobufCBinaryData {
        guard count > 0 else { return ProtobufCBinaryData(len: 0, data: nil) }
        if sizingOnly { return ProtobufCBinaryData(len: count, data: block.baseAddress) }
        precondition(used + count <= block.count, "byte block of \(block.count) bytes overflows")
        let start = block.baseAddress! + used
        var offset = 0
        pieces { piece in
            guard !piece.isEmpty else { return }
            precondition(offset + piece.count <= count, "value pieces hold more than their \(count) bytes")
            piece.withUnsafeBufferPointer { (start + offset).initialize(from: $0.baseAddress!, count: $0.count) }
            offset += piece.count
        }
        precondition(offset == count, "value pieces hold \(offset) bytes, not \(count)")
        used += count
        return ProtobufCBinaryData(len: count, data: start)
    }

    func deallocate() {
        block.deallocate()
    }
}
