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
