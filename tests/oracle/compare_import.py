#!/usr/bin/env python3
"""Check `supervisord import` against Python Supervisor's own parser.

For each Supervisor file given, this runs `supervisord import FILE`, reads the job file it
writes (tomllib), reads the same file with Supervisor's `ServerOptions` (the code
Supervisor itself runs at start), and compares what every process would be: its name, its
argv, cwd, user, umask, environment, autostart, restart policy, start_secs, retries of a
failed start, exit codes, stop signal and timeout, whether the whole group is signalled,
where stdout and stderr go, and the log rotation figures.

    compare_import.py SUPERVISORD CONF...        # exit 1 on any difference
    compare_import.py --table SUPERVISORD CONF...  # also print a Markdown table

Supervisor checks the host as it parses (users exist, log folders exist); those checks
are turned off here, so a file written for a container can be read on any machine. The
job file's own defaults come from `supervisord schema`, so they can never drift from the
parser's.
"""

import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys

try:
    import tomllib
except ImportError:
    print("SKIPPED: Python 3.11 or later is needed (tomllib)")
    sys.exit(77)
try:
    from supervisor import datatypes, options
except ImportError:
    print("SKIPPED: Python's supervisor package is not installed (pip install supervisor)")
    sys.exit(77)

# Read, do not check the host: a user or a log folder of a container need not exist here.
datatypes.existing_dirpath = lambda v: os.path.abspath(os.path.expanduser(v))
options.existing_dirpath = datatypes.existing_dirpath
options.existing_directory = lambda v: os.path.abspath(os.path.expanduser(v))
datatypes.existing_directory = options.existing_directory
options.name_to_uid = lambda name: name
datatypes.name_to_uid = options.name_to_uid


