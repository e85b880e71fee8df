import CLibevent
#if canImport(Glibc)
import Glibc
#endif

/// How a dialed link checks the peer: its certificate must chain to `context`'s CA and, when
/// `expectedName` is set, name it (SAN DNS or CN), e.g. `node-2` for the raftd dialed as node 2.
public struct TLSDial {
    public let context: TLSContext
    public let expectedName: String?

    public init(context: TLSContext, expectedName: String?) {
        self.context = context
        self.expectedName = expectedName
    }
}

/// How a listener admits TLS peers: their certificate must chain to `context`'s CA, and
/// `admit` (given its names) returns nil to accept or why it refuses.
public struct TLSAccept {
    public let context: TLSContext
    public let admit: (PeerCertificate) -> String?

    public init(context: TLSContext, admit: @escaping (PeerCertificate) -> String? = { _ in nil }) {
        self.context = context
        self.admit = admit
    }
}

/// The handshake's time limit, on the bufferevent's read and write timeouts: set before it
/// starts, removed once it is done (the links above keep their own idle rules).
enum TLSHandshake {
    /// A peer that closes without TLS's close_notify (as every process here does when it
    /// closes a link) is an end of stream, not an error.
    static func prepare(_ bev: OpaquePointer, milliseconds: Double) {
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1)
        limitTime(bev, milliseconds: milliseconds)
    }

    static func limitTime(_ bev: OpaquePointer, milliseconds: Double) {
        var limit = timeval(tv_sec: Int(milliseconds / 1000), tv_usec: Int(milliseconds.truncatingRemainder(dividingBy: 1000) * 1000))
        bufferevent_set_timeouts(bev, &limit, &limit)
    }

    static func finished(_ bev: OpaquePointer) {
        bufferevent_set_timeouts(bev, nil, nil)
    }
}
