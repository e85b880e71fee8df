/// Lease-based reads: how long a leader may answer reads without a heartbeat round.
///
/// Safety argument. With check quorum, a follower that heard from its leader refuses every
/// (pre-)vote for `electionTicks` of its own ticks (`RaftNode.inLeaderLease`). A leader whose
/// heartbeat round sent at time `s` (on the leader's monotonic clock) was acknowledged by a
/// majority knows that each of those followers received it after `s`, so none of them helps
/// elect another leader before `s` plus `electionTicks` of its ticks. A tick timer never fires
/// early, but a late tick may be followed by one that catches up on the schedule, so
/// `electionTicks` ticks after a reset take at least `(electionTicks - 2) * tick` of real time.
/// Measured on the leader's clock, which may run slower than a follower's by at most
/// `driftBound` (relative), that is at least `(electionTicks - 2) * tick * (1 - driftBound)`:
/// the longest lease allowed. Until it ends no other leader exists, so the leader's commit
/// index covers every completed write and a read may be answered at once.
///
/// Assumptions, stated: the leader's clock is monotonic and keeps running while the process is
/// stopped (CLOCK_MONOTONIC or CLOCK_BOOTTIME; a SIGSTOPped leader wakes with an expired
/// lease, never a fresh one), clock rates differ by at most `driftBound`, and votes are only
/// given past the lease: so a lease leader never hands over by `timeoutNow` while serving
/// lease reads (a transfer ends lease reads for the rest of its term), a restarted node waits
/// one election timeout before voting, and a follower that sees its leader's connection reset
/// keeps its lease (no early campaign) in lease mode.
public struct ReadLease: Sendable, Hashable {
    /// How long after a round's send time the lease lasts, in nanoseconds.
    public var durationNanos: UInt64
    /// Real time of one tick, in nanoseconds (the shell's tick timer period).
    public var tickNanos: UInt64
    /// Largest relative difference between two nodes' clock rates, in [0, 0.5].
    public var driftBound: Double

    public init(durationNanos: UInt64, tickNanos: UInt64, driftBound: Double) {
        self.durationNanos = durationNanos
        self.tickNanos = tickNanos
        self.driftBound = driftBound
    }

    /// The longest lease that cannot outlive an election (see the type's comment).
    public static func longestSafeNanos(electionTicks: Int, tickNanos: UInt64, driftBound: Double) -> UInt64 {
        guard electionTicks > 2, driftBound >= 0, driftBound < 1 else { return 0 }
        return UInt64((Double(UInt64(electionTicks - 2) * tickNanos) * (1 - driftBound)).rounded(.down))
    }

    /// The longest safe lease for this timing.
    public static func longest(electionTicks: Int, tickNanos: UInt64, driftBound: Double) -> ReadLease {
        ReadLease(durationNanos: longestSafeNanos(electionTicks: electionTicks, tickNanos: tickNanos, driftBound: driftBound),
                  tickNanos: tickNanos, driftBound: driftBound)
    }

    /// Why this lease is unsafe (or useless) with these settings, nil when it is fine.
    public func problem(electionTicks: Int, checkQuorum: Bool) -> String? {
        guard checkQuorum else {
            return "lease reads need check quorum: without it followers vote for a new leader while the old one's lease holds"
        }
        guard driftBound >= 0, driftBound <= 0.5 else {
            return "lease clock drift bound \(driftBound) is outside [0, 0.5]"
        }
        guard tickNanos > 0 else { return "lease tick length must be positive" }
        guard electionTicks > 2 else { return "lease reads need an election timeout of more than 2 ticks, got \(electionTicks)" }
        let longest = Self.longestSafeNanos(electionTicks: electionTicks, tickNanos: tickNanos, driftBound: driftBound)
        guard durationNanos > 0, durationNanos <= longest else {
            return "a lease of \(durationNanos / 1_000) µs could outlive an election: with an election timeout of \(electionTicks) ticks of \(tickNanos / 1_000) µs and a clock drift bound of \(driftBound), at most \(longest / 1_000) µs is safe"
        }
        return nil
    }
}
