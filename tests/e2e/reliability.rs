//! Reliability against a hostile job, client, configuration or OS: signals that could hit
//! a process that is not ours, requests that could go unanswered, a daemon that could
//! freeze or die. Several tests force the kernel to hand a freed pid to a process of the
//! test's own (through `/proc/sys/kernel/ns_last_pid`, root only) to prove the daemon
//! never signals a number it no longer owns.

use crate::support::*;
use nix::sys::signal::Signal;
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// Pid recycling changes a machine-wide counter: one test at a time.
static RECYCLE: Mutex<()> = Mutex::new(());

/// Whether this test can choose the next pid (root in the initial pid namespace).
fn can_recycle_pids() -> bool {
    let ok = nix::unistd::geteuid().is_root()
        && std::fs::OpenOptions::new()
            .write(true)
            .open("/proc/sys/kernel/ns_last_pid")
            .is_ok();
    if !ok {
        eprintln!("skipped: needs root and a writable /proc/sys/kernel/ns_last_pid");
    }
    ok
}

/// A `sleep` that leads its own process group with exactly `pid` (a freed job's pid, so
/// also its old process-group id), or `None` if other processes kept taking the number.
fn spawn_at_pid(pid: u32) -> Option<Child> {
    use std::os::unix::process::CommandExt;
    for _ in 0..200 {
        if std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", pid - 1)).is_err() {
            return None;
        }
        let mut child = Command::new("sleep")
            .arg("600")
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .ok()?;
        if child.id() == pid {
            return Some(child);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    None
}

/// Whether `pid` is gone altogether (not even a zombie).
fn gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

fn pgrp_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// Whether any process (a zombie included) is in process group `pgid`.
fn in_use_as_group(pgid: u32) -> bool {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten().any(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|pid| pgrp_of(pid) == Some(pgid))
            })
        })
        .unwrap_or(false)
}

fn kill_marked(mark: &str) {
    for p in pids_with_arg(mark) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p as i32), Signal::SIGKILL);
    }
}

/// The victim is alive (not killed, not a zombie) and is killed now.
fn assert_alive_then_end(mut victim: Child, what: &str) {
    let alive_now = matches!(victim.try_wait(), Ok(None));
    let _ = victim.kill();
    let _ = victim.wait();
    assert!(
        alive_now,
        "{what}: a process that reused the job's pid was killed"
    );
}

/// A stopped job whose leader was reaped while a `setsid` helper still held its output
/// open: the process that reuses the leader's pid (and so its group id) is not killed
/// when the stop completes.
#[test]
fn a_stop_never_kills_the_group_of_a_pid_reused_after_the_leader_ended() {
    if !can_recycle_pids() {
        return;
    }
    let _one = RECYCLE.lock().unwrap_or_else(|e| e.into_inner());
    let mark = marker("setsid-helper");
    let d = Daemon::start(&jobs(&format!(
        r#"
[job.holder]
command = ["sh", "-c", "setsid sh -c 'sleep 600; : {mark}' & exec sleep 600"]
"#
    )));
    let leader = d
        .wait_job("holder", "running", |j| j.state.as_str() == "running")
        .pid
        .expect("pid");
    wait_until("the setsid helper", DEADLINE, || {
        (!pids_with_arg(&mark).is_empty()).then_some(())
    });
    d.ok("terminate", json!({ "names": ["holder"], "wait": false }));
    wait_until("the leader to be reaped", DEADLINE, || {
        gone(leader).then_some(())
    });
    let victim = spawn_at_pid(leader);
    d.wait_job("holder", "stopped", |j| j.state.as_str() == "stopped");
    // Stop it again and shut down: neither may reach the old group id either.
    d.ok("terminate", json!({ "names": ["holder"] }));
    d.ok("shutdown", json!({}));
    let mut d = d;
    d.wait_exit();
    kill_marked(&mark);
    match victim {
        Some(v) => assert_alive_then_end(v, "stop of a job whose output outlived it"),
        None => eprintln!("skipped the last check: could not get pid {leader} back"),
    }
}

