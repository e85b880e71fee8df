import EventLoop
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Raft
import RaftStorage
import Wire

/// raftd: the Raft core, its durable log, the peer links and the apply socket, on one loop.
///
/// Each pass of `processReady` takes one `Ready` from the core and handles it in the order
/// Raft requires: the leader's appends go out first (in parallel with its own fsync), then
/// entries and hard state are written and fsynced together — one fdatasync for everything
/// that arrived since the previous pass (group commit) — then the messages that vouch for
/// durable state, then committed entries flow to kvd.
public final class RaftServer {
    private let loop: EventLoop
    private let config: RaftServerConfig
    private let logger: Logger
    private let storage: DurableLog
    private let node: RaftNode
    private var transport: PeerTransport!
    private var applyListener: Listener?
    private var session: ApplySession?
    private var tickTimer: Timer?
    private var readyAction: DeferredAction!
    private var lastSoftState: SoftState?
    /// Highest index known committed and durable here: what may be streamed to kvd.
    private var committedIndex: UInt64
    private var stopped = false
    /// Term and vote as last written to the log (they must be fsynced before use).
    private var syncedTerm: UInt64 = 0
    private var syncedVote: UInt64 = 0

    public init(loop: EventLoop, config: RaftServerConfig, logger: Logger) throws {
        self.loop = loop
        self.config = config
        self.logger = logger
        storage = try DurableLog.open(directory: config.dataDir, clusterID: config.clusterID, nodeID: config.nodeID, logger: logger)
        var raftConfig = RaftConfig(id: config.nodeID, peers: config.peers.keys.sorted())
        raftConfig.electionTicks = config.electionTicks
        raftConfig.heartbeatTicks = config.heartbeatTicks
        raftConfig.maxAppendBytes = config.maxAppendBytes
        raftConfig.randomSeed = UInt64.random(in: 1...UInt64.max)
        // Everything up to the persisted commit index is committed and durable: kvd may have it
        // at once, without waiting for the core to hand it out again.
        let durableCommit = min(storage.hardState.commit, storage.lastIndex)
        node = RaftNode(config: raftConfig, hardState: storage.hardState, entries: storage.entries, applied: durableCommit)
        committedIndex = durableCommit
        syncedTerm = storage.hardState.term
        syncedVote = storage.hardState.vote
        transport = PeerTransport(loop: loop, config: config, logger: logger) { [weak self] message in
            self?.node.step(message)
            self?.readyAction.schedule()
        }
        readyAction = DeferredAction(loop: loop) { [weak self] in self?.processReady() }
    }

    public func start() throws {
        try transport.start()
        applyListener = try Listener(loop: loop, endpoint: .unix(path: config.applySocketPath), unixMode: 0o600) { [weak self] connection in
            self?.attachKvd(connection)
        }
        let timer = Timer(loop: loop, repeating: true) { [weak self] in
            self?.node.tick()
            self?.readyAction.schedule()
        }
        timer.schedule(milliseconds: config.tickMs)
        tickTimer = timer
        logger.info("raftd \(config.nodeID) serving", metadata: [
            "peers": "\(config.listen)", "apply": "\(config.applySocketPath)", "data": "\(config.dataDir)",
            "electionMs": "\(config.electionMs)", "heartbeatMs": "\(config.heartbeatMs)",
        ])
    }

    /// Graceful shutdown: a leader first hands leadership to its most up-to-date follower (so
    /// the cluster does not wait out an election timeout), for at most `handoverMs`; then
    /// `stop()`, then `completion`.
    public func shutdown(handoverMs: Double, completion: @escaping () -> Void) {
        guard !stopped, node.status.role == .leader, node.transferLeadership() else {
            stop()
            return completion()
        }
        logger.info("handing leadership over before shutting down")
        pendingShutdown = completion
        let deadline = Timer(loop: loop) { [weak self] in
            self?.finishShutdown(handedOver: false, handoverMs: handoverMs)
        }
        deadline.schedule(milliseconds: handoverMs)
        handoverDeadline = deadline
        readyAction.schedule()
    }

    /// Set while a leader hands over before stopping; `processReady` finishes once we no longer lead.
    private var pendingShutdown: (() -> Void)?
    private var handoverDeadline: Timer?

    private func finishShutdown(handedOver: Bool, handoverMs: Double = 0) {
        guard let completion = pendingShutdown else { return }
        pendingShutdown = nil
        handoverDeadline?.cancel()
        if handedOver {
            logger.info("leadership handed over", metadata: ["to": "\(node.status.leader)"])
        } else {
            logger.warning("leadership handover did not finish in \(Int(handoverMs)) ms; stopping anyway")
        }
        stop()
        completion()
    }

    /// Clean shutdown: stop taking input, make everything written durable, close.
    public func stop() {
        guard !stopped else { return }
        stopped = true
        tickTimer?.cancel()
        applyListener?.close()
        transport.stop()
        session?.connection.close()
        do { try storage.sync() } catch { logger.error("final sync failed: \(error)") }
        storage.close()
        logger.info("raftd \(config.nodeID) stopped")
    }

    public var status: RaftStatus { node.status }

    // MARK: Raft I/O

