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
    assert!(alive_now, "{what}: a process that reused the job's pid was killed");
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
    // itself when G ends, and lives on; L exits at once.
    let script = "my $c = fork; if ($c == 0) { my $g = fork; if ($g == 0) { select(undef, undef, undef, 1.0); exit 0 } setpgrp(0, 0); waitpid($g, 0); sleep 600; exit 0 } exit 0";
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
        .wait_job("mover", "a pid", |j| j.pid.is_some() || j.exitcode.is_some())
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
    wait_until("the group to empty and the leader to be reaped", DEADLINE, || {
        gone(leader).then_some(())
    });
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
    let ended = wait_until("the leader to be ended by the guard", Duration::from_secs(5), || {
        Some(!alive(leader)).filter(|e| *e)
    });
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
