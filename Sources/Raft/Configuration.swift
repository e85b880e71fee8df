/// One member of the cluster as the configuration records it.
///
/// The core uses only `id` and `role`; the addresses are carried for the shells (raftd dials
/// `raftAddress`, gateways learn `kvdAddress`), so that the whole membership lives in the log
/// and in snapshots, never only in flags.
public struct Member: Sendable, Hashable {
    public enum Role: UInt8, Sendable, Hashable {
        /// Counts in every quorum (elections, commit, read rounds, check quorum).
        case voter = 0
        /// Receives the log but counts in no quorum and never campaigns.
        case learner = 1
    }

    public var id: UInt64
    public var role: Role
    /// A learner the leader promotes on its own once its log is within `RaftConfig.autoPromoteLag`
    /// entries of the leader's (`kvctl member add` without `--learner`).
    public var autoPromote: Bool
    public var raftAddress: String
    public var kvdAddress: String

    public init(id: UInt64, role: Role, autoPromote: Bool = false, raftAddress: String = "", kvdAddress: String = "") {
        self.id = id
        self.role = role
        self.autoPromote = autoPromote
        self.raftAddress = raftAddress
        self.kvdAddress = kvdAddress
    }

    public var isVoter: Bool { role == .voter }
}

/// The cluster's membership: who votes, who only learns. Lives in `.config` log entries (each
/// holds the whole configuration, not a delta) and in snapshots; a node uses the latest one in
/// its log, committed or not (Raft thesis §4.1: a configuration takes effect when appended).
public struct Configuration: Sendable, Hashable {
    /// Ascending by id, no duplicates.
    public private(set) var members: [Member]

    public init(members: [Member] = []) {
        self.members = members.sorted { $0.id < $1.id }
        precondition(Set(self.members.map(\.id)).count == self.members.count,
                     "raft configuration: duplicate member ids in \(members.map(\.id))")
        precondition(!self.members.contains { $0.id == 0 }, "raft configuration: member id 0 is reserved for 'no node'")
    }

    /// Every id a voter.
    public init(voters: [UInt64]) {
        self.init(members: voters.map { Member(id: $0, role: .voter) })
    }

    public var voters: [UInt64] { members.filter(\.isVoter).map(\.id) }
    public var learners: [UInt64] { members.filter { !$0.isVoter }.map(\.id) }
    public var ids: [UInt64] { members.map(\.id) }
    public func member(_ id: UInt64) -> Member? { members.first { $0.id == id } }
    public func isVoter(_ id: UInt64) -> Bool { member(id)?.isVoter ?? false }
    /// Votes needed for a majority of the voters (1 for an empty set, which can elect nobody:
    /// a node that is not a voter never campaigns).
    public var quorum: Int { voters.count / 2 + 1 }

    /// The configuration after `change`, or why it cannot be made. Each change moves one
    /// server in or out of the voters, so any majority of the old voters overlaps any majority
    /// of the new ones (thesis §4.1): no two leaders can be elected in one term across it.
    public func applying(_ change: ConfigChange) -> Result<Configuration, ConfigChangeError> {
        var updated = members
        switch change {
        case .addLearner(var member):
            guard member.id != 0 else { return .failure(.invalid("id 0 is reserved")) }
            guard self.member(member.id) == nil else {
                return .failure(.invalid("node \(member.id) is already a member (\(self.member(member.id)!.isVoter ? "voter" : "learner"))"))
            }
            member.role = .learner
            updated.append(member)
        case .promote(let id):
            guard let position = updated.firstIndex(where: { $0.id == id }) else {
                return .failure(.invalid("node \(id) is not a member"))
            }
            guard !updated[position].isVoter else { return .failure(.invalid("node \(id) is already a voter")) }
            updated[position].role = .voter
            updated[position].autoPromote = false
        case .remove(let id):
            guard let position = updated.firstIndex(where: { $0.id == id }) else {
                return .failure(.invalid("node \(id) is not a member"))
            }
            if updated[position].isVoter && voters.count == 1 {
                return .failure(.invalid("node \(id) is the last voter; add and promote another node first"))
            }
            updated.remove(at: position)
        case .update(let member):
            guard let position = updated.firstIndex(where: { $0.id == member.id }) else {
                return .failure(.invalid("node \(member.id) is not a member"))
            }
            guard updated[position].role == member.role else {
                return .failure(.invalid("an update must not change node \(member.id)'s role; promote or remove it"))
            }
            updated[position] = member
        }
        return .success(Configuration(members: updated))
    }
}

