/// What a leader knows about one follower's log, and how it is sending to it.
struct Progress {
    enum Mode: Equatable {
        /// We do not know where the logs diverge: send one append, wait for its answer.
        case probe
        /// The follower accepted our appends: stream them, optimistically advancing `next`.
        case replicate
        /// The entries the follower needs were compacted away, so it was sent the snapshot up to
        /// `index`. Nothing else is sent until it acknowledges that index (its log then continues
        /// from there) or `snapshotTimeout` ticks pass (the snapshot was probably lost: probe again).
        case snapshot(index: UInt64)
    }

    /// Highest index known to match the leader's log (durable on the follower).
    var match: UInt64 = 0
    /// Index of the next entry to send.
    var next: UInt64
    var mode: Mode = .probe
    /// In probe mode: an append is out and unanswered, so we wait (until an answer or a heartbeat
    /// response) instead of flooding a follower whose log position we do not know.
    var probeSent = false
    /// In replicate mode: last index of each unacknowledged append, oldest first. Bounded by
    /// `maxInflight`; when full the follower is paused until acknowledgements free room.
    private(set) var inflight: [UInt64] = []
    let maxInflight: Int
    /// Heartbeat answers received in replicate mode while appends were in flight and `match` did
    /// not move: the follower is alive, so those appends were probably lost.
    var stalledHeartbeats = 0
    /// Ticks since this follower last answered us; check quorum counts it live while below the
    /// election timeout.
    var ticksSinceHeard = 0
    /// In snapshot mode: ticks since the snapshot was sent.
    private(set) var snapshotElapsed = 0
    /// Whether the follower's state machine was attached when it last answered.
    var stateMachineAttached = true

    init(next: UInt64, maxInflight: Int) {
        self.next = next
        self.maxInflight = maxInflight
    }

    var isPaused: Bool {
        switch mode {
        case .probe: probeSent
        case .replicate: inflight.count >= maxInflight
        case .snapshot: true
        }
    }

    /// Records that the snapshot up to `index` was just sent: wait for its acknowledgement.
    mutating func sentSnapshot(index: UInt64) {
        mode = .snapshot(index: index)
        inflight.removeAll()
        probeSent = false
        stalledHeartbeats = 0
        snapshotElapsed = 0
    }

    /// One tick. In snapshot mode, gives up waiting after `snapshotTimeout` ticks and falls back
    /// to probing from `match + 1`, which sends the snapshot again if the follower still needs it.
    mutating func tick(snapshotTimeout: Int) {
        ticksSinceHeard += 1
        guard case .snapshot = mode else { return }
        snapshotElapsed += 1
        if snapshotElapsed >= snapshotTimeout {
            mode = .probe
            probeSent = false
            next = match + 1
        }
    }

    /// Records an append covering up to `lastIndex` that was just sent.
    mutating func sent(through lastIndex: UInt64, entryCount: Int) {
        switch mode {
        case .probe:
            probeSent = true
        case .snapshot:
            preconditionFailure("raft: append sent to a follower waiting for a snapshot")
        case .replicate:
            if entryCount > 0 {
                next = lastIndex + 1
                inflight.append(lastIndex)
            }
        }
    }

    /// A success response for `index`. Returns false when it tells us nothing new (stale/duplicate).
    mutating func acknowledge(_ index: UInt64) -> Bool {
        if case .snapshot(let pending) = mode {
            guard index >= pending else {
                // An answer to an append sent before the snapshot: it still proves what the
                // follower holds, but the snapshot's own answer is what resumes replication.
                guard index > match else { return false }
                match = index
                return true
            }
            mode = .probe  // the follower's log now continues from `index`: replicate from there
        }
        guard index > match else {
            // Still proof the follower is reachable: let a paused probe go again.
            probeSent = false
            return false
        }
        match = index
        next = max(next, index + 1)
        probeSent = false
        stalledHeartbeats = 0
        inflight.removeAll { $0 <= index }
        if mode == .probe { becomeReplicate() }
        return true
    }

    /// A rejection of the append whose prevLogIndex was `rejectedIndex`, with the leader's choice of
    /// the next index to try (computed from the follower's hint). Returns false if stale.
    mutating func reject(rejectedIndex: UInt64, suggestedNext: UInt64) -> Bool {
        // An append we already know matched was rejected only because it was old news.
        guard rejectedIndex > match else { return false }
        // An append sent before the snapshot; the snapshot's answer (or its timeout) decides.
        if case .snapshot = mode { return false }
        if mode == .probe && rejectedIndex != next - 1 {
            return false  // answer to an older probe; the current one is still out
        }
        mode = .probe
        inflight.removeAll()
        probeSent = false
        // Never retry at or above the rejected point, never below what is known to match.
        next = max(match + 1, min(suggestedNext, rejectedIndex))
        return true
    }

    /// The follower says its log ends at `lastIndex`, below the `match` we recorded: it lost its
    /// log (a wiped or replaced data dir), or the report is older than the match. Either way
    /// probing again from its stated end is safe: `match` only steers replication and its count
    /// toward commit (the commit index never moves back), and a follower that does hold more
    /// answers the probe with its real position. Returns false when it tells us nothing new.
    mutating func followerLogEnds(at lastIndex: UInt64) -> Bool {
        guard lastIndex < match else { return false }
        match = lastIndex
        next = lastIndex + 1
        mode = .probe
        probeSent = false
        inflight.removeAll()
        stalledHeartbeats = 0
        return true
    }

    mutating func becomeReplicate() {
        mode = .replicate
        next = match + 1
        inflight.removeAll()
    }

    /// A heartbeat response from a follower whose `match` is behind `lastIndex`. Returns whether
    /// to send it an append now: always in probe mode (the probe may have been lost); in replicate
    /// mode only once two heartbeat rounds passed without progress, falling back to probing from
    /// `match + 1` (appends still in flight on a healthy link would make a resend redundant);
    /// never while a snapshot is on its way (its timeout covers a lost one).
    mutating func heartbeatAnswered(lastIndex: UInt64) -> Bool {
        switch mode {
        case .snapshot:
            return false
        case .probe:
            probeSent = false
            return true
        case .replicate:
            if inflight.isEmpty { return next <= lastIndex }
            stalledHeartbeats += 1
            guard stalledHeartbeats >= 2 else { return false }
            stalledHeartbeats = 0
            mode = .probe
            probeSent = false
            inflight.removeAll()
            next = match + 1
            return true
        }
    }
}
