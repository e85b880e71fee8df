/// What became of a read request (`RaftNode.requestRead`).
public enum ReadOutcome: Sendable, Hashable {
    /// Linearizable at `index`: once the state machine has applied `index`, its state reflects
    /// every write that completed before the read was requested. `term` is the leader's term.
    case ready(index: UInt64, term: UInt64)
    /// This node does not lead (or stopped leading before the read was confirmed); `leader` is
    /// the one it knows, 0 when unknown.
    case notLeader(leader: UInt64)
}

/// One answered read request, handed out in `Ready.readStates`.
public struct ReadState: Sendable, Hashable {
    public var id: UInt64
    public var outcome: ReadOutcome

    public init(id: UInt64, outcome: ReadOutcome) {
        self.id = id
        self.outcome = outcome
    }
}

/// A leader's reads waiting for leadership to be confirmed (ReadIndex, Raft thesis §6.4).
///
/// Every heartbeat broadcast is a numbered *round*; followers echo the round in their
/// responses. A read records the commit index when it arrives and waits for the first round
/// sent after it; once a majority (the leader included) acknowledged that round, no other
/// leader can have committed anything the read must see, and the read is released with its
/// index. Reads arriving while a round is in flight join the next one, which is sent as soon
/// as the one in flight is confirmed, or at the next heartbeat tick at the latest (a round
/// whose answers are lost is never waited on forever), so many readers share one round.
/// A new leader holds reads until an entry of its own term commits (before that its commit
/// index may trail writes an earlier leader completed). Stepping down fails every read.
///
/// Bounds: one round in flight at a time; pending reads are bounded by what the shell asks
/// (kvd caps its waiting requests), each pending read is released or failed by the
/// confirmation of a later round, or by stepping down (check quorum steps down a leader that
/// cannot reach a majority within an election timeout).
struct LeaderReads {
    /// Last round sent, and the highest round a majority acknowledged.
    var sentRound: UInt64 = 0
    var confirmedRound: UInt64 = 0
    /// Send time of every round not yet confirmed (leader's monotonic clock, ns).
    var sendTimes: [UInt64: UInt64] = [:]
    /// Highest round each follower acknowledged.
    var acknowledged: [UInt64: UInt64] = [:]
    /// Reads waiting for an entry of our term to commit.
    var awaitingOwnTermCommit: [UInt64] = []
    /// Reads with their index, waiting for `round` to be confirmed; rounds ascending.
    var awaitingRound: [(round: UInt64, index: UInt64, ids: [UInt64])] = []
    /// Whether an entry of our term has committed.
    var ownTermCommitted = false
    /// The lease holds until this time (ns on the leader's clock); 0: no lease.
    var leaseExpiresAt: UInt64 = 0
    /// A transfer began in this term: no lease reads for the rest of it (the transferee's
    /// voters set their vote lease aside, see ReadLease.swift).
    var leaseForfeited = false

    var roundInFlight: Bool { sentRound > confirmedRound }

    mutating func takeAll() -> [UInt64] {
        var all = awaitingOwnTermCommit
        for batch in awaitingRound { all.append(contentsOf: batch.ids) }
        awaitingOwnTermCommit = []
        awaitingRound = []
        return all
    }
}

extension RaftNode {
    /// Tells the core the shell's monotonic clock (ns; must keep running while the process is
    /// stopped). Only lease reads use it; it never moves back.
    public func observeClock(nanos: UInt64) {
        nowNanos = max(nowNanos, nanos)
    }

    /// Asks for a linearizable read index for each id; the answers come in `Ready.readStates`,
    /// at once (single node, valid lease, not leader) or after a heartbeat round.
    public func requestRead(ids: [UInt64]) {
        guard !ids.isEmpty else { return }
        guard case .leader(let state) = role else {
            for id in ids { readStates.append(ReadState(id: id, outcome: .notLeader(leader: leader))) }
            return
        }
        guard state.reads.ownTermCommitted else {
            state.reads.awaitingOwnTermCommit.append(contentsOf: ids)
            return
        }
        serveReads(ids, state)
    }

