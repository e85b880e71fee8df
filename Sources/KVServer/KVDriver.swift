import KVStore
import Logging
import ServiceSupport
import Wire

/// kvd's decisions as a pure, deterministic state machine (the shape of `GatewayCore` and of
/// `Sources/Raft`): client requests, raftd's messages (`RaftToKvd`), the raftd link coming and
/// going, the end of a loop pass, timer ticks and the snapshot encoder's reports go in, with
/// the time; actions come out (replies, `KvdToRaft` frames, a timer to arm, a snapshot to
/// encode, log lines). It does no I/O and reads no clock; the shell (`KVServer`) executes what
/// it returns, and the tests drive it directly, alone or against a simulated raftd.
///
/// What it decides: request validation and redirects; group commit (a loop pass's writes go
/// as one proposal, held back while `maxProposalsInFlight` are being committed, for at most
/// `groupCommitMaxWait`); which waiting request an applied entry answers (same index and term,
/// else WRONG_LEADER); Gets by read index, lease or the log; status and member queries relayed
/// to raftd with a deadline; snapshots out (when to encode, chunks as the link has room) and in
/// (restored as the chunks arrive); the hello on every raftd connection; every deadline.
///
/// Promises, checked by `invariantViolation()` after every step of the simulation:
/// - every accepted request is answered by its deadline (a timer is armed at or before the
///   earliest), or when leadership or raftd's link is lost;
/// - nothing waits while raftd is detached: requests then get UNAVAILABLE at once;
/// - a batch or read gathered in a loop pass never strands: the pass end or a timer sends it.
public struct KVDriver {
    public let config: KVDriverConfig
    public internal(set) var machine: KVStateMachine
    /// raftd's link is up and the hello went out on it.
    public internal(set) var raftAttached = false
    /// The leadership raftd last reported.
    public internal(set) var leadership = Leadership(term: 0, leaderID: 0, isLeader: false)
    /// We refused raftd's snapshot and wait for it to be sent again: committed entries after
    /// it (sent before raftd heard of the refusal) are dropped instead of treated as a gap.
    public internal(set) var snapshotRefused = false
    public private(set) var isStopping = false
    /// raftd restoring us from its snapshot (we are behind its compacted log), decoded as it arrives.
    var incoming = IncomingSnapshot()
    /// Our snapshot on its way to raftd, cut into chunks as its parts arrive and the link has room.
    var outgoing: OutgoingSnapshot?
    /// The encoding under way (one at a time); `cancelled` once it is no longer wanted.
    var encoding: (id: UInt64, cancelled: Bool)?
    var nextEncodingID: UInt64 = 1
    /// The term in which this kvd proposed its flags' session limits (once per term).
    var limitsProposedInTerm: UInt64 = 0
    /// The replicated limits last reported in the log (compared with the flags).
    var reportedLimits: SessionLimits?
    var pending = PendingRequests()
    var reads = PendingReads()
    var nextReadID: UInt64 = 1
    var nextProposalID: UInt64 = 1
    /// raftd answered a read with "use the log" (`--read-mode log`): Gets are proposed, until
    /// kvd reconnects to a raftd.
    var readsThroughLog = false
    var statusQueries = StatusQueries()
    var watchers = LeadershipWatchers()
    /// The batch goes to raftd when this loop pass ends (there was room for a proposal).
    var proposalFlushDue = false
    /// `schedulePassEnd` was asked for and `passEnded` has not come yet.
    var passEndRequested = false
    /// The batch held back behind proposals in flight goes at this time at the latest.
    var groupCommitDeadline: UInt64?
    /// The time the shell's timer is armed for, as far as the driver asked.
    var armedAt: UInt64?
    /// The actions of the input being handled.
    var actions: [KVDriverAction] = []
    /// Emptied storage the shell handed back (`recycle`): the next input's actions go into it,
    /// so a steady stream of inputs allocates no action arrays.
    var spareActions: [KVDriverAction] = []

