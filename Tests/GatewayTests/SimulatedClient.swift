import Wire

/// One simulated application client. It runs one operation at a time on a shared gateway
/// connection, appending unique elements to its own key (and reading it now and then).
/// Clients with their own session retry an operation with the same seq until it gets a
/// definite answer; clients without (client_id 0, a gateway-lent session) move on after an
/// unknown outcome, since they cannot retry without risking a second application.
struct SimulatedClient {
    let index: Int
    /// 0: the gateway lends a session.
    let clientID: UInt64
    /// Resends its operation (same seq, new request id) after this long without an answer,
    /// shorter than the gateway's deadline; 0 = never.
    let impatienceNs: UInt64
    var connection: Int
    var seq: UInt64 = 0
    var completed = 0
    var operation: Operation?
    /// Request ids this client is waiting on for the current operation (several after resends).
    var outstanding: Set<UInt64> = []
    var lastSentAt: UInt64 = 0

    struct Operation {
        var op: Op
        var element: [UInt8]
    }

    var key: [UInt8] { Array("key-\(index)".utf8) }

    /// The next operation: mostly appends of a new element, sometimes a read.
    mutating func startOperation(random: inout UInt64) -> Operation {
        random = random &* 6364136223846793005 &+ 1442695040888963407
        let op: Op = (random >> 33) % 4 == 0 ? .get : .append
        seq += 1
        let operation = Operation(op: op, element: Array("<\(index).\(seq)>".utf8))
        self.operation = operation
        return operation
    }

    func request(id: UInt64) -> KvRequest {
        let operation = operation!
        return KvRequest(requestID: id, clientID: clientID, seq: clientID == 0 ? 0 : seq, op: operation.op, key: key,
                         value: operation.op == .append ? operation.element : [])
    }
}
