#!/usr/bin/env python3
"""Side-by-side benchmark: this project's supervisord, Python's Supervisor, and the OS floor.

Run by hand (never by CI):  python3 bench/run.py            (writes bench/RESULTS.md)
                            python3 bench/run.py --json     (also prints the results as JSON)
                            python3 bench/run.py --quick --only spawn,idle --no-python

It creates bench/.venv and `pip install supervisor` there (once), builds the workspace in
release mode, compiles bench/floor.rs with `rustc -O`, and runs every workload on each
system in turn. The other peers are optional: s6 (`apt-get install s6`) and pueue
(`cargo install pueue --root bench/.tools`, tried once); each is skipped with a message
when it is not there. See bench/README.md for what each workload measures.
"""

import argparse
import http.client
import json
import os
import platform
import random
import select
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
OUT = os.path.join(BENCH, "out")
VENV = os.path.join(BENCH, ".venv")
REL = os.path.join(ROOT, "target", "release")
SUPERVISORD = os.path.join(REL, "supervisord")
SUPCTL = os.path.join(REL, "supctl")
FLOOR = os.path.join(OUT, "floor")
PY_SUPERVISORD = os.path.join(VENV, "bin", "supervisord")
PY_SUPERVISORCTL = os.path.join(VENV, "bin", "supervisorctl")
FD_LIMIT = 200_000  # raised for the daemons (root can raise the hard limit)
SLEEP = ["/bin/sleep", "100000"]
TOOLS = os.path.join(BENCH, ".tools")
PUEUE = os.path.join(TOOLS, "bin", "pueue")
PUEUED = os.path.join(TOOLS, "bin", "pueued")
# What a job costs in the daemon's descriptor table: its pipes (one with
# `stderr = "stdout"`, two with both streams captured, none with `null`), plus a pidfd for
# the first 1024 runs alive; log files are held open only while written (at most 128).
PIDFD_BUDGET = 1024
OPEN_LOG_FILES = 128
# Keys added to every job file of this project's supervisord (--supervisor-key, --job-key,
# --cgroup, --history): how the features of later rounds are measured once they land.
# Every supervisord of a run measures its own overhead against the floor, so runs are not
# put in cgroups (the default, `auto`, would make each spawn a cgroup migration): the
# `features` workload and `--cgroup` measure that cost on its own.
EXTRA_SUPERVISOR = {"cgroup": "off"}
EXTRA_DEFAULTS = {}

STARTED = []  # every process this script started, to clean up on the way out


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---- small helpers -------------------------------------------------------------------------


def summary(xs, unit=""):
    xs = sorted(xs)
    if not xs:
        return None
    p99 = xs[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))]
    return {
        "median": statistics.median(xs),
        "min": xs[0],
        "max": xs[-1],
        "p99": p99,
        "n": len(xs),
        "unit": unit,
    }


def wall(cmd, **kw):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t


def can_raise():
    """Whether this process may raise its open-files hard limit (CAP_SYS_RESOURCE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard + 1))
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        return True
    except (ValueError, OSError):
        return False


def raise_fds():
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
    except (ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pss_kib(pids):
    """Proportional set size summed over `pids` (each shared page split between sharers)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def unreclaimable_kib():
    """The kernel's unreclaimable slab (pipe rings, files, tasks): a machine-wide figure."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("SUnreclaim:"):
                return int(line.split()[1])
    return 0


def proc_sample(pid):
    """Context switches over all threads, CPU ticks (utime+stime), RSS in KiB."""
    switches = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
        except FileNotFoundError:
            pass
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                rss = int(line.split()[1])
    return switches, ticks, rss


def wait_for(pred, timeout, what, every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def stop_process(p, timeout=60):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in STARTED:
        STARTED.remove(p)


# ---- this project's supervisord -----------------------------------------------------------


class Conn:
    """One JSON-RPC connection to supervisord."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.next_id = 1
        self.notes = []

    def send(self, method, params=None):
        i = self.next_id
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": i, "method": method}
        if params is not None:
            msg["params"] = params
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        return i

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("supervisord closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def call(self, method, params=None):
        i = self.send(method, params)
        while True:
            msg = json.loads(self.line())
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]
            self.notes.append(msg)

    def raw_round_trip(self, request_line):
        """Send a prepared line; return once the whole answer line is in (unparsed)."""
        self.sock.sendall(request_line)
        return self.line()

    def close(self):
        self.sock.close()


class Refused(RuntimeError):
    """supervisord would not start with this job file (a key from a feature not built yet)."""


class Ours:
    name = "supervisord (Rust)"

    def __init__(self, jobs, defaults=None, supervisor=None):
        self.dir = tempfile.mkdtemp(prefix="svb-rs-")
        self.sock = os.path.join(self.dir, "s.sock")
        lines = ["[supervisor]", 'socket = "s.sock"', 'log_dir = "logs"']
        for k, v in {**EXTRA_SUPERVISOR, **(supervisor or {})}.items():
            lines.append(f"{k} = {json.dumps(v)}")
        lines += ["", "[defaults]"]
        for k, v in {**EXTRA_DEFAULTS, **(defaults or {})}.items():
            lines.append(f"{k} = {json.dumps(v)}")
        for name, command in jobs.items():
            lines += ["", f"[job.{name}]", f"command = {json.dumps(command)}"]
        self.config = os.path.join(self.dir, "jobs.toml")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.stderr = open(os.path.join(self.dir, "daemon.log"), "w")
        t = time.perf_counter()
        self.proc = subprocess.Popen(
            [SUPERVISORD, "--config", self.config],
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
            preexec_fn=raise_fds,
        )
        STARTED.append(self.proc)
        wait_for(lambda: os.path.exists(self.sock) or self.proc.poll() is not None, 30, "socket")
        if self.proc.poll() is not None:
            self.stderr.close()
            with open(self.stderr.name) as f:
                first = (f.read().strip().splitlines() or ["(nothing on stderr)"])[0]
            raise Refused(f"supervisord exited: {first}")
        self.ready_after = time.perf_counter() - t
        self.pid = self.proc.pid

    def ctl(self, *args):
        return [SUPCTL, "--socket", self.sock, *args]

    def conn(self):
        return Conn(self.sock)

    def states(self):
        c = self.conn()
        try:
            return [j["state"] for j in c.call("status")["jobs"]]
        finally:
            c.close()

    def close(self):
        stop_process(self.proc)
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- Python's Supervisor -------------------------------------------------------------------


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


class UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path):
        super().__init__()
        self.path = path

    def make_connection(self, host):
        if self._connection and host == self._connection[0]:
            return self._connection[1]
        self._connection = host, UnixHTTPConnection(self.path)
        return self._connection[1]