    /// Whether the lease lets this leader answer reads without a round right now.
    var holdsReadLease: Bool {
        guard config.readLease != nil, case .leader(let state) = role else { return false }
        return !state.reads.leaseForfeited && state.transferee == 0 && nowNanos < state.reads.leaseExpiresAt
    }

    private func serveReads(_ ids: [UInt64], _ state: LeaderState) {
        if (isVoter && voters.count == 1) || holdsReadLease {
            for id in ids { readStates.append(ReadState(id: id, outcome: .ready(index: log.commit, term: term))) }
            return
        }
        let round = state.reads.sentRound + 1
        if let last = state.reads.awaitingRound.last, last.round == round, last.index == log.commit {
            state.reads.awaitingRound[state.reads.awaitingRound.count - 1].ids.append(contentsOf: ids)
        } else {
            state.reads.awaitingRound.append((round: round, index: log.commit, ids: ids))
        }
        // One round in flight at a time: the next leaves when it is confirmed or at the next
        // heartbeat tick, whichever comes first.
        if !state.reads.roundInFlight { broadcastHeartbeat(state) }
    }

    /// An entry of our term just committed: reads held for it get the commit index now.
    func ownTermCommitted(_ state: LeaderState) {
        guard !state.reads.ownTermCommitted else { return }
        state.reads.ownTermCommitted = true
        let held = state.reads.awaitingOwnTermCommit
        state.reads.awaitingOwnTermCommit = []
        if !held.isEmpty { serveReads(held, state) }
    }

    /// Numbers the heartbeat round about to be broadcast and records its send time.
    func startReadRound(_ state: LeaderState) -> UInt64 {
        state.reads.sentRound += 1
        state.reads.sendTimes[state.reads.sentRound] = nowNanos
        return state.reads.sentRound
    }

    /// A follower acknowledged `round` in our term: release the reads a majority confirmed and
    /// extend the lease from the confirmed round's send time.
    func readRoundAcknowledged(_ round: UInt64, by follower: UInt64, _ state: LeaderState) {
        guard round > state.reads.confirmedRound, round <= state.reads.sentRound else { return }
        state.reads.acknowledged[follower] = max(state.reads.acknowledged[follower] ?? 0, round)
        guard otherVoters.contains(follower) else { return }  // a learner's answer confirms nothing
        var rounds = otherVoters.map { state.reads.acknowledged[$0] ?? 0 }
        if isVoter { rounds.append(state.reads.sentRound) }
        rounds.sort(by: >)
        let confirmed = rounds[quorum - 1]
        guard confirmed > state.reads.confirmedRound else { return }
        state.reads.confirmedRound = confirmed
        if let lease = config.readLease, let sent = state.reads.sendTimes[confirmed] {
            state.reads.leaseExpiresAt = max(state.reads.leaseExpiresAt, sent + lease.durationNanos)
        }
        state.reads.sendTimes = state.reads.sendTimes.filter { $0.key > confirmed }
        var released = 0
        for batch in state.reads.awaitingRound {
            guard batch.round <= confirmed else { break }
            for id in batch.ids { readStates.append(ReadState(id: id, outcome: .ready(index: batch.index, term: term))) }
            released += 1
        }
        state.reads.awaitingRound.removeFirst(released)
        if !state.reads.awaitingRound.isEmpty, !state.reads.roundInFlight { broadcastHeartbeat(state) }
    }

    /// Leaving leadership: every read still waiting is refused.
    func failPendingReads(_ state: LeaderState, leader newLeader: UInt64) {
        for id in state.reads.takeAll() {
            readStates.append(ReadState(id: id, outcome: .notLeader(leader: newLeader)))
        }
    }
}
