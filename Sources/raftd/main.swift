import ArgumentParser
import EventLoop
import Logging
import RaftServer
import ServiceSupport

/// raftd: one node's consensus process — elections, replication and the durable log.
struct Raftd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raftd",
        abstract: "Raft consensus for one kvraft node: elections, replication, the durable log, and the apply socket its kvd uses.",
        discussion: """
        Each node runs one raftd and one kvd. raftd dials every other node at exactly the address --peers gives \
        for it, accepts peer connections on --listen, and serves its kvd on the Unix socket --apply-socket \
        (created with mode 0600). Everything durable lives in --data-dir.
        Example: raftd --id 1 --listen 127.0.0.1:7001 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 \
        --apply-socket /tmp/kv1.sock --data-dir /var/lib/kvraft/1
        """)

    @Option(help: "This node's id: a positive integer that appears in --peers.")
    var id: UInt64

    @Option(help: "HOST:PORT to accept peer connections on (e.g. 0.0.0.0:7001).")
    var listen: String

    @Option(help: "Every node's peer address, this node included: ID=HOST:PORT,ID=HOST:PORT,… Seeds a brand-new cluster (all voters); afterwards the configuration in the log decides, and these only override where a listed node is dialed. Optional with --join.")
    var peers: NodeAddresses?

    @Flag(help: "Join an existing cluster: start with no configuration and wait for its leader to contact this node after `kvctl member add ID --raft HOST:PORT --kvd HOST:PORT`.")
    var join = false

    @Option(help: "Seed only: each node's kvd address (ID=HOST:PORT,…), recorded in the configuration so gateways learn them.")
    var kvdPeers: NodeAddresses?

    @Option(help: "Path of the Unix socket this node's kvd connects to.")
    var applySocket: String

    @Option(help: "Directory holding this node's log and hard state (created if missing).")
    var dataDir: String

    @Option(help: "Name of the cluster; peers and data dirs of another cluster are refused.")
    var clusterID: String = "kvraft"

    @Option(help: "Leader heartbeat interval in milliseconds.")
    var heartbeatMs: Double = 50

    @Option(help: "Election timeout in milliseconds (randomized between 1x and 2x).")
    var electionMs: Double = 300

    @Option(help: "Ask kvd for a snapshot and compact the log once this many bytes of entries were logged since the last one (and at least as many as the last snapshot's size).")
    var snapshotLogBytes: Int = 16 << 20

    @Option(help: "Bytes of entries kept before a snapshot's index when compacting, so slightly lagging followers catch up without a snapshot.")
    var snapshotCatchUpBytes: Int = 2 << 20

    @Option(help: "How kvd's Gets are made linearizable: index (ReadIndex: one heartbeat round per batch of reads, no log entry), lease (no round while the leader's lease holds; assumes clock rates differ by at most --lease-drift-bound), or log (every Get is a log entry).")
    var readMode: ReadMode = .index

    @Option(help: "Lease mode: the largest relative difference between two nodes' clock rates (0 to 0.5). The lease lasts (election timeout - 2 ticks) x (1 - this bound) after the heartbeat round a majority acknowledged was sent.")
    var leaseDriftBound: Double = 0.1

    @Option(help: "Peer connections accepted at once; beyond it a new connection is closed at once.")
    var maxConnections: Int = ProcessLimits().maxConnectionsPerListener

    @Option(help: "Milliseconds a peer may take to finish a frame it started before its connection is closed.")
    var partialFrameTimeoutMs: Double = ProcessLimits().partialFrameTimeoutMs

    @OptionGroup(title: "TLS")
    var tls: TLSOptions

    @OptionGroup(title: "Metrics and health")
    var metrics: MetricsOptions

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        guard id > 0 else { throw ValidationError("--id must be positive") }
        if !join {
            guard let peers else { throw ValidationError("--peers is required (or --join, to join an existing cluster)") }
            guard peers.byID[id] != nil else { throw ValidationError("--peers must include this node (\(id))") }
        }
        guard Endpoint.parseHostPort(listen) != nil else { throw ValidationError("--listen '\(listen)' is not HOST:PORT") }
        for (peer, address) in peers?.byID ?? [:] where Endpoint.parseHostPort(address) == nil {
            throw ValidationError("--peers: node \(peer) address '\(address)' is not HOST:PORT")
        }
        guard heartbeatMs >= 1 else { throw ValidationError("--heartbeat-ms must be at least 1") }
        guard electionMs >= heartbeatMs * 3 else { throw ValidationError("--election-ms must be at least 3x --heartbeat-ms") }
        guard snapshotLogBytes >= 1 else { throw ValidationError("--snapshot-log-bytes must be positive") }
        guard snapshotCatchUpBytes >= 0 else { throw ValidationError("--snapshot-catch-up-bytes must not be negative") }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        guard partialFrameTimeoutMs >= 10 else { throw ValidationError("--partial-frame-timeout-ms must be at least 10") }
        if let problem = serverConfig.readLeaseProblem { throw ValidationError("--read-mode lease: \(problem)") }
    }

    /// The flags as raftd's configuration (addresses already validated).
    var serverConfig: RaftServerConfig {
        var endpoints: [UInt64: Endpoint] = [:]
        for (peer, address) in peers?.byID ?? [:] { endpoints[peer] = Endpoint.parseHostPort(address)! }
        var config = RaftServerConfig(
            nodeID: id, clusterID: ClusterID.hash(clusterID), listen: Endpoint.parseHostPort(listen)!, peers: endpoints,
            applySocketPath: applySocket, dataDir: dataDir,
            heartbeat: .microseconds(Int64(heartbeatMs * 1_000)), election: .microseconds(Int64(electionMs * 1_000)))
        config.snapshotLogBytes = snapshotLogBytes
        config.snapshotCatchUpBytes = snapshotCatchUpBytes
        config.readMode = readMode
        config.leaseDriftBound = leaseDriftBound
        config.tls = tls.files
        config.join = join
        config.kvdPeers = kvdPeers?.byID ?? [:]
        return config
    }

    func run() throws {
        ProcessLogging.bootstrap(process: "raftd[\(id)]", level: logLevel)
        let logger = Logger(label: "raftd")
        let config = serverConfig
        let registry = metrics.endpoint.map { _ in OperatorEndpoint.bootstrapMetrics(histogramBuckets: RaftServer.histogramBuckets) }
        let loop = EventLoop()
        loop.limits.maxConnectionsPerListener = maxConnections
        loop.limits.partialFrameTimeoutMs = partialFrameTimeoutMs
        let server: RaftServer
        var operatorEndpoint: OperatorEndpoint?
        do {
            server = try RaftServer(loop: loop, config: config, logger: logger)
            try server.start()
            if let registry, let endpoint = metrics.endpoint {
                server.enableMetrics()
                operatorEndpoint = try OperatorEndpoint(loop: loop, endpoint: endpoint, registry: registry,
                                                        refresh: { server.refreshMetrics() }, health: { server.health })
            }
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(1)
        }
        var signalled = false
        let signals = SignalWatcher(loop: loop) { signal in
            if signalled {
                // A second signal: no more waiting for the handover.
                server.stop()
                return loop.stop()
            }
            signalled = true
            logger.info("signal \(signal): shutting down")
            server.shutdown(handover: config.election * 2) { loop.stop() }
        }
        var failed = false
        server.onFatalError = { reason in
            logger.critical("\(reason); stopping")
            failed = true
            loop.stop()
        }
        loop.run()
        withExtendedLifetime((signals, operatorEndpoint)) {}
        if failed { throw ExitCode(1) }
    }
}

extension ReadMode: ExpressibleByArgument {}

Raftd.main()
