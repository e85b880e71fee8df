/// A message that crosses a process boundary, encoded and decoded through protobuf-c.
public protocol WireMessage: Sendable {
    /// Appends the serialized message to `out`, preceded by its frame header when `framed`.
    func append(to out: inout [UInt8], framed: Bool)
    /// Decodes one serialized message (a frame body). Malformed input throws, never traps.
    init(serialized body: ArraySlice<UInt8>) throws(WireError)
}

extension WireMessage {
    /// Appends this message as one frame: 4-byte big-endian length, then the body.
    public func appendFrame(to out: inout [UInt8]) {
        append(to: &out, framed: true)
    }

    public func framed() -> [UInt8] {
        var out: [UInt8] = []
        append(to: &out, framed: true)
        return out
    }

    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        append(to: &out, framed: false)
        return out
    }

    public init(serialized body: [UInt8]) throws(WireError) {
        try self.init(serialized: body[...])
    }
}
