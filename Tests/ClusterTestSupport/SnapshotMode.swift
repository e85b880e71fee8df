/// How often a test cluster's raftds compact their logs. The fault scenarios run in both modes,
/// so InstallSnapshot and kvd's snapshot restore run under every fault, not only in the tests
/// written for them.
public enum SnapshotMode: String, CaseIterable, Sendable {
    /// ClusterOptions' defaults: a snapshot every 64 KiB of log; a follower within 8 KiB of the
    /// leader catches up from the log.
    case regular
    /// A snapshot every 3,000 bytes of log, and a follower that is behind at all catches up by
    /// InstallSnapshot (`--snapshot-log-bytes 3000 --snapshot-catch-up-bytes 0`).
    case heavy
}

extension ClusterOptions {
    public mutating func applySnapshotMode(_ mode: SnapshotMode) {
        switch mode {
        case .regular:
            snapshotLogBytes = 64 << 10
            snapshotCatchUpBytes = 8 << 10
        case .heavy:
            snapshotLogBytes = 3000
            snapshotCatchUpBytes = 0
        }
    }
}
