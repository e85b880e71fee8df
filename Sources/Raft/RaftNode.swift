import SeededRandom

/// Result of a proposal.
public enum ProposeOutcome: Sendable, Hashable {
    /// Appended to the leader's log at `firstIndex...` in `term`; not yet committed. The entry is
    /// committed iff the entry applied at `firstIndex` later carries this `term`.
    case accepted(firstIndex: UInt64, term: UInt64)
    /// This node does not lead; `leader` is the one it follows, 0 when unknown.
    case notLeader(leader: UInt64)
}

/// One Raft peer as a pure state machine (etcd-io/raft's RawNode shape).
///
/// Inputs: `tick()`, `step(_:)`, `propose(_:)`. Output: a `Ready` the shell persists, sends and
/// applies before acknowledging it with `advance(_:)`. No I/O, no clock, no hidden randomness:
/// the same inputs give the same outputs.
///
/// Log compaction: the shell snapshots its state machine at an applied index and calls
/// `compact(through:data:retaining:)`; the core keeps that snapshot (to send to followers whose
/// next entry it no longer holds) and drops the log prefix. A follower that receives a snapshot
/// hands it out in `Ready.snapshot` for the shell to persist and install.
public final class RaftNode {
    let config: RaftConfig
    /// Derived from the configuration in force (`log.configuration`; Membership.swift): every
    /// voter, voters other than us (ascending, so every broadcast has a stable order), the
    /// votes a majority needs, and whether we vote.
    var voters: [UInt64] = []
    var otherVoters: [UInt64] = []
    var quorum = 1
    var isVoter = false
    /// `log.configurationVersion` the fields above were computed from, and last reported in a `Ready`.
    var syncedConfigurationVersion: UInt64 = .max
    private var reportedConfigurationVersion: UInt64 = 0

    var term: UInt64
    var vote: UInt64
    /// Leader we follow in `term` (ourselves when leading), 0 when unknown.
    var leader: UInt64 = 0
    var role: Role = .follower
    var log: RaftLog
    /// The latest snapshot: made here by `compact`, received from a leader, or restored at start.
    public internal(set) var snapshot: Snapshot?
    /// A snapshot received from the leader and installed in the log, not yet handed out in a
    /// `Ready` and acknowledged.
    var pendingSnapshot: Snapshot?

    /// Ticks since we last heard from a leader (followers) or since the last quorum check (leaders).
    var electionElapsed = 0
    var heartbeatElapsed = 0
    var randomizedElectionTimeout = 0
    var random: SeededGenerator

    /// Whether the shell's state machine is attached (see StateMachineAttachment.swift); true
    /// until the shell says otherwise.
    var stateMachineAttached = true
    /// Election timeouts let pass in a row because the state machine is detached.
    var deferredElections = 0
    /// Ticks this node has led without its state machine.
    var detachedLeaderTicks = 0

    /// The shell's monotonic clock as last observed (`observeClock`), for lease reads.
    var nowNanos: UInt64 = 0
    /// Answered reads not yet handed out in a `Ready`.
    var readStates: [ReadState] = []
    /// Ticks since this node started; with lease reads it votes only after an election
    /// timeout, having forgotten which leader it heard from before it restarted.
    var ticksSinceStart = 0

    private var outbox: [Message] = []
    private var outboxAfterPersist: [Message] = []
    private var reportedHardState: HardState
    private var reportedSoftState: SoftState
    private var readyOutstanding = false

