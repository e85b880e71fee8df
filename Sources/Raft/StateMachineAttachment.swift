/// Leading and campaigning only with a state machine attached.
///
/// raftd's state machine (kvd) is a separate process. A leader whose kvd is gone still
/// replicates, but no client can be answered through it, and followers keep naming it, so the
/// cluster is unavailable until kvd returns. The shell reports attachment with
/// `setStateMachineAttached(_:)`; followers report theirs on every append and heartbeat response.
///
/// - A leader detached for more than `detachedLeaderTicks` hands leadership (the ordinary
///   `transferLeadership` machinery) to a live follower whose state machine is attached, the most
///   up to date among them. With no such follower it keeps leading: a leader without kvd still
///   beats no leader at all (it keeps the log replicated and takes over the moment kvd returns).
/// - A detached node lets up to `maxDeferredElections` election timeouts in a row pass without
///   campaigning, then campaigns as usual. The count starts anew whenever a leader is heard.
///
/// Liveness: deferring is bounded, so without a leader every node still campaigns at least once
/// every `maxDeferredElections + 1` randomized timeouts; if all state machines are detached the
/// cluster elects as plain Raft does, only with (at most) that many times the timeout. A
/// handover only goes to an attached follower, which then has no reason to hand over again; a
/// new handover needs its state machine to detach in turn, so leadership moves at most once per
/// detachment, never back and forth on its own. A handover that does not complete is abandoned
/// after an election timeout (as every transfer is), and retried while still detached.
/// Safety is untouched: only *when* a node campaigns or hands over changes, never how votes
/// are granted or entries committed.
extension RaftNode {
    /// Election timeouts a detached node lets pass before campaigning anyway.
    public static let maxDeferredElections = 3

    /// Ticks a leader leads without its state machine before handing over: about two
    /// heartbeats, so a kvd that merely reconnects does not cost a leader change.
    var detachedLeaderTicksBeforeHandover: Int { 2 * config.heartbeatTicks }

    /// Tells the core whether the state machine is attached (kvd connected and said hello).
    public func setStateMachineAttached(_ attached: Bool) {
        stateMachineAttached = attached
        if attached {
            deferredElections = 0
            detachedLeaderTicks = 0
        }
    }

    /// Whether an election timeout that just passed should be let go by: our state machine is
    /// detached and we have not yet let `maxDeferredElections` go in a row.
    func shouldDeferElection() -> Bool {
        guard !stateMachineAttached, deferredElections < Self.maxDeferredElections else {
            deferredElections = 0
            return false
        }
        deferredElections += 1
        return true
    }

    /// Leader tick: hand over once detached for long enough, to an attached live follower.
    func handOverIfDetached(_ state: LeaderState) {
        guard !stateMachineAttached else {
            detachedLeaderTicks = 0
            return
        }
        detachedLeaderTicks += 1
        guard detachedLeaderTicks > detachedLeaderTicksBeforeHandover, state.transferee == 0,
              let target = handoverTarget(state, attachedOnly: true) else { return }
        transferLeadership(to: target)
    }

    /// The follower to hand leadership to: among those heard from within the election timeout
    /// (a dead one could never take over), preferring those whose state machine is attached,
    /// the one with the most log. nil when no follower is live (or, with `attachedOnly`, none
    /// live is attached).
    func handoverTarget(_ state: LeaderState, attachedOnly: Bool) -> UInt64? {
        // Only a voter can take over.
        let live = otherVoters.filter { state.progress[$0].map { $0.ticksSinceHeard < config.electionTicks } ?? false }
        let attached = live.filter { state.progress[$0]!.stateMachineAttached }
        let pool = attached.isEmpty && !attachedOnly ? live : attached
        // Followers are in ascending id order and `max` keeps the first of equals: deterministic.
        return pool.max { state.progress[$0]!.match < state.progress[$1]!.match }
    }
}
