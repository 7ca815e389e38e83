//! supctl (README, "supctl") against a live daemon: each command, its output, and its exit code
//! (0 done, 1 failed or a waited job did not succeed, 2 usage, 3 unreachable).

use crate::support::*;
use serde_json::Value;

const JOBS: &str = r#"
[job.web]
command = ["sleep", "30"]
group = "front"

[job.ok]
command = ["true"]
autostart = false

[job.bad]
command = ["sh", "-c", "exit 3"]
autostart = false

[job.helper]
command = ["sleep", "30"]
daemon = true
"#;

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "--json output is not one JSON document ({e}): {}",
            text(out)
        )
    })
}

#[test]
fn status_prints_a_table_and_json() {
    let d = Daemon::start(&jobs(JOBS));
    let pid = d.running_pid("web");
    let out = d.ctl_ok(&["status"]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(header, ["NAME", "GROUP", "STATE", "PID", "UPTIME/EXIT"]);
    let web = lines.next().expect("web row");
    let cols: Vec<&str> = web.split_whitespace().collect();
    assert_eq!(&cols[..4], ["web", "front", "running", &pid.to_string()]);
    assert_eq!(out.lines().count(), 5, "{out}");
    // Columns are aligned: every row's STATE column starts at the same offset.
    let at = out
        .lines()
        .next()
        .and_then(|h| h.find("STATE"))
        .expect("STATE");
    for l in out.lines().skip(1) {
        assert_eq!(l.as_bytes()[at - 1], b' ', "{out}");
        assert!(l[at..].starts_with(|c: char| c.is_alphabetic()), "{out}");
    }
    // Selected by name and by group; --json parses.
    let out = d.ctl(&["--json", "status", "--group", "front"]);
    assert_eq!(code(&out), Some(0));
    let v = json_of(&out);
    assert_eq!(v["jobs"][0]["name"], "web");
    assert_eq!(v["jobs"].as_array().map(Vec::len), Some(1));
    assert_eq!(code(&d.ctl(&["status", "nope"])), Some(1));
}

#[test]
fn start_terminate_stop_restart_kill_and_is_alive() {
    let d = Daemon::start(&jobs(JOBS));
    let pid = d.running_pid("web");

    let out = d.ctl(&["is-alive", "web"]);
    assert_eq!((code(&out), text(&out).trim()), (Some(0), "running"));

    let out = d.ctl_ok(&["terminate", "web"]);
    assert!(out.contains("web") && out.contains("-15"), "{out}");
    assert!(!alive(pid));
    let out = d.ctl(&["is-alive", "web"]);
    assert_eq!((code(&out), text(&out).trim()), (Some(1), "stopped"));

    d.ctl_ok(&["start", "web"]);
    let pid = d.running_pid("web");
    // `stop` is an alias of terminate; --json gives the jobs.
    let out = d.ctl(&["--json", "stop", "web", "--signal", "INT"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let v = json_of(&out);
    assert_eq!(v["jobs"][0]["exitcode"], -2);
    assert!(!alive(pid));

    // --no-wait returns at once.
    d.ctl_ok(&["start", "--group", "front"]);
    let pid = d.running_pid("web");
    let out = d.ctl_ok(&["terminate", "--no-wait", "web"]);
    assert!(out.starts_with("web: "), "{out}");
    d.wait_job("web", "stops", |j| j.state.as_str() == "stopped");
    assert!(!alive(pid));

    d.ctl_ok(&["start", "web"]);
    let old = d.running_pid("web");
    let out = d.ctl(&["--json", "restart", "web"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let new = json_of(&out)["jobs"][0]["pid"].as_u64().expect("pid") as u32;
    assert_ne!(old, new);
    assert!(!alive(old) && alive(new));

    let out = d.ctl_ok(&["kill", "web", "--signal", "KILL"]);
    assert!(out.contains(&format!("sent SIGKILL to pid {new}")), "{out}");
    let j = d.wait_job("web", "dies", |j| j.state.as_str() == "exited");
    assert_eq!(j.exitcode, Some(-9));
}

#[test]
fn wait_exits_0_only_when_every_waited_job_succeeded() {
    let d = Daemon::start(&jobs(JOBS));
    d.ctl_ok(&["start", "ok"]);
    let out = d.ctl(&["wait", "ok"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    assert!(text(&out).contains("exit 0"), "{}", text(&out));

    d.ctl_ok(&["start", "bad"]);
    let out = d.ctl(&["wait", "bad", "ok"]);
    assert_eq!(code(&out), Some(1), "a failed job makes wait exit 1");
    assert!(text(&out).contains("exit 3"), "{}", text(&out));
    let out = d.ctl(&["--json", "wait", "bad"]);
    assert_eq!(code(&out), Some(1));
    assert_eq!(json_of(&out)["success"], false);

    // A running job: --timeout gives up with exit 1 and says so.
    let out = d.ctl(&["wait", "web", "--timeout", "200ms"]);
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(text(&out).contains("timed out"), "{}", text(&out));
}

#[test]
fn wait_all_leaves_out_daemon_jobs() {
    let d = Daemon::start(&jobs(
        r#"
[job.one]
command = ["true"]

[job.helper]
command = ["sleep", "30"]
daemon = true
"#,
    ));
    let out = d.ctl(&["--json", "wait"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let v = json_of(&out);
    assert_eq!(v["jobs"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["jobs"][0]["name"], "one");
    assert!(d.job("helper").alive);
    // --group leaves them out too; named, a daemon job is waited for.
    let out = d.ctl(&["--json", "wait", "--group", "helper"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    assert_eq!(json_of(&out)["jobs"], serde_json::json!([]));
    let out = d.ctl(&["wait", "helper", "--timeout", "100ms"]);
    assert_eq!(code(&out), Some(1), "{}", text(&out));
}

#[test]
fn add_remove_reload_and_ping() {
    let d = Daemon::start(&jobs(JOBS));
    let out = d.ctl(&[
        "add",
        "extra",
        "--group",
        "dyn",
        "--restart",
        "on-failure",
        "--",
        "sleep",
        "30",
    ]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let pid = d.running_pid("extra");
    assert_eq!(d.job("extra").group, "dyn");
    // A name clash is refused with exit 1.
    let out = d.ctl(&["add", "extra", "--", "true"]);
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(text(&out).contains("extra"), "{}", text(&out));

    let out = d.ctl_ok(&["reload"]);
    assert!(out.contains("unchanged  web, ok, bad, helper"), "{out}");
    assert_eq!(d.job("extra").pid, Some(pid), "reload keeps dynamic jobs");

    let out = d.ctl_ok(&["remove", "extra"]);
    assert!(out.contains("removed extra"), "{out}");
    assert!(!alive(pid));
    assert_eq!(code(&d.ctl(&["remove", "extra"])), Some(1));

    let out = d.ctl_ok(&["ping"]);
    assert!(out.contains(&format!("pid {}", d.pid())), "{out}");
    let out = d.ctl(&["--json", "ping"]);
    assert_eq!(json_of(&out)["pid"], d.pid());
}

#[test]
fn shutdown_waits_for_the_daemon_to_exit() {
    let mut d = Daemon::start(&jobs(JOBS));
    let web = d.running_pid("web");
    let out = d.ctl_ok(&["shutdown"]);
    assert!(out.contains("has shut down"), "{out}");
    assert_eq!(d.wait_exit(), 0);
    assert!(!alive(web));
}

#[test]
fn usage_errors_exit_2() {
    let d = Daemon::start(&jobs(JOBS));
    for args in [
        &["frobnicate"][..],
        &["terminate"],
        &["start"],
        &["kill", "web"],
        &["wait", "--timeout", "soon"],
        &["add", "x"],
    ] {
        let out = d.ctl(args);
        assert_eq!(code(&out), Some(2), "{args:?}: {}", text(&out));
    }
    assert!(d.job("web").alive);
}

#[test]
fn request_failures_exit_1() {
    let d = Daemon::start(&jobs(JOBS));
    d.running_pid("web");
    for args in [
        &["terminate", "web", "nope"][..],
        &["start", "nope"],
        &["restart", "--group", "nope"],
        &["is-alive", "nope"],
    ] {
        let out = d.ctl(args);
        assert_eq!(code(&out), Some(1), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("nope"), "{args:?}: {}", text(&out));
    }
    assert_eq!(d.job("web").state.as_str(), "running");
}

#[test]
fn an_unreachable_daemon_exits_3_naming_the_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("nobody-home.sock");
    let out = std::process::Command::new(bin("supctl"))
        .arg("--socket")
        .arg(&sock)
        .arg("status")
        .output()
        .expect("run supctl");
    assert_eq!(code(&out), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains(&sock.display().to_string()),
        "{}",
        text(&out)
    );
    // Via $SUPERVISORD_SOCKET too.
    let out = std::process::Command::new(bin("supctl"))
        .env("SUPERVISORD_SOCKET", &sock)
        .arg("ping")
        .output()
        .expect("run supctl");
    assert_eq!(code(&out), Some(3), "{}", text(&out));
    assert!(text(&out).contains("nobody-home.sock"));
}

#[test]
fn events_prints_one_json_line_per_state_change() {
    let d = Daemon::start(&jobs(JOBS));
    d.running_pid("web");
    let mut events = std::process::Command::new(bin("supctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["--json", "events"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run supctl events");
    let stdout = events.stdout.take().expect("stdout");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    // First the snapshot, then the changes.
    let snapshot: Value = serde_json::from_str(&lines.next().expect("snapshot").expect("line"))
        .expect("snapshot is JSON");
    assert_eq!(snapshot["jobs"].as_array().map(Vec::len), Some(4));
    d.ctl_ok(&["start", "ok"]);
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let v: Value = serde_json::from_str(&line.expect("line")).expect("an event is JSON");
        seen.push(format!(
            "{} {}->{}",
            v["name"].as_str().unwrap_or("?"),
            v["from"].as_str().unwrap_or("?"),
            v["to"].as_str().unwrap_or("?")
        ));
        if v["name"] == "ok" && v["to"] == "exited" {
            assert_eq!(v["exitcode"], 0);
            assert!(v["at"].as_str().is_some_and(|t| t.ends_with('Z')));
            break;
        }
    }
    // (`ok` may count as running first on a loaded machine.)
    assert_eq!(
        seen.first().map(String::as_str),
        Some("ok stopped->starting"),
        "{seen:?}"
    );
    assert!(seen.len() <= 3, "{seen:?}");
    let _ = events.kill();
    let _ = events.wait();
}

/// `terminate --no-wait` answers at once with the job in `stopping`: the job here ignores
/// SIGTERM, so a terminate that waited would take its whole 30 s stop_timeout.
#[test]
fn terminate_no_wait_answers_while_the_job_is_still_stopping() {
    let d = Daemon::start(&jobs(
        r#"
[job.stubborn]
command = ["sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.1; done"]
stop_timeout = "30s"
"#,
    ));
    let pid = d.running_pid("stubborn");
    let t0 = std::time::Instant::now();
    let out = d.ctl(&["terminate", "--no-wait", "stubborn"]);
    let took = t0.elapsed();
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "stubborn: stopping\n");
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    let j = d.job("stubborn");
    assert_eq!((j.state.as_str(), j.alive), ("stopping", true));
    assert!(alive(pid));
    // --json: the same answer, as the jobs.
    let out = d.ctl(&["--json", "terminate", "--no-wait", "stubborn"]);
    assert_eq!(json_of(&out)["jobs"][0]["state"], "stopping");
    d.ctl_ok(&["kill", "stubborn", "--signal", "KILL"]);
    d.wait_job("stubborn", "ends", |j| !j.alive);
}

/// `add --no-start` defines the job without starting it; `start` then runs it.
#[test]
fn add_no_start_defines_a_stopped_job() {
    let d = Daemon::start(&jobs(""));
    let out = d.ctl(&["add", "later", "--no-start", "--", "sleep", "30"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let j = d.job("later");
    assert_eq!((j.state.as_str(), j.pid), ("stopped", None), "{j:?}");
    let row = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("later"))
        .map(str::to_owned);
    assert!(
        row.as_deref().is_some_and(|r| r.contains("stopped")),
        "{}",
        text(&out)
    );
    d.ctl_ok(&["start", "later"]);
    d.running_pid("later");
}
