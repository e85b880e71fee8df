import CProtobufC

/// A command batch kvd asks raftd to append, tagged so the result can be matched.
public struct Proposal: Hashable, Sendable {
    public var proposalID: UInt64
    public var data: [UInt8]
    public init(proposalID: UInt64, data: [UInt8]) {
        self.proposalID = proposalID
        self.data = data
    }
}

/// raftd's answer to one proposal: appended at (index, term), or refused because this
/// node is not the leader (`leaderID` is the leader it knows, 0 if none).
public struct ProposeResult: Hashable, Sendable {
    public var proposalID: UInt64
    public var accepted: Bool
    public var index: UInt64
    public var term: UInt64
    public var leaderID: UInt64
    public init(proposalID: UInt64, accepted: Bool, index: UInt64 = 0, term: UInt64 = 0, leaderID: UInt64 = 0) {
        self.proposalID = proposalID
        self.accepted = accepted
        self.index = index
        self.term = term
        self.leaderID = leaderID
    }
}

/// Who leads in which term, as seen by the local raftd.
public struct Leadership: Hashable, Sendable {
    public var term: UInt64
    public var leaderID: UInt64
    public var isLeader: Bool
    public init(term: UInt64, leaderID: UInt64, isLeader: Bool) {
        self.term = term
        self.leaderID = leaderID
        self.isLeader = isLeader
    }
}

/// raftd's answer to one read request id.
public struct ReadResult: Hashable, Sendable {
    public enum Outcome: Hashable, Sendable {
        /// Answer once applied through `index`; `term` is the term raftd leads in.
        case ready(index: UInt64, term: UInt64)
        /// raftd does not lead; `leaderID` is the leader it knows, 0 if none.
        case notLeader(leaderID: UInt64)
        /// raftd runs with `--read-mode log`: propose Gets through the log.
        case useLog
    }

    public var readID: UInt64
    public var outcome: Outcome

    public init(readID: UInt64, outcome: Outcome) {
        self.readID = readID
        self.outcome = outcome
    }
}

/// kvd → raftd over the apply socket.
public enum KvdToRaft: Hashable, Sendable {
    /// First message on a connection: stream every committed entry after `lastApplied`.
    case hello(lastApplied: UInt64)
    case propose([Proposal])
    case statusQuery(queryID: UInt64)
    /// A membership command for raftd (kvd's OP_MEMBER), answered with `memberAnswer`.
    case memberCommand(queryID: UInt64, MemberCommand)
    /// kvd's state at `chunk.index` (term unused), in chunks, answering `snapshotRequest`.
    case snapshot(SnapshotChunk)
    /// kvd could not restore from raftd's snapshot at `index` (undecodable or inconsistent) and
    /// is still at `lastApplied`: raftd stops sending it, streams from `lastApplied` again, and
    /// resends that snapshot only after a back-off.
    case snapshotRejected(index: UInt64, reason: String, lastApplied: UInt64)
    /// Gets to answer without the log: one id per batch; raftd answers with `readResults`.
    case read(ids: [UInt64])
}

/// raftd → kvd over the apply socket.
public enum RaftToKvd: Hashable, Sendable {
    /// Committed entries, contiguous and in log order.
    case committed([LogEntry])
    case results([ProposeResult])
    case leadership(Leadership)
    case status(queryID: UInt64, NodeStatus)
    case memberAnswer(queryID: UInt64, MemberAnswer)
    /// Replace the state machine with this snapshot (in chunks); entries after its index follow.
    case snapshot(SnapshotChunk)
    /// raftd's log outgrew its compaction threshold: kvd should send a snapshot of its state.
    case snapshotRequest(appliedAtLeast: UInt64)
    case readResults([ReadResult])
}

