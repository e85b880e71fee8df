"""Reads `perf script -F comm,pid,ip,sym,dso` (with call stacks) on stdin and prints, as JSON,
how many samples each cluster process had and how many of them have a TLS or a metrics frame
anywhere in their stack. Argument: the cluster's pids, comma-separated, in the order
raftd1,kvd1,raftd2,kvd2,raftd3,kvd3,gateway (bench/security/costs starts them so).

Samples of kvbench (the load generator, on the same CPUs) are counted apart, as "client": its
TLS work competes with the cluster's for the same cores, so it is part of W3's throughput cost.

A sample counts once even when several of its frames match. OpenSSL is built without frame
pointers, so a stack through it may stop early; its own frames are still at the top and count."""
import json
import re
import sys

ROLES = ["raftd-1", "kvd-1", "raftd-2", "kvd-2", "raftd-3", "kvd-3", "gateway"]
# OpenSSL, and libevent's OpenSSL bufferevent (its filter's own bookkeeping and copies).
TLS = re.compile(r"\((/\S*/)?lib(ssl|crypto|event_openssl)[-.]")
# swift-metrics (CoreMetrics/Metrics), swift-prometheus, swift-atomics under them, the metric
# types of raftd, kvd and the gateway, and the operator endpoint's HTTP server (evhttp).
METRICS = re.compile(r"s10Prometheus|s11CoreMetrics|s7Metrics|s7Atomics|RequestCounters|GatewayMetrics|KVMetrics|"
                     r"RaftMetrics|ClientConnectionMetrics|OperatorEndpoint|evhttp_")

pids = sys.argv[1].split(",")
role_of = {pid: ROLES[i] if i < len(ROLES) else f"process-{i + 1}" for i, pid in enumerate(pids)}
counts = {role: {"samples": 0, "tls": 0, "metrics": 0} for role in role_of.values()}
client = {"samples": 0, "tls": 0, "metrics": 0}
current = None
tls_hit = metrics_hit = False


def close_sample():
    if current is None:
        return
    entry = client if current == "client" else counts[current]
    entry["samples"] += 1
    entry["tls"] += tls_hit
    entry["metrics"] += metrics_hit


for line in sys.stdin:
    if not line.strip():
        continue
    if not line[0].isspace():
        # A sample's header: "comm pid"
        close_sample()
        fields = line.split()
        current = role_of.get(fields[1]) if len(fields) >= 2 else None
        if current is None and fields and fields[0] == "kvbench":
            current = "client"
        tls_hit = metrics_hit = False
        continue
    if current is None:
        continue
    if not tls_hit and TLS.search(line):
        tls_hit = True
    if not metrics_hit and METRICS.search(line):
        metrics_hit = True
close_sample()

total = {key: sum(entry[key] for entry in counts.values()) for key in ("samples", "tls", "metrics")}
print(json.dumps({"processes": counts, "total": total, "client": client}))
