import EventLoop
import Wire
import SeededRandom

/// Everything a failover load run needs, parsed from flags.
struct FailoverConfig: Sendable {
    var targets: [BenchTarget]
    var clients: Int
    var conns: Int
    var keySize: Int
    var valueSize: Int
    var keys: Int
    /// Resend an attempt (same client_id and seq) after this long without an answer.
    var attemptTimeoutMs: Double
    var gapThresholdMs: Double
    var slowThresholdMs: Double
    var timelinePath: String
    /// The run stops by itself after this long, even if nobody sends SIGTERM.
    var maxDurationSeconds: Double
    var label: String
    var seed: UInt64
}

/// Summary printed (JSON) when a failover load run stops; the per-fault numbers come from
/// the timeline file.
struct FailoverLoadResult: Codable, Sendable, BenchmarkReport {
    var label: String
    var target: String
    var clients: Int
    var conns: Int
    var attemptTimeoutMs: Double
    var gapThresholdMs: Double
    var seed: UInt64
    var elapsedSeconds: Double
    /// Operations that got a definite answer (OK, NO_KEY).
    var completed: Int
    var opsByKind: [String: Int]
    /// Non-OK answers, lost connections (CONNECTION_LOST) and client resends (CLIENT_TIMEOUT).
    var errorsByStatus: [String: Int]

    func table() -> String {
        let errors = errorsByStatus.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        return """
        kvbench failover \(label.isEmpty ? "" : "[\(label)] ")clients=\(clients) conns=\(conns) target=\(target) attempt-timeout=\(fixed(attemptTimeoutMs, 0)) ms
          completed:  \(completed) in \(fixed(elapsedSeconds, 1)) s
          errors:     \(errors.isEmpty ? "-" : errors)
        """
    }
}

/// Closed-loop clients doing a stream of Puts, Appends and Gets through one or more gateways,
/// until stopped, recording every stretch without a completed operation and every error in
/// a `FailoverTimeline`. A client whose connection breaks moves its outstanding request (same
/// client_id and seq) to a live connection of another target, as kvctl's `--gateway A,B`
/// does; with no live connection it waits for its own to come back.
final class FailoverDriver {
    private let config: FailoverConfig
    private let loop: EventLoop
    private let timeline: FailoverTimeline
    private let keyspace: Keyspace
    private var rng: SeededGenerator
    private var links: [BenchLink] = []
    private var clients: [BenchClient] = []
    /// Per client, the attempt number its current request was first sent with: an answer to
    /// any attempt from there on answers the current request.
    private var firstAttempt: [UInt32] = []
    private var linksByTarget: [[Int]] = []
    private var retryQueue: [(due: UInt64, client: Int)] = []
    private var opsByKind: [String: Int] = [:]
    private var running = false
    private var stopped = false
    private var startNanos: UInt64 = 0
    private var failure: String?
    private let log: (String) -> Void

    private let flush: DeferredAction
    private let retryTimer: Timer
    private let tickTimer: Timer
    private let stopTimer: Timer
    private var signals: SignalWatcher?

    static let connectTimeoutNanos: UInt64 = 10_000_000_000

    init(config: FailoverConfig, loop: EventLoop, timeline: FailoverTimeline, log: @escaping (String) -> Void) {
        precondition(config.clients >= 1 && config.conns >= config.targets.count && !config.targets.isEmpty)
        self.config = config
        self.loop = loop
        stopTimer = Timer(loop: loop)
        flush = DeferredAction(loop: loop)
        retryTimer = Timer(loop: loop, repeating: true)
        tickTimer = Timer(loop: loop, repeating: true)
        self.timeline = timeline
        self.log = log
        rng = SeededGenerator(seed: config.seed)
        keyspace = Keyspace(count: config.keys, keySize: config.keySize, valueSize: config.valueSize, rng: &rng)
    }

