#!/usr/bin/env python3
"""Spawn + join N `/bin/true` jobs with the run history on and off.

Run by hand (never by CI):
    python3 bench/history.py                  # N=1000, 7 rounds each, release build
    python3 bench/history.py --jobs 500 --reps 5 --no-build

Two supervisords run side by side on the same job file except for `[supervisor] history`
(`true`: every run's start and end go to `<state_dir>/history.jsonl`, end records fsync'd
before `wait` answers; `false`: no history). Each round is `supctl start --all` then
`supctl wait --all`, timed from outside, and the two daemons take turns round by round
(on, off, on, off, ...) so a change in the machine's load hits both alike. The state
folders are temp folders under bench/out/ (on the disk the repository is on, so fsync is
real: /tmp may be a tmpfs); a third daemon keeps its history on /dev/shm (a tmpfs, where
fsync costs nothing) to tell the disk's share from the daemon's. Prints medians with
min-max, each ratio to history off, and the load average before and after.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
OUT = os.path.join(BENCH, "out")
REL = os.path.join(ROOT, "target", "release")
SUPERVISORD = os.path.join(REL, "supervisord")
SUPCTL = os.path.join(REL, "supctl")
SHM = "/dev/shm"
TICKS = os.sysconf("SC_CLK_TCK")
CGROUP_OFF = True


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Daemon:
    def __init__(self, n, history, state_dir=None):
        os.makedirs(OUT, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="svb-history-", dir=OUT)
        self.state = state_dir or self.dir
        self.sock = os.path.join(self.dir, "s.sock")
        lines = [
            "[supervisor]",
            'socket = "s.sock"',
            'log_dir = "logs"',
            f"history = {'true' if history else 'false'}",
            f"state_dir = {json.dumps(self.state)}",
            "",
            "[defaults]",
            "autostart = false",
            "start_secs = 0",
        ]
        if CGROUP_OFF:
            # As in bench/run.py: a cgroup per run would add the kernel's migration to
            # every spawn, alike with and without the history.
            lines[5:5] = ['cgroup = "off"']
        for i in range(n):
            lines += ["", f"[job.j{i}]", 'command = ["/bin/true"]']
        config = os.path.join(self.dir, "jobs.toml")
        with open(config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log = open(os.path.join(self.dir, "daemon.log"), "w")
        self.proc = subprocess.Popen(
            [SUPERVISORD, "--config", config], stdout=subprocess.DEVNULL, stderr=self.log
        )
        deadline = time.time() + 30
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"supervisord did not start; see {self.log.name}")
            time.sleep(0.02)

    def cpu(self):
        """The daemon's CPU time so far in ms (utime + stime): (every thread, the runtime
        thread — the main thread, as the runtime is current-thread — the history writer)."""
        total = main = writer = 0
        task = f"/proc/{self.proc.pid}/task"
        for tid in os.listdir(task):
            try:
                with open(f"{task}/{tid}/stat") as f:
                    stat = f.read()
            except FileNotFoundError:
                continue  # a blocking-pool thread that just ended
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks = int(fields[11]) + int(fields[12])
            total += ticks
            if int(tid) == self.proc.pid:
                main += ticks
            elif comm == "history-writer":
                writer += ticks
        # Threads that ended are only in the process's own total.
        with open(f"/proc/{self.proc.pid}/stat") as f:
            stat = f.read()
        fields = stat[stat.rindex(")") + 2 :].split()
        total = max(total, int(fields[11]) + int(fields[12]))
        ms = 1000 / TICKS
        return (total * ms, main * ms, writer * ms)

    def round(self):
        """One round: (wall ms, daemon CPU ms, runtime thread CPU ms, writer CPU ms)."""
        c = self.cpu()
        t = time.perf_counter()
        for cmd in (["start", "--all"], ["wait", "--all"]):
            subprocess.run(
                [SUPCTL, "--socket", self.sock, *cmd], check=True, stdout=subprocess.DEVNULL
            )
        wall = (time.perf_counter() - t) * 1e3
        return (wall, *(b - a for a, b in zip(c, self.cpu())))

    def history_bytes(self):
        path = os.path.join(self.state, "history.jsonl")
        return os.path.getsize(path) if os.path.exists(path) else 0

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.state != self.dir:
            shutil.rmtree(self.state, ignore_errors=True)


def summary(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "runs": xs}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    ap.add_argument("--cgroup", action="store_true", help='leave [supervisor] cgroup at its default')
    args = ap.parse_args()
    global CGROUP_OFF
    CGROUP_OFF = not args.cgroup
    if not args.no_build:
        subprocess.run(
            ["cargo", "build", "--release", "--locked", "-p", "supervisord", "-p", "supctl"],
            cwd=ROOT,
            check=True,
        )
    before = loadavg()
    daemons = {"on": Daemon(args.jobs, True), "off": Daemon(args.jobs, False)}
    if os.path.isdir(SHM):
        # The same history on a tmpfs: what is left without the disk's fsync latency.
        daemons["on, tmpfs"] = Daemon(args.jobs, True, tempfile.mkdtemp(dir=SHM))
    xs = {name: [] for name in daemons}
    try:
        # One round each first, not counted: page cache, the daemons' first allocations.
        for d in daemons.values():
            d.round()
        for _ in range(args.reps):
            for name, d in daemons.items():
                xs[name].append(d.round())
        size = daemons["on"].history_bytes()
    finally:
        for d in daemons.values():
            d.close()
    after = loadavg()
    wall = {name: [r[0] for r in v] for name, v in xs.items()}
    s = {name: summary(v) for name, v in wall.items()}
    # Rounds next to each other in time share the machine's load: the median of the
    # per-round ratios is steadier than the ratio of the medians.
    paired = {
        name: statistics.median(a / b for a, b in zip(v, wall["off"])) for name, v in wall.items()
    }
    # CPU time the daemon spent per round: what the history costs it, whatever the load.
    cpu = {
        name: {
            part: summary([r[i] for r in v])
            for i, part in ((1, "daemon"), (2, "runtime thread"), (3, "history writer"))
        }
        for name, v in xs.items()
    }
    print(f"spawn + join {args.jobs} /bin/true, {args.reps} rounds each, taking turns")
    for name, x in s.items():
        ratio = x["median"] / s["off"]["median"]
        print(
            f"  history {name:<10} wall median {x['median']:5.0f} ms "
            f"(min {x['min']:.0f}, max {x['max']:.0f})  {ratio:.3f}x off, "
            f"per round {paired[name]:.3f}x"
        )
    print("  daemon CPU per round (utime + stime from /proc, median ms (min-max)):")
    for name, c in cpu.items():
        d, m, w = c["daemon"], c["runtime thread"], c["history writer"]
        print(
            f"  history {name:<10} all threads {d['median']:5.0f} ({d['min']:.0f}-{d['max']:.0f}) "
            f"{d['median'] / cpu['off']['daemon']['median']:.3f}x off; "
            f"runtime thread {m['median']:5.0f} ({m['min']:.0f}-{m['max']:.0f}) "
            f"{m['median'] / cpu['off']['runtime thread']['median']:.3f}x off; "
            f"writer {w['median']:4.0f}"
        )
    print(f"  history.jsonl: {size} bytes at the end")
    print(f"  load average before: {before}; after: {after}; cores: {os.cpu_count()}")
    if args.json:
        json.dump({"jobs": args.jobs, "results": s, "paired": paired, "cpu": cpu,
                   "load_before": before, "load_after": after}, sys.stdout)
        print()


if __name__ == "__main__":
    main()
