import Dispatch
import EventLoop
import Logging
import Raft
import RaftStorage
import ServiceSupport
import Wire

/// Carries Raft messages between raftds. Each node dials every other node at exactly the
/// address `--peers` gives (so a test can put a fault proxy on each link) and sends on that
/// connection; it receives on the connections other nodes dial to its listener.
///
/// Never blocks the loop on a slow peer: a peer whose connection is backed up past its
/// high-water mark gets a bounded queue; when that fills, heartbeats are dropped first, then
/// the oldest messages (Raft retransmits whatever is lost). A snapshot goes out in chunks,
/// each cut only when the link has room, and is reassembled per incoming link before Raft sees it.
final class PeerTransport {
    private let loop: EventLoop
    private let config: RaftServerConfig
    private let logger: Logger
    private let onMessage: (Message) -> Void
    private let identities: PeerIdentityGuard
    /// Peer `from` knows this node by data-dir id `knownAs`, not ours: our data dir was replaced.
    /// Reported once; from then on nothing from peers is delivered.
    var onReplaced: ((_ from: UInt64, _ knownAs: UInt64) -> Void)?
    private var replaced = false
    /// The link a peer dialed to us was closed by that peer's side (its process died, or it
    /// reconnects): the core may campaign early if that peer was its leader.
    var onPeerLinkLost: ((_ peer: UInt64) -> Void)?
    /// When we last logged a refused replaced peer (monotonic ns), per peer: one line every few seconds.
    private var lastRefusalLogged: [UInt64: UInt64] = [:]
    /// A leader's snapshot arrived whole in this file; the message stepped right after it
    /// carries only its index and term.
    private let onSnapshotFile: (SnapshotFileWriter) -> Void
    /// Where incoming snapshot chunks are written, in order.
    private let snapshotQueue: DispatchQueue
    private var listener: Listener?
    private var outgoing: [UInt64: OutgoingPeer] = [:]
    /// Where each peer is dialed: `--peers`, then the configuration's raft addresses.
    private var addresses: [UInt64: Endpoint] = [:]
    private var tlsContext: TLSContext?
    /// This node's raft address as the configuration records it, stamped on a leader's traffic.
    private var ownAddress = ""
    private var started = false
    private var incoming: [ObjectIdentifier: IncomingPeer] = [:]
    /// Names each incoming link's snapshot file apart from the others'.
    private var linksAccepted = 0
    /// Internal links carry whole append batches: allow more than a client frame.
    static let frameLimit = Limits.standard.internalFrameBytes

    init(loop: EventLoop, config: RaftServerConfig, logger: Logger, snapshotQueue: DispatchQueue, identities: PeerIdentityGuard,
         onSnapshotFile: @escaping (SnapshotFileWriter) -> Void, onMessage: @escaping (Message) -> Void) {
        self.loop = loop
        self.identities = identities
        self.config = config
        self.logger = logger
        self.snapshotQueue = snapshotQueue
        self.onSnapshotFile = onSnapshotFile
        self.onMessage = onMessage
    }

    func start() throws {
        // TLS: peers must present node certificates; a dialed node must be the node dialed.
        let tls = try config.tls.map { try ServingTLS.context(files: $0, loop: loop, logger: logger) }
        tlsContext = tls
        listener = try Listener(loop: loop, endpoint: config.listen,
                                tls: tls.map { TLSAccept(context: $0, admit: PeerCertificatePolicy.nodesOnly) }) { [weak self] connection in
            self?.accept(connection)
        }
        started = true
        for id in addresses.keys.sorted() { dial(id) }
    }

    /// The configuration's raft addresses (under `--peers`' for the same id): new members are
    /// dialed, moved ones redialed at their new address. Peers no longer listed keep their link
    /// (a removed node still hears its removal; the core sends them nothing afterwards).
    func updateAddresses(_ configured: [UInt64: Endpoint]) {
        // `--peers` wins for the nodes it lists (e.g. a proxy in front of a peer); the
        // configuration supplies the rest.
        var merged = configured
        for (id, endpoint) in config.peers { merged[id] = endpoint }
        ownAddress = merged[config.nodeID].map { "\($0)" } ?? ""
        merged[config.nodeID] = nil
        let changed = merged.filter { addresses[$0.key] != $0.value }.map(\.key)
        addresses = merged
        guard started else { return }
        for id in changed.sorted() {
            if let old = outgoing.removeValue(forKey: id) { old.dialer.stop() }
            dial(id)
        }
    }