    /// Restores a node from durable state: `hardState`, the latest durable `snapshot` (if any) and
    /// the persisted log after it (`entries` start at `snapshot.index + 1`, or at 1 without one).
    /// `applied` is how far the state machine already is (0 when it is rebuilt from scratch); the
    /// caller restored its state machine from `snapshot`, so applied and commit are at least
    /// `snapshot.index`.
    public init(config: RaftConfig, hardState: HardState = HardState(), snapshot: Snapshot? = nil,
                entries: [Entry] = [], applied: UInt64 = 0) {
        config.validate()
        self.config = config
        term = hardState.term
        vote = hardState.vote
        log = RaftLog(snapshot: snapshot, entries: entries, commit: hardState.commit, applied: applied,
                      initialConfiguration: config.seedConfiguration)
        self.snapshot = snapshot
        precondition(log.lastTerm <= hardState.term,
                     "raft: restored log holds term \(log.lastTerm) beyond hard state term \(hardState.term); storage is inconsistent")
        random = SeededGenerator(seed: config.randomSeed ^ (config.id &* 0x9E37_79B9_7F4A_7C15))
        reportedHardState = hardState
        reportedSoftState = SoftState(leader: 0, role: .follower, term: hardState.term)
        resetElectionTimer()
        syncConfiguration()
        // The shell reads the starting configuration from `configuration`; Readys report changes.
        reportedConfigurationVersion = log.configurationVersion
    }

    // MARK: Inputs

    /// Advances logical time by one tick.
    public func tick() {
        if ticksSinceStart < config.electionTicks { ticksSinceStart += 1 }
        switch role {
        case .leader(let state): tickLeader(state)
        case .follower, .preCandidate, .candidate: tickElection()
        }
    }

    /// Feeds a message from a peer. Messages not addressed to us, from stale terms or that make
    /// no sense in our role are ignored (some stale ones are answered so the sender learns the
    /// newer term). A sender outside our configuration is heard: a node that joins or lags
    /// learns the configuration from a leader it does not know yet; only voters' votes count.
    public func step(_ message: Message) {
        defer { syncConfiguration() }
        guard message.to == config.id, message.from != config.id, message.from != 0,
              message.term > 0 else { return }
        if message.term > term {
            if message.type == .preVote || message.type == .vote, inLeaderLease, !message.transfer {
                // Check quorum: we heard from a live leader within the election timeout, so this
                // candidate (e.g. a rejoining partitioned node) must not depose it.
                return
            }
            switch message.type {
            case .preVote:
                break  // a pre-vote never changes our term
            case .preVoteResponse where !message.reject:
                break  // a grant carries the term the pre-candidate would campaign for
            case .append, .heartbeat, .snapshot:
                becomeFollower(term: message.term, leader: message.from)
            default:
                becomeFollower(term: message.term, leader: 0)
            }
        } else if message.term < term {
            answerStaleTerm(message)
            return
        }

        switch message.type {
        case .preVote, .vote:
            handleVoteRequest(message)
        default:
            switch role {
            case .follower: stepFollower(message)
            case .preCandidate, .candidate: stepCandidate(message)
            case .leader(let state): stepLeader(message, state)
            }
        }
    }

    /// Proposes one command. Only a leader accepts; others name the leader they know.
    public func propose(_ data: [UInt8]) -> ProposeOutcome {
        propose(batch: [data])
    }

    /// Proposes several commands as consecutive entries; `batch` must not be empty.
    public func propose(batch: [[UInt8]]) -> ProposeOutcome {
        guard case .leader(let state) = role else { return .notLeader(leader: leader) }
        // While handing over, new entries would only delay the transferee's catching up.
        if state.transferee != 0 { return .notLeader(leader: state.transferee) }
        precondition(!batch.isEmpty, "raft: propose(batch:) needs at least one command")
        let first = log.lastIndex + 1
        let entries = batch.enumerated().map { offset, data in
            Entry(term: term, index: first + UInt64(offset), kind: .normal, data: data)
        }
        log.appendAsLeader(entries)
        broadcastAppend(state, includeEmpty: false)
        return .accepted(firstIndex: first, term: term)
    }

    /// Hands leadership to `target`, e.g. before a clean shutdown, so the cluster need not wait
    /// out an election timeout. The default target is the most up-to-date follower among those
    /// heard from within the election timeout, preferring those whose state machine is attached
    /// (a dead follower could never take over, and one without its state machine could not
    /// serve). The leader stops taking proposals, brings the target's log up to date, then tells
    /// it to campaign at once (`timeoutNow`). If that has not happened within an election timeout,
    /// the leader resumes. Returns false when this node does not lead, `target` is not a
    /// follower, or (without a target) no follower is live.
    @discardableResult
    public func transferLeadership(to target: UInt64? = nil) -> Bool {
        guard case .leader(let state) = role else { return false }
        let chosen = target ?? handoverTarget(state, attachedOnly: false)
        guard let chosen, state.progress[chosen] != nil, otherVoters.contains(chosen) else { return false }
        state.transferee = chosen
        state.transferElapsed = 0
        // The transferee's voters set their vote lease aside (`transfer`), so ours is void.
        state.reads.leaseForfeited = true
        if state.progress[chosen]!.match == log.lastIndex {
            send(Message(type: .timeoutNow, from: config.id, to: chosen, term: term))
        } else {
            sendAppends(to: chosen, state)
        }
        return true
    }

