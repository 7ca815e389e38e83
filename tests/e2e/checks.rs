//! Ready and health checks with real processes and sockets: a listener that opens late,
//! an HTTP server that starts failing, an exec check that hangs, a notify job, a missed
//! watchdog.

use crate::support::*;
use protocol::{Cause, Health, JobState};
use serde_json::{json, Value};
use std::time::Duration;

/// A port nothing listens on (right now).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A python3 listener on `port` that opens after `delay` seconds.
fn late_listener(port: u16, delay: f64) -> String {
    format!(
        "[\"python3\", \"-c\", \"import socket,time; time.sleep({delay}); s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(300)\"]"
    )
}

#[test]
fn a_listener_that_opens_late_is_starting_until_its_port_answers() {
    let port = free_port();
    let d = Daemon::start(&jobs(&format!(
        r#"
[job.db]
command = {cmd}
[job.db.ready]
tcp = "127.0.0.1:{port}"
interval = "100ms"
timeout = "20s"

[job.api]
command = ["sleep", "300"]
depends_on = ["db"]
"#,
        cmd = late_listener(port, 1.5)
    )));
    let db = d.wait_job("db", "starting", |j| j.state == JobState::Starting);
    assert!(db.pid.is_some());
    let api = d.job("api");
    assert_eq!(api.state, JobState::Waiting);
    assert_eq!(api.reason.as_deref(), Some("waiting for db (running)"));
    // start_secs (100ms) has long passed: only the port makes it running.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.job("db").state, JobState::Starting);
    d.wait_job("db", "running", |j| j.state == JobState::Running);
    d.wait_job("api", "running", |j| j.state == JobState::Running);
}

#[test]
fn not_ready_within_the_timeout_is_a_failed_start() {
    let port = free_port();
    let d = Daemon::start(&jobs(&format!(
        r#"
[job.db]
command = ["sleep", "300"]
restart = "on-failure"
max_restarts = 1
backoff = "100ms"
[job.db.ready]
tcp = "127.0.0.1:{port}"
interval = "100ms"
timeout = "500ms"
"#
    )));
    let db = d.wait_job("db", "fatal", |j| j.state == JobState::Fatal);
    assert_eq!(db.cause, Some(Cause::NotReady));
    assert_eq!(db.reason.as_deref(), Some("not ready within 500ms"));
    assert_eq!(db.restarts, 1, "one restart after the first failed start");
}

#[test]
fn an_http_server_that_starts_failing_turns_unhealthy_and_is_restarted() {
    let port = free_port();
    let d = Daemon::prepare("");
    let www = d.dir.path().join("www");
    std::fs::create_dir(&www).expect("mkdir");
    std::fs::write(www.join("ok"), "fine").expect("ok");
    std::fs::write(
        &d.config,
        jobs(&format!(
            r#"
[job.api]
command = ["python3", "-m", "http.server", "--bind", "127.0.0.1", "{port}"]
cwd = "www"
[job.api.ready]
http = "http://127.0.0.1:{port}/ok"
interval = "100ms"
[job.api.health]
http = "http://127.0.0.1:{port}/ok"
interval = "200ms"
retries = 2
"#
        )),
    )
    .expect("write");
    let d = d.launch(&[]);
    let mut conn = d.conn();
    conn.call("subscribe", Value::Null);
    let api = d.wait_job("api", "healthy", |j| j.health == Some(Health::Healthy));
    assert_eq!(api.health_output.as_deref(), Some("HTTP 200 OK"));
    std::fs::remove_file(www.join("ok")).expect("rm");
    // Two failures in a row: unhealthy, and restarted (cause `unhealthy`).
    let ended = wait_until("the unhealthy restart", DEADLINE, || {
        let n = conn.recv_within(Duration::from_millis(200))?;
        let p = &n["params"];
        (p["to"] == "stopped").then(|| p.clone())
    });
    assert_eq!(ended["cause"], "unhealthy", "{ended}");
    let reason = ended["reason"].as_str().unwrap_or_default().to_owned();
    assert_eq!(reason, "unhealthy (2 failed: HTTP 404 Not Found)");
    // The new run starts with no result: `unknown`, not the last run's `unhealthy`.
    let next = wait_until("the new run's health", DEADLINE, || {
        let n = conn.recv_within(Duration::from_millis(200))?;
        (n["method"] == "health").then(|| n["params"]["health"].clone())
    });
    assert_eq!(next, "unknown");
    let api = d.wait_job("api", "the new run", |j| j.restarts == 1 && j.alive);
    assert_eq!(api.state, JobState::Starting, "its ready file is gone");
    assert_eq!(api.health, Some(Health::Unknown));
    // Never in the job's logs.
    let logs = d.ctl_ok(&["logs", "api"]);
    assert!(!logs.contains("supervisord-health"), "{logs}");
    let api = d.wait_job("api", "restarted", |j| j.restarts == 1 && j.alive);
    assert_eq!(api.cause, None);
}