    private func dial(_ id: UInt64) {
        guard let endpoint = addresses[id], outgoing[id] == nil else { return }
        let dialer = Dialer(loop: loop, endpoint: endpoint, minBackoffMs: 20, maxBackoffMs: 500,
                            tls: tlsContext.map { TLSDial(context: $0, expectedName: "node-\(id)") })
        let peer = OutgoingPeer(id: id, dialer: dialer, dataDir: config.dataDir, logger: logger)
        outgoing[id] = peer
        peer.start()
    }

    func stop() {
        listener?.close()
        for peer in outgoing.values { peer.dialer.stop() }
        for peer in incoming.values {
            peer.connection.close()
            peer.snapshot.abandon()
        }
        incoming.removeAll()
    }

    /// Queues messages; they leave when the loop next writes, or at once with `flushNow`
    /// (before a blocking fsync, so followers work in parallel with it).
    func send(_ messages: [Message], flushNow: Bool = false) {
        guard !messages.isEmpty else { return }
        for message in messages {
            guard let peer = outgoing[message.to] else { continue }
            var peerMessage = PeerMessage(message, clusterID: config.clusterID)
            identities.stamp(&peerMessage)
            if message.type == .append || message.type == .heartbeat || message.type == .snapshot {
                peerMessage.senderAddress = ownAddress
            }
            if message.type == .snapshot, let snapshot = message.snapshot {
                peerMessage.snapshotConfiguration = snapshot.configuration?.encoded ?? []
                peer.startSnapshot(peerMessage, snapshot)
                continue
            }
            peer.enqueue(peerMessage, isHeartbeat: message.type == .heartbeat)
        }
        for peer in outgoing.values {
            peer.flush()
            if flushNow { peer.dialer.connection?.flushNow() }
        }
    }

    private func accept(_ connection: Connection) {
        linksAccepted += 1
        let receiver = SnapshotFileReceiver(directory: config.dataDir, queue: snapshotQueue, name: "link-\(linksAccepted)")
        let peer = IncomingPeer(connection: connection, snapshot: receiver)
        let key = ObjectIdentifier(connection)
        incoming[key] = peer
        // Half a frame then silence must not hold up to 64 MiB here forever.
        let timeoutMs = loop.limits.partialFrameTimeoutMs
        peer.partialFrameWatch = PartialFrameWatch(loop: loop, timeoutMs: timeoutMs) { [weak self, weak connection] in
            guard let self, let connection else { return }
            self.reject(connection, "it sent part of a frame and did not finish it within \(Int(timeoutMs)) ms")
        }
        connection.onRead = { [weak self] conn in self?.receive(on: conn) }
        connection.onClose = { [weak self] conn, _ in
            guard let self else { return }
            let peer = self.incoming[ObjectIdentifier(conn)]?.nodeID ?? 0
            self.dropIncoming(conn)
            if peer != 0, !self.replaced { self.onPeerLinkLost?(peer) }
        }
    }

    /// Forgets an incoming link, and the snapshot it was sending (its file is removed in order
    /// with the writes already queued).
    private func dropIncoming(_ connection: Connection) {
        guard let peer = incoming.removeValue(forKey: ObjectIdentifier(connection)) else { return }
        peer.snapshot.abandon()
        peer.partialFrameWatch?.cancel()
    }

    private func receive(on connection: Connection) {
        guard let peer = incoming[ObjectIdentifier(connection)] else { return }
        do {
            let next = try peer.reader.readMessages(from: connection) { message in
                try receive(message, from: peer, on: connection)
            }
            guard next == .more else { return }
            peer.partialFrameWatch?.observe(holdsPartialFrame: peer.reader.bufferedBytes > 0, framesCompleted: peer.reader.framesCompleted)
        } catch {
            reject(connection, "\(error)")
        }
    }

