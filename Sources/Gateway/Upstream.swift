import EventLoop
import ServiceSupport
import Wire

/// The gateway's pooled link to one node's kvd: one connection carrying many requests in
/// flight, matched to responses by the gateway's own request ids.
final class Upstream {
    let nodeID: UInt64
    let dialer: Dialer
    var decoder: FrameDecoder
    /// Upstream request id → the forward waiting for it.
    var inFlight: [UInt64: Forward] = [:]
    var scratch: [UInt8] = []

    init(nodeID: UInt64, dialer: Dialer, frameLimit: Int) {
        self.nodeID = nodeID
        self.dialer = dialer
        decoder = FrameDecoder(frameLimit: frameLimit)
    }

    var isUsable: Bool {
        guard let connection = dialer.connection else { return false }
        return connection.isWritable
    }

    func send(_ request: KvRequest) -> Bool {
        guard let connection = dialer.connection else { return false }
        scratch.removeAll(keepingCapacity: true)
        request.appendFrame(to: &scratch)
        return connection.write(scratch)
    }
}

/// One client request on its way through the gateway.
final class Forward {
    let client: ClientLink
    let clientRequestID: UInt64
    var request: KvRequest
    let deadline: UInt64
    var attempts = 0
    var upstreamID: UInt64 = 0
    var node: UInt64 = 0
    /// A node not to try next (it just timed out).
    var avoid: UInt64 = 0
    /// For client_id = 0: the gateway session lent to this request.
    var session: SessionPool.Session?
    var done = false

    init(client: ClientLink, request: KvRequest, deadline: UInt64) {
        self.client = client
        self.clientRequestID = request.requestID
        self.request = request
        self.deadline = deadline
    }
}
