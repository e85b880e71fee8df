import CLibevent
#if canImport(Glibc)
import Glibc
#endif

/// Accepts TCP or Unix-socket connections on a loop.
///
/// TCP listeners set SO_REUSEADDR so a restarted process can bind again at once after a
/// kill -9. A Unix listener removes a stale socket file a killed predecessor left, and
/// creates the new one with `mode` (default 0600: only this user may connect).
///
/// Bounded: at most `maxConnections` accepted connections are open at once (default: the
/// loop's `limits.maxConnectionsPerListener`); a connection beyond it is accepted and closed
/// at once. When accept(2) fails (EMFILE, ENFILE: out of descriptors), the listener stops
/// accepting for a backoff instead of spinning on a socket that stays readable; the way out
/// of that pause is its timer, which always fires and tries again.
public final class Listener {
    private var listener: OpaquePointer?
    private let onAccept: (Connection) -> Void
    /// Keeps the event base alive as long as the listener and its connections exist.
    private let loop: EventLoop
    /// Set once bind created the socket file: only then is it ours to unlink.
    private var ownsUnixPath = false
    private let limits: Connection.Limits
    public let endpoint: Endpoint
    /// The bound TCP port (useful after binding port 0), 0 for Unix sockets.
    public private(set) var port: Int = 0
    private let unixPath: String?
    public let maxConnections: Int
    /// Accepted connections not yet closed.
    public private(set) var openConnections = 0
    /// Connections closed at once because `maxConnections` were open.
    public private(set) var refusedConnections = 0
    /// Times accepting paused after accept(2) failed.
    public private(set) var acceptPauses = 0
    private var acceptBackoffMs: Double
    private let resumeTimer: Timer
    /// With TLS, accepted connections are handed over only once their handshake is done and
    /// `tls.admit` accepted the peer's certificate; refusals are logged, one line each.
    private let tls: TLSAccept?
    /// Connections whose TLS handshake is under way (held here until it ends).
    private var handshaking: [ObjectIdentifier: Connection] = [:]
    /// TLS handshakes that failed or whose certificate was refused.
    public private(set) var refusedHandshakes = 0

    public init(loop: EventLoop, endpoint: Endpoint, unixMode: mode_t = 0o600,
                limits: Connection.Limits = Connection.Limits(), maxConnections: Int? = nil,
                tls: TLSAccept? = nil, onAccept: @escaping (Connection) -> Void) throws {
        self.onAccept = onAccept
        self.tls = tls
        self.limits = limits
        self.endpoint = endpoint
        self.loop = loop
        resumeTimer = Timer(loop: loop)
        self.maxConnections = maxConnections ?? loop.limits.maxConnectionsPerListener
        precondition(self.maxConnections >= 1, "a listener must allow at least one connection")
        acceptBackoffMs = loop.limits.acceptBackoffMinMs
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
        evconnlistener_set_error_cb(created) { _, ctx in
            Unmanaged<Listener>.fromOpaque(ctx!).takeUnretainedValue().acceptFailed(code: errno)
        }
        if case .tcp = endpoint {
            port = Listener.boundPort(evconnlistener_get_fd(created))
        }
        resumeTimer.action = { [weak self] in self?.resumeAccepting() }
    }

    /// accept(2) failed with something other than "nothing to accept": most likely no
    /// descriptor is left (EMFILE, ENFILE). The pending connection stays in the backlog and
    /// the socket stays readable, so listening on would spin; pause instead.
    private func acceptFailed(code: Int32) {
        guard let listener else { return }
        evconnlistener_disable(listener)
        acceptPauses += 1
        loop.connectionLog.log(.warning, key: "accept-failed \(endpoint)",
                "accept on \(endpoint) failed: \(String(cString: strerror(code))) (\(openConnections) connections open); "
                + "pausing accepts for \(Int(acceptBackoffMs)) ms. If this repeats, raise the descriptor limit (ulimit -n) or lower the connection cap")
        resumeTimer.schedule(milliseconds: acceptBackoffMs)
        acceptBackoffMs = min(acceptBackoffMs * 2, loop.limits.acceptBackoffMaxMs)
    }