    public init(config: KVDriverConfig) {
        precondition(config.nodeID != 0, "node ids are nonzero")
        precondition(config.requestTimeout > .zero && config.statusAnswerTimeout > .zero, "timeouts must be positive")
        precondition(config.groupCommitMaxWait > .zero, "a held-back batch must have a deadline")
        precondition(config.maxProposalBytes > 0 && config.maxPendingRequests > 0, "limits must be positive")
        precondition(config.maxProposalsInFlight >= 0, "proposals in flight: 0 (no limit) or more")
        self.config = config
        // Replicated limits only: the flags' limits are proposed when this node leads.
        machine = KVStateMachine()
    }

    /// Requests (writes and Gets) accepted and not answered yet.
    public var pendingRequests: Int { pending.count + reads.count }

    /// Proposals sent to raftd and not finished (group commit's count).
    public var proposalsInFlight: Int { pending.inFlight.count }

    /// Status queries and member commands waiting for raftd.
    public var statusQueriesWaiting: Int { statusQueries.count }

    // MARK: Inputs: clients

    public mutating func clientRequest(client: UInt64, _ request: KvRequest, at now: KVTime) -> [KVDriverAction] {
        accept(client: client, request, now: now)
        return finishInput(now: now)
    }

    /// The client's connection is gone: replies to it will be dropped; it watches nothing more.
    public mutating func clientClosed(client: UInt64, at now: KVTime) -> [KVDriverAction] {
        watchers.remove(client: client)
        return finishInput(now: now)
    }

    // MARK: Inputs: raftd

    /// A new connection to raftd is up: say hello with what we applied; raftd streams from there.
    public mutating func raftConnected(at now: KVTime) -> [KVDriverAction] {
        incoming.reset()
        snapshotRefused = false
        cancelOutgoingSnapshot()
        readsThroughLog = false
        raftAttached = true
        send(.hello(lastApplied: machine.appliedIndex))
        log(.info, "attached to raftd (lastApplied \(machine.appliedIndex))")
        return finishInput(now: now)
    }

    /// raftd's connection ended (or a dial failed).
    public mutating func raftDisconnected(reason: String, at now: KVTime) -> [KVDriverAction] {
        detach(reason: reason)
        return finishInput(now: now)
    }

    public mutating func raftMessage(_ message: RaftToKvd, at now: KVTime) -> [KVDriverAction] {
        // After a reset, what was still buffered from the old connection is not ours to follow.
        if raftAttached { handle(message, now: now) }
        return finishInput(now: now)
    }

    /// raftd's link has room again (`room`: bytes it may take before it is full).
    public mutating func raftWritable(room: Int, at now: KVTime) -> [KVDriverAction] {
        sendSnapshotChunks(room: room)
        return finishInput(now: now)
    }

    // MARK: Inputs: the loop

    /// The loop pass asked for with `schedulePassEnd` is over: what it gathered goes to raftd.
    public mutating func passEnded(at now: KVTime) -> [KVDriverAction] {
        passEndRequested = false
        if proposalFlushDue { flushProposals(now: now) }
        if !reads.batch.isEmpty { flushReads(now: now) }
        return finishInput(now: now)
    }

    /// The timer fired (at `armTimer`'s time or later): deadlines that passed are answered.
    public mutating func tick(at now: KVTime) -> [KVDriverAction] {
        armedAt = nil
        if let deadline = groupCommitDeadline, deadline <= now.monotonicNanos { flushProposals(now: now) }
        let requestTimeoutMs = config.requestTimeout.wholeMilliseconds
        for proposal in pending.takeExpired(now: now.monotonicNanos) {
            answer(proposal.waiters, status: .timeout, message: "not applied within \(requestTimeoutMs) ms; outcome unknown, retry")
        }
        answer(reads: reads.takeExpired(now: now.monotonicNanos), status: .timeout,
               message: "read not confirmed within \(requestTimeoutMs) ms; retry")
        expireStatusQueries(now: now)
        proposeIfRoom()
        // Drops answered entries from the deadline queues, so the timer `finishInput` arms
        // is for a live deadline (an early tick happens at most once per answered oldest).
        _ = nextWake()
        return finishInput(now: now)
    }

