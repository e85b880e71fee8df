/// A state machine snapshot: the state after applying every entry up to `index`, whose term
/// is `term`. Raft treats `data` as opaque bytes; the log before `index` can be discarded once
/// a snapshot is durable.
public struct Snapshot: Sendable, Hashable {
    /// Last log index the snapshot covers (0: the empty initial state).
    public var index: UInt64
    /// Term of the entry at `index`.
    public var term: UInt64
    /// The state machine's own encoding of its state.
    public var data: [UInt8]
    /// The configuration in force at `index` (the latest `.config` entry up to it, or the
    /// initial one); nil only in snapshots written before membership changes existed.
    public var configuration: Configuration?

    public init(index: UInt64, term: UInt64, data: [UInt8], configuration: Configuration? = nil) {
        self.index = index
        self.term = term
        self.data = data
        self.configuration = configuration
    }
}

extension Snapshot: CustomStringConvertible {
    public var description: String { "snapshot(\(index), t\(term), \(data.count) bytes)" }
}
