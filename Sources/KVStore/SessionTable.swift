import Wire

/// Per-client exactly-once bookkeeping, driven only by log time (`nowMs`, the state
/// machine's monotonic clock) and replicated limits, so that every replica keeps, expires
/// and evicts exactly the same sessions.
///
/// A session keeps the client's last seq, the status of its reply and whether it was a Get,
/// never a value: a retried write gets its status again, a retried Get is read again.
///
/// Sessions are kept in "activity order": a FIFO of touches, each touch appended with the
/// current log time. Log time never goes backwards, so the FIFO is sorted by
/// `lastActiveMs`, and its front is the least recently active session (ties broken by log
/// order: the one touched earlier comes first). A session touched again leaves a stale
/// entry behind; stale entries are skipped when they reach the front and swept out when
/// they outnumber live ones, so every operation is amortized O(1).
///
/// A session that is expired or evicted leaves a tombstone (client ID → log time of
/// removal and the session's last seq), itself bounded by age (`tombstoneTimeoutMs`) and
/// count (`maxTombstones`), oldest first. A client that comes back with a higher seq
/// reopens its session and its tombstone goes (its queue entry turns stale, like a
/// session's after a touch).
///
/// A snapshot lists the sessions in activity order and the tombstones oldest first
/// (`sessionRecords()`, `tombstoneRecords()`); `init(restoring:…)` rebuilds a table that
/// behaves identically, with fresh touch numbers and no stale entries. Touch numbers and
/// stale entries are bookkeeping, not state: `==` compares what is observable (limits,
/// sessions in activity order, tombstones in order), so a restored table equals its original.
struct SessionTable: Equatable, Sendable {
    struct Session: Equatable, Sendable {
        var lastSeq: UInt64
        /// The status of the reply to `lastSeq` (a value is never kept).
        var lastStatus: Status
        /// `lastSeq` was a Get: a retry of it is read again.
        var lastWasGet: Bool
        var lastActiveMs: UInt64
        /// Identifies this session's live entry in `activity`.
        var touch: UInt64
    }

    private struct Touch: Equatable, Sendable {
        var clientID: UInt64
        var touch: UInt64
    }

    private struct Tombstone: Equatable, Sendable {
        var clientID: UInt64
        var atMs: UInt64
        var lastSeq: UInt64
        /// Identifies this tombstone's live entry in `tombstoneOrder`.
        var burial: UInt64
    }

    private(set) var limits: SessionLimits
    private var maxSessions: Int
    private var maxTombstones: Int

    private(set) var sessions: [UInt64: Session] = [:]
    private var activity = FIFOQueue<Touch>()
    private var nextTouch: UInt64 = 0

    private var tombstones: [UInt64: Tombstone] = [:]
    private var tombstoneOrder = FIFOQueue<Tombstone>()
    private var nextBurial: UInt64 = 0

    init(limits: SessionLimits) {
        precondition(limits.problem == nil, "unusable session limits: \(limits.problem ?? "")")
        self.limits = limits
        maxSessions = Int(limits.maxSessions)
        maxTombstones = Int(limits.maxTombstones)
    }

    /// Rebuilds a table from a snapshot's sessions (least recently active first) and
    /// tombstones (oldest first), taken at log time `nowMs`. Throws if the records could
    /// not come from any table; the checks do not depend on the limits.
    ///
    /// Records beyond the count limits (which no table under these limits holds) go at once,
    /// exactly as the table enforces them when it grows: tombstones beyond `maxTombstones`
    /// are dropped oldest first, then sessions beyond `maxSessions` are evicted least
    /// recently active first into tombstones stamped `nowMs`. Timeouts are not applied here:
    /// as always, idle sessions and old tombstones go at the start of the next batch.
    init(restoring sessionRecords: [SessionRecord], tombstones tombstoneRecords: [TombstoneRecord], nowMs: UInt64,
         limits: SessionLimits) throws(SnapshotInconsistency) {
        self.init(limits: limits)
        try Self.check(sessionRecords, tombstoneRecords, nowMs: nowMs)
        for record in tombstoneRecords {
            bury(record.clientID, lastSeq: record.lastSeq, nowMs: record.atMs)
        }
        sessions.reserveCapacity(min(sessionRecords.count, maxSessions + 1))
        for record in sessionRecords {
            // Snapshots written before values stopped being kept: only a Get's reply has one.
            sessions[record.clientID] = Session(lastSeq: record.lastSeq, lastStatus: record.lastStatus,
                                                lastWasGet: record.lastWasGet || !record.lastValue.isEmpty,
                                                lastActiveMs: record.lastActiveMs, touch: enqueue(record.clientID))
            if sessions.count > maxSessions {
                evictLeastRecentlyActive(nowMs: nowMs)
            }
        }
    }

