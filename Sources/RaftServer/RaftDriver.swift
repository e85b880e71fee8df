import Logging
import Raft
import ServiceSupport
import Wire

/// raftd's decisions as a deterministic driver around the pure Raft core: peer messages, kvd's
/// messages, link events and the passing of time go in (with the time, in nanoseconds); what
/// to send, persist and when to be woken comes out through `RaftDriverIO`, `RaftLogStore` and
/// `SnapshotStore`. It reads no clock, arms no timer and draws no random number (the core's
/// seed is in its `RaftConfig`): the shell (`RaftServer`) calls `wake(now:)` at `nextDeadline`.
///
/// Each `processReady` takes the core's `Ready`s and handles them in the order Raft requires:
/// the leader's appends go out first (in parallel with its own fsync), then entries and hard
/// state are written and synced together — one sync for everything that arrived since the
/// previous pass (group commit), and only when entries or term/vote changed — then the
/// messages that vouch for durable state, then committed entries flow to kvd.
public final class RaftDriver {
    public let config: RaftDriverConfig
    public let node: RaftNode
    let log: any RaftLogStore
    let snapshots: any SnapshotStore
    let io: any RaftDriverIO
    let logger: Logger
    /// Made by the shell when the process serves metrics.
    var metrics: RaftMetrics?

    /// The attached kvd; nil while none is connected.
    var kvd: KvdLink?
    /// Highest index known committed and durable here: what may be streamed to kvd.
    public private(set) var committedIndex: UInt64
    var lastSoftState: SoftState?
    public private(set) var stopped = false
    /// Term and vote as last written to the log (they must be synced before use).
    var syncedTerm: UInt64
    var syncedVote: UInt64
    /// The commit index last written to the log (synced or not).
    var savedCommit: UInt64
    /// Entry bytes logged since the last snapshot: past `snapshotLogBytes`, and past the last
    /// snapshot's own size, we ask kvd for one. The second bound keeps a large state from being
    /// rewritten more often than the log it replaces grows (at most 2x write amplification).
    public internal(set) var logBytesSinceSnapshot: Int
    var lastSnapshotBytes: Int
    /// The snapshot of kvd's being committed (one at a time).
    public internal(set) var snapshotCommitInFlight: PendingSnapshot?
    /// Holds back a snapshot kvd refused (see `SnapshotRetryBackoff`).
    var kvdSnapshotRetry = SnapshotRetryBackoff()
    /// Ids the core knows kvd's reads under; never reused, across kvd connections too.
    var nextCoreReadID: UInt64 = 1
    /// Whether the configuration in force excludes this node (logged once per change).
    var removedFromCluster = false
    /// Set once a configuration in force named this node (so a joiner is not "removed").
    var hasBeenMember: Bool
    /// Set once a peer told us it knows this node by another data dir: this node forgot its
    /// votes and log and must not vote, campaign or acknowledge (see `refuseToServe`).
    public private(set) var refusal: String?

    // Deadlines (ns), all on the caller's clock.
    var nextTickAt: UInt64
    var followerStreamAt: UInt64?
    var kvdSnapshotRetryAt: UInt64?
    var refusalReminderAt: UInt64?
    /// Set while a leader hands over before stopping: the time it gives up.
    var shutdownDeadline: UInt64?
    /// How long that handover was given (for the log).
    var handoverLimit: Duration = .zero

    /// `node` must have been built from what `log` holds (`hardState` is the durable one);
    /// `durableCommit` is the index known committed and durable at start (the persisted commit
    /// index, or the snapshot's).
    public init(config: RaftDriverConfig, node: RaftNode, hardState: HardState, durableCommit: UInt64, lastSnapshotBytes: Int,
                log: any RaftLogStore, snapshots: any SnapshotStore, io: any RaftDriverIO, logger: Logger, now: UInt64) {
        precondition(durableCommit <= node.status.lastIndex || durableCommit == node.snapshot?.index,
                     "the durable commit index \(durableCommit) is past the log (\(node.status.lastIndex))")
        self.config = config
        self.node = node
        self.log = log
        self.snapshots = snapshots
        self.io = io
        self.logger = logger
        committedIndex = durableCommit
        syncedTerm = hardState.term
        syncedVote = hardState.vote
        savedCommit = hardState.commit
        logBytesSinceSnapshot = Self.bytes(of: node, after: node.firstIndex - 1)
        self.lastSnapshotBytes = lastSnapshotBytes
        hasBeenMember = node.configuration.member(config.nodeID) != nil
        nextTickAt = now + config.tick.wholeNanoseconds
        // No kvd yet: do not lead or campaign without one (bounded; see StateMachineAttachment).
        node.setStateMachineAttached(false)
    }

