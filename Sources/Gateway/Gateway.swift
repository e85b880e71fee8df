import EventLoop
import Logging
import ServiceSupport
import Wire

/// kvgateway: takes client requests, forwards each unchanged (same client_id and seq) to
/// the kvd it believes leads, and retries on WRONG_LEADER, TIMEOUT, UNAVAILABLE or a lost
/// connection until the request's deadline, then answers UNAVAILABLE. It keeps no state
/// that matters: any number may run, and any may be killed.
public final class Gateway {
    private let loop: EventLoop
    private let config: GatewayConfig
    private let logger: Logger
    private var listener: Listener?
    private var upstreams: [UInt64: Upstream] = [:]
    private let nodeOrder: [UInt64]
    private var clients: [ObjectIdentifier: ClientLink] = [:]
    private var leaderID: UInt64 = 0
    private var roundRobin = 0
    private var nextUpstreamID: UInt64 = 1
    private var inFlightCount = 0
    private var sessions: SessionPool
    /// Forwards waiting for a retry slot, by due time.
    private var retryQueue: [(due: UInt64, forward: Forward)] = []
    private var retryTimer: Timer!
    private var attempts: [Attempt] = []
    private var attemptsHead = 0
    private var attemptTimer: Timer!
    private var stopping = false

    public init(loop: EventLoop, config: GatewayConfig, logger: Logger) {
        self.loop = loop
        self.config = config
        self.logger = logger
        nodeOrder = config.nodes.keys.sorted()
        sessions = SessionPool(maxIdle: config.maxIdleSessions)
        retryTimer = Timer(loop: loop) { [weak self] in self?.runRetries() }
        attemptTimer = Timer(loop: loop) { [weak self] in self?.expireAttempts() }
    }

    public func start() throws {
        listener = try Listener(loop: loop, endpoint: config.listen) { [weak self] connection in
            self?.accept(connection)
        }
        for id in nodeOrder {
            let upstream = Upstream(nodeID: id, dialer: Dialer(loop: loop, endpoint: config.nodes[id]!, minBackoffMs: 20, maxBackoffMs: 1000),
                                    frameLimit: config.frameLimit)
            upstreams[id] = upstream
            upstream.dialer.onConnected = { [weak self, weak upstream] connection in
                guard let self, let upstream else { return }
                upstream.decoder = FrameDecoder(frameLimit: self.config.frameLimit)
                connection.onRead = { [weak self] conn in self?.receive(from: upstream, conn) }
                connection.onWritable = { [weak self] _ in self?.resumeClients() }
                self.logger.debug("connected to kvd \(upstream.nodeID)")
            }
            upstream.dialer.onDisconnected = { [weak self, weak upstream] _ in
                guard let self, let upstream else { return }
                self.upstreamLost(upstream)
            }
            upstream.dialer.start()
        }
        logger.info("kvgateway serving", metadata: ["listen": "\(config.listen)", "nodes": "\(nodeOrder.map { "\($0)=\(config.nodes[$0]!)" }.joined(separator: ","))"])
    }

    /// Stops accepting; requests in flight keep going until answered or their deadline.
    public func stop() {
        guard !stopping else { return }
        stopping = true
        listener?.close()
        for client in clients.values where inFlight(of: client) == 0 { client.connection.closeAfterFlush() }
    }

    /// Nothing left to answer or send (for a graceful exit).
    public var isDrained: Bool {
        inFlightCount == 0 && !clients.values.contains { !$0.connection.isClosed && $0.connection.outputBufferedBytes > 0 }
    }

    private func inFlight(of client: ClientLink) -> Int {
        upstreams.values.reduce(0) { sum, upstream in sum + upstream.inFlight.values.filter { $0.client === client }.count }
            + retryQueue.filter { $0.forward.client === client }.count
    }

    // MARK: Clients

    private func accept(_ connection: Connection) {
        guard !stopping else { return connection.close() }
        let client = ClientLink(connection: connection, frameLimit: config.frameLimit,
                                onRequest: { [weak self] request, client in self?.handle(request, from: client) },
                                onClose: { [weak self] client in self?.clients[ObjectIdentifier(client)] = nil })
        clients[ObjectIdentifier(client)] = client
    }

    private func handle(_ request: KvRequest, from client: ClientLink) {
        if request.op == .status { return StatusCollector.collect(for: request, client: client, gateway: self) }
        if let problem = RequestValidation.problem(with: request, maxKeyBytes: config.maxKeyBytes, maxValueBytes: config.maxValueBytes) {
            return client.reply(KvResponse(requestID: request.requestID, status: .badRequest, message: problem))
        }
        guard inFlightCount < config.maxInFlight else {
            return client.reply(KvResponse(requestID: request.requestID, status: .unavailable, message: "gateway overloaded; retry later"))
        }
        let deadline = EventLoop.monotonicNanos() + UInt64(config.requestDeadlineMs * 1_000_000)
        let forward = Forward(client: client, request: request, deadline: deadline)
        if request.clientID == 0 {
            let session = sessions.borrow()
            forward.session = session
            forward.request.clientID = session.clientID
            forward.request.seq = session.nextSeq
        }
        inFlightCount += 1
        dispatch(forward)
        if !anyUpstreamWritable { client.connection.pauseReading() }
    }

