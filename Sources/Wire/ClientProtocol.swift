/// Operation of a client request (`kvraft.Op`). A struct rather than an enum so that a
/// value outside the schema survives decoding and can be refused with BAD_REQUEST.
public struct Op: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let get = Op(rawValue: 0)
    public static let put = Op(rawValue: 1)
    public static let append = Op(rawValue: 2)
    public static let delete = Op(rawValue: 3)
    public static let status = Op(rawValue: 4)
    public static let member = Op(rawValue: 5)

    public var isKnown: Bool { (0...5).contains(rawValue) }

    public var description: String {
        switch self {
        case .get: "get"
        case .put: "put"
        case .append: "append"
        case .delete: "delete"
        case .status: "status"
        case .member: "member"
        default: "op(\(rawValue))"
        }
    }
}

/// Outcome of a client request (`kvraft.Status`).
public struct Status: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let ok = Status(rawValue: 0)
    public static let noKey = Status(rawValue: 1)
    public static let wrongLeader = Status(rawValue: 2)
    public static let timeout = Status(rawValue: 3)
    public static let badRequest = Status(rawValue: 4)
    public static let unavailable = Status(rawValue: 5)
    public static let sessionExpired = Status(rawValue: 6)

    public var description: String {
        switch self {
        case .ok: "OK"
        case .noKey: "NO_KEY"
        case .wrongLeader: "WRONG_LEADER"
        case .timeout: "TIMEOUT"
        case .badRequest: "BAD_REQUEST"
        case .unavailable: "UNAVAILABLE"
        case .sessionExpired: "SESSION_EXPIRED"
        default: "STATUS(\(rawValue))"
        }
    }

    /// The operation was applied, or certainly was not; anything else leaves the outcome unknown.
    public var isDefinite: Bool { self == .ok || self == .noKey || self == .badRequest || self == .sessionExpired }
}

/// `kvraft.KvRequest`.
public struct KvRequest: Hashable, Sendable {
    public var requestID: UInt64
    public var clientID: UInt64
    public var seq: UInt64
    public var op: Op
    public var key: [UInt8]
    public var value: [UInt8]
    /// With `.status` to a kvd: stay subscribed to its leadership news on this connection.
    public var watchLeadership: Bool
    /// With `.member`: the membership command.
    public var member: MemberCommand?

    public init(requestID: UInt64 = 0, clientID: UInt64 = 0, seq: UInt64 = 0, op: Op = .get, key: [UInt8] = [], value: [UInt8] = [],
                watchLeadership: Bool = false, member: MemberCommand? = nil) {
        self.member = member
        self.requestID = requestID
        self.clientID = clientID
        self.seq = seq
        self.op = op
        self.key = key
        self.value = value
        self.watchLeadership = watchLeadership
    }
}

/// `kvraft.NodeStatus`: one node as seen by `kvctl status`.
public struct NodeStatus: Hashable, Sendable {
    public var nodeID: UInt64
    public var reachable: Bool
    public var role: String
    public var term: UInt64
    public var leaderID: UInt64
    public var commitIndex: UInt64
    public var appliedIndex: UInt64
    public var address: String
    public var error: String
    /// raftd's log fdatasyncs since it started.
    public var fsyncs: UInt64
    public var lastIndex: UInt64
    /// Index of raftd's latest snapshot: the log before it is compacted away.
    public var snapshotIndex: UInt64
    /// raftd's read mode ("index", "lease", "log"), "" when unknown.
    public var readMode: String
    /// The configuration in force at this node (empty when unknown).
    public var members: [MemberInfo] = []

    public init(nodeID: UInt64 = 0, reachable: Bool = false, role: String = "", term: UInt64 = 0, leaderID: UInt64 = 0,
                commitIndex: UInt64 = 0, appliedIndex: UInt64 = 0, address: String = "", error: String = "",
                fsyncs: UInt64 = 0, lastIndex: UInt64 = 0, snapshotIndex: UInt64 = 0, readMode: String = "") {
        self.nodeID = nodeID
        self.reachable = reachable
        self.role = role
        self.term = term
        self.leaderID = leaderID
        self.commitIndex = commitIndex
        self.appliedIndex = appliedIndex
        self.address = address
        self.error = error
        self.fsyncs = fsyncs
        self.lastIndex = lastIndex
        self.snapshotIndex = snapshotIndex
        self.readMode = readMode
    }
}

/// `kvraft.KvResponse`.
public struct KvResponse: Hashable, Sendable {
    public var requestID: UInt64
    public var status: Status
    public var value: [UInt8]
    public var leaderHint: String
    public var message: String
    public var nodes: [NodeStatus]
    /// The term in which `leaderHint`'s node leads (on an OK reply from a kvd: the term in which
    /// the answering node led); 0 if unknown.
    public var leaderTerm: UInt64
    /// `.member` answers: the configuration in force at the leader, and the log index of the
    /// change made (or of the configuration listed).
    public var members: [MemberInfo] = []
    public var configurationIndex: UInt64 = 0

    public init(requestID: UInt64 = 0, status: Status = .ok, value: [UInt8] = [], leaderHint: String = "", message: String = "",
                nodes: [NodeStatus] = [], leaderTerm: UInt64 = 0) {
        self.requestID = requestID
        self.status = status
        self.value = value
        self.leaderHint = leaderHint
        self.message = message
        self.nodes = nodes
        self.leaderTerm = leaderTerm
    }
}