/// A job whose leader exited and whose group's last member was reaped by a parent that
/// had moved out of the group (no SIGCHLD reaches supervisord): the group id is
/// forgotten, and a later stop or shutdown does not kill whoever holds it then.
#[test]
fn a_group_emptied_behind_the_daemons_back_is_forgotten() {
    if !can_recycle_pids() {
        return;
    }
    let _one = RECYCLE.lock().unwrap_or_else(|e| e.into_inner());
    let mark = marker("moved-parent");
    // L forks C; C forks G (both in L's group), C moves to a group of its own, reaps G
    // itself when G ends, and lives on; L exits after a moment (once G exists).
    let script = "my $c = fork; if ($c == 0) { my $g = fork; if ($g == 0) { select(undef, undef, undef, 1.0); exit 0 } setpgrp(0, 0); waitpid($g, 0); sleep 600; exit 0 } select(undef, undef, undef, 0.3); exit 0";
    let d = Daemon::start(&jobs(&format!(
        r#"
[job.mover]
command = ["perl", "-e", "{script}", "{mark}"]
restart = "never"
stdout = "null"
stderr = "null"
"#
    )));
    let leader = d
        .wait_job("mover", "a pid", |j| {
            j.pid.is_some() || j.exitcode.is_some()
        })
        .pid;
    let j = d.wait_job("mover", "exited", |j| j.state.as_str() == "exited");
    let leader = leader.or(j.pid).unwrap_or_else(|| {
        // The exit was quicker than the status: take it from the daemon log.
        let log = d.stderr();
        log.lines()
            .filter(|l| l.contains("mover") && l.contains("pid"))
            .find_map(|l| {
                l.split("pid=")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|p| p.parse().ok())
            })
            .expect("the leader's pid in the daemon log")
    });
    // The kernel hands out no pid still in use as a process-group id, so the number is
    // free only once the group is empty (the grandchild ended) and the leader reaped.
    wait_until(
        "the group to empty and the leader to be reaped",
        DEADLINE,
        || (gone(leader) && !in_use_as_group(leader)).then_some(()),
    );
    let victim = spawn_at_pid(leader);
    d.ok("terminate", json!({ "names": ["mover"] }));
    d.ok("shutdown", json!({}));
    let mut d = d;
    d.wait_exit();
    kill_marked(&mark);
    match victim {
        Some(v) => assert_alive_then_end(v, "stop of a job whose group emptied unseen"),
        None => eprintln!("skipped the last check: could not get pid {leader} back"),
    }
}

/// The job's leader moves itself into another process group: a stop still reaches it
/// (directly, as it is unreaped), so `terminate` answers and shutdown ends.
#[test]
fn a_leader_that_left_its_group_is_still_stopped() {
    let mark = marker("left-group");
    let script = "my $c = fork; if ($c == 0) { sleep 600; exit 0 } setpgrp($c, $c); setpgrp(0, $c); sleep 600";
    let d = Daemon::start(&jobs(&format!(
        r#"
[job.leaver]
command = ["perl", "-e", "{script}", "{mark}"]
stop_timeout = "1s"
"#
    )));
    let leader = d
        .wait_job("leaver", "running", |j| j.state.as_str() == "running")
        .pid
        .expect("pid");
    wait_until("the leader to move to its child's group", DEADLINE, || {
        (pgrp_of(leader).is_some_and(|g| g != leader)).then_some(())
    });
    let mut c = d.conn();
    c.set_timeout(Duration::from_secs(15));
    let r = c.call("terminate", json!({ "names": ["leaver"] }));
    assert_eq!(
        r["result"]["jobs"][0]["state"], "stopped",
        "terminate answered: {r}"
    );
    assert!(!alive(leader), "the leader still runs");
    kill_marked(&mark);
}

