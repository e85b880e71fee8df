import Wire

/// Connections (gateways) that asked to hear of every leadership change (an OP_STATUS request
/// with `watch_leadership`). Each gets a KvResponse under its subscription's request id,
/// carrying the leader's id and term, so it can move its traffic without waiting for a request
/// to fail. Bounded by the connections kvd holds: a closed connection is dropped (`remove`).
struct LeadershipWatchers {
    private var watchers: [Waiter] = []

    var count: Int { watchers.count }

    /// Subscribes; returns what to tell the newcomer at once (if anything is known).
    mutating func add(_ waiter: Waiter, current: Leadership, selfID: UInt64) -> KvResponse? {
        watchers.append(waiter)
        return Self.news(current, selfID: selfID, requestID: waiter.requestID)
    }

    /// The client's connection closed.
    mutating func remove(client: UInt64) {
        watchers.removeAll { $0.client == client }
    }

    /// Who to tell what about `leadership`.
    func push(_ leadership: Leadership, selfID: UInt64) -> [(client: UInt64, news: KvResponse)] {
        watchers.compactMap { waiter in
            Self.news(leadership, selfID: selfID, requestID: waiter.requestID).map { (waiter.client, $0) }
        }
    }

    /// Nothing is pushed while the leader is unknown: a watcher only trusts a higher term anyway.
    private static func news(_ leadership: Leadership, selfID: UInt64, requestID: UInt64) -> KvResponse? {
        let leader = leadership.isLeader ? selfID : leadership.leaderID
        guard leader != 0, leadership.term != 0 else { return nil }
        return KvResponse(requestID: requestID, status: .ok, leaderHint: String(leader), leaderTerm: leadership.term)
    }
}