    /// Shutting down: every waiting request gets UNAVAILABLE (outcome unknown, retry), and
    /// later ones too.
    public mutating func stop(at now: KVTime) -> [KVDriverAction] {
        guard !isStopping else { return finishInput(now: now) }
        isStopping = true
        failAll(status: .unavailable, message: "kvd is shutting down")
        for waiter in statusQueries.takeAll() { answerStatusOnOwn(waiter, error: "kvd is shutting down") }
        groupCommitDeadline = nil
        log(.info, "kvd \(config.nodeID) stopped (applied \(machine.appliedIndex))")
        return finishInput(now: now)
    }

    // MARK: Handling

    private mutating func accept(client: UInt64, _ request: KvRequest, now: KVTime) {
        if request.op == .status { return queryStatus(client: client, request, now: now) }
        if request.op == .member { return queryMember(client: client, request, now: now) }
        if let problem = RequestValidation.problem(with: request, maxKeyBytes: config.maxKeyBytes, maxValueBytes: config.maxValueBytes) {
            return reply(client, KvResponse(requestID: request.requestID, status: .badRequest, message: problem), op: request.op)
        }
        guard !isStopping else {
            return reply(client, KvResponse(requestID: request.requestID, status: .unavailable, message: "kvd is shutting down"), op: request.op)
        }
        guard raftAttached else {
            return reply(client, KvResponse(requestID: request.requestID, status: .unavailable, message: "raftd unreachable"), op: request.op)
        }
        guard leadership.isLeader else {
            return reply(client, KvResponse(requestID: request.requestID, status: .wrongLeader,
                                            leaderHint: leadership.leaderID == 0 ? "" : String(leadership.leaderID),
                                            leaderTerm: leadership.leaderID == 0 ? 0 : leadership.term), op: request.op)
        }
        guard pendingRequests < config.maxPendingRequests else {
            return reply(client, KvResponse(requestID: request.requestID, status: .unavailable, message: "overloaded; retry later"), op: request.op)
        }
        if request.op == .get && !readsThroughLog {
            reads.add(ReadWaiter(client: client, request: request))
            return requestPassEnd()
        }
        propose(client: client, request, now: now)
    }

    private mutating func handle(_ message: RaftToKvd, now: KVTime) {
        switch message {
        case let .committed(entries):
            for entry in entries where raftAttached { apply(entry, now: now) }
        case let .results(results):
            for result in results { proposalResult(result) }
        case let .leadership(new):
            leadershipChanged(new)
        case let .status(queryID, status):
            statusAnswered(queryID, status)
        case let .memberAnswer(queryID, answer):
            memberAnswered(queryID, answer)
        case let .snapshot(chunk):
            snapshotChunk(chunk)
        case .snapshotRequest:
            snapshotRequested()
        case let .readResults(results):
            for result in results { readResult(result, now: now) }
        }
    }

    private mutating func leadershipChanged(_ new: Leadership) {
        let old = leadership
        leadership = new
        if old.isLeader && (!new.isLeader || new.term != old.term) {
            // Our term is over: whatever we proposed may or may not commit; the client retries
            // with the same session numbers and gets the original reply if it did.
            failAll(status: .wrongLeader, message: "leadership lost in term \(old.term)")
        }
        if new.isLeader != old.isLeader || new.leaderID != old.leaderID || new.term != old.term {
            for (client, news) in watchers.push(new, selfID: config.nodeID) { reply(client, news, op: nil) }
        }
        if new.isLeader != old.isLeader || new.leaderID != old.leaderID {
            log(.info, (new.isLeader ? "this node leads" : "leader is \(new.leaderID == 0 ? "unknown" : String(new.leaderID))") + " (term \(new.term))")
        }
    }

    /// raftd is gone (or was dropped): nothing can complete here until it is back.
    mutating func detach(reason: String) {
        if raftAttached { log(.warning, "lost raftd: \(reason); retrying") }
        raftAttached = false
        leadership = Leadership(term: leadership.term, leaderID: 0, isLeader: false)
        cancelOutgoingSnapshot()
        failAll(status: .unavailable, message: "raftd unreachable; outcome unknown, retry")
        for waiter in statusQueries.takeAll() { answerStatusOnOwn(waiter, error: "raftd unreachable") }
    }

