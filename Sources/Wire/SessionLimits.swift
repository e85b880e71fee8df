import CProtobufC

/// The limits of the state machine's session table (`kvraft.state.SessionLimits`).
///
/// They decide which commands apply, so they are replicated state, not configuration: a
/// log entry sets them (`CommandBatch.setLimits`), snapshots carry them, and before any
/// such entry every replica uses `defaults`. A kvd's flags only say what its leader should
/// propose.
public struct SessionLimits: Hashable, Sendable, CustomStringConvertible {
    /// A session idle for longer than this much log time expires.
    public var sessionTimeoutMs: UInt64
    /// At most this many sessions are kept (at least 1); the least recently active go first.
    public var maxSessions: UInt64
    /// How long, in log time, an expired or evicted client is remembered.
    public var tombstoneTimeoutMs: UInt64
    /// At most this many removed clients are remembered (0: none).
    public var maxTombstones: UInt64

    public init(sessionTimeoutMs: UInt64, maxSessions: UInt64, tombstoneTimeoutMs: UInt64, maxTombstones: UInt64) {
        self.sessionTimeoutMs = sessionTimeoutMs
        self.maxSessions = maxSessions
        self.tombstoneTimeoutMs = tombstoneTimeoutMs
        self.maxTombstones = maxTombstones
    }

    /// What holds before any limits entry: 1 h, a million sessions, 24 h, a million tombstones.
    /// Fixed forever: replicas that never saw a limits entry must agree on them.
    public static let defaults = SessionLimits(sessionTimeoutMs: 3_600_000, maxSessions: 1_000_000,
                                               tombstoneTimeoutMs: 86_400_000, maxTombstones: 1_000_000)

    /// Largest count limit accepted (a table that large would not fit in memory anyway).
    public static let maxCount: UInt64 = 1 << 32

    /// Why these limits cannot be used, or nil if they can: at least one session, and counts
    /// no larger than `maxCount`.
    public var problem: String? {
        if maxSessions < 1 { return "max_sessions is 0; at least 1 session must be kept" }
        if maxSessions > Self.maxCount { return "max_sessions \(maxSessions) is over \(Self.maxCount)" }
        if maxTombstones > Self.maxCount { return "max_tombstones \(maxTombstones) is over \(Self.maxCount)" }
        return nil
    }

    public var description: String {
        "session timeout \(sessionTimeoutMs) ms, \(maxSessions) sessions, tombstone timeout \(tombstoneTimeoutMs) ms, \(maxTombstones) tombstones"
    }
}

extension SessionLimits {
    func makeC(in arena: CArena) -> UnsafeMutablePointer<Kvraft__State__SessionLimits> {
        let m = arena.make(Kvraft__State__SessionLimits.self)
        kvraft__state__session_limits__init(m)
        fill(m)
        return m
    }

    func fill(_ m: UnsafeMutablePointer<Kvraft__State__SessionLimits>) {
        m.pointee.session_timeout_ms = sessionTimeoutMs
        m.pointee.max_sessions = maxSessions
        m.pointee.tombstone_timeout_ms = tombstoneTimeoutMs
        m.pointee.max_tombstones = maxTombstones
    }

    init(c m: UnsafePointer<Kvraft__State__SessionLimits>) {
        self.init(sessionTimeoutMs: m.pointee.session_timeout_ms, maxSessions: m.pointee.max_sessions,
                  tombstoneTimeoutMs: m.pointee.tombstone_timeout_ms, maxTombstones: m.pointee.max_tombstones)
    }
}