    /// The invariants every table keeps, checked on records from a snapshot.
    private static func check(_ sessionRecords: [SessionRecord], _ tombstoneRecords: [TombstoneRecord],
                              nowMs: UInt64) throws(SnapshotInconsistency) {
        var buried = Set<UInt64>(minimumCapacity: tombstoneRecords.count)
        var previousAtMs: UInt64 = 0
        for (i, record) in tombstoneRecords.enumerated() {
            let what = "tombstone \(i) (client \(record.clientID), removed at \(record.atMs) ms)"
            guard record.clientID != 0 else {
                throw SnapshotInconsistency("\(what) has client ID 0, which never has a session")
            }
            guard record.atMs >= previousAtMs else {
                throw SnapshotInconsistency("\(what) is older than the tombstone before it (\(previousAtMs) ms); tombstones must be listed oldest first")
            }
            guard record.atMs <= nowMs else {
                throw SnapshotInconsistency("\(what) is later than the snapshot's log time (\(nowMs) ms)")
            }
            guard buried.insert(record.clientID).inserted else {
                throw SnapshotInconsistency("\(what): client \(record.clientID) has two tombstones")
            }
            previousAtMs = record.atMs
        }
        var open = Set<UInt64>(minimumCapacity: sessionRecords.count)
        var previousActiveMs: UInt64 = 0
        for (i, record) in sessionRecords.enumerated() {
            let what = "session \(i) (client \(record.clientID), seq \(record.lastSeq), active at \(record.lastActiveMs) ms)"
            guard record.clientID != 0 else {
                throw SnapshotInconsistency("\(what) has client ID 0, which never has a session")
            }
            guard record.lastSeq != 0 else {
                throw SnapshotInconsistency("\(what) has seq 0, which never opens a session")
            }
            guard record.lastActiveMs >= previousActiveMs else {
                throw SnapshotInconsistency("\(what) was active before the session listed before it (\(previousActiveMs) ms); sessions must be listed least recently active first")
            }
            guard record.lastActiveMs <= nowMs else {
                throw SnapshotInconsistency("\(what) is later than the snapshot's log time (\(nowMs) ms)")
            }
            guard open.insert(record.clientID).inserted else {
                throw SnapshotInconsistency("\(what): client \(record.clientID) has two sessions")
            }
            guard !buried.contains(record.clientID) else {
                throw SnapshotInconsistency("\(what): client \(record.clientID) also has a tombstone")
            }
            // The replies a session can store: what applying a command returns.
            guard record.lastStatus == .ok || record.lastStatus == .noKey || record.lastStatus == .badRequest else {
                throw SnapshotInconsistency("\(what) stores reply \(record.lastStatus), which applying a command never returns")
            }
            guard record.lastStatus == .ok || record.lastValue.isEmpty else {
                throw SnapshotInconsistency("\(what) stores reply \(record.lastStatus) with a \(record.lastValue.count)-byte value; only OK carries a value")
            }
            guard !record.lastWasGet || record.lastStatus != .badRequest else {
                throw SnapshotInconsistency("\(what) stores reply BAD_REQUEST for a Get, which a Get never gets")
            }
            previousActiveMs = record.lastActiveMs
        }
    }