#[test]
fn an_exec_check_that_hangs_is_killed_and_counts_as_failed() {
    let mark = format!("3000.{}", std::process::id());
    let d = Daemon::start(&jobs(&format!(
        r#"
[job.svc]
command = ["sleep", "300"]
[job.svc.health]
exec = ["sh", "-c", "sleep {mark}"]
interval = "300ms"
timeout = "300ms"
retries = 1
on_unhealthy = "none"
"#
    )));
    let svc = d.wait_job("svc", "unhealthy", |j| j.health == Some(Health::Unhealthy));
    let out = svc.health_output.expect("output");
    assert!(out.contains("timed out after 300ms"), "{out}");
    assert_eq!(
        svc.state,
        JobState::Running,
        "on_unhealthy = none leaves it running"
    );
    let table = d.ctl_ok(&["status", "svc"]);
    assert!(table.contains("unhealthy ("), "{table}");
    // The hung check and its group are gone (a check in flight may still be running).
    std::thread::sleep(Duration::from_millis(100));
    wait_until("hung checks to be killed", DEADLINE, || {
        (pids_with_arg(&mark).len() <= 2).then_some(())
    });
    d.ctl_ok(&["terminate", "svc"]);
    wait_until("no check left", DEADLINE, || {
        pids_with_arg(&mark).is_empty().then_some(())
    });
}

const NOTIFY: &str = "import os,socket,time,sys\ns=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.connect(os.environ['NOTIFY_SOCKET'])\ns.send(b'STATUS=warming up')\ntime.sleep(1)\ns.send(b'READY=1\\nSTATUS=serving 3 clients')\n";

#[test]
fn a_notify_job_is_running_when_it_says_ready_and_its_status_is_the_reason() {
    let script = format!("{NOTIFY}time.sleep(300)\n");
    let d = Daemon::prepare("");
    std::fs::write(d.dir.path().join("app.py"), script).expect("script");
    std::fs::write(
        &d.config,
        jobs(
            r#"
[job.app]
command = ["python3", "app.py"]
[job.app.ready]
notify = true
timeout = "20s"
"#,
        ),
    )
    .expect("write");
    let d = d.launch(&[]);
    let app = d.wait_job("app", "warming up", |j| {
        j.reason.as_deref() == Some("warming up")
    });
    assert_eq!(app.state, JobState::Starting);
    let app = d.wait_job("app", "running", |j| j.state == JobState::Running);
    assert_eq!(app.reason.as_deref(), Some("serving 3 clients"));
}

#[test]
fn a_missed_watchdog_restarts_the_job_with_cause_watchdog() {
    let script = format!("{NOTIFY}s.send(b'WATCHDOG=1')\ntime.sleep(300)\n");
    let d = Daemon::prepare("");
    std::fs::write(d.dir.path().join("app.py"), script).expect("script");
    std::fs::write(
        &d.config,
        jobs(
            r#"
[job.app]
command = ["python3", "app.py"]
[job.app.ready]
notify = true
watchdog = "700ms"
"#,
        ),
    )
    .expect("write");
    let d = d.launch(&[]);
    let mut conn = d.conn();
    conn.call("subscribe", json!(null));
    let ended = wait_until("the watchdog", DEADLINE, || {
        let n = conn.recv_within(Duration::from_millis(200))?;
        let p = &n["params"];
        (p["to"] == "stopped").then(|| p.clone())
    });
    assert_eq!(ended["cause"], "watchdog", "{ended}");
    assert_eq!(ended["reason"], "no WATCHDOG=1 within 700ms");
    d.wait_job("app", "restarted", |j| j.restarts == 1 && j.alive);
}

