import Wire

/// One client request the gateway owes an answer, from acceptance until it is answered.
struct PendingRequest {
    let client: UInt64
    let clientRequestID: UInt64
    /// What goes to kvd: every copy carries the same client_id and seq (exactly-once rests on
    /// it), except that a Get under a lent session may move to a fresh session (reads change
    /// nothing).
    var request: KvRequest
    /// Monotonic nanoseconds by which the client gets an answer, whatever happens.
    let deadline: UInt64
    /// For client_id = 0: the gateway session lent to this request.
    var lentSession: SessionPool.Session?
    var place: Place = .waiting
    var attempts = 0
    /// The node tried last, to try another first when it failed.
    var lastNode: UInt64 = 0

    enum Place: Equatable {
        /// Not sent anywhere: waits for a node that can take it (in `GatewayCore.waiting`).
        case waiting
        /// Waits for a backoff entry `retryToken` in the timer heap.
        case backingOff(retryToken: UInt64)
        /// Sent to `node` under `upstreamID`; the timer heap holds its attempt deadline.
        case sent(node: UInt64, upstreamID: UInt64)
    }
}
