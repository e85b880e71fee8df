/// Membership changes, one server at a time (Raft thesis §4.1–4.2, with learners).
///
/// - The configuration is a `.config` log entry holding the whole new configuration, and part
///   of every snapshot. Every node uses the latest configuration in its log, committed or not;
///   a truncated config entry takes its configuration with it (`RaftLog` tracks them).
/// - Each change adds a learner, promotes one learner, or removes one member, so the voters of
///   consecutive configurations differ by at most one and their majorities overlap.
/// - One change at a time: none is accepted while the latest config entry is uncommitted.
/// - A leader accepts a change only once an entry of its own term has committed (Ongaro,
///   raft-dev 2015: otherwise a new leader may append a change on top of an uncommitted change
///   of an earlier term that it does not know about, and two disjoint majorities can result).
/// - Learners get the log like any follower but count in no quorum and never campaign; one
///   marked `autoPromote` is promoted by the leader once within `autoPromoteLag` entries.
/// - A leader that appended its own removal keeps leading without counting itself until the
///   change commits, then hands leadership to the most up-to-date live voter and steps down
///   (at once if there is none, or when the handover has not happened within an election
///   timeout). Members just removed keep receiving the log until their removal commits, so
///   they learn they are out.
extension RaftNode {
    /// The configuration in force: the latest in the log, committed or not.
    public var configuration: Configuration { log.configuration }

    /// Index of the latest configuration entry held (0: the configuration comes from the
    /// snapshot or the seed, and is committed). A change is pending while it exceeds the
    /// commit index.
    public var configurationIndex: UInt64 { log.configurationIndex }

    /// What the leader knows of each other member's log; empty when not leading.
    public var memberProgress: [MemberProgress] {
        guard case .leader(let state) = role else { return [] }
        return state.followers.map { id in
            let progress = state.progress[id]!
            return MemberProgress(id: id, match: progress.match,
                                  recentlyActive: progress.ticksSinceHeard < config.electionTicks)
        }
    }

    /// Proposes a membership change. Only a leader accepts, and only with no other change
    /// pending and an entry of its own term committed. On success the change is appended (and
    /// in force here) at the returned index; it is committed iff the entry applied there
    /// carries the returned term.
    public func proposeConfigChange(_ change: ConfigChange) -> Result<(index: UInt64, term: UInt64), ConfigChangeError> {
        guard case .leader(let state) = role else { return .failure(.notLeader(leader: leader)) }
        guard state.transferee == 0 else { return .failure(.transferring) }
        guard state.reads.ownTermCommitted else { return .failure(.ownTermNotCommitted) }
        guard log.configurationIndex <= log.commit else {
            return .failure(.changeInProgress(index: log.configurationIndex))
        }
        let updated: Configuration
        switch log.configuration.applying(change) {
        case .failure(let error): return .failure(error)
        case .success(let configuration): updated = configuration
        }
        let index = log.lastIndex + 1
        log.appendAsLeader([Entry(term: term, index: index, kind: .config, data: updated.encoded)])
        syncConfiguration()
        precondition(log.configurationIndex == index, "raft: the configuration entry just appended at \(index) is not in force")
        // A smaller quorum may already cover earlier entries.
        _ = maybeCommit(state)
        broadcastAppend(state, includeEmpty: false)
        return .success((index, term))
    }

    /// Whether this node may campaign: it votes in its configuration, or the latest change
    /// removed it and is not committed yet. The latter lets the cluster finish a change that
    /// removed a leader which lost leadership before the change committed: the nodes holding
    /// the change may all be outside it (the old leader) or learners, and the new voters may
    /// lack it, so without this nobody could win (the voters' logs are behind). Such a
    /// candidate counts only the votes of its configuration's voters, not its own, so
    /// election safety is that of any configuration; once leading it commits the change and
    /// hands over like any removed leader.
    var canCampaign: Bool {
        isVoter || (log.configurationIndex > log.commit && log.previousConfiguration.isVoter(config.id))
    }