    public var status: RaftStatus { node.status }

    /// When the driver wants `wake(now:)` next.
    public var nextDeadline: UInt64 {
        // Asked after every loop pass: no array of candidates.
        var next = nextTickAt
        if let deadline = followerStreamAt { next = min(next, deadline) }
        if let deadline = kvdSnapshotRetryAt { next = min(next, deadline) }
        if let deadline = refusalReminderAt { next = min(next, deadline) }
        if let deadline = shutdownDeadline { next = min(next, deadline) }
        return next
    }

    // MARK: Inputs (call `processReady` after any of them, once per loop pass)

    public func receive(_ message: Message, now: UInt64) {
        guard !stopped else { return }
        observeClock(now)
        metrics?.received(message, nowNanos: now)
        node.step(message)
    }

    /// The link a peer dialed to us was closed by that peer's side.
    public func peerLinkLost(_ peer: UInt64) {
        guard !stopped else { return }
        node.peerConnectionLost(peer)
    }

    /// Runs whatever is due at `now`: ticks, the follower's stream, a held-back snapshot for
    /// kvd, the refusal reminder, the shutdown deadline.
    public func wake(now: UInt64) {
        guard !stopped else { return }
        if now >= nextTickAt {
            let tick = config.tick.wholeNanoseconds
            nextTickAt += tick
            if nextTickAt <= now { nextTickAt = now + tick }
            observeClock(now)
            // A node that must not serve no longer campaigns (its core hears nothing either).
            if refusal == nil { node.tick() }
            sendAcceptedResults()
        }
        if let at = followerStreamAt, now >= at {
            followerStreamAt = nil
            streamCommitted(now: now)
        }
        if let at = kvdSnapshotRetryAt, now >= at {
            kvdSnapshotRetryAt = nil
            streamCommitted(now: now)
        }
        if let at = refusalReminderAt, now >= at, let refusal {
            refusalReminderAt = now + config.refusalReminder.wholeNanoseconds
            logger.error("\(refusal)")
        }
        if let at = shutdownDeadline, now >= at { finishShutdown(handedOver: false) }
    }

    /// A peer told us it knows this node by another data dir: ours was wiped or replaced, so
    /// this node forgot its votes and log and must not vote, campaign or acknowledge. It stays
    /// up (a crash loop helps nobody) and says so in its log and status.
    public func refuseToServe(_ reason: String, now: UInt64) {
        guard refusal == nil else { return }
        refusal = reason
        logger.critical("\(reason)")
        refusalReminderAt = now + config.refusalReminder.wholeNanoseconds
    }

    /// Lease reads measure time on a clock that keeps running while we are stopped; the core
    /// sees it before every input that may start a round or answer a read.
    func observeClock(_ now: UInt64) {
        if config.readMode == .lease { node.observeClock(nanos: now) }
    }

    // MARK: Shutdown

    /// Graceful shutdown: a leader first hands leadership to its most up-to-date follower (so
    /// the cluster does not wait out an election timeout), until `now + handover`, then
    /// `io.shutdownFinished()`. Returns false when there is nothing to hand over: the shell
    /// stops at once.
    public func beginShutdown(handover: Duration, now: UInt64) -> Bool {
        guard !stopped, shutdownDeadline == nil, node.status.role == .leader, node.transferLeadership() else { return false }
        logger.info("handing leadership over before shutting down")
        shutdownDeadline = now + handover.wholeNanoseconds
        handoverLimit = handover
        return true
    }

    func finishShutdown(handedOver: Bool) {
        guard shutdownDeadline != nil else { return }
        shutdownDeadline = nil
        if handedOver {
            logger.info("leadership handed over", metadata: ["to": "\(node.status.leader)"])
        } else {
            logger.warning("leadership handover did not finish in \(handoverLimit); stopping anyway")
        }
        io.shutdownFinished()
    }

    /// Stops taking input (the shell closes links and syncs the log).
    public func stop() {
        stopped = true
        followerStreamAt = nil
        kvdSnapshotRetryAt = nil
        refusalReminderAt = nil
        shutdownDeadline = nil
    }