extension KvdToRaft: WireMessage {
    public func append(to out: inout [UInt8], framed: Bool) {
        let arena = CArena()
        let m = arena.make(Kvraft__Apply__KvdToRaft.self)
        kvraft__apply__kvd_to_raft__init(m)
        switch self {
        case let .hello(lastApplied):
            let hello = arena.make(Kvraft__Apply__ApplyHello.self)
            kvraft__apply__apply_hello__init(hello)
            hello.pointee.last_applied = lastApplied
            m.pointee.body_case = KVRAFT__APPLY__KVD_TO_RAFT__BODY_HELLO
            m.pointee.hello = hello
        case let .propose(proposals):
            let batch = arena.make(Kvraft__Apply__ProposeBatch.self)
            kvraft__apply__propose_batch__init(batch)
            let list = arena.pointerArray(of: Kvraft__Apply__Proposal.self, count: proposals.count)
            for (i, proposal) in proposals.enumerated() {
                let p = arena.make(Kvraft__Apply__Proposal.self)
                kvraft__apply__proposal__init(p)
                p.pointee.proposal_id = proposal.proposalID
                p.pointee.data = arena.bytes(proposal.data)
                list[i] = p
            }
            batch.pointee.n_proposals = proposals.count
            batch.pointee.proposals = list
            m.pointee.body_case = KVRAFT__APPLY__KVD_TO_RAFT__BODY_PROPOSE
            m.pointee.propose = batch
        case let .statusQuery(queryID):
            let query = arena.make(Kvraft__Apply__StatusQuery.self)
            kvraft__apply__status_query__init(query)
            query.pointee.query_id = queryID
            m.pointee.body_case = KVRAFT__APPLY__KVD_TO_RAFT__BODY_STATUS_QUERY
            m.pointee.status_query = query
        case let .memberCommand(queryID, command):
            let query = arena.make(Kvraft__Apply__StatusQuery.self)
            kvraft__apply__status_query__init(query)
            query.pointee.query_id = queryID
            query.pointee.member = command.makeC(in: arena)
            m.pointee.body_case = KVRAFT__APPLY__KVD_TO_RAFT__BODY_STATUS_QUERY
            m.pointee.status_query = query
        case let .snapshot(chunk):
            m.pointee.body_case = KVRAFT__APPLY__KVD_TO_RAFT__BODY_SNAPSHOT
            m.pointee.snapshot = chunk.makeC(in: arena)
        case let .snapshotRejected(index, reason, lastApplied):
            let rejected = arena.make(Kvraft__Apply__SnapshotRejected.self)
            kvraft__apply__snapshot_rejected__init(rejected)
            rejected.pointee.index = index
            rejected.pointee.reason = arena.string(reason)
            rejected.pointee.last_applied = lastApplied
            m.pointee.body_case = KVRAFT__APPLY__KVD_TO_RAFT__BODY_SNAPSHOT_REJECTED
            m.pointee.snapshot_rejected = rejected
        case let .read(ids):
            let read = arena.make(Kvraft__Apply__ReadRequest.self)
            kvraft__apply__read_request__init(read)
            read.pointee.n_read_ids = ids.count
            read.pointee.read_ids = arena.array(ids)
            m.pointee.body_case = KVRAFT__APPLY__KVD_TO_RAFT__BODY_READ
            m.pointee.read = read
        }
        appendPacked(m, size: kvraft__apply__kvd_to_raft__get_packed_size, pack: kvraft__apply__kvd_to_raft__pack, framed: framed, to: &out)
    }