    /// One message from an incoming link; `.stop` once the link is closed for it.
    private func receive(_ message: PeerMessage, from peer: IncomingPeer, on connection: Connection) throws -> FrameReader<PeerMessage>.Next {
        guard message.clusterID == config.clusterID else {
            reject(connection, "message for cluster \(message.clusterID), this is cluster \(config.clusterID)")
            return .stop
        }
        // Members (and `--peers`) send anything; a node we do not know yet only a
        // leader's traffic (a joining node hears from a leader it does not know, and a
        // leader that just removed itself hands over with TimeoutNow: refusing that cost
        // a whole election timeout, bench --membership).
        let leaderTraffic = message.type == .append || message.type == .heartbeat || message.type == .snapshot
            || message.type == .timeoutNow
        guard message.from != config.nodeID, message.from != 0,
              addresses[message.from] != nil || leaderTraffic else {
            reject(connection, "message from unknown node \(message.from)")
            return .stop
        }
        if addresses[message.from] == nil, let endpoint = Endpoint.parseHostPort(message.senderAddress) {
            // A leader we do not know yet (we are joining): answer it where it says it is.
            logger.info("learned node \(message.from)'s address \(endpoint) from its messages")
            addresses[message.from] = endpoint
            dial(message.from)
        }
        guard message.to == config.nodeID else {
            reject(connection, "message for node \(message.to) arrived at node \(config.nodeID)")
            return .stop
        }
        // (Checked once per link and claimed id, not per frame.)
        if peer.nodeID != message.from, let refusal = PeerCertificatePolicy.claimRefusal(connection.peerCertificate, claimedNode: message.from) {
            loop.connectionLog.log(.warning, key: "tls-claim \(message.from)", "refused peer connection from \(connection.peer): \(refusal)")
            dropIncoming(connection)
            connection.close()
            return .stop
        }
        peer.nodeID = message.from
        guard admit(message) else { return .more }
        if message.type == .snapshot {
            guard let chunk = message.snapshot else {
                reject(connection, "snapshot message from node \(message.from) without a chunk")
                return .stop
            }
            guard let file = try peer.snapshot.add(chunk, fileTerm: chunk.term) else { return .more }
            logger.info("received snapshot (\(file.index), t\(file.term), \(file.dataSize) bytes) from node \(message.from)")
            onSnapshotFile(file)
            // The bytes are in the file: the core needs only index and term.
            let snapshot = Snapshot(index: file.index, term: file.term, data: [],
                                    configuration: Configuration(encoded: message.snapshotConfiguration))
            if let raftMessage = message.raftMessage(snapshot: snapshot) { onMessage(raftMessage) }
            return .more
        }
        guard let raftMessage = message.raftMessage() else { return .more }
        onMessage(raftMessage)
        return .more
    }

    /// Whether `message` may reach the core, by the data-dir ids it carries (see `PeerIdentityGuard`).
    private func admit(_ message: PeerMessage) -> Bool {
        if replaced { return false }
        let verdict = identities.check(message)
        for notice in identities.takeNotices() { logger.warning("\(notice)") }
        switch verdict {
        case .deliver:
            return true
        case let .weAreReplaced(knownAs):
            replaced = true
            onReplaced?(message.from, knownAs)
            return false
        case let .senderReplaced(known):
            let now = EventLoop.monotonicNanos()
            if lastRefusalLogged[message.from].map({ now - $0 >= 5_000_000_000 }) ?? true {
                lastRefusalLogged[message.from] = now
                logger.error("refusing node \(message.from): its data directory was wiped or replaced (this node knew it as data dir \(PeerIdentityGuard.describe(known)), it now has \(PeerIdentityGuard.describe(message.senderDataDirID))); its votes and acknowledgements do not count. Replace it (kvctl member replace \(message.from) NEW-ID …), or remove and re-add it (kvctl member remove, then add), or restore its data dir")
            }
            // Tell it, so it stops rather than waits: any message carrying the id we know it by.
            if let peer = outgoing[message.from] {
                var notice = PeerMessage(clusterID: config.clusterID, from: config.nodeID, to: message.from, type: .none)
                identities.stamp(&notice)
                peer.enqueue(notice, isHeartbeat: true)
                peer.flush()
            }
            return false
        case let .unrecorded(why):
            logger.error("dropped a message from node \(message.from): cannot record its data-dir id durably: \(why)")
            return false
        }
    }

    private func reject(_ connection: Connection, _ why: String) {
        logger.warning("closing peer connection from \(connection.peer): \(why)")
        dropIncoming(connection)
        connection.close()
    }
}

/// Our end of the link we dial to one peer.
private final class OutgoingPeer {
    let id: UInt64
    let dialer: Dialer
    let logger: Logger
    private var queue: [(frame: [UInt8], heartbeat: Bool)] = []
    private var queuedBytes = 0
    private var scratch: [UInt8] = []
    /// Frames of this pass for a link that keeps up (sent by the next `flush`, before `queue`).
    private var direct: [UInt8] = []
    private var wasConnected = false
    /// A snapshot being streamed: the message it belongs to and the chunks still to cut.
    private var snapshotStream: (header: PeerMessage, chunks: SnapshotFileChunker)?
    static let maxQueuedBytes = 32 << 20
    static let maxQueuedMessages = 4096

    /// Where snapshots are streamed from (the data dir holding the snapshot file).
    let dataDir: String

    init(id: UInt64, dialer: Dialer, dataDir: String, logger: Logger) {
        self.id = id
        self.dialer = dialer
        self.dataDir = dataDir
        self.logger = logger
    }

