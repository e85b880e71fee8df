import EventLoop
import Logging
import Raft
import RaftStorage
import ServiceSupport
import Wire

/// raftd's shell: the libevent side of `RaftDriver`. It owns the loop's objects — the peer
/// transport, the apply socket's listener and connection, one wake-up timer and the deferred
/// Ready pass — and the disk (`RaftDisk`); it feeds the driver every event with the time and
/// does what the driver asks, nothing of its own accord.
public final class RaftServer {
    private let loop: EventLoop
    let config: RaftServerConfig
    let logger: Logger
    private let disk: RaftDisk
    private let transport: PeerTransport
    private let links: RaftServerLinks
    let driver: RaftDriver
    /// One Ready pass per loop pass, after every input of that pass (group commit).
    private let readyAction: DeferredAction
    /// Fires at the driver's `nextDeadline`.
    private let wakeTimer: Timer
    private var armedAt: UInt64?
    private var applyListener: Listener?
    private var stopped = false
    /// Set while a leader hands over before stopping.
    private var pendingShutdown: (() -> Void)?
    /// Called once if the log cannot be persisted: the server has stopped, and the process must
    /// exit with a failure (continuing could acknowledge data that is not on disk).
    public var onFatalError: ((String) -> Void)?

    public init(loop: EventLoop, config: RaftServerConfig, logger: Logger) throws {
        self.loop = loop
        self.config = config
        self.logger = logger
        disk = try RaftDisk(loop: loop, directory: config.dataDir, clusterID: config.clusterID, nodeID: config.nodeID, logger: logger)
        let storage = disk.storage
        let owner = WeakServer()
        transport = PeerTransport(loop: loop, config: config, logger: logger, snapshotQueue: disk.snapshotQueue,
                                  identities: PeerIdentityGuard(ownID: storage.dataDirID, nodeID: config.nodeID, peers: storage.peerIdentities),
                                  onSnapshotFile: { [weak disk] file in disk?.receivedSnapshots.append(file) },
                                  onMessage: { message in owner.server?.peerMessage(message) })
        links = RaftServerLinks(transport: transport, identities: storage.peerIdentities, nodeID: config.nodeID, logger: logger)
        driver = RaftDriver(config: config.driverConfig, node: Self.makeNode(config: config, disk: disk),
                            hardState: storage.hardState, durableCommit: Self.durableCommit(storage),
                            lastSnapshotBytes: storage.snapshotDataSize, log: disk, snapshots: disk, io: links,
                            logger: logger, now: LeaseClock.nanos())
        readyAction = DeferredAction(loop: loop) { owner.server?.processReady() }
        wakeTimer = Timer(loop: loop) { owner.server?.wake() }
        owner.server = self
        transport.onReplaced = { [weak self] peer, knownAs in self?.refuseToServe(toldBy: peer, knownAs: knownAs) }
        transport.onPeerLinkLost = { [weak self] peer in
            self?.driver.peerLinkLost(peer)
            self?.readyAction.schedule()
        }
        transport.updateAddresses(RaftServerLinks.raftAddresses(driver.node.configuration))
        links.onShutdownFinished = { [weak self] in self?.shutdownFinished() }
        links.onPersistFailed = { [weak self] error in self?.persistFailed(error) }
        disk.onCommitted = { [weak self] commit in
            self?.driver.snapshotCommitted(commit)
            if commit.error == nil { HeapTrimming.releaseFreeMemory() }
            self?.readyAction.schedule()
        }
    }

    /// Closures made before `self` exists reach it through this.
    private final class WeakServer {
        weak var server: RaftServer?
    }

    /// The core, restored from what the disk holds.
    private static func makeNode(config: RaftServerConfig, disk: RaftDisk) -> RaftNode {
        let storage = disk.storage
        var raftConfig = RaftConfig(id: config.nodeID, peers: config.join ? [] : config.peers.keys.sorted())
        raftConfig.initialConfiguration = config.seedConfiguration
        raftConfig.electionTicks = config.electionTicks
        raftConfig.heartbeatTicks = config.heartbeatTicks
        raftConfig.maxAppendBytes = config.maxAppendBytes
        raftConfig.randomSeed = UInt64.random(in: 1...UInt64.max)
        raftConfig.readLease = config.readLease
        var snapshot = storage.snapshot
        if let index = snapshot?.index { snapshot?.configuration = disk.membershipFile.configuration(at: index) }
        return RaftNode(config: raftConfig, hardState: storage.hardState, snapshot: snapshot,
                        entries: storage.entries, applied: durableCommit(storage))
    }

    /// Everything up to the persisted commit index (and the snapshot, which only ever covers
    /// committed entries) is committed and durable: kvd may have it at once, without waiting
    /// for the core to hand it out again.
    private static func durableCommit(_ storage: DurableLog) -> UInt64 {
        max(min(storage.hardState.commit, storage.lastIndex), storage.snapshot?.index ?? 0)
    }

    public func start() throws {
        try transport.start()
        applyListener = try Listener(loop: loop, endpoint: .unix(path: config.applySocketPath), unixMode: 0o600) { [weak self] connection in
            self?.attachKvd(connection)
        }
        rearm(now: LeaseClock.nanos())
        logger.info("raftd \(config.nodeID) serving", metadata: [
            "peers": "\(config.listen)", "apply": "\(config.applySocketPath)", "data": "\(config.dataDir)",
            "election": "\(config.election)", "heartbeat": "\(config.heartbeat)",
            "readMode": "\(config.readMode.rawValue)",
            "leaseMs": "\(config.readLease.map { String(Double($0.durationNanos) / 1e6) } ?? "-")",
        ])
    }

