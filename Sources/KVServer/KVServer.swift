import Dispatch
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
/// Only the leader's kvd answers; a follower's redirects. kvd is rebuilt from raftd's stream on every start (raftd's snapshot, then
/// the entries after it), so it holds nothing that raftd does not. When raftd's log grows,
/// raftd asks for a snapshot of the state machine and compacts its log up to it.
public final class KVServer {
    private let loop: EventLoop
    let config: KVServerConfig
    let logger: Logger
    var machine: KVStateMachine
    let raftLink: Dialer
    private var raftDecoder = FrameDecoder(frameLimit: Limits.standard.internalFrameBytes)
    var raftReady = false
    /// raftd restoring us from its snapshot (we are behind its compacted log), decoded as it arrives.
    private var snapshotIn = IncomingSnapshot()
    /// We refused raftd's snapshot and wait for it to be sent again: committed entries after
    /// it (sent before raftd heard of the refusal) are dropped instead of treated as a gap.
    private var snapshotRefused = false
    /// The term in which this kvd proposed its flags' session limits (once per term).
    private var limitsProposedInTerm: UInt64 = 0
    /// The replicated limits last reported in the log (compared with the flags).
    private var reportedLimits: SessionLimits?
    /// Our snapshot on its way to raftd, cut into chunks as its parts arrive and the link drains.
    private var snapshotOut: OutgoingSnapshot?
    /// Snapshots are encoded off the loop (from a copy-on-write copy of the state machine), and
    /// their parts come back here; `encoding` is set meanwhile, one at a time.
    private var snapshotEncoded: LoopMailbox<SnapshotEncoding>!
    private var encoding = false
    /// Bumped on every raftd (re)connection, so an encoding started for one is not sent on another.
    private var raftConnection = 0
    private var listener: Listener?
    private var clients: [ObjectIdentifier: ClientLink] = [:]
    private var pending = PendingRequests()
    var reads = PendingReads()
    var nextReadID: UInt64 = 1
    /// raftd answered a read with "use the log" (`--read-mode log`): Gets are proposed, until
    /// kvd reconnects to a raftd.
    var readsThroughLog = false
    private var flushAction: DeferredAction!
    /// Sends the Gets gathered in this loop pass to raftd as one read request.
    private var readFlushAction: DeferredAction!
    /// Proposes a batch held back behind proposals in flight once it has waited
    /// `KVServerConfig.groupCommitMaxWaitMs`.
    private var groupCommitTimer: Timer!
    private var sweepTimer: Timer!
    private var nextProposalID: UInt64 = 1
    private var statusQueries = StatusQueries()
    /// Answers status queries raftd left unanswered for `statusAnswerTimeoutMs`; scheduled
    /// whenever one waits.
    private var statusTimer: Timer!
    private static let statusAnswerTimeoutMs = 1000.0
    private var stopping = false
    /// The leadership raftd last reported.
    var leadership = Leadership(term: 0, leaderID: 0, isLeader: false)
    /// Connections (gateways) subscribed to leadership news, by the request id to push under.
    private var leadershipWatchers = LeadershipWatchers()
    var scratch: [UInt8] = []
    /// Made by `enableMetrics` when the process serves metrics.
    var metrics: KVMetrics?

    public init(loop: EventLoop, config: KVServerConfig, logger: Logger) {
        self.loop = loop
        self.config = config
        self.logger = logger
        // Replicated limits only: the flags' limits are proposed when this node leads.
        machine = KVStateMachine()
        raftLink = Dialer(loop: loop, endpoint: .unix(path: config.raftSocketPath), minBackoffMs: 10, maxBackoffMs: 500)
        flushAction = DeferredAction(loop: loop) { [weak self] in self?.flushProposals() }
        readFlushAction = DeferredAction(loop: loop) { [weak self] in self?.flushReads() }
        groupCommitTimer = Timer(loop: loop) { [weak self] in self?.flushProposals() }
        sweepTimer = Timer(loop: loop, repeating: true) { [weak self] in self?.sweepDeadlines() }
        statusTimer = Timer(loop: loop) { [weak self] in self?.expireStatusQueries() }
        snapshotEncoded = LoopMailbox(loop: loop) { [weak self] event in self?.snapshotEncoding(event) }
    }

