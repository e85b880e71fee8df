import Wire

/// Per-client exactly-once bookkeeping, driven only by log time (`nowMs`, the state
/// machine's monotonic clock), so that every replica keeps, expires and evicts exactly the
/// same sessions.
///
/// Sessions are kept in "activity order": a FIFO of touches, each touch appended with the
/// current log time. Log time never goes backwards, so the FIFO is sorted by
/// `lastActiveMs`, and its front is the least recently active session (ties broken by log
/// order: the one touched earlier comes first). A session touched again leaves a stale
/// entry behind; stale entries are skipped when they reach the front and swept out when
/// they outnumber live ones, so every operation is amortized O(1).
///
/// A session that is expired or evicted leaves a tombstone (client ID → log time of
/// removal), itself bounded by age (`tombstoneTimeoutMs`) and count (`maxTombstones`),
/// oldest first.
///
/// A snapshot lists the sessions in activity order and the tombstones oldest first
/// (`sessionRecords()`, `tombstoneRecords()`); `init(restoring:…)` rebuilds a table that
/// behaves identically, with fresh touch numbers and no stale entries. Touch numbers and
/// stale entries are bookkeeping, not state: `==` compares what is observable (limits,
/// sessions in activity order, tombstones in order), so a restored table equals its original.
struct SessionTable: Equatable, Sendable {
    struct Session: Equatable, Sendable {
        var lastSeq: UInt64
        var lastResult: CommandResult
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
    }

    let sessionTimeoutMs: UInt64
    let maxSessions: Int
    let tombstoneTimeoutMs: UInt64
    let maxTombstones: Int

    private(set) var sessions: [UInt64: Session] = [:]
    private var activity = FIFOQueue<Touch>()
    private var nextTouch: UInt64 = 0

    private var tombstones: [UInt64: UInt64] = [:]
    private var tombstoneOrder = FIFOQueue<Tombstone>()

    init(sessionTimeoutMs: UInt64, maxSessions: Int, tombstoneTimeoutMs: UInt64, maxTombstones: Int) {
        precondition(maxSessions >= 1, "maxSessions must be at least 1, got \(maxSessions)")
        precondition(maxTombstones >= 0, "maxTombstones must not be negative, got \(maxTombstones)")
        self.sessionTimeoutMs = sessionTimeoutMs
        self.maxSessions = maxSessions
        self.tombstoneTimeoutMs = tombstoneTimeoutMs
        self.maxTombstones = maxTombstones
    }

