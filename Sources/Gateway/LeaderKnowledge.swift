/// What the gateway believes about who leads: a (term, node) pair that only moves forward.
/// A claim is trusted only if its term is higher than the known one, or equal while the
/// known leader of that term has been given up (`nodeID == 0`): Raft has at most one leader
/// per term, so an older term's claim is stale news, typically from a follower that has not
/// heard of the election yet, or from a leader that was frozen while the others moved on.
struct LeaderKnowledge: Equatable {
    private(set) var term: UInt64 = 0
    /// 0 while unknown (never learnt, or given up on).
    private(set) var nodeID: UInt64 = 0

    /// Takes `(term, node)` if it is news; returns whether it was.
    @discardableResult
    mutating func learn(term claimTerm: UInt64, node: UInt64) -> Bool {
        guard node != 0, claimTerm != 0 else { return false }
        guard claimTerm > term || (claimTerm == term && nodeID == 0) else { return false }
        term = claimTerm
        nodeID = node
        return true
    }

    /// The known leader stopped serving (it said so, went silent or went away); its term stays,
    /// so stale claims of that term or older are still refused.
    mutating func giveUp(on node: UInt64) {
        if nodeID == node { nodeID = 0 }
    }
}
