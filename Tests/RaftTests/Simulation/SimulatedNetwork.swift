import Raft
import SeededRandom

/// A lossy, reordering, duplicating network with per-link cuts, driven by the simulation's
/// generator. Time is counted in simulation steps; `SimulatedCluster.stepsPerTick` steps make a tick.
struct SimulatedNetwork {
    struct Link: Hashable {
        let from: UInt64
        let to: UInt64
    }

    /// Fault rates; all zero means a reliable network with small random delays.
    struct Faults {
        var dropRate = 0.0
        var duplicateRate = 0.0
        /// Delivery delay in steps is drawn from `minDelay...maxDelay`; the spread reorders messages.
        var minDelay = 1
        var maxDelay = 3
        /// Occasionally a message is held much longer (a slow link), up to this many steps.
        var longDelayRate = 0.0
        var maxLongDelay = 40

        static let reliable = Faults()
        static let unreliable = Faults(dropRate: 0.1, duplicateRate: 0.05, minDelay: 1, maxDelay: 8,
                                       longDelayRate: 0.05, maxLongDelay: 60)
    }

    var faults = Faults.reliable
    /// Scripted scenarios drop exactly the messages this returns true for.
    var dropFilter: ((Message) -> Bool)?
    private(set) var cut: Set<Link> = []
    /// Messages in flight, bucketed by the step they arrive at.
    private var inFlight: [Int: [Message]] = [:]
    private(set) var sentCount = 0
    private(set) var sentCountByType: [MessageType: Int] = [:]
    /// Rejected appends, i.e. backtracking round trips.
    private(set) var rejectedAppendCount = 0

    func isCut(_ from: UInt64, _ to: UInt64) -> Bool {
        cut.contains(Link(from: from, to: to))
    }

    mutating func cutLink(_ from: UInt64, _ to: UInt64) {
        cut.insert(Link(from: from, to: to))
        cut.insert(Link(from: to, to: from))
    }

    mutating func healLink(_ from: UInt64, _ to: UInt64) {
        cut.remove(Link(from: from, to: to))
        cut.remove(Link(from: to, to: from))
    }

    /// Cuts every link between the two sides.
    mutating func partition(_ sideA: [UInt64], _ sideB: [UInt64]) {
        for a in sideA { for b in sideB { cutLink(a, b) } }
    }

    mutating func healAll() {
        cut.removeAll()
    }

    mutating func send(_ message: Message, now: Int, random: inout SeededGenerator) {
        sentCount += 1
        sentCountByType[message.type, default: 0] += 1
        if message.type == .appendResponse && message.reject { rejectedAppendCount += 1 }
        if isCut(message.from, message.to) || dropFilter?(message) == true || random.chance(faults.dropRate) { return }
        let copies = random.chance(faults.duplicateRate) ? 2 : 1
        for _ in 0..<copies {
            var delay = random.int(in: faults.minDelay...faults.maxDelay)
            if random.chance(faults.longDelayRate) { delay = random.int(in: faults.maxDelay...faults.maxLongDelay) }
            inFlight[now + delay, default: []].append(message)
        }
    }

    /// Messages arriving at `step`, in send order; a link cut while they were in flight drops them.
    mutating func deliveries(at step: Int) -> [Message] {
        guard let arriving = inFlight.removeValue(forKey: step) else { return [] }
        return arriving.filter { !isCut($0.from, $0.to) }
    }

    /// Forgets everything in flight (used when a scenario wants a clean slate).
    mutating func dropAllInFlight() {
        inFlight.removeAll()
    }
}