    /// Recomputes what depends on the configuration when the log's latest one changed.
    func syncConfiguration() {
        guard log.configurationVersion != syncedConfigurationVersion else { return }
        syncedConfigurationVersion = log.configurationVersion
        let configuration = log.configuration
        voters = configuration.voters
        otherVoters = voters.filter { $0 != config.id }
        quorum = configuration.quorum
        isVoter = voters.contains(config.id)
        if case .leader(let state) = role { syncProgress(state) }
    }

    /// Whom a leader replicates to: every other member, plus (until the change commits) those
    /// the latest change removed.
    var replicationTargets: [UInt64] {
        var targets = Set(log.configuration.ids)
        if log.configurationIndex > log.commit { targets.formUnion(log.previousConfiguration.ids) }
        targets.remove(config.id)
        return targets.sorted()
    }

    /// Starts tracking new members (probing from our last index) and stops tracking departed ones.
    func syncProgress(_ state: LeaderState) {
        let targets = Set(replicationTargets).union(state.lingering.keys).sorted()
        let next = log.lastIndex + 1
        for id in targets where state.progress[id] == nil {
            state.progress[id] = Progress(next: next, maxInflight: config.maxInflightAppends)
        }
        for id in state.followers where !targets.contains(id) {
            state.progress[id] = nil
            state.reads.acknowledged[id] = nil
            if state.transferee == id { state.transferee = 0 }
        }
        state.followers = targets
        precondition(otherVoters.allSatisfy { state.progress[$0] != nil }, "raft: a voter without progress")
    }

    /// The latest configuration entry just committed (on the leader).
    /// If it removed us, the handover starts now; stepping down waits for the next tick (our
    /// caller still acts as leader).
    func configurationCommitted(_ state: LeaderState) {
        let members = Set(log.configuration.ids)
        for id in state.followers where !members.contains(id) { state.lingering[id] = config.electionTicks }
        syncProgress(state)
        if !isVoter, state.transferee == 0, let target = handoverTarget(state, attachedOnly: false) {
            transferLeadership(to: target)
        }
    }

    /// A leader whose removal committed hands over, or steps down. Returns whether it stepped down.
    @discardableResult
    func leaveIfRemoved(_ state: LeaderState) -> Bool {
        guard !isVoter, log.configurationIndex <= log.commit else { return false }
        if state.transferee != 0 && state.transferElapsed + 1 < config.electionTicks { return false }
        if state.transferee == 0, let target = handoverTarget(state, attachedOnly: false) {
            transferLeadership(to: target)
            return false
        }
        becomeFollower(term: term, leader: 0)
        return true
    }

    /// Leader tick: members whose removal committed a while ago are no longer sent anything.
    func tickLingering(_ state: LeaderState) {
        guard !state.lingering.isEmpty else { return }
        for (id, ticks) in state.lingering { state.lingering[id] = ticks > 1 ? ticks - 1 : nil }
        syncProgress(state)
    }

    /// Leader tick: propose the promotion of a learner marked for it once it caught up.
    func maybeAutoPromote(_ state: LeaderState) {
        guard case .leader = role, isVoter, state.transferee == 0, state.reads.ownTermCommitted,
              log.configurationIndex <= log.commit else { return }
        for member in log.configuration.members where !member.isVoter && member.autoPromote {
            guard let progress = state.progress[member.id], progress.ticksSinceHeard < config.electionTicks,
                  progress.match > 0, progress.match + config.autoPromoteLag >= log.lastIndex else { continue }
            _ = proposeConfigChange(.promote(member.id))
            return
        }
    }
}

/// What a leader knows about one other member.
public struct MemberProgress: Sendable, Hashable {
    public var id: UInt64
    /// Highest log index known to be durable on that member.
    public var match: UInt64
    /// Whether it answered within the election timeout.
    public var recentlyActive: Bool
}
