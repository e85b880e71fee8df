#!/usr/bin/env python3
"""Membership benchmark (run through `scripts/bench --membership`).

A fresh durable cluster (3 x raftd + kvd, one gateway that knows only nodes 1-3) is loaded with
--state-mb of data (100 KB values), then `kvbench failover` runs as steady load (8 clients) for
the rest of the run while, --repeats times:
  1. a spare node (raftd --join + kvd) is started and `kvctl member add` makes it a learner; the
     time until `kvctl member list` shows it a voter is "add to voter" (it catches up by
     snapshot and log, then is promoted automatically);
  2. the leader is removed with `kvctl member remove` (it hands leadership over first, then
     steps down); the longest stretch without a completed client operation from the removal
     until 3 s later is its gap (target <= 100 ms); the removed node's processes are stopped.
kvbench writes every stretch without a completed operation to a timeline (CLOCK_MONOTONIC, the
clock of time.monotonic_ns). Every process is started and stopped here, by PID; every wait is
bounded. Prints a table; JSON to bench/results/membership-<UTC timestamp>.json.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench", "failover"))
from failover import Timeline, free_ports, leader_of, parse_status, rate  # noqa: E402

REMOVAL_WINDOW_S = 3.0
ADD_TIMEOUT_S = 300.0
REMOVAL_TARGET_MS = 100


def log(message):
    print(f"bench membership: {message}", file=sys.stderr, flush=True)


class Stop(Exception):
    pass


class Cluster:
    def __init__(self, bin_dir, work, max_nodes):
        self.bin, self.work = bin_dir, work
        ports = free_ports(2 * max_nodes + 1)
        self.raft_port = {n: ports[n - 1] for n in range(1, max_nodes + 1)}
        self.kvd_port = {n: ports[max_nodes + n - 1] for n in range(1, max_nodes + 1)}
        self.gateway = f"127.0.0.1:{ports[-1]}"
        self.procs = {}

    def raft_addr(self, n):
        return f"127.0.0.1:{self.raft_port[n]}"

    def kvd_addr(self, n):
        return f"127.0.0.1:{self.kvd_port[n]}"

    def spawn(self, name, command):
        with open(f"{self.work}/{name}.log", "ab") as out:
            self.procs[name] = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def start_node(self, n, join):
        os.makedirs(f"{self.work}/data{n}", exist_ok=True)
        raftd = [f"{self.bin}/raftd", "--id", str(n), "--listen", self.raft_addr(n),
                 "--apply-socket", f"{self.work}/raft{n}.sock", "--data-dir", f"{self.work}/data{n}"]
        if join:
            raftd.append("--join")
        else:
            raftd += ["--peers", ",".join(f"{i}={self.raft_addr(i)}" for i in (1, 2, 3))]
        self.spawn(f"raftd{n}", raftd)
        self.spawn(f"kvd{n}", [f"{self.bin}/kvd", "--id", str(n), "--listen", self.kvd_addr(n),
                                "--raft-socket", f"{self.work}/raft{n}.sock"])

    def start(self):
        for n in (1, 2, 3):
            self.start_node(n, join=False)
        self.spawn("gw", [f"{self.bin}/kvgateway", "--listen", self.gateway,
                          "--nodes", ",".join(f"{i}={self.kvd_addr(i)}" for i in (1, 2, 3))])

    def stop_node(self, n):
        for name in (f"raftd{n}", f"kvd{n}"):
            p = self.procs.get(name)
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)

    def stop_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)

    def kvctl(self, *args, timeout_ms=5000):
        cmd = [f"{self.bin}/kvctl", "--gateway", self.gateway, "--timeout-ms", str(timeout_ms), *args]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_ms / 1000 + 5)
        except subprocess.TimeoutExpired:
            return 124, ""
        return done.returncode, done.stdout + done.stderr

    def members(self):
        """{id: role} from `kvctl member list`, or {} if it did not answer."""
        status, out = self.kvctl("member", "list", timeout_ms=1000)
        if status != 0:
            return {}
        found = {}
        for line in out.splitlines()[1:]:
            cells = re.split(r"\s{2,}", line.strip())
            if len(cells) >= 4 and cells[0].isdigit():
                found[int(cells[0])] = cells[3]
        return found

    def leader(self):
        status, out = self.kvctl("status", timeout_ms=1000)
        return leader_of(parse_status(out)) if status == 0 else None


def wait_for(timeout, check, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    return None


def longest_gap(timeline, lo, hi):
    best = 0
    for s, e in timeline.gaps:
        if e > lo and s < hi:
            best = max(best, e - s)
    return round(best / 1e6, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--state-mb", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--commit", default="unknown")
    a = ap.parse_args()
    if a.repeats < 1 or a.state_mb < 1:
        sys.exit("bench membership: --repeats and --state-mb must be at least 1")
    work = tempfile.mkdtemp(prefix="kvmembership.")
    cluster = Cluster(a.bin, work, max_nodes=3 + a.repeats)
    load = None
    def on_term(_signum, _frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    rows = []
    status = 0
    try:
        cluster.start()
        if not wait_for(30, cluster.leader, 0.3):
            raise Stop(f"no leader within 30 s; logs in {work}")
        keys = a.state_mb * 10
        log(f"loading {a.state_mb} MB: {keys} keys of 100,000 bytes")
        started = time.monotonic()
        preload = subprocess.run([f"{a.bin}/kvbench", "--target", cluster.gateway, "--op", "put", "--keys", str(keys),
                                  "--value-size", "100000", "--preload", "--clients", "16", "--total", "1", "--quiet"],
                                 capture_output=True, text=True, timeout=900)
        if preload.returncode != 0:
            raise Stop(f"preload failed: {preload.stderr[-2000:]}")
        log(f"loaded in {time.monotonic() - started:.1f} s")
        timeline_path = f"{work}/timeline.txt"
        timeline = Timeline(timeline_path)
        with open(f"{work}/kvbench.json", "wb") as out, open(f"{work}/kvbench.log", "ab") as err:
            load = subprocess.Popen([f"{a.bin}/kvbench", "failover", "--target", cluster.gateway, "--clients", str(a.clients),
                                     "--conns", "2", "--attempt-timeout-ms", "2000", "--timeline", timeline_path,
                                     "--max-duration", "1800", "--label", "membership", "--json", "--seed", "7"],
                                    stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        time.sleep(2)
        for r in range(a.repeats):
            spare = 4 + r
            cluster.start_node(spare, join=True)
            time.sleep(0.5)
            add_ns = time.monotonic_ns()
            code, out = cluster.kvctl("member", "add", str(spare), "--raft", cluster.raft_addr(spare),
                                      "--kvd", cluster.kvd_addr(spare), timeout_ms=20000)
            if code != 0:
                raise Stop(f"member add {spare} failed: {out.strip()}")
            voter = wait_for(ADD_TIMEOUT_S, lambda: cluster.members().get(spare) == "voter", 0.05)
            voter_ns = time.monotonic_ns()
            if not voter:
                raise Stop(f"node {spare} was not a voter {ADD_TIMEOUT_S:.0f} s after member add; logs in {work}")
            time.sleep(1.5)
            timeline.read()
            add_gap = longest_gap(timeline, add_ns, voter_ns)
            leader = wait_for(10, cluster.leader, 0.1)
            if leader is None:
                raise Stop("no leader before the removal")
            remove_ns = time.monotonic_ns()
            code, out = cluster.kvctl("member", "remove", str(leader), timeout_ms=20000)
            if code != 0:
                raise Stop(f"member remove {leader} failed: {out.strip()}")
            new_leader = wait_for(10, lambda: (lambda l: l if l not in (None, leader) else None)(cluster.leader()), 0.05)
            time.sleep(max(0.0, REMOVAL_WINDOW_S - (time.monotonic_ns() - remove_ns) / 1e9) + 0.3)
            timeline.read()
            remove_gap = longest_gap(timeline, remove_ns, remove_ns + int(REMOVAL_WINDOW_S * 1e9))
            cluster.stop_node(leader)
            row = {"repeat": r + 1, "added": spare, "add_to_voter_s": round((voter_ns - add_ns) / 1e9, 2),
                   "gap_during_add_ms": add_gap, "removed_leader": leader, "new_leader": new_leader,
                   "removal_gap_ms": remove_gap,
                   "ops_per_s_during_add": rate(timeline.ticks, add_ns, voter_ns),
                   "ops_per_s_around_removal": rate(timeline.ticks, remove_ns, remove_ns + int(REMOVAL_WINDOW_S * 1e9))}
            rows.append(row)
            log(f"#{r + 1}: node {spare} voter after {row['add_to_voter_s']} s (longest stall {add_gap} ms); "
                f"leader {leader} removed -> {new_leader}, longest stall {remove_gap} ms")
            time.sleep(1)
    except Stop as stop:
        log(f"stopped: {stop}")
        status = 1
        a.keep = True
    except KeyboardInterrupt:
        status = 130
    finally:
        if load is not None and load.poll() is None:
            load.send_signal(signal.SIGTERM)
            try:
                load.wait(timeout=10)
            except subprocess.TimeoutExpired:
                load.kill()
        cluster.stop_all()
        if a.keep:
            log(f"logs and data kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if not rows:
        return status or 1
    try:
        summary = json.load(open(f"{work}/kvbench.json")) if a.keep else None
    except (OSError, ValueError):
        summary = None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = os.path.join(ROOT, "bench", "results", f"membership-{stamp}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    json.dump({"timestamp_utc": stamp, "commit": a.commit, "state_mb": a.state_mb, "clients": a.clients,
               "machine": {"cpus": os.cpu_count(), "loadavg": os.getloadavg()}, "runs": rows, "load": summary},
              open(out, "w"), indent=2)
    header = ["repeat", "added", "add → voter s", "longest stall during add ms", "removed leader", "new leader",
              "longest stall at removal ms", "met (≤ 100 ms)?"]
    lines = [header]
    for row in rows:
        lines.append([str(row["repeat"]), str(row["added"]), f'{row["add_to_voter_s"]:.2f}', f'{row["gap_during_add_ms"]:.0f}',
                      str(row["removed_leader"]), str(row["new_leader"]), f'{row["removal_gap_ms"]:.0f}',
                      "yes" if row["removal_gap_ms"] <= REMOVAL_TARGET_MS else "NO"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(c.rjust(widths[i]) for i, c in enumerate(line)))
    adds = [row["add_to_voter_s"] for row in rows]
    gaps = [row["removal_gap_ms"] for row in rows]
    print(f"add to voter with {a.state_mb} MB: median {statistics.median(adds):.2f} s; leader removal: median stall "
          f"{statistics.median(gaps):.0f} ms, max {max(gaps):.0f} ms ({a.clients} clients through one gateway that knew "
          f"only nodes 1-3; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; written to "
          f"{os.path.relpath(out, ROOT)})")
    return status


if __name__ == "__main__":
    sys.exit(main())
