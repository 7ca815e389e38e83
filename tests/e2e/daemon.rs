//! supervisord itself (README, "supervisord"): the socket and who may use it, one daemon per socket,
//! signals, no job outliving the daemon, process groups, batch mode, and what a job gets
//! (environment, working folder, argv).

use crate::support::*;
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// A job script that leaves a grandchild in its process group; both carry `marker` in
/// their command line so /proc finds them.
fn tree_script(d: &Daemon) -> String {
    let script = d.dir.path().join("tree.sh");
    std::fs::write(
        &script,
        "sh -c 'while :; do sleep 1; done' \"$1-grandchild\" &\nwhile :; do sleep 1; done\n",
    )
    .expect("write tree.sh");
    script.display().to_string()
}

/// Start a daemon whose jobs `names` each run [`tree_script`] tagged with `marker`
/// (a leader and a grandchild in its group), with `extra` job keys.
fn start_trees(marker: &str, names: &[&str], extra: &str) -> Daemon {
    let d = Daemon::prepare("");
    let script = tree_script(&d);
    let file: String = names
        .iter()
        .map(|n| format!("[job.{n}]\ncommand = [\"sh\", \"{script}\", \"{marker}\"]\n{extra}\n"))
        .collect();
    std::fs::write(&d.config, jobs(&file)).expect("write job file");
    d.launch(&[])
}

#[test]
fn socket_is_0600_and_a_created_folder_0700() {
    let mut d = Daemon::prepare(&jobs(""));
    d.socket = d.dir.path().join("made/for/it/sock");
    let d = d.launch(&[]);
    assert_eq!(mode(&d.socket), 0o600);
    assert_eq!(mode(&d.dir.path().join("made/for/it")), 0o700);
    assert_eq!(mode(&d.dir.path().join("made")), 0o700);
}

#[test]
fn a_peer_with_another_uid_is_refused_and_root_is_served() {
    const TEST: &str = "daemon::a_peer_with_another_uid_is_refused_and_root_is_served";
    if !is_root() {
        return skip(TEST, "needs root to act as another user");
    }
    let supctl = match copy_for_nobody("supctl") {
        Ok(copy) => copy,
        Err(why) => return skip(TEST, &why),
    };
    let d = Daemon::start(&jobs(""));
    // Open the file modes wide so only the peer-credential check stands in the way.
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod dir");
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666))
        .expect("chmod socket");
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(&supctl.path)
        .arg("--socket")
        .arg(&d.socket)
        .args(["--json", "ping"])
        .output()
        .expect("run setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("permission denied: uid 65534 may not use this socket"),
        "the refusal, naming the uid: {err}"
    );
    // Root (the test's own uid) is served, by the same socket.
    assert_eq!(d.ok("ping", Value::Null)["pid"], d.pid());
    assert!(d
        .stderr()
        .contains("refused a connection from another user"));
}

#[test]
fn a_second_daemon_on_a_live_socket_refuses_and_names_the_pid() {
    let d = Daemon::start(&jobs(""));
    let out = d.run_once();
    // 1: the daemon could not start.
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("pid {}", d.pid())),
        "names the first daemon's pid: {err}"
    );
    // The first one is unharmed.
    assert_eq!(d.ok("ping", Value::Null)["pid"], d.pid());
}

#[test]
fn a_stale_socket_left_by_a_killed_daemon_is_replaced() {
    let mut d = Daemon::start(&jobs(""));
    d.signal(Signal::SIGKILL);
    d.wait_exit();
    assert!(d.socket.exists(), "SIGKILL leaves the socket file behind");
    let d = d.launch(&[]);
    assert_eq!(d.ok("ping", Value::Null)["pid"], d.pid());
    assert!(d.stderr().contains("stale"), "{}", d.stderr());
}

#[test]
fn a_regular_file_at_the_socket_path_is_left_alone() {
    let d = Daemon::prepare(&jobs(""));
    std::fs::write(&d.socket, "precious").expect("write file");
    let out = d.run_once();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a socket"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&d.socket).expect("still there"),
        "precious"
    );
}

