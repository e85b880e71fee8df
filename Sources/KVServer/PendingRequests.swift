import ServiceSupport
import Wire

/// A client request waiting for its command to be applied.
struct Waiter {
    let client: ClientLink
    let requestID: UInt64
    /// For the request counters (by operation).
    var op: Op = .get
}

/// Commands proposed together as one log entry, and who waits for each.
final class ProposalInFlight {
    let id: UInt64
    /// Emptied once answered: the proposal itself stays in `byAge` until its deadline passes,
    /// and must not hold its clients' links and request ids that long.
    private(set) var waiters: [Waiter]
    /// Monotonic nanoseconds after which the waiters get TIMEOUT.
    let deadline: UInt64
    /// Where raftd appended it, once it said so.
    var index: UInt64 = 0
    var term: UInt64 = 0

    func takeWaiters() -> [Waiter] {
        defer { waiters = [] }
        return waiters
    }

    init(id: UInt64, waiters: [Waiter], deadline: UInt64) {
        self.id = id
        self.waiters = waiters
        self.deadline = deadline
    }
}

/// Every request kvd owes an answer, from arrival until its entry applies, its leader loses
/// the term, its log position is taken by another entry, or its deadline passes.
struct PendingRequests {
    /// Accepted from clients, not yet sent to raftd.
    var batchCommands: [Command] = []
    var batchWaiters: [Waiter] = []
    var batchBytes = 0
    /// Sent to raftd, waiting for (index, term).
    var awaitingResult: [UInt64: ProposalInFlight] = [:]
    /// Appended at an index, waiting for that index to apply.
    var awaitingApply: [UInt64: ProposalInFlight] = [:]
    /// Proposals in creation order, for deadline sweeps (deadlines grow with creation).
    var byAge: [ProposalInFlight] = []
    var byAgeHead = 0
    var count = 0

    mutating func takeAll() -> [Waiter] {
        var all = batchWaiters
        for proposal in awaitingResult.values { all.append(contentsOf: proposal.waiters) }
        for proposal in awaitingApply.values { all.append(contentsOf: proposal.waiters) }
        batchCommands.removeAll()
        batchWaiters.removeAll()
        batchBytes = 0
        awaitingResult.removeAll()
        awaitingApply.removeAll()
        byAge.removeAll()
        byAgeHead = 0
        count = 0
        return all
    }

    /// Removes and returns proposals whose deadline has passed and that are still unanswered.
    mutating func takeExpired(now: UInt64) -> [ProposalInFlight] {
        var expired: [ProposalInFlight] = []
        while byAgeHead < byAge.count, byAge[byAgeHead].deadline <= now {
            let proposal = byAge[byAgeHead]
            byAgeHead += 1
            if awaitingResult.removeValue(forKey: proposal.id) != nil {
                expired.append(proposal)
            } else if proposal.index != 0, awaitingApply[proposal.index] === proposal {
                awaitingApply[proposal.index] = nil
                expired.append(proposal)
            }
        }
        if byAgeHead > 1024 && byAgeHead * 2 > byAge.count {
            byAge.removeFirst(byAgeHead)
            byAgeHead = 0
        }
        for proposal in expired { count -= proposal.waiters.count }
        return expired
    }

    /// Marks `proposal` answered and hands over its waiters.
    mutating func finished(_ proposal: ProposalInFlight) -> [Waiter] {
        count -= proposal.waiters.count
        return proposal.takeWaiters()
    }
}