/// SIGKILL of supervisord: the guard ends a leader that left its group too.
#[test]
fn the_guard_ends_a_leader_that_left_its_group() {
    let mark = marker("left-group-guard");
    let script = "my $c = fork; if ($c == 0) { sleep 600; exit 0 } setpgrp($c, $c); setpgrp(0, $c); sleep 600";
    let mut d = Daemon::start(&jobs(&format!(
        r#"
[job.leaver]
command = ["perl", "-e", "{script}", "{mark}"]
"#
    )));
    let leader = d
        .wait_job("leaver", "running", |j| j.state.as_str() == "running")
        .pid
        .expect("pid");
    wait_until("the leader to move to its child's group", DEADLINE, || {
        (pgrp_of(leader).is_some_and(|g| g != leader)).then_some(())
    });
    d.signal(Signal::SIGKILL);
    d.wait_exit();
    let ended = wait_until(
        "the leader to be ended by the guard",
        Duration::from_secs(5),
        || Some(!alive(leader)).filter(|e| *e),
    );
    kill_marked(&mark);
    assert!(ended);
}

/// The guard says what it is in `ps`, and whose guard it is.
#[test]
fn the_guard_is_named_in_ps() {
    let d = Daemon::start(&jobs("[job.a]\ncommand = [\"sleep\", \"600\"]\n"));
    d.wait_job("a", "running", |j| j.state.as_str() == "running");
    let want = format!("supervisord: guard for pid {}", d.pid());
    wait_until("the guard's name", DEADLINE, || {
        (!pids_with_arg(&want).is_empty()).then_some(())
    });
}

// ---- bounds: durations and counts ----------------------------------------------------------

/// A duration too long for a timer is refused in the job file (where, and why) and in
/// `add`; the daemon that refused `add` still runs its jobs.
#[test]
fn durations_past_thirty_days_are_refused_in_the_file_and_in_add() {
    for key in ["stop_timeout", "start_secs", "backoff"] {
        let d = Daemon::prepare(&jobs(&format!(
            "[job.a]\ncommand = [\"sleep\", \"1\"]\n{key} = \"1000days\"\n"
        )));
        let out = d.run_once();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{key}: started anyway");
        assert!(
            err.contains("jobs.toml:") && err.contains("too long"),
            "{key}: {err}"
        );
    }
    let d = Daemon::start(&jobs("[job.a]\ncommand = [\"sleep\", \"600\"]\n"));
    let a = d.wait_job("a", "running", |j| j.state.as_str() == "running");
    let r = d.rpc(
        "add",
        json!({ "name": "b", "job": { "command": "sleep 600", "stop_timeout": "1000days" } }),
    );
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("too long")),
        "{r}"
    );
    let r = d.rpc(
        "add",
        json!({ "name": "c", "job": { "command": "sleep 600", "start_secs": 68_000_000 } }),
    );
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert_eq!(d.job("a").pid, a.pid);
}

/// `wait` with the largest timeout a client can send is a wait, not a crash.
#[test]
fn the_largest_wait_timeout_is_harmless() {
    let d = Daemon::start(&jobs("[job.a]\ncommand = [\"sleep\", \"600\"]\n"));
    d.wait_job("a", "running", |j| j.state.as_str() == "running");
    let mut c = d.conn();
    c.send("wait", json!({ "names": ["a"], "timeout_ms": u64::MAX }));
    d.ok("ping", json!({}));
    drop(c);
    d.ok("status", json!({}));
}

/// `log_backups` is bounded (a huge count made every rotation walk every number).
#[test]
fn a_huge_log_backups_is_refused() {
    let d = Daemon::prepare(&jobs(
        "[job.a]\ncommand = [\"true\"]\nlog_backups = 100000000\n",
    ));
    let out = d.run_once();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started anyway");
    assert!(
        err.contains("jobs.toml:") && err.contains("at most 1000"),
        "{err}"
    );
}

// ---- stops that must happen ---------------------------------------------------------------

const STUBBORN: &str = r#"
[job.stubborn]
command = ["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"]
"#;

