import ArgumentParser
import EventLoop
import KVServer
import Logging
import ServiceSupport
import Wire

/// kvd: one node's key/value state machine, fed by its raftd, serving the client protocol.
struct Kvd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvd",
        abstract: "The kvraft key/value state machine of one node: applies the Raft log, serves clients.",
        discussion: """
        kvd connects to its node's raftd on --raft-socket (retrying for as long as it takes), rebuilds its state \
        from raftd's stream of committed entries, and serves the client protocol (proto/kv.proto) on --listen. \
        Only the leader's kvd completes requests; the others answer WRONG_LEADER with the leader's id.
        Example: kvd --id 1 --listen 127.0.0.1:9001 --raft-socket /tmp/kv1.sock
        """)

    @Option(help: "This node's id (the same as its raftd's --id).")
    var id: UInt64

    @Option(help: "HOST:PORT to serve the client protocol on (e.g. 0.0.0.0:9001).")
    var listen: String

    @Option(help: "Path of this node's raftd apply socket (raftd's --apply-socket).")
    var raftSocket: String

    @Option(help: "Milliseconds a request may wait to be applied before it is answered TIMEOUT.")
    var requestTimeoutMs: Double = 3000

    @Option(help: "Seconds a client session may stay idle (in the leader's log time) before it expires. Replicated: this kvd proposes it through the log when its node leads; until then (and on followers) the value in the log holds (default 3600).")
    var sessionTimeoutS: UInt64 = 3600

    @Option(help: "Largest value accepted, in bytes.")
    var maxValueBytes: Int = Limits.standard.maxValueBytes

    @Option(help: "Group commit: while this many proposals (log entries) are being committed, new requests gather into the next batch, proposed when one of them applies, so each Raft round and fsync carries what arrived during the previous one (a lone request never waits). 0: no limit, propose every batch at once.")
    var maxProposalsInFlight: Int = 1

    @Option(help: "Group commit: the longest a batch waits behind proposals in flight before it is proposed anyway, in milliseconds.")
    var groupCommitMaxWaitMs: Double = 2

    @OptionGroup(title: "Client limits")
    var clientLimits: ClientLimitOptions

    @OptionGroup(title: "TLS")
    var tls: TLSOptions

    @OptionGroup(title: "Metrics and health")
    var metrics: MetricsOptions

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        guard id > 0 else { throw ValidationError("--id must be positive") }
        guard Endpoint.parseHostPort(listen) != nil else { throw ValidationError("--listen '\(listen)' is not HOST:PORT") }
        guard !raftSocket.isEmpty else { throw ValidationError("--raft-socket must be a path") }
        guard requestTimeoutMs >= 10 else { throw ValidationError("--request-timeout-ms must be at least 10") }
        guard sessionTimeoutS >= 1 else { throw ValidationError("--session-timeout-s must be at least 1") }
        var limits = Limits.standard
        limits.maxValueBytes = maxValueBytes
        if let problem = limits.problems.first { throw ValidationError("--max-value-bytes: \(problem)") }
        guard (0...1_000).contains(maxProposalsInFlight) else { throw ValidationError("--max-proposals-in-flight must be between 0 and 1000") }
        guard (1...10_000).contains(groupCommitMaxWaitMs) else { throw ValidationError("--group-commit-max-wait-ms must be between 1 and 10000") }
    }

    func run() throws {
        ProcessLogging.bootstrap(process: "kvd[\(id)]", level: logLevel)
        let logger = Logger(label: "kvd")
        var config = KVServerConfig(nodeID: id, listen: Endpoint.parseHostPort(listen)!, raftSocketPath: raftSocket)
        config.requestTimeout = .milliseconds(requestTimeoutMs)
        config.sessionTimeoutMs = sessionTimeoutS * 1000
        config.maxValueBytes = maxValueBytes
        config.maxProposalsInFlight = maxProposalsInFlight
        config.groupCommitMaxWait = .milliseconds(groupCommitMaxWaitMs)
        config.tls = tls.files
        let registry = metrics.endpoint.map { _ in OperatorEndpoint.bootstrapMetrics(histogramBuckets: [:]) }
        let loop = EventLoop()
        loop.limits = clientLimits.limits
        let server = KVServer(loop: loop, config: config, logger: logger)
        var operatorEndpoint: OperatorEndpoint?
        do {
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
        let drainTimer = Timer(loop: loop, repeating: true) {
            if !server.hasUnsentReplies { loop.stop() }
        }
        let deadline = Timer(loop: loop) { loop.stop() }
        let signals = SignalWatcher(loop: loop) { signal in
            logger.info("signal \(signal): shutting down")
            server.stop()
            // Let replies drain for up to a second, then go.
            drainTimer.schedule(milliseconds: 10)
            deadline.schedule(milliseconds: 1000)
        }
        loop.run()
        withExtendedLifetime((signals, drainTimer, deadline, operatorEndpoint)) {}
    }
}

Kvd.main()
