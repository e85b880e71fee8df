import Raft
import SeededRandom

/// Peer links between simulated raftds: each message is dropped, or delivered after a random
/// delay (which reorders), now and then twice, unless its link is cut. Time is the
/// simulation's, in nanoseconds.
public struct SimulatedPeerNetwork {
    public struct Faults: Sendable {
        public var dropRate = 0.02
        public var minDelay: UInt64 = 100_000
        public var maxDelay: UInt64 = 3_000_000
        /// Now and then a message is held much longer (a slow link).
        public var longDelayRate = 0.02
        public var maxLongDelay: UInt64 = 40_000_000
        /// A delivered message also arrives a second time, after its own delay (a retransmission
        /// that raced the original, or a message replayed by a reconnecting transport).
        public var duplicateRate = 0.0

        public init() {}
    }

    /// A message on its way, with the snapshot bytes it carries (a leader's snapshot file).
    public struct Delivery {
        public let at: UInt64
        public let sequence: UInt64
        public let message: Message
        public let snapshotData: [UInt8]?
    }

    public var faults = Faults()
    public private(set) var cut: Set<[UInt64]> = []
    private var inFlight: [Delivery] = []
    private var sequence: UInt64 = 0
    public private(set) var sent = 0
    public private(set) var duplicated = 0

    public init() {}

    public func isCut(_ from: UInt64, _ to: UInt64) -> Bool { cut.contains([from, to]) }

    public mutating func cutLink(_ a: UInt64, _ b: UInt64) {
        cut.insert([a, b])
        cut.insert([b, a])
    }

    /// Cuts every link between the two sides.
    public mutating func partition(_ sideA: [UInt64], _ sideB: [UInt64]) {
        for a in sideA { for b in sideB { cutLink(a, b) } }
    }

    public mutating func healAll() { cut.removeAll() }

    public mutating func send(_ message: Message, snapshotData: [UInt8]? = nil, now: UInt64, random: inout SeededGenerator) {
        sent += 1
        if isCut(message.from, message.to) || random.chance(faults.dropRate) { return }
        let copies = random.chance(faults.duplicateRate) ? 2 : 1
        duplicated += copies - 1
        for _ in 0..<copies {
            var delay = faults.minDelay + random.next() % (faults.maxDelay - faults.minDelay + 1)
            if random.chance(faults.longDelayRate) { delay = faults.maxDelay + random.next() % faults.maxLongDelay }
            sequence += 1
            inFlight.append(Delivery(at: now + delay, sequence: sequence, message: message, snapshotData: snapshotData))
        }
    }

    /// Messages due by `now`, earliest first; a link cut while they were in flight drops them.
    public mutating func deliveries(upTo now: UInt64) -> [Delivery] {
        guard inFlight.contains(where: { $0.at <= now }) else { return [] }
        let due = inFlight.filter { $0.at <= now }.sorted { ($0.at, $0.sequence) < ($1.at, $1.sequence) }
        inFlight.removeAll { $0.at <= now }
        return due.filter { !isCut($0.message.from, $0.message.to) }
    }
}
