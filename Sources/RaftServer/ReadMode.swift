#if canImport(Glibc)
import Glibc
#endif
import Raft

/// How raftd serves kvd's linearizable reads (`--read-mode`).
public enum ReadMode: String, Sendable, CaseIterable {
    /// ReadIndex: the leader confirms it still leads with one heartbeat round per batch of reads.
    case index
    /// Leader leases: no round while the lease from the last confirmed round holds (needs check
    /// quorum, assumes bounded clock drift; see `ReadLease`).
    case lease
    /// Every Get is proposed through the log, as before ReadIndex (for comparison).
    case log
}

/// The clock lease reads are measured on: CLOCK_BOOTTIME, which keeps running while the
/// process is stopped (SIGSTOP, a VM pause) and while the machine is suspended, so a leader
/// that wakes up finds its lease expired rather than fresh. Tick counts would stop with it.
enum LeaseClock {
    static func nanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_BOOTTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
