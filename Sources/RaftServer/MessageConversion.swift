import Raft
import Wire

/// Raft's own message and entry types ⇄ their protobuf forms (kept apart so the Raft core
/// imports nothing).
extension Wire.LogEntry {
    init(_ entry: Raft.Entry) {
        self.init(term: entry.term, index: entry.index, isNoop: entry.kind == .noop, isConfig: entry.kind == .config, data: entry.data)
    }
}

extension Raft.Entry {
    init(_ entry: Wire.LogEntry) {
        self.init(term: entry.term, index: entry.index, kind: entry.isNoop ? .noop : entry.isConfig ? .config : .normal, data: entry.data)
    }
}

extension PeerMessageType {
    init(_ type: MessageType) {
        switch type {
        case .preVote: self = .preVote
        case .preVoteResponse: self = .preVoteResponse
        case .vote: self = .vote
        case .voteResponse: self = .voteResponse
        case .append: self = .append
        case .appendResponse: self = .appendResponse
        case .heartbeat: self = .heartbeat
        case .heartbeatResponse: self = .heartbeatResponse
        case .timeoutNow: self = .timeoutNow
        case .snapshot: self = .snapshot
        }
    }

    var raftType: MessageType? {
        switch self {
        case .preVote: .preVote
        case .preVoteResponse: .preVoteResponse
        case .vote: .vote
        case .voteResponse: .voteResponse
        case .append: .append
        case .appendResponse: .appendResponse
        case .heartbeat: .heartbeat
        case .heartbeatResponse: .heartbeatResponse
        case .timeoutNow: .timeoutNow
        case .snapshot: .snapshot
        default: nil
        }
    }
}

extension PeerMessage {
    init(_ message: Message, clusterID: UInt64) {
        self.init(clusterID: clusterID, from: message.from, to: message.to, type: PeerMessageType(message.type),
                  term: message.term, logTerm: message.logTerm, index: message.index, commit: message.commit,
                  entries: message.entries.map(Wire.LogEntry.init), reject: message.reject,
                  rejectHint: message.rejectHint, rejectTerm: message.rejectTerm, transfer: message.transfer,
                  stateMachineDetached: message.stateMachineDetached, readRound: message.readRound)
    }

    /// nil for a message type this version does not know. A snapshot message's payload arrives
    /// in chunks; the transport reassembles it and passes it as `snapshot`.
    func raftMessage(snapshot: Raft.Snapshot? = nil) -> Message? {
        guard let type = type.raftType else { return nil }
        return Message(type: type, from: from, to: to, term: term, logTerm: logTerm, index: index, commit: commit,
                       entries: entries.map(Raft.Entry.init), reject: reject, rejectHint: rejectHint, rejectTerm: rejectTerm,
                       transfer: transfer, snapshot: snapshot, stateMachineDetached: stateMachineDetached,
                       readRound: readRound)
    }
}

extension Wire.ReadResult {
    /// The core's answer for the read kvd asked under `kvdID`.
    init(kvdID: UInt64, _ state: Raft.ReadState) {
        switch state.outcome {
        case let .ready(index, term): self.init(readID: kvdID, outcome: .ready(index: index, term: term))
        case let .notLeader(leader): self.init(readID: kvdID, outcome: .notLeader(leaderID: leader))
        }
    }
}
