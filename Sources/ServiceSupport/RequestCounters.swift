import Metrics
import Wire

/// `<name>{op,outcome}` counters for client requests: one swift-metrics counter per pair,
/// made the first time the pair occurs and kept in a flat table, so counting a request is an
/// index and one atomic add (no lookup by string, no allocation).
public final class RequestCounters {
    private let name: String
    private static let ops = 7       // get, put, append, delete, status, member, anything else
    private static let outcomes = 8  // the seven statuses, anything else
    private var counters: [Counter?]

    public init(name: String) {
        self.name = name
        counters = Array(repeating: nil, count: Self.ops * Self.outcomes)
    }

    public func count(_ op: Op, _ status: Status) {
        let opIndex = op.isKnown ? Int(op.rawValue) : Self.ops - 1
        let outcomeIndex = (0..<Int32(Self.outcomes - 1)).contains(status.rawValue) ? Int(status.rawValue) : Self.outcomes - 1
        let slot = opIndex * Self.outcomes + outcomeIndex
        if let counter = counters[slot] { return counter.increment() }
        let counter = Counter(label: name, dimensions: [("op", opIndex == Self.ops - 1 ? "other" : op.description),
                                                        ("outcome", Self.outcomeName(status))])
        counters[slot] = counter
        counter.increment()
    }

    /// The status as Prometheus label values usually are: lower case.
    static func outcomeName(_ status: Status) -> String {
        switch status {
        case .ok: "ok"
        case .noKey: "no_key"
        case .wrongLeader: "wrong_leader"
        case .timeout: "timeout"
        case .badRequest: "bad_request"
        case .unavailable: "unavailable"
        case .sessionExpired: "session_expired"
        default: "other"
        }
    }
}
