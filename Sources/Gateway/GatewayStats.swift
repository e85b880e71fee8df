import Wire

/// What the gateway core counts for metrics, as plain values (the core stays pure): every
/// answered request with its operation, outcome and start, until the shell drains them into
/// swift-metrics, and the failovers seen. Off (nothing recorded) unless the process serves
/// metrics.
public struct GatewayStats: Sendable {
    public struct Answer: Sendable, Equatable {
        public let op: Op
        public let status: Status
        /// Monotonic nanoseconds the client's request arrived.
        public let startedAt: UInt64
    }

    public var isEnabled = false
    /// Answers not yet drained; the shell drains after each input, so this stays small.
    public internal(set) var answers: [Answer] = []
    /// Times the known leader became a different node than the last one known.
    public private(set) var failovers: UInt64 = 0
    private var lastLeader: UInt64 = 0

    public init() {}

    mutating func answered(_ op: Op, _ status: Status, startedAt: UInt64) {
        guard isEnabled else { return }
        answers.append(Answer(op: op, status: status, startedAt: startedAt))
    }

    mutating func leaderLearnt(_ node: UInt64) {
        if lastLeader != 0, lastLeader != node { failovers += 1 }
        lastLeader = node
    }

    /// Hands the recorded answers over by swapping buffers (both keep their capacity).
    mutating func drainAnswers(into buffer: inout [Answer]) {
        buffer.removeAll(keepingCapacity: true)
        swap(&buffer, &answers)
    }
}
