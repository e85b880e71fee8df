import ArgumentParser
import EventLoop
import Gateway
import Logging
import ServiceSupport
import Wire

/// kvgateway: a stateless front door that finds the leader and forwards client requests.
struct Kvgateway: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvgateway",
        abstract: "Stateless kvraft gateway: takes client requests and forwards them to the leader's kvd, retrying until a deadline.",
        discussion: """
        Run as many as you like; clients may use any of them. Requests are forwarded unchanged (same client_id \
        and seq), so retries stay exactly-once; requests with client_id 0 get a gateway-owned session.
        Example: kvgateway --listen 0.0.0.0:8000 --nodes 1=10.0.0.1:9001,2=10.0.0.2:9001,3=10.0.0.3:9001
        """)

    @Option(help: "HOST:PORT to serve clients on.")
    var listen: String

    @Option(help: "Each node's kvd client address by node id: ID=HOST:PORT,ID=HOST:PORT,…")
    var nodes: NodeAddresses

    @Option(help: "Milliseconds to keep retrying a request (leader changes, timeouts) before answering UNAVAILABLE.")
    var requestDeadlineMs: Double = 5000

    @Option(help: "Milliseconds one attempt at a kvd that still answers health checks may go unanswered before the request is retried at another node (a silent node is given up on after ~300 ms).")
    var attemptTimeoutMs: Double = 2000

    @Option(help: "Largest value accepted, in bytes (keep equal to kvd's --max-value-bytes).")
    var maxValueBytes: Int = Limits.standard.maxValueBytes

    @OptionGroup(title: "Client limits")
    var clientLimits: ClientLimitOptions

    @OptionGroup(title: "TLS")
    var tls: TLSOptions

    @Option(help: "With TLS: admit only client certificates naming one of these (DNS subjectAltName or CN), comma-separated; default: any certificate the CA signed.")
    var allowedClientNames: String?

    @OptionGroup(title: "Metrics and health")
    var metrics: MetricsOptions

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        guard Endpoint.parseHostPort(listen) != nil else { throw ValidationError("--listen '\(listen)' is not HOST:PORT") }
        for (node, address) in nodes.byID where Endpoint.parseHostPort(address) == nil {
            throw ValidationError("--nodes: node \(node) address '\(address)' is not HOST:PORT")
        }
        guard requestDeadlineMs >= 10 else { throw ValidationError("--request-deadline-ms must be at least 10") }
        var limits = Limits.standard
        limits.maxValueBytes = maxValueBytes
        if let problem = limits.problems.first { throw ValidationError("--max-value-bytes: \(problem)") }
        guard attemptTimeoutMs >= 10 else { throw ValidationError("--attempt-timeout-ms must be at least 10") }
        if let allowedClientNames {
            guard tls.files != nil else { throw ValidationError("--allowed-client-names needs TLS (--tls-cert, --tls-key, --tls-ca)") }
            guard !clientNames(allowedClientNames).isEmpty else { throw ValidationError("--allowed-client-names names no certificate") }
        }
    }

    private func clientNames(_ list: String) -> [String] {
        list.split(separator: ",").map { $0.filter { $0 != " " } }.filter { !$0.isEmpty }
    }

    func run() throws {
        ProcessLogging.bootstrap(process: "kvgateway", level: logLevel)
        let logger = Logger(label: "kvgateway")
        var endpoints: [UInt64: Endpoint] = [:]
        for (node, address) in nodes.byID { endpoints[node] = Endpoint.parseHostPort(address)! }
        var config = GatewayConfig(listen: Endpoint.parseHostPort(listen)!, nodes: endpoints)
        config.requestDeadline = .milliseconds(requestDeadlineMs)
        config.attemptTimeout = .milliseconds(attemptTimeoutMs)
        config.maxValueBytes = maxValueBytes
        config.tls = tls.files
        config.allowedClientNames = allowedClientNames.map(clientNames)
        let registry = metrics.endpoint.map { _ in OperatorEndpoint.bootstrapMetrics(histogramBuckets: Gateway.histogramBuckets) }
        let loop = EventLoop()
        loop.limits = clientLimits.limits
        let gateway = Gateway(loop: loop, config: config, logger: logger)
        var operatorEndpoint: OperatorEndpoint?
        do {
            try gateway.start()
            if let registry, let endpoint = metrics.endpoint {
                gateway.enableMetrics()
                operatorEndpoint = try OperatorEndpoint(loop: loop, endpoint: endpoint, registry: registry,
                                                        refresh: { gateway.refreshMetrics() }, health: { gateway.health })
            }
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(1)
        }
        let drain = Timer(loop: loop, repeating: true) {
            if gateway.isDrained { loop.stop() }
        }
        let deadline = Timer(loop: loop) { loop.stop() }
        let signals = SignalWatcher(loop: loop) { signal in
            logger.info("signal \(signal): draining and shutting down")
            gateway.stop()
            drain.schedule(milliseconds: 10)
            deadline.schedule(milliseconds: 1500)
        }
        loop.run()
        logger.info("kvgateway stopped")
        withExtendedLifetime((signals, drain, deadline, operatorEndpoint)) {}
    }
}

Kvgateway.main()
