import ServiceSupport

/// What raftd shows operators: its health and, when enabled, its metrics.
extension RaftServer {
    /// Bucket bounds of raftd's duration histograms, for `OperatorEndpoint.bootstrapMetrics`.
    public static var histogramBuckets: [String: [Duration]] { RaftMetrics.histogramBuckets }

    /// Sets the gauges read from the core (called right before each scrape).
    public func refreshMetrics() {
        metrics?.refresh(status)
    }

    /// Serving while it sees a leader (itself included) and is allowed to serve.
    public var health: Health {
        if let refusal { return .notServing(reason: refusal) }
        let status = status
        guard status.leader != 0 else {
            return .notServing(reason: "raftd \(status.id) sees no leader in term \(status.term) (\(status.role)); a majority of nodes may be unreachable")
        }
        return .serving
    }
}
