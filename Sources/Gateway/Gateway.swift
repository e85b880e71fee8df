import EventLoop
import Logging
import ServiceSupport
import Wire

/// kvgateway: takes client requests, forwards each unchanged (same client_id and seq) to the
/// kvd it believes leads, and retries elsewhere on WRONG_LEADER, TIMEOUT, UNAVAILABLE, a lost
/// connection or a node gone silent, until the request's deadline. It keeps no state that
/// matters: any number may run, and any may be killed.
///
/// This is the I/O shell: it owns the listener, the client connections and the kvd dialers,
/// feeds every event to `GatewayCore` with the time, and executes the actions it returns.
/// It never pauses a client for want of an upstream; the only pause is `ClientLink`'s for a
/// client not reading its replies, which its own socket draining ends.
public final class Gateway {
    private let loop: EventLoop
    private let config: GatewayConfig
    private let logger: Logger
    private var core: GatewayCore
    private var listener: Listener?
    private var upstreams: [UInt64: Upstream] = [:]
    /// TLS for dialing kvds (also those learned from the configuration later).
    private var tlsContext: TLSContext?
    private var clients: [UInt64: ClientLink] = [:]
    private var nextClientID: UInt64 = 1
    private let timer: Timer
    /// Actions not executed yet: executing one can raise another event (a write that closes a
    /// connection), whose actions then queue behind.
    private var queue: [GatewayAction] = []
    private var executing = false
    /// Made by `enableMetrics` when the process serves metrics.
    var metrics: GatewayMetrics?

    public init(loop: EventLoop, config: GatewayConfig, logger: Logger) {
        self.loop = loop
        self.config = config
        self.logger = logger
        var coreConfig = GatewayCoreConfig(nodeIDs: Array(config.nodes.keys), maxKeyBytes: config.maxKeyBytes,
                                           maxValueBytes: config.maxValueBytes, seed: UInt64.random(in: 1...UInt64.max))
        coreConfig.nodeAddresses = config.nodes.mapValues { "\($0)" }
        coreConfig.requestDeadline = config.requestDeadline.wholeNanoseconds
        coreConfig.attemptTimeout = config.attemptTimeout.wholeNanoseconds
        coreConfig.maxInFlight = config.maxInFlight
        coreConfig.maxIdleSessions = config.maxIdleSessions
        core = GatewayCore(config: coreConfig)
        timer = Timer(loop: loop)
        timer.action = { [weak self] in self?.tick() }
    }

    public func start() throws {
        // TLS: any client the CA signed may connect; each kvd must be the node it is dialed as.
        let tls = try config.tls.map { try ServingTLS.context(files: $0, loop: loop, logger: logger) }
        listener = try Listener(loop: loop, endpoint: config.listen, tls: tls.map { TLSAccept(context: $0, admit: PeerCertificatePolicy.clients(allowed: config.allowedClientNames)) }) { [weak self] connection in
            self?.accept(connection)
        }
        tlsContext = tls
        for id in core.config.nodeIDs { dialUpstream(id, at: config.nodes[id]!) }
        logger.info("kvgateway serving", metadata: ["listen": "\(config.listen)", "nodes": "\(core.config.nodeIDs.map { "\($0)=\(config.nodes[$0]!)" }.joined(separator: ","))"])
    }

    /// Stops accepting; requests in flight keep going until answered or their deadline.
    public func stop() {
        guard !core.isStopping else { return }
        listener?.close()
        run(core.stop(now: EventLoop.monotonicNanos()))
        for (id, client) in clients where !core.hasRequests(of: id) { client.connection.closeAfterFlush() }
    }

    /// Nothing left to answer or send (for a graceful exit).
    public var isDrained: Bool {
        core.inFlight == 0 && !clients.values.contains { !$0.connection.isClosed && $0.connection.outputBufferedBytes > 0 }
    }

    /// Turns on metrics (after `OperatorEndpoint.bootstrapMetrics`).
    public func enableMetrics() {
        metrics = GatewayMetrics(nodes: core.config.nodeIDs)
        core.stats.isEnabled = true
    }

    /// Sets the gauges read from the core (right before each scrape).
    public func refreshMetrics() {
        metrics?.refresh(core, listener: listener)
    }

    public static var histogramBuckets: [String: [Duration]] { GatewayMetrics.histogramBuckets }

    /// Serving while it knows which kvd leads.
    public var health: Health {
        if core.isStopping { return .notServing(reason: "kvgateway is shutting down") }
        return core.knowsLeader ? .serving : .notServing(reason: "kvgateway knows no leader: no kvd it reaches says who leads")
    }

    // MARK: Events in

