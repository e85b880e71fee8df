/// Splits a byte stream into frames. Feed it whatever arrived (partial frames, many frames
/// per read); take complete frame bodies out with `nextFrame()`.
///
/// The length is checked against `frameLimit` as soon as the 4 header bytes arrive, so an
/// absurd length is refused before anything is buffered for it.
public struct FrameDecoder: Sendable {
    public let frameLimit: Int
    /// Received bytes; `consumed` of them have already been handed out as frames.
    public private(set) var buffer: [UInt8] = []
    private var consumed = 0

    public init(frameLimit: Int = Framing.defaultFrameLimit) {
        precondition(frameLimit >= 0)
        self.frameLimit = frameLimit
    }

    /// Bytes received but not yet returned as a frame.
    public var bufferedBytes: Int { buffer.count - consumed }

    public mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        compactIfWorthwhile()
        buffer.append(contentsOf: bytes)
    }

    /// Lets a reader append straight into the buffer (one copy from the socket buffer).
    public mutating func withAppendableBuffer<R>(_ body: (inout [UInt8]) throws -> R) rethrows -> R {
        compactIfWorthwhile()
        return try body(&buffer)
    }

    /// The next complete frame body, `nil` if more bytes are needed.
    /// Throws `WireError.frameTooLarge` once the header announces an oversize frame; the
    /// stream cannot be resynchronized after that, so the caller should close it.
    public mutating func nextFrame() throws(WireError) -> ArraySlice<UInt8>? {
        let available = buffer.count - consumed
        guard available >= Framing.headerSize else { return nil }
        let length = UInt64(buffer[consumed]) << 24 | UInt64(buffer[consumed + 1]) << 16
            | UInt64(buffer[consumed + 2]) << 8 | UInt64(buffer[consumed + 3])
        guard length <= UInt64(frameLimit) else {
            throw .frameTooLarge(length: length, limit: frameLimit)
        }
        let total = Framing.headerSize + Int(length)
        guard available >= total else { return nil }
        let start = consumed + Framing.headerSize
        consumed += total
        return buffer[start..<(start + Int(length))]
    }

    /// Drops handed-out bytes once they dominate the buffer, keeping appends amortized O(1).
    private mutating func compactIfWorthwhile() {
        guard consumed > 0 else { return }
        if consumed == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 20)
            consumed = 0
        } else if consumed >= 64 * 1024 && consumed * 2 >= buffer.count {
            buffer.removeSubrange(0..<consumed)
            consumed = 0
        }
    }
}
