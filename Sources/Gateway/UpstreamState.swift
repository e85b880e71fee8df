/// What the core knows of one node's kvd link: whether it is connected, what it owes us, and
/// whether it has gone silent (suspect).
struct UpstreamState {
    enum Owed: Equatable {
        case request(key: UInt64)
        case health
        case status(query: UInt64)
        /// The leadership subscription's first answer (later ones are pushes).
        case watch
    }

    var connected = false
    /// Upstream request id → what it answers.
    var owed: [UInt64: Owed] = [:]
    /// Set while anything is owed: when the last answer came (or the first thing was sent).
    var waitingSince: UInt64?
    var suspect = false
    /// The leader term known when it became suspect: its hints of that term or older are stale.
    var suspectAtTerm: UInt64 = 0
    /// The request id of the leadership subscription on the current connection.
    var watchID: UInt64 = 0
    var healthSentAt: UInt64?
    var lastHeard: UInt64 = 0

    /// Usable for client requests.
    var isUsable: Bool { connected && !suspect }

    mutating func sent(_ upstreamID: UInt64, _ what: Owed, now: UInt64) {
        if owed.isEmpty { waitingSince = now }
        owed[upstreamID] = what
    }

    /// Something arrived: the node is alive. Returns what the frame answers, if anything.
    mutating func heard(_ upstreamID: UInt64, now: UInt64) -> Owed? {
        lastHeard = now
        let what = owed.removeValue(forKey: upstreamID)
        waitingSince = owed.isEmpty ? nil : now
        return what
    }

    func isSilent(now: UInt64, after limit: UInt64) -> Bool {
        guard let since = waitingSince else { return false }
        return now >= since && now - since >= limit
    }
}
