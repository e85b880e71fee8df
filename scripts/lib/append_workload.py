#!/usr/bin/env python3
"""An appends-only client workload and its linearizability check (used by scripts/test-netns).

Clients (threads, each its own kvraft session through examples/python/kvclient.py) append
unique tokens "c<client>.<n>;" to one key and now and then read it, for --duration seconds,
recording when each operation was invoked and when (if ever) it was answered. Afterwards the
key is read once more and the history is checked against what a linearizable append-only
register allows:
  - every acknowledged append's token is in the final value exactly once; an unanswered
    (timed-out) append's token at most once; no token that was never sent;
  - real-time order: if append A was answered before append B was invoked, A precedes B;
  - every read returned a prefix of the final value, holding every append answered before
    the read was invoked and no append invoked after the read was answered;
  - reads do not go back in time: a read invoked after another was answered is no shorter.
Exit 0 when the history passes, 1 on a violation (each printed), 2 if the run itself failed.
Needs kv_pb2 (protoc --python_out) on PYTHONPATH.
"""
import argparse
import bisect
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python"))
import kv_pb2  # noqa: E402
from kvclient import KvClient  # noqa: E402


def run_client(index, gateway, key, stop_at, seed, history, lock):
    rng = random.Random(seed * 1000 + index)
    client = KvClient(gateway, timeout=8.0)
    n = 0
    while time.monotonic() < stop_at:
        if rng.random() < 0.2:
            invoked = time.monotonic()
            try:
                response = client.call(kv_pb2.OP_GET, key)
                answered = time.monotonic()
                if response.status in (kv_pb2.STATUS_OK, kv_pb2.STATUS_NO_KEY):
                    value = response.value.decode() if response.status == kv_pb2.STATUS_OK else ""
                    with lock:
                        history["reads"].append({"invoked": invoked, "answered": answered, "value": value})
            except TimeoutError:
                pass  # a read without an answer constrains nothing
            continue
        n += 1
        token = "c%d.%d" % (index, n)
        invoked = time.monotonic()
        entry = {"token": token, "invoked": invoked, "answered": None}
        try:
            status = client.call(kv_pb2.OP_APPEND, key, (token + ";").encode()).status
            if status != kv_pb2.STATUS_OK:
                entry["error"] = "status %d" % status
            else:
                entry["answered"] = time.monotonic()
        except TimeoutError:
            entry["error"] = "timeout"
        with lock:
            history["appends"].append(entry)


def check(history, final):
    problems = []
    tokens = [t for t in final.split(";") if t]
    position = {}
    for i, t in enumerate(tokens):
        if t in position:
            problems.append("token %s appears twice in the final value" % t)
        position.setdefault(t, i)
    appends = {a["token"]: a for a in history["appends"]}
    for t in tokens:
        if t not in appends:
            problems.append("token %s in the final value was never sent" % t)
    acked = [a for a in appends.values() if a["answered"] is not None]
    for a in acked:
        if a["token"] not in position:
            problems.append("acknowledged append %s is missing from the final value" % a["token"])
    # Real-time order over the final value: no earlier token invoked after a later one was answered.
    latest_invoked, latest_token = -1.0, None
    for t in tokens:
        a = appends.get(t)
        if a is None:
            continue
        if a["answered"] is not None and latest_invoked > a["answered"]:
            problems.append("%s (answered at %.3f) comes after %s (invoked at %.3f later)" %
                            (t, a["answered"], latest_token, latest_invoked))
        if a["invoked"] > latest_invoked:
            latest_invoked, latest_token = a["invoked"], t
    # Reads, in O(n log n): prefix maxima over the final order and over answer times.
    acked_by_answer = sorted((a["answered"], position.get(a["token"], len(tokens))) for a in acked)
    answer_times = [t for t, _ in acked_by_answer]
    latest_position, highest = [], -1
    for _, pos in acked_by_answer:
        highest = max(highest, pos)
        latest_position.append(highest)
    invoked_prefix_max, highest = [], -1.0
    for t in tokens:
        highest = max(highest, appends[t]["invoked"] if t in appends else -1.0)
        invoked_prefix_max.append(highest)
    for r in history["reads"]:
        value = r["value"]
        if not final.startswith(value):
            problems.append("a read returned %r..., not a prefix of the final value" % value[:60])
            continue
        length = len([t for t in value.split(";") if t])
        i = bisect.bisect_left(answer_times, r["invoked"])
        if i > 0 and latest_position[i - 1] >= length:
            problems.append("a read at %.3f misses an append answered before it" % r["invoked"])
        if length > 0 and invoked_prefix_max[length - 1] > r["answered"]:
            problems.append("a read answered at %.3f holds an append invoked later" % r["answered"])
    reads = sorted(history["reads"], key=lambda r: r["answered"])
    read_answers, longest, highest = [r["answered"] for r in reads], [], -1
    for r in reads:
        highest = max(highest, len(r["value"]))
        longest.append(highest)
    for r in reads:
        i = bisect.bisect_left(read_answers, r["invoked"])
        if i > 0 and longest[i - 1] > len(r["value"]):
            problems.append("a read at %.3f is shorter than one answered before it" % r["invoked"])
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--duration", type=float, required=True, help="seconds of workload")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("KVRAFT_SEED", "1")))
    parser.add_argument("--key", default="netns-appends")
    parser.add_argument("--history", help="write the history here as JSON")
    opts = parser.parse_args()
    history, lock = {"appends": [], "reads": []}, threading.Lock()
    stop_at = time.monotonic() + opts.duration
    threads = [threading.Thread(target=run_client, daemon=True,
                                args=(i + 1, opts.gateway, opts.key.encode(), stop_at, opts.seed, history, lock))
               for i in range(opts.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(opts.duration + 30)   # each operation gives up after 8 s
        if t.is_alive():
            print("workload: a client thread did not finish", file=sys.stderr)
            return 2
    final = KvClient(opts.gateway, timeout=30.0).get(opts.key.encode())
    if final is None:
        print("workload: the final read found no value", file=sys.stderr)
        return 2
    final = final.decode()
    if opts.history:
        with open(opts.history, "w") as f:
            json.dump({"history": history, "final": final}, f)
    problems = check(history, final)
    acked = sum(1 for a in history["appends"] if a["answered"] is not None)
    unanswered = len(history["appends"]) - acked
    in_final = len([t for t in final.split(";") if t])
    print("workload: seed %d, %d clients, %d appends acknowledged, %d unanswered (%d of them applied), %d reads; %s" %
          (opts.seed, opts.clients, acked, unanswered, in_final - acked, len(history["reads"]),
           "linearizable" if not problems else "%d VIOLATIONS" % len(problems)))
    for p in problems[:30]:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