    public init(serialized body: ArraySlice<UInt8>) throws(WireError) {
        self = try withUnpacked(body, name: "KvdToRaft", unpack: { kvraft__apply__kvd_to_raft__unpack(nil, $0, $1) },
                                free: { kvraft__apply__kvd_to_raft__free_unpacked($0, nil) }) { m throws(WireError) in
            switch m.pointee.body_case {
            case KVRAFT__APPLY__KVD_TO_RAFT__BODY_HELLO:
                guard let hello = m.pointee.hello else { throw .invalid("KvdToRaft.hello is missing") }
                return .hello(lastApplied: hello.pointee.last_applied)
            case KVRAFT__APPLY__KVD_TO_RAFT__BODY_PROPOSE:
                guard let batch = m.pointee.propose else { throw .invalid("KvdToRaft.propose is missing") }
                var proposals: [Proposal] = []
                proposals.reserveCapacity(batch.pointee.n_proposals)
                for i in 0..<batch.pointee.n_proposals {
                    guard let p = batch.pointee.proposals[i] else { throw .invalid("proposal \(i) is missing") }
                    proposals.append(Proposal(proposalID: p.pointee.proposal_id, data: CValue.bytes(p.pointee.data)))
                }
                return .propose(proposals)
            case KVRAFT__APPLY__KVD_TO_RAFT__BODY_STATUS_QUERY:
                guard let query = m.pointee.status_query else { throw .invalid("KvdToRaft.status_query is missing") }
                if let command = query.pointee.member { return .memberCommand(queryID: query.pointee.query_id, MemberCommand(c: command)) }
                return .statusQuery(queryID: query.pointee.query_id)
            case KVRAFT__APPLY__KVD_TO_RAFT__BODY_SNAPSHOT:
                guard let chunk = m.pointee.snapshot else { throw .invalid("KvdToRaft.snapshot is missing") }
                return .snapshot(SnapshotChunk(c: chunk))
            case KVRAFT__APPLY__KVD_TO_RAFT__BODY_SNAPSHOT_REJECTED:
                guard let rejected = m.pointee.snapshot_rejected else { throw .invalid("KvdToRaft.snapshot_rejected is missing") }
                return .snapshotRejected(index: rejected.pointee.index, reason: CValue.string(rejected.pointee.reason),
                                         lastApplied: rejected.pointee.last_applied)
            case KVRAFT__APPLY__KVD_TO_RAFT__BODY_READ:
                guard let read = m.pointee.read else { throw .invalid("KvdToRaft.read is missing") }
                let count = read.pointee.n_read_ids
                guard count == 0 || read.pointee.read_ids != nil else { throw .invalid("KvdToRaft.read ids are missing") }
                return .read(ids: (0..<count).map { read.pointee.read_ids[$0] })
            default:
                throw .invalid("KvdToRaft has no body")
            }
        }
    }
}

