import Wire

/// Connections (gateways) that asked to hear of every leadership change (an OP_STATUS request
/// with `watch_leadership`). Each gets a KvResponse under its subscription's request id,
/// carrying the leader's id and term, so it can move its traffic without waiting for a request
/// to fail. Bounded by the connections kvd holds: a closed connection is dropped at the next push.
struct LeadershipWatchers {
    private var watchers: [Waiter] = []

    /// Subscribes, and tells the newcomer at once what is known now (if anything).
    mutating func add(_ waiter: Waiter, current: Leadership, selfID: UInt64) {
        watchers.removeAll { $0.client.connection.isClosed }
        watchers.append(waiter)
        if let news = Self.news(current, selfID: selfID, requestID: waiter.requestID) { waiter.client.reply(news) }
    }

    mutating func push(_ leadership: Leadership, selfID: UInt64) {
        watchers.removeAll { $0.client.connection.isClosed }
        for waiter in watchers {
            if let news = Self.news(leadership, selfID: selfID, requestID: waiter.requestID) { waiter.client.reply(news) }
        }
    }

    /// Nothing is pushed while the leader is unknown: a watcher only trusts a higher term anyway.
    private static func news(_ leadership: Leadership, selfID: UInt64, requestID: UInt64) -> KvResponse? {
        let leader = leadership.isLeader ? selfID : leadership.leaderID
        guard leader != 0, leadership.term != 0 else { return nil }
        return KvResponse(requestID: requestID, status: .ok, leaderHint: String(leader), leaderTerm: leadership.term)
    }
}