class Theirs:
    name = "Supervisor (Python)"

    def __init__(self, jobs, options=None):
        self.dir = tempfile.mkdtemp(prefix="svb-py-")
        self.sock = os.path.join(self.dir, "s.sock")
        os.makedirs(os.path.join(self.dir, "logs"))
        ini = [
            "[unix_http_server]",
            "file=%(here)s/s.sock",
            "[supervisord]",
            "logfile=%(here)s/supervisord.log",
            "pidfile=%(here)s/supervisord.pid",
            "childlogdir=%(here)s/logs",
            "nodaemon=true",
            "minfds=4096",
            "minprocs=200",
            "user=root" if os.geteuid() == 0 else "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "[supervisorctl]",
            "serverurl=unix://%(here)s/s.sock",
        ]
        for name, command in jobs.items():
            ini += ["", f"[program:{name}]", "command=" + " ".join(command)]
            for k, v in (options or {}).items():
                ini.append(f"{k}={v}")
        self.config = os.path.join(self.dir, "supervisord.conf")
        with open(self.config, "w") as f:
            f.write("\n".join(ini) + "\n")
        t = time.perf_counter()
        self.proc = subprocess.Popen(
            [PY_SUPERVISORD, "-c", self.config, "-n"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=raise_fds,
        )
        STARTED.append(self.proc)
        wait_for(lambda: os.path.exists(self.sock) or self.proc.poll() is not None, 60, "socket")
        if self.proc.poll() is not None:
            raise RuntimeError("Python supervisord exited; see " + self.dir)
        self.ready_after = time.perf_counter() - t
        self.pid = self.proc.pid
        self.rpc = self.proxy()

    def proxy(self):
        return xmlrpc.client.ServerProxy("http://localhost", transport=UnixTransport(self.sock))

    def ctl(self, *args):
        return [PY_SUPERVISORCTL, "-c", self.config, *args]

    def states(self):
        return [p["statename"].lower() for p in self.rpc.supervisor.getAllProcessInfo()]

    def close(self):
        stop_process(self.proc, timeout=300)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- workloads -----------------------------------------------------------------------------


def true_jobs(n):
    return {f"j{i}": ["/bin/true"] for i in range(n)}


def sleep_jobs(n):
    return {f"j{i}": SLEEP for i in range(n)}


def cgroup_floor_parent():
    """A new, empty cgroup v2 folder below this script's own cgroup, for `floor spawn-cgroup`
    to make its children's cgroups in; None where it cannot be made (not root, no v2)."""
    try:
        with open("/proc/self/mountinfo") as f:
            mounts = [l.split() for l in f if " - cgroup2 " in l]
        with open("/proc/self/cgroup") as f:
            own = next(l.strip()[3:] for l in f if l.startswith("0::"))
        if not mounts:
            return None
        fields = mounts[0]
        root, mount = fields[3], fields[4]
        rel = own[len(root):] if root != "/" and own.startswith(root) else own
        d = os.path.join(mount, rel.lstrip("/"), f"svb-floor-{os.getpid()}")
        os.mkdir(d)
        return d
    except (OSError, StopIteration):
        return None


def spawn_join(n, reps, systems):
    """(a) start N short jobs and wait until all have ended."""
    out = {}
    # Whatever ran before (a daemon that just removed its runs' cgroups) done first.
    machine_quiet()
    if "floor" in systems:
        out["floor"] = summary([wall([FLOOR, "spawn", str(n)]) * 1e3 for _ in range(reps)], "ms")
        # With a cgroup per run, the same spawns each born in a cgroup of their own: the
        # kernel's part of that (mkdir, the clone into it, rmdir) is not supervisord's.
        parent = cgroup_floor_parent() if EXTRA_SUPERVISOR.get("cgroup") == "auto" else None
        if parent:
            try:
                out["floor_cgroup"] = summary(
                    [wall([FLOOR, "spawn-cgroup", str(n), parent]) * 1e3 for _ in range(reps)], "ms"
                )
                # The cgroups kept from round to round, as supervisord keeps a job's: the
                # first round makes them (untimed), every round spawns into them.
                out["floor_cgroup_kept"] = summary(
                    [wall([FLOOR, "spawn-cgroup-kept", str(n), parent]) * 1e3 for _ in range(reps)],
                    "ms",
                )
            finally:
                for c in os.listdir(parent):
                    if os.path.isdir(os.path.join(parent, c)):
                        os.rmdir(os.path.join(parent, c))
                os.rmdir(parent)
            machine_quiet()
    if "ours" in systems:
        d = Ours(true_jobs(n), {"autostart": False, "start_secs": 0})
        try:
            xs = []
            for _ in range(reps):
                t = time.perf_counter()
                subprocess.run(d.ctl("start", "--all"), check=True, stdout=subprocess.DEVNULL)
                subprocess.run(d.ctl("wait", "--all"), check=True, stdout=subprocess.DEVNULL)
                xs.append((time.perf_counter() - t) * 1e3)
            out["ours"] = summary(xs, "ms")
        finally:
            d.close()
    if "theirs" in systems:
        d = Theirs(true_jobs(n), {"autostart": "false", "startsecs": 0, "autorestart": "false"})
        try:
            xs = []
            for _ in range(reps):
                t = time.perf_counter()
                # supervisorctl has no `wait`: start from the CLI, then join by polling.
                r = subprocess.run(d.ctl("start", "all"), capture_output=True, text=True)
                if r.returncode != 0:
                    bad = [l for l in r.stdout.splitlines() if "started" not in l]
                    log(f"  supervisorctl start all exited {r.returncode}: {bad[:3]}")
                wait_for(lambda: all(s == "exited" for s in d.states()), 600, "join", 0.01)
                xs.append((time.perf_counter() - t) * 1e3)
            out["theirs"] = summary(xs, "ms")
        finally:
            d.close()
    return out


def wait_running(d, n, timeout):
    wait_for(
        lambda: sum(s == "running" for s in d.states()) == n, timeout, f"{n} jobs running", 0.2
    )


def machine_quiet(window=0.5, busy=0.05, timeout=15):
    """Wait until the whole machine has been idle (under `busy` of its CPU time) for a
    `window` and no removed cgroup is still being torn down, or `timeout`: the kernel
    finishes a cgroup's `rmdir` in workers after it returns (a thousand from a floor run
    take up to a second here), which would otherwise land in the next system's figures."""

    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]

    def dying():
        # Removed cgroups the kernel has not finished with yet (cgroup v2's root count).
        try:
            with open("/proc/self/mountinfo") as f:
                root = next(l.split()[4] for l in f if " - cgroup2 " in l)
            with open(os.path.join(root, "cgroup.stat")) as f:
                return next(int(l.split()[1]) for l in f if l.startswith("nr_dying_descendants "))
        except (OSError, StopIteration, ValueError, IndexError):
            return 0

    deadline = time.monotonic() + timeout
    total, idle = sample()
    while time.monotonic() < deadline:
        time.sleep(window)
        t, i = sample()
        if t > total and 1 - (i - idle) / (t - total) < busy and dying() == 0:
            return
        total, idle = t, i


def settle(pid, quiet=1.0, timeout=60):
    """Wait until start-up work (log files being created, ...) is over: a whole `quiet`
    second without a context switch in the daemon, or `timeout`."""
    deadline = time.monotonic() + timeout
    last = proc_sample(pid)[0]
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = proc_sample(pid)[0]
        if now == last:
            return
        last = now


