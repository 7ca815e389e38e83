//! What a job's process is given at spawn, the same through both spawn paths: `clone3`
//! (the default here) and the fork-and-exec fallback used where the kernel refuses
//! `clone3` (forced with `SUPERVISORD_NO_CLONE3`).

use crate::support::{is_root, jobs, Daemon};

/// The two spawn paths, by the environment that selects them.
const PATHS: [(&str, Option<&str>); 2] = [("clone3", None), ("fork", Some("1"))];

fn prepare(body: &str, no_clone3: Option<&str>) -> Daemon {
    let mut d = Daemon::prepare(&jobs(body));
    if let Some(v) = no_clone3 {
        d.env.push(("SUPERVISORD_NO_CLONE3".into(), v.into()));
    }
    d
}

/// A hexadecimal signal set of /proc/PID/status (`SigIgn`, `SigBlk`).
fn sigset(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let hex = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"));
    u64::from_str_radix(hex.trim(), 16).expect("hex signal set")
}

fn bit(sig: nix::sys::signal::Signal) -> u64 {
    1 << (sig as u32 - 1)
}

fn says_fallback(d: &Daemon) -> bool {
    d.stderr().contains("clone3 is not available")
}

/// supervisord started with SIGQUIT and SIGTTIN ignored (as `nohup` ignores SIGHUP) and
/// ignoring SIGPIPE itself: its jobs ignore none of them and block nothing — whether the
/// kernel clears the handled signals (`CLONE_CLEAR_SIGHAND`) and the child resets the
/// ignored ones, or the child resets every signal (a kernel without that flag, forced with
/// `SUPERVISORD_NO_CLEAR_SIGHAND`), or the fork-and-exec fallback does.
#[test]
fn a_job_starts_with_every_signal_at_its_default_and_none_blocked() {
    use nix::sys::signal::Signal;
    let paths = PATHS
        .iter()
        .map(|&(path, no_clone3)| (path, no_clone3, false))
        .chain(std::iter::once((
            "clone3, every signal reset by the child",
            None,
            true,
        )));
    for (path, no_clone3, no_clear) in paths {
        let mut d = prepare("[job.s]\ncommand = \"sleep 60\"\n", no_clone3);
        if no_clear {
            d.env
                .push(("SUPERVISORD_NO_CLEAR_SIGHAND".into(), "1".into()));
        }
        let d = d.launch_via(&["sh", "-c", "trap '' QUIT TTIN; exec \"$@\"", "sh"], &[]);
        let daemon = sigset(d.pid(), "SigIgn");
        let ignored = bit(Signal::SIGQUIT) | bit(Signal::SIGTTIN) | bit(Signal::SIGPIPE);
        assert_eq!(daemon & ignored, ignored, "{path}: the daemon ignores them");
        let pid = d.running_pid("s");
        assert_eq!(sigset(pid, "SigIgn"), 0, "{path}: the job ignores nothing");
        assert_eq!(sigset(pid, "SigBlk"), 0, "{path}: the job blocks nothing");
        assert_eq!(
            says_fallback(&d),
            no_clone3.is_some(),
            "{path}: {}",
            d.stderr()
        );
    }
}

/// Each path gives the job its process group, environment, limits and (as root) its
/// run's cgroup, and names what went wrong when it cannot run the program or enter its
/// folder.
#[test]
fn both_spawn_paths_give_the_same_process_and_the_same_errors() {
    for (path, no_clone3) in PATHS {
        let d = prepare(
            "[job.lim]\ncommand = \"sleep 60\"\nenv = { GREETING = \"hi\" }\n\
             [job.lim.limits]\nnofile = 1234\n\
             [job.missing]\ncommand = \"no-such-program-anywhere\"\nrestart = \"never\"\n\
             [job.cwd]\ncommand = \"true\"\ncwd = \"no/such/folder\"\nrestart = \"never\"\n",
            no_clone3,
        )
        .launch(&[]);
        let pid = d.running_pid("lim");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let after_comm = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let pgrp: u32 = after_comm
            .split_whitespace()
            .nth(2)
            .and_then(|g| g.parse().ok())
            .expect("pgrp");
        assert_eq!(pgrp, pid, "{path}: the job leads its process group");
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
        let nofile = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "));
        assert_eq!(
            nofile.as_deref(),
            Some("Max open files 1234 1234 files"),
            "{path}"
        );
        let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
        let environ: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
        for var in [
            &b"GREETING=hi"[..],
            b"SUPERVISOR_JOB=lim",
            b"SUPERVISOR_GROUP=lim",
        ] {
            assert!(
                environ.contains(&var),
                "{path}: {:?}",
                String::from_utf8_lossy(var)
            );
        }
        assert!(
            environ.iter().any(|v| v.starts_with(b"PATH=")),
            "{path}: supervisord's own environment is passed on"
        );
        if is_root() {
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
            let v2 = cgroup
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .unwrap_or_default();
            assert!(
                v2.contains(&format!("/supervisord-{}/lim@", d.pid())),
                "{path}: the job is in its run's cgroup: {v2}"
            );
        }
        for (name, says) in [("missing", "no such program"), ("cwd", "no/such/folder")] {
            let j = d.wait_job(name, "is fatal", |j| j.state.as_str() == "fatal");
            let err = j.spawn_error.unwrap_or_default();
            assert!(err.contains(says), "{path}: {name}: {err}");
        }
        assert_eq!(
            says_fallback(&d),
            no_clone3.is_some(),
            "{path}: {}",
            d.stderr()
        );
    }
}