    private var anyUpstreamWritable: Bool { upstreams.values.contains { $0.isUsable } }

    private func resumeClients() {
        for client in clients.values where client.connection.isReadingPaused && client.connection.isWritable {
            client.connection.resumeReading()
        }
    }

    // MARK: Forwarding

    /// The node to try next: the known leader, else the next reachable node in turn.
    private func pickNode(avoiding avoided: UInt64) -> Upstream? {
        if leaderID != 0, leaderID != avoided, let leader = upstreams[leaderID], leader.isUsable { return leader }
        var fallback: Upstream?
        for _ in 0..<nodeOrder.count {
            roundRobin = (roundRobin + 1) % nodeOrder.count
            guard let upstream = upstreams[nodeOrder[roundRobin]], upstream.isUsable else { continue }
            if upstream.nodeID != avoided { return upstream }
            fallback = upstream
        }
        return fallback
    }

    private func dispatch(_ forward: Forward) {
        guard !forward.done else { return }
        guard EventLoop.monotonicNanos() < forward.deadline else {
            return finish(forward, KvResponse(status: .unavailable, message: "no leader answered within \(Int(config.requestDeadlineMs)) ms; outcome unknown, retry with the same client_id/seq"))
        }
        guard let upstream = pickNode(avoiding: forward.avoid) else { return retryLater(forward, afterMs: 20) }
        forward.avoid = 0
        forward.attempts += 1
        forward.node = upstream.nodeID
        forward.upstreamID = nextUpstreamID
        nextUpstreamID += 1
        var request = forward.request
        request.requestID = forward.upstreamID
        upstream.inFlight[forward.upstreamID] = forward
        if !upstream.send(request) {
            upstream.inFlight[forward.upstreamID] = nil
            retryLater(forward, afterMs: 5)
            return
        }
        let attemptDeadline = min(forward.deadline, EventLoop.monotonicNanos() + UInt64(config.attemptTimeoutMs * 1_000_000))
        attempts.append(Attempt(deadline: attemptDeadline, upstreamID: forward.upstreamID, node: upstream.nodeID))
        if !attemptTimer.isScheduled { attemptTimer.schedule(milliseconds: 20) }
    }

    /// An attempt sent to a kvd that has not answered: a frozen process or a black-holed link
    /// keeps its TCP connection open, so silence is the only sign. Attempt deadlines grow with
    /// send time, so the oldest are at the front.
    private struct Attempt {
        let deadline: UInt64
        let upstreamID: UInt64
        let node: UInt64
    }

    private func expireAttempts() {
        let now = EventLoop.monotonicNanos()
        var expired = 0
        while attemptsHead < attempts.count, attempts[attemptsHead].deadline <= now {
            let attempt = attempts[attemptsHead]
            attemptsHead += 1
            guard let upstream = upstreams[attempt.node],
                  let forward = upstream.inFlight.removeValue(forKey: attempt.upstreamID) else { continue }
            expired += 1
            if leaderID == attempt.node { leaderID = 0 }
            forward.avoid = attempt.node
            dispatch(forward)
        }
        if expired > 0 { logger.debug("\(expired) attempts got no answer in \(Int(config.attemptTimeoutMs)) ms; retried elsewhere") }
        if attemptsHead > 1024 && attemptsHead * 2 > attempts.count {
            attempts.removeFirst(attemptsHead)
            attemptsHead = 0
        }
        if attemptsHead < attempts.count { attemptTimer.schedule(milliseconds: 20) }
    }

    private func retryLater(_ forward: Forward, afterMs: Double) {
        let backoff = min(200, afterMs * Double(max(1, forward.attempts)))
        retryQueue.append((EventLoop.monotonicNanos() + UInt64(backoff * 1_000_000), forward))
        // An idle gateway runs no timer; one is armed only while retries wait.
        if !retryTimer.isScheduled { retryTimer.schedule(milliseconds: 5) }
    }

    private func runRetries() {
        defer { if !retryQueue.isEmpty { retryTimer.schedule(milliseconds: 5) } }
        guard !retryQueue.isEmpty else { return }
        let now = EventLoop.monotonicNanos()
        var due: [Forward] = []
        retryQueue.removeAll { item in
            if item.due <= now || item.forward.deadline <= now {
                due.append(item.forward)
                return true
            }
            return false
        }
        for forward in due { dispatch(forward) }
    }