    private func resumeAccepting() {
        guard let listener else { return }
        evconnlistener_enable(listener)
    }

    deinit {
        if let listener { evconnlistener_free(listener) }
        if ownsUnixPath, let unixPath { unlink(unixPath) }
    }

    /// Stops accepting (already accepted connections are unaffected).
    public func close() {
        if let listener { evconnlistener_free(listener) }
        listener = nil
        resumeTimer.cancel()
    }

    private func accepted(fd: Int32) {
        // Accepting works again: the next failure starts over at the shortest pause.
        acceptBackoffMs = loop.limits.acceptBackoffMinMs
        guard openConnections < maxConnections else {
            Glibc.close(fd)
            refusedConnections += 1
            loop.connectionLog.log(.warning, key: "cap \(endpoint)",
                    "refused a connection on \(endpoint): \(openConnections) open, the cap is \(maxConnections) "
                    + "(\(refusedConnections) refused so far)")
            return
        }
        evutil_make_socket_nonblocking(fd)
        let peer: String
        if let unixPath { peer = "unix:\(unixPath)" } else { peer = Listener.peerName(fd) }
        if let tls { return acceptTLS(fd: fd, peer: peer, tls: tls) }
        guard let bev = bufferevent_socket_new(loop.base, fd, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)) else {
            Glibc.close(fd)
            return
        }
        let connection = Connection(loop: loop, bev: bev, peer: peer, connected: true, limits: limits)
        count(connection)
        onAccept(connection)
    }

    private func count(_ connection: Connection) {
        openConnections += 1
        connection.onRelease = { [weak self] in
            guard let self else { return }
            self.openConnections -= 1
            assert(self.openConnections >= 0, "listener closed more connections than it accepted")
        }
    }

    /// Starts the server side of a TLS handshake; the owner gets the connection once it is
    /// done and the peer's certificate admitted. The way out of the handshake: it finishes,
    /// fails, or runs into `limits.tlsHandshakeTimeoutMs`.
    private func acceptTLS(fd: Int32, peer: String, tls: TLSAccept) {
        guard let ssl = try? tls.context.makeSession(expectedName: nil) else {
            Glibc.close(fd)
            return
        }
        // On failure the socket is closed and the session freed.
        guard let made = try? Connection.makeTLSBufferevents(loop: loop, fd: fd, ssl: ssl, state: BUFFEREVENT_SSL_ACCEPTING) else { return }
        let bev = made.filter
        TLSHandshake.prepare(bev, milliseconds: loop.limits.tlsHandshakeTimeoutMs)
        Connection.tuneSocket(fd)
        let connection = Connection(loop: loop, bev: bev, peer: peer, connected: false, limits: limits, tlsOver: made.socket)
        count(connection)
        let key = ObjectIdentifier(connection)
        handshaking[key] = connection
        connection.onConnected = { [weak self] conn in
            guard let self else { return conn.close() }
            self.handshaking[key] = nil
            conn.onConnected = nil
            conn.onClose = nil
            let certificate = conn.peerCertificate ?? PeerCertificate(names: [])
            if let refusal = tls.admit(certificate) {
                self.refuse(conn, "its certificate (\(certificate.names.joined(separator: ", "))) is not allowed here: \(refusal)")
                return conn.close()
            }
            self.onAccept(conn)
        }
        connection.onClose = { [weak self] conn, reason in
            guard let self else { return }
            self.handshaking[key] = nil
            if case let .connectFailed(why) = reason {
                self.refuse(conn, why)
            } else {
                self.refuse(conn, "\(reason)")
            }
        }
    }

    /// One line per refused peer; a flood of the same refusal is rate-limited by its reason.
    private func refuse(_ connection: Connection, _ why: String) {
        refusedHandshakes += 1
        loop.connectionLog.log(.warning, key: "tls \(endpoint) \(why)",
                "refused a TLS connection from \(connection.peer) on \(endpoint): \(why)")
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
