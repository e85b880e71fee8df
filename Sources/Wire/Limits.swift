/// Every size bound of kvraft in one place, and how the bounds must relate.
///
/// A bound set on its own can break another silently: a value the state machine accepts but no
/// Get reply can carry, an entry larger than the frame that replicates it. So the bounds live
/// here together, the processes' flags change a copy, and each process refuses to start when
/// `problems` is not empty.
public struct Limits: Sendable, Equatable {
    /// The largest key a client may send.
    public var maxKeyBytes = 64 << 10
    /// The largest value one Put or Append may carry (`--max-value-bytes` on kvd and kvgateway).
    public var maxValueBytes = 4 << 20
    /// The largest frame on a client link: client ↔ gateway ↔ kvd.
    public var clientFrameBytes = 16 << 20
    /// The largest frame on an internal link: raftd ↔ raftd, raftd ↔ kvd (the apply socket).
    public var internalFrameBytes = 64 << 20
    /// kvd packs commands into one log entry up to this many bytes; a larger command is an
    /// entry of its own.
    public var maxProposalBytes = 1 << 20
    /// A leader's append carries entries up to this many bytes, and always at least one entry.
    public var maxAppendBytes = 1 << 20

    /// The largest value one key may hold however it was built: an Append that would grow a
    /// value past it is refused (BAD_REQUEST, nothing changed). A constant of the state machine,
    /// not a flag, so that every replica decides alike.
    public static let maxStoredValueBytes = 15 << 20
    /// Room for framing and protobuf fields around one request or reply, beyond key and value.
    public static let messageOverheadBytes = 4 << 10
    /// The largest field a state snapshot reader accepts (one key or one value, with room).
    public static let snapshotFieldBytes = 64 << 20

    /// The defaults every process starts from.
    public static let standard = Limits()

    public init() {}

    /// The largest log entry kvd proposes: a full batch, or one command alone when larger.
    public var maxEntryBytes: Int {
        max(maxProposalBytes, maxKeyBytes + maxValueBytes + Self.messageOverheadBytes)
    }

    /// Why these bounds cannot work together; empty when they can.
    public var problems: [String] {
        var found: [String] = []
        for (name, value) in [("key", maxKeyBytes), ("value", maxValueBytes), ("client frame", clientFrameBytes),
                              ("internal frame", internalFrameBytes), ("proposal", maxProposalBytes),
                              ("append", maxAppendBytes)] where value < 1 {
            found.append("the \(name) limit must be at least 1 byte (is \(value))")
        }
        if maxValueBytes > Self.maxStoredValueBytes {
            found.append("values of \(maxValueBytes) bytes exceed the \(Self.maxStoredValueBytes) bytes one key may hold")
        }
        let largestReply = maxKeyBytes + Self.maxStoredValueBytes + Self.messageOverheadBytes
        if clientFrameBytes < largestReply {
            found.append("a client frame of \(clientFrameBytes) bytes cannot carry the largest Get reply (\(largestReply) bytes)")
        }
        let largestAppend = maxAppendBytes + maxEntryBytes + Self.messageOverheadBytes
        if internalFrameBytes < largestAppend {
            found.append("an internal frame of \(internalFrameBytes) bytes cannot carry the largest append (\(largestAppend) bytes)")
        }
        if internalFrameBytes < clientFrameBytes {
            found.append("the internal frame limit (\(internalFrameBytes)) is below the client frame limit (\(clientFrameBytes))")
        }
        if Self.snapshotFieldBytes < maxKeyBytes + Self.maxStoredValueBytes {
            found.append("a snapshot field of \(Self.snapshotFieldBytes) bytes cannot hold the largest stored value")
        }
        return found
    }
}
