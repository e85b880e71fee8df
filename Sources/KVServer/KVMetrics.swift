import KVStore
import EventLoop
import Metrics
import ServiceSupport
import Wire

/// kvd's metrics (`kvraft_kv_*`): the state machine's and client listener's gauges, read at
/// scrape time, and every answered client request by operation and outcome.
final class KVMetrics {
    private let appliedIndex = Gauge(label: "kvraft_kv_applied_index")
    private let keys = Gauge(label: "kvraft_kv_keys")
    private let sessions = Gauge(label: "kvraft_kv_sessions")
    private let requests = RequestCounters(name: "kvraft_kv_requests_total")
    private let connections = ClientConnectionMetrics(prefix: "kvraft_kv")

    func refresh(_ machine: KVStateMachine, listener: Listener?) {
        connections.refresh(listener)
        appliedIndex.record(Int64(machine.appliedIndex))
        keys.record(Int64(machine.count))
        sessions.record(Int64(machine.sessionCount))
    }

    func answered(_ op: Op, _ status: Status) {
        requests.count(op, status)
    }
}