def idle(n, seconds, systems):
    """(b) N sleeping jobs, nothing asked: what the daemon costs while nothing happens."""
    out = {}
    for key, make in (
        ("ours", lambda: Ours(sleep_jobs(n), {"start_secs": 0})),
        ("theirs", lambda: Theirs(sleep_jobs(n), {"startsecs": 0})),
    ):
        if key not in systems:
            continue
        d = make()
        try:
            wait_running(d, n, 600)
            if key == "theirs":
                d.rpc = None  # drop the keep-alive connection
            settle(d.pid, timeout=60 if key == "ours" else 3)
            s0, t0, _ = proc_sample(d.pid)
            time.sleep(seconds)
            s1, t1, rss = proc_sample(d.pid)
            out[key] = {
                "switches": s1 - s0,
                "ticks": t1 - t0,
                "rss_kib": rss,
                "seconds": seconds,
            }
        finally:
            d.close()
    return out


def status_and_terminate(n, rpc_reps, cli_reps, term_reps, systems):
    """(c) status of N jobs, in process and as a whole command; (d) terminate one of N."""
    out = {"rpc": {}, "cli": {}, "terminate": {}}
    out["cli"]["/bin/true"] = summary([wall(["/bin/true"]) * 1e3 for _ in range(cli_reps)], "ms")
    if "ours" in systems:
        d = Ours(sleep_jobs(n), {"start_secs": 0})
        try:
            wait_running(d, n, 120)
            c = d.conn()
            out["rpc"]["ours"] = status_round_trips(c, rpc_reps)
            out["rpc"]["floor"] = status_floor(c.raw_round_trip(STATUS_REQUEST) + b"\n", rpc_reps)
            out["cli"]["ours"] = summary(
                [wall(d.ctl("status")) * 1e3 for _ in range(cli_reps)], "ms"
            )
            xs = []
            for i in range(term_reps):
                t = time.perf_counter()
                c.call("terminate", {"names": [f"j{i}"]})
                xs.append((time.perf_counter() - t) * 1e3)
            out["terminate"]["ours"] = summary(xs, "ms")
            c.close()
        finally:
            d.close()
    if "theirs" in systems:
        d = Theirs(sleep_jobs(n), {"startsecs": 0})
        try:
            wait_running(d, n, 300)
            reps = max(rpc_reps // 5, 20)
            xs = []
            for _ in range(reps):
                t = time.perf_counter()
                d.rpc.supervisor.getAllProcessInfo()
                xs.append((time.perf_counter() - t) * 1e6)
            out["rpc"]["theirs"] = summary(xs, "us")
            out["cli"]["theirs"] = summary(
                [wall(d.ctl("status")) * 1e3 for _ in range(max(cli_reps // 5, 5))], "ms"
            )
            xs = []
            for i in range(term_reps):
                t = time.perf_counter()
                d.rpc.supervisor.stopProcess(f"j{i}", True)
                xs.append((time.perf_counter() - t) * 1e3)
            out["terminate"]["theirs"] = summary(xs, "ms")
        finally:
            d.close()
    return out


STATUS_REQUEST = b'{"jsonrpc":"2.0","id":1,"method":"status"}\n'


def status_round_trips(c, reps):
    """`reps` status round trips on connection `c` after 20 to warm up, in microseconds."""
    for _ in range(20):
        c.raw_round_trip(STATUS_REQUEST)
    xs = []
    for _ in range(reps):
        t = time.perf_counter()
        c.raw_round_trip(STATUS_REQUEST)
        xs.append((time.perf_counter() - t) * 1e6)
    return summary(xs, "us")


def status_floor(answer, reps):
    """The status RPC's floor: the same client loop against `floor answer`, which answers
    every request with these bytes at once (no work behind them)."""
    tmp = tempfile.mkdtemp(prefix="svb-answer-")
    try:
        path, sock = os.path.join(tmp, "answer"), os.path.join(tmp, "s.sock")
        with open(path, "wb") as f:
            f.write(answer)
        p = subprocess.Popen([FLOOR, "answer", sock, path])
        STARTED.append(p)
        wait_for(lambda: os.path.exists(sock), 10, "the floor's socket", 0.01)
        c = Conn(sock)
        times = status_round_trips(c, reps)
        c.close()
        stop_process(p)
        return times
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_stamp(path):
    with open(path) as f:
        return int(f.read())


def floor_exit(reps, stamps):
    """The floor of (e): this script starts the stamp job itself and waits on its pidfd (no
    supervisor at all); the clock is read as soon as the pidfd says the job ended. Each
    stamp file is written twice, like the supervisors' jobs. None where pidfds are missing."""
    if not hasattr(os, "pidfd_open"):
        return None, None
    xs = []
    for i in list(range(reps)) * 2:
        path = os.path.join(stamps, f"f{i}")
        p = subprocess.Popen(
            [FLOOR, "stamp", path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # The child is not reaped before p.wait(), so the pidfd is of this very process
        # even when it has already ended.
        fd = os.pidfd_open(p.pid)
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            poller.poll()
            seen = time.time_ns()
        finally:
            os.close(fd)
        p.wait()
        xs.append((seen - read_stamp(path)) / 1e3)
    return summary(xs[reps:], "us"), summary(xs[:reps], "us")


def exit_detection(reps, systems):
    """(e) from a job's own exit (a timestamp written just before it) to the `exited` event."""
    out = {}
    stamps = tempfile.mkdtemp(prefix="svb-stamps-")
    jobs = {f"e{i}": [FLOOR, "stamp", os.path.join(stamps, f"e{i}")] for i in range(reps)}
    try:
        out["floor"], out["floor_first_run"] = floor_exit(reps, stamps)
        if "ours" in systems:
            d = Ours(jobs, {"autostart": False, "start_secs": 0})
            try:
                sub, ctl = d.conn(), d.conn()
                sub.call("subscribe")
                xs = []
                for i in list(range(reps)) * 2:
                    name = f"e{i}"
                    ctl.call("start", {"names": [name]})
                    while True:
                        msg = json.loads(sub.line())
                        p = msg.get("params", {})
                        if msg.get("method") == "event" and p.get("name") == name and p.get(
                            "to"
                        ) in ("exited", "fatal", "backoff"):
                            seen = time.time_ns()
                            break
                    xs.append((seen - read_stamp(jobs[name][2])) / 1e3)
                out["ours"] = summary(xs[reps:], "us")
                out["ours_first_run"] = summary(xs[:reps], "us")
                sub.close()
                ctl.close()
            finally:
                d.close()
        if "theirs" in systems:
            d = Theirs(jobs, {"autostart": "false", "startsecs": 0, "autorestart": "false"})
            try:
                xs = []
                for i in list(range(reps)) * 2:
                    name = f"e{i}"
                    d.rpc.supervisor.startProcess(name, False)
                    while d.rpc.supervisor.getProcessInfo(name)["statename"] != "EXITED":
                        pass
                    seen = time.time_ns()
                    xs.append((seen - read_stamp(jobs[name][2])) / 1e3)
                out["theirs"] = summary(xs[reps:], "us")
                out["theirs_first_run"] = summary(xs[:reps], "us")
            finally:
                d.close()
    finally:
        shutil.rmtree(stamps, ignore_errors=True)
    return out


def capture():
    """(f) 1 GiB of output captured vs `cat` — Engineer B's bench/capture.sh, when present."""
    script = os.path.join(BENCH, "capture.sh")
    if not os.access(script, os.X_OK):
        return {"note": "bench/capture.sh is not here yet: output capture not measured"}
    r = subprocess.run([script], capture_output=True, text=True, cwd=ROOT)
    return {"note": f"bench/capture.sh exited {r.returncode}", "output": r.stdout.strip()}


def scale(n, output):
    """N sleeping jobs: start, descriptors, memory, status, shutdown. `output`: "null",
    "merged" (stdout to its log file, `stderr = "stdout"`: one pipe a job) or "both" (both
    streams to log files: two pipes a job)."""
    defaults = {"start_secs": 0}
    if output == "null":
        defaults.update({"stdout": "null", "stderr": "null"})
    elif output == "merged":
        defaults.update({"stderr": "stdout"})
    slab0 = unreclaimable_kib()
    t = time.perf_counter()
    d = Ours(sleep_jobs(n), defaults)
    try:
        wait_running(d, n, 600)
        started = time.perf_counter() - t
        time.sleep(1)
        _, _, rss = proc_sample(d.pid)
        guard = children(d.pid)
        guard = [p for p in guard if open(f"/proc/{p}/comm").read().startswith("guard")]
        pss = pss_kib([d.pid])
        guard_rss = sum(proc_sample(p)[2] for p in guard)
        slab = unreclaimable_kib() - slab0
        c = d.conn()
        req = b'{"jsonrpc":"2.0","id":1,"method":"status"}\n'
        xs = []
        for _ in range(20):
            t0 = time.perf_counter()
            c.raw_round_trip(req)
            xs.append((time.perf_counter() - t0) * 1e3)
        c.close()
        cli = [wall(d.ctl("status")) * 1e3 for _ in range(5)]
        fds = len(os.listdir(f"/proc/{d.pid}/fd"))
        t0 = time.perf_counter()
        subprocess.run(d.ctl("shutdown"), check=True, stdout=subprocess.DEVNULL)
        d.proc.wait(300)
        shutdown = time.perf_counter() - t0
        return {
            "jobs": n,
            "output": output,
            "start_s": started,
            "rss_kib": rss,
            "pss_kib": pss,
            "guard_rss_kib": guard_rss,
            "guard_pss_kib": pss_kib(guard),
            "fds": fds,
            "fds_per_job": fds / n,
            "kernel_kib_per_job": slab / n,
            "status_rpc": summary(xs, "ms"),
            "status_cli": summary(cli, "ms"),
            "shutdown_s": shutdown,
            "exit_code": d.proc.returncode,
            "load": os.getloadavg()[0],
        }
    finally:
        d.close()


def fits(n, output, room):
    """Whether N jobs with this output fit under `room` descriptors."""
    pipes = {"null": 0, "merged": 1, "both": 2}[output]
    return n * pipes + min(n, PIDFD_BUDGET) + OPEN_LOG_FILES + 200 < room


# ---- s6 ------------------------------------------------------------------------------------


S6_SVSCAN = shutil.which("s6-svscan")


class S6:
    """s6-svscan over N service directories (one s6-supervise process per service)."""

    name = "s6"

    def __init__(self, n, argv, down):
        self.dir = tempfile.mkdtemp(prefix="svb-s6-")
        self.scan = os.path.join(self.dir, "scan")
        os.makedirs(self.scan)
        self.services = []
        for i in range(n):
            sd = os.path.join(self.scan, f"s{i}")
            os.makedirs(sd)
            run = os.path.join(sd, "run")
            if len(argv) == 1:
                os.symlink(argv[0], run)  # exec'd straight by s6-supervise
            else:
                with open(run, "w") as f:
                    f.write("#!/bin/sh\nexec " + " ".join(argv) + "\n")
                os.chmod(run, 0o755)
            if down:
                open(os.path.join(sd, "down"), "w").close()
            self.services.append(sd)
        t = time.perf_counter()
        self.proc = subprocess.Popen(
            # -c: s6-svscan supervises at most 500 services unless told more.
            [S6_SVSCAN, "-c", str(2 * len(self.services) + 10), self.scan],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=raise_fds,
        )
        STARTED.append(self.proc)
        self.pid = self.proc.pid
        self.t0 = t
        wait_for(
            lambda: all(os.path.exists(os.path.join(sd, "supervise", "control")) for sd in self.services),
            600,
            "every s6-supervise",
            0.05,
        )

    def supervisors(self):
        return children(self.pid)

    def all_up(self, program):
        """Every s6-supervise has a child that has exec'd `program`."""
        n = 0
        for sup in self.supervisors():
            for c in children(sup):
                try:
                    with open(f"/proc/{c}/comm") as f:
                        if f.read().strip() == program:
                            n += 1
                except OSError:
                    pass
        return n == len(self.services)

    def spawn_join(self):
        """Start every (down) service once and wait until each is down again: `s6-svc -o`
        and `s6-svwait -d` done by hand — the 'o' byte written to each control FIFO, the
        'd' event read from a FIFO of our own in each event directory, subscribed before
        the start (s6-svwait takes at most 1000 services and checks the state first)."""
        fifos = []
        for sd in self.services:
            name = "ftrig1:@%024x:%06x" % (random.getrandbits(96), random.getrandbits(24))
            path = os.path.join(sd, "event", name)
            os.mkfifo(path, 0o600)
            fifos.append((path, os.open(path, os.O_RDONLY | os.O_NONBLOCK)))
        controls = [os.open(os.path.join(sd, "supervise", "control"), os.O_WRONLY | os.O_NONBLOCK) for sd in self.services]
        try:
            pending = {fd: b"" for _, fd in fifos}
            poller = select.poll()
            for fd in pending:
                poller.register(fd, select.POLLIN)
            t = time.perf_counter()
            for c in controls:
                os.write(c, b"o")
            while pending:
                for fd, _ in poller.poll(1000):
                    if fd not in pending:
                        continue
                    try:
                        got = os.read(fd, 64)
                    except BlockingIOError:
                        continue
                    if b"d" in got:
                        del pending[fd]
                        poller.unregister(fd)
            return time.perf_counter() - t
        finally:
            for c in controls:
                os.close(c)
            for path, fd in fifos:
                os.close(fd)
                if os.path.exists(path):  # s6-supervise may have cleaned it up already
                    os.unlink(path)

    def processes(self):
        return [self.pid] + self.supervisors()

    def close(self):
        subprocess.run(["s6-svscanctl", "-t", self.scan], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            pass
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def s6_spawn_join(n, reps):
    s = S6(n, ["/bin/true"], down=True)
    try:
        return summary([s.spawn_join() * 1e3 for _ in range(reps)], "ms")
    finally:
        s.close()


def s6_idle(n, seconds):
    """N long-running services: how long until all are up, then idle cost and memory of
    s6-svscan plus every s6-supervise."""
    s = S6(n, SLEEP, down=False)
    try:
        wait_for(lambda: s.all_up("sleep"), 600, f"{n} s6 services up", 0.05)
        up = time.perf_counter() - s.t0
        procs = s.processes()
        settle_all(procs)
        s0 = sum(proc_sample(p)[0] for p in procs)
        t0 = sum(proc_sample(p)[1] for p in procs)
        time.sleep(seconds)
        samples = [proc_sample(p) for p in procs]
        return {
            "up_s": up,
            "switches": sum(x[0] for x in samples) - s0,
            "ticks": sum(x[1] for x in samples) - t0,
            "rss_kib": sum(x[2] for x in samples),
            "pss_kib": pss_kib(procs),
            "processes": len(procs),
            "seconds": seconds,
        }
    finally:
        s.close()


def settle_all(pids, quiet=1.0, timeout=30):
    deadline = time.monotonic() + timeout
    last = sum(proc_sample(p)[0] for p in pids)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = sum(proc_sample(p)[0] for p in pids)
        if now == last:
            return
        last = now


def ours_up(n, seconds):
    """The same as `s6_idle` for this project's supervisord (daemon and guard)."""
    t = time.perf_counter()
    d = Ours(sleep_jobs(n), {"start_secs": 0})
    try:
        wait_running(d, n, 600)
        up = time.perf_counter() - t
        procs = [d.pid] + [p for p in children(d.pid) if open(f"/proc/{p}/comm").read().startswith("guard")]
        settle_all(procs)
        s0 = sum(proc_sample(p)[0] for p in procs)
        t0 = sum(proc_sample(p)[1] for p in procs)
        time.sleep(seconds)
        samples = [proc_sample(p) for p in procs]
        return {
            "up_s": up,
            "switches": sum(x[0] for x in samples) - s0,
            "ticks": sum(x[1] for x in samples) - t0,
            "rss_kib": sum(x[2] for x in samples),
            "pss_kib": pss_kib(procs),
            "processes": len(procs),
            "seconds": seconds,
        }
    finally:
        d.close()


def peers(n, seconds, spawn_n, reps):
    out = {"n": n, "spawn_n": spawn_n}
    log(f"peers: supervisord, {n} long-running jobs ...")
    out["ours"] = ours_up(n, seconds)
    if not S6_SVSCAN:
        out["s6"] = {"skipped": "s6-svscan not found (apt-get install s6)"}
        log("  s6: skipped, s6-svscan not found (apt-get install s6)")
    else:
        log(f"peers: s6, {n} long-running services ...")
        out["s6"] = s6_idle(n, seconds)
        log(f"peers: s6, spawn+join {spawn_n} ...")
        out["s6"]["spawn"] = s6_spawn_join(spawn_n, reps)
    return out


# ---- pueue ---------------------------------------------------------------------------------


def ensure_pueue():
    """pueue and pueued in bench/.tools, installed with cargo once; None when they cannot be."""
    if os.path.exists(PUEUED) and os.path.exists(PUEUE):
        return None
    marker = os.path.join(TOOLS, "install-failed")
    if os.path.exists(marker):
        return f"pueue is not installed (an earlier `cargo install pueue` failed; remove {marker} to try again)"
    log("installing pueue into bench/.tools (cargo install, once) ...")
    os.makedirs(TOOLS, exist_ok=True)
    r = subprocess.run(["cargo", "install", "--locked", "pueue", "--root", TOOLS], capture_output=True, text=True)
    if r.returncode != 0 or not os.path.exists(PUEUED):
        with open(marker, "w") as f:
            f.write(r.stderr[-4000:])
        return "pueue could not be installed: `cargo install pueue` failed (see " + marker + ")"
    return None


def pueue_spawn_join(n, reps):
    """N `/bin/true` tasks through pueue: added to a paused group with `parallel` = N
    (not timed), then `pueue start` + `pueue wait` (timed), then `pueue clean`."""
    why = ensure_pueue()
    if why:
        log("  pueue: skipped, " + why)
        return {"skipped": why}
    d = tempfile.mkdtemp(prefix="svb-pueue-")
    cfg = os.path.join(d, "pueue.yml")
    sock = os.path.join(d, "pueue.sock")
    with open(cfg, "w") as f:
        f.write(
            "shared:\n"
            f"  pueue_directory: {d}\n"
            f"  runtime_directory: {d}\n"
            "  use_unix_socket: true\n"
            f"  unix_socket_path: {sock}\n"
            "daemon:\n"
            "  pause_group_on_failure: false\n"
            "  pause_all_on_failure: false\n"
        )
    proc = subprocess.Popen([PUEUED, "-c", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=raise_fds)
    STARTED.append(proc)
    ctl = lambda *a: subprocess.run([PUEUE, "-c", cfg, *a], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: os.path.exists(sock) or proc.poll() is not None, 30, "pueued's socket")
        if proc.poll() is not None:
            return {"skipped": "pueued exited at start"}
        ctl("parallel", str(n))
        xs = []
        for _ in range(reps):
            ctl("pause")
            for _ in range(n):
                ctl("add", "--", "/bin/true")
            t = time.perf_counter()
            ctl("start")
            ctl("wait")
            xs.append((time.perf_counter() - t) * 1e3)
            ctl("clean")
        return {"spawn": summary(xs, "ms"), "pid": proc.pid}
    except subprocess.CalledProcessError as e:
        why = f"pueue {' '.join(e.cmd[3:])} failed: {(e.stderr or b'').decode().strip()[:200]}"
        log("  pueue: " + why)
        return {"skipped": why}
    finally:
        stop_process(proc)
        shutil.rmtree(d, ignore_errors=True)


# ---- features of later rounds ---------------------------------------------------------------


FEATURES = {
    "plain": ({}, {}),
    "history off": ({"history": False}, {}),
    "history on": ({"history": True}, {}),
    "cgroup per job": ({"cgroup": "auto"}, {}),
}


def features(n, reps, seconds):
    """spawn+join N and idle N with each feature on, beside the plain daemon; a feature
    whose keys supervisord refuses is "not built yet"."""
    out = {}
    for label, (sup, defaults) in FEATURES.items():
        log(f"features: {label} ...")
        try:
            d = Ours(true_jobs(n), {"autostart": False, "start_secs": 0, **defaults}, sup)
        except Refused as e:
            out[label] = {"not_built": str(e)}
            continue
        try:
            xs = []
            for _ in range(reps):
                t = time.perf_counter()
                subprocess.run(d.ctl("start", "--all"), check=True, stdout=subprocess.DEVNULL)
                subprocess.run(d.ctl("wait", "--all"), check=True, stdout=subprocess.DEVNULL)
                xs.append((time.perf_counter() - t) * 1e3)
            out[label] = {"spawn": summary(xs, "ms")}
        finally:
            d.close()
        d = Ours(sleep_jobs(n), {"start_secs": 0, **defaults}, sup)
        try:
            wait_running(d, n, 600)
            settle(d.pid)
            s0, t0, _ = proc_sample(d.pid)
            time.sleep(seconds)
            s1, t1, rss = proc_sample(d.pid)
            out[label]["idle"] = {"switches": s1 - s0, "ticks": t1 - t0, "rss_kib": rss, "seconds": seconds}
        finally:
            d.close()
    return out


def health(n, seconds):
    """CPU of the daemon with N jobs under a 10 s tcp health check: bench/health_cpu.py."""
    script = os.path.join(BENCH, "health_cpu.py")
    r = subprocess.run(
        [sys.executable, script, "--jobs", str(n), "--seconds", str(seconds), "--bin", REL],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return {"note": f"bench/health_cpu.py --jobs {n} --seconds {seconds} exited {r.returncode}",
            "output": (r.stdout.strip() or r.stderr.strip()[-2000:])}


# ---- setup and report ----------------------------------------------------------------------


def setup(need_python):
    os.makedirs(OUT, exist_ok=True)
    log("building release binaries ...")
    subprocess.run(
        ["cargo", "build", "--release", "--bin", "supervisord"],
        cwd=ROOT,
        check=True,
    )
    # Not in the build above: that would link the dynamic one first, every run.
    log("building supctl linked statically, as the README's Install says ...")
    subprocess.run(
        ["cargo", "rustc", "--release", "-p", "supctl", "--bin", "supctl", "--",
         "-C", "target-feature=+crt-static"],
        cwd=ROOT,
        check=True,
    )
    log("compiling the floor ...")
    subprocess.run(
        ["rustc", "-O", "--edition", "2021", "-o", FLOOR, os.path.join(BENCH, "floor.rs")],
        check=True,
    )
    if need_python and not os.path.exists(PY_SUPERVISORD):
        log("creating bench/.venv with Python's Supervisor ...")
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run(
            [os.path.join(VENV, "bin", "pip"), "install", "-q", "supervisor"], check=True
        )


def machine():
    def first(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"

    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    return {
        "kernel": platform.release(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mib": mem,
        "rustc": first(["rustc", "--version"]),
        "supervisord": first([SUPERVISORD, "--version"]),
        "python": platform.python_version(),
        "python_supervisor": first([PY_SUPERVISORD, "--version"]) if os.path.exists(PY_SUPERVISORD) else None,
        "pid_max": open("/proc/sys/kernel/pid_max").read().strip(),
        "threads_max": open("/proc/sys/kernel/threads-max").read().strip(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def fmt(s, digits=1):
    if not s:
        return "—"
    f = f"{{:.{digits}f}}"
    return f"{f.format(s['median'])} ({f.format(s['min'])}–{f.format(s['max'])}) {s['unit']}"


def floor_s(row):
    f = row.get("floor_start_s")
    return f"{f:.2f} s" if f else "—"


def over(a, floor):
    """How far a median is above the floor's median."""
    if not a or not floor:
        return "—"
    return f"+{a['median'] - floor['median']:.0f} {a['unit']}"


def ratio(a, b):
    if not a or not b:
        return "—"
    return f"{a['median'] / b['median']:.2f}x"


def report(res, args):
    m = res["machine"]
    L = [
        "# Benchmark results",
        "",
        f"Produced by `python3 bench/run.py{' --quick' if args.quick else ''}` on {m['date']}.",
        "",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory_mib']} MiB, Linux {m['kernel']}",
        f"- {m['supervisord']} built with {m['rustc']} (release)",
        f"- Python Supervisor {m['python_supervisor']} on Python {m['python']}",
        "- cells: median (min–max) over the runs; ratios are of medians",
        "",
    ]
    if "spawn" in res:
        L += [
            "## (a) spawn + join N short jobs (`/bin/true`)",
            "",
            "supervisord: `supctl start --all` then `supctl wait --all` (two client processes).",
            "Supervisor: `supervisorctl start all`, then polling `getAllProcessInfo` until every",
            "program is EXITED (supervisorctl has no wait). Floor: `bench/floor spawn N`.",
            "",
            "| N | floor | supervisord | ratio | Supervisor | ratio |",
            "|---|---|---|---|---|---|",
        ]
        for n, r in res["spawn"].items():
            L.append(
                f"| {n} | {fmt(r.get('floor'))} | {fmt(r.get('ours'))} | {ratio(r.get('ours'), r.get('floor'))}"
                f" | {fmt(r.get('theirs'))} | {ratio(r.get('theirs'), r.get('floor'))} |"
            )
        L.append("")
        if any("floor_cgroup" in r for r in res["spawn"].values()):
            L += [
                "With a cgroup per run: the floor again with each child born in a cgroup of its",
                "own, made and removed around it (`bench/floor spawn-cgroup N DIR`: mkdir, clone3",
                "with CLONE_INTO_CGROUP, exec, reap, rmdir), and born in a cgroup kept from round",
                "to round as supervisord keeps a job's (`bench/floor spawn-cgroup-kept N DIR`):",
                "the OS work each asks for with nothing around it.",
                "",
                "| N | floor, a new cgroup per spawn | floor, kept cgroups | supervisord | ratio to the kept floor | kernel's cost, kept cgroups (vs plain floor) |",
                "|---|---|---|---|---|---|",
            ]
            for n, r in res["spawn"].items():
                L.append(
                    f"| {n} | {fmt(r.get('floor_cgroup'))} | {fmt(r.get('floor_cgroup_kept'))} | {fmt(r.get('ours'))} | "
                    f"{ratio(r.get('ours'), r.get('floor_cgroup_kept'))} | {ratio(r.get('floor_cgroup_kept'), r.get('floor'))} |"
                )
            L.append("")
    if "idle" in res:
        L += [
            "## (b) idle: N `sleep` jobs running, nothing asked, 10 s",
            "",
            "Context switches summed over every thread of the daemon (`/proc/PID/task/*/status`),",
            "CPU ticks (utime+stime, 1 tick = 10 ms), resident memory at the end.",
            "",
            "| N | system | context switches | CPU ticks | RSS |",
            "|---|---|---|---|---|",
        ]
        for n, r in res["idle"].items():
            for key, label in (("ours", "supervisord"), ("theirs", "Supervisor")):
                if key in r:
                    x = r[key]
                    L.append(
                        f"| {n} | {label} | {x['switches']} in {x['seconds']} s | {x['ticks']} | {x['rss_kib'] / 1024:.1f} MiB |"
                    )
        L.append("")
    if "status" in res:
        r = res["status"]
        L += [
            f"## (c) status of {args.status_jobs} jobs, (d) terminate one of them",
            "",
            "RPC: round trip on one open connection, measured in this script (request sent →",
            "whole answer line read; Supervisor's includes XML-RPC decoding in Python). Floor: the",
            "same loop against `bench/floor answer`, which sends back the same answer at once.",
            "Whole command: wall time of `supctl status` / `supervisorctl status` vs `/bin/true`.",
            "Terminate: `terminate` (waits for the exit) of one `sleep` job, over RPC.",
            "",
            "| measure | supervisord | Supervisor |",
            "|---|---|---|",
            f"| status RPC median (min–max) | {fmt(r['rpc'].get('ours'))} | {fmt(r['rpc'].get('theirs'), 0)} |",
            f"| ... floor: the same answer from `floor answer` (no work) | {fmt(r['rpc'].get('floor'))} | — |",
            f"| status RPC p99 | {r['rpc']['ours']['p99']:.1f} us |"
            + (f" {r['rpc']['theirs']['p99']:.0f} us |" if r["rpc"].get("theirs") else " — |")
            if r["rpc"].get("ours")
            else "| status RPC p99 | — | — |",
            f"| whole status command | {fmt(r['cli'].get('ours'), 2)} | {fmt(r['cli'].get('theirs'))} |",
            f"| ... vs `/bin/true` {fmt(r['cli']['/bin/true'], 2)} | {ratio(r['cli'].get('ours'), r['cli']['/bin/true'])}"
            f" | {ratio(r['cli'].get('theirs'), r['cli']['/bin/true'])} |",
            f"| terminate one job | {fmt(r['terminate'].get('ours'), 2)} | {fmt(r['terminate'].get('theirs'))} |",
            "",
        ]
    if "exit" in res:
        r = res["exit"]
        L += [
            "## (e) exit detection",
            "",
            "The job (`bench/floor stamp FILE`) opens its stamp file, then reads the wall clock,",
            "writes it and exits; the script notes the wall clock when it has the news. Floor: the",
            "script itself starts the job and waits on its pidfd (no supervisor). supervisord: the",
            "`exited` event on a `subscribe` connection. Supervisor: `getProcessInfo` polled in a",
            "tight loop (so its figure includes up to one XML-RPC round trip of polling).",
            "",
            "Each job runs twice; the first run also creates the job's log files (on this",
            "machine's ext4 that alone can take a millisecond), the second is the steady state.",
            "Over the floor: the system's median minus the floor's (second runs).",
            "",
            "| system | exit → event seen (second run) | over the floor | first run |",
            "|---|---|---|---|",
            f"| floor (pidfd) | {fmt(r.get('floor'), 0)} | — | {fmt(r.get('floor_first_run'), 0)} |",
            f"| supervisord | {fmt(r.get('ours'), 0)} | {over(r.get('ours'), r.get('floor'))} | {fmt(r.get('ours_first_run'), 0)} |",
            f"| Supervisor | {fmt(r.get('theirs'), 0)} | {over(r.get('theirs'), r.get('floor'))} | {fmt(r.get('theirs_first_run'), 0)} |",
            "",
        ]
    if "capture" in res:
        L += ["## (f) output capture, 1 GiB", "", res["capture"]["note"], ""]
        if res["capture"].get("output"):
            L += ["```", res["capture"]["output"], "```", ""]
    if "scale" in res:
        L += [
            "## Scale: many sleeping jobs (supervisord only)",
            "",
            "Start: daemon launch → all `running`. Descriptors: the daemon's `/proc/PID/fd` with",
            f"all running (a job holds its pipes, and a pidfd for the first {PIDFD_BUDGET} runs alive;",
            f"log files are open only while written, {OPEN_LOG_FILES} at most). Kernel: growth of",
            "`SUnreclaim` in /proc/meminfo per job (machine-wide: the job's own process too).",
            "Memory: the daemon and its guard process apart, once every job runs (RSS from",
            "/proc/PID/status, PSS from smaps_rollup: pages the two share, the same binary and libc,",
            "count whole in each RSS and split in PSS).",
            f"Open-files hard limit here: {res.get('fd_hard_limit', '?')}; load average at the end of each run shown.",
            "",
            "Floor: `bench/floor spawn-sleep N`, the same N `sleep` processes spawned by a bare",
            "loop (stdio on /dev/null) until the last is running.",
            "",
            "| jobs | output | start (floor) | descriptors (per job) | daemon RSS / PSS | guard RSS / PSS | kernel per job | status RPC | `supctl status` | shutdown | load |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for s in res["scale"]:
            if "error" in s or "skipped" in s:
                L.append(f"| {s['jobs']} | {s['output']} | {s.get('error') or s.get('skipped')} ||||||||| ")
                continue
            L.append(
                f"| {s['jobs']} | {s['output']} | {s['start_s']:.2f} s ({floor_s(s)}) | {s['fds']} ({s['fds_per_job']:.2f}) "
                f"| {s['rss_kib'] / 1024:.1f} / {s['pss_kib'] / 1024:.1f} MiB "
                f"| {s.get('guard_rss_kib', 0) / 1024:.1f} / {s.get('guard_pss_kib', 0) / 1024:.1f} MiB | {s['kernel_kib_per_job']:.1f} KiB "
                f"| {fmt(s['status_rpc'])} | {fmt(s['status_cli'])} | {s['shutdown_s']:.2f} s | {s['load']:.1f} |"
            )
        L += ["", f"Limits here: pid_max {m['pid_max']}, threads-max {m['threads_max']}.", ""]
    if "peers" in res:
        r = res["peers"]
        n = r["n"]
        L += [
            f"## Peers: {n} long-running jobs, and spawn + join {r['spawn_n']} `/bin/true`",
            "",
            "Up: launch → every job running (s6: every s6-supervise has exec'd `sleep`; its run",
            "script is `#!/bin/sh` + `exec /bin/sleep 100000`). Idle: context switches and CPU",
            "ticks summed over the processes, after start-up settled. Memory summed over the",
            "processes: supervisord + its guard; s6-svscan + every s6-supervise.",
            "",
            "| system | processes | up | idle switches / ticks | RSS | PSS | PSS per job |",
            "|---|---|---|---|---|---|---|",
        ]
        for key, label in (("ours", "supervisord"), ("s6", "s6")):
            x = r.get(key, {})
            if "skipped" in x:
                L.append(f"| {label} | {x['skipped']} |||||| ")
            elif x:
                L.append(
                    f"| {label} | {x['processes']} | {x['up_s']:.2f} s | {x['switches']} / {x['ticks']} in {x['seconds']} s "
                    f"| {x['rss_kib'] / 1024:.1f} MiB | {x['pss_kib'] / 1024:.1f} MiB | {x['pss_kib'] / n:.1f} KiB |"
                )
        L.append("")
        spawn = res.get("spawn", {}).get(r["spawn_n"], {})
        L += [
            f"spawn + join {r['spawn_n']} `/bin/true` (s6: the 'o' byte to every control FIFO, then every 'd'",
            "event read; supervisord: `supctl start --all` + `supctl wait --all`; pueue: see below):",
            "",
            "| floor | supervisord | s6 | pueue |",
            "|---|---|---|---|",
            f"| {fmt(spawn.get('floor'))} | {fmt(spawn.get('ours'))} | "
            + (fmt(r.get('s6', {}).get('spawn')) if 'spawn' in r.get('s6', {}) else "—")
            + " | "
            + (fmt(res.get('pueue', {}).get('spawn')) if 'spawn' in res.get('pueue', {}) else "—")
            + " |",
            "",
        ]
    if "pueue" in res:
        x = res["pueue"]
        L += [
            f"### pueue, spawn + join {args.pueue_jobs} `/bin/true`",
            "",
            "Tasks added to the paused default group with `parallel` as high as the task count",
            "(not timed), then `pueue start` + `pueue wait` (timed), `pueue clean` between runs.",
            "",
            ("- " + x["skipped"]) if "skipped" in x else f"- pueue: {fmt(x['spawn'])}",
            "",
        ]
    if "features" in res:
        L += [
            f"## Features of later rounds: spawn + join and idle with {args.feature_jobs} jobs",
            "",
            "| variant | spawn + join | ratio to plain | idle switches / ticks | RSS |",
            "|---|---|---|---|---|",
        ]
        plain = res["features"].get("plain", {}).get("spawn")
        for label, x in res["features"].items():
            if "not_built" in x:
                why = x["not_built"].split(": ")[-1].split(", expected")[0]
                L.append(f"| {label} | not built yet (supervisord: {why}) |||| ")
                continue
            i = x.get("idle", {})
            L.append(
                f"| {label} | {fmt(x['spawn'])} | {ratio(x['spawn'], plain)} | {i.get('switches')} / {i.get('ticks')} in {i.get('seconds')} s "
                f"| {i.get('rss_kib', 0) / 1024:.1f} MiB |"
            )
        L.append("")
    if "health" in res:
        L += [f"## {args.health_jobs} jobs under a 10 s tcp health check: CPU of the daemon", "", res["health"]["note"], "", "```", res["health"]["output"], "```", ""]
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    ap.add_argument("--no-python", action="store_true", help="leave Python's Supervisor out")
    ap.add_argument(
        "--only",
        default="spawn,idle,status,exit,capture,scale,peers,pueue,features,health",
        help="comma-separated workloads (default: all)",
    )
    ap.add_argument("--status-jobs", type=int, default=200)
    ap.add_argument("--scale-jobs", type=int, default=10_000, help="jobs of the null and merged scale runs")
    ap.add_argument("--scale-both", type=int, default=5_000, help="jobs of the scale run with both streams captured")
    ap.add_argument("--peer-jobs", type=int, default=1000, help="long-running jobs for the s6 comparison")
    ap.add_argument("--pueue-jobs", type=int, default=500)
    ap.add_argument("--feature-jobs", type=int, default=1000)
    ap.add_argument("--health-jobs", type=int, default=1000)
    ap.add_argument("--health-seconds", type=int, default=60)
    ap.add_argument("--cgroup", action="store_true", help='every supervisord here with [supervisor] cgroup = "auto"')
    ap.add_argument("--history", action="store_true", help="every supervisord here with [supervisor] history = true")
    ap.add_argument("--supervisor-key", action="append", default=[], metavar="K=V", help="a [supervisor] key (TOML value) for every supervisord here")
    ap.add_argument("--job-key", action="append", default=[], metavar="K=V", help="a [defaults] key (TOML value) for every supervisord here")
    ap.add_argument("--idle-seconds", type=int, default=10)
    ap.add_argument("--no-build", action="store_true", help="use the binaries already built")
    ap.add_argument("--results", default=os.path.join(BENCH, "RESULTS.md"))
    args = ap.parse_args()
    only = set(args.only.split(","))
    for opt, into in ((args.supervisor_key, EXTRA_SUPERVISOR), (args.job_key, EXTRA_DEFAULTS)):
        for kv in opt:
            k, _, v = kv.partition("=")
            try:
                into[k] = json.loads(v)
            except ValueError:
                into[k] = v
    if args.cgroup:
        EXTRA_SUPERVISOR["cgroup"] = "auto"
    if args.history:
        EXTRA_SUPERVISOR["history"] = True
    systems = {"floor", "ours"} | (set() if args.no_python else {"theirs"})
    os.makedirs(OUT, exist_ok=True)
    if not args.no_build:
        setup(not args.no_python)
    reps = 3 if args.quick else 7
    res = {"machine": machine()}
    try:
        save = lambda: json.dump(res, open(os.path.join(OUT, "partial.json"), "w"), indent=1)
        if "spawn" in only:
            res["spawn"] = {}
            for n in (500, 1000):
                log(f"(a) spawn+join {n} ...")
                res["spawn"][n] = spawn_join(n, reps, systems)
                save()
        if "idle" in only:
            res["idle"] = {}
            for n in (200, 1000):
                log(f"(b) idle with {n} jobs ...")
                res["idle"][n] = idle(n, args.idle_seconds, systems)
                save()
        if "status" in only:
            log("(c, d) status and terminate ...")
            res["status"] = status_and_terminate(
                args.status_jobs, 200 if args.quick else 1000, 20 if args.quick else 100, 20, systems
            )
        if "exit" in only:
            log("(e) exit detection ...")
            res["exit"] = exit_detection(30 if args.quick else 100, systems)
        if "capture" in only:
            log("(f) capture ...")
            res["capture"] = capture()
        if "scale" in only:
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            room = FD_LIMIT if can_raise() else hard
            res["fd_hard_limit"] = hard
            res["scale"] = []
            for n, output in ((args.scale_jobs, "null"), (args.scale_jobs, "merged"), (args.scale_both, "both")):
                if not fits(n, output, room):
                    res["scale"].append({"jobs": n, "output": output, "skipped": f"does not fit under {room} descriptors"})
                    continue
                log(f"scale: {n} jobs, output {output} (open-files hard limit {hard}) ...")
                try:
                    row = scale(n, output)
                    # The floor of the start: N sleeping processes spawned by a bare loop
                    # (std::process, posix_spawn), once per N.
                    if n not in res.setdefault("scale_floor", {}):
                        r = subprocess.run([FLOOR, "spawn-sleep", str(n)], capture_output=True, text=True)
                        if r.returncode == 0 and r.stdout.strip().isdigit():
                            res["scale_floor"][n] = int(r.stdout.strip()) / 1e6
                    row["floor_start_s"] = res["scale_floor"].get(n)
                    res["scale"].append(row)
                except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as e:
                    res["scale"].append({"jobs": n, "output": output, "error": str(e)})
                save()
        if "peers" in only:
            try:
                res["peers"] = peers(args.peer_jobs, args.idle_seconds, args.pueue_jobs, reps)
            except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as e:
                log(f"peers failed: {e}")
                res["peers"] = {"n": args.peer_jobs, "spawn_n": args.pueue_jobs, "s6": {"skipped": f"failed: {e}"}}
            save()
        if "pueue" in only:
            log(f"pueue: spawn+join {args.pueue_jobs} ...")
            try:
                res["pueue"] = pueue_spawn_join(args.pueue_jobs, reps)
            except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as e:
                log(f"pueue failed: {e}")
                res["pueue"] = {"skipped": f"failed: {e}"}
            save()
        if "features" in only:
            res["features"] = features(args.feature_jobs, reps, args.idle_seconds)
            save()
        if "health" in only:
            log(f"health: {args.health_jobs} jobs under a tcp check ...")
            res["health"] = health(args.health_jobs, 15 if args.quick else args.health_seconds)
            save()
    finally:
        for p in list(STARTED):
            stop_process(p)
    text = report(res, args)
    with open(args.results, "w") as f:
        f.write(text + "\n")
    log(f"wrote {args.results}")
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(text)


if __name__ == "__main__":
    main()
