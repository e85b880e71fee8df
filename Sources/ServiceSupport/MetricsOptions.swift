import ArgumentParser
import EventLoop

/// `--metrics-listen HOST:PORT`: serve `/metrics` (Prometheus text) and `/health` over HTTP.
public struct MetricsOptions: ParsableArguments, Sendable {
    @Option(help: "HOST:PORT to serve /metrics (Prometheus text format) and /health on, over HTTP. Off when not given.")
    public var metricsListen: String?

    public init() {}

    public func validate() throws {
        if let metricsListen, Endpoint.parseHostPort(metricsListen) == nil {
            throw ValidationError("--metrics-listen '\(metricsListen)' is not HOST:PORT")
        }
    }

    public var endpoint: Endpoint? { metricsListen.flatMap(Endpoint.parseHostPort) }
}
