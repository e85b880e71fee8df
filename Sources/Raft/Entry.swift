/// One record of the replicated log.
public struct Entry: Sendable, Hashable {
    public enum Kind: UInt8, Sendable, Hashable {
        /// A command proposed by the state machine.
        case normal = 0
        /// Appended by a new leader at the start of its term so it can commit earlier terms' entries.
        case noop = 1
        /// A membership change: `data` is the whole new `Configuration` (`Configuration.encoded`),
        /// in force from the moment the entry is appended (not committed).
        case config = 2
    }

    public var term: UInt64
    public var index: UInt64
    public var kind: Kind
    public var data: [UInt8]

    public init(term: UInt64, index: UInt64, kind: Kind = .normal, data: [UInt8] = []) {
        self.term = term
        self.index = index
        self.kind = kind
        self.data = data
    }

    /// Approximate bytes on the wire, used to bound message and batch sizes.
    public var byteSize: Int { data.count + 24 }
}
