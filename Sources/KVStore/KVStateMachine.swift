import Wire

/// The deterministic replicated state machine every kvd applies in log order: the
/// key/value map and the client session table.
///
/// It does no I/O and reads no clock: its only inputs are the committed log entries, so
/// replicas fed the same entries hold the same state and compute the same replies. Log
/// time is the leader's wall clock stamped on each batch, made monotonic
/// (`clockMs = max(clockMs, batch.timestampMs)`), so a new leader whose clock is behind
/// cannot bring an expired session back.
///
/// ## Commands
/// - GET: OK and the value, or NO_KEY and an empty value. A key holding the empty value
///   is present (OK, empty).
/// - PUT: sets the value; OK.
/// - APPEND: appends to the value (a missing key is created, as by PUT); OK.
/// - DELETE: OK if the key existed (it is removed), NO_KEY if not.
/// - Any other op (raw value outside 0...3, including STATUS, which is never logged):
///   BAD_REQUEST, no effect. For a sessioned client it still consumes its sequence number.
///
/// ## Exactly once
/// `clientID == 0` means no session: the command is applied every time it appears.
/// Otherwise, with the client's session holding `lastSeq`, the status of its reply and
/// whether it was a Get:
/// - `seq == lastSeq`: a retry; nothing is re-applied. A retried write gets the stored
///   status again (even if the key changed since). A retried Get is read again, at this
///   point of the log: the retry applies while the client still waits for the Get, so the
///   value it gets is one the key held during the Get, which is all linearizability asks, and
///   no value has to be kept in the session (or in snapshots).
/// - `seq > lastSeq`: applied, and its reply status stored. Gaps are allowed (a client that
///   gave up on a request moves on to a higher number).
/// - `seq < lastSeq`: a late duplicate of a request the client no longer waits for (it
///   has at most one request outstanding and has moved on). BAD_REQUEST, not re-applied.
///
/// ## Sessions: opening, expiry, eviction, tombstones
/// - A client with no session opens one with its first command that reaches the log, at
///   whatever seq it carries (gaps are allowed: its seq 1 may have been lost before the
///   log). From then on the session fences every lower seq, so a late retry of an
///   operation the client gave up on can never be applied after a later one.
/// - Before each batch, sessions idle for more than `sessionTimeoutMs` of log time are
///   removed. When opening a session would exceed `maxSessions`, the least recently
///   active session is evicted (ties broken by log order, earlier first). Either way the
///   client leaves a tombstone holding its session's `lastSeq`.
/// - A command from a tombstoned client with `seq <= lastSeq` gets SESSION_EXPIRED, with no
///   effect: that seq (or, if lower, one after it) was applied earlier, its reply is no
///   longer kept, and it was not applied again. A write that gets it must not be re-run
///   under a new client ID; a Get may simply be sent again under a higher seq.
/// - A command from a tombstoned client with `seq > lastSeq` was never applied: it is
///   applied as usual and reopens the session (the tombstone goes).
/// - A tombstone restored with `lastSeq == 0` (snapshots written before it was kept)
///   refuses every seq.
/// - Tombstones are removed after `tombstoneTimeoutMs` of log time (default 24 h), or
///   oldest first beyond `maxTombstones`. Residual risk, documented: a retry from a
///   client whose session *and* tombstone are both gone (idle for more than
///   `sessionTimeoutMs + tombstoneTimeoutMs` of log time, or pushed out by more than
///   `maxTombstones` later removals) would open a new session and be applied again.
///
/// ## Limits
/// The four limits (`SessionLimits`) decide which commands apply, so they come from the log
/// like everything else: a batch carrying `setLimits` replaces them before its expiry and
/// commands run (smaller count limits evict at once: tombstones oldest first, then sessions
/// least recently active first); before any such batch, `SessionLimits.defaults` hold. A
/// batch whose limits are unusable (`SessionLimits.problem`) leaves them unchanged, on every
/// replica alike. The snapshot carries them.
///
/// ## Snapshots
/// `snapshot()` encodes the whole state as a `kvraft.state.StateSnapshot` in canonical
/// form: pairs sorted by key bytes (unsigned, lexicographic: `StateSnapshot.keyPrecedes`),
/// sessions least recently active first (ties in log order), tombstones oldest first, and
/// the limits. Equal machines give equal bytes.
///
/// `init(restoring:)` (and `SnapshotRestorer`, which restores as the bytes arrive) refuses
/// (throws `SnapshotRestoreError`) bytes that do not decode, and snapshots no machine could
/// have written: keys not strictly ascending (a duplicate included); a session or tombstone
/// for client 0; a session with seq 0, or storing a reply other than OK, NO_KEY or
/// BAD_REQUEST (BAD_REQUEST for a Get), or a value with a reply other than OK; sessions out
/// of activity order or tombstones out of age order; a session or tombstone later than the
/// snapshot's log time; a client with two sessions, two tombstones, or both; unusable
/// limits; any state at log index 0. A snapshot without limits (written before they were
/// replicated) restores under `SessionLimits.defaults`; a session in it that stores a value
/// was left by a Get.
///
/// Restored, a machine equals (`==`) the one the snapshot came from and computes the same
/// replies for every later entry.
///
/// Nothing observable depends on Dictionary iteration order.
public struct KVStateMachine: Equatable, Sendable {
    private var data: [[UInt8]: StoredValue] = [:]
    private var sessions: SessionTable