/// Clients pipelining signals at a stopping job cannot crowd out its stop_timeout SIGKILL.
#[test]
fn client_signals_never_crowd_out_the_stop_escalation() {
    let d = Daemon::start(&jobs(&format!("{STUBBORN}stop_timeout = \"1s\"\n")));
    d.wait_job("stubborn", "running", |j| j.state.as_str() == "running");
    d.ok("terminate", json!({ "names": ["stubborn"], "wait": false }));
    // Four clients pipeline `kill CONT` for three seconds, across the moment the stop
    // times out.
    let socket = d.socket.clone();
    let until = std::time::Instant::now() + Duration::from_secs(3);
    let floods: Vec<_> = (0..4)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let Ok(mut s) = std::os::unix::net::UnixStream::connect(&socket) else {
                    return;
                };
                let Ok(mut r) = s.try_clone() else { return };
                let reader = std::thread::spawn(move || {
                    let mut sink = [0u8; 65536];
                    while matches!(r.read(&mut sink), Ok(n) if n > 0) {}
                });
                let line = r#"{"jsonrpc":"2.0","id":1,"method":"kill","params":{"names":["stubborn"],"signal":"CONT"}}"#;
                let burst = format!("{line}\n").repeat(200);
                while std::time::Instant::now() < until {
                    if s.write_all(burst.as_bytes()).is_err() {
                        break;
                    }
                }
                let _ = s.shutdown(std::net::Shutdown::Both);
                let _ = reader.join();
            })
        })
        .collect();
    for f in floods {
        let _ = f.join();
    }
    d.wait_job("stubborn", "stopped after the escalation", |j| {
        j.state.as_str() == "stopped"
    });
}

/// `terminate --signal KILL` on a job already stopping (and ignoring its stop signal) is
/// sent at once, not after stop_timeout.
#[test]
fn terminate_with_kill_on_a_stopping_job_kills_it_at_once() {
    let d = Daemon::start(&jobs(&format!("{STUBBORN}stop_timeout = \"1h\"\n")));
    d.wait_job("stubborn", "running", |j| j.state.as_str() == "running");
    d.ok("terminate", json!({ "names": ["stubborn"], "wait": false }));
    let mut c = d.conn();
    c.set_timeout(Duration::from_secs(10));
    let r = c.call(
        "terminate",
        json!({ "names": ["stubborn"], "signal": "KILL" }),
    );
    assert_eq!(r["result"]["jobs"][0]["state"], "stopped", "{r}");
    assert_eq!(r["result"]["jobs"][0]["exitcode"], -9, "{r}");
}

/// A `terminate` crossed by a `start`: the terminate answers once its stop is done (with
/// the job as it is then), and the start starts the job again.
#[test]
fn a_terminate_crossed_by_a_start_answers_and_the_start_wins_after() {
    let d = Daemon::start(&jobs(&format!("{STUBBORN}stop_timeout = \"1s\"\n")));
    let first = d
        .wait_job("stubborn", "running", |j| j.state.as_str() == "running")
        .pid;
    let mut t = d.conn();
    t.set_timeout(Duration::from_secs(10));
    let id = t.send("terminate", json!({ "names": ["stubborn"] }));
    d.wait_job("stubborn", "stopping", |j| j.state.as_str() == "stopping");
    d.ok("start", json!({ "names": ["stubborn"] }));
    let r = t.response(id);
    assert!(r.get("result").is_some(), "terminate answered: {r}");
    let again = d.wait_job("stubborn", "running again", |j| {
        j.state.as_str() == "running" && j.pid != first
    });
    assert!(again.pid.is_some());
}

