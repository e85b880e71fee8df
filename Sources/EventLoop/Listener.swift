import CLibevent
#if canImport(Glibc)
import Glibc
#endif

/// Accepts TCP or Unix-socket connections on a loop.
///
/// TCP listeners set SO_REUSEADDR so a restarted process can bind again at once after a
/// kill -9. A Unix listener removes a stale socket file a killed predecessor left, and
/// creates the new one with `mode` (default 0600: only this user may connect).
public final class Listener {
    private var listener: OpaquePointer?
    private let onAccept: (Connection) -> Void
    private let limits: Connection.Limits
    public let endpoint: Endpoint
    /// The bound TCP port (useful after binding port 0), 0 for Unix sockets.
    public private(set) var port: Int = 0
    private let unixPath: String?

    public init(loop: EventLoop, endpoint: Endpoint, unixMode: mode_t = 0o600,
                limits: Connection.Limits = Connection.Limits(), onAccept: @escaping (Connection) -> Void) throws {
        self.onAccept = onAccept
        self.limits = limits
        self.endpoint = endpoint
        self.loop = loop
        let address = try SocketAddress.resolve(endpoint)
        var previousMask: mode_t?
        if case let .unix(path) = endpoint {
            unixPath = path
            try Listener.removeStaleSocket(path)
            // Bind under a umask that yields exactly `unixMode`, so no other user can
            // connect between bind and a chmod.
            previousMask = umask(~unixMode & 0o777)
        } else {
            unixPath = nil
        }
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        let flags = UInt32(LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC)
        let created = address.withSockaddr { sa, length in
            evconnlistener_new_bind(loop.base, { _, fd, addr, _, ctx in
                let listener = Unmanaged<Listener>.fromOpaque(ctx!).takeUnretainedValue()
                listener.accepted(fd: fd)
            }, ctx, flags, 1024, sa, Int32(length))
        }
        let bindErrno = errno
        if let previousMask { umask(previousMask) }
        guard let created else {
            throw EventLoopError.errno("cannot listen on \(endpoint)", code: bindErrno)
        }
        listener = created
        ownsUnixPath = unixPath != nil
        evconnlistener_set_error_cb(created) { listener, ctx in
            // EMFILE and friends: keep listening; the backlog waits until descriptors free up.
            _ = listener
            _ = ctx
        }
        if case .tcp = endpoint {
            port = Listener.boundPort(evconnlistener_get_fd(created))
        }
    }

    /// Keeps the event base alive as long as the listener and its connections exist.
    private let loop: EventLoop
    /// Set once bind created the socket file: only then is it ours to unlink.
    private var ownsUnixPath = false

    deinit {
        if let listener { evconnlistener_free(listener) }
        if ownsUnixPath, let unixPath { unlink(unixPath) }
    }

    /// Stops accepting (already accepted connections are unaffected).
    public func close() {
        if let listener { evconnlistener_free(listener) }
        listener = nil
    }

    private func accepted(fd: Int32) {
        evutil_make_socket_nonblocking(fd)
        guard let bev = bufferevent_socket_new(loop.base, fd, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)) else {
            Glibc.close(fd)
            return
        }
        let peer: String
        if let unixPath { peer = "unix:\(unixPath)" } else { peer = Listener.peerName(fd) }
        onAccept(Connection(loop: loop, bev: bev, peer: peer, connected: true, limits: limits))
    }

    private static func string(_ chars: [CChar]) -> String {
        String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func removeStaleSocket(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw EventLoopError("\(path) exists and is not a socket; refusing to replace it")
        }
        unlink(path)
    }

    private static func boundPort(_ fd: Int32) -> Int {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        return withUnsafeMutableBytes(of: &storage) { raw -> Int in
            guard getsockname(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length) == 0 else { return 0 }
            let family = Int32(raw.load(as: sa_family_t.self))
            if family == AF_INET {
                return Int(UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port))
            } else if family == AF_INET6 {
                return Int(UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port))
            }
            return 0
        }
    }

    private static func peerName(_ fd: Int32) -> String {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        return withUnsafeMutableBytes(of: &storage) { raw -> String in
            guard getpeername(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length) == 0 else { return "?" }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
            let status = getnameinfo(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length, &host, socklen_t(host.count),
                                     &service, socklen_t(service.count), NI_NUMERICHOST | NI_NUMERICSERV)
            guard status == 0 else { return "?" }
            return Listener.string(host) + ":" + Listener.string(service)
        }
    }
}