    /// Index of the last log entry applied (a command batch or a no-op); 0 before any.
    public private(set) var appliedIndex: UInt64 = 0

    /// Log time: the largest batch timestamp applied so far, in milliseconds.
    public private(set) var clockMs: UInt64 = 0

    /// A machine before any entry, under `limits`: `SessionLimits.defaults` on every replica
    /// (`KVStateMachine()`); others only for tests that want a machine behaving as if a limits
    /// entry had set them.
    public init(limits: SessionLimits) {
        sessions = SessionTable(limits: limits)
    }

    /// `init(limits:)` with the limits spelled out, each defaulting to `SessionLimits.defaults`.
    public init(sessionTimeoutMs: UInt64 = 3_600_000, maxSessions: Int = 1_000_000,
                tombstoneTimeoutMs: UInt64 = 86_400_000, maxTombstones: Int = 1_000_000) {
        self.init(limits: SessionLimits(sessionTimeoutMs: sessionTimeoutMs, maxSessions: UInt64(maxSessions),
                                        tombstoneTimeoutMs: tombstoneTimeoutMs, maxTombstones: UInt64(maxTombstones)))
    }

    init(data: [[UInt8]: StoredValue], sessions: SessionTable, appliedIndex: UInt64, clockMs: UInt64) {
        self.data = data
        self.sessions = sessions
        self.appliedIndex = appliedIndex
        self.clockMs = clockMs
    }

