//! The run history: `history.jsonl` beside the job file (or in `state_dir`), the
//! `history` method and `supctl history`, and what a restarted supervisord remembers —
//! after a graceful stop, after SIGKILL, with the file torn mid-line — plus compaction
//! and a state folder that cannot be written.

use crate::support::{alive, bin, jobs, wait_until, Daemon, DEADLINE};
use nix::sys::signal::Signal;
use protocol::{Cause, HistoryResult, JobState, PingResult};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime};

fn history(d: &Daemon, params: Value) -> HistoryResult {
    serde_json::from_value(d.ok("history", params)).expect("a history result")
}

fn history_file(d: &Daemon) -> PathBuf {
    d.dir.path().join("history.jsonl")
}

/// Stop the daemon with SIGTERM and start a new one on the same folder.
fn restart_gracefully(mut d: Daemon) -> Daemon {
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(), 0, "a graceful stop");
    d.launch(&[])
}

#[test]
fn a_graceful_restart_remembers_each_jobs_last_run() {
    let d = Daemon::start(&jobs(
        r#"
[job.three]
command = ["sh", "-c", "exit 3"]
autostart = false
start_secs = 0
[job.never]
command = ["true"]
autostart = false
[job.missing]
command = ["/nonexistent/program"]
autostart = false
"#,
    ));
    d.ctl(&["start", "missing"]);
    let missing = d.wait_job("missing", "is fatal", |j| j.state == JobState::Fatal);
    d.ctl(&["start", "three"]);
    let waited = d.ctl(&["wait", "three"]);
    assert_eq!(waited.status.code(), Some(1), "exit 3 is a failure");
    let before = d.job("three");
    assert_eq!(before.state, JobState::Exited);
    assert_eq!(before.exitcode, Some(3));

    let d = restart_gracefully(d);
    let after = d.job("three");
    assert_eq!(after.state, JobState::Exited, "{after:?}");
    assert_eq!(after.exitcode, Some(3));
    assert_eq!(after.success, Some(false));
    assert_eq!(after.cause, Some(Cause::Exit));
    assert_eq!(after.reason, before.reason);
    assert_eq!(after.started_at, before.started_at);
    assert_eq!(after.ended_at, before.ended_at);
    assert!(!after.alive);
    let again = d.job("missing");
    assert_eq!(again.state, JobState::Fatal, "{again:?}");
    assert_eq!(again.cause, Some(Cause::SpawnError));
    assert_eq!(again.spawn_error, missing.spawn_error);
    assert_eq!(again.ended_at, missing.ended_at);
    let never = d.job("never");
    assert_eq!(never.state, JobState::Stopped);
    assert_eq!(never.cause, None, "a job that never ran has no last run");

    let failed = history(&d, json!({"names": ["missing"]})).runs;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].pid, None, "a failed spawn is a run without a pid");
    assert_eq!(failed[0].cause, Some(Cause::SpawnError));
    assert_eq!(
        failed[0].started_at,
        failed[0].ended_at.clone().unwrap_or_default()
    );
    let runs = history(&d, json!({"names": ["three"]})).runs;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].name, "three");
    assert_eq!(runs[0].exitcode, Some(3));
    assert_eq!(runs[0].ended_at, before.ended_at);
    assert!(runs[0].pid.is_some());
    let table = d.ctl_ok(&["history"]);
    let mut lines = table.lines();
    assert!(
        lines.next().is_some_and(|h| h.starts_with("RUN")),
        "{table}"
    );
    let row = lines.next().unwrap_or_default();
    assert!(row.contains("three") && row.contains("exit 3"), "{table}");
    let json: HistoryResult =
        serde_json::from_str(&d.ctl_ok(&["--json", "history", "three"])).expect("json");
    assert_eq!(json.runs, runs);

    // A new run after the restart gets a run id past the old ones.
    d.ctl(&["start", "three"]);
    d.ctl(&["wait", "three"]);
    let runs = history(&d, json!({"names": ["three"]})).runs;
    assert_eq!(runs.len(), 2);
    assert!(runs[0].run_id > runs[1].run_id, "newest first: {runs:?}");
}

