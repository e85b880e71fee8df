import Wire

/// Where a `FrameReader` meets a `Connection`: the reader stays pure (tested on bytes alone),
/// this reads the socket into it.
extension FrameReader {
    /// Takes what `connection` has received into the reader's buffer: one copy out of
    /// libevent's buffer, growing geometrically so a large frame stays linear to receive.
    @inlinable
    @discardableResult
    public func fill(from connection: Connection) -> Int {
        fill { connection.readAvailable(appendingTo: &$0) }
    }

    /// `fill(from:)`, then `deliver(to:)`: the whole read callback of most links.
    @inlinable
    @discardableResult
    public func readMessages(from connection: Connection, to handle: (Message) throws -> Next) throws -> Next {
        fill(from: connection)
        return try deliver(to: handle)
    }
}