    /// Graceful shutdown: a leader first hands leadership to its most up-to-date follower (so
    /// the cluster does not wait out an election timeout), for at most `handover`; then
    /// `stop()`, then `completion`.
    public func shutdown(handover: Duration, completion: @escaping () -> Void) {
        guard !stopped, pendingShutdown == nil, driver.beginShutdown(handover: handover, now: LeaseClock.nanos()) else {
            stop()
            return completion()
        }
        pendingShutdown = completion
        readyAction.schedule()
    }

    private func shutdownFinished() {
        guard let completion = pendingShutdown else { return }
        pendingShutdown = nil
        stop()
        completion()
    }

    private func persistFailed(_ error: any Error) {
        stop()
        onFatalError?("cannot persist the log: \(error)")
    }

    /// Clean shutdown: stop taking input, make everything written durable, close.
    public func stop() {
        guard !stopped else { return }
        stopped = true
        driver.stop()
        wakeTimer.cancel()
        applyListener?.close()
        transport.stop()
        links.closeKvd()
        driver.kvdDisconnected()
        disk.close()
        logger.info("raftd \(config.nodeID) stopped")
    }

    public var status: RaftStatus { driver.status }

    /// Why this node refuses to serve (its data dir was replaced), nil while it serves.
    var refusal: String? { driver.refusal }

    /// Turns on metrics (after `OperatorEndpoint.bootstrapMetrics`).
    public func enableMetrics() {
        let metrics = RaftMetrics(peers: config.peers.keys.filter { $0 != config.nodeID }.sorted())
        driver.metrics = metrics
        disk.metrics = metrics
    }

    var metrics: RaftMetrics? { driver.metrics }

    // MARK: Feeding the driver

    private func peerMessage(_ message: Message) {
        driver.receive(message, now: LeaseClock.nanos())
        readyAction.schedule()
    }

    private func processReady() {
        guard !stopped else { return }
        let now = LeaseClock.nanos()
        driver.processReady(now: now)
        if !stopped { rearm(now: now) }
    }

    private func wake() {
        armedAt = nil
        guard !stopped else { return }
        driver.wake(now: LeaseClock.nanos())
        readyAction.schedule()
    }

    /// Moves the timer to the driver's next deadline if that changed.
    private func rearm(now: UInt64) {
        let next = driver.nextDeadline
        guard armedAt != next else { return }
        armedAt = next
        wakeTimer.schedule(micros: next > now ? Int64((next - now + 999) / 1_000) : 0)
    }

    /// A peer told us it knows this node by another data dir: ours was wiped or replaced.
    private func refuseToServe(toldBy peer: UInt64, knownAs: UInt64) {
        let id = config.nodeID
        let storage = disk.storage
        let reason = "node \(id)'s data directory was wiped or replaced: the cluster knew it as data dir "
            + "\(PeerIdentityGuard.describe(knownAs)) (told by node \(peer)), this one is \(PeerIdentityGuard.describe(storage.dataDirID))"
            + "\(storage.dataDirCreated ? ", created empty at this start" : ""). It has forgotten its votes and log, so it "
            + "refuses to vote, campaign or acknowledge. Either replace it under a new id (stop it, then `kvctl member replace "
            + "\(id) NEW-ID --raft HOST:PORT --kvd HOST:PORT` and start the new node with raftd --join), or remove it "
            + "(`kvctl member remove \(id)`) and, once the removal committed, add it again with this fresh data dir "
            + "(`kvctl member add \(id) …`, restart this raftd with --join); or restore its data dir \(config.dataDir)"
        driver.refuseToServe(reason, now: LeaseClock.nanos())
        readyAction.schedule()
    }

    // MARK: The apply socket

    private func attachKvd(_ connection: Connection) {
        if let old = links.kvd {
            links.kvd = nil
            old.connection.close()
        }
        driver.kvdConnected()
        links.kvd = ApplySession(connection: connection)
        connection.onRead = { [weak self] conn in self?.receiveFromKvd(conn) }
        connection.onWritable = { [weak self] _ in
            guard let self, !self.stopped else { return }
            self.driver.kvdWritable(now: LeaseClock.nanos())
            self.readyAction.schedule()
        }
        connection.onClose = { [weak self] conn, reason in
            guard let self, self.links.kvd?.connection === conn else { return }
            self.logger.info("kvd disconnected: \(reason)")
            self.links.kvd = nil
            self.driver.kvdDisconnected()
            self.readyAction.schedule()
        }
        readyAction.schedule()
    }

    private func receiveFromKvd(_ connection: Connection) {
        guard let session = links.kvd, session.connection === connection else { return connection.close() }
        session.decoder.withAppendableBuffer { _ = connection.readAvailable(appendingTo: &$0) }
        let now = LeaseClock.nanos()
        do {
            // The driver may close the link (a protocol violation): then the rest is dropped.
            while links.kvd === session, let frame = try session.decoder.nextFrame() {
                driver.kvdReceived(try KvdToRaft(serialized: frame), now: now)
            }
        } catch {
            logger.warning("closing kvd connection: \(error)")
            links.closeKvd()
            driver.kvdDisconnected()
        }
        readyAction.schedule()
    }
}