    private func accept(_ connection: Connection) {
        guard !core.isStopping else { return connection.close() }
        let id = nextClientID
        nextClientID += 1
        let client = ClientLink(connection: connection, frameLimit: config.frameLimit,
                                onRequest: { [weak self] request, _ in
                                    guard let self else { return }
                                    self.run(self.core.clientRequest(client: id, request, now: EventLoop.monotonicNanos()))
                                },
                                onClose: { [weak self] _ in
                                    guard let self else { return }
                                    self.clients[id] = nil
                                    self.run(self.core.clientClosed(client: id, now: EventLoop.monotonicNanos()))
                                })
        clients[id] = client
    }

    private func receive(from upstream: Upstream, _ connection: Connection) {
        do {
            try upstream.reader.readMessages(from: connection) { response in
                run(core.upstreamResponse(node: upstream.nodeID, response, now: EventLoop.monotonicNanos()))
                return .more
            }
        } catch {
            logger.warning("bad frame from kvd \(upstream.nodeID): \(error); reconnecting")
            upstream.dialer.reset()
            run(core.upstreamDisconnected(node: upstream.nodeID, now: EventLoop.monotonicNanos()))
        }
    }

    private func tick() {
        run(core.tick(now: EventLoop.monotonicNanos()))
        // The one pause a client connection may have: ClientLink's, while more than the high-water
        // mark of replies waits unread; it ends when that output drains to the low-water mark.
        // (A draining gateway closes its clients after their replies: those stay paused.)
        for client in clients.values where client.connection.isReadingPaused && !client.connection.isClosed && !core.isStopping {
            assert(client.connection.outputBufferedBytes > client.connection.limits.lowWater,
                   "client connection paused with its replies drained: nothing would resume it")
        }
    }

    // MARK: Actions out

    private func run(_ actions: [GatewayAction]) {
        queue.append(contentsOf: actions)
        guard !executing else { return }
        executing = true
        defer { executing = false }
        var next = 0
        while next < queue.count {
            perform(queue[next])
            next += 1
        }
        queue.removeAll(keepingCapacity: true)
        metrics?.drain(&core)
    }

    /// Dials node `id`'s kvd (a `--nodes` seed, or a member the cluster's configuration names).
    private func dialUpstream(_ id: UInt64, at endpoint: Endpoint) {
        let dialer = Dialer(loop: loop, endpoint: endpoint, minBackoffMs: 20, maxBackoffMs: 500,
                            tls: tlsContext.map { TLSDial(context: $0, expectedName: "node-\(id)") })
        let upstream = Upstream(nodeID: id, dialer: dialer, frameLimit: config.frameLimit)
        upstreams[id] = upstream
        upstream.dialer.onConnected = { [weak self, weak upstream] connection in
            guard let self, let upstream else { return }
            upstream.reader = FrameReader(frameLimit: self.config.frameLimit)
            connection.onRead = { [weak self] conn in self?.receive(from: upstream, conn) }
            self.logger.debug("connected to kvd \(id)")
            self.run(self.core.upstreamConnected(node: id, now: EventLoop.monotonicNanos()))
        }
        upstream.dialer.onDisconnected = { [weak self] _ in
            guard let self else { return }
            self.run(self.core.upstreamDisconnected(node: id, now: EventLoop.monotonicNanos()))
        }
        upstream.dialer.start()
    }

    private func perform(_ action: GatewayAction) {
        switch action {
        case let .sendUpstream(node, request):
            upstreams[node]?.send(request)
        case let .reply(client, response):
            clients[client]?.reply(response)
        case let .closeClient(client):
            clients[client]?.connection.closeAfterFlush()
        case let .suspectChanged(node, suspect):
            if suspect {
                logger.notice("kvd \(node) has not answered for \(Duration.nanoseconds(core.config.suspectAfter).wholeMilliseconds) ms; sending its requests elsewhere")
            } else {
                logger.notice("kvd \(node) answers again")
            }
        case let .addUpstream(node, address):
            guard upstreams[node] == nil, let endpoint = Endpoint.parseHostPort(address) else { return }
            logger.notice("the cluster's configuration names kvd \(node) at \(address): dialing it")
            dialUpstream(node, at: endpoint)
        case let .removeUpstream(node):
            guard let upstream = upstreams.removeValue(forKey: node) else { return }
            logger.notice("the cluster's configuration no longer names kvd \(node): closing its link and no longer dialing it")
            upstream.dialer.onConnected = nil
            upstream.dialer.onDisconnected = nil
            upstream.dialer.stop()
        case let .armTimer(at):
            let now = EventLoop.monotonicNanos()
            timer.schedule(micros: at > now ? Int64((at - now + 999) / 1000) : 0)
        }
    }
}
