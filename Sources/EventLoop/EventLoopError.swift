#if canImport(Glibc)
import Glibc
#endif

/// A libevent or socket call failed; `errno` text included when there is one.
public struct EventLoopError: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ what: String) {
        description = what
    }

    static func errno(_ what: String, code: Int32 = Glibc.errno) -> EventLoopError {
        EventLoopError("\(what): \(String(cString: strerror(code)))")
    }
}
