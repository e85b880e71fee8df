import CProtobufC

/// `kvraft.MemberAction`.
public enum MemberAction: Int32, Hashable, Sendable {
    case list = 0
    case add = 1
    case promote = 2
    case remove = 3
}

/// `kvraft.MemberCommand`: what `kvctl member …` asks the leader to do.
public struct MemberCommand: Hashable, Sendable {
    public var action: MemberAction
    public var id: UInt64
    public var raftAddress: String
    public var kvdAddress: String
    public var learnerOnly: Bool
    public var force: Bool

    public init(action: MemberAction, id: UInt64 = 0, raftAddress: String = "", kvdAddress: String = "",
                learnerOnly: Bool = false, force: Bool = false) {
        self.action = action
        self.id = id
        self.raftAddress = raftAddress
        self.kvdAddress = kvdAddress
        self.learnerOnly = learnerOnly
        self.force = force
    }

    func makeC(in arena: CArena) -> UnsafeMutablePointer<Kvraft__MemberCommand> {
        let m = arena.make(Kvraft__MemberCommand.self)
        kvraft__member_command__init(m)
        m.pointee.action = Kvraft__MemberAction(rawValue: .init(truncatingIfNeeded: action.rawValue))
        m.pointee.id = id
        if !raftAddress.isEmpty { m.pointee.raft_address = arena.string(raftAddress) }
        if !kvdAddress.isEmpty { m.pointee.kvd_address = arena.string(kvdAddress) }
        m.pointee.learner_only = learnerOnly ? 1 : 0
        m.pointee.force = force ? 1 : 0
        return m
    }

    init(c m: UnsafeMutablePointer<Kvraft__MemberCommand>) {
        self.init(action: MemberAction(rawValue: Int32(truncatingIfNeeded: m.pointee.action.rawValue)) ?? .list,
                  id: m.pointee.id, raftAddress: CValue.string(m.pointee.raft_address),
                  kvdAddress: CValue.string(m.pointee.kvd_address), learnerOnly: m.pointee.learner_only != 0,
                  force: m.pointee.force != 0)
    }
}

/// `kvraft.Member`: one member as `kvctl member list` shows it.
public struct MemberInfo: Hashable, Sendable {
    public var id: UInt64
    public var raftAddress: String
    public var kvdAddress: String
    public var voter: Bool
    public var autoPromote: Bool
    public var matchIndex: UInt64
    public var reachable: Bool

    public init(id: UInt64, raftAddress: String = "", kvdAddress: String = "", voter: Bool = true, autoPromote: Bool = false,
                matchIndex: UInt64 = 0, reachable: Bool = false) {
        self.id = id
        self.raftAddress = raftAddress
        self.kvdAddress = kvdAddress
        self.voter = voter
        self.autoPromote = autoPromote
        self.matchIndex = matchIndex
        self.reachable = reachable
    }

    func makeC(in arena: CArena) -> UnsafeMutablePointer<Kvraft__Member> {
        let m = arena.make(Kvraft__Member.self)
        kvraft__member__init(m)
        m.pointee.id = id
        if !raftAddress.isEmpty { m.pointee.raft_address = arena.string(raftAddress) }
        if !kvdAddress.isEmpty { m.pointee.kvd_address = arena.string(kvdAddress) }
        m.pointee.voter = voter ? 1 : 0
        m.pointee.auto_promote = autoPromote ? 1 : 0
        m.pointee.match_index = matchIndex
        m.pointee.reachable = reachable ? 1 : 0
        return m
    }

    init(c m: UnsafeMutablePointer<Kvraft__Member>) {
        self.init(id: m.pointee.id, raftAddress: CValue.string(m.pointee.raft_address), kvdAddress: CValue.string(m.pointee.kvd_address),
                  voter: m.pointee.voter != 0, autoPromote: m.pointee.auto_promote != 0,
                  matchIndex: m.pointee.match_index, reachable: m.pointee.reachable != 0)
    }

    static func makeCList(_ members: [MemberInfo], in arena: CArena) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<Kvraft__Member>?>?) {
        guard !members.isEmpty else { return (0, nil) }
        let list = arena.pointerArray(of: Kvraft__Member.self, count: members.count)
        for (i, member) in members.enumerated() { list[i] = member.makeC(in: arena) }
        return (members.count, list)
    }

    static func fromCList(_ count: Int, _ list: UnsafeMutablePointer<UnsafeMutablePointer<Kvraft__Member>?>?) -> [MemberInfo] {
        guard let list else { return [] }
        return (0..<count).compactMap { list[$0].map { MemberInfo(c: $0) } }
    }
}

/// raftd's answer to a member command (`RaftStatus` with the member fields).
public struct MemberAnswer: Hashable, Sendable {
    public var ok: Bool
    public var error: String
    public var members: [MemberInfo]
    public var configurationIndex: UInt64
    /// The leader raftd knows (for WRONG_LEADER), 0 if none.
    public var leaderID: UInt64

    public init(ok: Bool, error: String = "", members: [MemberInfo] = [], configurationIndex: UInt64 = 0, leaderID: UInt64 = 0) {
        self.ok = ok
        self.error = error
        self.members = members
        self.configurationIndex = configurationIndex
        self.leaderID = leaderID
    }
}
