import EventLoop
import Wire

/// The shell's pooled link to one node's kvd: one connection carrying many requests in flight,
/// matched to responses by the core's upstream request ids.
final class Upstream {
    let nodeID: UInt64
    let dialer: Dialer
    var reader: FrameReader<KvResponse>
    private var scratch: [UInt8] = []

    init(nodeID: UInt64, dialer: Dialer, frameLimit: Int) {
        self.nodeID = nodeID
        self.dialer = dialer
        reader = FrameReader(frameLimit: frameLimit)
    }

    /// Queues the frame; a connection that cannot take it closes, and the dialer reports that.
    func send(_ request: KvRequest) {
        guard let connection = dialer.connection else { return }
        scratch.removeAll(keepingCapacity: true)
        request.appendFrame(to: &scratch)
        connection.write(scratch)
    }
}
