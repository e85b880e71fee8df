/// Sessions the gateway owns for clients that keep none (client_id = 0), so that its own
/// retries stay exactly-once. A session serves one request at a time (the protocol allows
/// one outstanding operation per session), so concurrent requests borrow distinct ones.
struct SessionPool {
    struct Session {
        var clientID: UInt64
        var nextSeq: UInt64
    }

    private var idle: [Session] = []
    let maxIdle: Int

    init(maxIdle: Int) {
        self.maxIdle = maxIdle
    }

    mutating func borrow() -> Session {
        idle.popLast() ?? Session(clientID: UInt64.random(in: 1...UInt64.max), nextSeq: 1)
    }

    /// Returns a session after its request ended (whatever the outcome: a later request
    /// simply takes the next seq).
    mutating func giveBack(_ session: Session) {
        if idle.count < maxIdle { idle.append(session) }
    }
}
