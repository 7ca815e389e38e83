#!/usr/bin/env python3
"""CPU of supervisord and of `supctl top` while top watches N running jobs.

    python3 bench/top_cpu.py [--jobs 1000] [--seconds 30] [--bin target/release]

Writes a job file of N `sleep` jobs (10 groups, output discarded), starts supervisord,
waits until every job is running, then starts `supctl top` in a detached tmux session
(120x40) and, after a 3 s settling pause, reads the utime+stime of both processes from
/proc over --seconds. Prints each as a share of one core, with the load average at the
time (the figure moves with whatever else the machine runs). Needs tmux. Run by hand;
not part of CI.
"""
import argparse, json, os, subprocess, sys, tempfile, time


def ticks(pid):
    """(utime, stime) in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]), int(parts[12])


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--bin", default="target/release")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="svtop")
    with open(os.path.join(d, "jobs.toml"), "w") as f:
        f.write('[defaults]\nstdout = "null"\nstderr = "null"\nstart_secs = 0\n\n')
        for i in range(a.jobs):
            f.write(f'[job.j{i:04}]\ncommand = ["sleep", "3600"]\ngroup = "g{i % 10}"\n\n')
    sock = os.path.join(d, "sock")
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
    except Exception:
        pass
    bin_dir = os.path.abspath(a.bin)
    daemon = subprocess.Popen([os.path.join(bin_dir, "supervisord"), "--config",
                               os.path.join(d, "jobs.toml"), "--socket", sock],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctl = os.path.join(bin_dir, "supctl")
    tmux = ["tmux", "-S", os.path.join(d, "tmux.sock")]
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            r = subprocess.run([ctl, "--socket", sock, "--json", "status"],
                               capture_output=True, text=True)
            if r.returncode == 0:
                jobs = json.loads(r.stdout)["jobs"]
                if sum(1 for j in jobs if j["state"] == "running") == a.jobs:
                    break
            time.sleep(1)
        else:
            sys.exit("not every job was running within 120 s")
        subprocess.run(tmux + ["-f", "/dev/null", "new-session", "-d", "-s", "top",
                               "-x", "120", "-y", "40", ctl, "--socket", sock, "top"],
                       check=True)
        top_pid = None
        deadline = time.time() + 20
        while top_pid is None and time.time() < deadline:
            r = subprocess.run(["pgrep", "-f", f"{sock} top"], capture_output=True, text=True)
            pids = [int(p) for p in r.stdout.split()]
            # tmux's own command line names supctl too: take the supctl process.
            top_pid = next((p for p in pids if comm(p) == "supctl"), None)
            time.sleep(0.2)
        if top_pid is None:
            sys.exit("supctl top did not start")
        time.sleep(3)
        hz = os.sysconf("SC_CLK_TCK")
        t0, d0, p0 = time.time(), ticks(daemon.pid), ticks(top_pid)
        time.sleep(a.seconds)
        t1, d1, p1 = time.time(), ticks(daemon.pid), ticks(top_pid)
        load = os.getloadavg()
        procs = sum(1 for p in os.listdir("/proc") if p.isdigit())
        wall = t1 - t0
        print(f"{a.jobs} running jobs, supctl top open (120x40), {wall:.0f}s, "
              f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs, "
              f"{procs} processes on the machine (usage reads each one's /proc/PID/stat):")
        for who, (u0, s0), (u1, s1) in [("supervisord", d0, d1), ("supctl top", p0, p1)]:
            share = lambda t: t / hz / wall * 100
            print(f"  {who + ':':13}{share(u1 - u0 + s1 - s0):.2f}% of one core "
                  f"(user {share(u1 - u0):.2f}%, system {share(s1 - s0):.2f}%)")
    finally:
        subprocess.run(tmux + ["kill-server"], capture_output=True)
        subprocess.run([ctl, "--socket", sock, "shutdown"], capture_output=True)
        daemon.wait(timeout=60)


if __name__ == "__main__":
    main()
