extension Duration {
    /// Whole nanoseconds (negative durations count as zero), for deadlines on the monotonic
    /// clock that the drivers and cores count in `UInt64` nanoseconds.
    public var wholeNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        return UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
    }

    /// Whole milliseconds, for messages and logs.
    public var wholeMilliseconds: UInt64 { wholeNanoseconds / 1_000_000 }
}
