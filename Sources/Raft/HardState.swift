/// What Raft must persist (and fsync) before sending any message that depends on it.
public struct HardState: Sendable, Hashable {
    public var term: UInt64
    /// Node voted for in `term`, 0 for none.
    public var vote: UInt64
    public var commit: UInt64

    public init(term: UInt64 = 0, vote: UInt64 = 0, commit: UInt64 = 0) {
        self.term = term
        self.vote = vote
        self.commit = commit
    }
}
