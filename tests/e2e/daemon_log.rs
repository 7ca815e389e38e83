//! supervisord's own log: `--log-format json` is one JSON object per line with each job
//! event as a structured record; under journald (`JOURNAL_STREAM` naming stderr) lines
//! carry no timestamp of their own.

use crate::support::{jobs, wait_until, Daemon, DEADLINE};
use serde_json::Value;
use std::os::unix::fs::MetadataExt;

const ONE_SHOT: &str = r#"
[job.quick]
command = ["sh", "-c", "sleep 0.3; exit 3"]
"#;

fn json_lines(d: &Daemon) -> Vec<Value> {
    d.stderr()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

#[test]
fn json_log_has_one_record_per_job_event_with_fields() {
    let d = Daemon::start_with(&jobs(ONE_SHOT), &["--log-format", "json"]);
    let pid = d
        .wait_job("quick", "running", |j| j.pid.is_some())
        .pid
        .expect("pid");
    d.wait_job("quick", "exited", |j| j.exitcode == Some(3));
    let exit = wait_until("the exit record", DEADLINE, || {
        json_lines(&d)
            .into_iter()
            .find(|r| r["job"] == "quick" && r["to"] == "exited")
    });
    assert_eq!(exit["pid"], pid, "{exit}");
    assert_eq!(exit["exitcode"], 3, "{exit}");
    assert_eq!(exit["from"], "running", "{exit}");
    assert_eq!(exit["group"], "quick", "{exit}");
    assert_eq!(exit["level"], "INFO", "{exit}");
    assert!(exit["timestamp"].is_string(), "{exit}");
    let events: Vec<Value> = json_lines(&d)
        .into_iter()
        .filter(|r| r["job"] == "quick" && r.get("to").is_some())
        .collect();
    let path: Vec<(&str, &str)> = events
        .iter()
        .map(|r| {
            (
                r["from"].as_str().unwrap_or("?"),
                r["to"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(
        path,
        [
            ("stopped", "starting"),
            ("starting", "running"),
            ("running", "exited")
        ],
        "exactly one record per state change"
    );
}

/// Start a daemon whose stderr file is the stream `JOURNAL_STREAM` names (`matching`),
/// or another one.
fn under_journal(matching: bool, args: &[&str]) -> Daemon {
    let mut d = Daemon::prepare(&jobs(ONE_SHOT));
    let err = d.dir.path().join("daemon.err");
    std::fs::write(&err, "").expect("create stderr file");
    let meta = std::fs::metadata(&err).expect("stat");
    let value = if matching {
        format!("{}:{}", meta.dev(), meta.ino())
    } else {
        format!("{}:{}", meta.dev(), meta.ino() + 1)
    };
    d.env.push(("JOURNAL_STREAM".into(), value));
    d.launch(args)
}

fn starts_with_timestamp(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[7] == b'-'
}

#[test]
fn under_journald_text_lines_have_no_timestamp() {
    let d = under_journal(true, &[]);
    d.wait_job("quick", "exited", |j| j.exitcode == Some(3));
    let err = d.stderr();
    assert!(err.contains("job quick running -> exited"), "{err}");
    for line in err.lines() {
        assert!(
            !starts_with_timestamp(line),
            "timestamp under journald: {line:?}"
        );
    }
}

#[test]
fn a_redirected_stderr_keeps_its_timestamps() {
    // JOURNAL_STREAM inherited, but stderr is not that stream any more.
    let d = under_journal(false, &[]);
    d.wait_job("quick", "exited", |j| j.exitcode == Some(3));
    let err = d.stderr();
    assert!(
        err.lines().all(starts_with_timestamp),
        "every line stamped: {err}"
    );
}

#[test]
fn under_journald_json_records_have_no_timestamp() {
    let d = under_journal(true, &["--log-format", "json"]);
    d.wait_job("quick", "exited", |j| j.exitcode == Some(3));
    let records = json_lines(&d);
    assert!(!records.is_empty());
    assert!(
        records.iter().all(|r| r.get("timestamp").is_none()),
        "{records:?}"
    );
}

/// `--log-level` sets the filter and wins over `RUST_LOG` (the harness sets
/// `RUST_LOG=debug`); a bad filter is a usage error naming it.
#[test]
fn log_level_filters_the_daemons_log_and_beats_rust_log() {
    let job = jobs("[job.once]\ncommand = [\"true\"]\n");
    let mut quiet = Daemon::start_with(&job, &["--log-level", "warn"]);
    quiet.wait_job("once", "exited", |j| j.state.as_str() == "exited");
    quiet.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(quiet.wait_exit(), 0);
    let err = quiet.stderr();
    assert!(
        !err.contains(" INFO ") && !err.contains(" DEBUG "),
        "--log-level warn: {err}"
    );

    let loud = Daemon::start_with(&job, &["--log-level", "debug"]);
    loud.wait_job("once", "exited", |j| j.state.as_str() == "exited");
    let err = loud.stderr();
    assert!(err.contains(" DEBUG "), "--log-level debug: {err}");
    assert!(err.contains(" INFO supervisord started"), "{err}");

    // A per-target filter, as RUST_LOG takes: info for supervisord, so no DEBUG line.
    let target = Daemon::start_with(&job, &["--log-level", "supervisord=info"]);
    target.wait_job("once", "exited", |j| j.state.as_str() == "exited");
    let err = target.stderr();
    assert!(err.contains(" INFO supervisord started"), "{err}");
    assert!(!err.contains(" DEBUG "), "{err}");

    let bad = Daemon::prepare(&job);
    let out = bad
        .command(&["--log-level", "loud=["])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = std::fs::read_to_string(bad.dir.path().join("daemon.err")).expect("stderr");
    assert!(
        err.contains("--log-level") && err.contains("loud=[") && err.trim().lines().count() == 1,
        "{err}"
    );
}