extension RaftToKvd: WireMessage {
    public func append(to out: inout [UInt8], framed: Bool) {
        let arena = CArena()
        let m = arena.make(Kvraft__Apply__RaftToKvd.self)
        kvraft__apply__raft_to_kvd__init(m)
        switch self {
        case let .committed(entries):
            let committed = arena.make(Kvraft__Apply__CommittedEntries.self)
            kvraft__apply__committed_entries__init(committed)
            (committed.pointee.n_entries, committed.pointee.entries) = LogEntry.makeCList(entries, in: arena)
            m.pointee.body_case = KVRAFT__APPLY__RAFT_TO_KVD__BODY_COMMITTED
            m.pointee.committed = committed
        case let .results(results):
            let list = arena.make(Kvraft__Apply__ProposeResults.self)
            kvraft__apply__propose_results__init(list)
            let items = arena.pointerArray(of: Kvraft__Apply__ProposeResult.self, count: results.count)
            for (i, result) in results.enumerated() {
                let r = arena.make(Kvraft__Apply__ProposeResult.self)
                kvraft__apply__propose_result__init(r)
                r.pointee.proposal_id = result.proposalID
                r.pointee.accepted = result.accepted ? 1 : 0
                r.pointee.index = result.index
                r.pointee.term = result.term
                r.pointee.leader_id = result.leaderID
                items[i] = r
            }
            list.pointee.n_results = results.count
            list.pointee.results = items
            m.pointee.body_case = KVRAFT__APPLY__RAFT_TO_KVD__BODY_RESULTS
            m.pointee.results = list
        case let .leadership(leadership):
            let l = arena.make(Kvraft__Apply__Leadership.self)
            kvraft__apply__leadership__init(l)
            l.pointee.term = leadership.term
            l.pointee.leader_id = leadership.leaderID
            l.pointee.is_leader = leadership.isLeader ? 1 : 0
            m.pointee.body_case = KVRAFT__APPLY__RAFT_TO_KVD__BODY_LEADERSHIP
            m.pointee.leadership = l
        case let .status(queryID, status):
            let s = arena.make(Kvraft__Apply__RaftStatus.self)
            kvraft__apply__raft_status__init(s)
            s.pointee.query_id = queryID
            s.pointee.status = status.makeC(in: arena)
            m.pointee.body_case = KVRAFT__APPLY__RAFT_TO_KVD__BODY_STATUS
            m.pointee.status = s
        case let .memberAnswer(queryID, answer):
            // Told apart from a status answer by having no NodeStatus.
            let s = arena.make(Kvraft__Apply__RaftStatus.self)
            kvraft__apply__raft_status__init(s)
            s.pointee.query_id = queryID
            (s.pointee.n_members, s.pointee.members) = MemberInfo.makeCList(answer.members, in: arena)
            s.pointee.member_ok = answer.ok ? 1 : 0
            if !answer.error.isEmpty { s.pointee.member_error = arena.string(answer.error) }
            s.pointee.configuration_index = answer.configurationIndex
            m.pointee.body_case = KVRAFT__APPLY__RAFT_TO_KVD__BODY_STATUS
            m.pointee.status = s
        case let .snapshot(chunk):
            m.pointee.body_case = KVRAFT__APPLY__RAFT_TO_KVD__BODY_SNAPSHOT
            m.pointee.snapshot = chunk.makeC(in: arena)
        case let .snapshotRequest(appliedAtLeast):
            let request = arena.make(Kvraft__Apply__SnapshotRequest.self)
            kvraft__apply__snapshot_request__init(request)
            request.pointee.applied_at_least = appliedAtLeast
            m.pointee.body_case = KVRAFT__APPLY__RAFT_TO_KVD__BODY_SNAPSHOT_REQUEST
            m.pointee.snapshot_request = request
        case let .readResults(results):
            let list = arena.make(Kvraft__Apply__ReadResults.self)
            kvraft__apply__read_results__init(list)
            let items = arena.pointerArray(of: Kvraft__Apply__ReadResult.self, count: results.count)
            for (i, result) in results.enumerated() {
                let r = arena.make(Kvraft__Apply__ReadResult.self)
                kvraft__apply__read_result__init(r)
                r.pointee.read_id = result.readID
                switch result.outcome {
                case let .ready(index, term):
                    r.pointee.status = KVRAFT__APPLY__READ_STATUS__READ_READY
                    r.pointee.index = index
                    r.pointee.term = term
                case let .notLeader(leaderID):
                    r.pointee.status = KVRAFT__APPLY__READ_STATUS__READ_NOT_LEADER
                    r.pointee.leader_id = leaderID
                case .useLog:
                    r.pointee.status = KVRAFT__APPLY__READ_STATUS__READ_USE_LOG
                }
                items[i] = r
            }
            list.pointee.n_results = results.count
            list.pointee.results = items
            m.pointee.body_case = KVRAFT__APPLY__RAFT_TO_KVD__BODY_READ_RESULTS
            m.pointee.read_results = list
        }
        appendPacked(m, size: kvraft__apply__raft_to_kvd__get_packed_size, pack: kvraft__apply__raft_to_kvd__pack, framed: framed, to: &out)
    }