    /// Runs until SIGTERM/SIGINT or `maxDurationSeconds`; throws when the targets cannot be
    /// reached at the start.
    func run() throws -> FailoverLoadResult {
        flush.action = { [unowned self] in self.flushLinks() }
        retryTimer.action = { [unowned self] in self.runRetries() }
        tickTimer.action = { [unowned self] in self.tick() }
        stopTimer.action = { [unowned self] in self.stop() }
        signals = SignalWatcher(loop: loop) { [unowned self] _ in self.stop() }

        linksByTarget = Array(repeating: [], count: config.targets.count)
        for i in 0..<config.conns {
            let target = i % config.targets.count
            let link = BenchLink(index: i, target: target,
                                 dialer: Dialer(loop: loop, endpoint: config.targets[target].endpoint, minBackoffMs: 20, maxBackoffMs: 200))
            links.append(link)
            linksByTarget[target].append(i)
            link.dialer.onConnected = { [unowned self, unowned link] connection in self.connected(link, connection) }
            link.dialer.onDisconnected = { [unowned self, unowned link] reason in self.disconnected(link, reason) }
        }
        for i in 0..<config.clients {
            clients.append(BenchClient(index: i, clientID: newClientID(), link: i % config.conns))
        }
        firstAttempt = Array(repeating: 0, count: config.clients)
        startNanos = EventLoop.monotonicNanos()
        for link in links { link.dialer.start() }
        retryTimer.schedule(milliseconds: 2)
        tickTimer.schedule(milliseconds: 100)
        stopTimer.schedule(milliseconds: config.maxDurationSeconds * 1000)
        loop.run()
        for link in links { link.dialer.stop() }
        if let failure { throw BenchFailure(failure) }
        return FailoverLoadResult(
            label: config.label, target: config.targets.map(\.description).joined(separator: ","),
            clients: config.clients, conns: config.conns, attemptTimeoutMs: config.attemptTimeoutMs,
            gapThresholdMs: config.gapThresholdMs, seed: config.seed,
            elapsedSeconds: Double(EventLoop.monotonicNanos() - startNanos) / 1e9,
            completed: timeline.completed, opsByKind: opsByKind, errorsByStatus: timeline.statusCounts)
    }

    private func newClientID() -> UInt64 {
        while true {
            let id = rng.next()
            if id != 0 { return id }
        }
    }

    private func stop() {
        guard !stopped else { return }
        stopped = true
        for client in clients where client.busy { timeline.unanswered(sentAt: client.firstSentNanos, client: client.index) }
        timeline.finish(at: EventLoop.monotonicNanos())
        loop.stop()
    }

    private func tick() {
        let now = EventLoop.monotonicNanos()
        if !running {
            if now - startNanos > FailoverDriver.connectTimeoutNanos {
                let down = links.filter { !$0.connected }.map { config.targets[$0.target].endpoint.description }
                failure = "could not connect within 10 s to \(Set(down).sorted().joined(separator: ", "))"
                stop()
            }
            return
        }
        timeline.tick(at: now)
    }

    // MARK: Connections

    private func connected(_ link: BenchLink, _ connection: Connection) {
        link.connected = true
        link.reader = FrameReader()
        link.out.removeAll(keepingCapacity: true)
        connection.onRead = { [unowned self, unowned link] conn in self.receive(link, conn) }
        if !running {
            guard links.allSatisfy(\.connected) else { return }
            running = true
            timeline.started(at: EventLoop.monotonicNanos())
            for client in clients { issue(client) }
            return
        }
        let waiting = link.stalled
        link.stalled = []
        for c in waiting where clients[c].busy && clients[c].link == link.index { send(clients[c]) }
    }

    private func disconnected(_ link: BenchLink, _ reason: Connection.CloseReason) {
        let wasConnected = link.connected
        link.connected = false
        link.out.removeAll(keepingCapacity: true)
        guard running, !stopped else { return }
        if wasConnected {
            timeline.error("CONNECTION_LOST", at: EventLoop.monotonicNanos())
            log("kvbench failover: connection to \(config.targets[link.target].endpoint) lost (\(reason))")
        }
        for client in clients where client.busy && client.link == link.index { send(client) }
    }

    // MARK: Operations

    private func issue(_ client: BenchClient) {
        guard running, !stopped else { return }
        // A third each of puts, appends and gets. Appends grow a value by valueSize bytes;
        // with thousands of keys a five-minute run stays at a few KiB per key.
        let op: Op
        switch rng.next() % 3 {
        case 0: op = .put
        case 1: op = .append
        default: op = .get
        }
        opsByKind[op.description, default: 0] += 1
        let key = keyspace.keys[Int(rng.next() % UInt64(config.keys))]
        let value = op == .get ? [] : keyspace.values[Int(rng.next() % UInt64(keyspace.values.count))]
        client.request = KvRequest(clientID: client.clientID, seq: client.nextSeq, op: op, key: key, value: value)
        client.nextSeq += 1
        client.busy = true
        client.firstSentNanos = EventLoop.monotonicNanos()
        firstAttempt[client.index] = client.attempt &+ 1
        send(client)
    }

