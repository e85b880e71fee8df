import CLibevent
#if canImport(Glibc)
import Glibc
#endif

/// The files a process's TLS identity is made of (PEM): its certificate (chain), its key,
/// and the CA every peer's certificate must chain to.
public struct TLSFiles: Sendable, Equatable {
    public var certificate: String
    public var key: String
    public var ca: String

    public init(certificate: String, key: String, ca: String) {
        self.certificate = certificate
        self.key = key
        self.ca = ca
    }
}

/// What a completed handshake showed of the peer: the names its certificate claims (DNS
/// subjectAltNames, then the subject CN). OpenSSL has already checked the chain to the CA
/// and the validity dates.
public struct PeerCertificate: Sendable, Equatable {
    public let names: [String]

    public init(names: [String]) { self.names = names }

    public func names(_ name: String) -> Bool { names.contains(name) }

    /// The node id of a `node-N` name, if the certificate has one.
    public var nodeIDs: [UInt64] {
        names.compactMap { $0.hasPrefix("node-") ? UInt64($0.dropFirst(5)) : nil }
    }
}

/// One OpenSSL context for a process: its certificate and key, the CA it trusts, TLS 1.2 at
/// least (1.3 preferred), and a certificate required of every peer (mutual TLS), both on
/// links it accepts and on links it dials.
///
/// Certificates are rotated by replacing the files in place: with `reloadsChangedFiles`, a new
/// session first looks at the files (at most once per `reloadCheckIntervalNanos`) and, when
/// they changed, later sessions start from a context built from them. Links already up keep
/// their session. Loop thread only once reloading is on.
public final class TLSContext {
    /// What new sessions start from. Replacing it is safe: each session holds its own
    /// reference to the context it was made from.
    private(set) var context: OpaquePointer
    public let files: TLSFiles
    /// Servers turn this on; a client that makes sessions from several threads leaves it off.
    public var reloadsChangedFiles = false
    public var reloadCheckIntervalNanos: UInt64 = 1_000_000_000
    /// Told when changed files were loaded (`.success`, with what they say) or did not load
    /// (`.failure`: the identity loaded before stays, and is tried again once the files change).
    public var onReload: ((Result<String, EventLoopError>) -> Void)?
    /// The files as they were just before `context` was built from them.
    private var loadedStamp: TLSFileStamp
    /// Files that did not load: not tried again until they change again.
    private var failedStamp: TLSFileStamp?
    private var lastCheckNanos: UInt64?
    /// When the certificate new links present stops being valid, in seconds since 1970 (UTC).
    public private(set) var certificateNotAfter: Int64?
    /// `checkFilesPeriodically`'s timer; it ends with this context.
    private var periodicCheck: Timer?

    public init(files: TLSFiles) throws {
        self.files = files
        // Stamped before loading: files replaced while loading differ from the stamp and
        // are loaded again at the next check.
        loadedStamp = TLSFileStamp(files)
        context = try Self.makeContext(files: files)
        certificateNotAfter = Self.notAfter(context)
    }

    private static func notAfter(_ context: OpaquePointer) -> Int64? {
        let seconds = kvraft_ssl_ctx_not_after(context)
        return seconds < 0 ? nil : Int64(seconds)
    }

    deinit {
        SSL_CTX_free(context)
    }

    private static func makeContext(files: TLSFiles) throws -> OpaquePointer {
        guard let context = SSL_CTX_new(TLS_method()) else { throw EventLoopError("SSL_CTX_new failed: \(TLSContext.errors())") }
        do {
            try configure(context, files: files)
            return context
        } catch {
            SSL_CTX_free(context)
            throw error
        }
    }

    private static func configure(_ context: OpaquePointer, files: TLSFiles) throws {
        guard kvraft_ssl_ctx_set_min_tls12(context) == 1, kvraft_ssl_ctx_set_max_tls13(context) == 1 else {
            throw EventLoopError("cannot set the TLS versions: \(TLSContext.errors())")
        }
        guard SSL_CTX_use_certificate_chain_file(context, files.certificate) == 1 else {
            throw EventLoopError("cannot load the TLS certificate \(files.certificate): \(TLSContext.errors())")
        }
        guard SSL_CTX_use_PrivateKey_file(context, files.key, SSL_FILETYPE_PEM) == 1 else {
            throw EventLoopError("cannot load the TLS key \(files.key): \(TLSContext.errors())")
        }
        guard SSL_CTX_check_private_key(context) == 1 else {
            _ = TLSContext.errors()
            throw EventLoopError("the TLS key \(files.key) does not belong to the certificate \(files.certificate)")
        }
        guard SSL_CTX_load_verify_locations(context, files.ca, nil) == 1 else {
            throw EventLoopError("cannot load the TLS CA \(files.ca): \(TLSContext.errors())")
        }
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        // libevent may hand OpenSSL a retried write from another buffer position. Never
        // SSL_MODE_ENABLE_PARTIAL_WRITE: SSL_write then returns after one 16 KiB record, and
        // libevent 2.1's do_write goes on with the next buffer chunk as if the whole one had been
        // written, so chunks above 16 KiB were sent with holes and out of order (it corrupted
        // every large frame on a TLS link; ConnectionTests.slowReaderKeepsServerOutputBounded).
        _ = kvraft_ssl_ctx_set_mode(context, Int(SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER))
    }