/// `start` or `restart` of a job a `remove` is taking away is refused; the remove answers
/// and the job is gone.
#[test]
fn a_job_being_removed_is_not_started_again() {
    let d = Daemon::start(&jobs(&format!("{STUBBORN}stop_timeout = \"1s\"\n")));
    d.wait_job("stubborn", "running", |j| j.state.as_str() == "running");
    let mut rm = d.conn();
    rm.set_timeout(Duration::from_secs(10));
    let id = rm.send("remove", json!({ "names": ["stubborn"] }));
    d.wait_job("stubborn", "stopping", |j| j.state.as_str() == "stopping");
    for method in ["start", "restart"] {
        let r = d.rpc(method, json!({ "names": ["stubborn"] }));
        assert!(
            r["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("being removed")),
            "{method}: {r}"
        );
    }
    let r = rm.response(id);
    assert_eq!(r["result"]["jobs"][0]["state"], "stopped", "{r}");
    wait_until("the job to be gone", DEADLINE, || {
        d.jobs().iter().all(|j| j.name != "stubborn").then_some(())
    });
}

// ---- a full disk ----------------------------------------------------------------------------

/// Unmounts on drop.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A tmpfs of `size` at `at`, or `None` (with the reason printed) where that needs a root
/// the test does not have.
fn tiny_tmpfs(at: &Path, size: &str) -> Option<Mount> {
    std::fs::create_dir_all(at).ok()?;
    let ok = nix::unistd::geteuid().is_root()
        && Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: cannot mount a tmpfs (needs root)");
        return None;
    }
    Some(Mount(at.to_path_buf()))
}

/// The log's disk fills mid-run and then has room again: every line in the file is one
/// the job printed, whole (none torn, none glued onto another), and the bytes reported
/// lost are exactly those of the lines missing.
#[test]
fn a_full_disk_loses_whole_lines_and_counts_them_exactly() {
    let d = Daemon::prepare("");
    let logs = d.dir.path().join("logs");
    let Some(_mount) = tiny_tmpfs(&logs, "512k") else {
        return;
    };
    // Leave 16 KiB free.
    let filler = logs.join("filler");
    std::fs::write(&filler, vec![b'f'; 512 * 1024 - 16 * 1024]).expect("filler");
    let lines = 3000;
    std::fs::write(
        &d.config,
        jobs(&format!(
            r#"
[supervisor]
log_dir = "logs"

[job.writer]
command = ["sh", "-c", "i=0; while [ $i -lt {lines} ]; do printf 'line-%06d-%s\n' $i abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdef; i=$((i+1)); if [ $((i % 50)) = 0 ]; then sleep 0.02; fi; done; sleep 600"]
"#
        )),
    )
    .expect("job file");
    let d = d.launch(&[]);
    d.wait_job("writer", "the disk to fill", |j| j.output_error.is_some());
    std::fs::remove_file(&filler).expect("free the disk");
    let path = logs.join("writer.stdout.log");
    let last = format!("line-{:06}-", lines - 1);
    wait_until("the last line on disk", DEADLINE, || {
        std::fs::read_to_string(&path)
            .ok()
            .filter(|t| t.contains(&last))
            .map(|_| ())
    });
    wait_until("the daemon to say writing works again", DEADLINE, || {
        d.stderr().contains("writing log works again").then_some(())
    });
    let text = std::fs::read_to_string(&path).expect("log");
    let line_of = |i: usize| {
        format!(
            "line-{i:06}-abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdef\n"
        )
    };
    let mut seen = std::collections::BTreeSet::new();
    for l in text.split_inclusive('\n') {
        let n: usize = l
            .strip_prefix("line-")
            .and_then(|r| r.get(..6))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a line the job never printed: {l:?}"));
        assert_eq!(l, line_of(n), "a torn or glued line");
        assert!(seen.insert(n), "line {n} twice");
    }
    let missing: usize = (0..lines)
        .filter(|i| !seen.contains(i))
        .map(|i| line_of(i).len())
        .sum();
    assert!(missing > 0, "nothing was lost: the disk never filled");
    let reported: usize = d
        .stderr()
        .lines()
        .filter(|l| l.contains("writing log works again"))
        .filter_map(|l| {
            l.split("lost_bytes=")
                .nth(1)?
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert_eq!(reported, missing, "lost bytes reported vs missing");
}

// ---- nothing blocks the daemon ----------------------------------------------------------------

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
}

/// A FIFO nobody reads as a job's stdout file: the spawn fails with a clear error, the
/// daemon answers and shuts down on SIGTERM.
#[test]
fn a_fifo_as_a_jobs_output_file_does_not_freeze_the_daemon() {
    let d = Daemon::prepare("");
    mkfifo(&d.dir.path().join("out.fifo"));
    std::fs::write(
        &d.config,
        jobs("[job.piped]\ncommand = [\"echo\", \"hi\"]\nstdout = \"./out.fifo\"\nrestart = \"never\"\n"),
    )
    .expect("job file");
    let mut d = d.launch(&[]);
    let j = d.wait_job("piped", "the spawn to fail", |j| j.spawn_error.is_some());
    let err = j.spawn_error.unwrap_or_default();
    assert!(err.contains("out.fifo") && err.contains("FIFO"), "{err}");
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(), 0);
}

