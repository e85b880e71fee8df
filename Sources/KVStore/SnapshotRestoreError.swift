import Wire

/// Why `KVStateMachine(restoring:)` refused a snapshot: the bytes are not a state any
/// replica could have reached, so restoring from them could serve wrong data.
public enum SnapshotRestoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The bytes do not decode as a `kvraft.state.StateSnapshot`.
    case undecodable(bytes: Int, WireError)
    /// The snapshot decodes but breaks an invariant every snapshot of a `KVStateMachine`
    /// keeps (the reason says which).
    case inconsistent(appliedIndex: UInt64, String)

    public var description: String {
        switch self {
        case let .undecodable(bytes, error):
            return "state snapshot of \(bytes) bytes does not decode (\(error)); it is truncated, corrupt or not a kvraft state snapshot; refusing to restore from it"
        case let .inconsistent(appliedIndex, why):
            return "state snapshot at log index \(appliedIndex) is inconsistent: \(why); it is corrupt or was written by a faulty kvd; refusing to restore from it"
        }
    }
}

/// A broken invariant found while rebuilding from a snapshot, before the log index is attached.
struct SnapshotInconsistency: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

/// A key or value for an error message: printable ASCII as is, other bytes as `\xNN`, cut
/// after 40 bytes.
func describeBytes(_ bytes: [UInt8]) -> String {
    var out = "\""
    for byte in bytes.prefix(40) {
        if byte >= 0x20 && byte < 0x7f && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") {
            out.unicodeScalars.append(Unicode.Scalar(byte))
        } else {
            out += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
        }
    }
    out += bytes.count > 40 ? "\"… (\(bytes.count) bytes)" : "\""
    return out
}
