#!/usr/bin/env python3
"""Failover benchmark (run through `scripts/bench --failover`).

For each fault kind: a fresh durable cluster (3 x raftd + kvd, 2 gateways) on free loopback
ports in a temp dir, `kvbench failover` as steady load (8 clients by default, a third each of
puts, appends and gets, each with its own client_id/seq), then N repeats of: wait until the
cluster is healthy (every process up, a leader, operations completing), find the leader, wait
a random 0.5-1.5 s, inject the fault, undo it 2 s later (SIGCONT or restart), wait until healthy
again. kvbench writes every stretch without a completed operation to a timeline (CLOCK_MONOTONIC,
the clock of time.monotonic_ns); afterwards each repeat's longest stretch overlapping
[fault, max(fault + 4 s, healthy again)] is its gap.

The `rolling` kind is an operator's rolling restart (an upgrade): one repeat restarts all three
nodes in turn and its window is the whole roll.

Only the binaries' command lines are used (raftd, kvd, kvgateway, kvctl status, kvbench), so
the benchmark runs the same on the code before and after failover changes. Every process is
started by this script, tracked by PID and stopped on exit (SIGINT/SIGTERM included); every
wait is bounded.
"""
import argparse
import json
import os
import platform
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import shutil

# kind: (what is done, target for the median gap in ms, description)
KINDS = {
    "freeze": (900, "SIGSTOP leader raftd+kvd, SIGCONT after 2 s"),
    "kill": (300, "kill -9 leader raftd+kvd, restarted after 2 s"),
    "kvd": (500, "kill -9 leader kvd only, restarted after 2 s"),
    "raftd": (300, "kill -9 leader raftd only, restarted after 2 s"),
    "term": (50, "SIGTERM leader raftd (graceful), restarted after 2 s"),
    "gateway": (300, "kill -9 one of two gateways (clients on both), restarted after 2 s"),
    "none": (None, "no fault: the same window under load (baseline noise)"),
    "rolling": (None, "rolling restart: each node in turn (followers first, the leader last) gets SIGTERM "
                      "on raftd and kvd, is restarted at once, and is healthy again before the next"),
}
DEFAULT_KINDS = ["freeze", "kill", "kvd", "raftd", "term", "gateway", "none"]
EVERY_REPEAT_LIMIT_MS = 1500
UNDO_AFTER_S = 2.0          # SIGCONT / restart this long after the fault
WINDOW_S = 4.0              # the gap is looked for from the fault to at least this much later
HEALTHY_TIMEOUT_S = 20.0    # "no recovery within N s" after this
STARTUP_TIMEOUT_S = 30.0


def log(msg):
    print(f"bench failover: {msg}", file=sys.stderr, flush=True)