#[test]
fn a_socket_path_over_107_bytes_is_one_clear_line() {
    let mut d = Daemon::prepare(&jobs(""));
    d.socket = d.dir.path().join("x".repeat(120));
    let out = d.run_once();
    // 1: the daemon could not start.
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("107") && err.contains("xxxx"), "{err}");
}

fn graceful_on(sig: Signal) {
    let mut d = Daemon::prepare(&jobs(
        r#"
[job.polite]
command = ["sh", "-c", "trap 'echo got-$0 > stopped.txt; exit 0' TERM; while :; do sleep 0.05; done", "TERM"]

[job.int]
command = ["sh", "-c", "trap 'echo got-$0 > stopped-int.txt; exit 0' INT; while :; do sleep 0.05; done", "INT"]
stop_signal = "INT"
"#,
    ));
    d = d.launch(&[]);
    d.running_pid("polite");
    d.running_pid("int");
    d.signal(sig);
    assert_eq!(d.wait_exit(), 0, "{}", d.stderr());
    let read = |f: &str| std::fs::read_to_string(d.dir.path().join(f)).unwrap_or_default();
    assert_eq!(read("stopped.txt").trim(), "got-TERM", "{}", d.stderr());
    assert_eq!(
        read("stopped-int.txt").trim(),
        "got-INT",
        "its own stop_signal"
    );
    assert!(!d.socket.exists(), "the socket is removed");
}

#[test]
fn sigterm_is_a_graceful_shutdown() {
    graceful_on(Signal::SIGTERM);
}

#[test]
fn sigint_is_a_graceful_shutdown() {
    graceful_on(Signal::SIGINT);
}

#[test]
fn a_sigkilled_daemon_leaves_no_job_process() {
    let m = marker("orphan");
    let mut d = start_trees(&m, &["tree", "tree2"], "");
    d.running_pid("tree");
    d.running_pid("tree2");
    let procs = wait_until("leaders and grandchildren", DEADLINE, || {
        let p = pids_with_arg(&m);
        (p.len() == 4).then_some(p)
    });
    d.signal(Signal::SIGKILL);
    d.wait_exit();
    // A process being killed loses its command line before it is gone, so wait on the
    // pids themselves too.
    wait_until("every job process to be gone", DEADLINE, || {
        (pids_with_arg(&m).is_empty() && procs.iter().all(|p| !alive(*p))).then_some(())
    });
}

#[test]
fn a_job_that_ignores_sigterm_is_killed_after_stop_timeout() {
    let d = Daemon::start(&jobs(
        r#"
[job.stubborn]
command = ["sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"]
stop_timeout = "300ms"
"#,
    ));
    let pid = d.running_pid("stubborn");
    let asked = Instant::now();
    let r = d.ok("terminate", json!({ "names": ["stubborn"] }));
    let took = asked.elapsed();
    assert_eq!(r["jobs"][0]["exitcode"], -9, "{r}");
    assert_eq!(r["jobs"][0]["signal"], "SIGKILL");
    assert_eq!(r["jobs"][0]["state"], "stopped");
    assert!(
        took >= Duration::from_millis(300),
        "killed before stop_timeout: {took:?}"
    );
    assert!(!alive(pid));
}

#[test]
fn stopping_a_job_ends_its_whole_process_group() {
    let m = marker("group");
    let d = start_trees(&m, &["tree"], "");
    d.running_pid("tree");
    let gc = wait_until("the grandchild", DEADLINE, || {
        pids_with_arg(&format!("{m}-grandchild")).first().copied()
    });
    let r = d.ok("terminate", json!({ "names": ["tree"] }));
    assert_eq!(r["jobs"][0]["exitcode"], -15);
    wait_until("the grandchild to die with its job", DEADLINE, || {
        (!alive(gc)).then_some(())
    });
}

