/// Campaigning early when the shell sees our leader's connection reset.
///
/// A leader that dies (kill -9, a crash, a host going down with a reset) closes its TCP
/// connections, so its followers learn of it at once instead of after an election timeout. A
/// follower then forgets that leader (so it no longer holds a lease for it and grants other
/// candidates' pre-votes) and shortens its election timer to a few ticks, at most
/// `electionTicks / 2`. The followers that saw the same reset must not all campaign at once
/// (they would split the vote and wait out a whole timeout): each takes a slot by its rank
/// among the leader's other peers (lowest id first), with a random offset inside the slot, so
/// the first candidate has usually won before the next starts; a candidate whose log is
/// behind is refused, and the next slot's takes over.
///
/// Safety: only *when* a node starts a (pre-)election changes; votes (one per term, durable,
/// for up-to-date logs only) decide who leads, exactly as after a timeout. The lease given up is
/// not used for reads here, only to keep a partitioned node from deposing a live leader.
///
/// No disruption, no livelock: the early election begins with a pre-vote, which never changes
/// a term and succeeds only with a quorum of grants. A node still hearing a live leader keeps
/// its lease and ignores the pre-vote, so a reset on one link while the leader lives (a network
/// blip, a proxy restart) costs a pre-vote round and nothing else; the leader's next heartbeat
/// makes the pre-candidate a follower again. Each reset shortens one timer once, and resets of
/// one link are paced by the shell's reconnect backoff, so a flapping link cannot keep a node
/// campaigning faster than that. A node without its state machine still defers (the timer fires
/// into the ordinary `tickElection`, deferral included), and without pre-vote the timer is left
/// alone, since a bare election on a blip would bump the term.
extension RaftNode {
    /// Tells the core that the connection from (or to) `peer` was reset or closed by the far end.
    /// Acts only when `peer` is the leader this follower follows.
    public func peerConnectionLost(_ peer: UInt64) {
        // With lease reads the old leader may still serve from its lease: keep ours until it ends.
        guard config.readLease == nil, case .follower = role, peer != 0, leader == peer else { return }
        leader = 0
        guard config.preVote else { return }
        let others = otherVoters.filter { $0 != peer }
        let rank = others.filter { $0 < config.id }.count
        let slot = max(1, config.electionTicks / 2 / (others.count + 1))
        let soon = 1 + rank * slot + Int(random.next() % UInt64(slot))
        electionElapsed = max(electionElapsed, randomizedElectionTimeout - soon)
    }
}
