import EventLoop
import KVStore
import Logging
import ServiceSupport
import Wire

/// kvd: the key/value state machine of one node, fed by its raftd, serving clients.
///
/// Writes are proposed to the log; replies go out when the entry applies here. Gets are not
/// logged (unless raftd runs `--read-mode log`): kvd asks raftd for a read index (one id per
/// loop pass's Gets), waits until it has applied that index, and answers from its state.
/// Only the leader's kvd answers; a follower's redirects. kvd is rebuilt from raftd's stream on
/// every start (raftd's snapshot, then the entries after it), so it holds nothing that raftd
/// does not. When raftd's log grows, raftd asks for a snapshot of the state machine and
/// compacts its log up to it.
///
/// This is the I/O shell: it owns the listener, the client links, the dialer to raftd, the
/// timer, the end-of-pass action and the snapshot encoder's thread, feeds every event to
/// `KVDriver` with the time, and executes the actions it returns. Every decision is the
/// driver's.
public final class KVServer {
    private let loop: EventLoop
    let config: KVServerConfig
    let logger: Logger
    private var driver: KVDriver
    private let raftLink: Dialer
    private var raftReader = FrameReader<RaftToKvd>(frameLimit: Limits.standard.internalFrameBytes)
    private var listener: Listener?
    private var clients: [UInt64: ClientLink] = [:]
    private var nextClientID: UInt64 = 1
    /// Calls `KVDriver.passEnded` once the inputs of this loop pass are in.
    private let passEnd: DeferredAction
    private let timer: Timer
    private let encoder: SnapshotEncoder
    /// Actions not executed yet: executing one can raise another event (a write that closes a
    /// connection), whose actions then queue behind.
    private var queue: [KVDriverAction] = []
    private var executing = false
    private var scratch: [UInt8] = []
    /// Made by `enableMetrics` when the process serves metrics.
    private var metrics: KVMetrics?

    public init(loop: EventLoop, config: KVServerConfig, logger: Logger) {
        self.loop = loop
        self.config = config
        self.logger = logger
        driver = KVDriver(config: config.driverConfig)
        raftLink = Dialer(loop: loop, endpoint: .unix(path: config.raftSocketPath), minBackoffMs: 10, maxBackoffMs: 500)
        // The closures below reach `self` through a box filled once init is done: no
        // implicitly unwrapped properties, and no callback can fire before the loop runs.
        let owner = WeakBox<KVServer>()
        passEnd = DeferredAction(loop: loop) { owner.value?.input { $0.passEnded(at: $1) } }
        timer = Timer(loop: loop) { owner.value?.input { $0.tick(at: $1) } }
        encoder = SnapshotEncoder(loop: loop) { event in owner.value?.snapshotEncoding(event) }
        owner.value = self
    }

    public func start() throws {
        // TLS: only gateways and nodes may reach kvd.
        let tls = try config.tls.map { TLSAccept(context: try ServingTLS.context(files: $0, loop: loop, logger: logger), admit: PeerCertificatePolicy.gatewaysAndNodes) }
        listener = try Listener(loop: loop, endpoint: config.listen, tls: tls) { [weak self] connection in
            self?.accept(connection)
        }
        raftLink.onConnected = { [weak self] connection in self?.raftConnected(connection) }
        raftLink.onDisconnected = { [weak self] reason in self?.input { $0.raftDisconnected(reason: "\(reason)", at: $1) } }
        raftLink.start()
        logger.info("kvd \(config.nodeID) serving clients", metadata: ["listen": "\(config.listen)", "raft": "\(config.raftSocketPath)"])
    }

    /// Stops accepting, answers every waiting request (UNAVAILABLE: outcome unknown, retry),
    /// and lets replies drain.
    public func stop() {
        guard !driver.isStopping else { return }
        listener?.close()
        input { $0.stop(at: $1) }
        raftLink.stop()
        for client in clients.values { client.connection.closeAfterFlush() }
        timer.cancel()
    }

    /// Connections still sending replies (for a graceful exit).
    public var hasUnsentReplies: Bool {
        clients.values.contains { !$0.connection.isClosed && $0.connection.outputBufferedBytes > 0 }
    }

    public var appliedIndex: UInt64 { driver.machine.appliedIndex }

    /// Turns on metrics (after `OperatorEndpoint.bootstrapMetrics`).
    public func enableMetrics() { metrics = KVMetrics() }

    /// Sets the gauges read from the state machine and the listener (right before each scrape).
    public func refreshMetrics() { metrics?.refresh(driver.machine, listener: listener) }

