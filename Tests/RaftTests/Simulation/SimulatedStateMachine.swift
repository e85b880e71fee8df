import Raft

/// The simulation's replicated state machine: the commands it applied, in order, and a hash
/// chain over every applied entry (no-ops included). Its snapshot encodes all of it, so the
/// safety checker can compare an installed snapshot with the committed prefix it claims to cover.
struct SimulatedStateMachine: Equatable {
    /// Index of the last applied entry.
    private(set) var appliedIndex: UInt64 = 0
    /// `chain(chain(chain(emptyHash, e1), e2) ...)` over the applied entries.
    private(set) var hash: UInt64 = Self.emptyHash
    /// Data of the applied normal entries, in order: what `SimulatedCluster.appliedCount(of:)` asks about.
    private(set) var commands: [[UInt8]] = []

    static let emptyHash: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a offset basis

    init() {}

    /// Applies the next entry. The caller (the checker) verifies the order; the hash would expose
    /// any slip anyway.
    mutating func apply(_ entry: Entry) {
        appliedIndex = entry.index
        hash = Self.chain(hash, entry)
        if entry.kind == .normal { commands.append(entry.data) }
    }

    /// FNV-1a over the entry's term, index, kind and data, continuing from `hash`.
    static func chain(_ hash: UInt64, _ entry: Entry) -> UInt64 {
        var hash = hash
        func mix(_ byte: UInt8) {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        for shift in stride(from: 0, to: 64, by: 8) { mix(UInt8(truncatingIfNeeded: entry.term >> UInt64(shift))) }
        for shift in stride(from: 0, to: 64, by: 8) { mix(UInt8(truncatingIfNeeded: entry.index >> UInt64(shift))) }
        mix(entry.kind.rawValue)
        for byte in entry.data { mix(byte) }
        return hash
    }

    // MARK: Snapshot encoding
    // [appliedIndex u64][hash u64][command count u32] then per command [length u32][bytes], little-endian.

    var snapshotData: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(20 + commands.reduce(0) { $0 + 4 + $1.count })
        Self.put(appliedIndex, 8, into: &bytes)
        Self.put(hash, 8, into: &bytes)
        Self.put(UInt64(commands.count), 4, into: &bytes)
        for command in commands {
            Self.put(UInt64(command.count), 4, into: &bytes)
            bytes += command
        }
        return bytes
    }

    /// Decodes `snapshotData`; nil when the bytes are not a whole, well-formed encoding.
    init?(snapshotData bytes: [UInt8]) {
        var cursor = 0
        func take(_ width: Int) -> UInt64? {
            guard cursor + width <= bytes.count else { return nil }
            var value: UInt64 = 0
            for offset in 0..<width { value |= UInt64(bytes[cursor + offset]) << UInt64(8 * offset) }
            cursor += width
            return value
        }
        guard let index = take(8), let hash = take(8), let count = take(4) else { return nil }
        var commands: [[UInt8]] = []
        for _ in 0..<count {
            guard let length = take(4), cursor + Int(length) <= bytes.count else { return nil }
            commands.append(Array(bytes[cursor..<cursor + Int(length)]))
            cursor += Int(length)
        }
        guard cursor == bytes.count else { return nil }
        appliedIndex = index
        self.hash = hash
        self.commands = commands
    }

    private static func put(_ value: UInt64, _ width: Int, into bytes: inout [UInt8]) {
        for offset in 0..<width { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(8 * offset))) }
    }
}
