/// Why bytes from a peer, a client or a kvd could not be turned into a message.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The 4-byte length prefix announced more than the connection's frame limit.
    case frameTooLarge(length: UInt64, limit: Int)
    /// protobuf-c refused the frame body (truncated, wrong wire type, absurd lengths…).
    case malformed(message: String, bytes: Int)
    /// The body decoded but is not a valid instance (e.g. a oneof with no case set).
    case invalid(String)

    public var description: String {
        switch self {
        case let .frameTooLarge(length, limit):
            return "frame length \(length) exceeds the limit of \(limit) bytes"
        case let .malformed(message, bytes):
            return "\(bytes)-byte frame does not decode as \(message)"
        case let .invalid(why):
            return why
        }
    }
}