    /// With `reloadsChangedFiles`: when the files changed since they were loaded (looked at no
    /// more than once per interval), the sessions that follow use them; files that do not
    /// load leave the current identity in place.
    func reloadIfChanged(nowNanos: UInt64) {
        guard reloadsChangedFiles else { return }
        if let last = lastCheckNanos, nowNanos &- last < reloadCheckIntervalNanos { return }
        lastCheckNanos = nowNanos
        let stamp = TLSFileStamp(files)
        guard stamp != loadedStamp, stamp != failedStamp else { return }
        do {
            let fresh = try Self.makeContext(files: files)
            SSL_CTX_free(context)
            context = fresh
            certificateNotAfter = Self.notAfter(fresh)
            loadedStamp = stamp
            failedStamp = nil
            onReload?(.success("loaded the changed TLS files (certificate \(files.certificate)); new links use them"))
        } catch {
            failedStamp = stamp
            onReload?(.failure(EventLoopError("the TLS files changed but do not load, so new links keep the identity loaded before: \(error)")))
        }
    }

    /// Looks at the files every `interval` as well, not only when a link starts, so a rotation
    /// shows (in the log, in `certificateNotAfter`) while every link stays up. Loop thread.
    public func checkFilesPeriodically(every interval: Duration, on loop: EventLoop) {
        let timer = Timer(loop: loop, repeating: true)
        timer.action = { [weak self] in self?.reloadIfChanged(nowNanos: EventLoop.monotonicNanos()) }
        timer.schedule(after: interval)
        periodicCheck = timer
    }

    /// A session for one connection; on a dialed link, `expectedName` must be named by the
    /// peer's certificate (checked by OpenSSL during the handshake).
    func makeSession(expectedName: String?) throws -> OpaquePointer {
        reloadIfChanged(nowNanos: EventLoop.monotonicNanos())
        guard let ssl = SSL_new(context) else { throw EventLoopError("SSL_new failed: \(TLSContext.errors())") }
        if let expectedName, SSL_set1_host(ssl, expectedName) != 1 {
            SSL_free(ssl)
            throw EventLoopError("cannot expect peer name \(expectedName): \(TLSContext.errors())")
        }
        return ssl
    }

    /// OpenSSL's queued errors, oldest first, as one line (the queue is emptied).
    static func errors() -> String {
        var lines: [String] = []
        while case let code = ERR_get_error(), code != 0 { lines.append(describe(code)) }
        return lines.isEmpty ? "unknown error" : lines.joined(separator: "; ")
    }

    /// Whether OpenSSL has text for any of these codes (else the failure was not TLS's).
    static func saysAnything(_ codes: [UInt]) -> Bool {
        codes.contains { !describe($0).hasPrefix("reason(") }
    }

    static func describe(_ code: UInt) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        // "error:0A000086:SSL routines::certificate verify failed" → the reason.
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.split(separator: ":", omittingEmptySubsequences: false).last.map(String.init) ?? text
    }

    /// The names in the peer certificate of a finished handshake.
    static func peerCertificate(of ssl: OpaquePointer) -> PeerCertificate? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = kvraft_ssl_peer_names(ssl, &buffer, buffer.count)
        guard count >= 0 else { return nil }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return PeerCertificate(names: text.split(separator: "\n").map(String.init))
    }

    /// Why a handshake on `ssl` failed, as clearly as OpenSSL can say it.
    static func failure(ssl: OpaquePointer?, errors: [UInt]) -> String {
        // Codes OpenSSL has no text for ("reason(5)": a system call failed) say nothing more.
        var reasons = errors.map(describe).filter { !$0.hasPrefix("reason(") }
        if let ssl {
            let verify = SSL_get_verify_result(ssl)
            if verify != X509_V_OK {
                reasons.append("peer certificate: \(String(cString: X509_verify_cert_error_string(verify)))")
            }
        }
        if reasons.contains(where: { $0.contains("wrong version number") || $0.contains("http request") || $0.contains("packet length too long") || $0.contains("record layer failure") }) {
            reasons.append("the peer does not speak TLS")
        }
        return reasons.isEmpty ? "connection closed during the TLS handshake" : reasons.joined(separator: "; ")
    }
}