    public func start() throws {
        // TLS: only gateways and nodes may reach kvd.
        let tls = try config.tls.map { TLSAccept(context: try TLSContext(files: $0), admit: PeerCertificatePolicy.gatewaysAndNodes) }
        listener = try Listener(loop: loop, endpoint: config.listen, tls: tls) { [weak self] connection in
            self?.accept(connection)
        }
        raftLink.onConnected = { [weak self] connection in self?.raftConnected(connection) }
        raftLink.onDisconnected = { [weak self] reason in self?.raftDisconnected(reason) }
        raftLink.start()
        sweepTimer.schedule(milliseconds: 50)
        logger.info("kvd \(config.nodeID) serving clients", metadata: ["listen": "\(config.listen)", "raft": "\(config.raftSocketPath)"])
    }

    /// Stops accepting, answers every waiting request (UNAVAILABLE: outcome unknown, retry),
    /// and lets replies drain.
    public func stop() {
        guard !stopping else { return }
        stopping = true
        listener?.close()
        failAll(status: .unavailable, message: "kvd is shutting down")
        raftLink.stop()
        for client in clients.values { client.connection.closeAfterFlush() }
        sweepTimer.cancel()
        groupCommitTimer.cancel()
        logger.info("kvd \(config.nodeID) stopped", metadata: ["applied": "\(machine.appliedIndex)"])
    }

    /// Connections still sending replies (for a graceful exit).
    public var hasUnsentReplies: Bool {
        clients.values.contains { !$0.connection.isClosed && $0.connection.outputBufferedBytes > 0 }
    }

    public var appliedIndex: UInt64 { machine.appliedIndex }

    /// Turns on metrics (after `OperatorEndpoint.bootstrapMetrics`).
    public func enableMetrics() { metrics = KVMetrics() }

    /// Sets the gauges read from the state machine (called right before each scrape).
    public func refreshMetrics() { metrics?.refresh(machine) }

    /// Serving while attached to raftd, which knows a leader, and not being rebuilt from a snapshot.
    public var health: Health {
        guard raftReady else { return .notServing(reason: "kvd \(config.nodeID) is not attached to its raftd") }
        guard leadership.leaderID != 0 else { return .notServing(reason: "kvd \(config.nodeID): its raftd knows no leader (term \(leadership.term))") }
        guard !snapshotRefused else { return .notServing(reason: "kvd \(config.nodeID) refused raftd's snapshot and waits for it again") }
        return .serving
    }

    // MARK: raftd link

    private func raftConnected(_ connection: Connection) {
        raftDecoder = FrameDecoder(frameLimit: Limits.standard.internalFrameBytes)
        snapshotIn.reset()
        snapshotRefused = false
        snapshotOut?.flow.cancel()
        snapshotOut = nil
        raftConnection += 1
        readsThroughLog = false
        connection.onRead = { [weak self] conn in self?.receiveFromRaft(conn) }
        connection.onWritable = { [weak self] conn in self?.sendSnapshotChunks(on: conn) }
        scratch.removeAll(keepingCapacity: true)
        KvdToRaft.hello(lastApplied: machine.appliedIndex).appendFrame(to: &scratch)
        connection.write(scratch)
        raftReady = true
        logger.info("attached to raftd", metadata: ["lastApplied": "\(machine.appliedIndex)"])
    }

    private func raftDisconnected(_ reason: Connection.CloseReason) {
        if raftReady { logger.warning("lost raftd: \(reason); retrying") }
        raftReady = false
        leadership = Leadership(term: leadership.term, leaderID: 0, isLeader: false)
        failAll(status: .unavailable, message: "raftd unreachable; outcome unknown, retry")
        for waiter in statusQueries.takeAll() { answerStatusOnOwn(waiter, error: "raftd unreachable") }
    }

    private func receiveFromRaft(_ connection: Connection) {
        raftDecoder.withAppendableBuffer { _ = connection.readAvailable(appendingTo: &$0) }
        do {
            while let frame = try raftDecoder.nextFrame() {
                try handle(try RaftToKvd(serialized: frame))
            }
        } catch {
            logger.error("bad frame from raftd: \(error); reconnecting")
            raftLink.reset()
            raftDisconnected(.error("\(error)"))
        }
    }

