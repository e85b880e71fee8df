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
/// Otherwise, with the client's session holding `lastSeq` and the reply it got:
/// - `seq == lastSeq`: a retry; the stored reply is returned again (same status, same
///   value, even if the key changed since) and nothing is re-applied.
/// - `seq > lastSeq`: applied, and its reply stored. Gaps are allowed (a client that
///   gave up on a request moves on to a higher number).
/// - `seq < lastSeq`: a late duplicate of a request the client no longer waits for (it
///   has at most one request outstanding and has moved on). BAD_REQUEST, not re-applied.
/// GETs are sessioned too: a retried GET gets its original reply.
///
/// ## Sessions: opening, expiry, eviction
/// - A client with no session opens one with its first command that reaches the log, at
///   whatever seq it carries (gaps are allowed: its seq 1 may have been lost before the
///   log). From then on the session fences every lower seq, so a late retry of an
///   operation the client gave up on can never be applied after a later one.
/// - Before each batch, sessions idle for more than `sessionTimeoutMs` of log time are
///   removed. When opening a session would exceed `maxSessions`, the least recently
///   active session is evicted (ties broken by log order, earlier first). Either way the
///   client leaves a tombstone.
/// - A command from a tombstoned client gets SESSION_EXPIRED, with no effect. A client
///   that sees SESSION_EXPIRED knows the request was not applied, and must take a new
///   client ID and start again from seq 1.
/// - Tombstones are removed after `tombstoneTimeoutMs` of log time (default 24 h), or
///   oldest first beyond `maxTombstones`. Residual risk, documented: a retry from a
///   client whose session *and* tombstone are both gone (idle for more than
///   `sessionTimeoutMs + tombstoneTimeoutMs` of log time, or pushed out by more than
///   `maxTombstones` later removals) would open a new session and be applied again.
///
/// ## Snapshots
/// `snapshot()` encodes the whole state as a `kvraft.state.StateSnapshot` in canonical
/// form: pairs sorted by key bytes (unsigned, lexicographic: `StateSnapshot.keyPrecedes`),
/// sessions least recently active first (ties in log order), tombstones oldest first.
/// Equal machines give equal bytes. The limits are configuration, not state: they are not
/// in the snapshot, and `init(restoring:…)` takes them like `init(…)` does.
///
/// `init(restoring:…)` refuses (throws `SnapshotRestoreError`) bytes that do not decode,
/// and snapshots no machine could have written: keys not strictly ascending (a duplicate
/// included); a session or tombstone for client 0; a session with seq 0, or storing a
/// reply other than OK, NO_KEY or BAD_REQUEST, or a value with a reply other than OK;
/// sessions out of activity order or tombstones out of age order; a session or tombstone
/// later than the snapshot's log time; a client with two sessions, two tombstones, or
/// both; any state at log index 0.
///
/// Restored under the limits it was taken with, a machine equals (`==`) the one the
/// snapshot came from and computes the same replies for every later entry. Under smaller
/// count limits, the excess goes at once, as it would have in a running table: tombstones
/// beyond `maxTombstones` oldest first, then sessions beyond `maxSessions` least recently
/// active first, each evicted client leaving a tombstone stamped with the snapshot's log
/// time. Under shorter timeouts, idle sessions and old tombstones go at the start of the
/// next batch, before its commands, which is when expiry always happens.
///
/// Nothing observable depends on Dictionary iteration order.
public struct KVStateMachine: Equatable, Sendable {
    private var data: [[UInt8]: StoredValue] = [:]
    private var sessions: SessionTable

    /// Index of the last log entry applied (a command batch or a no-op); 0 before any.
    public private(set) var appliedIndex: UInt64 = 0

    /// Log time: the largest batch timestamp applied so far, in milliseconds.
    public private(set) var clockMs: UInt64 = 0

    /// - Parameters:
    ///   - sessionTimeoutMs: a session idle for longer than this much log time expires.
    ///   - maxSessions: at most this many sessions are kept (at least 1).
    ///   - tombstoneTimeoutMs: how long, in log time, an expired or evicted client is
    ///     remembered (so that a late retry of its seq 1 gets SESSION_EXPIRED).
    ///   - maxTombstones: at most this many removed clients are remembered (0: none).
    public init(sessionTimeoutMs: UInt64 = 3_600_000, maxSessions: Int = 1_000_000,
                tombstoneTimeoutMs: UInt64 = 86_400_000, maxTombstones: Int = 1_000_000) {
        sessions = SessionTable(sessionTimeoutMs: sessionTimeoutMs, maxSessions: maxSessions,
                                tombstoneTimeoutMs: tombstoneTimeoutMs, maxTombstones: maxTombstones)
    }

