/// Static configuration of one Raft node.
public struct RaftConfig: Sendable, Hashable {
    /// This node's id; must be non-zero and listed in `peers`.
    public var id: UInt64
    /// Every voter's id, this node included, when a brand-new cluster is seeded; empty for a
    /// node that joins an existing cluster (it learns the configuration from the leader). Used
    /// only while neither the log nor a snapshot holds a configuration.
    public var peers: [UInt64]
    /// Overrides `peers` as the seed configuration (e.g. to carry addresses).
    public var initialConfiguration: Configuration?
    /// A learner marked for auto-promotion is promoted once its log is within this many entries
    /// of the leader's (and it answered within the election timeout).
    public var autoPromoteLag: UInt64
    /// A follower that hears nothing from a leader for a randomized timeout in
    /// `[electionTicks, 2 * electionTicks)` ticks starts an election.
    public var electionTicks: Int
    /// A leader sends heartbeats every `heartbeatTicks` ticks; must be less than `electionTicks`.
    public var heartbeatTicks: Int
    /// Unacknowledged appends a leader keeps in flight to one follower while pipelining.
    public var maxInflightAppends: Int
    /// Upper bound on the entry bytes (see `Entry.byteSize`) in one append; an append always
    /// carries at least one entry when any is due, so a single huge entry still goes through.
    public var maxAppendBytes: Int
    /// Run a pre-vote round before a real election so that a node that cannot win (for example one
    /// that was partitioned away) does not bump the term and disrupt a healthy leader.
    public var preVote: Bool
    /// A leader steps down when it has not heard from a majority within an election timeout, and a
    /// follower that heard from a leader within the election timeout ignores (pre-)vote requests.
    public var checkQuorum: Bool
    /// Seed of the generator used for randomized election timeouts.
    public var randomSeed: UInt64
    /// Lease-based reads (see ReadLease.swift); nil: every read confirms leadership with a
    /// heartbeat round (ReadIndex).
    public var readLease: ReadLease?

    public init(
        id: UInt64,
        peers: [UInt64],
        electionTicks: Int = 10,
        heartbeatTicks: Int = 1,
        maxInflightAppends: Int = 64,
        maxAppendBytes: Int = 1 << 20,
        preVote: Bool = true,
        checkQuorum: Bool = true,
        randomSeed: UInt64 = 0,
        readLease: ReadLease? = nil,
        initialConfiguration: Configuration? = nil,
        autoPromoteLag: UInt64 = 64
    ) {
        self.id = id
        self.peers = peers
        self.electionTicks = electionTicks
        self.heartbeatTicks = heartbeatTicks
        self.maxInflightAppends = maxInflightAppends
        self.maxAppendBytes = maxAppendBytes
        self.preVote = preVote
        self.checkQuorum = checkQuorum
        self.randomSeed = randomSeed
        self.readLease = readLease
        self.initialConfiguration = initialConfiguration
        self.autoPromoteLag = autoPromoteLag
    }

    /// The configuration a node starts from when its log and snapshot hold none.
    var seedConfiguration: Configuration {
        initialConfiguration ?? Configuration(voters: peers)
    }

    /// Stops with a message naming the misconfiguration; a node with a bad config must not start.
    func validate() {
        precondition(id != 0, "raft config: id 0 is reserved for 'no node'; give this node a non-zero id")
        precondition(peers.isEmpty || peers.contains(id),
                     "raft config: id \(id) is not among peers \(peers); list every voter, this node included (or none, to join)")
        precondition(Set(peers).count == peers.count, "raft config: peers \(peers) contain duplicates")
        precondition(!peers.contains(0), "raft config: peer id 0 is reserved for 'no node'")
        precondition(heartbeatTicks >= 1 && electionTicks > heartbeatTicks,
                     "raft config: need 1 <= heartbeatTicks (\(heartbeatTicks)) < electionTicks (\(electionTicks))")
        precondition(maxInflightAppends >= 1, "raft config: maxInflightAppends must be at least 1")
        precondition(maxAppendBytes >= 1, "raft config: maxAppendBytes must be at least 1")
        if let readLease, let problem = readLease.problem(electionTicks: electionTicks, checkQuorum: checkQuorum) {
            preconditionFailure("raft config: \(problem)")
        }
    }
}