    private func handle(_ message: RaftToKvd) throws {
        switch message {
        case let .committed(entries):
            for entry in entries { apply(entry) }
        case let .results(results):
            for result in results { proposalResult(result) }
        case let .leadership(new):
            leadershipChanged(new)
        case let .status(queryID, status):
            guard let waiter = statusQueries.answer(queryID) else { return }
            var node = status
            node.appliedIndex = machine.appliedIndex
            node.address = "\(config.listen)"
            waiter.client.reply(KvResponse(requestID: waiter.requestID, status: .ok, nodes: [node]))
        case let .memberAnswer(queryID, answer):
            guard let waiter = statusQueries.answer(queryID) else { return }
            waiter.client.reply(memberResponse(waiter.requestID, answer))
        case let .snapshot(chunk):
            switch try snapshotIn.add(chunk) {
            case .incomplete, .dropped:
                return
            case let .restored(restored, bytes):
                restore(restored, bytes: bytes)
            case let .refused(index, error):
                refuseSnapshot(index: index, error)
            }
        case .snapshotRequest:
            takeSnapshot()
        case let .readResults(results):
            for result in results { readResult(result) }
        }
    }

    // MARK: Snapshots

    /// Encodes the state machine as of the last applied entry and streams it to raftd, which
    /// compacts its log up to that index. The encoding runs on another thread from a copy of the
    /// machine (copy-on-write: the loop keeps applying meanwhile), so serving never stalls on it,
    /// and hands over parts of a few MiB as the link takes them, so the encoded state is never
    /// whole in memory. One at a time: a request while one is under way is dropped (raftd asks
    /// again).
    private func takeSnapshot() {
        guard snapshotOut == nil, !encoding, raftLink.connection != nil else { return }
        encoding = true
        let frozen = machine
        let connection = raftConnection
        let mailbox = snapshotEncoded!
        let flow = OutgoingSnapshot.Flow()
        DispatchQueue.global().async {
            let clock = ContinuousClock()
            let started = clock.now
            frozen.encodeSnapshot(size: { size in
                mailbox.post(.started(index: frozen.appliedIndex, size: size, flow: flow, raftConnection: connection))
            }, part: { part in
                guard flow.awaitTurn() else { return false }
                mailbox.post(.part(part, flow: flow))
                return true
            })
            mailbox.post(.finished(flow: flow, keys: frozen.count, sessions: frozen.sessionCount, duration: clock.now - started))
        }
    }

    private func snapshotEncoding(_ event: SnapshotEncoding) {
        switch event {
        case let .started(index, size, flow, connection):
            guard connection == raftConnection, snapshotOut == nil, raftLink.connection != nil else { return flow.cancel() }
            snapshotOut = OutgoingSnapshot(index: index, totalSize: size, flow: flow)
            logger.info("sending raftd a snapshot", metadata: ["index": "\(index)", "bytes": "\(size)"])
        case let .part(part, flow):
            // A cancelled snapshot's parts are dropped; its encoding has stopped.
            guard let out = snapshotOut, out.flow === flow else { return }
            out.add(part)
        case let .finished(flow, keys, sessions, duration):
            encoding = false
            guard !flow.isCancelled else { return }
            logger.info("encoded the snapshot", metadata: [
                "keys": "\(keys)", "sessions": "\(sessions)", "encodeDuration": "\(duration)",
            ])
        }
        if let connection = raftLink.connection { sendSnapshotChunks(on: connection) }
    }

    private func sendSnapshotChunks(on connection: Connection) {
        guard let out = snapshotOut else { return }
        while connection.isWritable, let chunk = out.nextChunk() {
            scratch.removeAll(keepingCapacity: true)
            KvdToRaft.snapshot(chunk).appendFrame(to: &scratch)
            connection.write(scratch)
        }
        if out.isFinished {
            snapshotOut = nil
            HeapTrimming.releaseFreeMemory()
        }
    }

    /// Replaces the state machine with raftd's snapshot: we were behind its compacted log.
    private func restore(_ restored: KVStateMachine, bytes: UInt64) {
        snapshotRefused = false
        guard restored.appliedIndex > machine.appliedIndex else { return }
        logger.info("restored from raftd's snapshot", metadata: [
            "index": "\(restored.appliedIndex)", "bytes": "\(bytes)", "keys": "\(restored.count)",
            "previouslyApplied": "\(machine.appliedIndex)",
        ])
        machine = restored
        answerAppliedReads()
        HeapTrimming.releaseFreeMemory()
        reportLimitsIfChanged()
        // Requests whose entries the snapshot covers can no longer learn their replies here.
        for (index, proposal) in pending.awaitingApply where index <= restored.appliedIndex {
            pending.awaitingApply[index] = nil
            answer(pending.finished(proposal), status: .unavailable, message: "applied from a snapshot; outcome unknown, retry")
        }
        proposeIfRoom()
    }