    /// Restores the state encoded by `snapshot()`, limits included (see "Snapshots" above for
    /// what is checked).
    public init(restoring bytes: [UInt8]) throws(SnapshotRestoreError) {
        var restorer = SnapshotRestorer()
        do {
            for field in try StateSnapshotReader.fields(of: bytes[...]) {
                try restorer.add(field)
            }
        } catch let error as SnapshotRestoreError {
            throw error
        } catch let error as WireError {
            throw .undecodable(bytes: bytes.count, error)
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
        self = try restorer.finish()
    }

    /// The session limits in force (see "Limits" above).
    public var limits: SessionLimits { sessions.limits }

    /// The state in canonical form, encoded as a `kvraft.state.StateSnapshot` (see
    /// "Snapshots" above). Restoring it gives back an equal machine.
    public func snapshot() -> [UInt8] {
        stateSnapshot().serialized()
    }

    /// `snapshot()` in parts of a few MiB, so a large state is never encoded whole in memory:
    /// `size` first gets the total byte count, then `part` each part in order (returning false
    /// stops the encoding). Concatenated, the parts are `snapshot()`.
    public func encodeSnapshot(size: (Int) -> Void, part: ([UInt8]) -> Bool) {
        let state = stateSnapshot()
        size(state.encodedSize())
        state.forEachEncodedPart(part)
    }

    /// The state in canonical form: pairs sorted by key, sessions in activity order,
    /// tombstones oldest first.
    func stateSnapshot() -> StateSnapshot {
        var snapshot = StateSnapshot(appliedIndex: appliedIndex, clockMs: clockMs, sessions: sessions.sessionRecords(),
                                     tombstones: sessions.tombstoneRecords(), limits: sessions.limits)
        snapshot.pairs.reserveCapacity(data.count)
        for (key, value) in data {
            snapshot.pairs.append(value.snapshotPair(key: key))
        }
        snapshot.sortPairsByKey()
        return snapshot
    }

    /// Number of keys in the map.
    public var count: Int { data.count }

    /// Number of open client sessions.
    public var sessionCount: Int { sessions.count }

    /// Number of expired or evicted clients still remembered.
    public var tombstoneCount: Int { sessions.tombstoneCount }

    /// Entries in the session activity queue, live and stale: for tests of its bound.
    var sessionActivityBacklog: Int { sessions.activityBacklog }

    /// Entries in the tombstone queue, live and stale: for tests of its bound.
    var tombstoneBacklog: Int { sessions.tombstoneBacklog }

    /// The value stored under `key`, if any. For tests and inspection; clients read through
    /// the log with GET.
    public func get(_ key: [UInt8]) -> [UInt8]? { data[key]?.bytes }


    /// A Get served without the log (ReadIndex or a lease): what GET computes, without touching
    /// the session table (a Get changes nothing, so it needs no exactly-once record).
    public func read(_ key: [UInt8]) -> CommandResult {
        guard let value = data[key] else { return .noKey }
        return CommandResult(status: .ok, value: value.bytes)
    }

    /// Applies the commands of the log entry at `index`, in order, and returns one result
    /// per command, in the same order. `index` must be greater than `appliedIndex`.
    public mutating func apply(batch: CommandBatch, index: UInt64) -> [CommandResult] {
        advance(to: index)
        clockMs = max(clockMs, batch.timestampMs)
        if let limits = batch.setLimits, limits.problem == nil {
            sessions.setLimits(limits, nowMs: clockMs)
        }
        sessions.expire(nowMs: clockMs)
        var results: [CommandResult] = []
        results.reserveCapacity(batch.commands.count)
        for command in batch.commands {
            results.append(execute(command))
        }
        return results
    }

    /// Records a log entry that carries no commands (e.g. a new leader's no-op): only
    /// `appliedIndex` moves. `index` must be greater than `appliedIndex`.
    public mutating func applyNoop(index: UInt64) {
        advance(to: index)
    }

    private mutating func advance(to index: UInt64) {
        precondition(index > appliedIndex, "log entry \(index) applied after entry \(appliedIndex); entries must be applied once each, in log order")
        appliedIndex = index
    }

    private mutating func execute(_ command: Command) -> CommandResult {
        let clientID = command.clientID
        guard clientID != 0 else { return perform(command) }
        if let session = sessions[clientID] {
            if command.seq == session.lastSeq {
                sessions.touch(clientID, nowMs: clockMs)
                // A retried Get reads again; a retried write gets its status again.
                return session.lastWasGet && command.op == .get ? perform(command) : CommandResult(status: session.lastStatus)
            }
            if command.seq < session.lastSeq {
                return .badRequest
            }
        } else {
            if command.seq == 0 { return .badRequest }
            if let lastSeq = sessions.tombstonedLastSeq(clientID), lastSeq == 0 || command.seq <= lastSeq {
                return .sessionExpired  // applied earlier, reply no longer kept
            }
        }
        let result = perform(command)
        sessions.record(clientID, seq: command.seq, status: result.status, wasGet: command.op == .get, nowMs: clockMs)
        return result
    }

    private mutating func perform(_ command: Command) -> CommandResult {
        switch command.op {
        case .get:
            guard let value = data[command.key] else { return .noKey }
            return CommandResult(status: .ok, value: value.bytes)
        case .put:
            data[command.key] = StoredValue(command.value)
            return .ok
        case .append:
            // A value stops growing at the state machine's cap, so every Get reply fits a client
            // frame and every snapshot field the reader's limit; the same on every replica.
            let held = data[command.key]?.count ?? 0
            guard held + command.value.count <= Limits.maxStoredValueBytes else { return .badRequest }
            data[command.key, default: StoredValue([])].append(command.value)
            return .ok
        case .delete:
            return data.removeValue(forKey: command.key) == nil ? .noKey : .ok
        default:
            return .badRequest
        }
    }
}
