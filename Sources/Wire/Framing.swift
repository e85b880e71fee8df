/// Every stream carries frames: a 4-byte unsigned big-endian length N, then N bytes
/// holding one serialized protobuf message.
public enum Framing {
    public static let headerSize = 4
    /// Default largest frame body accepted on any connection.
    public static let defaultFrameLimit = Limits.standard.clientFrameBytes

    /// Appends a frame header for a body of `length` bytes.
    @inlinable
    public static func appendHeader(length: Int, to out: inout [UInt8]) {
        precondition(length >= 0 && length <= Int(UInt32.max), "frame body of \(length) bytes cannot be framed")
        let n = UInt32(length)
        out.append(UInt8(truncatingIfNeeded: n >> 24))
        out.append(UInt8(truncatingIfNeeded: n >> 16))
        out.append(UInt8(truncatingIfNeeded: n >> 8))
        out.append(UInt8(truncatingIfNeeded: n))
    }

    /// Appends `body` as one frame.
    public static func appendFrame(body: [UInt8], to out: inout [UInt8]) {
        appendHeader(length: body.count, to: &out)
        out.append(contentsOf: body)
    }
}