/// A FIFO where a captured log goes: that job reports an output error, other jobs' logs
/// are still written.
#[test]
fn a_fifo_as_a_log_file_does_not_stall_other_jobs_logs() {
    let d = Daemon::prepare("");
    let logs = d.dir.path().join("logs");
    std::fs::create_dir(&logs).expect("logs");
    mkfifo(&logs.join("piped.stdout.log"));
    std::fs::write(
        &d.config,
        jobs("[supervisor]\nlog_dir = \"logs\"\n\n[job.piped]\ncommand = [\"sh\", \"-c\", \"echo hi; sleep 600\"]\n\n[job.plain]\ncommand = [\"sh\", \"-c\", \"echo plain-line; sleep 600\"]\n"),
    )
    .expect("job file");
    let d = d.launch(&[]);
    let j = d.wait_job("piped", "an output error", |j| j.output_error.is_some());
    assert!(
        j.output_error.unwrap_or_default().contains("FIFO"),
        "the error says why"
    );
    wait_until("the other job's log", DEADLINE, || {
        std::fs::read_to_string(logs.join("plain.stdout.log"))
            .ok()
            .filter(|t| t.contains("plain-line"))
            .map(|_| ())
    });
}

// ---- signals ----------------------------------------------------------------------------------

/// SIGUSR2 reopens the log files (what logrotate recipes send); SIGUSR1 and SIGALRM are
/// logged and ignored. None of them ends the daemon or touches a job.
#[test]
fn sigusr2_reopens_logs_and_other_stray_signals_are_ignored() {
    let d = Daemon::start(&jobs(
        "[job.ticker]\ncommand = [\"sh\", \"-c\", \"i=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.05; done\"]\nlog_max_bytes = 0\n",
    ));
    let j = d.wait_job("ticker", "running", |j| j.state.as_str() == "running");
    let log = d.dir.path().join("logs/ticker.stdout.log");
    wait_until("a first tick", DEADLINE, || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|t| t.contains("tick-"))
            .map(|_| ())
    });
    let moved = d.dir.path().join("logs/ticker.stdout.log.old");
    std::fs::rename(&log, &moved).expect("rotate like logrotate");
    for sig in [Signal::SIGUSR1, Signal::SIGALRM, Signal::SIGUSR2] {
        d.signal(sig);
    }
    let rt = Command::new("kill")
        .args(["-s", "RTMIN+3"])
        .arg(d.pid().to_string())
        .status()
        .expect("kill");
    assert!(rt.success());
    wait_until("ticks in a new file at the old path", DEADLINE, || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|t| t.contains("tick-"))
            .map(|_| ())
    });
    wait_until("the ignored signals in the daemon's log", DEADLINE, || {
        let err = d.stderr();
        (err.contains("SIGUSR1 received: ignored")
            && err.contains("SIGALRM received: ignored")
            && err.contains("SIGRTMIN+3 received: ignored"))
        .then_some(())
    });
    assert_eq!(d.job("ticker").pid, j.pid, "the job was not touched");
    d.ok("ping", json!({}));
}

// ---- answers ------------------------------------------------------------------------------------

/// Request ids come back exactly as sent, however many digits a number has.
#[test]
fn request_ids_are_echoed_exactly() {
    use std::io::{BufRead, BufReader, Write};
    let d = Daemon::start(&jobs(""));
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    for id in [
        "18446744073709551617",
        "-18446744073709551617",
        "1.5",
        "1.0",
        "12345678901234567890123456789",
        "0",
        "\"x\"",
        "null",
    ] {
        for method in ["ping", "nope"] {
            let line = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"{method}\"}}\n");
            s.write_all(line.as_bytes()).expect("send");
            let mut got = String::new();
            r.read_line(&mut got).expect("an answer");
            assert!(
                got.starts_with(&format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},")),
                "sent {line} got {got}"
            );
        }
    }
}

