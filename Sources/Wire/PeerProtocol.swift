import CProtobufC

/// One replicated log entry as it travels between raftds and from raftd to kvd.
public struct LogEntry: Hashable, Sendable {
    public var term: UInt64
    public var index: UInt64
    /// A leader's no-op at the start of its term rather than a command.
    public var isNoop: Bool
    /// A membership change (`ENTRY_CONFIG`): `data` is the encoded configuration.
    public var isConfig: Bool
    public var data: [UInt8]

    public init(term: UInt64, index: UInt64, isNoop: Bool = false, isConfig: Bool = false, data: [UInt8] = []) {
        self.isConfig = isConfig
        self.term = term
        self.index = index
        self.isNoop = isNoop
        self.data = data
    }

    func makeC(in arena: CArena) -> UnsafeMutablePointer<Kvraft__Raft__Entry> {
        let m = arena.make(Kvraft__Raft__Entry.self)
        kvraft__raft__entry__init(m)
        m.pointee.term = term
        m.pointee.index = index
        m.pointee.type = isNoop ? KVRAFT__RAFT__ENTRY_TYPE__ENTRY_NOOP
            : isConfig ? KVRAFT__RAFT__ENTRY_TYPE__ENTRY_CONFIG : KVRAFT__RAFT__ENTRY_TYPE__ENTRY_NORMAL
        m.pointee.data = arena.bytes(data)
        return m
    }

    init(c m: UnsafeMutablePointer<Kvraft__Raft__Entry>) {
        self.init(term: m.pointee.term, index: m.pointee.index,
                  isNoop: m.pointee.type == KVRAFT__RAFT__ENTRY_TYPE__ENTRY_NOOP,
                  isConfig: m.pointee.type == KVRAFT__RAFT__ENTRY_TYPE__ENTRY_CONFIG, data: CValue.bytes(m.pointee.data))
    }

    static func makeCList(_ entries: [LogEntry], in arena: CArena) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<Kvraft__Raft__Entry>?>?) {
        guard !entries.isEmpty else { return (0, nil) }
        let list = arena.pointerArray(of: Kvraft__Raft__Entry.self, count: entries.count)
        for (i, entry) in entries.enumerated() { list[i] = entry.makeC(in: arena) }
        return (entries.count, list)
    }

    static func fromCList(_ count: Int, _ list: UnsafeMutablePointer<UnsafeMutablePointer<Kvraft__Raft__Entry>?>?) throws(WireError) -> [LogEntry] {
        guard count > 0, let list else { return [] }
        var entries: [LogEntry] = []
        entries.reserveCapacity(count)
        for i in 0..<count {
            guard let entry = list[i] else { throw .invalid("entry \(i) of \(count) is missing") }
            entries.append(LogEntry(c: entry))
        }
        return entries
    }
}

/// Kind of a Raft peer message (`kvraft.raft.MessageType`).
public struct PeerMessageType: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let none = PeerMessageType(rawValue: 0)
    public static let preVote = PeerMessageType(rawValue: 1)
    public static let preVoteResponse = PeerMessageType(rawValue: 2)
    public static let vote = PeerMessageType(rawValue: 3)
    public static let voteResponse = PeerMessageType(rawValue: 4)
    public static let append = PeerMessageType(rawValue: 5)
    public static let appendResponse = PeerMessageType(rawValue: 6)
    public static let heartbeat = PeerMessageType(rawValue: 7)
    public static let heartbeatResponse = PeerMessageType(rawValue: 8)
    public static let timeoutNow = PeerMessageType(rawValue: 9)
    public static let snapshot = PeerMessageType(rawValue: 10)
}

/// `kvraft.raft.PeerMessage`: every frame between raftds.
public struct PeerMessage: Hashable, Sendable {
    public var clusterID: UInt64
    public var from: UInt64
    public var to: UInt64
    public var type: PeerMessageType
    public var term: UInt64
    public var logTerm: UInt64
    public var index: UInt64
    public var commit: UInt64
    public var entries: [LogEntry]
    public var reject: Bool
    public var rejectHint: UInt64
    public var rejectTerm: UInt64
    /// On a vote: the candidate campaigns because the leader handed leadership to it.
    public var transfer: Bool
    /// On a snapshot message: one chunk of the leader's snapshot.
    public var snapshot: SnapshotChunk?
    /// On append and heartbeat responses: the sender's kvd is not attached.
    public var stateMachineDetached: Bool
    /// The sender's data-dir identity (0 when unknown).
    public var senderDataDirID: UInt64
    /// The data-dir identity the sender recorded for the recipient (0 when none).
    public var recipientDataDirID: UInt64
    /// On heartbeats: the sender's record of peers' data-dir ids, node id → data-dir id.
    public var knownDataDirs: [UInt64: UInt64]
    /// On heartbeats and their responses: the leader's read round.
    public var readRound: UInt64
    /// On snapshot chunks: the configuration at the snapshot's index (Raft's `Configuration.encoded`).
    public var snapshotConfiguration: [UInt8] = []
    /// On a leader's traffic: its raft address as the configuration records it ("" if none).
    public var senderAddress: String = ""

