#!/usr/bin/env python3
"""Spawn + join N short jobs (`/bin/true`) with `[supervisor] cgroup = "auto"` and with
`"off"`: what a cgroup per run costs (mkdir, the child's write to cgroup.procs, the fork
that the pre-exec hook makes std use instead of posix_spawn, the inotify watch, rmdir).

    cargo build --release -p supervisord -p supctl
    sudo python3 bench/cgroup_spawn.py                 # 1000 jobs, 7 runs each, interleaved
    sudo python3 bench/cgroup_spawn.py --jobs 500 --runs 5 --bin target/debug

Run as root (or in a service with Delegate=yes): otherwise "auto" falls back to process
groups and both columns measure the same thing (the script says so and stops). Each run
is `supctl start --all` then `supctl wait --all` against a daemon started fresh for the
mode, the modes alternating run by run so both see the same load. Prints medians, min and
max, the ratio, and the load average before and after.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def job_file(n, mode, sock):
    lines = [
        "[supervisor]",
        f'socket = "{sock}"',
        f'cgroup = "{mode}"',
        "",
        "[defaults]",
        "autostart = false",
        "start_secs = 0",
        'stdout = "null"',
        'stderr = "null"',
        "",
    ]
    for i in range(n):
        lines += [f"[job.t{i}]", 'command = ["/bin/true"]', ""]
    return "\n".join(lines)


class Daemon:
    def __init__(self, bindir, n, mode):
        self.dir = tempfile.TemporaryDirectory(prefix="cgbench")
        self.sock = os.path.join(self.dir.name, "sock")
        self.bindir = bindir
        path = os.path.join(self.dir.name, "jobs.toml")
        with open(path, "w") as f:
            f.write(job_file(n, mode, self.sock))
        self.proc = subprocess.Popen(
            [os.path.join(bindir, "supervisord"), "--config", path],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = subprocess.run(self.ctl("--json", "ping"), capture_output=True, text=True)
            if r.returncode == 0:
                self.containment = json.loads(r.stdout).get("containment", "")
                return
            time.sleep(0.05)
        raise SystemExit("supervisord did not answer ping")

    def ctl(self, *args):
        return [os.path.join(self.bindir, "supctl"), "--socket", self.sock, *args]

    def spawn_join(self):
        t = time.perf_counter()
        subprocess.run(self.ctl("start", "--all"), check=True, stdout=subprocess.DEVNULL)
        subprocess.run(self.ctl("wait", "--all"), check=True, stdout=subprocess.DEVNULL)
        return (time.perf_counter() - t) * 1e3

    def close(self):
        subprocess.run(self.ctl("shutdown"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.proc.wait(timeout=60)
        self.dir.cleanup()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--bin", default="target/release")
    a = ap.parse_args()
    load_before = open("/proc/loadavg").read().split()[:3]
    daemons = {m: Daemon(a.bin, a.jobs, m) for m in ("auto", "off")}
    try:
        if not daemons["auto"].containment.startswith("a cgroup per run"):
            raise SystemExit(f"no cgroups here: {daemons['auto'].containment}")
        xs = {"auto": [], "off": []}
        for _ in range(a.runs):
            for m in ("off", "auto"):
                xs[m].append(daemons[m].spawn_join())
    finally:
        for d in daemons.values():
            d.close()
    load_after = open("/proc/loadavg").read().split()[:3]
    print(f"spawn + join {a.jobs} /bin/true, {a.runs} runs each ({a.bin})")
    for m in ("off", "auto"):
        v = xs[m]
        print(f"  cgroup = {m:4}  median {statistics.median(v):7.0f} ms  "
              f"(min {min(v):.0f}, max {max(v):.0f})")
    ratio = statistics.median(xs["auto"]) / statistics.median(xs["off"])
    print(f"  auto / off: {ratio:.2f}x")
    print(f"  load average before {' '.join(load_before)}, after {' '.join(load_after)}")


if __name__ == "__main__":
    sys.exit(main())