/// `kill_group = false`: the stop signal goes to the leader only, so its children outlive
/// the stop (like Supervisor's `killasgroup = false`, systemd's `KillMode=process`). What
/// is left of the group is still supervisord's: it ends when the job is next stopped or
/// when supervisord shuts down.
#[test]
fn with_kill_group_false_a_grandchild_survives_the_stop_but_not_the_daemon() {
    let m = marker("nogroup");
    let mut d = start_trees(&m, &["tree"], "kill_group = false");
    let leader = d.running_pid("tree");
    let gc = wait_until("the grandchild", DEADLINE, || {
        pids_with_arg(&format!("{m}-grandchild")).first().copied()
    });
    let r = d.ok("terminate", json!({ "names": ["tree"] }));
    assert_eq!(r["jobs"][0]["exitcode"], -15);
    assert!(!alive(leader));
    assert!(
        alive(gc),
        "kill_group = false leaves the leader's children be"
    );
    d.ok("shutdown", Value::Null);
    assert_eq!(d.wait_exit(), 0);
    wait_until("the grandchild to end with supervisord", DEADLINE, || {
        (!alive(gc)).then_some(())
    });
}

#[test]
fn batch_mode_exits_1_when_a_job_fails_and_never_waits_for_daemon_jobs() {
    let d = Daemon::prepare(&jobs(
        r#"
[job.good]
command = ["true"]

[job.broken]
command = ["sh", "-c", "exit 4"]

[job.helper]
command = ["sleep", "30"]
daemon = true
"#,
    ));
    let mut child = d.command(&["--exit-when-done"]).spawn().expect("spawn");
    let status = wait_until("batch mode to end", DEADLINE, || {
        child.try_wait().expect("try_wait")
    });
    assert_eq!(status.code(), Some(1), "{}", d.stderr());
    let out = d.stdout();
    assert!(out.contains("good: exited, exit 0 (success)"), "{out}");
    assert!(out.contains("broken: exited, exit 4 (failure)"), "{out}");
    assert!(out.contains("1 of 2 jobs failed: broken"), "{out}");
    assert!(out.contains("helper [daemon]: stopped"), "{out}");
}

#[test]
fn a_job_gets_its_name_group_and_merged_environment() {
    let mut d = Daemon::prepare(&jobs(
        r#"
[job.envy]
command = ["sh", "-c", "echo \"$SUPERVISOR_JOB|$SUPERVISOR_GROUP|$FROM_DAEMON|$OVERRIDDEN|$FROM_JOB\" > env.txt"]
group = "tools"
env = { OVERRIDDEN = "by-job", FROM_JOB = "job" }
"#,
    ));
    d.env = vec![
        ("FROM_DAEMON".into(), "daemon".into()),
        ("OVERRIDDEN".into(), "by-daemon".into()),
    ];
    let d = d.launch(&[]);
    d.wait_job("envy", "ends", |j| j.exitcode == Some(0));
    let got = std::fs::read_to_string(d.dir.path().join("env.txt")).expect("env.txt in cwd");
    assert_eq!(got.trim(), "envy|tools|daemon|by-job|job");
}

#[test]
fn cwd_defaults_to_the_job_files_folder_and_resolves_relative_paths() {
    let d = Daemon::prepare(&jobs(
        r#"
[job.here]
command = ["sh", "-c", "pwd > where.txt"]

[job.sub]
command = ["sh", "-c", "pwd > where.txt"]
cwd = "sub"
autostart = false
"#,
    ));
    std::fs::create_dir(d.dir.path().join("sub")).expect("mkdir");
    let d = d.launch(&[]);
    d.wait_job("here", "ends", |j| j.exitcode == Some(0));
    let dir = d.dir.path().canonicalize().expect("canonical");
    let got = std::fs::read_to_string(dir.join("where.txt")).expect("where.txt");
    assert_eq!(std::path::Path::new(got.trim()), dir);
    d.ok("start", json!({ "names": ["sub"] }));
    d.wait_job("sub", "ends", |j| j.exitcode == Some(0));
    let got = std::fs::read_to_string(dir.join("sub/where.txt")).expect("sub/where.txt");
    assert_eq!(std::path::Path::new(got.trim()), dir.join("sub"));
}

