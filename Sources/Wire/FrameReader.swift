/// The frame read loop every connection shares (the shape of swift-nio's
/// `ByteToMessageDecoder`): bytes in, one `Message` per frame out, delivered to a handler.
///
/// Feed it whatever arrived (`fill`, which lets a reader copy straight into the buffer, or
/// `append`); `deliver` then decodes each complete frame as `Message` and hands it to the
/// handler, in order, until the handler answers `.stop` (the owner paused reading or closed
/// the link: the frames after it wait for the next `deliver`) or no complete frame is left.
///
/// An oversize frame header (refused as soon as its 4 bytes arrive, before its body is
/// buffered), a frame that does not decode, or an error the handler throws is thrown by
/// `deliver` exactly once: the stream cannot be resynchronized, so the reader fails for
/// good — it drops its buffer, later bytes are discarded and later `deliver`s deliver
/// nothing — and the owner closes the connection, saying why.
///
/// Pure: no I/O, no clock. `EventLoop` adds the few lines that read from a `Connection`.
/// A class, so a handler may reach the reader (or its owner reset it) while it delivers.
public final class FrameReader<Message: WireMessage> {
    /// What a handler wants after one message.
    public enum Next: Sendable {
        /// Deliver the next complete frame, if there is one.
        case more
        /// Deliver nothing more now; the frames still buffered wait for the next `deliver`.
        case stop
    }

    @usableFromInline var decoder: FrameDecoder
    @usableFromInline var failedForGood = false
    @usableFromInline var framesTaken: UInt64 = 0

    public init(frameLimit: Int = Framing.defaultFrameLimit) {
        decoder = FrameDecoder(frameLimit: frameLimit)
    }

    public var frameLimit: Int { decoder.frameLimit }
    /// Bytes received and not yet delivered: the start of a frame, or whole frames waiting
    /// behind a `.stop`. 0 once the reader failed.
    public var bufferedBytes: Int { decoder.bufferedBytes }
    /// Frames taken out of the byte stream so far, whether or not they decoded.
    public var framesCompleted: UInt64 { framesTaken }
    /// Whether `deliver` threw: nothing more will be delivered.
    public var hasFailed: Bool { failedForGood }

    /// Lets `read` append what arrived straight into the buffer (one copy from the source);
    /// returns what `read` returned (the byte count). After a failure the bytes are read and
    /// dropped, so a link the owner has not closed yet holds no more memory.
    @inlinable
    @discardableResult
    public func fill(_ read: (inout [UInt8]) -> Int) -> Int {
        guard !failedForGood else {
            var discarded: [UInt8] = []
            return read(&discarded)
        }
        return decoder.withAppendableBuffer(read)
    }

    /// Appends bytes that arrived (a test, or a source that hands out arrays).
    public func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        guard !failedForGood else { return }
        decoder.append(bytes)
    }

    /// Decodes and delivers the complete frames, in order, until `handle` answers `.stop` or
    /// none is left; returns `.stop` if the handler stopped it (or the reader had failed),
    /// `.more` if every complete frame was delivered.
    ///
    /// Throws, once, the `WireError` of an oversize or undecodable frame, or what `handle`
    /// threw; the reader has then failed for good (see the type's notes).
    @inlinable
    @discardableResult
    public func deliver(to handle: (Message) throws -> Next) throws -> Next {
        guard !failedForGood else { return .stop }
        do {
            while let message = try nextMessage() {
                if try handle(message) == .stop { return .stop }
            }
            return .more
        } catch {
            failedForGood = true
            decoder = FrameDecoder(frameLimit: decoder.frameLimit)
            throw error
        }
    }

    /// The next complete frame, decoded; nil if more bytes are needed. (The frame's slice of
    /// the buffer ends here, before the handler runs.)
    @inlinable
    func nextMessage() throws(WireError) -> Message? {
        guard let frame = try decoder.nextFrame() else { return nil }
        framesTaken &+= 1
        return try Message(serialized: frame)
    }
}