    /// raftd's snapshot does not decode or is inconsistent: we keep our state, tell raftd (which
    /// backs off before sending it again, instead of resending it in a loop), and drop the
    /// entries after it that raftd sent meanwhile.
    private func refuseSnapshot(index: UInt64, _ error: SnapshotRestoreError) {
        logger.error("refusing raftd's snapshot at index \(index): \(error); staying at \(machine.appliedIndex) and asking raftd to resend it later; if it persists, raftd's snapshot file is damaged: restore that node's data dir from a healthy node")
        snapshotRefused = true
        guard let connection = raftLink.connection else { return }
        scratch.removeAll(keepingCapacity: true)
        KvdToRaft.snapshotRejected(index: index, reason: "\(error)", lastApplied: machine.appliedIndex).appendFrame(to: &scratch)
        connection.write(scratch)
    }

    /// What the encoding thread reports, in order.
    private enum SnapshotEncoding: Sendable {
        /// Encoding began: `size` bytes at `index`, for the raftd connection `raftConnection`.
        case started(index: UInt64, size: Int, flow: OutgoingSnapshot.Flow, raftConnection: Int)
        case part([UInt8], flow: OutgoingSnapshot.Flow)
        case finished(flow: OutgoingSnapshot.Flow, keys: Int, sessions: Int, duration: Duration)
    }

    private func apply(_ entry: LogEntry) {
        guard entry.index == machine.appliedIndex + 1 else {
            if entry.index <= machine.appliedIndex { return }  // already applied: a replay after reconnect
            if snapshotRefused { return }  // raftd streamed past the snapshot we refused; it resends it
            logger.critical("raftd skipped entries: got \(entry.index) after \(machine.appliedIndex); reconnecting")
            raftLink.reset()
            raftDisconnected(.error("gap in the committed stream"))
            return
        }
        snapshotRefused = false  // entries follow on again: raftd has heard of the refusal
        var results: [CommandResult] = []
        if entry.isNoop || entry.data.isEmpty {
            machine.applyNoop(index: entry.index)
        } else {
            do {
                let batch = try CommandBatch(serialized: entry.data)
                results = machine.apply(batch: batch, index: entry.index)
            } catch {
                // Deterministic on every replica: the same bytes fail everywhere.
                logger.error("log entry \(entry.index) is not a command batch (\(error)); skipped")
                machine.applyNoop(index: entry.index)
            }
        }
        reportLimitsIfChanged()
        proposeLimitsIfDue(afterApplying: entry)
        answerAppliedReads()
        guard let proposal = pending.awaitingApply.removeValue(forKey: entry.index) else { return }
        defer { proposeIfRoom() }
        let waiters = pending.finished(proposal)
        if proposal.term == entry.term && results.count == waiters.count {
            for (waiter, result) in zip(waiters, results) {
                metrics?.answered(waiter.op, result.status)
                // An applied Append is refused past the stored-value cap (or, as any write, below its session's seq).
                let message = result.status == .badRequest && waiter.op == .append
                    ? "not applied: the value would exceed \(Limits.maxStoredValueBytes) bytes (the most one key holds), or the seq is below this client's last" : ""
                waiter.client.reply(KvResponse(requestID: waiter.requestID, status: result.status, value: result.value,
                                               message: message, leaderTerm: entry.term))
            }
        } else {
            // Another leader's entry took this position: ours was never applied.
            answer(waiters, status: .wrongLeader, message: "log position taken by another leader's entry")
        }
    }

    // MARK: Session limits