#[test]
fn a_command_string_is_split_like_a_shell_but_no_shell_runs() {
    let d = Daemon::start(&jobs(
        r#"
[job.words]
command = "printf '%s|' 'two words' plain \"double quoted\" $HOME a\\ b"
stdout = "./words.txt"
"#,
    ));
    d.wait_job("words", "ends", |j| j.exitcode == Some(0));
    let got = std::fs::read_to_string(d.dir.path().join("words.txt")).expect("words.txt");
    assert_eq!(got, "two words|plain|double quoted|$HOME|a b|");
}

/// SIGTERM waits for each job's stop_timeout; a second SIGTERM kills what is left now.
#[test]
fn a_second_sigterm_kills_jobs_that_are_still_stopping() {
    let mut d = Daemon::start(&jobs(
        r#"
[job.stubborn]
command = ["sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"]
stop_timeout = "60s"
"#,
    ));
    let pid = d.running_pid("stubborn");
    d.signal(Signal::SIGTERM);
    d.wait_job("stubborn", "is stopping", |j| {
        j.state.as_str() == "stopping"
    });
    assert!(alive(pid));
    d.signal(Signal::SIGTERM);
    // Well before the 60 s stop_timeout.
    assert_eq!(d.wait_exit(), 0);
    assert!(!alive(pid));
}

/// Children of supervisord other than its runs and the guard (adopted orphans, zombies
/// included).
fn strays(daemon: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{daemon}/task"))
        .expect("tasks")
        .flatten()
    {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children.split_whitespace() {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if !cmd.contains("__guard") {
                out.push((pid.parse().expect("pid"), cmd));
            }
        }
    }
    out
}

/// supervisord is the subreaper of its jobs: a double-forked grandchild is adopted and,
/// once it ends, reaped rather than left a zombie.
#[test]
fn orphans_of_jobs_are_adopted_and_reaped() {
    let m = marker("orphan-reap");
    let d = Daemon::start(&jobs(&format!(
        r#"
[job.forker]
command = ["sh", "-c", "sh -c 'sleep 0.3' {m} & exit 0"]
"#
    )));
    d.wait_job("forker", "exits", |j| j.state.as_str() == "exited");
    wait_until("the orphan to be gone, not a zombie", DEADLINE, || {
        strays(d.pid()).is_empty().then_some(())
    });
    assert!(pids_with_arg(&m).is_empty());
}

/// The guard's pid among the daemon's children (other than `not`).
fn guard_pid(d: &Daemon, not: Option<i32>) -> i32 {
    wait_until("a guard process", DEADLINE, || {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", d.pid())).ok()?;
        tasks.flatten().find_map(|t| {
            let children = std::fs::read_to_string(t.path().join("children")).ok()?;
            children.split_whitespace().find_map(|p| {
                let pid = p.parse::<i32>().ok().filter(|p| Some(*p) != not)?;
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                String::from_utf8_lossy(&cmd)
                    .contains("__guard")
                    .then_some(pid)
            })
        })
    })
}

/// Jobs are spawned without a parent-death signal while a guard runs (so std can use
/// posix_spawn), which makes the guard the one line of defence: a killed guard is
/// replaced, told every live group, and still ends every job — leaders and
/// grandchildren — when supervisord is SIGKILLed.
#[test]
fn a_killed_guard_is_replaced_and_still_ends_every_job() {
    let m = marker("reguard");
    let mut d = start_trees(&m, &["t0", "t1", "t2"], "");
    for i in 0..3 {
        d.running_pid(&format!("t{i}"));
    }
    wait_until("leaders and grandchildren", DEADLINE, || {
        (pids_with_arg(&m).len() >= 6).then_some(())
    });
    let first = guard_pid(&d, None);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first), Signal::SIGKILL)
        .expect("kill the guard");
    let second = guard_pid(&d, Some(first));
    assert_ne!(first, second);
    wait_until("the replacement noted in the log", DEADLINE, || {
        d.stderr().contains("started a new one").then_some(())
    });
    // Jobs started after the replacement are guarded too.
    d.ok("restart", serde_json::json!({"names": ["t0"]}));
    d.running_pid("t0");
    d.signal(Signal::SIGKILL);
    d.wait_exit();
    wait_until(
        "every job process to die with supervisord",
        DEADLINE,
        || pids_with_arg(&m).is_empty().then_some(()),
    );
}
