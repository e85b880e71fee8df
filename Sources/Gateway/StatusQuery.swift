import Wire

/// An OP_STATUS asked at the gateway: one NodeStatus per node, answered when every asked node
/// has answered or at `deadline` with what came.
struct StatusQuery {
    let client: UInt64
    let clientRequestID: UInt64
    let deadline: UInt64
    var results: [UInt64: NodeStatus] = [:]
    var asked: Set<UInt64> = []
}