    /// Records that the state machine's snapshot `data` reflects every entry through `index`, and
    /// discards the log up to `index - retaining`. The `retaining` entries kept before `index`
    /// let a follower that lags a little catch up with appends rather than the whole snapshot.
    /// `index` must be applied. Returns nil, changing nothing, when `index` is not past the latest
    /// snapshot (or its entry is already compacted); otherwise the new snapshot, which the shell
    /// persists (it may then drop its stored entries up to `index`).
    @discardableResult
    public func compact(through index: UInt64, data: [UInt8], retaining: Int) -> Snapshot? {
        precondition(index <= log.applied, "raft: cannot snapshot at \(index), only \(log.applied) is applied")
        precondition(retaining >= 0, "raft: retaining must not be negative, got \(retaining)")
        guard index > (snapshot?.index ?? 0), case .term(let entryTerm) = log.term(at: index) else { return nil }
        let made = Snapshot(index: index, term: entryTerm, data: data, configuration: log.configuration(at: index))
        snapshot = made
        let keepFrom = index - min(index, UInt64(retaining))
        log.compact(through: max(keepFrom, log.offset))
        return made
    }

    // MARK: Output

    /// Whether `ready()` has anything to hand out.
    public var hasReady: Bool {
        hardState != reportedHardState || softState != reportedSoftState
            || log.configurationVersion != reportedConfigurationVersion
            || log.persisted < log.lastIndex || !outbox.isEmpty || !outboxAfterPersist.isEmpty
            || !log.entriesToApply.isEmpty || pendingSnapshot != nil || !readStates.isEmpty
    }

    /// Hands out the pending work. Call `advance(_:)` with it before the next `ready()`.
    public func ready() -> Ready {
        precondition(!readyOutstanding, "raft: ready() called again before advance() acknowledged the previous Ready")
        readyOutstanding = true
        log.cutReady()
        let hard = hardState
        let soft = softState
        precondition(hard.term >= reportedHardState.term && hard.commit >= reportedHardState.commit,
                     "raft: hard state moves back from \(reportedHardState) to \(hard)")
        let ready = Ready(
            hardState: hard != reportedHardState ? hard : nil,
            softState: soft != reportedSoftState ? soft : nil,
            snapshot: pendingSnapshot,
            entries: Array(log.unpersistedEntries),
            messages: outbox,
            messagesAfterPersist: outboxAfterPersist,
            committedEntries: Array(log.entriesToApply),
            readStates: readStates,
            configuration: log.configurationVersion != reportedConfigurationVersion ? log.configuration : nil
        )
        reportedConfigurationVersion = log.configurationVersion
        readStates = []
        reportedHardState = hard
        reportedSoftState = soft
        outbox = []
        outboxAfterPersist = []
        return ready
    }

    /// Acknowledges that `ready` was persisted, sent and applied. Its entries now count as durable:
    /// a leader counts its own copy toward the commit quorum only from here on.
    public func advance(_ ready: Ready) {
        precondition(readyOutstanding, "raft: advance() without an outstanding ready()")
        readyOutstanding = false
        // A snapshot restored while this Ready was out is newer and still pending.
        if ready.snapshot != nil && ready.snapshot == pendingSnapshot { pendingSnapshot = nil }
        if let last = ready.entries.last { log.persisted(through: last.index) }
        if let last = ready.committedEntries.last { log.applied(through: last.index) }
        if case .leader(let state) = role, maybeCommit(state) {
            broadcastAppend(state, includeEmpty: false)
        }
    }

    // MARK: Observation