class Stop(Exception):
    pass


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Cluster:
    """3 x (raftd + kvd) and 2 gateways, each process by name: raftd1..3, kvd1..3, gw1, gw2."""

    def __init__(self, bin_dir, work):
        self.bin = bin_dir
        self.work = work
        p = free_ports(8)
        self.peer = {n: p[n - 1] for n in (1, 2, 3)}
        self.kvd_port = {n: p[n + 2] for n in (1, 2, 3)}
        self.gw_port = {1: p[6], 2: p[7]}
        self.procs = {}
        self.stopped = set()   # names currently SIGSTOPped

    def gateway(self, g):
        return f"127.0.0.1:{self.gw_port[g]}"

    def command(self, name):
        kind, n = name[:-1], int(name[-1])
        if kind == "raftd":
            peers = ",".join(f"{i}=127.0.0.1:{self.peer[i]}" for i in (1, 2, 3))
            os.makedirs(f"{self.work}/data{n}", exist_ok=True)
            return [f"{self.bin}/raftd", "--id", str(n), "--listen", f"127.0.0.1:{self.peer[n]}", "--peers", peers,
                    "--apply-socket", f"{self.work}/raft{n}.sock", "--data-dir", f"{self.work}/data{n}"]
        if kind == "kvd":
            return [f"{self.bin}/kvd", "--id", str(n), "--listen", f"127.0.0.1:{self.kvd_port[n]}",
                    "--raft-socket", f"{self.work}/raft{n}.sock"]
        nodes = ",".join(f"{i}=127.0.0.1:{self.kvd_port[i]}" for i in (1, 2, 3))
        return [f"{self.bin}/kvgateway", "--listen", self.gateway(n), "--nodes", nodes]

    def start(self, name):
        out = open(f"{self.work}/{name}.log", "ab")
        self.procs[name] = subprocess.Popen(self.command(name), stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        out.close()

    def start_all(self):
        for name in ("raftd1", "raftd2", "raftd3", "kvd1", "kvd2", "kvd3", "gw1", "gw2"):
            self.start(name)

    def alive(self, name):
        p = self.procs.get(name)
        return p is not None and p.poll() is None

    def signal(self, name, sig):
        p = self.procs[name]
        if p.poll() is None:
            os.kill(p.pid, sig)
            if sig == signal.SIGSTOP:
                self.stopped.add(name)
            elif sig == signal.SIGCONT:
                self.stopped.discard(name)

    def reap(self, name, timeout=5.0):
        p = self.procs[name]
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"{name} (pid {p.pid}) did not exit within {timeout} s; killing it")
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=5)

    def stop_all(self):
        for name, p in self.procs.items():
            if p.poll() is None:
                if name in self.stopped:
                    os.kill(p.pid, signal.SIGCONT)
                os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 3
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        self.stopped.clear()

    def status(self, gateways):
        """kvctl status through the first of the gateways that answers: {node: {state, role, term, leader}}, or {}."""
        for gateway in gateways:
            nodes = self.status_via(gateway)
            if nodes:
                return nodes
        return {}

    def status_via(self, gateway):
        cmd = [f"{self.bin}/kvctl", "--gateway", gateway, "--timeout-ms", "1000", "status"]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=4).stdout
        except subprocess.TimeoutExpired:
            return {}
        return parse_status(out)

    def leader(self, gateways):
        nodes = self.status(gateways)
        return leader_of(nodes), nodes

    def accepts(self, g):
        try:
            with socket.create_connection(("127.0.0.1", self.gw_port[g]), timeout=0.5):
                return True
        except OSError:
            return False


def parse_status(out):
    """`kvctl status` output as {node: {state, role, term, leader}} ({} if it is not a table)."""
    lines = out.splitlines()
    if not lines or not lines[0].startswith("NODE"):
        return {}
    starts = [m.start() for m in re.finditer(r"\S+", lines[0])]
    names = lines[0].split()
    nodes = {}
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [len(line)])]
        row = dict(zip(names, cells))
        try:
            nodes[int(row["NODE"])] = {"state": row["STATE"], "role": row["ROLE"], "term": int(row["TERM"]),
                                       "leader": row["LEADER"]}
        except (KeyError, ValueError):
            continue
    return nodes


def leader_of(nodes):
    """The node that is up and leads the highest term, or None."""
    leaders = [(v["term"], n) for n, v in nodes.items() if v["role"] == "leader" and v["state"] == "up"]
    return max(leaders)[1] if leaders else None


def rate(ticks, lo, hi):
    """Completed operations per second between two instants, from the cumulative ticks."""
    inside = [t for t in ticks if lo <= t[0] <= hi]
    if len(inside) < 2 or inside[-1][0] == inside[0][0]:
        return None
    return round((inside[-1][1] - inside[0][1]) / ((inside[-1][0] - inside[0][0]) / 1e9), 1)


