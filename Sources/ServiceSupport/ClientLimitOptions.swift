import ArgumentParser
import EventLoop

/// The command-line flags bounding what clients can make a server process (kvd, kvgateway)
/// hold: shared so both parse and check them the same way.
public struct ClientLimitOptions: ParsableArguments {
    @Option(help: "Client connections open at once; beyond it a new connection is closed at once.")
    public var maxConnections: Int = ProcessLimits().maxConnectionsPerListener

    @Option(help: "Seconds a client connection may stay quiet (no request, no reply, none of its unsent replies read) before it is closed.")
    public var idleTimeoutS: Double = ProcessLimits().idleTimeoutMs / 1000

    @Option(help: "Milliseconds a client may take to finish a frame it started before its connection is closed.")
    public var partialFrameTimeoutMs: Double = ProcessLimits().partialFrameTimeoutMs

    @Option(help: "Unsent reply bytes one client may hold; a client over it whose unsent replies do not shrink for half a second is disconnected.")
    public var maxClientOutputBytes: Int = ProcessLimits().maxOutputBytesPerClient

    @Option(help: "Unsent reply bytes of all clients together; while over it, clients whose unsent replies do not shrink for half a second are disconnected, largest first.")
    public var clientOutputBudgetBytes: Int = ProcessLimits().clientOutputBudgetBytes

    @Option(help: "Bytes of unfinished request frames all clients together may hold; over it, the clients holding the largest are disconnected at once.")
    public var clientInputBudgetBytes: Int = ProcessLimits().clientInputBudgetBytes

    public init() {}

    public var limits: ProcessLimits {
        var limits = ProcessLimits()
        limits.maxConnectionsPerListener = maxConnections
        limits.idleTimeoutMs = idleTimeoutS * 1000
        limits.partialFrameTimeoutMs = partialFrameTimeoutMs
        limits.maxOutputBytesPerClient = maxClientOutputBytes
        limits.clientOutputBudgetBytes = clientOutputBudgetBytes
        limits.clientInputBudgetBytes = clientInputBudgetBytes
        return limits
    }

    public func validate() throws {
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        guard idleTimeoutS >= 1 else { throw ValidationError("--idle-timeout-s must be at least 1") }
        guard partialFrameTimeoutMs >= 10 else { throw ValidationError("--partial-frame-timeout-ms must be at least 10") }
        if let problem = limits.problem {
            throw ValidationError("client limits: \(problem)")
        }
    }
}
