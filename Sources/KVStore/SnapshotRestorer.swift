import Wire

/// Rebuilds a `KVStateMachine` from a snapshot's fields as they are decoded
/// (`StateSnapshotReader`), so a restore holds the new state and one field in flight, never
/// the whole encoding. Pairs go straight into the new map (their order is checked as they
/// come); sessions and tombstones, small once no value is kept, are checked together at
/// `finish()`. Every check of `KVStateMachine.init(restoring:)` is made here.
public struct SnapshotRestorer: Sendable {
    private var data: [[UInt8]: StoredValue] = [:]
    private var previousKey: [UInt8]?
    private var appliedIndex: UInt64 = 0
    private var clockMs: UInt64 = 0
    private var sessions: [SessionRecord] = []
    private var tombstones: [TombstoneRecord] = []
    private var limits: SessionLimits?

    public init() {}

    /// Keys restored so far.
    public var count: Int { data.count }

    /// Takes the next decoded field; throws if it breaks an invariant no snapshot of a
    /// state machine breaks.
    public mutating func add(_ field: StateSnapshotReader.Field) throws(SnapshotRestoreError) {
        switch field {
        case let .appliedIndex(index): appliedIndex = index
        case let .clockMs(ms): clockMs = ms
        case let .pair(pair):
            if let previousKey, !StateSnapshot.keyPrecedes(previousKey, pair.key) {
                let i = data.count
                throw .inconsistent(appliedIndex: appliedIndex, previousKey == pair.key
                    ? "pairs \(i - 1) and \(i) have the same key \(describeBytes(pair.key))"
                    : "pair \(i) has key \(describeBytes(pair.key)), which sorts before the key of pair \(i - 1), \(describeBytes(previousKey)); pairs must be sorted by key")
            }
            data[pair.key] = StoredValue(pair.value)
            previousKey = pair.key
        case let .session(record): sessions.append(record)
        case let .tombstone(record): tombstones.append(record)
        case let .limits(new): limits = new
        }
    }

    /// The restored machine, once every field is in.
    public consuming func finish() throws(SnapshotRestoreError) -> KVStateMachine {
        do throws(SnapshotInconsistency) {
            if appliedIndex == 0, !(data.isEmpty && sessions.isEmpty && tombstones.isEmpty) {
                throw SnapshotInconsistency("it holds \(data.count) keys, \(sessions.count) sessions and \(tombstones.count) tombstones before any entry was applied")
            }
            let limits = limits ?? .defaults
            if let problem = limits.problem {
                throw SnapshotInconsistency("its session limits are unusable: \(problem)")
            }
            let table = try SessionTable(restoring: sessions, tombstones: tombstones, nowMs: clockMs, limits: limits)
            return KVStateMachine(data: data, sessions: table, appliedIndex: appliedIndex, clockMs: clockMs)
        } catch {
            throw .inconsistent(appliedIndex: appliedIndex, error.reason)
        }
    }
}
