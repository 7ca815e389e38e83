#!/usr/bin/env python3
"""Instructions the supervisor's loop spends on spawn + join, with the history on or off.

Run by hand (never by CI), after `cargo build --release --locked -p supervisord -p supctl`:
    python3 bench/history_callgrind.py on 200      # then: off 200
    callgrind_annotate --inclusive=yes bench/out/callgrind-on/cg.*.1-01

Wall time and even /proc CPU time are noise on a shared machine; instruction counts are
not. supervisord runs under `valgrind --tool=callgrind --separate-threads=yes` with
bench/history.py's job file of N `/bin/true` jobs; after one warm-up round the counters
are zeroed, one round (`supctl start --all`, `supctl wait --all`) runs, and the counters
are dumped. The runtime is current-thread, so thread 1 (`cg.PID.1-01`) is the
supervisor's loop; its `summary:` line is the figure to compare between on and off.
"""

import glob
import os
import subprocess
import sys

import history

mode, jobs = sys.argv[1], int(sys.argv[2])
out = os.path.join(history.OUT, f"callgrind-{mode}")
os.makedirs(out, exist_ok=True)
for f in glob.glob(os.path.join(out, "*")):
    os.remove(f)
wrapper = os.path.join(out, "supervisord.sh")
with open(wrapper, "w") as f:
    f.write(
        "#!/bin/sh\nexec valgrind --tool=callgrind --separate-threads=yes "
        f"--trace-children=no --callgrind-out-file={out}/cg.%p {history.SUPERVISORD} \"$@\"\n"
    )
os.chmod(wrapper, 0o755)
history.SUPERVISORD = wrapper
d = history.Daemon(jobs, mode == "on")
try:
    d.round()
    subprocess.run(["callgrind_control", "-z", str(d.proc.pid)], check=True, stdout=subprocess.DEVNULL)
    d.round()
    subprocess.run(["callgrind_control", "-d", str(d.proc.pid)], check=True, stdout=subprocess.DEVNULL)
finally:
    d.close()
for f in sorted(glob.glob(os.path.join(out, "cg.*.1-*"))):
    with open(f) as t:
        summary = next((l.split()[1] for l in t if l.startswith("summary:")), "?")
    print(f"{os.path.basename(f)}: {summary} instructions")
