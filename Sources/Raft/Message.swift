/// Kind of a peer message; raw values match `MessageType` in `proto/raft.proto`.
public enum MessageType: UInt8, Sendable, Hashable, CaseIterable {
    case preVote = 1
    case preVoteResponse = 2
    case vote = 3
    case voteResponse = 4
    case append = 5
    case appendResponse = 6
    case heartbeat = 7
    case heartbeatResponse = 8
    /// Leadership transfer: the leader tells an up-to-date follower to campaign at once.
    case timeoutNow = 9
    /// The leader's latest snapshot, for a follower whose next entry it has compacted away.
    case snapshot = 10
}

/// One message between Raft peers, mapped 1:1 to `PeerMessage` in `proto/raft.proto`.
///
/// Field meaning depends on `type`:
/// - (pre-)vote: `logTerm`/`index` are the candidate's last log term/index; `term` is the term
///   the candidate campaigns for (for a pre-vote, its current term + 1, which it has not adopted).
/// - append: `logTerm`/`index` are prevLogTerm/prevLogIndex, `entries` follow it, `commit` is the
///   leader's commit index.
/// - append response: `index` is the follower's last matching index on success, or the rejected
///   prevLogIndex on `reject`, with `rejectTerm`/`rejectHint` for fast backtracking.
/// - heartbeat: `commit` is min(leader commit, follower match), so a follower never learns a commit
///   index beyond what it is known to hold.
/// - heartbeat response: `reject` when the heartbeat's commit lies beyond the follower's log (it
///   lost its log, e.g. a wiped disk), with `index` = the follower's last index, so the leader
///   restarts replication (or sends its snapshot) from there.
/// - snapshot: `snapshot` is the leader's latest snapshot. The follower answers with an append
///   response whose `index` is how far its log now matches: `snapshot.index`, or its commit index
///   when that is already past the snapshot.
public struct Message: Sendable, Hashable {
    public var type: MessageType
    public var from: UInt64
    public var to: UInt64
    public var term: UInt64
    public var logTerm: UInt64
    public var index: UInt64
    public var commit: UInt64
    public var entries: [Entry]
    public var reject: Bool
    /// On a rejected append: the first index of `rejectTerm` in the follower's log, or the
    /// follower's last index + 1 when its log is too short to hold prevLogIndex.
    public var rejectHint: UInt64
    /// On a rejected append: the term of the follower's entry at prevLogIndex, 0 if it has none.
    public var rejectTerm: UInt64
    /// On a vote: the candidate campaigns because the leader handed leadership to it
    /// (`timeoutNow`), so voters must not refuse it for having heard from that leader lately.
    public var transfer: Bool
    /// On a snapshot message: the snapshot (nil on every other type).
    public var snapshot: Snapshot?
    /// On append and heartbeat responses: the sender's state machine (kvd) is not attached, so
    /// it should not be made leader (a leader without a state machine cannot answer clients).
    public var stateMachineDetached: Bool
    /// On heartbeats: the leader's read round (see ReadIndex.swift), echoed by the heartbeat
    /// response so the leader knows which round a follower has confirmed. 0 on other types.
    public var readRound: UInt64

    public init(
        type: MessageType,
        from: UInt64,
        to: UInt64,
        term: UInt64,
        logTerm: UInt64 = 0,
        index: UInt64 = 0,
        commit: UInt64 = 0,
        entries: [Entry] = [],
        reject: Bool = false,
        rejectHint: UInt64 = 0,
        rejectTerm: UInt64 = 0,
        transfer: Bool = false,
        snapshot: Snapshot? = nil,
        stateMachineDetached: Bool = false,
        readRound: UInt64 = 0
    ) {
        self.type = type
        self.from = from
        self.to = to
        self.term = term
        self.logTerm = logTerm
        self.index = index
        self.commit = commit
        self.entries = entries
        self.reject = reject
        self.rejectHint = rejectHint
        self.rejectTerm = rejectTerm
        self.transfer = transfer
        self.snapshot = snapshot
        self.stateMachineDetached = stateMachineDetached
        self.readRound = readRound
    }
}

extension Message: CustomStringConvertible {
    /// A compact one-line form for transcripts, e.g. `1→2 append t3 prev=(2,5) ents=[6..8] c5` or
    /// `1→3 snapshot t3 through=(2,40) 512B`.
    public var description: String {
        var text = "\(from)→\(to) \(type) t\(term)"
        switch type {
        case .preVote, .vote:
            text += " last=(\(logTerm),\(index))"
        case .append:
            text += " prev=(\(logTerm),\(index))"
            if let first = entries.first, let last = entries.last {
                text += " ents=[\(first.index)..\(last.index)]"
            }
            text += " c\(commit)"
        case .appendResponse:
            text += reject ? " reject idx=\(index) hint=\(rejectHint) rterm=\(rejectTerm)" : " ok idx=\(index)"
        case .heartbeat:
            text += " c\(commit)"
            if readRound != 0 { text += " r\(readRound)" }
        case .snapshot:
            text += snapshot.map { " through=(\($0.term),\($0.index)) \($0.data.count)B" } ?? " (none)"
        case .preVoteResponse, .voteResponse:
            text += reject ? " reject" : " grant"
        case .heartbeatResponse:
            if reject { text += " reject last=\(index)" }
            if readRound != 0 { text += " r\(readRound)" }
        case .timeoutNow:
            break
        }
        if stateMachineDetached { text += " detached" }
        return text
    }
}