    private func processReady() {
        guard !stopped else { return }
        while node.hasReady {
            let ready = node.ready()
            // The leader's appends hit the wire before its own fsync starts (thesis §10.2.1).
            transport.send(ready.messages, flushNow: !ready.entries.isEmpty)
            do {
                if let first = ready.entries.first, first.index <= storage.lastIndex {
                    logger.notice("replacing log entries from index \(first.index) (last was \(storage.lastIndex)) with the leader's")
                }
                if !ready.entries.isEmpty { try storage.append(ready.entries) }
                var mustSync = !ready.entries.isEmpty
                if let hardState = ready.hardState {
                    try storage.save(hardState: hardState)
                    // A new commit index alone need not be durable (it is relearned from the
                    // leader after a restart); a new term or vote must be, before anyone hears of it.
                    mustSync = mustSync || hardState.term != syncedTerm || hardState.vote != syncedVote
                    syncedTerm = hardState.term
                    syncedVote = hardState.vote
                }
                if mustSync { try storage.sync() }
            } catch {
                // Continuing could acknowledge data that is not on disk.
                logger.critical("cannot persist the log: \(error); stopping")
                stop()
                exit(1)
            }
            // Votes and append acknowledgements leave at once: the leader is waiting on them.
            transport.send(ready.messagesAfterPersist, flushNow: true)
            if let soft = ready.softState { announce(soft) }
            if let last = ready.committedEntries.last { committedIndex = max(committedIndex, last.index) }
            node.advance(ready)
        }
        streamCommitted()
        if pendingShutdown != nil, node.status.role != .leader { finishShutdown(handedOver: true) }
    }

    private func announce(_ soft: SoftState) {
        let previous = lastSoftState
        lastSoftState = soft
        if previous?.role != soft.role || previous?.leader != soft.leader {
            switch soft.role {
            case .leader: logger.info("became leader", metadata: ["term": "\(soft.term)"])
            case .follower:
                if soft.leader != 0 {
                    logger.info("following leader \(soft.leader)", metadata: ["term": "\(soft.term)"])
                } else {
                    logger.info("follower without a leader", metadata: ["term": "\(soft.term)"])
                }
            case .candidate: logger.info("starting election", metadata: ["term": "\(soft.term)"])
            case .preCandidate: logger.debug("pre-vote", metadata: ["term": "\(soft.term)"])
            }
        }
        session?.send(.leadership(leadership(soft)))
    }

    private func leadership(_ soft: SoftState) -> Leadership {
        Leadership(term: soft.term, leaderID: soft.leader, isLeader: soft.role == .leader)
    }

    // MARK: The apply socket

    private func attachKvd(_ connection: Connection) {
        if let old = session {
            logger.warning("a new kvd connected; dropping the previous one")
            old.connection.close()
        }
        let fresh = ApplySession(connection: connection)
        session = fresh
        connection.onRead = { [weak self] conn in self?.receiveFromKvd(conn) }
        connection.onWritable = { [weak self] _ in self?.streamCommitted() }
        connection.onClose = { [weak self] conn, reason in
            guard let self, self.session?.connection === conn else { return }
            self.logger.info("kvd disconnected: \(reason)")
            self.session = nil
        }
    }

    private func receiveFromKvd(_ connection: Connection) {
        guard let session, session.connection === connection else { return connection.close() }
        session.decoder.withAppendableBuffer { _ = connection.readAvailable(appendingTo: &$0) }
        do {
            while let frame = try session.decoder.nextFrame() {
                handle(try KvdToRaft(serialized: frame), from: session)
            }
        } catch {
            logger.warning("closing kvd connection: \(error)")
            connection.close()
            self.session = nil
            return
        }
        readyAction.schedule()
    }

    private func handle(_ message: KvdToRaft, from session: ApplySession) {
        switch message {
        case let .hello(lastApplied):
            let status = node.status
            if lastApplied > status.lastIndex {
                logger.error("kvd has applied up to \(lastApplied) but this log ends at \(status.lastIndex); was the data dir replaced?")
            }
            logger.info("kvd attached", metadata: ["lastApplied": "\(lastApplied)", "commit": "\(committedIndex)"])
            session.streamedIndex = lastApplied
            session.send(.leadership(Leadership(term: status.term, leaderID: status.leader, isLeader: status.role == .leader)))
            streamCommitted()
        case let .propose(proposals):
            guard !proposals.isEmpty else { return }
            let results: [ProposeResult]
            switch node.propose(batch: proposals.map(\.data)) {
            case let .accepted(firstIndex, term):
                results = proposals.enumerated().map { offset, proposal in
                    ProposeResult(proposalID: proposal.proposalID, accepted: true, index: firstIndex + UInt64(offset), term: term)
                }
            case let .notLeader(leader):
                results = proposals.map { ProposeResult(proposalID: $0.proposalID, accepted: false, leaderID: leader) }
            }
            session.send(.results(results))
        case let .statusQuery(queryID):
            let status = node.status
            session.send(.status(queryID: queryID, NodeStatus(
                nodeID: config.nodeID, reachable: true, role: status.role.name, term: status.term, leaderID: status.leader,
                commitIndex: status.commitIndex, appliedIndex: committedIndex, address: "\(config.listen)",
                fsyncs: storage.syncCount, lastIndex: status.lastIndex)))
        }
    }

    /// Sends committed entries kvd has not seen yet, while its socket keeps up.
    private func streamCommitted() {
        guard let session, var next = session.streamedIndex.map({ $0 + 1 }) else { return }
        while next <= committedIndex, session.connection.isWritable {
            var batch: [LogEntry] = []
            var bytes = 0
            while next <= committedIndex, bytes < config.applyChunkBytes, let entry = node.entry(at: next) {
                batch.append(LogEntry(entry))
                bytes += entry.byteSize
                next += 1
            }
            guard !batch.isEmpty else { break }
            session.send(.committed(batch))
            session.streamedIndex = next - 1
        }
    }
}

extension RaftRole {
    public var name: String {
        switch self {
        case .follower: "follower"
        case .preCandidate: "pre-candidate"
        case .candidate: "candidate"
        case .leader: "leader"
        }
    }
}
