//! Containment: a cgroup per run (`[supervisor] cgroup = "auto"`, where supervisord may
//! create cgroups) so that nothing a job forks escapes a stop, and process groups as
//! before with `cgroup = "off"`. Tests that need cgroups skip visibly where supervisord
//! reports it cannot have them (not root, no writable cgroup v2 hierarchy).

use crate::support::{
    alive, is_root, jobs, marker, pids_with_arg, skip, wait_until, Daemon, DEADLINE,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The daemon's cgroup subtree, from `ping`, or `None` (after saying why) where it runs
/// with process groups only.
fn subtree(d: &Daemon, test: &str) -> Option<PathBuf> {
    let ping = d.ok("ping", Value::Null);
    let c = ping["containment"].as_str().unwrap_or_default().to_owned();
    match c.strip_prefix("a cgroup per run below ") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            let who = if is_root() { "root" } else { "not root" };
            skip(
                test,
                &format!("supervisord ({who}) has no cgroups here: {c}"),
            );
            None
        }
    }
}

/// The cgroup v2 path of a process (its `0::` line).
fn cgroup_of(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

/// A job that double-forks a process into a session of its own, which ignores SIGTERM.
fn escaping_job(mark: &str) -> String {
    jobs(&format!(
        r#"
[job.escape]
command = ["sh", "-c", "(setsid sh -c 'trap \"\" TERM; sleep 600; : {mark}' &); exec sleep 600"]
stop_timeout = "10s"
"#
    ))
}

/// The escaped process, once it runs in its own session.
fn escaped(mark: &str) -> u32 {
    wait_until("the escaped process", DEADLINE, || {
        pids_with_arg(mark).into_iter().find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s.rsplit(')').next()?.to_owned();
                    let f: Vec<&str> = rest.split_whitespace().collect();
                    // state ppid pgrp session: it leads its own session.
                    Some(f.get(3)? == &p.to_string())
                })
                .unwrap_or(false)
        })
    })
}

#[test]
fn a_double_forked_setsid_process_is_gone_when_terminate_returns() {
    let mark = marker("cg-escape");
    let d = Daemon::start(&escaping_job(&mark));
    let Some(tree) = subtree(
        &d,
        "a_double_forked_setsid_process_is_gone_when_terminate_returns",
    ) else {
        return;
    };
    let leader = d.running_pid("escape");
    let pid = escaped(&mark);
    let run_cgroup = cgroup_of(leader).expect("the leader's cgroup");
    assert_eq!(
        cgroup_of(pid),
        Some(run_cgroup.clone()),
        "setsid and a double fork do not leave the run's cgroup"
    );
    let dir = tree.join(Path::new(&run_cgroup).file_name().expect("a cgroup name"));
    assert!(
        dir.join("cgroup.procs").exists(),
        "{} exists",
        dir.display()
    );
    let r = d.ok("terminate", json!({ "names": ["escape"] }));
    assert_eq!(r["jobs"][0]["state"], "stopped", "{r}");
    // No polling: when terminate answers, the run has ended, which with cgroups means
    // its cgroup is empty (and, killed, removed soon after).
    assert!(!alive(pid), "the escaped process {pid} outlived the stop");
    assert!(
        !dir.exists() || empty(&dir),
        "{} empty after the run",
        dir.display()
    );
}

#[test]
fn with_cgroup_off_a_setsid_process_escapes_the_stop_as_documented() {
    let mark = marker("cg-off");
    let d = Daemon::start(&format!(
        "[supervisor]\ncgroup = \"off\"\n{}",
        escaping_job(&mark)
    ));
    let ping = d.ok("ping", Value::Null);
    assert_eq!(
        ping["containment"], "process groups only: [supervisor] cgroup = \"off\"",
        "{ping}"
    );
    let leader = d.running_pid("escape");
    let pid = escaped(&mark);
    assert_eq!(
        cgroup_of(pid),
        cgroup_of(std::process::id()),
        "no cgroup of its own"
    );
    assert_eq!(cgroup_of(leader), cgroup_of(std::process::id()));
    d.ok("terminate", json!({ "names": ["escape"] }));
    assert!(
        alive(pid),
        "without cgroups, setsid takes it out of reach of a stop"
    );
    // It leads its own group (with its `sleep`): end that group.
    let _ = nix::sys::signal::killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
}