    /// Restores the state encoded by `snapshot()`, under the given limits (see "Snapshots"
    /// above for what is checked, and for limits smaller than the snapshot's). The limits
    /// default to those of `init(…)`.
    public init(restoring bytes: [UInt8], sessionTimeoutMs: UInt64 = 3_600_000, maxSessions: Int = 1_000_000,
                tombstoneTimeoutMs: UInt64 = 86_400_000, maxTombstones: Int = 1_000_000) throws(SnapshotRestoreError) {
        let snapshot: StateSnapshot
        do {
            snapshot = try StateSnapshot(serialized: bytes)
        } catch {
            throw .undecodable(bytes: bytes.count, error)
        }
        try self.init(restoring: snapshot, sessionTimeoutMs: sessionTimeoutMs, maxSessions: maxSessions,
                      tombstoneTimeoutMs: tombstoneTimeoutMs, maxTombstones: maxTombstones)
    }

    init(restoring snapshot: StateSnapshot, sessionTimeoutMs: UInt64, maxSessions: Int,
         tombstoneTimeoutMs: UInt64, maxTombstones: Int) throws(SnapshotRestoreError) {
        do throws(SnapshotInconsistency) {
            if snapshot.appliedIndex == 0,
               !(snapshot.pairs.isEmpty && snapshot.sessions.isEmpty && snapshot.tombstones.isEmpty) {
                throw SnapshotInconsistency("it holds \(snapshot.pairs.count) keys, \(snapshot.sessions.count) sessions and \(snapshot.tombstones.count) tombstones before any entry was applied")
            }
            sessions = try SessionTable(restoring: snapshot.sessions, tombstones: snapshot.tombstones, nowMs: snapshot.clockMs,
                                        sessionTimeoutMs: sessionTimeoutMs, maxSessions: maxSessions,
                                        tombstoneTimeoutMs: tombstoneTimeoutMs, maxTombstones: maxTombstones)
            data.reserveCapacity(snapshot.pairs.count)
            var previous: [UInt8]?
            for (i, pair) in snapshot.pairs.enumerated() {
                if let previous, !StateSnapshot.keyPrecedes(previous, pair.key) {
                    throw SnapshotInconsistency(previous == pair.key
                        ? "pairs \(i - 1) and \(i) have the same key \(describeBytes(pair.key))"
                        : "pair \(i) has key \(describeBytes(pair.key)), which sorts before the key of pair \(i - 1), \(describeBytes(previous)); pairs must be sorted by key")
                }
                data[pair.key] = StoredValue(pair.value)
                previous = pair.key
            }
        } catch {
            throw .inconsistent(appliedIndex: snapshot.appliedIndex, error.reason)
        }
        appliedIndex = snapshot.appliedIndex
        clockMs = snapshot.clockMs
    }

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
        var snapshot = StateSnapshot(appliedIndex: appliedIndex, clockMs: clockMs,
                                     sessions: sessions.sessionRecords(), tombstones: sessions.tombstoneRecords())
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

    /// The value stored under `key`, if any. For tests and inspection; clients read through
    /// the log with GET.
    public func get(_ key: [UInt8]) -> [UInt8]? { data[key]?.bytes }


    /// Applies the commands of the log entry at `index`, in order, and returns one result
    /// per command, in the same order. `index` must be greater than `appliedIndex`.
    public mutating func apply(batch: CommandBatch, index: UInt64) -> [CommandResult] {
        advance(to: index)
        clockMs = max(clockMs, batch.timestampMs)
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
                return session.lastResult
            }
            if command.seq < session.lastSeq {
                return .badRequest
            }
        } else {
            if command.seq == 0 { return .badRequest }
            if sessions.isTombstoned(clientID) { return .sessionExpired }
        }
        let result = perform(command)
        sessions.record(clientID, seq: command.seq, result: result, nowMs: clockMs)
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
            data[command.key, default: StoredValue([])].append(command.value)
            return .ok
        case .delete:
            return data.removeValue(forKey: command.key) == nil ? .noKey : .ok
        default:
            return .badRequest
        }
    }
}
