"""How long each process's /metrics render held its loop, from its own histogram
(kvraft_metrics_render_duration_seconds): scrapes, mean, the bucket bound the slowest fell
under, and the size of one answer. Arguments: NAME=PORT for each process; JSON on stdout."""
import json
import re
import sys
import urllib.request

NAME = "kvraft_metrics_render_duration_seconds"
SAMPLE = re.compile(r'^(\w+)(?:\{([^}]*)\})? (\S+)$')

result = {}
for arg in sys.argv[1:]:
    process, port = arg.split("=")
    try:
        body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=5).read()
    except OSError as error:
        result[process] = {"error": str(error)}
        continue
    count = total = 0.0
    buckets = []
    for line in body.decode().splitlines():
        match = SAMPLE.match(line)
        if not match:
            continue
        name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
        if name == NAME + "_count":
            count = value
        elif name == NAME + "_sum":
            total = value
        elif name == NAME + "_bucket":
            bound = re.search(r'le="([^"]+)"', labels).group(1)
            buckets.append((float(bound), value))
    buckets.sort()
    # The slowest render lies under the first bound whose bucket already holds every render.
    slowest = next((bound for bound, seen in buckets if seen >= count), None) if count else None
    result[process] = {
        "renders": int(count),
        "mean_us": round(1e6 * total / count, 1) if count else None,
        "slowest_under_us": None if slowest is None or slowest == float("inf") else round(1e6 * slowest),
        "answer_bytes": len(body),
    }
json.dump(result, sys.stdout, indent=2)
print()
