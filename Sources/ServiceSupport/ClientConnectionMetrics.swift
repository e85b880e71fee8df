import EventLoop
import Metrics

/// `<prefix>_client_connections` (open now) and `<prefix>_client_connections_refused_total`
/// (closed at once because the connection cap was reached) for a client listener: what an
/// operator watches against `--max-connections`. Read from the listener right before each
/// scrape, so accepting a connection costs nothing extra.
public final class ClientConnectionMetrics {
    private let open: Gauge
    private let refused: Counter
    private var refusedCounted = 0

    public init(prefix: String) {
        open = Gauge(label: "\(prefix)_client_connections")
        refused = Counter(label: "\(prefix)_client_connections_refused_total")
        refused.increment(by: 0)
    }

    public func refresh(_ listener: Listener?) {
        guard let listener else { return open.record(0) }
        open.record(Int64(listener.openConnections))
        if listener.refusedConnections > refusedCounted {
            refused.increment(by: Int64(listener.refusedConnections - refusedCounted))
            refusedCounted = listener.refusedConnections
        }
    }
}
