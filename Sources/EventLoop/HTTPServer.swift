import CLibevent
#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP/1.1 server on the loop, over libevent's evhttp: GET only, answered at once by
/// `handler` (path → response). For operators' endpoints (`/metrics`, `/health`), not for
/// client traffic. Bounded by evhttp: 8 KiB of headers, no request body, 10 s per request.
public final class HTTPServer {
    public struct Response: Sendable {
        public var status: Int
        public var contentType: String
        public var body: [UInt8]

        public init(status: Int, contentType: String, body: [UInt8]) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }

        public static func text(_ status: Int, _ text: String) -> Response {
            Response(status: status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8))
        }
    }

    /// Keeps the event base alive as long as the server exists.
    private let loop: EventLoop
    private var http: OpaquePointer?
    private let handler: (String) -> Response
    public let endpoint: Endpoint
    /// The bound port (useful after binding port 0).
    public private(set) var port: Int = 0

    public init(loop: EventLoop, endpoint: Endpoint, handler: @escaping (String) -> Response) throws {
        guard case let .tcp(host, requestedPort) = endpoint else { throw EventLoopError("an HTTP server needs HOST:PORT, not \(endpoint)") }
        self.loop = loop
        self.endpoint = endpoint
        self.handler = handler
        guard let http = evhttp_new(loop.base) else { throw EventLoopError("evhttp_new failed") }
        self.http = http
        evhttp_set_allowed_methods(http, UInt16(EVHTTP_REQ_GET.rawValue))
        evhttp_set_timeout(http, 10)
        evhttp_set_max_headers_size(http, 8192)
        evhttp_set_max_body_size(http, 0)
        guard let bound = evhttp_bind_socket_with_handle(http, host, UInt16(requestedPort)) else {
            let code = errno
            evhttp_free(http)
            self.http = nil
            throw EventLoopError.errno("cannot serve HTTP on \(endpoint)", code: code)
        }
        port = HTTPServer.boundPort(evhttp_bound_socket_get_fd(bound))
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        evhttp_set_gencb(http, { request, ctx in
            guard let request, let ctx else { return }
            Unmanaged<HTTPServer>.fromOpaque(ctx).takeUnretainedValue().serve(request)
        }, ctx)
    }

    deinit {
        close()
    }

    /// Stops serving (requests under way are dropped).
    public func close() {
        if let http { evhttp_free(http) }
        http = nil
    }

    private func serve(_ request: OpaquePointer) {
        var path = "/"
        if let uri = evhttp_request_get_evhttp_uri(request), let cPath = evhttp_uri_get_path(uri) {
            path = String(cString: cPath)
        }
        let response = handler(path.isEmpty ? "/" : path)
        guard let body = evbuffer_new() else { return evhttp_send_error(request, 500, nil) }
        defer { evbuffer_free(body) }
        response.body.withUnsafeBytes { raw in _ = evbuffer_add(body, raw.baseAddress, raw.count) }
        let headers = evhttp_request_get_output_headers(request)
        evhttp_add_header(headers, "Content-Type", response.contentType)
        evhttp_send_reply(request, Int32(response.status), HTTPServer.reason(response.status), body)
    }

    private static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 404: "Not Found"
        case 503: "Service Unavailable"
        default: "Status"
        }
    }

    private static func boundPort(_ fd: Int32) -> Int {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        return withUnsafeMutableBytes(of: &storage) { raw -> Int in
            guard getsockname(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length) == 0 else { return 0 }
            let family = Int32(raw.load(as: sa_family_t.self))
            if family == AF_INET { return Int(UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port)) }
            if family == AF_INET6 { return Int(UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port)) }
            return 0
        }
    }
}