/// Only "nobody listens" makes a socket stale. A live daemon whose accept queue is full
/// keeps its socket: a second daemon refuses to start instead of taking it over.
#[test]
fn a_busy_live_socket_is_never_taken_over() {
    let d = Daemon::start(&jobs(""));
    d.signal(Signal::SIGSTOP);
    // Fill the stopped daemon's accept queue with non-blocking connects.
    let mut held = Vec::new();
    let mut full = false;
    for _ in 0..5000 {
        let fd = match nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            nix::sys::socket::SockFlag::SOCK_NONBLOCK,
            None,
        ) {
            Ok(fd) => fd,
            Err(_) => break,
        };
        let addr = nix::sys::socket::UnixAddr::new(&d.socket).expect("addr");
        match nix::sys::socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr) {
            Ok(()) => held.push(fd),
            Err(nix::errno::Errno::EAGAIN) => {
                full = true;
                break;
            }
            Err(e) => panic!("connect: {e}"),
        }
    }
    assert!(full, "the accept queue never filled");
    let mut second = Daemon::prepare(&jobs(""));
    second.socket = d.socket.clone();
    let out = second.run_once();
    d.signal(Signal::SIGCONT);
    drop(held);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second daemon started: {err}");
    assert!(err.contains("not replacing it"), "{err}");
    wait_until("the daemon to answer again", DEADLINE, || {
        // Connections queued while it was stopped are shed first; retry until served.
        let mut c = Conn::try_open(&d.socket)?;
        c.send("ping", json!({}));
        c.recv_within(Duration::from_secs(2))
            .filter(|r| r.get("result").is_some())
            .map(|_| ())
    });
}

/// A socket folder another user owns, or one others may write to, is refused.
#[test]
fn an_unsafe_socket_folder_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let mut d = Daemon::prepare(&jobs(""));
    let open = d.dir.path().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    d.socket = open.join("sock");
    let out = d.run_once();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("writable by other users"), "{err}");
    if nix::unistd::geteuid().is_root() {
        let theirs = d.dir.path().join("theirs");
        std::fs::create_dir(&theirs).expect("mkdir");
        std::os::unix::fs::chown(&theirs, Some(65534), None).expect("chown");
        d.socket = theirs.join("sock");
        let out = d.run_once();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains("owned by uid 65534"), "{err}");
    } else {
        eprintln!("skipped the other-owner half: needs root to chown");
    }
}

/// supctl does not believe a socket served by another (non-root) user.
#[test]
fn supctl_refuses_a_socket_served_by_another_user() {
    use std::os::unix::process::CommandExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to serve a socket as nobody");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("svimp")
        .tempdir()
        .expect("tempdir");
    std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).expect("chown");
    let sock = dir.path().join("sock");
    // The impostor, as nobody: answers every line with an empty job list.
    let script = r#"use IO::Socket::UNIX; my $l = IO::Socket::UNIX->new(Local => $ARGV[0], Listen => 5) or die "$!"; while (my $c = $l->accept) { $c->autoflush(1); while (<$c>) { print $c qq({"jsonrpc":"2.0","id":1,"result":{"jobs":[]}}\n) } }"#;
    let impostor = Command::new("perl")
        .arg("-e")
        .arg(script)
        .arg(&sock)
        .uid(65534)
        .gid(65534)
        .spawn()
        .expect("impostor");
    let _impostor = Impostor(impostor);
    wait_until("the impostor's socket", DEADLINE, || {
        sock.exists().then_some(())
    });
    let out = Command::new(bin("supctl"))
        .arg("--socket")
        .arg(&sock)
        .arg("status")
        .output()
        .expect("run supctl");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("served by uid 65534"), "{err}");
}

/// A child process, killed on drop.
struct Impostor(Child);

impl Drop for Impostor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