    func start() {
        dialer.onConnected = { [weak self] connection in
            guard let self else { return }
            if !self.wasConnected { self.logger.info("connected to peer \(self.id) at \(self.dialer.endpoint)") }
            self.wasConnected = true
            // We only send on this link; anything the far end sends back is discarded.
            connection.onRead = { conn in
                var sink: [UInt8] = []
                conn.readAvailable(appendingTo: &sink)
            }
            connection.onWritable = { [weak self] _ in self?.flush() }
        }
        dialer.onDisconnected = { [weak self] reason in
            guard let self else { return }
            if self.wasConnected { self.logger.info("lost peer \(self.id): \(reason)") }
            self.wasConnected = false
            self.queue.removeAll()
            self.queuedBytes = 0
            self.direct.removeAll()
            // Half a snapshot is useless: the leader sends it again after its snapshot timeout.
            self.snapshotStream = nil
        }
        dialer.start()
    }

    func enqueue(_ message: PeerMessage, isHeartbeat: Bool) {
        // Nobody to send to: Raft will retransmit once the link is back.
        guard let connection = dialer.connection else { return }
        // The common case: the link keeps up, so the frame goes straight into this pass's bytes.
        if queue.isEmpty, connection.outputBufferedBytes + direct.count <= connection.limits.highWater {
            message.appendFrame(to: &direct)
            return
        }
        var frame: [UInt8] = []
        message.appendFrame(to: &frame)
        queue.append((frame, isHeartbeat))
        queuedBytes += frame.count
        while queue.count > OutgoingPeer.maxQueuedMessages || queuedBytes > OutgoingPeer.maxQueuedBytes {
            let victim = queue.firstIndex { $0.heartbeat } ?? 0
            queuedBytes -= queue[victim].frame.count
            queue.remove(at: victim)
        }
    }

    /// Starts streaming `snapshot` (replacing an older one in progress; a resend of the one in
    /// progress changes nothing, so a slow link is not restarted from scratch).
    func startSnapshot(_ header: PeerMessage, _ snapshot: Snapshot) {
        guard dialer.connection != nil else { return }
        if let current = snapshotStream?.chunks, current.index == snapshot.index, current.term == snapshot.term { return }
        var header = header
        header.snapshot = nil
        do {
            let chunker = try SnapshotFileChunker.open(directory: dataDir, index: snapshot.index, term: snapshot.term)
            snapshotStream = (header, chunker)
        } catch is SnapshotFileMismatch {
            // A newer snapshot file is in place and the core is about to compact to it: the
            // leader sends that one when its snapshot timeout passes.
            return logger.debug("not sending peer \(id) an outdated snapshot")
        } catch {
            return logger.error("cannot send peer \(id) the snapshot: \(error)")
        }
        logger.info("sending snapshot (\(snapshot.index), t\(snapshot.term)) to peer \(id)")
    }

    func flush() {
        guard let connection = dialer.connection else { return }
        if !direct.isEmpty {
            connection.write(direct)
            direct.removeAll(keepingCapacity: true)
        }
        flushQueue(connection)
        flushSnapshot(connection)
    }

    /// Cuts and writes snapshot chunks while the link has room; `onWritable` brings us back.
    private func flushSnapshot(_ connection: Connection) {
        guard var (header, chunker) = snapshotStream, queue.isEmpty else { return }
        do {
            while connection.isWritable, let chunk = try chunker.next() {
                header.snapshot = chunk
                scratch.removeAll(keepingCapacity: true)
                header.appendFrame(to: &scratch)
                connection.write(scratch)
            }
        } catch {
            // The follower never completes it; the leader sends it again after its snapshot timeout.
            snapshotStream = nil
            return logger.error("stopped sending peer \(id) the snapshot: \(error)")
        }
        snapshotStream = chunker.isFinished ? nil : (header, chunker)
    }

    private func flushQueue(_ connection: Connection) {
        guard !queue.isEmpty else { return }
        scratch.removeAll(keepingCapacity: true)
        var sent = 0
        while sent < queue.count, connection.outputBufferedBytes + scratch.count <= connection.limits.highWater {
            scratch.append(contentsOf: queue[sent].frame)
            queuedBytes -= queue[sent].frame.count
            sent += 1
        }
        queue.removeFirst(sent)
        if !scratch.isEmpty { connection.write(scratch) }
    }
}

/// A link a peer dialed to us.
private final class IncomingPeer {
    let connection: Connection
    let reader = FrameReader<PeerMessage>(frameLimit: PeerTransport.frameLimit)
    var snapshot: SnapshotFileReceiver
    var nodeID: UInt64 = 0
    var partialFrameWatch: PartialFrameWatch?

    init(connection: Connection, snapshot: SnapshotFileReceiver) {
        self.connection = connection
        self.snapshot = snapshot
    }
}
