import Wire

/// What the gateway core asks its shell to do. The shell executes them in order and does
/// nothing else of its own accord.
public enum GatewayAction: Equatable, Sendable {
    /// Write this request to node `node`'s kvd connection.
    case sendUpstream(node: UInt64, request: KvRequest)
    /// Write this response to client connection `client` (gone clients: drop it).
    case reply(client: UInt64, response: KvResponse)
    /// Close client connection `client` once its replies are sent (a draining gateway).
    case closeClient(client: UInt64)
    /// Node `node` went silent with work pending and is now suspect (`false`: it answered
    /// again). For the log: the core has already moved its requests.
    case suspectChanged(node: UInt64, suspect: Bool)
    /// The cluster's configuration names a kvd the gateway did not know: dial it at `address`
    /// (HOST:PORT) as node `node` from now on.
    case addUpstream(node: UInt64, address: String)
    /// The leader's configuration no longer names node `node`: close its link and stop
    /// dialing it (the core already moved its requests).
    case removeUpstream(node: UInt64)
    /// Call `tick` at this time (monotonic nanoseconds). Replaces any earlier request.
    case armTimer(at: UInt64)
}
