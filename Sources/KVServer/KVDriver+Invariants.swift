/// What the driver promises about its own state, checked by the simulation after every step
/// (the counts are kept incrementally; this recomputes them).
extension KVDriver {
    /// A description of the first broken promise, or nil.
    public func invariantViolation() -> String? {
        let batched = pending.batchWaiters.count
        let inFlight = pending.inFlight.values.reduce(0) { $0 + $1.waiters.count }
        if pending.count != batched + inFlight { return "pending count \(pending.count) != \(batched) batched + \(inFlight) in flight" }
        let readsWaiting = reads.batch.count + reads.sent.values.reduce(0) { $0 + $1.waiters.count }
        if reads.count != readsWaiting { return "read count \(reads.count) != \(readsWaiting) waiting" }
        if !raftAttached && (pendingRequests != 0 || statusQueries.count != 0) {
            return "requests wait while raftd is detached (\(pendingRequests) requests, \(statusQueries.count) status queries)"
        }
        if !pending.isBatchEmpty && !(proposalFlushDue && passEndRequested) && groupCommitDeadline == nil {
            return "a batch of \(pending.batchWaiters.count) waits for nothing"
        }
        if !reads.batch.isEmpty && !passEndRequested { return "\(reads.batch.count) Gets wait for a pass end nobody asked for" }
        var copy = self
        if let wake = copy.nextWake(), armedAt.map({ $0 > wake }) ?? true {
            return "the next deadline is \(wake) but the timer is armed for \(armedAt.map(String.init) ?? "nothing")"
        }
        if outgoing != nil && !raftAttached { return "a snapshot is being sent without raftd" }
        for (index, id) in pending.byIndex {
            guard let proposal = pending.inFlight[id], proposal.index == index else { return "proposal \(id) at \(index) is not in flight there" }
            if index <= machine.appliedIndex { return "proposal \(id) waits for index \(index), already applied (\(machine.appliedIndex))" }
        }
        return nil
    }
}