    /// Serving while attached to raftd, which knows a leader, and not being rebuilt from a snapshot.
    public var health: Health {
        guard driver.raftAttached else { return .notServing(reason: "kvd \(config.nodeID) is not attached to its raftd") }
        guard driver.leadership.leaderID != 0 else {
            return .notServing(reason: "kvd \(config.nodeID): its raftd knows no leader (term \(driver.leadership.term))")
        }
        guard !driver.snapshotRefused else { return .notServing(reason: "kvd \(config.nodeID) refused raftd's snapshot and waits for it again") }
        return .serving
    }

    // MARK: Events in

    private static func now() -> KVTime {
        KVTime(monotonicNanos: EventLoop.monotonicNanos(), wallClockMillis: EventLoop.wallClockMillis())
    }

    /// Feeds one input to the driver with the time, and executes what it returns.
    private func input(_ step: (inout KVDriver, KVTime) -> [KVDriverAction]) {
        run(step(&driver, Self.now()))
    }

    private func accept(_ connection: Connection) {
        guard !driver.isStopping else { return connection.close() }
        let id = nextClientID
        nextClientID += 1
        let client = ClientLink(connection: connection, frameLimit: config.frameLimit,
                                onRequest: { [weak self] request, _ in self?.input { $0.clientRequest(client: id, request, at: $1) } },
                                onClose: { [weak self] _ in
                                    self?.clients[id] = nil
                                    self?.input { $0.clientClosed(client: id, at: $1) }
                                })
        clients[id] = client
    }

    private func raftConnected(_ connection: Connection) {
        raftReader = FrameReader(frameLimit: Limits.standard.internalFrameBytes)
        connection.onRead = { [weak self] conn in self?.receiveFromRaft(conn) }
        connection.onWritable = { [weak self] conn in
            guard let self else { return }
            self.input { $0.raftWritable(room: Self.room(conn), at: $1) }
        }
        input { $0.raftConnected(at: $1) }
    }

    private func receiveFromRaft(_ connection: Connection) {
        do {
            try raftReader.readMessages(from: connection) { message in
                input { $0.raftMessage(message, at: $1) }
                return .more
            }
        } catch {
            logger.error("bad frame from raftd: \(error); reconnecting")
            raftLink.reset()
            input { $0.raftDisconnected(reason: "\(error)", at: $1) }
        }
    }

    private func snapshotEncoding(_ event: SnapshotEncoder.Event) {
        let room = raftLink.connection.map(Self.room) ?? 0
        switch event {
        case let .started(id, index, size):
            input { $0.snapshotEncodingStarted(id: id, index: index, size: size, raftRoom: room, at: $1) }
        case let .part(id, part):
            input { $0.snapshotPartEncoded(id: id, part: part, raftRoom: room, at: $1) }
        case let .finished(id, keys, sessions, duration):
            encoder.finished(id: id)
            input { $0.snapshotEncodingFinished(id: id, keys: keys, sessions: sessions, duration: duration, raftRoom: room, at: $1) }
        }
    }

    /// Bytes raftd's link takes before it counts as full (`Connection.isWritable`).
    private static func room(_ connection: Connection) -> Int {
        connection.isWritable ? connection.limits.highWater + 1 - connection.outputBufferedBytes : 0
    }

    // MARK: Actions out

    /// Executes an input's actions in order, then those of inputs they raised; the storage
    /// goes back to the driver (no action array is allocated or copied per input).
    private func run(_ actions: consuming [KVDriverAction]) {
        guard !executing else { return queue.append(contentsOf: actions) }
        executing = true
        var batch = actions
        while true {
            for index in batch.indices { perform(batch[index]) }
            guard !queue.isEmpty else { break }
            batch.removeAll(keepingCapacity: true)
            swap(&batch, &queue)
        }
        executing = false
        driver.recycle(&batch)
    }

    private func perform(_ action: KVDriverAction) {
        switch action {
        case let .reply(client, response, op):
            if let op { metrics?.answered(op, response.status) }
            clients[client]?.reply(response)
        case let .sendToRaft(message):
            guard let connection = raftLink.connection else { return }
            scratch.removeAll(keepingCapacity: true)
            message.appendFrame(to: &scratch)
            connection.write(scratch)
        case .resetRaftLink:
            raftLink.reset()
        case .schedulePassEnd:
            passEnd.schedule()
        case let .armTimer(at):
            let now = EventLoop.monotonicNanos()
            timer.schedule(micros: at > now ? Int64((at - now + 999) / 1000) : 0)
        case let .encodeSnapshot(id, machine):
            encoder.start(id: id, machine: machine)
        case let .snapshotPartSent(id):
            encoder.partSent(id: id)
        case let .cancelSnapshotEncoding(id):
            encoder.cancel(id: id)
        case .releaseFreeMemory:
            HeapTrimming.releaseFreeMemory()
        case let .log(level, message):
            logger.log(level: level, "\(message)")
        }
    }
}

/// A weak reference filled in after its owner's init, for callbacks made during it.
private final class WeakBox<Value: AnyObject> {
    weak var value: Value?
}
