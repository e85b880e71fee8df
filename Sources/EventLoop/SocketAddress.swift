import CLibevent
#if canImport(Glibc)
import Glibc
#endif

/// Where to listen or connect: `host:port` over TCP (numeric or resolvable host; IPv6 in
/// brackets) or a Unix-domain socket path.
public enum Endpoint: Hashable, Sendable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    /// Parses `HOST:PORT` or `[V6]:PORT`.
    public static func parseHostPort(_ text: String) -> Endpoint? {
        var host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let port = Int(portText), (0...65535).contains(port), !host.isEmpty else { return nil }
        if host == "*" { host = "0.0.0.0" }
        return .tcp(host: String(host), port: port)
    }

    public var description: String {
        switch self {
        case let .tcp(host, port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case let .unix(path): "unix:\(path)"
        }
    }
}

/// A resolved socket address, held as bytes so Swift code never sees sockaddr pointers.
struct SocketAddress {
    var storage = sockaddr_storage()
    var length: socklen_t = 0

    /// Resolves with getaddrinfo; numeric hosts resolve without I/O.
    static func resolve(_ endpoint: Endpoint) throws -> SocketAddress {
        switch endpoint {
        case let .unix(path):
            var address = SocketAddress()
            var un = sockaddr_un()
            un.sun_family = sa_family_t(AF_UNIX)
            let capacity = MemoryLayout.size(ofValue: un.sun_path)
            let bytes = Array(path.utf8)
            guard bytes.count < capacity else { throw EventLoopError("unix socket path is longer than \(capacity - 1) bytes: \(path)") }
            withUnsafeMutableBytes(of: &un.sun_path) { raw in
                raw.copyBytes(from: bytes)
                raw[bytes.count] = 0
            }
            withUnsafeMutableBytes(of: &address.storage) { raw in
                withUnsafeBytes(of: un) { raw.copyMemory(from: $0) }
            }
            address.length = socklen_t(MemoryLayout<sockaddr_un>.size)
            return address
        case let .tcp(host, port):
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var result: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, String(port), &hints, &result)
            guard status == 0, let first = result else {
                throw EventLoopError("cannot resolve \(host): \(String(cString: gai_strerror(status)))")
            }
            defer { freeaddrinfo(result) }
            var address = SocketAddress()
            withUnsafeMutableBytes(of: &address.storage) { raw in
                raw.copyMemory(from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
            }
            address.length = first.pointee.ai_addrlen
            return address
        }
    }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafeBytes(of: storage) { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }
}
