import EventLoop
import ServiceSupport
import Wire

/// Everything a kvgateway process is told on its command line.
public struct GatewayConfig: Sendable {
    public var listen: Endpoint
    /// Each node's kvd client address by node id (leader hints are node ids).
    public var nodes: [UInt64: Endpoint]
    /// Mutual TLS on the client port and the kvd links (`--tls-cert/--tls-key/--tls-ca`); nil: plaintext.
    public var tls: TLSFiles?
    /// With TLS: only client certificates naming one of these are admitted; nil: any the CA signed.
    public var allowedClientNames: [String]?
    /// How long the gateway keeps retrying a request before answering UNAVAILABLE.
    public var requestDeadline: Duration = .seconds(5)
    /// How long one attempt at a kvd that still answers its health checks may go unanswered
    /// before it is retried at another node (a node that stops answering altogether is caught
    /// sooner: after ~300 ms of silence it is suspect and its requests go elsewhere).
    public var attemptTimeout: Duration = .seconds(2)
    /// Requests refused at the gateway (BAD_REQUEST) without a hop; keep equal to kvd's limits.
    public var maxKeyBytes: Int = RequestValidation.defaultMaxKeyBytes
    public var maxValueBytes: Int = RequestValidation.defaultMaxValueBytes
    /// Requests forwarded and not yet answered, over all clients; beyond it, UNAVAILABLE.
    public var maxInFlight: Int = 200_000
    public var frameLimit: Int = Limits.standard.clientFrameBytes
    /// Idle gateway-owned sessions kept for client_id = 0 requests.
    public var maxIdleSessions: Int = 4096

    public init(listen: Endpoint, nodes: [UInt64: Endpoint]) {
        self.listen = listen
        self.nodes = nodes
    }
}