    /// The sessions in activity order: least recently active first, ties in log order.
    func sessionRecords() -> [SessionRecord] {
        var records: [SessionRecord] = []
        records.reserveCapacity(sessions.count)
        for entry in activity.elements {
            guard let session = sessions[entry.clientID], session.touch == entry.touch else { continue }  // stale
            records.append(SessionRecord(clientID: entry.clientID, lastSeq: session.lastSeq, lastStatus: session.lastStatus,
                                         lastActiveMs: session.lastActiveMs, lastWasGet: session.lastWasGet))
        }
        assert(records.count == sessions.count, "\(sessions.count) sessions but \(records.count) live activity entries")
        return records
    }

    /// The tombstones, oldest first.
    func tombstoneRecords() -> [TombstoneRecord] {
        var records: [TombstoneRecord] = []
        records.reserveCapacity(tombstones.count)
        for entry in tombstoneOrder.elements where isLive(entry) {
            records.append(TombstoneRecord(clientID: entry.clientID, atMs: entry.atMs, lastSeq: entry.lastSeq))
        }
        assert(records.count == tombstones.count, "\(tombstones.count) tombstones but \(records.count) live queue entries")
        return records
    }

    /// Same limits, same sessions in the same activity order, same tombstones in the same
    /// order: the tables behave identically, whatever their touch numbers and stale entries.
    static func == (lhs: SessionTable, rhs: SessionTable) -> Bool {
        lhs.limits == rhs.limits
            && lhs.sessions.count == rhs.sessions.count && lhs.tombstones.count == rhs.tombstones.count
            && lhs.tombstoneRecords() == rhs.tombstoneRecords() && lhs.sessionRecords() == rhs.sessionRecords()
    }

    var count: Int { sessions.count }
    var tombstoneCount: Int { tombstones.count }
    /// Entries in the activity FIFO, live and stale (bounded by 2 × count + 65).
    var activityBacklog: Int { activity.count }
    /// Entries in the tombstone FIFO, live and stale (bounded by 2 × tombstoneCount + 65).
    var tombstoneBacklog: Int { tombstoneOrder.count }

    subscript(clientID: UInt64) -> Session? { sessions[clientID] }

    /// The last seq of a removed client's session, if it is remembered (0: unknown, from a
    /// snapshot written before it was kept).
    func tombstonedLastSeq(_ clientID: UInt64) -> UInt64? { tombstones[clientID]?.lastSeq }

    /// Replaces the limits (a limits entry applied at log time `nowMs`). Smaller count limits
    /// take effect at once: tombstones beyond `maxTombstones` go oldest first, then sessions
    /// beyond `maxSessions` are evicted least recently active first into tombstones. Shorter
    /// timeouts act at the next `expire`.
    mutating func setLimits(_ new: SessionLimits, nowMs: UInt64) {
        precondition(new.problem == nil, "unusable session limits: \(new.problem ?? "")")
        limits = new
        maxSessions = Int(new.maxSessions)
        maxTombstones = Int(new.maxTombstones)
        while tombstones.count > maxTombstones {
            dropOldestTombstone()
        }
        while sessions.count > maxSessions {
            evictLeastRecentlyActive(nowMs: nowMs)
        }
    }

    /// Removes sessions idle for more than `sessionTimeoutMs` (leaving tombstones), then
    /// tombstones older than `tombstoneTimeoutMs`. Amortized O(1) per removed entry.
    mutating func expire(nowMs: UInt64) {
        while let front = activity.first {
            guard let session = sessions[front.clientID], session.touch == front.touch else {
                activity.removeFirst()  // stale: that session was touched again, or is gone
                continue
            }
            assert(session.lastActiveMs <= nowMs, "log time went backwards")
            guard nowMs - session.lastActiveMs > limits.sessionTimeoutMs else { break }
            activity.removeFirst()
            sessions[front.clientID] = nil
            bury(front.clientID, lastSeq: session.lastSeq, nowMs: nowMs)
        }
        while let front = tombstoneOrder.first {
            guard isLive(front) else {
                tombstoneOrder.removeFirst()  // stale: that client came back
                continue
            }
            guard nowMs - front.atMs > limits.tombstoneTimeoutMs else { break }
            tombstoneOrder.removeFirst()
            tombstones[front.clientID] = nil
        }
    }