#[test]
fn after_sigkill_the_runs_that_were_alive_are_ended_as_daemon_lost() {
    let mut d = Daemon::start(&jobs(
        r#"
[job.sleeper]
command = ["sleep", "300"]
autostart = false
[job.napper]
command = ["sleep", "301"]
autostart = false
"#,
    ));
    d.ctl_ok(&["start", "sleeper", "napper"]);
    let pids = [d.running_pid("sleeper"), d.running_pid("napper")];
    // `history` answers after every record handed over before it: the starts are written.
    let open = history(&d, json!({})).runs;
    assert_eq!(open.len(), 2, "{open:?}");
    assert!(open.iter().all(|r| r.ended_at.is_none()), "{open:?}");

    d.signal(Signal::SIGKILL);
    d.wait_exit();
    for pid in pids {
        wait_until("the guard to kill the jobs", DEADLINE, || {
            (!alive(pid)).then_some(())
        });
    }
    let d = d.launch(&[]);
    for (name, pid) in ["sleeper", "napper"].into_iter().zip(pids) {
        let job = d.job(name);
        assert_eq!(job.state, JobState::Exited, "{job:?}");
        assert_eq!(job.cause, Some(Cause::DaemonLost), "{job:?}");
        assert_eq!(job.success, Some(false));
        assert!(!job.alive && job.pid.is_none(), "{job:?}");
        assert!(job.ended_at.is_some());
        assert!(!alive(pid), "pid {pid} of {name} is gone");
        let runs = history(&d, json!({"names": [name]})).runs;
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!(runs[0].pid, Some(pid));
        assert_eq!(runs[0].cause, Some(Cause::DaemonLost));
    }
    let table = d.ctl_ok(&["history"]);
    assert_eq!(
        table.matches("supervisord died while it ran").count(),
        2,
        "{table}"
    );
    let text = std::fs::read_to_string(history_file(&d)).expect("history");
    assert_eq!(
        text.matches("\"daemon_lost\"").count(),
        2,
        "end records were written for the lost runs: {text}"
    );
    assert!(d.stderr().contains("daemon_lost"), "{}", d.stderr());

    // Only once: a graceful restart now finds nothing open.
    let d = restart_gracefully(d);
    let text = std::fs::read_to_string(history_file(&d)).expect("history");
    assert_eq!(text.matches("\"daemon_lost\"").count(), 2, "{text}");
}

#[test]
fn a_history_torn_mid_line_is_read_up_to_the_tear_with_a_warning() {
    let d = Daemon::start(&jobs(
        r#"
[job.a]
command = ["true"]
autostart = false
start_secs = 0
"#,
    ));
    for _ in 0..3 {
        d.ctl_ok(&["start", "a"]);
        d.ctl_ok(&["wait", "a"]);
    }
    let mut d = d;
    d.signal(Signal::SIGTERM);
    d.wait_exit();
    let path = history_file(&d);
    let text = std::fs::read_to_string(&path).expect("history");
    assert_eq!(text.lines().count(), 6, "{text}");
    // Cut the last line (run 3's end) in its middle, as a crash during a write would.
    let cut = text.len() - 40;
    std::fs::write(&path, &text[..cut]).expect("truncate");

    let d = d.launch(&[]);
    let err = d.stderr();
    assert!(err.contains("torn"), "a warning in the log: {err}");
    let runs = history(&d, json!({})).runs;
    let ids: Vec<u64> = runs.iter().map(|r| r.run_id).collect();
    assert_eq!(ids, [3, 2, 1], "{runs:?}");
    assert_eq!(runs[1].cause, Some(Cause::Exit));
    assert_eq!(runs[2].cause, Some(Cause::Exit));
    assert_eq!(
        runs[0].cause,
        Some(Cause::DaemonLost),
        "its end line was torn off: {runs:?}"
    );
    let repaired = std::fs::read_to_string(&path).expect("history");
    assert!(repaired.ends_with('\n'), "{repaired}");
    for line in repaired.lines() {
        serde_json::from_str::<Value>(line).expect("every line whole");
    }
    // The history goes on from there.
    d.ctl_ok(&["start", "a"]);
    d.ctl_ok(&["wait", "a"]);
    assert_eq!(history(&d, json!({"limit": 1})).runs[0].run_id, 4);
}