def supervisor_view(path):
    """Every process Supervisor would run from `path`: {name: fields}."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if not re.search(r"^\[supervisord\]", text, re.M):
        # A conf.d fragment: Supervisor reads it through an [include] of the main file.
        text = "[supervisord]\n" + text
    # Event listeners are not compared, and one may name a plugin not installed here.
    text = re.sub(r"^\[eventlistener:[^\]]*\][^\[]*", "", text, flags=re.M)
    o = options.ServerOptions()
    o.configfile = path
    o.here = os.path.dirname(os.path.abspath(path))
    section = o.read_config(io.StringIO(text))
    procs = {}
    for group in section.process_group_configs:
        if not isinstance(group, options.ProcessGroupConfig):
            continue  # event listeners and FastCGI programs
        for p in group.process_configs:
            procs[p.name] = supervisor_fields(p)
            # supervisord chdirs to [supervisord] directory, where its children start.
            if procs[p.name]["cwd"] is None and section.directory:
                procs[p.name]["cwd"] = section.directory
    return procs


def restart_name(autorestart):
    if autorestart is False:
        return "never"
    if autorestart is datatypes.RestartUnconditionally:
        return "always"
    return "on-failure"


def output_of(logfile, default_auto):
    if logfile is datatypes.Automatic:
        return "log"
    if logfile is None:
        return "null"
    if logfile in ("/dev/stdout", "/dev/fd/1"):
        return "inherit"
    if logfile in ("/dev/stderr", "/dev/fd/2"):
        return "/dev/stderr"
    return logfile


def supervisor_fields(p):
    sig = signal.Signals(p.stopsignal).name.removeprefix("SIG")
    out = {
        "command": shlex.split(p.command),
        "cwd": p.directory,
        "user": p.uid,
        "umask": None if p.umask is None else format(p.umask, "03o"),
        "env": dict(p.environment or {}),
        "autostart": bool(p.autostart),
        "restart": restart_name(p.autorestart),
        "start_secs": p.startsecs,
        "max_restarts": p.startretries,
        "exit_codes": sorted(p.exitcodes),
        "stop_signal": sig,
        "stop_timeout": p.stopwaitsecs,
        "kill_group": bool(p.stopasgroup or p.killasgroup),
        "stdout": output_of(p.stdout_logfile, True),
        "stderr": "stdout" if p.redirect_stderr else output_of(p.stderr_logfile, True),
    }
    if out["stdout"] == "log":
        out["log_backups"] = p.stdout_logfile_backups
        out["log_max_bytes"] = p.stdout_logfile_maxbytes
    return out


def seconds(v):
    """'10s', '2m', 5 -> seconds."""
    if isinstance(v, int):
        return v
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", v.strip())
    n, unit = int(m.group(1)), m.group(2) or "s"
    return {"ms": n / 1000, "s": n, "m": 60 * n, "h": 3600 * n}[unit]


def size(v):
    if isinstance(v, int):
        return v
    m = re.fullmatch(r"(\d+)\s*([KMG]i?B|B)?", v.strip())
    n, unit = int(m.group(1)), m.group(2) or "B"
    mult = {"B": 1, "KB": 1024, "KiB": 1024, "MB": 1024**2, "MiB": 1024**2,
            "GB": 1024**3, "GiB": 1024**3}[unit]
    return n * mult


def load_time(s, env):
    """What supervisord makes of a string when it loads the job file: ${X}, ${X:-d}, $$."""
    def one(m):
        if m.group(0) == "$$":
            return "$"
        name, default = m.group(1), m.group(3)
        return env.get(name, default if default is not None else "")
    return re.sub(r"\$\$|\$\{(\w+)(:-([^}]*))?\}", one, s)


def our_view(supervisord, path, env):
    run = subprocess.run([supervisord, "import", path], capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise RuntimeError(f"supervisord import {path} failed: {run.stderr.strip()}")
    job_file = tomllib.loads(run.stdout)
    schema = json.loads(subprocess.run([supervisord, "schema"], capture_output=True,
                                       text=True, check=True).stdout)
    defs = schema.get("$defs") or schema.get("definitions")
    defaults = {k: v.get("default") for k, v in defs["Job"]["properties"].items()}
    defaults.update(job_file.get("defaults", {}))
    jobs = {}
    for name, job in job_file.get("job", {}).items():
        j = dict(defaults)
        j.update(job)
        # `env` is merged key by key, the job's own winning.
        j["env"] = {**(defaults.get("env") or {}), **(job.get("env") or {})}
        umask = j.get("umask")
        jobs[name] = {
            "command": [load_time(a, env) for a in j["command"]] if isinstance(j["command"], list)
            else shlex.split(load_time(j["command"], env)),
            "cwd": load_time(j["cwd"], env) if j.get("cwd") else None,
            "user": j.get("user"),
            "umask": None if umask is None else (format(umask, "03o") if isinstance(umask, int)
                                                  else format(int(umask, 8), "03o")),
            "env": {k: load_time(str(v), env) for k, v in (j.get("env") or {}).items()},
            "autostart": j["autostart"],
            "restart": j["restart"],
            "start_secs": seconds(j["start_secs"]),
            "max_restarts": j["max_restarts"],
            "exit_codes": sorted(j["exit_codes"]),
            "stop_signal": j["stop_signal"],
            "stop_timeout": seconds(j["stop_timeout"]),
            "kill_group": j["kill_group"],
            "stdout": j["stdout"].removeprefix("./") if j["stdout"].startswith("./") else j["stdout"],
            "stderr": j["stderr"],
        }
        if jobs[name]["stdout"] == "log":
            jobs[name]["log_backups"] = j["log_backups"]
            jobs[name]["log_max_bytes"] = size(j["log_max_bytes"])
    return jobs, run.stderr


def job_name(s):
    n = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in s)[:64]
    return n or "_"


def compare(supervisord, path, env):
    """(processes, differences, notes)"""
    # Supervisor refuses a file naming an unset %(ENV_X)s, and so does the imported job
    # file when it is loaded: give every such name a value, the same for both readers.
    with open(path, encoding="utf-8") as f:
        for name in re.findall(r"%\(ENV_(\w+)\)", f.read()):
            env.setdefault(name, f"value-of-{name}")
    os.environ.update(env)
    theirs = supervisor_view(path)
    ours, notes = our_view(supervisord, path, env)
    diffs = []
    for pname, want in theirs.items():
        got = ours.get(job_name(pname))
        if got is None:
            diffs.append(f"{pname}: no job {job_name(pname)!r} (jobs: {sorted(ours)})")
            continue
        for k, v in want.items():
            g = got.get(k)
            if k == "stdout" and isinstance(v, str) and v not in ("log", "null", "inherit"):
                # A relative file is written with its './'; Supervisor made it absolute.
                g = os.path.normpath(os.path.join(os.path.dirname(path), g)) if not g.startswith("/") else g
            if k == "stderr" and isinstance(g, str) and g.startswith("./"):
                g = os.path.normpath(os.path.join(os.path.dirname(path), g))
            if g != v:
                diffs.append(f"{pname}: {k}: Supervisor {v!r}, import {g!r}")
    for name in ours:
        if name not in {job_name(p) for p in theirs}:
            diffs.append(f"{name}: a job Supervisor would not run")
    return len(theirs), diffs, [n for n in notes.splitlines() if n.strip()]


def main(argv):
    table = "--table" in argv
    args = [a for a in argv if a != "--table"]
    supervisord, files = args[0], args[1:]
    env = dict(os.environ)
    failed = 0
    rows = []
    for f in files:
        try:
            n, diffs, notes = compare(supervisord, f, env)
        except Exception as e:  # a file Supervisor itself refuses is reported, not compared
            print(f"{f}: {type(e).__name__}: {e}")
            rows.append((f, "-", "-", f"{type(e).__name__}: {e}"))
            failed += 1
            continue
        for d in diffs:
            print(f"{f}: {d}")
        failed += bool(diffs)
        rows.append((f, n, len(diffs), len(notes)))
    if table:
        print("| file | processes | differences from Supervisor | notes |")
        print("|---|---|---|---|")
        for r in rows:
            print("| " + " | ".join(str(c) for c in r) + " |")
    print(f"{len(files) - failed} of {len(files)} files import as Supervisor reads them")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