/// A job that says `warming up`, waits for the file `go` in its folder, then says
/// `listening on 8080` on stderr (partly, then the rest of the line) and stays up.
const LOG_READY: &str = r#"["sh", "-c", "echo warming up; while [ ! -e go ]; do sleep 0.05; done; printf 'listening on ' >&2; sleep 0.2; echo 8080 >&2; exec sleep 300"]"#;

#[test]
fn a_log_ready_check_makes_the_job_running_at_its_line_on_either_stream() {
    let d = Daemon::start(&jobs(&format!(
        r#"
[job.web]
command = {LOG_READY}
restart = "always"
[job.web.ready]
log = "^listening on [0-9]+$"
timeout = "30s"

[job.quiet]
command = {LOG_READY}
stdout = "inherit"
stderr = "stdout"
[job.quiet.ready]
log = "listening"
timeout = "30s"
"#
    )));
    let web = d.wait_job("web", "warming up", |j| j.state == JobState::Starting);
    wait_until("the first line in the log", DEADLINE, || {
        d.ctl_ok(&["logs", "web"])
            .contains("warming up")
            .then_some(())
    });
    // start_secs (100ms) has long passed: only the line makes it running.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(d.job("web").state, JobState::Starting);
    assert_eq!(d.job("quiet").state, JobState::Starting);
    std::fs::write(d.dir.path().join("go"), "").expect("go");
    let running = d.wait_job("web", "running", |j| j.state == JobState::Running);
    assert_eq!(running.pid, web.pid, "the same run");
    d.wait_job("quiet", "running", |j| j.state == JobState::Running);
    // The line went on to the log as before (stderr's log for web, supervisord's
    // stdout for quiet).
    let err = d.ctl_ok(&["logs", "web", "--stderr"]);
    assert!(err.contains("listening on 8080"), "{err}");
    wait_until("quiet's line on supervisord's stdout", DEADLINE, || {
        d.stdout()
            .contains("quiet | listening on 8080")
            .then_some(())
    });
    // A new run is matched again: `go` is still there, so it is ready at its line.
    d.ctl_ok(&["restart", "web"]);
    let again = d.wait_job("web", "running again", |j| {
        j.state == JobState::Running && j.pid != web.pid
    });
    assert_eq!(again.restarts, 1);
}

#[test]
fn a_log_ready_check_whose_line_never_comes_is_not_ready() {
    let d = Daemon::start(&jobs(&format!(
        r#"
[job.web]
command = {LOG_READY}
[job.web.ready]
log = "^listening on [0-9]+$"
timeout = "700ms"
"#
    )));
    let web = d.wait_job("web", "fatal", |j| j.state == JobState::Fatal);
    assert_eq!(web.cause, Some(Cause::NotReady));
}

#[test]
fn a_log_ready_check_on_output_that_is_not_captured_is_a_load_error() {
    let d = Daemon::prepare(&jobs(
        r#"
[job.web]
command = ["sleep", "300"]
stdout = "null"
stderr = "null"
[job.web.ready]
log = "listening"
"#,
    ));
    let out = d.run_once();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("jobs.toml:10:1")
            && err.contains("a `log` ready check reads the job's captured output"),
        "{err}"
    );
}