#[test]
fn compaction_keeps_the_file_under_history_max_bytes_and_the_newest_runs() {
    let max = 4096;
    let d = Daemon::start(&jobs(&format!(
        r#"
[supervisor]
history_max_bytes = {max}

[job.a]
command = ["true"]
autostart = false
start_secs = 0
stdout = "null"
stderr = "null"
"#
    )));
    let total = 40;
    for _ in 0..total {
        d.ctl_ok(&["start", "a"]);
        d.ctl_ok(&["wait", "a"]);
        let size = std::fs::metadata(history_file(&d)).expect("history").len();
        assert!(size <= max, "{size} bytes");
    }
    let runs = history(&d, json!({"limit": 1000})).runs;
    let ids: Vec<u64> = runs.iter().map(|r| r.run_id).collect();
    assert_eq!(ids.first(), Some(&total), "the newest run is kept: {ids:?}");
    assert!(runs.len() < 20, "older runs went: {ids:?}");
    assert!(
        ids.windows(2).all(|w| w[0] == w[1] + 1),
        "the newest, without gaps: {ids:?}"
    );
    assert!(runs.iter().all(|r| r.cause == Some(Cause::Exit)));
    assert!(d.stderr().contains("history compacted"), "{}", d.stderr());
    assert!(!d.dir.path().join("history.jsonl.tmp").exists());
}

#[test]
fn an_unwritable_state_dir_is_reported_once_and_jobs_still_run() {
    let d = Daemon::prepare(&jobs(
        r#"
[supervisor]
state_dir = "blocker/state"

[job.a]
command = ["true"]
autostart = false
start_secs = 0
"#,
    ));
    // A file where a folder should be: not writable even by root.
    std::fs::write(d.dir.path().join("blocker"), "").expect("blocker");
    let d = d.launch(&[]);
    let ping: PingResult = serde_json::from_value(d.ok("ping", Value::Null)).expect("ping");
    let error = ping.history_error.expect("ping reports it");
    assert!(error.contains("blocker/state"), "{error}");
    let status = d.ok("status", json!({}));
    assert_eq!(
        status["history_error"],
        error.as_str(),
        "status says it too: {status}"
    );

    for _ in 0..2 {
        d.ctl_ok(&["start", "a"]);
        d.ctl_ok(&["wait", "a"]);
    }
    assert_eq!(d.job("a").exitcode, Some(0), "supervising goes on");
    let status = d.ctl_ok(&["status"]);
    let first = status.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("warning: run history off:") && first.contains("blocker/state"),
        "{status}"
    );
    assert!(d.ctl_ok(&["ping"]).contains("run history off"));
    let reported = d.stderr().matches("run history off").count();
    assert_eq!(reported, 1, "once in the log: {}", d.stderr());
}

#[test]
fn history_off_writes_nothing_and_says_so() {
    let d = Daemon::start(&jobs(
        r#"
[supervisor]
history = false

[job.a]
command = ["true"]
start_secs = 0
"#,
    ));
    d.wait_job("a", "exited", |j| j.state == JobState::Exited);
    let status = d.ok("status", json!({}));
    assert!(status.get("history_error").is_none(), "{status}");
    let resp = d.rpc("history", json!({}));
    assert_eq!(resp["error"]["code"], 1006, "{resp}");
    assert!(!history_file(&d).exists());
    let status = d.ctl_ok(&["status"]);
    assert!(
        status.starts_with("NAME"),
        "no warning when off by choice: {status}"
    );
}

/// Each run's start time in the history, by job name, oldest first.
fn starts(d: &Daemon, name: &str) -> Vec<(u64, SystemTime)> {
    let mut runs: Vec<(u64, SystemTime)> = history(d, json!({"names": [name]}))
        .runs
        .iter()
        .map(|r| {
            let at = humantime::parse_rfc3339(&r.started_at).expect("started_at is RFC 3339");
            (r.run_id, at)
        })
        .collect();
    runs.reverse();
    runs
}

