import Glibc

/// Everything that can go wrong in the durable log. Each description says what happened and what to do.
public enum StorageError: Error, Equatable, CustomStringConvertible {
    /// A system call failed. `operation` is the call (`open`, `write`, `fdatasync`, …), `path` what it acted on.
    case io(operation: String, path: String, errno: Int32)
    /// The data dir belongs to another cluster or node.
    case identityMismatch(directory: String, foundCluster: UInt64, foundNode: UInt64, expectedCluster: UInt64, expectedNode: UInt64)
    /// The metadata file exists but cannot be parsed or fails its checksum.
    case corruptMetadata(path: String, reason: String)
    /// WAL segments exist but the metadata file naming their cluster and node does not.
    case missingMetadata(directory: String)
    /// The record of peers' data-dir ids (`peers`) is damaged.
    case corruptPeerIdentities(path: String, reason: String)
    /// Another process (or another `DurableLog` in this one) has the data dir open.
    case locked(directory: String)
    /// A damaged record that is not a torn tail: valid data follows it, or it sits in a non-last segment.
    case corruptRecord(path: String, offset: Int, reason: String)
    /// The snapshot file is truncated, fails its checksum, or is not a snapshot file.
    case corruptSnapshot(path: String, reason: String)
    /// Segment sequence numbers skip one: a WAL file was deleted or never written.
    case missingSegment(directory: String, expectedName: String)
    /// The snapshot and the WAL segments do not fit together: segments were deleted without a
    /// snapshot covering them, or the log starts after the snapshot's index + 1.
    case inconsistentDataDir(directory: String, reason: String)
    /// Entries passed to `append` do not have consecutive indexes.
    case nonContiguousEntries(previousIndex: UInt64, nextIndex: UInt64)
    /// `append` would leave a hole: its first index is past `lastIndex + 1` (or is 0).
    case appendGap(lastIndex: UInt64, firstIndex: UInt64)
    /// `append` would rewrite entries the snapshot already covers.
    case appendBelowSnapshot(snapshotIndex: UInt64, firstIndex: UInt64)
    /// `saveSnapshot` got a snapshot past the end of the log.
    case snapshotBeyondLog(snapshotIndex: UInt64, lastIndex: UInt64)
    /// `saveSnapshot` got a snapshot whose term differs from the log's entry at its index.
    case snapshotTermMismatch(index: UInt64, snapshotTerm: UInt64, logTerm: UInt64)
    /// `append` would overwrite an entry at or below the persisted commit index.
    case overwritesCommitted(commit: UInt64, firstIndex: UInt64)
    /// One entry does not fit in a record.
    case entryTooLarge(index: UInt64, bytes: Int, limit: Int)
    /// An earlier write or sync failed; the on-disk state is unknown until the node restarts and recovers.
    case failed(cause: String)
    /// The log was closed.
    case closed

    public var description: String {
        switch self {
        case let .io(operation, path, code):
            let message = String(cString: strerror(code))
            return "\(operation) \(path) failed: \(message) (errno \(code)); check that the path exists, is writable, and the disk is not full or read-only"
        case let .identityMismatch(directory, foundCluster, foundNode, expectedCluster, expectedNode):
            return "data dir \(directory) holds cluster \(hex(foundCluster)) node \(foundNode), but this raftd is cluster \(hex(expectedCluster)) node \(expectedNode); start with the right --data-dir or an empty one"
        case let .corruptMetadata(path, reason):
            return "metadata file \(path) is unreadable (\(reason)); restore it from a backup or start this node with an empty --data-dir"
        case let .corruptPeerIdentities(path, reason):
            return "peer identity file \(path) is unreadable (\(reason)); it is only ever replaced by an atomic rename, so this is damage — restore it from a backup, or remove it (this node then forgets which data dir each peer had, and cannot tell a wiped peer until it has seen each one again)"
        case let .missingMetadata(directory):
            return "data dir \(directory) holds WAL segments but no metadata file naming its cluster and node; restore the metadata file or start with an empty --data-dir"
        case let .locked(directory):
            return "data dir \(directory) is in use by another process; stop it or start with a different --data-dir"
        case let .corruptRecord(path, offset, reason):
            return "WAL \(path) is corrupt at offset \(offset) (\(reason)) and valid data follows, so this is not a torn write; refusing to serve a damaged log — restore this node's data dir from a replica or start it with an empty --data-dir"
        case let .corruptSnapshot(path, reason):
            return "snapshot file \(path) is unreadable (\(reason)); it is only ever replaced by an atomic rename, so this is damage, not a crash — restore this node's data dir from a replica or start it with an empty --data-dir"
        case let .missingSegment(directory, expectedName):
            return "data dir \(directory) is missing WAL segment \(expectedName) between its neighbours; the log has a hole — restore the file or start this node with an empty --data-dir"
        case let .inconsistentDataDir(directory, reason):
            return "data dir \(directory) is inconsistent: \(reason); files were deleted or replaced behind raftd's back — restore this node's data dir from a replica or start it with an empty --data-dir"
        case let .appendBelowSnapshot(snapshotIndex, firstIndex):
            return "append starts at index \(firstIndex) but the log is compacted through the snapshot at index \(snapshotIndex); entries a snapshot covers are never rewritten (caller bug)"
        case let .snapshotBeyondLog(snapshotIndex, lastIndex):
            return "saveSnapshot got a snapshot at index \(snapshotIndex) but the log ends at \(lastIndex); a node's own snapshot covers only entries it holds — a leader's snapshot goes to installSnapshot (caller bug)"
        case let .snapshotTermMismatch(index, snapshotTerm, logTerm):
            return "saveSnapshot got a snapshot at index \(index) term \(snapshotTerm) but the log holds term \(logTerm) there; a node's own snapshot must match its log — a leader's snapshot goes to installSnapshot (caller bug)"
        case let .nonContiguousEntries(previousIndex, nextIndex):
            return "append got entry \(nextIndex) right after entry \(previousIndex); entries in one append must have consecutive indexes (caller bug)"
        case let .appendGap(lastIndex, firstIndex):
            return "append starts at index \(firstIndex) but the log ends at \(lastIndex); the first entry must be at most lastIndex + 1 and at least 1 (caller bug)"
        case let .overwritesCommitted(commit, firstIndex):
            return "append at index \(firstIndex) would overwrite entries at or below the commit index \(commit); committed entries are never replaced (caller bug)"
        case let .entryTooLarge(index, bytes, limit):
            return "entry \(index) is \(bytes) bytes, over the \(limit)-byte record limit; reject such proposals before they reach the log"
        case let .failed(cause):
            return "the log is unusable after an earlier failure (\(cause)); restart the node so recovery can establish what is on disk"
        case .closed:
            return "the log is closed; open it again"
        }
    }
}

/// Cluster ids print as 16 hex digits, as they appear in flags and in the metadata file's documentation.
func hex(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}
