import Wire

/// A value as the state machine keeps it: in one array as it arrived (a Put, a restored
/// snapshot), or, once appends take it past `pieceSize` bytes, in pieces of exactly
/// `pieceSize` bytes, the last one shorter.
///
/// While a snapshot is being encoded from a copy-on-write copy of the state, every value it
/// shares is copied by the first change to it. Appending touches only the last piece, so an
/// append to a large value copies at most `pieceSize` bytes instead of the whole value, and no
/// piece carries more spare capacity than the room left below `pieceSize`. (Appends to 100
/// keys, W6 in docs/BENCHMARKS.md, used to leave kvd at 2.5-2.7 times its state at peak.)
/// Values are equal when their bytes are, however they are held.
struct StoredValue: Equatable, Sendable {
    static let pieceSize = 64 << 10

    private enum Storage: Sendable {
        case whole([UInt8])
        case pieces([[UInt8]])
    }

    private var storage: Storage

    init(_ bytes: [UInt8]) {
        storage = .whole(bytes)
    }

    static func == (a: StoredValue, b: StoredValue) -> Bool {
        if case let .whole(x) = a.storage, case let .whole(y) = b.storage { return x == y }
        return a.count == b.count && a.bytes == b.bytes
    }

    /// The value in one array (joined, for a value held in pieces).
    var bytes: [UInt8] {
        switch storage {
        case let .whole(bytes): return bytes
        case let .pieces(pieces): return pieces.concatenated()
        }
    }

    var count: Int {
        switch storage {
        case let .whole(bytes): return bytes.count
        case let .pieces(pieces): return pieces.last.map { (pieces.count - 1) * Self.pieceSize + $0.count } ?? 0
        }
    }

    /// Number of arrays the value is held in (for tests).
    var pieceCount: Int {
        switch storage {
        case .whole: return 1
        case let .pieces(pieces): return pieces.count
        }
    }

    /// The pair a snapshot holds for `key`: the pieces themselves, not a copy.
    func snapshotPair(key: [UInt8]) -> KeyValuePair {
        switch storage {
        case let .whole(bytes): return KeyValuePair(key: key, value: bytes)
        case let .pieces(pieces): return KeyValuePair(key: key, valuePieces: pieces)
        }
    }

    mutating func append(_ more: [UInt8]) {
        guard !more.isEmpty else { return }
        // Each case takes the payload out and leaves an empty placeholder, so the array being
        // changed is referenced only here (unless a snapshot shares it) and grows in place.
        switch storage {
        case var .whole(bytes):
            storage = .pieces([])
            if bytes.count + more.count <= Self.pieceSize {
                Self.grow(&bytes, by: more[...])
                storage = .whole(bytes)
            } else {
                // Split once; from then on appends touch only the last piece.
                var pieces = bytes.count <= Self.pieceSize ? [bytes] : Self.split(bytes)
                Self.spread(more[...], over: &pieces)
                storage = .pieces(pieces)
            }
        case var .pieces(pieces):
            storage = .pieces([])
            Self.spread(more[...], over: &pieces)
            storage = .pieces(pieces)
        }
    }

    private static func split(_ bytes: [UInt8]) -> [[UInt8]] {
        stride(from: 0, to: bytes.count, by: pieceSize).map { Array(bytes[$0..<min($0 + pieceSize, bytes.count)]) }
    }

    /// Fills the last piece up to `pieceSize`, then adds full pieces and the rest.
    private static func spread(_ more: ArraySlice<UInt8>, over pieces: inout [[UInt8]]) {
        var rest = more
        let last = pieces.count - 1
        if last >= 0, pieces[last].count < pieceSize {
            let room = pieceSize - pieces[last].count
            grow(&pieces[last], by: rest.prefix(room))
            rest = rest.dropFirst(room)
        }
        while !rest.isEmpty {
            pieces.append(Array(rest.prefix(pieceSize)))
            rest = rest.dropFirst(pieceSize)
        }
    }

    /// Appends within one piece, doubling its capacity as arrays do but never past `pieceSize`.
    /// The explicit reserve also covers a piece a snapshot shares: a plain append would copy it
    /// into a buffer of twice its capacity.
    private static func grow(_ piece: inout [UInt8], by bytes: ArraySlice<UInt8>) {
        let needed = piece.count + bytes.count
        piece.reserveCapacity(needed > piece.capacity ? min(pieceSize, max(needed, piece.capacity * 2)) : piece.capacity)
        piece.append(contentsOf: bytes)
    }
}