    /// Once this node leads and has applied an entry of its own term (so every limits entry
    /// of earlier leaders is applied here), it proposes its flags' limits if the replicated
    /// ones differ: once per term, as an entry without commands and without waiters.
    private func proposeLimitsIfDue(afterApplying entry: LogEntry) {
        let requested = config.requestedSessionLimits
        guard leadership.isLeader, entry.term == leadership.term, limitsProposedInTerm != leadership.term,
              machine.limits != requested, raftReady, let connection = raftLink.connection else { return }
        limitsProposedInTerm = leadership.term
        logger.notice("proposing this kvd's session limits", metadata: [
            "replicated": "\(machine.limits)", "proposed": "\(requested)", "term": "\(leadership.term)",
        ])
        let id = nextProposalID
        nextProposalID += 1
        let deadline = EventLoop.monotonicNanos() + UInt64(config.requestTimeoutMs * 1_000_000)
        let proposal = ProposalInFlight(id: id, waiters: [], deadline: deadline)
        pending.awaitingResult[id] = proposal
        pending.byAge.append(proposal)
        let batch = CommandBatch(timestampMs: EventLoop.wallClockMillis(), commands: [], setLimits: requested)
        scratch.removeAll(keepingCapacity: true)
        KvdToRaft.propose([Proposal(proposalID: id, data: batch.serialized())]).appendFrame(to: &scratch)
        connection.write(scratch)
    }

    /// Logs the replicated limits when they change, and says so when this kvd's flags differ
    /// (they act only through a leader's proposal).
    private func reportLimitsIfChanged() {
        guard machine.limits != reportedLimits else { return }
        reportedLimits = machine.limits
        let requested = config.requestedSessionLimits
        if machine.limits == requested {
            logger.info("session limits in force: \(machine.limits)")
        } else {
            logger.notice("the replicated session limits differ from this kvd's flags, which take effect only once this node leads and proposes them",
                          metadata: ["replicated": "\(machine.limits)", "flags": "\(requested)"])
        }
    }

    private func proposalResult(_ result: ProposeResult) {
        guard let proposal = pending.awaitingResult.removeValue(forKey: result.proposalID) else { return }
        if result.accepted && result.term == leadership.term && leadership.isLeader {
            proposal.index = result.index
            proposal.term = result.term
            if let displaced = pending.awaitingApply.updateValue(proposal, forKey: result.index) {
                answer(pending.finished(displaced), status: .wrongLeader, message: "log position reused")
            }
        } else {
            let waiters = pending.finished(proposal)
            if result.leaderID != 0 && !result.accepted {
                leadership = Leadership(term: leadership.term, leaderID: result.leaderID, isLeader: false)
            }
            answer(waiters, status: .wrongLeader, message: "not the leader")
            proposeIfRoom()
        }
    }

    private func leadershipChanged(_ new: Leadership) {
        let old = leadership
        leadership = new
        if old.isLeader && (!new.isLeader || new.term != old.term) {
            // Our term is over: whatever we proposed may or may not commit; the client retries
            // with the same session numbers and gets the original reply if it did.
            failAll(status: .wrongLeader, message: "leadership lost in term \(old.term)")
        }
        if new.isLeader != old.isLeader || new.leaderID != old.leaderID || new.term != old.term {
            leadershipWatchers.push(new, selfID: config.nodeID)
        }
        if new.isLeader != old.isLeader || new.leaderID != old.leaderID {
            logger.info(new.isLeader ? "this node leads" : "leader is \(new.leaderID == 0 ? "unknown" : String(new.leaderID))",
                        metadata: ["term": "\(new.term)"])
        }
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
        if request.op == .status { return queryStatus(request, from: client) }
        if request.op == .member { return queryMember(request, from: client) }
        if let problem = RequestValidation.problem(with: request, maxKeyBytes: config.maxKeyBytes, maxValueBytes: config.maxValueBytes) {
            metrics?.answered(request.op, .badRequest)
            return client.reply(KvResponse(requestID: request.requestID, status: .badRequest, message: problem))
        }
        guard raftReady else {
            metrics?.answered(request.op, .unavailable)
            return client.reply(KvResponse(requestID: request.requestID, status: .unavailable, message: "raftd unreachable"))
        }
        guard leadership.isLeader else {
            metrics?.answered(request.op, .wrongLeader)
            return client.reply(KvResponse(requestID: request.requestID, status: .wrongLeader,
                                           leaderHint: leadership.leaderID == 0 ? "" : String(leadership.leaderID),
                                           leaderTerm: leadership.leaderID == 0 ? 0 : leadership.term))
        }
        guard pending.count + reads.count < config.maxPendingRequests else {
            metrics?.answered(request.op, .unavailable)
            return client.reply(KvResponse(requestID: request.requestID, status: .unavailable, message: "overloaded; retry later"))
        }
        if request.op == .get && !readsThroughLog {
            reads.add(ReadWaiter(client: client, request: request))
            return readFlushAction.schedule()
        }
        propose(request, from: client)
    }

