import Dispatch
import EventLoop
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Raft
import RaftStorage
import ServiceSupport
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
    let config: RaftServerConfig
    let logger: Logger
    let storage: DurableLog
    let node: RaftNode
    var transport: PeerTransport!
    private var applyListener: Listener?
    private var session: ApplySession?
    private var tickTimer: Timer?
    /// A follower's committed entries go to its kvd at most every `followerApplyDelayMs`:
    /// nobody waits on a follower's state machine, and one stream write (and kvd wakeup) per
    /// few ms instead of one per commit saves both processes CPU under load.
    private var followerStreamTimer: Timer?
    private var followerStreamPending = false
    /// Holds back a snapshot kvd refused (see `SnapshotRetryBackoff`); the timer resends it.
    private var kvdSnapshotRetry = SnapshotRetryBackoff()
    private var kvdSnapshotRetryTimer: Timer?
    static let followerApplyDelayMs = 5.0
    private var readyAction: DeferredAction!
    private var lastSoftState: SoftState?
    /// Highest index known committed and durable here: what may be streamed to kvd.
    private var committedIndex: UInt64
    private var stopped = false
    /// Term and vote as last written to the log (they must be fsynced before use).
    private var syncedTerm: UInt64 = 0
    private var syncedVote: UInt64 = 0
    /// Entry bytes logged since the last snapshot: past `snapshotLogBytes`, and past the last
    /// snapshot's own size, we ask kvd for one. The second bound keeps a large state from being
    /// rewritten more often than the log it replaces grows (at most 2x write amplification).
    private var logBytesSinceSnapshot = 0
    private var lastSnapshotBytes = 0
    /// Snapshot files are written on this queue, one at a time, and reported back on the loop.
    private let snapshotQueue = DispatchQueue(label: "kvraft.raftd-snapshot-writer")
    private var snapshotWrites: LoopMailbox<SnapshotWrite>!
    private var snapshotWriteInFlight = false
    /// Leaders' snapshots that arrived whole (in files) since the last `processReady`: the one
    /// the core restores is installed from its file, the others are dropped.
    private var receivedSnapshots: [SnapshotFileWriter] = []
    /// Made by `enableMetrics` when the process serves metrics.
    var metrics: RaftMetrics?
    /// The configuration entries of the durable log by index (Membership.swift).
    let membershipFile: MembershipFile
    /// Whether the configuration in force excludes this node (logged once per change).
    var removedFromCluster = false
    /// Set once a configuration in force named this node (so a joiner is not "removed").
    var hasBeenMember = false

    public init(loop: EventLoop, config: RaftServerConfig, logger: Logger) throws {
        self.loop = loop
        self.config = config
        self.logger = logger
        // Snapshot bytes stay on disk: they are streamed from the file when a follower or kvd
        // needs them, so a large state is not held in raftd's memory as well.
        storage = try DurableLog.open(directory: config.dataDir, clusterID: config.clusterID, nodeID: config.nodeID,
                                      keepsSnapshotData: false, logger: logger)
        membershipFile = try MembershipFile.open(directory: config.dataDir)
        // The file is written before the log: after a crash it may name entries the log never
        // got. Past the snapshot, the log itself is the truth.
        try membershipFile.logWritten(from: (storage.snapshot?.index ?? 0) + 1, entries: storage.entries)
        var raftConfig = RaftConfig(id: config.nodeID, peers: config.join ? [] : config.peers.keys.sorted())
        raftConfig.initialConfiguration = config.seedConfiguration
        raftConfig.electionTicks = config.electionTicks
        raftConfig.heartbeatTicks = config.heartbeatTicks
        raftConfig.maxAppendBytes = config.maxAppendBytes
        raftConfig.randomSeed = UInt64.random(in: 1...UInt64.max)
        raftConfig.readLease = config.readLease
        // Everything up to the persisted commit index (and the snapshot, which only ever covers
        // committed entries) is committed and durable: kvd may have it at once, without waiting
        // for the core to hand it out again.
        let durableCommit = max(min(storage.hardState.commit, storage.lastIndex), storage.snapshot?.index ?? 0)
        var snapshot = storage.snapshot
        if let index = snapshot?.index { snapshot?.configuration = membershipFile.configuration(at: index) }
        node = RaftNode(config: raftConfig, hardState: storage.hardState, snapshot: snapshot,
                        entries: storage.entries, applied: durableCommit)
        committedIndex = durableCommit
        // No kvd yet: do not lead or campaign without one (bounded; see StateMachineAttachment).
        node.setStateMachineAttached(false)
        logBytesSinceSnapshot = storage.entries.reduce(0) { $0 + $1.byteSize }
        lastSnapshotBytes = storage.snapshotDataSize
        syncedTerm = storage.hardState.term
        syncedVote = storage.hardState.vote
        transport = PeerTransport(loop: loop, config: config, logger: logger, snapshotQueue: snapshotQueue,
                                  identities: PeerIdentityGuard(ownID: storage.dataDirID, nodeID: config.nodeID, peers: storage.peerIdentities),
                                  onSnapshotFile: { [weak self] file in self?.receivedSnapshots.append(file) }) { [weak self] message in
            self?.observeClock()
            self?.metrics?.received(message, nowNanos: EventLoop.monotonicNanos())
            self?.node.step(message)
            self?.readyAction.schedule()
        }
        transport.onReplaced = { [weak self] peer, knownAs in self?.refuseToServe(toldBy: peer, knownAs: knownAs) }
        transport.onPeerLinkLost = { [weak self] peer in
            self?.node.peerConnectionLost(peer)
            self?.readyAction.schedule()
        }
        transport.updateAddresses(raftAddresses(node.configuration))
        readyAction = DeferredAction(loop: loop) { [weak self] in self?.processReady() }
        snapshotWrites = LoopMailbox(loop: loop) { [weak self] write in self?.snapshotWritten(write) }
    }

    public func start() throws {
        // A node restarting as a member was one before (the log line on a later removal).
        hasBeenMember = node.configuration.member(config.nodeID) != nil
        try transport.start()
        applyListener = try Listener(loop: loop, endpoint: .unix(path: config.applySocketPath), unixMode: 0o600) { [weak self] connection in
            self?.attachKvd(connection)
        }
        let timer = Timer(loop: loop, repeating: true) { [weak self] in
            // A node that must not serve no longer campaigns (its core hears nothing either).
            self?.observeClock()
            if self?.refusal == nil { self?.node.tick() }
            self?.session?.sendAcceptedResults()
            self?.readyAction.schedule()
        }
        timer.schedule(milliseconds: config.tickMs)
        tickTimer = timer
        logger.info("raftd \(config.nodeID) serving", metadata: [
            "peers": "\(config.listen)", "apply": "\(config.applySocketPath)", "data": "\(config.dataDir)",
            "electionMs": "\(config.electionMs)", "heartbeatMs": "\(config.heartbeatMs)",
            "readMode": "\(config.readMode.rawValue)",
            "leaseMs": "\(config.readLease.map { String(Double($0.durationNanos) / 1e6) } ?? "-")",
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
        refusalReminder?.cancel()
        followerStreamTimer?.cancel()
        kvdSnapshotRetryTimer?.cancel()
        applyListener?.close()
        transport.stop()
        session?.connection.close()
        session?.snapshotIn.abandon()
        snapshotQueue.sync {}  // a snapshot file being written finishes before the data dir is let go
        do { try storage.sync() } catch { logger.error("final sync failed: \(error)") }
        storage.close()
        logger.info("raftd \(config.nodeID) stopped")
    }

    public var status: RaftStatus { node.status }

    /// Ids the core knows kvd's reads under; never reused, across kvd connections too.
    private var nextCoreReadID: UInt64 = 1

    /// Sends the core's answers to the kvd that asked (answers for a previous kvd are dropped).
    private func answerReads(_ states: [ReadState]) {
        guard let session else { return }
        var results: [ReadResult] = []
        for state in states {
            guard let id = session.readIDs.removeValue(forKey: state.id) else { continue }
            results.append(ReadResult(kvdID: id, state))
        }
        if !results.isEmpty { session.send(.readResults(results)) }
    }

    /// Lease reads measure time on a clock that keeps running while we are stopped; the core
    /// sees it before every input that may start a round or answer a read.
    private func observeClock() {
        if config.readMode == .lease { node.observeClock(nanos: LeaseClock.nanos()) }
    }

    /// Turns on metrics (after `OperatorEndpoint.bootstrapMetrics`).
    public func enableMetrics() {
        metrics = RaftMetrics(peers: config.peers.keys.filter { $0 != config.nodeID }.sorted())
    }

    // MARK: A replaced data dir

    /// Set once a peer told us it knows this node by another data dir: ours was wiped or
    /// replaced, so this node forgot its votes and log and must not vote, campaign or acknowledge.
    /// It stays up (a crash loop helps nobody) and says so in its log and status.
    private(set) var refusal: String?
    private var refusalReminder: Timer?
    static let refusalReminderMs = 5_000.0

    private func refuseToServe(toldBy peer: UInt64, knownAs: UInt64) {
        guard refusal == nil else { return }
        let id = config.nodeID
        refusal = "node \(id)'s data directory was wiped or replaced: the cluster knew it as data dir "
            + "\(PeerIdentityGuard.describe(knownAs)) (told by node \(peer)), this one is \(PeerIdentityGuard.describe(storage.dataDirID))"
            + "\(storage.dataDirCreated ? ", created empty at this start" : ""). It has forgotten its votes and log, so it "
            + "refuses to vote, campaign or acknowledge. Either replace it under a new id (stop it, then `kvctl member replace "
            + "\(id) NEW-ID --raft HOST:PORT --kvd HOST:PORT` and start the new node with raftd --join), or remove it "
            + "(`kvctl member remove \(id)`) and, once the removal committed, add it again with this fresh data dir "
            + "(`kvctl member add \(id) …`, restart this raftd with --join); or restore its data dir \(config.dataDir)"
        logger.critical("\(refusal!)")
        let reminder = Timer(loop: loop, repeating: true) { [weak self] in
            guard let self, let refusal = self.refusal else { return }
            self.logger.error("\(refusal)")
        }
        reminder.schedule(milliseconds: Self.refusalReminderMs)
        refusalReminder = reminder
    }

    // MARK: Raft I/O

    private func processReady() {
        guard !stopped else { return }
        while node.hasReady {
            let ready = node.ready()
            // A read index vouches for nothing of ours that is not yet durable: kvd may have it now.
            if !ready.readStates.isEmpty { answerReads(ready.readStates) }
            // The leader's appends hit the wire before its own fsync starts (thesis §10.2.1).
            transport.send(ready.messages, flushNow: !ready.entries.isEmpty)
            metrics?.sent(ready.messages, nowNanos: EventLoop.monotonicNanos())
            do {
                if let snapshot = ready.snapshot {
                    // The leader's snapshot replaces our log; durable before we acknowledge it.
                    guard let position = receivedSnapshots.firstIndex(where: { $0.index == snapshot.index && $0.term == snapshot.term }) else {
                        throw SnapshotFileMismatch(description: "the core restored snapshot (\(snapshot.index), t\(snapshot.term)) but no file of it arrived")
                    }
                    let file = receivedSnapshots.remove(at: position)
                    logger.info("installing snapshot (\(file.index), t\(file.term), \(file.dataSize) bytes) from the leader",
                                metadata: ["lastIndex": "\(storage.lastIndex)"])
                    snapshotQueue.sync {}  // its last bytes are written, and no other snapshot file is being renamed
                    try storage.installSnapshot(from: file)
                    try membershipFile.snapshotInstalled(index: snapshot.index, configuration: snapshot.configuration)
                    logBytesSinceSnapshot = 0
                    lastSnapshotBytes = file.dataSize
                }
                if let first = ready.entries.first, first.index <= storage.lastIndex {
                    logger.notice("replacing log entries from index \(first.index) (last was \(storage.lastIndex)) with the leader's")
                }
                if let first = ready.entries.first, first.index <= storage.lastIndex || ready.entries.contains(where: { $0.kind == .config }) {
                    try membershipFile.logWritten(from: first.index, entries: ready.entries)
                }
                if !ready.entries.isEmpty {
                    try storage.append(ready.entries)
                    logBytesSinceSnapshot += ready.entries.reduce(0) { $0 + $1.byteSize }
                }
                var mustSync = !ready.entries.isEmpty
                if let hardState = ready.hardState {
                    try storage.save(hardState: hardState)
                    // A new commit index alone need not be durable (it is relearned from the
                    // leader after a restart); a new term or vote must be, before anyone hears of it.
                    mustSync = mustSync || hardState.term != syncedTerm || hardState.vote != syncedVote
                    syncedTerm = hardState.term
                    syncedVote = hardState.vote
                }
                if mustSync { try RaftMetrics.timeFsync(metrics) { try storage.sync() } }
            } catch {
                // Continuing could acknowledge data that is not on disk.
                logger.critical("cannot persist the log: \(error); stopping")
                stop()
                exit(1)
            }
            // Votes and append acknowledgements leave at once: the leader is waiting on them.
            transport.send(ready.messagesAfterPersist, flushNow: true)
            if let soft = ready.softState { announce(soft) }
            if let configuration = ready.configuration { configurationChanged(configuration) }
            if let snapshot = ready.snapshot { committedIndex = max(committedIndex, snapshot.index) }
            if let last = ready.committedEntries.last { committedIndex = max(committedIndex, last.index) }
            metrics?.committed(ready.committedEntries.count)
            node.advance(ready)
        }
        // Snapshots the core did not restore (stale, or its log already held them).
        for file in receivedSnapshots { snapshotQueue.async { file.abandon() } }
        receivedSnapshots.removeAll()
        streamCommittedSoon()
        requestSnapshotIfDue()
        if pendingShutdown != nil, node.status.role != .leader { finishShutdown(handedOver: true) }
    }

    private func announce(_ soft: SoftState) {
        let previous = lastSoftState
        lastSoftState = soft
        metrics?.observe(soft)
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
            dropSession()
        }
        let fresh = ApplySession(connection: connection,
                                 snapshotIn: SnapshotFileReceiver(directory: config.dataDir, queue: snapshotQueue, name: "from-kvd"))
        session = fresh
        connection.onRead = { [weak self] conn in self?.receiveFromKvd(conn) }
        connection.onWritable = { [weak self] _ in self?.streamCommitted() }
        connection.onClose = { [weak self] conn, reason in
            guard let self, self.session?.connection === conn else { return }
            self.logger.info("kvd disconnected: \(reason)")
            self.dropSession()
        }
    }

    /// Forgets the kvd link, and the snapshot it was sending (its file is removed in order with
    /// the writes already queued, before any later snapshot file is started).
    private func dropSession() {
        session?.snapshotIn.abandon()
        session = nil
        node.setStateMachineAttached(false)
        readyAction.schedule()
    }

    private func receiveFromKvd(_ connection: Connection) {
        guard let session, session.connection === connection else { return connection.close() }
        session.decoder.withAppendableBuffer { _ = connection.readAvailable(appendingTo: &$0) }
        do {
            while let frame = try session.decoder.nextFrame() {
                try handle(try KvdToRaft(serialized: frame), from: session)
            }
        } catch {
            logger.warning("closing kvd connection: \(error)")
            connection.close()
            dropSession()
            return
        }
        readyAction.schedule()
    }

    private func handle(_ message: KvdToRaft, from session: ApplySession) throws {
        switch message {
        case let .hello(lastApplied):
            let status = node.status
            if lastApplied > status.lastIndex {
                logger.error("kvd has applied up to \(lastApplied) but this log ends at \(status.lastIndex); was the data dir replaced?")
            }
            logger.info("kvd attached", metadata: ["lastApplied": "\(lastApplied)", "commit": "\(committedIndex)"])
            session.streamedIndex = lastApplied
            session.snapshotOut = nil
            node.setStateMachineAttached(true)
            session.send(.leadership(Leadership(term: status.term, leaderID: status.leader, isLeader: status.role == .leader)))
            streamCommitted()
        case let .propose(proposals):
            guard !proposals.isEmpty else { return }
            switch node.propose(batch: proposals.map(\.data)) {
            case let .accepted(firstIndex, term):
                session.deferAccepted(proposals.enumerated().map { offset, proposal in
                    ProposeResult(proposalID: proposal.proposalID, accepted: true, index: firstIndex + UInt64(offset), term: term)
                })
            case let .notLeader(leader):
                session.send(.results(proposals.map { ProposeResult(proposalID: $0.proposalID, accepted: false, leaderID: leader) }))
            }
        case let .memberCommand(queryID, command):
            session.send(.memberAnswer(queryID: queryID, memberCommand(command)))
            readyAction.schedule()
        case let .statusQuery(queryID):
            let status = node.status
            var answer = NodeStatus(
                nodeID: config.nodeID, reachable: true, role: status.role.name, term: status.term, leaderID: status.leader,
                commitIndex: status.commitIndex, appliedIndex: committedIndex, address: "\(config.listen)", error: refusal ?? "",
                fsyncs: storage.syncCount, lastIndex: status.lastIndex, snapshotIndex: node.snapshot?.index ?? 0,
                readMode: config.readMode.rawValue)
            answer.members = memberList()
            session.send(.status(queryID: queryID, answer))
        case let .snapshot(chunk):
            // kvd sends no term; 0 (which no entry has) if the log does not hold that index.
            let term = chunk.offset == 0 ? node.entry(at: chunk.index)?.term ?? 0 : 0
            guard let written = try session.snapshotIn.add(chunk, fileTerm: term) else { return }
            session.snapshotRequestedAt = nil
            try compact(with: written, from: session)
        case let .read(ids):
            guard config.readMode != .log else {
                return session.send(.readResults(ids.map { ReadResult(readID: $0, outcome: .useLog) }))
            }
            observeClock()
            var coreIDs: [UInt64] = []
            coreIDs.reserveCapacity(ids.count)
            for id in ids {
                session.readIDs[nextCoreReadID] = id
                coreIDs.append(nextCoreReadID)
                nextCoreReadID += 1
            }
            node.requestRead(ids: coreIDs)
        case let .snapshotRejected(index, reason, lastApplied):
            let delayMs = kvdSnapshotRetry.refused(index: index, nowNanos: EventLoop.monotonicNanos())
            logger.error("kvd refused the snapshot at index \(index): \(reason); resending it in \(delayMs) ms (if this repeats, the snapshot file in the data dir is damaged: restore this node's data dir from a healthy node)")
            session.snapshotOut = nil
            session.streamedIndex = lastApplied
            retryKvdSnapshot(inMs: delayMs)
        }
    }

    // MARK: Snapshots and compaction

    /// Asks kvd for a snapshot once enough log accumulated since the last one (one request at a
    /// time; an unanswered one is repeated after a while, e.g. if kvd reconnected meanwhile).
    private func requestSnapshotIfDue() {
        guard logBytesSinceSnapshot >= max(config.snapshotLogBytes, lastSnapshotBytes), !snapshotWriteInFlight, let session,
              session.streamedIndex != nil, session.snapshotOut == nil,
              node.status.appliedIndex >= session.snapshotWaitsForApplied else { return }
        let now = EventLoop.monotonicNanos()
        if let asked = session.snapshotRequestedAt, now - asked < Self.snapshotRequestRetryNanos { return }
        session.snapshotRequestedAt = now
        session.send(.snapshotRequest(appliedAtLeast: committedIndex))
    }

    private static let snapshotRequestRetryNanos: UInt64 = 10_000_000_000

    /// kvd's state at `file.index`, whose bytes are already queued to `file`: committed (fsynced
    /// and renamed over the snapshot) on the snapshot queue, then (back on the loop, in
    /// `snapshotWritten`) the log before it is discarded, except a catch-up tail, in memory and on
    /// disk. The write (MiBs plus three fsyncs) never stalls replication.
    private func compact(with file: SnapshotFileWriter, from session: ApplySession) throws {
        let index = file.index
        guard let streamed = session.streamedIndex, index <= streamed else {
            snapshotQueue.async { file.abandon() }
            throw ApplyProtocolViolation("kvd sent a snapshot at index \(index) but was only sent entries up to \(session.streamedIndex ?? 0)")
        }
        // kvd can be ahead of us: after a kill -9 our last commit index (not synced on its own)
        // may trail what kvd applied before, and kvd keeps its state across our restart. Our log
        // cannot be compacted past what we know is applied; put it off until we have relearned
        // that commit index (asked again then, see `requestSnapshotIfDue`).
        let applied = node.status.appliedIndex
        guard index <= applied else {
            snapshotQueue.async { file.abandon() }
            session.snapshotWaitsForApplied = index
            logger.notice("kvd's snapshot at \(index) is ahead of what this raftd knows to be applied (\(applied)); compacting once it has caught up")
            return
        }
        // Already covered by a newer snapshot, compacted away meanwhile, or one is being written.
        guard !snapshotWriteInFlight, index > node.snapshot?.index ?? 0, node.entry(at: index)?.term == file.term else {
            snapshotQueue.async { file.abandon() }
            return
        }
        snapshotWriteInFlight = true
        let mailbox = snapshotWrites!
        snapshotQueue.async {
            let clock = ContinuousClock()
            let started = clock.now
            var failure: String?
            do {
                try file.commit()
            } catch {
                file.abandon()
                failure = "\(error)"
            }
            mailbox.post(SnapshotWrite(index: file.index, term: file.term, dataSize: file.dataSize, error: failure,
                                       duration: clock.now - started))
        }
    }

    private struct SnapshotWrite: Sendable {
        let index: UInt64
        let term: UInt64
        let dataSize: Int
        let error: String?
        let duration: Duration
    }

    private func snapshotWritten(_ write: SnapshotWrite) {
        snapshotWriteInFlight = false
        guard !stopped else { return }
        let name = "snapshot (\(write.index), t\(write.term), \(write.dataSize) bytes)"
        if write.error == nil { metrics?.snapshotDuration.record(duration: write.duration) }
        if let error = write.error {
            // The log is intact on disk; only compaction is put off.
            return logger.error("cannot save \(name): \(error); the log stays uncompacted")
        }
        // Installed over by a newer snapshot from the leader meanwhile.
        guard write.index > node.snapshot?.index ?? 0, node.entry(at: write.index)?.term == write.term else { return }
        do {
            try storage.saveSnapshot(writtenIndex: write.index, term: write.term, dataSize: write.dataSize)
        } catch {
            return logger.error("cannot compact the log with \(name): \(error); the log stays uncompacted")
        }
        let snapshot = (index: write.index, term: write.term)
        // The core keeps only index and term; the bytes are in the file.
        node.compact(through: snapshot.index, data: [], retaining: entriesToRetain(before: snapshot.index))
        do { try membershipFile.compacted(through: snapshot.index) } catch {
            logger.error("cannot rewrite the membership file: \(error)")
        }
        var bytes = 0
        var next = snapshot.index + 1
        while let entry = node.entry(at: next) {
            bytes += entry.byteSize
            next += 1
        }
        logBytesSinceSnapshot = bytes
        lastSnapshotBytes = write.dataSize
        HeapTrimming.releaseFreeMemory()
        logger.info("compacted the log through \(snapshot.index)", metadata: [
            "snapshotBytes": "\(write.dataSize)", "firstIndex": "\(node.firstIndex)", "writeDuration": "\(write.duration)",
        ])
    }

    /// Entries to keep before `index` when compacting: those a live follower still needs (so it
    /// catches up with appends, not a whole snapshot), unless they exceed four compaction
    /// thresholds; at least `snapshotCatchUpBytes` worth.
    private func entriesToRetain(before index: UInt64) -> Int {
        let catchUp = entries(backFrom: index, downTo: 0, withinBytes: config.snapshotCatchUpBytes).count
        guard let slowest = node.slowestLiveFollowerMatch, slowest < index else { return catchUp }
        let needed = entries(backFrom: index, downTo: slowest, withinBytes: 4 * config.snapshotLogBytes)
        return needed.overLimit ? catchUp : max(catchUp, needed.count)
    }

    /// How many entries, going back from `index` and staying above `floor` (and stopping at a
    /// compacted one), fit in `limit` bytes; `overLimit` when the limit is what stopped it.
    private func entries(backFrom index: UInt64, downTo floor: UInt64, withinBytes limit: Int) -> (count: Int, overLimit: Bool) {
        var bytes = 0
        var position = index
        while position > floor, let entry = node.entry(at: position) {
            bytes += entry.byteSize
            if bytes > limit { return (Int(index - position), true) }
            position -= 1
        }
        return (Int(index - position), false)
    }

    /// The leader streams at once (its kvd answers clients); a follower coalesces.
    private func streamCommittedSoon() {
        if lastSoftState?.role == .leader { return streamCommitted() }
        guard !followerStreamPending else { return }
        followerStreamPending = true
        if followerStreamTimer == nil {
            followerStreamTimer = Timer(loop: loop) { [weak self] in
                self?.followerStreamPending = false
                self?.streamCommitted()
            }
        }
        followerStreamTimer?.schedule(milliseconds: Self.followerApplyDelayMs)
    }

    /// Streams again once a snapshot kvd refused may be resent.
    private func retryKvdSnapshot(inMs delayMs: UInt64) {
        if kvdSnapshotRetryTimer == nil {
            kvdSnapshotRetryTimer = Timer(loop: loop) { [weak self] in self?.streamCommitted() }
        }
        kvdSnapshotRetryTimer?.schedule(milliseconds: Double(delayMs))
    }

    /// Sends committed entries kvd has not seen yet, while its socket keeps up; a kvd behind the
    /// compacted log gets the snapshot first.
    private func streamCommitted() {
        guard let session, var next = session.streamedIndex.map({ $0 + 1 }) else { return }
        if session.snapshotOut == nil, next <= committedIndex, next < node.firstIndex, let snapshot = node.snapshot {
            let waitMs = kvdSnapshotRetry.waitMs(index: snapshot.index, nowNanos: EventLoop.monotonicNanos())
            guard waitMs == 0 else { return retryKvdSnapshot(inMs: waitMs) }
            do {
                session.snapshotOut = try SnapshotFileChunker.open(directory: config.dataDir, index: snapshot.index, term: snapshot.term)
                logger.info("restoring kvd from snapshot (\(snapshot.index), t\(snapshot.term)): it has applied up to \(next - 1), the log starts at \(node.firstIndex)")
            } catch is SnapshotFileMismatch {
                // A newer snapshot file is in place and the core is about to compact to it: the
                // next stream attempt (every commit, every few ms on a follower) sends that one.
                return logger.debug("kvd's snapshot waits for the compaction to the newer file")
            } catch {
                return logger.error("cannot send kvd the snapshot it needs: \(error)")
            }
        }
        if var chunker = session.snapshotOut {
            do {
                while session.connection.isWritable, let chunk = try chunker.next() {
                    session.send(.snapshot(chunk))
                }
            } catch {
                // kvd drops the half it has when the next snapshot starts at offset 0.
                session.snapshotOut = nil
                return logger.error("stopped sending kvd the snapshot: \(error)")
            }
            guard chunker.isFinished else {
                session.snapshotOut = chunker
                return
            }
            session.snapshotOut = nil
            session.streamedIndex = chunker.index
            next = chunker.index + 1
        }
        while next <= committedIndex, session.connection.isWritable {
            var batch: [LogEntry] = []
            var bytes = 0
            while next <= committedIndex, bytes < config.applyChunkBytes, let entry = node.entry(at: next) {
                // kvd has no use for configurations: it applies them as no-ops.
                batch.append(entry.kind == .config ? LogEntry(term: entry.term, index: entry.index, isNoop: true) : LogEntry(entry))
                bytes += entry.byteSize
                next += 1
            }
            guard !batch.isEmpty else { break }
            session.send(.committed(batch))
            session.streamedIndex = next - 1
        }
    }
}

/// kvd broke the apply protocol; its connection is closed.
struct ApplyProtocolViolation: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
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