    public init(clusterID: UInt64 = 0, from: UInt64 = 0, to: UInt64 = 0, type: PeerMessageType = .none, term: UInt64 = 0,
                logTerm: UInt64 = 0, index: UInt64 = 0, commit: UInt64 = 0, entries: [LogEntry] = [],
                reject: Bool = false, rejectHint: UInt64 = 0, rejectTerm: UInt64 = 0, transfer: Bool = false,
                snapshot: SnapshotChunk? = nil, stateMachineDetached: Bool = false, senderDataDirID: UInt64 = 0,
                recipientDataDirID: UInt64 = 0, knownDataDirs: [UInt64: UInt64] = [:], readRound: UInt64 = 0) {
        self.clusterID = clusterID
        self.from = from
        self.to = to
        self.type = type
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
        self.senderDataDirID = senderDataDirID
        self.recipientDataDirID = recipientDataDirID
        self.knownDataDirs = knownDataDirs
        self.readRound = readRound
    }
}

extension PeerMessage: WireMessage {
    public func append(to out: inout [UInt8], framed: Bool) {
        let arena = CArena()
        let m = arena.make(Kvraft__Raft__PeerMessage.self)
        kvraft__raft__peer_message__init(m)
        m.pointee.cluster_id = clusterID
        m.pointee.from = from
        m.pointee.to = to
        m.pointee.type = Kvraft__Raft__MessageType(rawValue: numericCast(type.rawValue))
        m.pointee.term = term
        m.pointee.log_term = logTerm
        m.pointee.index = index
        m.pointee.commit = commit
        (m.pointee.n_entries, m.pointee.entries) = LogEntry.makeCList(entries, in: arena)
        m.pointee.reject = reject ? 1 : 0
        m.pointee.reject_hint = rejectHint
        m.pointee.reject_term = rejectTerm
        m.pointee.transfer = transfer ? 1 : 0
        m.pointee.snapshot = snapshot?.makeC(in: arena)
        m.pointee.state_machine_detached = stateMachineDetached ? 1 : 0
        m.pointee.sender_data_dir_id = senderDataDirID
        m.pointee.recipient_data_dir_id = recipientDataDirID
        let pairs = knownDataDirs.keys.sorted().flatMap { [$0, knownDataDirs[$0]!] }
        m.pointee.n_known_data_dirs = pairs.count
        m.pointee.known_data_dirs = arena.array(pairs)
        m.pointee.read_round = readRound
        m.pointee.snapshot_configuration = arena.bytes(snapshotConfiguration)
        if !senderAddress.isEmpty { m.pointee.sender_address = arena.string(senderAddress) }
        appendPacked(m, size: kvraft__raft__peer_message__get_packed_size, pack: kvraft__raft__peer_message__pack, framed: framed, to: &out)
    }

    public init(serialized body: ArraySlice<UInt8>) throws(WireError) {
        self = try withUnpacked(body, name: "PeerMessage", unpack: { kvraft__raft__peer_message__unpack(nil, $0, $1) },
                                free: { kvraft__raft__peer_message__free_unpacked($0, nil) }) { m throws(WireError) in
            var message = PeerMessage(clusterID: m.pointee.cluster_id, from: m.pointee.from, to: m.pointee.to,
                        type: PeerMessageType(rawValue: numericCast(m.pointee.type.rawValue)), term: m.pointee.term,
                        logTerm: m.pointee.log_term, index: m.pointee.index, commit: m.pointee.commit,
                        entries: try LogEntry.fromCList(m.pointee.n_entries, m.pointee.entries),
                        reject: m.pointee.reject != 0, rejectHint: m.pointee.reject_hint, rejectTerm: m.pointee.reject_term,
                        transfer: m.pointee.transfer != 0, snapshot: m.pointee.snapshot.map { SnapshotChunk(c: $0) },
                        stateMachineDetached: m.pointee.state_machine_detached != 0,
                        senderDataDirID: m.pointee.sender_data_dir_id, recipientDataDirID: m.pointee.recipient_data_dir_id,
                        knownDataDirs: try PeerMessage.decodeKnownDataDirs(m.pointee.n_known_data_dirs, m.pointee.known_data_dirs),
                        readRound: m.pointee.read_round)
            message.snapshotConfiguration = CValue.bytes(m.pointee.snapshot_configuration)
            message.senderAddress = CValue.string(m.pointee.sender_address)
            return message
        }
    }

    private static func decodeKnownDataDirs(_ count: Int, _ list: UnsafeMutablePointer<UInt64>?) throws(WireError) -> [UInt64: UInt64] {
        guard count > 0, let list else { return [:] }
        guard count % 2 == 0 else { throw .invalid("known_data_dirs holds \(count) values, not (node id, data-dir id) pairs") }
        var known: [UInt64: UInt64] = [:]
        for pair in 0..<(count / 2) { known[list[2 * pair]] = list[2 * pair + 1] }
        return known
    }
}
