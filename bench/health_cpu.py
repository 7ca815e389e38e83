#!/usr/bin/env python3
"""The daemon's CPU with N jobs, each with a tcp health check every 10 s.

    python3 bench/health_cpu.py [--jobs 1000] [--seconds 60] [--bin target/release]

Starts one listener (this script), writes a job file of N `sleep` jobs whose health
check connects to it, starts supervisord, waits until every job is healthy, then reads
supervisord's utime+stime from /proc over --seconds and prints the share of one core.
Run by hand; not part of CI.
"""
import argparse, os, socket, subprocess, sys, tempfile, threading, time, json

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--bin", default="target/release")
    a = ap.parse_args()
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", 0))
    lst.listen(4096)
    port = lst.getsockname()[1]
    def accept():
        while True:
            c, _ = lst.accept()
            c.close()
    threading.Thread(target=accept, daemon=True).start()
    d = tempfile.mkdtemp(prefix="svh")
    with open(os.path.join(d, "jobs.toml"), "w") as f:
        f.write('[defaults]\nstdout = "null"\nstderr = "null"\nstart_secs = 0\n\n')
        for i in range(a.jobs):
            f.write(f'[job.j{i}]\ncommand = ["sleep", "3600"]\n'
                    f'[job.j{i}.health]\ntcp = "127.0.0.1:{port}"\ninterval = "10s"\n\n')
    sock = os.path.join(d, "sock")
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
    except Exception:
        pass
    daemon = subprocess.Popen([os.path.join(a.bin, "supervisord"), "--config",
                               os.path.join(d, "jobs.toml"), "--socket", sock],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctl = os.path.join(a.bin, "supctl")
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            r = subprocess.run([ctl, "--socket", sock, "--json", "status"],
                               capture_output=True, text=True)
            if r.returncode == 0:
                jobs = json.loads(r.stdout)["jobs"]
                if sum(1 for j in jobs if j.get("health") == "healthy") == a.jobs:
                    break
            time.sleep(1)
        else:
            sys.exit("not every job became healthy within 120 s")
        hz = os.sysconf("SC_CLK_TCK")
        def ticks():
            with open(f"/proc/{daemon.pid}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
            return int(parts[11]) + int(parts[12])
        t0, c0 = time.time(), ticks()
        time.sleep(a.seconds)
        t1, c1 = time.time(), ticks()
        cpu = (c1 - c0) / hz / (t1 - t0) * 100
        print(f"{a.jobs} jobs, tcp health check every 10s: supervisord used "
              f"{cpu:.2f}% of one core over {t1 - t0:.0f}s")
    finally:
        subprocess.run([ctl, "--socket", sock, "shutdown"], capture_output=True)
        daemon.wait(timeout=60)

if __name__ == "__main__":
    main()