class Timeline:
    """Reads kvbench failover's timeline file as it grows (format: Sources/kvbench/FailoverTimeline.swift)."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.partial = ""
        self.gaps = []      # (from ns, to ns)
        self.errors = []    # (ns, status)
        self.slow = []      # (first sent ns, answered ns, client): one operation's wait
        self.open = []      # (first sent ns, client): unanswered when the load stopped
        self.ticks = []     # (ns, completed, last completion ns)
        self.started = None
        self.end = None

    def read(self):
        try:
            with open(self.path) as f:
                f.seek(self.offset)
                data = f.read()
                self.offset = f.tell()
        except FileNotFoundError:
            return
        data = self.partial + data
        lines = data.split("\n")
        self.partial = lines.pop()
        for line in lines:
            w = line.split()
            if not w:
                continue
            if w[0] == "gap":
                self.gaps.append((int(w[1]), int(w[2])))
            elif w[0] == "slow":
                self.slow.append((int(w[1]), int(w[2]), int(w[3])))
            elif w[0] == "open":
                self.open.append((int(w[1]), int(w[2])))
            elif w[0] == "err":
                self.errors.append((int(w[1]), w[2]))
            elif w[0] == "tick":
                self.ticks.append((int(w[1]), int(w[2]), int(w[3])))
            elif w[0] == "start":
                self.started = int(w[1])
            elif w[0] == "end":
                self.end = (int(w[1]), int(w[2]), int(w[3]))

    def last_completion(self):
        self.read()
        return self.ticks[-1][2] if self.ticks else 0


class Bench:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.cluster = None
        self.load = None

    def sleep(self, seconds):
        time.sleep(max(0.0, seconds))

    def wait_for(self, timeout, check, interval=0.1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return True
            self.sleep(interval)
        return False

    def healthy(self, timeline, gateways):
        c = self.cluster
        if self.load is not None and self.load.poll() is not None:
            raise Stop(f"kvbench failover exited with status {self.load.returncode}; see kvbench.log in {c.work}")
        if any(not c.alive(n) for n in c.procs) or c.stopped:
            return False
        if not all(c.accepts(g) for g in (1, 2)):
            return False
        leader, nodes = c.leader(gateways)
        if leader is None or len(nodes) != 3 or any(v["state"] != "up" for v in nodes.values()):
            return False
        # Operations completing: one completed within the last 300 ms (ticks come every 100 ms).
        return time.monotonic_ns() - timeline.last_completion() < 300_000_000

    def run_kind(self, kind, work):
        target_ms, description = KINDS[kind]
        a = self.args
        c = self.cluster = Cluster(a.bin, work)
        c.start_all()
        all_gw = [c.gateway(1), c.gateway(2)]
        load_gw = all_gw if kind == "gateway" else [c.gateway(1)]
        ready = self.wait_for(STARTUP_TIMEOUT_S, lambda: c.leader(all_gw)[0] is not None, 0.3)
        if not ready:
            raise Stop(f"{kind}: the fresh cluster elected no leader within {STARTUP_TIMEOUT_S:.0f} s; logs in {work}")
        tl_path = f"{work}/timeline.txt"
        timeline = self.timeline = Timeline(tl_path)
        load_cmd = [f"{a.bin}/kvbench", "failover", "--target", ",".join(load_gw), "--clients", str(a.clients),
                    "--conns", str(a.conns), "--attempt-timeout-ms", str(a.attempt_timeout_ms),
                    "--timeline", tl_path, "--max-duration", "900", "--label", kind, "--json",
                    "--seed", str(self.rng.randrange(1, 2**63))]
        with open(f"{work}/kvbench.json", "wb") as out, open(f"{work}/kvbench.log", "ab") as err:
            self.load = subprocess.Popen(load_cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        repeats = []
        for r in range(a.repeats):
            if not self.wait_for(HEALTHY_TIMEOUT_S, lambda: self.healthy(timeline, all_gw), 0.1):
                log(f"{kind}: cluster not healthy within {HEALTHY_TIMEOUT_S:.0f} s before repeat {r + 1}; skipping the rest of this kind")
                break
            # A random moment under load, then the leader as it is right now.
            self.sleep(self.rng.uniform(0.5, 1.5))
            leader, _ = c.leader(all_gw)
            if leader is None:
                log(f"{kind}: leader lost just before repeat {r + 1}; skipping the rest of this kind")
                break
            rec = self.inject(kind, leader, r)
            rec["healthy"] = self.wait_for(HEALTHY_TIMEOUT_S, lambda: self.healthy(timeline, all_gw), 0.05)
            rec["healthy_ns"] = time.monotonic_ns()
            rec["new_leader"] = c.leader(all_gw)[0]
            left = rec["fault_ns"] + int(WINDOW_S * 1e9) - time.monotonic_ns()
            self.sleep(left / 1e9 + 0.2)
            rec["window_end_ns"] = max(rec["fault_ns"] + int(WINDOW_S * 1e9), rec["healthy_ns"])
            repeats.append(rec)
            log(f"{kind} #{r + 1}: leader {leader} -> {rec['new_leader']}, "
                f"{'healthy' if rec['healthy'] else 'NOT healthy'} after {(rec['healthy_ns'] - rec['fault_ns']) / 1e9:.2f} s")
            if not rec["healthy"]:
                log(f"{kind}: no recovery within {HEALTHY_TIMEOUT_S:.0f} s; skipping the rest of this kind")
                break
        self.load.send_signal(signal.SIGTERM)
        try:
            self.load.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.load.kill()
            self.load.wait(timeout=5)
        self.load = None
        timeline.read()
        c.stop_all()
        try:
            summary = json.load(open(f"{work}/kvbench.json"))
        except (OSError, ValueError):
            summary = None
        return self.analyse(kind, target_ms, description, repeats, timeline, summary)

    def roll(self, leader, r):
        """A rolling restart: followers first, the leader last; each node healthy before the next."""
        c = self.cluster
        rec = {"repeat": r + 1, "leader": leader, "processes": []}
        rec["fault_ns"] = time.monotonic_ns()
        gateways = [c.gateway(1), c.gateway(2)]
        for node in [n for n in (1, 2, 3) if n != leader] + [leader]:
            for name in (f"raftd{node}", f"kvd{node}"):
                c.signal(name, signal.SIGTERM)
            for name in (f"raftd{node}", f"kvd{node}"):
                c.reap(name, timeout=10.0)
                c.start(name)
                rec["processes"].append(name)
            timeline = self.timeline
            if not self.wait_for(HEALTHY_TIMEOUT_S, lambda: self.healthy(timeline, gateways), 0.05):
                log(f"rolling #{r + 1}: node {node} not healthy within {HEALTHY_TIMEOUT_S:.0f} s after its restart")
                break
        rec["undo_ns"] = time.monotonic_ns()
        rec["roll_s"] = round((rec["undo_ns"] - rec["fault_ns"]) / 1e9, 2)
        return rec

    def inject(self, kind, leader, r):
        """Injects the fault, undoes it UNDO_AFTER_S later; returns the repeat's record."""
        if kind == "rolling":
            return self.roll(leader, r)
        c = self.cluster
        rec = {"repeat": r + 1, "leader": leader}
        names = {"freeze": [f"raftd{leader}", f"kvd{leader}"], "kill": [f"raftd{leader}", f"kvd{leader}"],
                 "kvd": [f"kvd{leader}"], "raftd": [f"raftd{leader}"], "term": [f"raftd{leader}"],
                 "gateway": [f"gw{self.rng.choice((1, 2))}"], "none": []}[kind]
        sig = {"freeze": signal.SIGSTOP, "term": signal.SIGTERM}.get(kind, signal.SIGKILL)
        rec["processes"] = names
        rec["fault_ns"] = time.monotonic_ns()
        for name in names:
            c.signal(name, sig)
        undo_at = time.monotonic() + UNDO_AFTER_S
        self.sleep(undo_at - time.monotonic())
        rec["undo_ns"] = time.monotonic_ns()
        for name in names:
            if kind == "freeze":
                c.signal(name, signal.SIGCONT)
            else:
                c.reap(name, timeout=5.0)
                c.start(name)
        return rec

    def analyse(self, kind, target_ms, description, repeats, timeline, summary):
        end_ns = timeline.end[0] if timeline.end else time.monotonic_ns()
        rows = []
        for rec in repeats:
            lo, hi = rec["fault_ns"], rec["window_end_ns"]
            best = (0, None)
            for s, e in timeline.gaps:
                if e > lo and s < hi and e - s > best[0]:
                    best = (e - s, s)
            # A stretch still open when the load stopped (nothing completed after it began).
            last = timeline.end[2] if timeline.end else (timeline.ticks[-1][2] if timeline.ticks else lo)
            if last < hi and end_ns - last > best[0]:
                best = (end_ns - last, last)
            # The stretch in progress when the fault hit (below the timeline's threshold if none is written).
            at_fault = next((e - s for s, e in timeline.gaps if s <= lo <= e), 0)
            if last <= lo:
                at_fault = max(at_fault, end_ns - last)
            # The longest any one client waited for an operation overlapping the window.
            waits = [e - s for s, e, _ in timeline.slow if e > lo and s < hi]
            waits += [end_ns - s for s, _ in timeline.open if s < hi]
            client_wait = max(waits, default=0)
            errs = {}
            for t, st in timeline.errors:
                if lo <= t <= hi:
                    errs[st] = errs.get(st, 0) + 1
            rows.append({
                "repeat": rec["repeat"], "leader": rec["leader"], "new_leader": rec["new_leader"],
                "processes": rec["processes"], "recovered": rec["healthy"],
                "fault_ns": lo, "window_end_ns": hi,
                "gap_ms": round(best[0] / 1e6, 1),
                "gap_at_fault_ms": round(at_fault / 1e6, 1),
                "max_client_wait_ms": round(client_wait / 1e6, 1),
                "gap_starts_after_fault_ms": None if best[1] is None else round((best[1] - lo) / 1e6, 1),
                "healthy_after_s": round((rec["healthy_ns"] - lo) / 1e9, 2),
                "roll_s": rec.get("roll_s"),
                "ops_per_s_in_window": rate(timeline.ticks, lo, hi),
                "ops_per_s_before": rate(timeline.ticks, lo - 3_000_000_000, lo),
                "errors": errs,
            })
        gaps = [r["gap_ms"] for r in rows]
        errors = {}
        for r in rows:
            for k, v in r["errors"].items():
                errors[k] = errors.get(k, 0) + v
        median = statistics.median(gaps) if gaps else None
        at_fault = [r["gap_at_fault_ms"] for r in rows]
        waits = [r["max_client_wait_ms"] for r in rows]
        worst = max(gaps) if gaps else None
        complete = len(rows) == self.args.repeats and all(r["recovered"] for r in rows)
        met = None
        if gaps:
            met = complete and worst <= EVERY_REPEAT_LIMIT_MS and (target_ms is None or median <= target_ms)
        def median_of(key):
            values = [r[key] for r in rows if r.get(key) is not None]
            return statistics.median(values) if values else None
        return {"kind": kind, "fault": description, "repeats": len(rows), "recovered": sum(r["recovered"] for r in rows),
                "median_ops_per_s_in_window": median_of("ops_per_s_in_window"),
                "median_ops_per_s_before": median_of("ops_per_s_before"), "median_roll_s": median_of("roll_s"),
                "median_gap_ms": median, "max_gap_ms": worst,
                "median_gap_at_fault_ms": statistics.median(at_fault) if at_fault else None,
                "median_gap_starts_after_fault_ms": statistics.median(
                    [r["gap_starts_after_fault_ms"] for r in rows if r["gap_starts_after_fault_ms"] is not None] or [0]),
                "max_client_wait_ms": max(waits) if waits else None, "target_ms": target_ms,
                "every_repeat_limit_ms": EVERY_REPEAT_LIMIT_MS, "met": met, "errors": errors,
                "runs": rows, "load": summary}


