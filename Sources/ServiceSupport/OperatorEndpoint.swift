import EventLoop
import Metrics
import Prometheus

/// `/metrics` and `/health` for operators, on the process's loop (libevent's evhttp): the
/// metrics are swift-metrics handles exported by swift-prometheus's registry.
///
/// Gauges that mirror state the process already keeps (term, indexes, key counts) are set by
/// `refresh` right before each scrape, so the request path pays nothing for them; counters and
/// histograms are updated where things happen.
public final class OperatorEndpoint {
    private let server: HTTPServer
    public var port: Int { server.port }

    /// Routes every swift-metrics handle made from now on to a Prometheus registry. Call once,
    /// before the process creates its metrics; `histogramBuckets` gives duration histograms
    /// buckets that fit what they measure (by metric name).
    public static func bootstrapMetrics(histogramBuckets: [String: [Duration]]) -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = histogramBuckets.merging([renderDurationLabel: LatencyBuckets.render]) { own, _ in own }
        MetricsSystem.bootstrap(factory)
        return registry
    }

    /// How long building one `/metrics` answer held the loop: every request to this process
    /// waited that long behind the scrape. A scrape shows the renders before its own.
    static let renderDurationLabel = "kvraft_metrics_render_duration_seconds"

    public init(loop: EventLoop, endpoint: Endpoint, registry: PrometheusCollectorRegistry,
                refresh: @escaping () -> Void, health: @escaping () -> Health) throws {
        var buffer: [UInt8] = []
        let renderDuration = Metrics.Timer(label: OperatorEndpoint.renderDurationLabel)
        let clock = ContinuousClock()
        server = try HTTPServer(loop: loop, endpoint: endpoint) { path in
            switch path {
            case "/metrics":
                let start = clock.now
                refresh()
                buffer.removeAll(keepingCapacity: true)
                registry.emit(into: &buffer)
                renderDuration.record(duration: start.duration(to: clock.now))
                return HTTPServer.Response(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: buffer)
            case "/health":
                let state = health()
                return HTTPServer.Response(status: state.httpStatus, contentType: "application/json", body: Array((state.json + "\n").utf8))
            default:
                return .text(404, "not found: try /metrics or /health\n")
            }
        }
    }
}

/// Bucket bounds shared by the duration histograms.
public enum LatencyBuckets {
    /// 50 µs … 1 s: fsyncs and loopback round trips.
    public static let fine: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
    ]
    /// 250 µs … 10 s: client requests, retries included.
    public static let requests: [Duration] = [
        .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2500), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .microseconds(2_500_000), .seconds(5), .seconds(10),
    ]
    /// 10 µs … 100 ms: work done on the loop between two events (a scrape's render).
    public static let render: [Duration] = [
        .microseconds(10), .microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250),
        .microseconds(500), .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(100),
    ]
    /// 10 ms … 60 s: snapshots.
    public static let slow: [Duration] = [
        .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
    ]
}