    public var status: RaftStatus {
        RaftStatus(id: config.id, role: role.name, term: term, leader: leader,
                   commitIndex: log.commit, appliedIndex: log.applied,
                   lastIndex: log.lastIndex, persistedIndex: log.persisted,
                   firstIndex: log.firstIndex, snapshotIndex: snapshot?.index ?? 0)
    }

    /// The entry at `index` in this node's (possibly not yet durable) log; nil when compacted
    /// (below `firstIndex`) or beyond the last index.
    public func entry(at index: UInt64) -> Entry? {
        log.entry(at: index)
    }

    /// First index held in the log; entries before it are compacted into `snapshot`.
    public var firstIndex: UInt64 { log.firstIndex }

    /// On a leader: the lowest match index among followers it heard from within the election
    /// timeout (nil when not leading, or no follower is live). Compacting no further than this
    /// spares a live but slightly slow follower a whole snapshot.
    public var slowestLiveFollowerMatch: UInt64? {
        guard case .leader(let state) = role else { return nil }
        return state.followers
            .compactMap { id -> UInt64? in
                let progress = state.progress[id]!
                return progress.ticksSinceHeard < config.electionTicks ? progress.match : nil
            }
            .min()
    }

    var hardState: HardState { HardState(term: term, vote: vote, commit: log.commit) }
    var softState: SoftState { SoftState(leader: leader, role: role.name, term: term) }

    // MARK: Shared machinery

    /// Queues a message from us. Appends, heartbeats and snapshots only come from a leader whose
    /// term is already durable (it persisted it before asking for votes), so they may leave
    /// before this round's fsync (a leader counts its own entries only once durable, and a
    /// snapshot holds only committed state); everything else vouches for state that must be
    /// durable first.
    func send(_ message: Message) {
        var message = message
        message.from = config.id
        switch message.type {
        case .append, .heartbeat, .timeoutNow, .snapshot: outbox.append(message)
        case .appendResponse, .heartbeatResponse:
            // Every answer to the leader says whether we could serve if it handed over to us.
            message.stateMachineDetached = !stateMachineAttached
            outboxAfterPersist.append(message)
        default: outboxAfterPersist.append(message)
        }
    }

    /// With check quorum, a leader (which steps down once it loses touch with a quorum) and a
    /// follower that heard from its leader within the minimum election timeout trust that leader,
    /// and ignore candidates trying to depose it.
    var inLeaderLease: Bool {
        guard config.checkQuorum else { return false }
        if case .leader = role { return true }
        // A restarted node forgot whose heartbeats it acknowledged; a leader may count on them
        // for its read lease.
        if config.readLease != nil && ticksSinceStart < config.electionTicks { return true }
        return leader != 0 && electionElapsed < config.electionTicks
    }

    func becomeFollower(term newTerm: UInt64, leader newLeader: UInt64) {
        precondition(newTerm >= term, "raft: term moves back from \(term) to \(newTerm)")
        if case .leader(let state) = role { failPendingReads(state, leader: newLeader) }
        if newTerm > term {
            term = newTerm
            vote = 0
        }
        role = .follower
        leader = newLeader
        resetElectionTimer()
    }

    func resetElectionTimer() {
        electionElapsed = 0
        heartbeatElapsed = 0
        let spread = UInt64(config.electionTicks)
        randomizedElectionTimeout = config.electionTicks + Int(random.next() % spread)
    }

    /// Older-term messages are dropped, but two kinds get an answer carrying our term: a stale
    /// leader's append/heartbeat/snapshot (so it steps down instead of lingering; with pre-vote and check
    /// quorum a node with a higher term could otherwise never rejoin), and a pre-vote (so a
    /// pre-candidate behind on terms learns the current one).
    private func answerStaleTerm(_ message: Message) {
        switch message.type {
        case .append, .heartbeat, .snapshot:
            if config.checkQuorum || config.preVote {
                send(Message(type: .appendResponse, from: config.id, to: message.from, term: term, index: log.commit))
            }
        case .preVote:
            send(Message(type: .preVoteResponse, from: config.id, to: message.from, term: term, reject: true))
        default:
            break
        }
    }
}