#[test]
fn health_changes_are_health_notifications_on_subscribe() {
    let d = Daemon::start(&jobs(
        r#"
[job.app]
command = ["sleep", "300"]
group = "backend"
[job.app.health]
exec = ["sh", "-c", "echo checked; test -e ok"]
interval = "200ms"
retries = 2
on_unhealthy = "none"
"#,
    ));
    let mut conn = d.conn();
    conn.call("subscribe", json!(null));
    // Every notification, raw, until `pred` matches one.
    let mut seen: Vec<Value> = Vec::new();
    let mut until = |what: &str, pred: &dyn Fn(&Value) -> bool| -> Value {
        wait_until(what, DEADLINE, || {
            let n = conn.recv_within(Duration::from_millis(200))?;
            seen.push(n.clone());
            pred(&n).then_some(n)
        })
    };
    let health_is =
        |h: &'static str| move |n: &Value| n["method"] == "health" && n["params"]["health"] == h;
    // No result yet while the check fails inside `retries`: then unhealthy.
    let bad = until("unhealthy", &health_is("unhealthy"));
    let p = bad["params"].as_object().expect("params");
    let mut keys: Vec<&str> = p.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["at", "group", "health", "name", "output"], "{bad}");
    assert_eq!(bad["params"]["name"], "app");
    assert_eq!(bad["params"]["group"], "backend");
    assert_eq!(bad["params"]["output"], "exit 1: checked", "{bad}");
    assert!(bad.get("id").is_none(), "a notification has no id: {bad}");
    assert_eq!(bad["jsonrpc"], "2.0");
    std::fs::write(d.dir.path().join("ok"), "").expect("ok");
    let good = until("healthy", &health_is("healthy"));
    assert_eq!(good["params"]["output"], "checked", "{good}");
    // Only changes are sent: one check every 200ms, but one notification per change.
    std::thread::sleep(Duration::from_millis(700));
    while let Some(n) = conn.recv_within(Duration::from_millis(50)) {
        seen.push(n);
    }
    let healths: Vec<&str> = seen
        .iter()
        .filter(|n| n["method"] == "health")
        .filter_map(|n| n["params"]["health"].as_str())
        .collect();
    assert_eq!(healths, ["unhealthy", "healthy"], "{seen:?}");
    // The run ends: health is `unknown` again, after the state change that ended it.
    d.ctl_ok(&["terminate", "app"]);
    let mut until = |what: &str, pred: &dyn Fn(&Value) -> bool| -> Value {
        wait_until(what, DEADLINE, || {
            let n = conn.recv_within(Duration::from_millis(200))?;
            pred(&n).then_some(n)
        })
    };
    until("stopping", &|n: &Value| n["params"]["to"] == "stopping");
    let unknown = until("unknown", &health_is("unknown"));
    assert_eq!(unknown["params"]["output"], Value::Null, "{unknown}");
    // `supctl events` shows them too.
    let (mut child, lines) = d.ctl_lines(&["events"]);
    d.ctl_ok(&["start", "app"]);
    let line = wait_until("an events line about health", DEADLINE, || {
        let l = lines.recv_timeout(Duration::from_millis(200)).ok()?;
        l.contains("app health").then_some(l)
    });
    // `ok` is there, so the new run's first result is a pass.
    assert!(line.ends_with("app health healthy (checked)"), "{line}");
    let _ = child.kill();
    let _ = child.wait();
}

/// supervisord reaps the orphans it adopts whenever a child ends; an exec check is its
/// child too, and must not be reaped from under the check (its wait would fail with "No
/// child processes"). A job that keeps orphaning short-lived processes makes those
/// reaps frequent while its exec health check runs every 100 ms.
#[test]
fn exec_checks_are_not_reaped_as_orphans() {
    let d = Daemon::start(&jobs(
        r#"
[job.app]
command = ["sh", "-c", "while :; do (sleep 0.01 &); sleep 0.02; done"]
[job.app.health]
exec = ["sh", "-c", "sleep 0.05; echo fine"]
interval = "100ms"
timeout = "5s"
retries = 1
on_unhealthy = "none"
"#,
    ));
    let mut conn = d.conn();
    conn.call("subscribe", json!(null));
    d.wait_job("app", "healthy", |j| j.health == Some(Health::Healthy));
    // About 30 checks and 100 orphans: no check may fail.
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < until {
        if let Some(n) = conn.recv_within(Duration::from_millis(100)) {
            assert!(
                !(n["method"] == "health" && n["params"]["health"] == "unhealthy"),
                "a check failed: {n}"
            );
        }
    }
    let app = d.job("app");
    assert_eq!(app.health, Some(Health::Healthy));
    assert_eq!(app.health_output.as_deref(), Some("fine"));
}
