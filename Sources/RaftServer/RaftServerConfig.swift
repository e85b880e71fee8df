import EventLoop
import Raft
import Wire

/// Everything a raftd process is told on its command line.
public struct RaftServerConfig: Sendable {
    public var nodeID: UInt64
    public var clusterID: UInt64
    /// Where this node accepts peer connections.
    public var listen: Endpoint
    /// Every node's peer address by id, this node's own included (and ignored for dialing).
    public var peers: [UInt64: Endpoint]
    public var applySocketPath: String
    public var dataDir: String
    /// Mutual TLS on the peer links (`--tls-cert/--tls-key/--tls-ca`); nil: plaintext.
    public var tls: TLSFiles?
    /// How often the core ticks; heartbeat and election timeouts are whole numbers of ticks.
    public var tick: Duration
    public var heartbeat: Duration
    public var election: Duration
    /// Most bytes of committed entries in one frame streamed to kvd.
    public var applyChunkBytes: Int = 1 << 20
    /// Most log bytes in one append message to a follower.
    public var maxAppendBytes: Int = Limits.standard.maxAppendBytes
    /// Once this many bytes of entries were logged since the last snapshot, raftd asks kvd for
    /// a snapshot and compacts the log up to it (bounding memory, disk and restart time).
    public var snapshotLogBytes: Int = 16 << 20
    /// Entry bytes kept before a snapshot's index when compacting, so a follower that is only
    /// slightly behind catches up with appends instead of a whole snapshot.
    public var snapshotCatchUpBytes: Int = 2 << 20
    /// How kvd's Gets are made linearizable (`ReadMode`).
    public var readMode: ReadMode = .index
    /// Lease mode: the largest relative difference between two nodes' clock rates.
    public var leaseDriftBound: Double = 0.1
    /// `--join`: start with no configuration and wait to be added by the cluster's leader;
    /// `peers` then only names where to reach peers until the configuration arrives.
    public var join = false
    /// kvd addresses by node id (`--kvd-peers`), recorded in the seed configuration so gateways
    /// can learn them; optional.
    public var kvdPeers: [UInt64: String] = [:]

    /// The configuration a brand-new cluster starts from: every `--peers` node a voter, with
    /// its raft (and, if given, kvd) address; nil when joining.
    public var seedConfiguration: Configuration? {
        guard !join else { return nil }
        return Configuration(members: peers.keys.sorted().map { id in
            Member(id: id, role: .voter, raftAddress: "\(peers[id]!)", kvdAddress: kvdPeers[id] ?? "")
        })
    }

    public init(nodeID: UInt64, clusterID: UInt64, listen: Endpoint, peers: [UInt64: Endpoint], applySocketPath: String,
                dataDir: String, heartbeat: Duration = .milliseconds(50), election: Duration = .milliseconds(300)) {
        self.nodeID = nodeID
        self.clusterID = clusterID
        self.listen = listen
        self.peers = peers
        self.applySocketPath = applySocketPath
        self.dataDir = dataDir
        self.heartbeat = heartbeat
        self.election = election
        // Ticks fine enough that randomized election timeouts spread well.
        tick = max(.milliseconds(1), min(.milliseconds(10), heartbeat))
    }

    /// The read lease of `--read-mode lease`: the longest that cannot outlive an election
    /// (`ReadLease`); nil in the other modes.
    public var readLease: ReadLease? {
        guard readMode == .lease else { return nil }
        return ReadLease.longest(electionTicks: electionTicks, tickNanos: tick.nanoseconds, driftBound: leaseDriftBound)
    }

    /// Why these flags cannot run (lease mode only), nil when they can.
    public var readLeaseProblem: String? {
        readLease?.problem(electionTicks: electionTicks, checkQuorum: true)
    }

    /// What the driver decides by.
    public var driverConfig: RaftDriverConfig {
        var driver = RaftDriverConfig(nodeID: nodeID, tick: tick)
        driver.readMode = readMode
        driver.applyChunkBytes = applyChunkBytes
        driver.snapshotLogBytes = snapshotLogBytes
        driver.snapshotCatchUpBytes = snapshotCatchUpBytes
        driver.listenAddress = "\(listen)"
        return driver
    }

    var heartbeatTicks: Int { max(1, Int((heartbeat / tick).rounded())) }
    var electionTicks: Int { max(heartbeatTicks * 2 + 1, Int((election / tick).rounded())) }
}