    /// Rebuilds a table from a snapshot's sessions (least recently active first) and
    /// tombstones (oldest first), taken at log time `nowMs`. Throws if the records could
    /// not come from any table; the checks do not depend on the limits.
    ///
    /// Limits smaller than the ones the snapshot was taken under are enforced at once,
    /// exactly as the table enforces them when it grows: tombstones beyond `maxTombstones`
    /// are dropped oldest first, then sessions beyond `maxSessions` are evicted least
    /// recently active first into tombstones stamped `nowMs` (which may push out more of
    /// the oldest tombstones). Timeouts are not applied here: as always, idle sessions and
    /// old tombstones go at the start of the next batch, before its commands run.
    init(restoring sessionRecords: [SessionRecord], tombstones tombstoneRecords: [TombstoneRecord], nowMs: UInt64,
         sessionTimeoutMs: UInt64, maxSessions: Int, tombstoneTimeoutMs: UInt64, maxTombstones: Int) throws(SnapshotInconsistency) {
        self.init(sessionTimeoutMs: sessionTimeoutMs, maxSessions: maxSessions,
                  tombstoneTimeoutMs: tombstoneTimeoutMs, maxTombstones: maxTombstones)
        try Self.check(sessionRecords, tombstoneRecords, nowMs: nowMs)
        for record in tombstoneRecords {
            bury(record.clientID, nowMs: record.atMs)
        }
        sessions.reserveCapacity(min(sessionRecords.count, maxSessions + 1))
        for record in sessionRecords {
            sessions[record.clientID] = Session(lastSeq: record.lastSeq,
                                                lastResult: CommandResult(status: record.lastStatus, value: record.lastValue),
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
            previousActiveMs = record.lastActiveMs
        }
    }

    /// The sessions in activity order: least recently active first, ties in log order.
    func sessionRecords() -> [SessionRecord] {
        var records: [SessionRecord] = []
        records.reserveCapacity(sessions.count)
        for entry in activity.elements {
            guard let session = sessions[entry.clientID], session.touch == entry.touch else { continue }  // stale
            records.append(SessionRecord(clientID: entry.clientID, lastSeq: session.lastSeq,
                                         lastStatus: session.lastResult.status, lastValue: session.lastResult.value,
                                         lastActiveMs: session.lastActiveMs))
        }
        assert(records.count == sessions.count, "\(sessions.count) sessions but \(records.count) live activity entries")
        return records
    }

    /// The tombstones, oldest first.
    func tombstoneRecords() -> [TombstoneRecord] {
        tombstoneOrder.elements.map { TombstoneRecord(clientID: $0.clientID, atMs: $0.atMs) }
    }

    /// Same limits, same sessions in the same activity order, same tombstones in the same
    /// order: the tables behave identically, whatever their touch numbers and stale entries.
    static func == (lhs: SessionTable, rhs: SessionTable) -> Bool {
        lhs.sessionTimeoutMs == rhs.sessionTimeoutMs && lhs.maxSessions == rhs.maxSessions
            && lhs.tombstoneTimeoutMs == rhs.tombstoneTimeoutMs && lhs.maxTombstones == rhs.maxTombstones
            && lhs.sessions.count == rhs.sessions.count && lhs.tombstoneOrder == rhs.tombstoneOrder
            && lhs.sessionRecords() == rhs.sessionRecords()
    }

    var count: Int { sessions.count }
    var tombstoneCount: Int { tombstones.count }
    /// Entries in the activity FIFO, live and stale (bounded by 2 × count + 65).
    var activityBacklog: Int { activity.count }

    subscript(clientID: UInt64) -> Session? { sessions[clientID] }

    func isTombstoned(_ clientID: UInt64) -> Bool { tombstones[clientID] != nil }

    /// Removes sessions idle for more than `sessionTimeoutMs` (leaving tombstones), then
    /// tombstones older than `tombstoneTimeoutMs`. Amortized O(1) per removed entry.
    mutating func expire(nowMs: UInt64) {
        while let front = activity.first {
            guard let session = sessions[front.clientID], session.touch == front.touch else {
                activity.removeFirst()  // stale: that session was touched again, or is gone
                continue
            }
            assert(session.lastActiveMs <= nowMs, "log time went backwards")
            guard nowMs - session.lastActiveMs > sessionTimeoutMs else { break }
            activity.removeFirst()
            sessions[front.clientID] = nil
            bury(front.clientID, nowMs: nowMs)
        }
        while let front = tombstoneOrder.first, nowMs - front.atMs > tombstoneTimeoutMs {
            tombstoneOrder.removeFirst()
            assert(tombstones[front.clientID] == front.atMs, "tombstone index out of step with its queue")
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

    /// Stores the reply to `seq`, opening a session for a new client (evicting the least
    /// recently active one into a tombstone if the table is full).
    mutating func record(_ clientID: UInt64, seq: UInt64, result: CommandResult, nowMs: UInt64) {
        if sessions[clientID] == nil {
            precondition(!isTombstoned(clientID), "client \(clientID) is tombstoned; it may not open a session")
            while sessions.count >= maxSessions {
                evictLeastRecentlyActive(nowMs: nowMs)
            }
        }
        sessions[clientID] = Session(lastSeq: seq, lastResult: result, lastActiveMs: nowMs, touch: enqueue(clientID))
    }

    private mutating func evictLeastRecentlyActive(nowMs: UInt64) {
        while let front = activity.first {
            activity.removeFirst()
            if let session = sessions[front.clientID], session.touch == front.touch {
                sessions[front.clientID] = nil
                bury(front.clientID, nowMs: nowMs)
                return
            }
        }
        preconditionFailure("session table holds \(sessions.count) sessions but no live activity entry")
    }

    private mutating func bury(_ clientID: UInt64, nowMs: UInt64) {
        guard maxTombstones > 0 else { return }
        while tombstones.count >= maxTombstones, let oldest = tombstoneOrder.first {
            tombstoneOrder.removeFirst()
            tombstones[oldest.clientID] = nil
        }
        assert(tombstones[clientID] == nil, "client \(clientID) buried twice")
        tombstones[clientID] = nowMs
        tombstoneOrder.append(Tombstone(clientID: clientID, atMs: nowMs))
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
