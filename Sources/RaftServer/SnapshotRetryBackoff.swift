/// When raftd may send kvd a snapshot that kvd refused (it does not decode or is
/// inconsistent): not in a loop, but after a delay that doubles with each refusal of the same
/// snapshot, from `minMs` up to `maxMs`. A different (newer) snapshot goes at once.
struct SnapshotRetryBackoff {
    static let minMs: UInt64 = 1_000
    static let maxMs: UInt64 = 30_000

    /// The snapshot refused last, and until when (monotonic ns) it is held back.
    private(set) var refusedIndex: UInt64?
    private(set) var delayMs: UInt64 = 0
    private var notBeforeNanos: UInt64 = 0

    /// Records a refusal of the snapshot at `index`; returns how long it is now held back.
    mutating func refused(index: UInt64, nowNanos: UInt64) -> UInt64 {
        delayMs = refusedIndex == index ? min(Self.maxMs, max(Self.minMs, delayMs * 2)) : Self.minMs
        refusedIndex = index
        notBeforeNanos = nowNanos + delayMs * 1_000_000
        return delayMs
    }

    /// Milliseconds until the snapshot at `index` may be sent again: 0 if now.
    func waitMs(index: UInt64, nowNanos: UInt64) -> UInt64 {
        guard refusedIndex == index, nowNanos < notBeforeNanos else { return 0 }
        return (notBeforeNanos - nowNanos + 999_999) / 1_000_000
    }
}
