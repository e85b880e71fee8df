import Wire

/// The reply to one replicated command: what every replica computes for it, bit for bit.
///
/// `value` is the key's value for a successful GET and empty for everything else.
public struct CommandResult: Hashable, Sendable, CustomStringConvertible {
    public var status: Status
    public var value: [UInt8]

    public init(status: Status, value: [UInt8] = []) {
        self.status = status
        self.value = value
    }

    public static let ok = CommandResult(status: .ok)
    public static let noKey = CommandResult(status: .noKey)
    public static let badRequest = CommandResult(status: .badRequest)
    public static let sessionExpired = CommandResult(status: .sessionExpired)

    public var description: String {
        value.isEmpty ? "\(status)" : "\(status) \(value.count) bytes"
    }
}
