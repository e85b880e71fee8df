/// Sessions the gateway owns for clients that keep none (client_id = 0), so that its own
/// retries stay exactly-once. A session serves one request at a time (the protocol allows
/// one outstanding operation per session), so concurrent requests borrow distinct ones.
struct SessionPool {
    struct Session: Equatable {
        var clientID: UInt64
        var nextSeq: UInt64
    }

    private var idle: [Session] = []
    let maxIdle: Int

    init(maxIdle: Int) {
        self.maxIdle = maxIdle
    }

    mutating func borrow(_ random: inout GatewayRandom) -> Session {
        idle.popLast() ?? Session(clientID: random.clientID(), nextSeq: 1)
    }

    /// Returns a session after its request got a definite answer (a later request takes the
    /// next seq). A session whose request ended otherwise is dropped, not returned: its seq's
    /// fate is unknown, and reusing the seq for another operation would get that one's reply.
    mutating func giveBack(_ session: Session) {
        if idle.count < maxIdle { idle.append(session) }
    }
}
