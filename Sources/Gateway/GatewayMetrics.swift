import EventLoop
import Metrics
import ServiceSupport

/// The gateway's metrics (`kvraft_gateway_*`): requests by operation and outcome, their
/// duration from arrival to answer (retries included), failovers, and which kvds are usable.
final class GatewayMetrics {
    static let histogramBuckets: [String: [Duration]] = [
        "kvraft_gateway_request_duration_seconds": LatencyBuckets.requests,
    ]

    private let requests = RequestCounters(name: "kvraft_gateway_requests_total")
    private let duration = Metrics.Timer(label: "kvraft_gateway_request_duration_seconds")
    private let failovers = Counter(label: "kvraft_gateway_failovers_total")
    private var failoversCounted: UInt64 = 0
    private var upstreamUp: [UInt64: Gauge] = [:]
    private let connections = ClientConnectionMetrics(prefix: "kvraft_gateway")
    private var drained: [GatewayStats.Answer] = []

    init(nodes: [UInt64]) {
        for node in nodes { upstreamUp[node] = Gauge(label: "kvraft_gateway_upstream_up", dimensions: [("node", "\(node)")]) }
        failovers.increment(by: 0)
    }

    /// Moves what the core recorded since the last call into the metrics.
    func drain(_ core: inout GatewayCore) {
        guard !core.stats.answers.isEmpty else { return }
        core.drainStats(into: &drained)
        let now = EventLoop.monotonicNanos()
        for answer in drained {
            requests.count(answer.op, answer.status)
            duration.recordNanoseconds(Int64(now &- answer.startedAt))
        }
    }

    /// The gauges and the failover count (right before each scrape).
    func refresh(_ core: GatewayCore, listener: Listener?) {
        connections.refresh(listener)
        // Nodes learned from the configuration after start get their gauge at the next scrape;
        // nodes that left the cluster lose theirs.
        for node in core.config.nodeIDs where upstreamUp[node] == nil {
            upstreamUp[node] = Gauge(label: "kvraft_gateway_upstream_up", dimensions: [("node", "\(node)")])
        }
        for node in upstreamUp.keys where !core.config.nodeIDs.contains(node) {
            upstreamUp.removeValue(forKey: node)?.destroy()
        }
        for (node, gauge) in upstreamUp { gauge.record(core.upstreamIsUp(node) ? 1 : 0) }
        let seen = core.stats.failovers
        if seen > failoversCounted {
            failovers.increment(by: Int64(seen - failoversCounted))
            failoversCounted = seen
        }
    }
}