/// The cgroups below the daemon's subtree (its runs' and its jobs' kept ones).
fn cgroups_in(tree: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(tree)
        .expect("the subtree")
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Whether a cgroup holds no process (`cgroup.events`).
fn empty(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events"))
        .is_ok_and(|t| t.lines().any(|l| l == "populated 0"))
}

/// The job's very first instruction already runs in the run's cgroup (it is entered
/// before exec); a run that ended with its cgroup empty leaves it to the job's next run
/// (the kernel makes and removes no cgroup per run), and the job's cgroup and
/// supervisord's subtree are removed at shutdown.
#[test]
fn each_run_is_in_its_jobs_cgroup_from_its_first_instruction_and_it_is_removed() {
    let d = Daemon::start(&jobs(
        r#"
[job.once]
command = ["sh", "-c", "cat /proc/self/cgroup"]
autostart = false
start_secs = 0
"#,
    ));
    let Some(tree) = subtree(
        &d,
        "each_run_is_in_its_jobs_cgroup_from_its_first_instruction_and_it_is_removed",
    ) else {
        return;
    };
    let own = tree
        .file_name()
        .and_then(|n| n.to_str())
        .expect("subtree name")
        .to_owned();
    assert_eq!(cgroups_in(&tree), Vec::<String>::new(), "none before a run");
    for _ in 0..2 {
        d.ok("start", json!({ "names": ["once"] }));
        let r = d.ok("wait", json!({ "names": ["once"] }));
        assert_eq!(r["jobs"][0]["state"], "exited", "{r}");
    }
    let log = std::fs::read_to_string(d.dir.path().join("logs/once.stdout.log")).expect("log");
    let runs: Vec<&str> = log.lines().filter_map(|l| l.strip_prefix("0::")).collect();
    assert_eq!(runs.len(), 2, "{log}");
    for r in &runs {
        assert!(
            r.contains(&format!("/{own}/once@")),
            "{r} is a run cgroup of {own}"
        );
    }
    assert_eq!(
        runs[0], runs[1],
        "the second run used the first one's cgroup again"
    );
    let kept = Path::new(runs[0])
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert_eq!(cgroups_in(&tree), [kept.as_str()], "one cgroup for the job");
    assert!(empty(&tree.join(&kept)), "and nothing in it between runs");
    // A run that ends just before shutdown: its cgroup is gone before supervisord
    // removes its subtree (which it could not with one inside).
    d.ok("start", json!({ "names": ["once"] }));
    d.ok("wait", json!({ "names": ["once"] }));
    d.ok("shutdown", Value::Null);
    let mut d = d;
    assert_eq!(d.wait_exit(), 0);
    assert!(!tree.exists(), "{} removed at shutdown", tree.display());
}

/// No two runs are ever in one cgroup: a run whose predecessor left a process behind
/// gets a cgroup of its own, and a stop ends what both left.
#[test]
fn a_run_whose_predecessor_left_a_process_gets_a_cgroup_of_its_own() {
    let mark = marker("cg-two");
    let d = Daemon::start(&jobs(&format!(
        r#"
[job.forker]
command = ["sh", "-c", "setsid sh -c 'sleep 600; : {mark}' & cat /proc/self/cgroup"]
autostart = false
start_secs = 0
"#
    )));
    let Some(tree) = subtree(
        &d,
        "a_run_whose_predecessor_left_a_process_gets_a_cgroup_of_its_own",
    ) else {
        return;
    };
    let mut left = Vec::new();
    for n in 1..=2 {
        d.ok("start", json!({ "names": ["forker"] }));
        let r = d.ok("wait", json!({ "names": ["forker"] }));
        assert_eq!(r["jobs"][0]["state"], "exited", "{r}");
        let pids = wait_until("the runs' leftovers", DEADLINE, || {
            let p = pids_with_arg(&mark);
            (p.len() == n).then_some(p)
        });
        left = pids;
    }
    let cgroups: Vec<String> = left.iter().filter_map(|p| cgroup_of(*p)).collect();
    assert_eq!(cgroups.len(), 2, "{left:?}");
    assert_ne!(
        cgroups[0], cgroups[1],
        "each leftover in its own run's cgroup"
    );
    let log = std::fs::read_to_string(d.dir.path().join("logs/forker.stdout.log")).expect("log");
    let runs: Vec<&str> = log.lines().filter_map(|l| l.strip_prefix("0::")).collect();
    assert_eq!(runs.len(), 2, "{log}");
    assert_ne!(runs[0], runs[1], "{log}");
    assert_eq!(cgroups_in(&tree).len(), 2, "{:?}", cgroups_in(&tree));
    d.ok("terminate", json!({ "names": ["forker"] }));
    for p in &left {
        wait_until("the leftovers to be killed", DEADLINE, || {
            (!alive(*p)).then_some(())
        });
    }
    // Both were killed (`cgroup.kill`), so neither is used again: both removed, and the
    // next run (which a killed cgroup would SIGKILL at birth on Linux 6.18) gets a new
    // one and runs its course.
    wait_until("both cgroups removed", DEADLINE, || {
        cgroups_in(&tree).is_empty().then_some(())
    });
    d.ok("start", json!({ "names": ["forker"] }));
    let r = d.ok("wait", json!({ "names": ["forker"] }));
    assert_eq!(r["jobs"][0]["exitcode"], 0, "{r}");
    let log = std::fs::read_to_string(d.dir.path().join("logs/forker.stdout.log")).expect("log");
    let third = log.lines().filter_map(|l| l.strip_prefix("0::")).nth(2);
    assert!(
        third.is_some_and(|t| !runs.contains(&t)),
        "a new cgroup: {log}"
    );
    d.ok("terminate", json!({ "names": ["forker"] }));
}

/// A run killed with SIGKILL (`cgroup.kill`): the job's next run still starts and runs
/// (a cgroup that was killed is never used again), and a stop that found the cgroup
/// empty keeps it for the next run, until the job is removed.
#[test]
fn after_a_kill_or_a_stop_the_next_run_runs() {
    let d = Daemon::start(&jobs(
        r#"
[job.svc]
command = ["sh", "-c", "cat /proc/self/cgroup; exec sleep 600"]
start_secs = 0
restart = "always"
backoff = "100ms"
"#,
    ));
    let Some(tree) = subtree(&d, "after_a_kill_or_a_stop_the_next_run_runs") else {
        return;
    };
    // Each run's cgroup as it printed it (waited for, so a run is not ended before).
    let printed = |n: usize| -> Vec<String> {
        wait_until(&format!("run {n}'s line in the log"), DEADLINE, || {
            let log = std::fs::read_to_string(d.dir.path().join("logs/svc.stdout.log")).ok()?;
            let runs: Vec<String> = log
                .lines()
                .filter_map(|l| l.strip_prefix("0::"))
                .map(str::to_owned)
                .collect();
            (runs.len() == n).then_some(runs)
        })
    };
    let first = d.running_pid("svc");
    printed(1);
    let r = d.ok("kill", json!({ "names": ["svc"], "signal": "KILL" }));
    assert!(r.is_object(), "{r}");
    d.wait_job("svc", "running again", |j| {
        j.state.as_str() == "running" && j.pid.is_some_and(|p| p != first)
    });
    printed(2);
    // A stop of a run whose cgroup empties with its leader: not killed, so kept.
    d.ok("terminate", json!({ "names": ["svc"] }));
    d.ok("start", json!({ "names": ["svc"] }));
    let third = d.running_pid("svc");
    let runs = printed(3);
    assert_ne!(
        runs[0], runs[1],
        "the killed cgroup was not used again: {runs:?}"
    );
    assert_eq!(
        runs[1], runs[2],
        "the stopped run's empty cgroup was: {runs:?}"
    );
    assert_eq!(cgroup_of(third).as_deref(), Some(runs[2].as_str()));
    assert!(alive(third), "the third run runs");
    assert_eq!(d.job("svc").state.as_str(), "running");
    assert_eq!(cgroups_in(&tree).len(), 1, "{:?}", cgroups_in(&tree));
    // Stopped, its empty cgroup is kept until the job goes: then at once.
    d.ok("terminate", json!({ "names": ["svc"] }));
    let kept = tree.join(Path::new(&runs[2]).file_name().expect("name"));
    assert!(empty(&kept), "{} kept, empty", kept.display());
    d.ok("remove", json!({ "names": ["svc"] }));
    assert!(!kept.exists(), "{} removed with the job", kept.display());
    assert_eq!(cgroups_in(&tree), Vec::<String>::new());
}

/// The guard's pid among the daemon's children.
fn guard_of(d: &Daemon) -> i32 {
    wait_until("the guard", DEADLINE, || {
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", d.pid())).ok()?;
        children.split_whitespace().find_map(|p| {
            let pid = p.parse::<i32>().ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            String::from_utf8_lossy(&cmd)
                .contains("__guard")
                .then_some(pid)
        })
    })
}

/// supervisord SIGKILLed: the guard kills its whole cgroup subtree, escapees included.
#[test]
fn a_sigkilled_daemon_takes_escaped_processes_with_it() {
    let mark = marker("cg-sigkill");
    let mut d = Daemon::start(&escaping_job(&mark));
    let Some(tree) = subtree(&d, "a_sigkilled_daemon_takes_escaped_processes_with_it") else {
        return;
    };
    d.running_pid("escape");
    let pid = escaped(&mark);
    d.signal(Signal::SIGKILL);
    d.wait_exit();
    wait_until(
        "the escaped process to be killed by the guard",
        DEADLINE,
        || (!alive(pid)).then_some(()),
    );
    wait_until("the subtree to be removed", DEADLINE, || {
        (!tree.exists()).then_some(())
    });
}

/// supervisord and its guard SIGKILLed together leave the run cgroups populated; the next
/// supervisord started below the same cgroup kills what is in them and removes them.
/// (Other tests start daemons meanwhile, and any of them may be the one that clears it;
/// the guard was stopped before the daemon died, so only a daemon's start can have.)
#[test]
fn cgroups_of_a_daemon_killed_with_its_guard_are_cleared_by_the_next_daemon() {
    let mark = marker("cg-stale");
    let mut d = Daemon::start(&escaping_job(&mark));
    let Some(tree) = subtree(
        &d,
        "cgroups_of_a_daemon_killed_with_its_guard_are_cleared_by_the_next_daemon",
    ) else {
        return;
    };
    d.running_pid("escape");
    let pid = escaped(&mark);
    // The guard stopped first, so it cannot act when the daemon dies; then both killed.
    let guard = Pid::from_raw(guard_of(&d));
    kill(guard, Signal::SIGSTOP).expect("stop the guard");
    d.signal(Signal::SIGKILL);
    d.wait_exit();
    kill(guard, Signal::SIGKILL).expect("kill the guard");
    wait_until("the guard to be gone", DEADLINE, || {
        (!alive(guard.as_raw() as u32)).then_some(())
    });
    let next = Daemon::start(&jobs(""));
    wait_until("the next daemon to kill the leftover", DEADLINE, || {
        (!alive(pid)).then_some(())
    });
    wait_until("the leftover subtree to be removed", DEADLINE, || {
        (!tree.exists()).then_some(())
    });
    drop(next);
}

/// A run whose leader exits on its own while something it forked lives on: the exit is
/// reported at once; the rest stays in the run's cgroup until the job is stopped.
#[test]
fn what_outlives_its_leader_stays_in_the_cgroup_until_the_job_is_stopped() {
    let mark = marker("cg-left");
    let d = Daemon::start(&jobs(&format!(
        r#"
[job.forker]
command = ["sh", "-c", "setsid sh -c 'sleep 600; : {mark}' & echo forked"]
"#
    )));
    let Some(tree) = subtree(
        &d,
        "what_outlives_its_leader_stays_in_the_cgroup_until_the_job_is_stopped",
    ) else {
        return;
    };
    d.wait_job("forker", "exited", |j| j.state.as_str() == "exited");
    let pid = escaped(&mark);
    let cg = cgroup_of(pid).expect("its cgroup");
    assert!(cg.contains("/forker@"), "{cg}");
    let dir = tree.join(Path::new(&cg).file_name().expect("name"));
    assert!(dir.exists());
    d.ok("terminate", json!({ "names": ["forker"] }));
    wait_until("the leftover to be killed", DEADLINE, || {
        (!alive(pid)).then_some(())
    });
    // Killed, it is not used again.
    wait_until("its cgroup to be removed", DEADLINE, || {
        (!dir.exists()).then_some(())
    });
}

/// `status --usage` of a run in a cgroup counts what left its process group: a busy
/// `setsid` process's CPU time is the job's (a walk by process group would miss it).
#[test]
fn usage_counts_every_process_of_the_run_cgroup() {
    let mark = marker("cg-usage");
    let d = Daemon::start(&jobs(&format!(
        r#"
[job.busy]
command = ["sh", "-c", "setsid sh -c 'while :; do :; done; : {mark}' & exec sleep 600"]
"#
    )));
    let Some(_) = subtree(&d, "usage_counts_every_process_of_the_run_cgroup") else {
        return;
    };
    d.running_pid("busy");
    let pid = escaped(&mark);
    let job = wait_until("the escaped loop's CPU time to count", DEADLINE, || {
        let r = d.ok("status", json!({ "names": ["busy"], "usage": true }));
        let j = r["jobs"][0].clone();
        (j["cpu_ms"].as_u64()? >= 300).then_some(j)
    });
    assert!(job["memory_bytes"].as_u64().expect("memory") > 0, "{job}");
    d.ok("terminate", json!({ "names": ["busy"] }));
    assert!(!alive(pid));
}

/// A job's next run in the same cgroup counts its own CPU time only: the kernel's
/// counter keeps the earlier runs', which `status --usage` leaves out.
#[test]
fn usage_of_a_run_in_its_jobs_cgroup_again_is_that_runs_own() {
    let d = Daemon::prepare(&jobs(
        r#"
[job.twice]
command = ["sh", "-c", "if [ -e \"$$0\" ]; then exec sleep 600; fi; : > \"$$0\"; read s _ </proc/uptime; s=$${s%.*}$${s#*.}; while :; do read n _ </proc/uptime; n=$${n%.*}$${n#*.}; [ $$((n - s)) -ge 100 ] && exit 0; done", "FLAG"]
autostart = false
start_secs = 0
"#,
    ));
    let flag = d.dir.path().join("burned");
    let text = std::fs::read_to_string(&d.config).expect("job file");
    std::fs::write(&d.config, text.replace("FLAG", &flag.to_string_lossy())).expect("write");
    let d = d.launch(&[]);
    let Some(tree) = subtree(
        &d,
        "usage_of_a_run_in_its_jobs_cgroup_again_is_that_runs_own",
    ) else {
        return;
    };
    // Usage asked for once: from then on a run in a cgroup used again counts from the
    // CPU counter's value at its start (before, it would be measured by process group).
    let r = d.ok("status", json!({ "names": ["twice"], "usage": true }));
    assert_eq!(r["jobs"][0]["cpu_ms"], Value::Null, "not running: {r}");
    // The first run burns CPU for a second of wall time, then exits 0.
    d.ok("start", json!({ "names": ["twice"] }));
    let r = d.ok("wait", json!({ "names": ["twice"] }));
    assert_eq!(r["jobs"][0]["exitcode"], 0, "{r}");
    d.ok("start", json!({ "names": ["twice"] }));
    let pid = d.running_pid("twice");
    let cg = cgroup_of(pid).expect("its cgroup");
    let dir = tree.join(Path::new(&cg).file_name().expect("name"));
    assert_eq!(
        cgroups_in(&tree).len(),
        1,
        "the first run's cgroup, used again"
    );
    let stat = std::fs::read_to_string(dir.join("cpu.stat")).expect("cpu.stat");
    let total_ms = stat
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("usage_usec")
        / 1000;
    assert!(total_ms >= 150, "the first run burned CPU: {stat}");
    let r = d.ok("status", json!({ "names": ["twice"], "usage": true }));
    let own = r["jobs"][0]["cpu_ms"].as_u64().expect("cpu_ms");
    assert!(
        own + 100 < total_ms,
        "this run's {own} ms leaves out the first run's (the cgroup counted {total_ms} ms)"
    );
}

/// `--check` says which containment would be in force, and why not cgroups.
#[test]
fn check_says_which_containment_is_in_force() {
    let check = |text: &str| {
        let d = Daemon::prepare(text);
        let out = d
            .command(&["--check"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("run --check");
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        stdout
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("containment")
                    .map(|r| r.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no containment line: {stdout}"))
    };
    assert_eq!(
        check("[supervisor]\ncgroup = \"off\"\n"),
        "process groups only: [supervisor] cgroup = \"off\""
    );
    let auto = check("");
    assert!(
        auto.starts_with("a cgroup per run below ") || auto.starts_with("process groups only: "),
        "{auto}"
    );
    if is_root() && auto.starts_with("process groups only") {
        skip(
            "check_says_which_containment_is_in_force",
            &format!("no cgroups here: {auto}"),
        );
    }
    let d = Daemon::prepare("[supervisor]\ncgroup = \"sometimes\"\n");
    let out = d
        .command(&["--check"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run --check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("jobs.toml:2:") && err.contains("auto") && err.contains("off"),
        "{err}"
    );
}

/// A reload that removes a job ends its run, escapees included, and removes its cgroup.
#[test]
fn a_reload_that_removes_a_job_removes_its_cgroup_and_everything_in_it() {
    let mark = marker("cg-reload");
    let d = Daemon::start(&escaping_job(&mark));
    let Some(tree) = subtree(
        &d,
        "a_reload_that_removes_a_job_removes_its_cgroup_and_everything_in_it",
    ) else {
        return;
    };
    let leader = d.running_pid("escape");
    let pid = escaped(&mark);
    let dir = tree.join(
        Path::new(&cgroup_of(leader).expect("its cgroup"))
            .file_name()
            .expect("name"),
    );
    std::fs::write(&d.config, jobs("")).expect("rewrite the job file");
    let r = d.ok("reload", Value::Null);
    assert_eq!(r["removed"], json!(["escape"]), "{r}");
    // reload answers once removed jobs are gone: with cgroups, once their cgroup is empty.
    assert!(
        !alive(pid),
        "the escaped process outlived the job's removal"
    );
    assert!(!dir.exists(), "{} removed", dir.display());
}

/// A daemon that may not create cgroups (not root, no delegation) falls back to process
/// groups and says why, once, in its log and in `ping`.
#[test]
fn a_daemon_that_may_not_create_cgroups_says_so_and_uses_process_groups() {
    const TEST: &str = "a_daemon_that_may_not_create_cgroups_says_so_and_uses_process_groups";
    if !is_root() {
        return skip(TEST, "needs root to run supervisord as nobody");
    }
    let supervisord = match crate::support::copy_for_nobody("supervisord") {
        Ok(copy) => copy,
        Err(why) => return skip(TEST, &why),
    };
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("svcg")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let config = dir.path().join("jobs.toml");
    std::fs::write(&config, "[job.s]\ncommand = \"sleep 60\"\n").expect("write");
    // The socket's folder must be the daemon's own.
    let run = dir.path().join("run");
    std::fs::create_dir(&run).expect("mkdir run");
    let nobody = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .expect("a nobody user");
    nix::unistd::chown(&run, Some(nobody.uid), Some(nobody.gid)).expect("chown run");
    let socket = run.join("sock");
    let err_path = dir.path().join("daemon.err");
    let mut child = std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(&supervisord.path)
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).expect("err file"))
        .spawn()
        .expect("spawn supervisord as nobody");
    let ping = wait_until("supervisord (as nobody) to answer", DEADLINE, || {
        let mut c = crate::support::Conn::try_open(&socket)?;
        c.call("ping", Value::Null).get("result").cloned()
    });
    let c = ping["containment"].as_str().unwrap_or_default().to_owned();
    let log = std::fs::read_to_string(&err_path).unwrap_or_default();
    let mut c2 = crate::support::Conn::open(&socket);
    c2.call("shutdown", Value::Null);
    let _ = child.wait();
    if c.starts_with("a cgroup per run") {
        return skip(TEST, &format!("nobody may create cgroups here: {c}"));
    }
    assert!(
        c.starts_with("process groups only: cannot create the cgroup "),
        "{c}"
    );
    assert!(c.contains("Delegate=yes"), "{c}");
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("containment:")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("setsid"),
        "{log}"
    );
}

/// The controllers the cgroup this test (and so a supervisord it starts) runs in offers
/// its children, or `None` where there is no cgroup v2.
fn offered_here() -> Option<Vec<String>> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mountinfo.lines().find_map(|l| {
        let (before, after) = l.split_once(" - ")?;
        (after.split_whitespace().next()? == "cgroup2").then(|| before.split_whitespace().nth(4))?
    })?;
    let own = cgroup_of(std::process::id())?;
    let dir = Path::new(mount).join(own.trim_start_matches('/'));
    let text = std::fs::read_to_string(dir.join("cgroup.controllers")).ok()?;
    Some(text.split_whitespace().map(str::to_owned).collect())
}

/// A job file asking for a cgroup limit whose controller supervisord cannot give its runs
/// is refused — by `--check` and at start alike, exit status 2 — at the key's position,
/// naming the job, the controller and why; with `cgroup = "off"` on any machine, and with
/// containment on where the controller is missing (this machine's cgroup v2 offers no
/// memory controller).
#[test]
fn a_cgroup_limit_whose_controller_is_missing_is_refused_at_load() {
    const TEST: &str = "containment::a_cgroup_limit_whose_controller_is_missing_is_refused_at_load";
    let check = |text: &str, words: &[&str]| {
        let d = Daemon::prepare(text);
        let checked = std::process::Command::new(crate::support::bin("supervisord"))
            .arg("--check")
            .arg(&d.config)
            .output()
            .expect("run --check");
        let started = d.run_once();
        for out in [&checked, &started] {
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{err}");
            let line = err
                .lines()
                .find(|l| l.contains("needs the cgroup v2"))
                .unwrap_or_else(|| panic!("no refusal in: {err}"));
            for w in words {
                assert!(line.contains(w), "{w:?} missing in: {line}");
            }
        }
        assert!(!d.socket.exists(), "a refused daemon serves nothing");
    };
    check(
        "[supervisor]\ncgroup = \"off\"\n[job.web]\ncommand = \"sleep 60\"\n[job.web.limits]\ntasks = 64\n",
        &[
            "jobs.toml:6:9: job \"web\": `limits.tasks` needs the cgroup v2 `pids` controller",
            "process groups only: [supervisor] cgroup = \"off\"",
        ],
    );
    // `--check` on a file without limits lists what is available: nothing, with "off".
    let listed = |text: &str| {
        let d = Daemon::prepare(text);
        let out = d
            .command(&["--check"])
            .stdout(Stdio::piped())
            .output()
            .expect("run --check");
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        stdout
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("controllers")
                    .map(|r| r.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no controllers line: {stdout}"))
    };
    assert_eq!(
        listed("[supervisor]\ncgroup = \"off\"\n[job.web]\ncommand = \"sleep 60\"\n"),
        "none (for limits.memory, cpu, tasks)"
    );
    let Some(offered) = offered_here() else {
        return skip(
            TEST,
            "no cgroup v2 here: only the cgroup = \"off\" case ran",
        );
    };
    if offered.iter().any(|c| c == "memory") {
        return skip(
            TEST,
            "this cgroup offers the memory controller: only the cgroup = \"off\" case ran",
        );
    }
    if !offered.iter().any(|c| c == "cpu" || c == "pids") {
        assert_eq!(
            listed("[job.web]\ncommand = \"sleep 60\"\n"),
            "none (for limits.memory, cpu, tasks)",
            "this cgroup offers {offered:?}"
        );
    }
    check(
        "[job.web]\ncommand = \"sleep 60\"\n[job.web.limits]\nmemory = \"64MiB\"\n",
        &[
            "jobs.toml:4:10: job \"web\": `limits.memory` needs the cgroup v2 `memory` controller",
            "does not offer it (its cgroup.controllers lists",
            "; remove the key",
        ],
    );
}

/// A reload or an `add` that asks for a cgroup limit supervisord cannot honour is refused
/// whole, naming the job and the controller, and nothing changes.
#[test]
fn a_reload_or_add_asking_for_a_missing_controller_is_refused() {
    let base = "[supervisor]\ncgroup = \"off\"\n[job.web]\ncommand = \"sleep 60\"\n";
    let d = Daemon::start(&jobs(base));
    let pid = d.running_pid("web");
    std::fs::write(
        &d.config,
        jobs(&format!("{base}[job.web.limits]\ncpu = 0.5\n")),
    )
    .expect("rewrite the job file");
    let r = d.rpc("reload", Value::Null);
    assert_eq!(crate::support::error_code(&r), 1003, "{r}");
    let msg = r["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("job \"web\": `limits.cpu` needs the cgroup v2 `cpu` controller"),
        "{r}"
    );
    assert_eq!(r["error"]["data"]["line"], json!(10), "{r}");
    assert_eq!(d.job("web").pid, Some(pid), "nothing changed");
    let r = d.rpc(
        "add",
        json!({ "name": "more", "job": { "command": ["sleep", "60"], "limits": { "tasks": 5 } } }),
    );
    assert_eq!(crate::support::error_code(&r), -32602, "{r}");
    let msg = r["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("job \"more\": `limits.tasks` needs the cgroup v2 `pids` controller"),
        "{r}"
    );
    assert!(d.jobs().iter().all(|j| j.name != "more"), "not added");
}