    /// Sends (or resends, same client_id and seq) the client's outstanding request on its
    /// link, or on a live link of another target when its own is down.
    private func send(_ client: BenchClient) {
        client.attempt &+= 1
        client.request.requestID = UInt64(client.index) << 32 | UInt64(client.attempt)
        client.lastSentNanos = EventLoop.monotonicNanos()
        if !links[client.link].connected, let other = liveLink(excludingTarget: links[client.link].target) {
            client.link = other
        }
        let link = links[client.link]
        guard link.connected else {
            if !link.stalled.contains(client.index) { link.stalled.append(client.index) }
            return
        }
        client.request.appendFrame(to: &link.out)
        if !link.dirty {
            link.dirty = true
            flush.schedule()
        }
    }

    private func flushLinks() {
        for link in links where link.dirty {
            link.dirty = false
            guard link.connected, let connection = link.dialer.connection else { continue }
            connection.write(link.out)
            link.out.removeAll(keepingCapacity: true)
        }
    }

    private func receive(_ link: BenchLink, _ connection: Connection) {
        do {
            try link.reader.readMessages(from: connection) { response in
                handle(response, on: link)
                return stopped ? .stop : .more
            }
        } catch {
            log("kvbench failover: bad frame from \(config.targets[link.target].endpoint): \(error); reconnecting")
            link.dialer.reset()
            disconnected(link, .error("\(error)"))
        }
    }

    private func handle(_ response: KvResponse, on link: BenchLink) {
        let index = Int(response.requestID >> 32)
        guard index < clients.count else { return }
        let client = clients[index]
        // An answer to an earlier attempt of the same request is just as definite; one to an
        // earlier request is stale.
        let attempt = UInt32(truncatingIfNeeded: response.requestID)
        guard client.busy, attempt &- firstAttempt[index] <= client.attempt &- firstAttempt[index] else { return }
        let now = EventLoop.monotonicNanos()
        switch response.status {
        case .ok, .noKey:
            client.busy = false
            timeline.completed(at: now, sentAt: client.firstSentNanos, client: client.index)
            issue(client)
        case .badRequest:
            timeline.error(response.status.description, at: now)
            log("kvbench failover: BAD_REQUEST: \(response.message)")
            client.busy = false
            issue(client)
        case .sessionExpired:
            // Applied earlier, its reply no longer kept: never re-run it; go on with the next seq.
            timeline.error(response.status.description, at: now)
            client.busy = false
            issue(client)
        default:
            // WRONG_LEADER, TIMEOUT, UNAVAILABLE from a gateway: it already tried; try again
            // shortly with the same seq.
            timeline.error(response.status.description, at: now)
            guard client.attempt == attempt else { return }
            retryQueue.append((due: now + 10_000_000, client: client.index))
        }
    }

    private func liveLink(excludingTarget target: Int) -> Int? {
        guard config.targets.count > 1 else { return nil }
        for step in 1..<config.targets.count {
            let t = (target + step) % config.targets.count
            let candidates = linksByTarget[t].filter { links[$0].connected }
            if !candidates.isEmpty { return candidates[Int(rng.next() % UInt64(candidates.count))] }
        }
        return nil
    }

    /// Due retries, and resends of attempts unanswered for `attemptTimeoutMs`.
    private func runRetries() {
        let now = EventLoop.monotonicNanos()
        if !retryQueue.isEmpty {
            let due = retryQueue.filter { $0.due <= now }
            retryQueue.removeAll { $0.due <= now }
            for item in due where clients[item.client].busy { send(clients[item.client]) }
        }
        let timeout = UInt64(config.attemptTimeoutMs * 1_000_000)
        for client in clients where client.busy && now > client.lastSentNanos && now - client.lastSentNanos > timeout {
            timeline.error("CLIENT_TIMEOUT", at: now)
            send(client)
        }
    }
}