    // MARK: The Ready loop

    public func processReady(now: UInt64) {
        guard !stopped else { return }
        while node.hasReady {
            let ready = node.ready()
            // A read index vouches for nothing of ours that is not yet durable: kvd may have it now.
            if !ready.readStates.isEmpty { answerReads(ready.readStates) }
            // The leader's appends hit the wire before its own fsync starts (thesis §10.2.1).
            io.sendToPeers(ready.messages, flushNow: !ready.entries.isEmpty)
            metrics?.sent(ready.messages, nowNanos: now)
            do {
                try persist(ready)
            } catch {
                // Continuing could acknowledge data that is not on disk.
                logger.critical("cannot persist the log: \(error); stopping")
                stop()
                return io.persistFailed(error)
            }
            // Votes and append acknowledgements leave at once: the leader is waiting on them.
            io.sendToPeers(ready.messagesAfterPersist, flushNow: true)
            if let soft = ready.softState { announce(soft) }
            if let configuration = ready.configuration { configurationChanged(configuration) }
            if let snapshot = ready.snapshot { committedIndex = max(committedIndex, snapshot.index) }
            if let last = ready.committedEntries.last { committedIndex = max(committedIndex, last.index) }
            metrics?.committed(ready.committedEntries.count)
            node.advance(ready)
            precondition(committedIndex <= node.status.commitIndex || committedIndex == node.snapshot?.index,
                         "streamable index \(committedIndex) is past the core's commit index \(node.status.commitIndex)")
        }
        // Snapshots the core did not restore (stale, or its log already held them).
        log.discardReceivedSnapshots()
        streamCommittedSoon(now: now)
        requestSnapshotIfDue(now: now)
        if shutdownDeadline != nil, node.status.role != .leader { finishShutdown(handedOver: true) }
    }

    /// Writes what `ready` asks to be durable, syncing only when entries or term/vote changed.
    private func persist(_ ready: Ready) throws {
        if let snapshot = ready.snapshot {
            // The leader's snapshot replaces our log; durable before we acknowledge it.
            logger.info("installing snapshot (\(snapshot.index), t\(snapshot.term)) from the leader",
                        metadata: ["lastIndex": "\(log.lastIndex)"])
            let size = try log.installReceivedSnapshot(index: snapshot.index, term: snapshot.term,
                                                       configuration: snapshot.configuration)
            logBytesSinceSnapshot = 0
            lastSnapshotBytes = size
        }
        if let first = ready.entries.first, first.index <= log.lastIndex {
            logger.notice("replacing log entries from index \(first.index) (last was \(log.lastIndex)) with the leader's")
        }
        if let hardState = ready.hardState, !ready.entries.isEmpty, hardState.term != syncedTerm || hardState.vote != syncedVote {
            // A new term or vote goes to the log before entries of that term: a write torn by a
            // crash may keep a prefix of what one sync writes, and entries past the hard
            // state's term would make the log unusable at restart (the simulation found this).
            // The commit index stays as saved until the entries it may cover are written.
            try log.save(hardState: HardState(term: hardState.term, vote: hardState.vote, commit: savedCommit))
        }
        if !ready.entries.isEmpty {
            try log.append(ready.entries)
            logBytesSinceSnapshot += ready.entries.reduce(0) { $0 + $1.byteSize }
        }
        var mustSync = !ready.entries.isEmpty
        if let hardState = ready.hardState {
            try log.save(hardState: hardState)
            savedCommit = hardState.commit
            // A new commit index alone need not be durable (it is relearned from the leader
            // after a restart); a new term or vote must be, before anyone hears of it.
            mustSync = mustSync || hardState.term != syncedTerm || hardState.vote != syncedVote
            syncedTerm = hardState.term
            syncedVote = hardState.vote
        }
        if mustSync { try log.sync() }
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
        sendToKvd(.leadership(Leadership(term: soft.term, leaderID: soft.leader, isLeader: soft.role == .leader)))
    }

    /// Entry bytes the core holds after `index`.
    static func bytes(of node: RaftNode, after index: UInt64) -> Int {
        var bytes = 0
        var next = index + 1
        while let entry = node.entry(at: next) {
            bytes += entry.byteSize
            next += 1
        }
        return bytes
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
