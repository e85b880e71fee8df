/// The core's promises, stated as checks over its state (the simulation runs them after every
/// step; the shell runs them in debug builds).
extension GatewayCore {
    /// A description of the first broken promise, or nil.
    func invariantViolation(now: UInt64) -> String? {
        let anyUsable = upstreams.values.contains { $0.isUsable }
        for (key, pending) in requests {
            if pending.deadline < now { return "request \(key) outlived its deadline \(pending.deadline) (now \(now))" }
            switch pending.place {
            case .waiting:
                if !waiting.contains(key) { return "request \(key) waits but is not queued: nothing would ever send it" }
                if anyUsable { return "request \(key) waits although a node is usable" }
            case .backingOff:
                break
            case let .sent(node, upstreamID):
                guard let state = upstreams[node], state.connected else { return "request \(key) sent to disconnected node \(node)" }
                if state.owed[upstreamID] != .request(key: key) { return "request \(key) at node \(node) is not owed there" }
            }
        }
        for (node, state) in upstreams {
            for (_, owed) in state.owed {
                if case let .request(key) = owed, state.suspect {
                    return "request \(key) still pending at suspect node \(node)"
                }
            }
            if !state.connected && !state.owed.isEmpty { return "disconnected node \(node) still owes answers" }
        }
        if let wake = nextWakeup, let armed = armedAtForChecks, armed > wake {
            return "timer armed at \(armed) but something is due at \(wake)"
        }
        if !requests.isEmpty && nextWakeup == nil { return "requests pending with no timer armed" }
        return nil
    }
}