    /// Adds a command to the batch proposed next.
    func propose(_ request: KvRequest, from client: ClientLink) {
        let command = Command(clientID: request.clientID, seq: request.seq, op: request.op, key: request.key, value: request.value)
        let size = request.key.count + request.value.count + 32
        if pending.batchBytes + size > config.maxProposalBytes && !pending.batchCommands.isEmpty {
            flushProposals()
        }
        pending.batchCommands.append(command)
        pending.batchWaiters.append(Waiter(client: client, requestID: request.requestID, op: request.op))
        pending.batchBytes += size
        pending.count += 1
        scheduleFlush()
    }

    /// Proposes the batch at the end of this loop pass if fewer than `maxProposalsInFlight`
    /// proposals are being committed; otherwise when one of them finishes (`proposeIfRoom`),
    /// or once `groupCommitMaxWaitMs` has passed.
    private func scheduleFlush() {
        if hasRoomForProposal { return flushAction.schedule() }
        if !groupCommitTimer.isScheduled { groupCommitTimer.schedule(milliseconds: config.groupCommitMaxWaitMs) }
    }

    private var hasRoomForProposal: Bool {
        config.maxProposalsInFlight == 0
            || pending.awaitingResult.count + pending.awaitingApply.count < config.maxProposalsInFlight
    }

    /// A proposal finished (applied, refused or expired): the batch held back for it goes now.
    private func proposeIfRoom() {
        guard !pending.batchCommands.isEmpty, hasRoomForProposal else { return }
        flushAction.schedule()
    }

    private func queryStatus(_ request: KvRequest, from client: ClientLink) {
        let waiter = Waiter(client: client, requestID: request.requestID)
        if request.watchLeadership {
            leadershipWatchers.add(waiter, current: leadership, selfID: config.nodeID)
        }
        guard raftReady, let connection = raftLink.connection else {
            return answerStatusOnOwn(waiter, error: "raftd unreachable")
        }
        let deadline = EventLoop.monotonicNanos() + UInt64(Self.statusAnswerTimeoutMs * 1_000_000)
        let queryID = statusQueries.add(waiter, deadline: deadline)
        if !statusTimer.isScheduled { statusTimer.schedule(milliseconds: Self.statusAnswerTimeoutMs) }
        scratch.removeAll(keepingCapacity: true)
        KvdToRaft.statusQuery(queryID: queryID).appendFrame(to: &scratch)
        connection.write(scratch)
    }

    /// OP_MEMBER: handed to raftd like a status query; only the leader's raftd acts on it.
    private func queryMember(_ request: KvRequest, from client: ClientLink) {
        let waiter = Waiter(client: client, requestID: request.requestID, op: .member)
        guard raftReady, let connection = raftLink.connection else {
            return client.reply(KvResponse(requestID: request.requestID, status: .unavailable, message: "raftd unreachable"))
        }
        let command = request.member ?? MemberCommand(action: .list)
        let deadline = EventLoop.monotonicNanos() + UInt64(Self.statusAnswerTimeoutMs * 1_000_000)
        let queryID = statusQueries.add(waiter, deadline: deadline)
        if !statusTimer.isScheduled { statusTimer.schedule(milliseconds: Self.statusAnswerTimeoutMs) }
        scratch.removeAll(keepingCapacity: true)
        KvdToRaft.memberCommand(queryID: queryID, command).appendFrame(to: &scratch)
        connection.write(scratch)
    }

    /// raftd's answer to a member command as the client sees it: OK, WRONG_LEADER with the
    /// leader's id, or BAD_REQUEST with the reason.
    private func memberResponse(_ requestID: UInt64, _ answer: MemberAnswer) -> KvResponse {
        var response = KvResponse(requestID: requestID, status: .ok, message: answer.error)
        if !answer.ok {
            let notLeader = answer.leaderID != config.nodeID && answer.error.hasPrefix("not the leader")
            response.status = notLeader ? .wrongLeader : .badRequest
            if notLeader, answer.leaderID != 0 {
                response.leaderHint = String(answer.leaderID)
                response.leaderTerm = leadership.term
            }
        }
        response.members = answer.members
        response.configurationIndex = answer.configurationIndex
        return response
    }