    private func receive(from upstream: Upstream, _ connection: Connection) {
        upstream.decoder.withAppendableBuffer { _ = connection.readAvailable(appendingTo: &$0) }
        do {
            while let frame = try upstream.decoder.nextFrame() {
                let response = try KvResponse(serialized: frame)
                if let handler = statusHandlers.removeValue(forKey: response.requestID) {
                    handler(response)
                    continue
                }
                guard let forward = upstream.inFlight.removeValue(forKey: response.requestID) else { continue }
                handleUpstream(response, for: forward, from: upstream)
            }
        } catch {
            logger.warning("bad frame from kvd \(upstream.nodeID): \(error); reconnecting")
            upstream.dialer.reset()
            upstreamLost(upstream)
        }
    }

    private func handleUpstream(_ response: KvResponse, for forward: Forward, from upstream: Upstream) {
        switch response.status {
        case .wrongLeader:
            if let hint = UInt64(response.leaderHint), upstreams[hint] != nil, hint != upstream.nodeID {
                leaderID = hint
                dispatch(forward)
            } else {
                if leaderID == upstream.nodeID { leaderID = 0 }
                retryLater(forward, afterMs: 10)
            }
        case .timeout, .unavailable:
            // The node we took for leader could not commit in time: it may be cut off or
            // frozen. Ask the others (a follower's WRONG_LEADER hint names the new leader).
            if leaderID == upstream.nodeID { leaderID = 0 }
            forward.avoid = upstream.nodeID
            retryLater(forward, afterMs: 10)
        case .sessionExpired where forward.session != nil:
            // Our own session expired: the request was not applied; go again under a new one.
            forward.session = SessionPool.Session(clientID: UInt64.random(in: 1...UInt64.max), nextSeq: 1)
            forward.request.clientID = forward.session!.clientID
            forward.request.seq = 1
            dispatch(forward)
        default:
            if response.status == .ok || response.status == .noKey { leaderID = upstream.nodeID }
            finish(forward, response)
        }
    }

    private func upstreamLost(_ upstream: Upstream) {
        if leaderID == upstream.nodeID { leaderID = 0 }
        let orphans = upstream.inFlight.values
        upstream.inFlight.removeAll()
        for forward in orphans { retryLater(forward, afterMs: 5) }
    }

    private func finish(_ forward: Forward, _ response: KvResponse) {
        guard !forward.done else { return }
        forward.done = true
        inFlightCount -= 1
        if var session = forward.session {
            session.nextSeq = forward.request.seq + 1
            sessions.giveBack(session)
        }
        var reply = response
        reply.requestID = forward.clientRequestID
        forward.client.reply(reply)
        if stopping, inFlight(of: forward.client) == 0 { forward.client.connection.closeAfterFlush() }
    }

    // MARK: Status

    var statusHandlers: [UInt64: (KvResponse) -> Void] = [:]

    /// Asks every node's kvd for its status; `done` gets one NodeStatus per node.
    func queryNodes(timeoutMs: Double, _ done: @escaping ([NodeStatus]) -> Void) {
        var results: [UInt64: NodeStatus] = [:]
        var asked: [UInt64] = []
        var finished = false
        let complete: () -> Void = { [weak self] in
            guard let self, !finished else { return }
            finished = true
            for requestID in asked { self.statusHandlers[requestID] = nil }
            done(self.nodeOrder.map { id in
                results[id] ?? NodeStatus(nodeID: id, reachable: false, address: "\(self.config.nodes[id]!)", error: "no answer")
            })
        }
        for id in nodeOrder {
            guard let upstream = upstreams[id], upstream.dialer.connection != nil else {
                results[id] = NodeStatus(nodeID: id, reachable: false, address: "\(config.nodes[id]!)", error: "not connected")
                continue
            }
            let requestID = nextUpstreamID
            nextUpstreamID += 1
            asked.append(requestID)
            statusHandlers[requestID] = { response in
                var node = response.nodes.first ?? NodeStatus(nodeID: id, reachable: true, error: "empty status")
                node.nodeID = id
                results[id] = node
                if results.count == self.nodeOrder.count { complete() }
            }
            _ = upstream.send(KvRequest(requestID: requestID, op: .status))
        }
        if results.count == nodeOrder.count { return complete() }
        let timeout = Timer(loop: loop) { complete() }
        timeout.schedule(milliseconds: timeoutMs)
        pendingStatusTimers.append(timeout)
        if pendingStatusTimers.count > 64 { pendingStatusTimers.removeFirst(pendingStatusTimers.count - 64) }
    }

    private var pendingStatusTimers: [Timer] = []
}

/// Answers OP_STATUS at the gateway with one NodeStatus per node.
enum StatusCollector {
    static func collect(for request: KvRequest, client: ClientLink, gateway: Gateway) {
        gateway.queryNodes(timeoutMs: 1000) { nodes in
            client.reply(KvResponse(requestID: request.requestID, status: .ok, nodes: nodes))
        }
    }
}
