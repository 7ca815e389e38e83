//! Why a job is not running (`cause` and `reason`, docs/protocol.md "Job states and
//! causes"), as the protocol, `supctl status` and events show it; and `reload`, which
//! answers only once it is applied.

use crate::support::*;
use protocol::{Cause, JobState};
use serde_json::{json, Value};

/// A job stopped by request, one killed after its stop_timeout, one that cannot spawn.
const THREE: &str = r#"
[job.byhand]
command = ["sleep", "300"]

[job.stubborn]
command = ["sh", "-c", "trap '' TERM; echo trapped; while :; do sleep 1; done"]
stop_timeout = "1s"

[job.missing]
command = ["./no-such-program"]
"#;

#[test]
fn each_job_says_why_it_is_not_running() {
    let d = Daemon::start(&jobs(THREE));
    for name in ["byhand", "stubborn"] {
        d.wait_job(name, "running", |j| j.state == JobState::Running);
    }
    // A loaded machine can take longer than start_secs to reach the trap.
    wait_until("stubborn to ignore SIGTERM", DEADLINE, || {
        d.ctl_ok(&["logs", "stubborn"])
            .contains("trapped")
            .then_some(())
    });
    let running = d.job("byhand");
    assert_eq!(
        (running.cause, running.reason),
        (None, None),
        "alive: no cause"
    );

    d.ctl_ok(&["terminate", "byhand", "stubborn"]);
    let byhand = d.job("byhand");
    assert_eq!(byhand.cause, Some(Cause::Stopped));
    assert_eq!(byhand.reason.as_deref(), Some("stopped by request"));
    assert_eq!(byhand.exitcode, Some(-15));
    let stubborn = d.job("stubborn");
    assert_eq!(stubborn.cause, Some(Cause::StopTimeout));
    assert_eq!(
        stubborn.reason.as_deref(),
        Some("killed with SIGKILL after stop_timeout 1s")
    );
    assert_eq!(stubborn.exitcode, Some(-9));
    let missing = d.wait_job("missing", "fatal", |j| j.state == JobState::Fatal);
    assert_eq!(missing.cause, Some(Cause::SpawnError));
    let reason = missing.reason.expect("a reason");
    assert!(
        reason.starts_with("cannot spawn: ") && reason.contains("no such program"),
        "{reason}"
    );

    // The table says the same where it used to show only the exit.
    let table = d.ctl_ok(&["status"]);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name} in\n{table}"))
            .to_owned()
    };
    assert!(
        row("byhand").ends_with("stopped by request, killed by SIGTERM (-15)"),
        "{table}"
    );
    assert!(
        row("stubborn").ends_with("killed with SIGKILL after stop_timeout 1s"),
        "{table}"
    );
    assert!(row("missing").contains("cannot spawn: "), "{table}");

    // One job by name: every field as a block.
    let block = d.ctl_ok(&["status", "stubborn"]);
    let field = |key: &str| {
        block
            .lines()
            .find_map(|l| l.strip_prefix(key).filter(|rest| rest.starts_with(' ')))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {key} in\n{block}"))
            .to_owned()
    };
    assert_eq!(field("name"), "stubborn");
    assert_eq!(field("state"), "stopped");
    assert_eq!(field("exitcode"), "-9");
    assert_eq!(field("signal"), "SIGKILL");
    assert_eq!(field("cause"), "stop_timeout");
    assert_eq!(field("reason"), "killed with SIGKILL after stop_timeout 1s");
}

#[test]
fn events_that_leave_a_live_state_carry_cause_and_reason() {
    let d = Daemon::start(&jobs(
        r#"
[job.quick]
command = ["sh", "-c", "exit 3"]
autostart = false
"#,
    ));
    let mut events = d.conn();
    events.call("subscribe", Value::Null);
    d.ok("start", json!({ "names": ["quick"] }));
    let ended = wait_until("the exit event", DEADLINE, || {
        let msg = events.recv_within(DEADLINE)?;
        (msg["params"]["to"] == "exited").then_some(msg)
    });
    assert_eq!(ended["params"]["cause"], "exit");
    assert_eq!(ended["params"]["reason"], "exit 3");
}

#[test]
fn reload_answers_once_removed_jobs_are_gone_and_changed_ones_restarted() {
    // `slow` takes about a second to stop, so an answer sent before the reload is
    // applied would find it still `stopping`.
    let before = jobs(
        r#"
[job.slow]
command = ["sh", "-c", "trap 'sleep 1; exit 0' TERM; sleep 300 & wait"]

[job.kept]
command = ["sleep", "300"]

[job.edited]
command = ["sh", "-c", "trap 'sleep 1; exit 0' TERM; sleep 300 & wait", "v1"]
"#,
    );
    let d = Daemon::start(&before);
    for name in ["slow", "kept", "edited"] {
        d.wait_job(name, "running", |j| j.state == JobState::Running);
    }
    let kept_pid = d.job("kept").pid;
    let edited_pid = d.job("edited").pid;
    let after = jobs(
        r#"
[job.kept]
command = ["sleep", "300"]

[job.edited]
command = ["sh", "-c", "trap 'sleep 1; exit 0' TERM; sleep 300 & wait", "v2"]
"#,
    );
    std::fs::write(&d.config, after).expect("rewrite the job file");

    let out = d.ctl_ok(&["reload"]);
    assert!(out.contains("removed    slow"), "{out}");
    assert!(out.contains("changed    edited"), "{out}");
    // Right after the answer, the table is the new one.
    let status: Value =
        serde_json::from_str(&d.ctl_ok(&["--json", "status"])).expect("status JSON");
    let names: Vec<&str> = status["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter_map(|j| j["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["kept", "edited"],
        "the removed job is gone: {status}"
    );
    let edited = &status["jobs"][1];
    assert!(
        edited["state"] == "starting" || edited["state"] == "running",
        "the changed job is respawned: {edited}"
    );
    assert_ne!(edited["pid"].as_u64(), edited_pid.map(u64::from));
    assert_eq!(status["jobs"][0]["pid"].as_u64(), kept_pid.map(u64::from));
}