    /// Marks an existing session active at `nowMs` (a retry of its last request).
    mutating func touch(_ clientID: UInt64, nowMs: UInt64) {
        guard var session = sessions[clientID] else { preconditionFailure("touch of unknown client \(clientID)") }
        session.lastActiveMs = nowMs
        session.touch = enqueue(clientID)
        sessions[clientID] = session
    }

    /// Stores the reply status to `seq`, opening a session for a new client or for a removed
    /// one coming back with a higher seq (its tombstone goes), evicting the least recently
    /// active session into a tombstone if the table is full.
    mutating func record(_ clientID: UInt64, seq: UInt64, status: Status, wasGet: Bool, nowMs: UInt64) {
        if sessions[clientID] == nil {
            if let tombstone = tombstones.removeValue(forKey: clientID) {
                precondition(tombstone.lastSeq != 0 && seq > tombstone.lastSeq,
                             "client \(clientID) reopened at seq \(seq), at or below its tombstone's last seq \(tombstone.lastSeq)")
            }
            while sessions.count >= maxSessions {
                evictLeastRecentlyActive(nowMs: nowMs)
            }
        }
        sessions[clientID] = Session(lastSeq: seq, lastStatus: status, lastWasGet: wasGet, lastActiveMs: nowMs,
                                     touch: enqueue(clientID))
    }

    private mutating func evictLeastRecentlyActive(nowMs: UInt64) {
        while let front = activity.first {
            activity.removeFirst()
            if let session = sessions[front.clientID], session.touch == front.touch {
                sessions[front.clientID] = nil
                bury(front.clientID, lastSeq: session.lastSeq, nowMs: nowMs)
                return
            }
        }
        preconditionFailure("session table holds \(sessions.count) sessions but no live activity entry")
    }

    private func isLive(_ entry: Tombstone) -> Bool {
        tombstones[entry.clientID]?.burial == entry.burial
    }

    private mutating func dropOldestTombstone() {
        while let oldest = tombstoneOrder.first {
            tombstoneOrder.removeFirst()
            if isLive(oldest) {
                tombstones[oldest.clientID] = nil
                return
            }
        }
        preconditionFailure("\(tombstones.count) tombstones but no live queue entry")
    }

    private mutating func bury(_ clientID: UInt64, lastSeq: UInt64, nowMs: UInt64) {
        guard maxTombstones > 0 else { return }
        while tombstones.count >= maxTombstones {
            dropOldestTombstone()
        }
        assert(tombstones[clientID] == nil, "client \(clientID) buried twice")
        let tombstone = Tombstone(clientID: clientID, atMs: nowMs, lastSeq: lastSeq, burial: nextBurial)
        nextBurial += 1
        tombstones[clientID] = tombstone
        tombstoneOrder.append(tombstone)
        if tombstoneOrder.count > 2 * tombstones.count + 64 {
            let live = tombstones
            tombstoneOrder.retain { live[$0.clientID]?.burial == $0.burial }
        }
    }

    /// Appends a fresh activity entry for `clientID` and returns its touch number; sweeps
    /// stale entries once they outnumber live sessions.
    private mutating func enqueue(_ clientID: UInt64) -> UInt64 {
        let touch = nextTouch
        nextTouch += 1
        activity.append(Touch(clientID: clientID, touch: touch))
        if activity.count > 2 * sessions.count + 64 {
            let live = sessions
            activity.retain { entry in
                // The entry being added is live even though `sessions` does not yet hold it.
                entry.touch == touch || live[entry.clientID]?.touch == entry.touch
            }
        }
        return touch
    }
}
