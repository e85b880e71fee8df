/// The role a node plays, carrying only the state that role needs: a follower has no progress
/// table, a candidate has a vote tally, a leader has per-follower progress.
enum Role {
    case follower
    case preCandidate(VoteTally)
    case candidate(VoteTally)
    case leader(LeaderState)

    var name: RaftRole {
        switch self {
        case .follower: .follower
        case .preCandidate: .preCandidate
        case .candidate: .candidate
        case .leader: .leader
        }
    }
}

/// Votes received in one (pre-)election.
struct VoteTally {
    private(set) var responses: [UInt64: Bool] = [:]
    let quorum: Int

    init(quorum: Int) {
        self.quorum = quorum
    }

    enum Outcome { case pending, won, lost }

    /// Records the first answer from `voter`; a duplicate cannot change it.
    mutating func record(_ voter: UInt64, granted: Bool) {
        if responses[voter] == nil { responses[voter] = granted }
    }

    var outcome: Outcome {
        let granted = responses.values.filter { $0 }.count
        if granted >= quorum { return .won }
        if responses.count - granted >= quorum { return .lost }
        return .pending
    }
}

/// A leader's per-term state. A class so that the progress table is mutated in place while it
/// sits inside `Role.leader`, instead of being copied out and back on every message.
final class LeaderState {
    /// Progress of every other voter, keyed by id.
    var progress: [UInt64: Progress]
    /// Every other member (voters and learners, and members just removed until their removal
    /// commits) in ascending id order, so that message order never depends on hashing.
    var followers: [UInt64]
    /// The follower leadership is being handed to (0: none), and ticks since the handover began.
    var transferee: UInt64 = 0
    /// Members whose removal committed, still sent heartbeats for the ticks given, so they
    /// learn that it committed (and stop considering a campaign, see `canCampaign`).
    var lingering: [UInt64: Int] = [:]
    var transferElapsed = 0
    /// Reads waiting for a heartbeat round, and the lease (ReadIndex.swift).
    var reads = LeaderReads()

    init(followers: [UInt64], next: UInt64, maxInflight: Int) {
        self.followers = followers
        var progress: [UInt64: Progress] = [:]
        for id in followers { progress[id] = Progress(next: next, maxInflight: maxInflight) }
        self.progress = progress
    }
}