    /// raftd sent something we cannot follow: drop its link and start over with a hello.
    mutating func resetRaftLink(reason: String) {
        actions.append(.resetRaftLink)
        detach(reason: reason)
    }

    // MARK: Output

    /// Closes an input: makes sure the timer is armed no later than the earliest deadline,
    /// hands the actions over (the caller owns them: no copy).
    mutating func finishInput(now: KVTime) -> [KVDriverAction] {
        // Each queue's oldest entry may already be answered (they are dropped lazily, by
        // `tick`): arming for it is at worst one early tick, which finds the true earliest.
        // That keeps this per-input check free of lookups.
        if let wake = earliestQueuedDeadline(), armedAt.map({ wake < $0 }) ?? true {
            armedAt = wake
            actions.append(.armTimer(at: wake))
        }
        var handedOver = spareActions
        spareActions = []
        swap(&handedOver, &actions)
        return handedOver
    }

    /// Gives an executed input's action storage back for reuse (the shell's fast path).
    public mutating func recycle(_ executed: inout [KVDriverAction]) {
        executed.removeAll(keepingCapacity: true)
        if executed.capacity > spareActions.capacity { swap(&executed, &spareActions) }
    }

    /// The earliest time something must happen without an input; drops answered entries.
    mutating func nextWake() -> UInt64? {
        earliest(groupCommitDeadline, pending.nextDeadline(), reads.nextDeadline(), statusQueries.nextDeadline())
    }

    /// At or before `nextWake()`: the same, counting entries already answered but not dropped yet.
    func earliestQueuedDeadline() -> UInt64? {
        earliest(groupCommitDeadline, pending.oldestQueuedDeadline, reads.oldestQueuedDeadline, statusQueries.oldestQueuedDeadline)
    }

    private func earliest(_ a: UInt64?, _ b: UInt64?, _ c: UInt64?, _ d: UInt64?) -> UInt64? {
        func min(_ x: UInt64?, _ y: UInt64?) -> UInt64? {
            guard let x else { return y }
            guard let y else { return x }
            return Swift.min(x, y)
        }
        return min(min(a, b), min(c, d))
    }

    mutating func requestPassEnd() {
        guard !passEndRequested else { return }
        passEndRequested = true
        actions.append(.schedulePassEnd)
    }

    mutating func send(_ message: KvdToRaft) {
        precondition(raftAttached, "nothing goes to raftd before the hello")
        actions.append(.sendToRaft(message))
    }

    mutating func reply(_ client: UInt64, _ response: KvResponse, op: Op?) {
        actions.append(.reply(client: client, response: response, op: op))
    }

    mutating func log(_ level: Logger.Level, _ message: String) {
        actions.append(.log(level, message))
    }

    /// The hint a failed request carries: `named` (a leader raftd named in a refusal), else the
    /// leader we know, unless it is us or unknown.
    private func hint(naming named: UInt64 = 0) -> String {
        if named != 0 && named != config.nodeID { return String(named) }
        return leadership.leaderID == 0 || leadership.isLeader ? "" : String(leadership.leaderID)
    }

    mutating func failAll(status: Status, message: String) {
        answer(pending.takeAll(), status: status, message: message)
        answer(reads: reads.takeAll(), status: status, message: message)
        proposalFlushDue = false
        groupCommitDeadline = nil
    }

    mutating func answer(_ waiters: [Waiter], status: Status, message: String, naming named: UInt64 = 0) {
        let hint = hint(naming: named)
        for waiter in waiters {
            reply(waiter.client, KvResponse(requestID: waiter.requestID, status: status, leaderHint: hint, message: message,
                                            leaderTerm: hint.isEmpty ? 0 : leadership.term), op: waiter.op)
        }
    }

    mutating func answer(reads waiters: [ReadWaiter], status: Status, message: String, naming named: UInt64 = 0) {
        let hint = hint(naming: named)
        for waiter in waiters {
            reply(waiter.client, KvResponse(requestID: waiter.request.requestID, status: status, leaderHint: hint, message: message,
                                            leaderTerm: hint.isEmpty ? 0 : leadership.term), op: .get)
        }
    }
}
