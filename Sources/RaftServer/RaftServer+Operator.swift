import ServiceSupport

/// What raftd shows operators: its health and, when enabled, its metrics.
extension RaftServer {
    /// Bucket bounds of raftd's duration histograms, for `OperatorEndpoint.bootstrapMetrics`.
    public static var histogramBuckets: [String: [Duration]] { RaftMetrics.histogramBuckets }

    /// Sets the gauges read from the core (called right before each scrape).
    public func refreshMetrics() {
        metrics?.refresh(status)
    }

    /// Serving while it is a member, sees a leader (itself included) and is allowed to serve.
    public var health: Health {
        if let refusal { return .notServing(reason: refusal) }
        let status = status
        // Otherwise a removed node reports "no leader; a majority may be unreachable", which
        // sends an operator looking for a network fault (and it would report healthy if it
        // still remembered the last leader it heard: it no longer campaigns to replace it).
        if driver.isRemovedFromCluster {
            return .notServing(reason: "raftd \(status.id) was removed from the cluster and no longer votes or serves; stop it, or add it again (kvctl member add) with a fresh data dir")
        }
        guard status.leader != 0 else {
            return .notServing(reason: "raftd \(status.id) sees no leader in term \(status.term) (\(status.role)); a majority of nodes may be unreachable")
        }
        return .serving
    }
}