    public init(serialized body: ArraySlice<UInt8>) throws(WireError) {
        self = try withUnpacked(body, name: "RaftToKvd", unpack: { kvraft__apply__raft_to_kvd__unpack(nil, $0, $1) },
                                free: { kvraft__apply__raft_to_kvd__free_unpacked($0, nil) }) { m throws(WireError) in
            switch m.pointee.body_case {
            case KVRAFT__APPLY__RAFT_TO_KVD__BODY_COMMITTED:
                guard let committed = m.pointee.committed else { throw .invalid("RaftToKvd.committed is missing") }
                return .committed(try LogEntry.fromCList(committed.pointee.n_entries, committed.pointee.entries))
            case KVRAFT__APPLY__RAFT_TO_KVD__BODY_RESULTS:
                guard let list = m.pointee.results else { throw .invalid("RaftToKvd.results is missing") }
                var results: [ProposeResult] = []
                for i in 0..<list.pointee.n_results {
                    guard let r = list.pointee.results[i] else { throw .invalid("result \(i) is missing") }
                    results.append(ProposeResult(proposalID: r.pointee.proposal_id, accepted: r.pointee.accepted != 0,
                                                 index: r.pointee.index, term: r.pointee.term, leaderID: r.pointee.leader_id))
                }
                return .results(results)
            case KVRAFT__APPLY__RAFT_TO_KVD__BODY_LEADERSHIP:
                guard let l = m.pointee.leadership else { throw .invalid("RaftToKvd.leadership is missing") }
                return .leadership(Leadership(term: l.pointee.term, leaderID: l.pointee.leader_id, isLeader: l.pointee.is_leader != 0))
            case KVRAFT__APPLY__RAFT_TO_KVD__BODY_STATUS:
                guard let s = m.pointee.status else { throw .invalid("RaftToKvd.status is missing") }
                guard let node = s.pointee.status else {
                    return .memberAnswer(queryID: s.pointee.query_id, MemberAnswer(
                        ok: s.pointee.member_ok != 0, error: CValue.string(s.pointee.member_error),
                        members: MemberInfo.fromCList(s.pointee.n_members, s.pointee.members),
                        configurationIndex: s.pointee.configuration_index))
                }
                return .status(queryID: s.pointee.query_id, NodeStatus(c: node))
            case KVRAFT__APPLY__RAFT_TO_KVD__BODY_SNAPSHOT:
                guard let chunk = m.pointee.snapshot else { throw .invalid("RaftToKvd.snapshot is missing") }
                return .snapshot(SnapshotChunk(c: chunk))
            case KVRAFT__APPLY__RAFT_TO_KVD__BODY_SNAPSHOT_REQUEST:
                guard let request = m.pointee.snapshot_request else { throw .invalid("RaftToKvd.snapshot_request is missing") }
                return .snapshotRequest(appliedAtLeast: request.pointee.applied_at_least)
            case KVRAFT__APPLY__RAFT_TO_KVD__BODY_READ_RESULTS:
                guard let list = m.pointee.read_results else { throw .invalid("RaftToKvd.read_results is missing") }
                var results: [ReadResult] = []
                for i in 0..<list.pointee.n_results {
                    guard let r = list.pointee.results[i] else { throw .invalid("read result \(i) is missing") }
                    let outcome: ReadResult.Outcome
                    switch r.pointee.status {
                    case KVRAFT__APPLY__READ_STATUS__READ_READY: outcome = .ready(index: r.pointee.index, term: r.pointee.term)
                    case KVRAFT__APPLY__READ_STATUS__READ_NOT_LEADER: outcome = .notLeader(leaderID: r.pointee.leader_id)
                    case KVRAFT__APPLY__READ_STATUS__READ_USE_LOG: outcome = .useLog
                    default: throw .invalid("read result \(i) has unknown status \(r.pointee.status.rawValue)")
                    }
                    results.append(ReadResult(readID: r.pointee.read_id, outcome: outcome))
                }
                return .readResults(results)
            default:
                throw .invalid("RaftToKvd has no body")
            }
        }
    }
}