/// One membership change, proposed with `RaftNode.proposeConfigChange`.
public enum ConfigChange: Sendable, Hashable {
    /// A new member, as a learner (its `role` is ignored).
    case addLearner(Member)
    /// A learner becomes a voter.
    case promote(UInt64)
    /// A voter or learner leaves.
    case remove(UInt64)
    /// A member's addresses or auto-promotion change; its role must not.
    case update(Member)
}

public enum ConfigChangeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The change makes no sense against the current configuration.
    case invalid(String)
    /// Another change is appended but not committed yet: one at a time.
    case changeInProgress(index: UInt64)
    /// This leader has not committed an entry of its own term yet (Ongaro's 2015 fix to the
    /// single-server change: a new leader could otherwise append a change on top of an
    /// uncommitted one of an earlier term, whose majorities need not overlap its own).
    case ownTermNotCommitted
    /// A leadership transfer is under way.
    case transferring
    case notLeader(leader: UInt64)

    public var description: String {
        switch self {
        case .invalid(let why): why
        case .changeInProgress(let index): "another membership change (log index \(index)) is not committed yet; retry when it is"
        case .ownTermNotCommitted: "the leader was just elected and has not committed an entry of its term yet; retry shortly"
        case .transferring: "the leader is handing leadership over; retry at the new leader"
        case .notLeader(let leader): leader == 0 ? "not the leader, and no leader is known" : "not the leader; node \(leader) leads"
        }
    }
}

// MARK: Encoding

extension Configuration {
    static let encodingVersion: UInt8 = 1

    /// A self-contained binary form, the data of `.config` entries and of snapshots'
    /// configurations: version u8, count u32, then per member id u64, role u8, flags u8
    /// (bit 0: auto-promote), raft address and kvd address each as u16 length + UTF-8.
    /// Little-endian.
    public var encoded: [UInt8] {
        var bytes: [UInt8] = [Self.encodingVersion]
        append(UInt64(members.count), bytes: 4, to: &bytes)
        for member in members {
            append(member.id, bytes: 8, to: &bytes)
            bytes.append(member.role.rawValue)
            bytes.append(member.autoPromote ? 1 : 0)
            for address in [member.raftAddress, member.kvdAddress] {
                let utf8 = Array(address.utf8.prefix(Int(UInt16.max)))
                append(UInt64(utf8.count), bytes: 2, to: &bytes)
                bytes.append(contentsOf: utf8)
            }
        }
        return bytes
    }

    /// Decodes `encoded`; nil when the bytes are not a configuration this build reads.
    public init?(encoded bytes: [UInt8]) {
        var reader = ByteReader(bytes: bytes)
        guard reader.read(1) == UInt64(Self.encodingVersion), let count = reader.read(4), count <= 10_000 else { return nil }
        var members: [Member] = []
        for _ in 0..<count {
            guard let id = reader.read(8), id != 0, let roleByte = reader.read(1),
                  let role = Member.Role(rawValue: UInt8(roleByte)), let flags = reader.read(1),
                  let raft = reader.readString(), let kvd = reader.readString() else { return nil }
            members.append(Member(id: id, role: role, autoPromote: flags & 1 != 0, raftAddress: raft, kvdAddress: kvd))
        }
        guard reader.atEnd, Set(members.map(\.id)).count == members.count else { return nil }
        self.init(members: members)
    }

    private func append(_ value: UInt64, bytes count: Int, to bytes: inout [UInt8]) {
        for shift in 0..<count { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(shift)))) }
    }
}

private struct ByteReader {
    let bytes: [UInt8]
    var position = 0

    var atEnd: Bool { position == bytes.count }

    mutating func read(_ count: Int) -> UInt64? {
        guard bytes.count - position >= count else { return nil }
        var value: UInt64 = 0
        for shift in 0..<count { value |= UInt64(bytes[position + shift]) << (8 * UInt64(shift)) }
        position += count
        return value
    }

    mutating func readString() -> String? {
        guard let length = read(2), bytes.count - position >= Int(length) else { return nil }
        let text = String(decoding: bytes[position..<position + Int(length)], as: UTF8.self)
        position += Int(length)
        return text
    }
}

extension Configuration: CustomStringConvertible {
    public var description: String {
        "voters \(voters)" + (learners.isEmpty ? "" : " learners \(learners)")
    }
}