def print_table(results, out_path, load1):
    hdr = ["kind", "median gap ms", "max gap ms", "target ms", "met?", "recovered", "gap starts ms",
           "max client wait ms", "ops/s window/before", "errors (all repeats)"]
    lines = [hdr]
    for r in results:
        errs = " ".join(f"{k}={v}" for k, v in sorted(r["errors"].items())) or "-"
        tgt = "-" if r["target_ms"] is None else f"≤{r['target_ms']}"
        met = "-" if r["met"] is None else ("yes" if r["met"] else "NO")
        f = lambda v: "-" if v is None else f"{v:.0f}".replace("-0", "0") if abs(v) < 0.5 else f"{v:.0f}"
        lines.append([r["kind"], f(r["median_gap_ms"]), f(r["max_gap_ms"]), tgt, met,
                      f"{r['recovered']}/{r['repeats']}", f(r["median_gap_starts_after_fault_ms"]),
                      f(r["max_client_wait_ms"]),
                      f'{f(r.get("median_ops_per_s_in_window"))}/{f(r.get("median_ops_per_s_before"))}', errs])
    widths = [max(len(l[i]) for l in lines) for i in range(len(hdr))]
    for l in lines:
        print("  ".join(c.ljust(widths[i]) if i in (0, len(hdr) - 1) else c.rjust(widths[i]) for i, c in enumerate(l)))
    print(f"(gap = longest stretch without a completed operation from the fault until healthy again, at least "
          f"{WINDOW_S:.0f} s; gap starts = median time from the fault to the start of the longest stretch; "
          f"client wait = the longest one operation waited, resends included (slow ones only, > 20 ms); "
          f"met = median ≤ target and every repeat ≤ {EVERY_REPEAT_LIMIT_MS} ms and every repeat recovered; "
          f"ops/s window/before = completed operations per second in that window and in the 3 s before it; "
          f"load average {load1:.2f} on {os.cpu_count()} CPUs; written to {out_path})")
    for r in results:
        if r.get("median_roll_s") is not None:
            print(f"rolling restart: {r['median_roll_s']:.1f} s for the whole roll (median), longest stretch without a "
                  f"completed operation {r['median_gap_ms']:.0f} ms (median) / {r['max_gap_ms']:.0f} ms (max)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="directory holding raftd, kvd, kvgateway, kvctl, kvbench")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--kinds", default=",".join(DEFAULT_KINDS), help=f"of {','.join(KINDS)}")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--attempt-timeout-ms", type=float, default=2000)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data, timelines)")
    ap.add_argument("--out-dir", default="bench/results")
    ap.add_argument("--commit", default="unknown")
    a = ap.parse_args()
    kinds = [k for k in a.kinds.split(",") if k]
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds or a.repeats < 1 or a.clients < 1 or a.conns < 2:
        print(f"bench failover: --kinds must be of {','.join(KINDS)} (got {bad or 'none'}); "
              f"--repeats, --clients ≥ 1, --conns ≥ 2", file=sys.stderr)
        return 64
    if a.seed is None:
        a.seed = random.randrange(1, 2**31)
    bench = Bench(a)
    work = tempfile.mkdtemp(prefix="kvfailover.", dir=os.environ.get("TMPDIR", "/tmp"))

    def on_signal(signum, _frame):
        raise Stop(f"stopped by signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    results = []
    keep = a.keep
    status = 0
    try:
        log(f"work dir {work}, seed {a.seed}, kinds {','.join(kinds)}, {a.repeats} repeats")
        for kind in kinds:
            kind_dir = f"{work}/{kind}"
            os.makedirs(kind_dir)
            log(f"{kind}: {KINDS[kind][1]}")
            results.append(bench.run_kind(kind, kind_dir))
    except (Stop, KeyboardInterrupt) as e:
        log(f"{e}; logs kept in {work}")
        keep = True
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if bench.load is not None and bench.load.poll() is None:
            bench.load.kill()
            bench.load.wait(timeout=5)
        if bench.cluster is not None:
            bench.cluster.stop_all()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        elif status == 0:
            log(f"logs and data kept in {work}")
    if not results:
        return status or 1
    os.makedirs(a.out_dir, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = f"{a.out_dir}/failover-{stamp}.json"
    doc = {
        "timestamp_utc": stamp, "commit": a.commit, "mode": "failover", "seed": a.seed,
        "settings": {"repeats": a.repeats, "clients": a.clients, "conns": a.conns,
                     "attempt_timeout_ms": a.attempt_timeout_ms, "undo_after_s": UNDO_AFTER_S,
                     "window_s": WINDOW_S, "healthy_timeout_s": HEALTHY_TIMEOUT_S,
                     "op_mix": "1/3 put, 1/3 append, 1/3 get; 16-byte keys, 32-byte values, 4096 keys"},
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "loadavg": os.getloadavg()},
        "table": [{k: v for k, v in r.items() if k not in ("runs", "load")} for r in results],
        "kinds": results,
    }
    with open(out, "w") as f:
        json.dump(doc, f, indent=2)
    print_table(results, out, os.getloadavg()[0])
    return status


if __name__ == "__main__":
    sys.exit(main())