#[test]
fn catch_up_runs_a_job_once_at_start_when_the_history_says_a_time_passed_while_down() {
    let mut d = Daemon::start(
        r#"
[defaults]
start_secs = 0
stdout = "null"
stderr = "null"

[job.caught]
command = ["true"]
schedule = "every 3s"
catch_up = true
[job.missed]
command = ["true"]
schedule = "every 3s"
[job.hourly]
command = ["true"]
schedule = "every 1h"
catch_up = true
"#,
    );
    // One run each now (the schedules would take 3 s, or an hour).
    d.ctl_ok(&["start", "caught", "missed", "hourly"]);
    d.ctl_ok(&["wait", "caught", "missed", "hourly"]);
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(), 0, "a graceful stop");
    // Down until a time of the 3 s schedules has passed since their last run started
    // (read from the file: a scheduled run may have begun before the stop).
    let text = std::fs::read_to_string(history_file(&d)).expect("history.jsonl");
    let last_start = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|l| l["run"]["started_at"].as_str().map(str::to_owned))
        .filter_map(|t| humantime::parse_rfc3339(&t).ok())
        .max()
        .expect("runs in the history");
    let due = last_start + Duration::from_millis(3200);
    wait_until(
        "a scheduled time to pass while supervisord is down",
        DEADLINE,
        || (SystemTime::now() > due).then_some(()),
    );
    let d = d.launch(&[]);
    // Runs that started after `due` are the new daemon's. Its first run of the job
    // without catch_up is its scheduled one, 3 s after the new daemon armed every
    // schedule (in one go, at start, when catch_up is decided too).
    let after_due = |name: &str| -> Vec<(u64, SystemTime)> {
        starts(&d, name)
            .into_iter()
            .filter(|(_, at)| *at > due)
            .collect()
    };
    let missed = wait_until("missed's first scheduled run", DEADLINE, || {
        after_due("missed").first().copied()
    });
    let caught = after_due("caught");
    let first = caught.first().expect("caught ran after the restart");
    let ahead = missed.1.duration_since(first.1).unwrap_or_default();
    assert!(
        ahead >= Duration::from_secs(2),
        "catch_up runs at start, {ahead:?} before the schedule's first time: {caught:?} / {missed:?}"
    );
    let early = caught
        .iter()
        .filter(|(_, at)| *at + Duration::from_secs(2) <= missed.1)
        .count();
    assert_eq!(early, 1, "once: {caught:?}");
    let hourly = starts(&d, "hourly");
    assert_eq!(
        hourly.len(),
        1,
        "no time of an hourly schedule passed: {hourly:?}"
    );
    let log = d.stderr();
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("catch_up: a scheduled time passed"))
        .collect();
    assert_eq!(said.len(), 1, "{log}");
    assert!(said[0].contains("caught"), "{log}");
}

/// `supctl status` takes its warning from the `status` answer: one request, no `ping`.
/// A stand-in daemon answers and notes each method it is asked.
#[test]
fn supctl_status_shows_the_history_warning_from_its_one_status_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let server = std::thread::spawn(move || {
        let (stream, _) = wait_until("supctl to connect", DEADLINE, || listener.accept().ok());
        stream.set_nonblocking(false).expect("blocking");
        stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let mut writer = stream.try_clone().expect("clone");
        let mut methods = Vec::new();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let req: Value = serde_json::from_str(&line).expect("a JSON request");
            let method = req["method"].as_str().unwrap_or_default().to_owned();
            let result = match method.as_str() {
                "status" => {
                    json!({"jobs": [], "history_error": "cannot create state_dir /x: Not a directory"})
                }
                _ => {
                    json!({"version": "0.1.0", "pid": 1, "uptime_ms": 1, "history_error": "asked by ping"})
                }
            };
            let answer = json!({"jsonrpc": "2.0", "id": req["id"], "result": result});
            writeln!(writer, "{answer}").expect("answer");
            methods.push(method);
        }
        methods
    });
    let out = Command::new(bin("supctl"))
        .arg("--socket")
        .arg(&socket)
        .arg("status")
        .output()
        .expect("run supctl");
    let methods = server.join().expect("the stand-in daemon");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(methods, ["status"], "one round trip");
    assert_eq!(
        stdout.lines().next(),
        Some("warning: run history off: cannot create state_dir /x: Not a directory"),
        "{stdout}"
    );
}