    /// raftd (frozen, or busy) let status queries wait past their deadline: they get this
    /// node's own view. Re-arms for the next oldest, so every query is answered.
    private func expireStatusQueries() {
        for waiter in statusQueries.takeExpired(now: EventLoop.monotonicNanos()) {
            if waiter.op == .member {
                waiter.client.reply(KvResponse(requestID: waiter.requestID, status: .unavailable, message: "raftd did not answer"))
                continue
            }
            answerStatusOnOwn(waiter, error: "raftd did not answer within \(Int(Self.statusAnswerTimeoutMs)) ms")
        }
        if let next = statusQueries.nextDeadline() {
            let now = EventLoop.monotonicNanos()
            statusTimer.schedule(micros: next > now ? Int64((next - now) / 1000) + 1 : 0)
        }
    }

    /// What kvd knows without raftd: its own applied index and the leadership last reported.
    private func answerStatusOnOwn(_ waiter: Waiter, error: String) {
        if waiter.op == .member {
            return waiter.client.reply(KvResponse(requestID: waiter.requestID, status: .unavailable, message: error))
        }
        waiter.client.reply(KvResponse(requestID: waiter.requestID, status: .ok, nodes: [
            NodeStatus(nodeID: config.nodeID, reachable: true, term: leadership.term, leaderID: leadership.leaderID,
                       appliedIndex: machine.appliedIndex, address: "\(config.listen)", error: error),
        ]))
    }

    /// Sends everything batched since the last flush as one proposal (one log entry).
    private func flushProposals() {
        groupCommitTimer.cancel()
        guard !pending.batchCommands.isEmpty else { return }
        let commands = pending.batchCommands
        let waiters = pending.batchWaiters
        pending.batchCommands.removeAll(keepingCapacity: true)
        pending.batchWaiters.removeAll(keepingCapacity: true)
        pending.batchBytes = 0
        guard raftReady, leadership.isLeader, let connection = raftLink.connection else {
            pending.count -= waiters.count
            return answer(waiters, status: .wrongLeader, message: "leadership changed before proposing")
        }
        let id = nextProposalID
        nextProposalID += 1
        let deadline = EventLoop.monotonicNanos() + UInt64(config.requestTimeoutMs * 1_000_000)
        let proposal = ProposalInFlight(id: id, waiters: waiters, deadline: deadline)
        pending.awaitingResult[id] = proposal
        pending.byAge.append(proposal)
        let batch = CommandBatch(timestampMs: EventLoop.wallClockMillis(), commands: commands)
        scratch.removeAll(keepingCapacity: true)
        KvdToRaft.propose([Proposal(proposalID: id, data: batch.serialized())]).appendFrame(to: &scratch)
        connection.write(scratch)
    }

    private func sweepDeadlines() {
        let now = EventLoop.monotonicNanos()
        for proposal in pending.takeExpired(now: now) {
            answer(proposal.takeWaiters(), status: .timeout, message: "not applied within \(Int(config.requestTimeoutMs)) ms; outcome unknown, retry")
        }
        answer(reads: reads.takeExpired(now: now), status: .timeout, message: "read not confirmed within \(Int(config.requestTimeoutMs)) ms; retry")
        proposeIfRoom()
    }

    private func failAll(status: Status, message: String) {
        let hint = leadership.leaderID == 0 || leadership.isLeader ? "" : String(leadership.leaderID)
        for waiter in pending.takeAll() {
            metrics?.answered(waiter.op, status)
            waiter.client.reply(KvResponse(requestID: waiter.requestID, status: status, leaderHint: hint, message: message,
                                           leaderTerm: hint.isEmpty ? 0 : leadership.term))
        }
        answer(reads: reads.takeAll(), status: status, message: message)
    }

    private func answer(_ waiters: [Waiter], status: Status, message: String) {
        let hint = leadership.leaderID == 0 || leadership.isLeader ? "" : String(leadership.leaderID)
        for waiter in waiters {
            metrics?.answered(waiter.op, status)
            waiter.client.reply(KvResponse(requestID: waiter.requestID, status: status, leaderHint: hint, message: message,
                                           leaderTerm: hint.isEmpty ? 0 : leadership.term))
        }
    }
}
