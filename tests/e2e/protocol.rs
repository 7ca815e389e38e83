//! The control protocol (docs/protocol.md) over a raw connection: every method, every error code,
//! the framing rules, and the Job object's fields.

use crate::support::*;
use serde_json::{json, Value};
use std::time::Duration;

fn assert_job_fields(job: &Value) {
    let obj = job.as_object().expect("a Job is an object");
    for f in JOB_FIELDS {
        assert!(obj.contains_key(f), "Job lacks {f:?}: {job}");
    }
}

const TWO_SLEEPERS: &str = r#"
[job.a]
command = ["sleep", "30"]

[job.b]
command = ["sleep", "30"]
group = "g"

[job.quick]
command = ["true"]
autostart = false

[job.bg]
command = ["sleep", "30"]
daemon = true
autostart = false
"#;

#[test]
fn ping_answers_version_pid_and_uptime() {
    let d = Daemon::start(&jobs(""));
    let r = d.ok("ping", Value::Null);
    assert_eq!(r["pid"], json!(d.pid()));
    assert!(r["version"].as_str().is_some_and(|v| !v.is_empty()), "{r}");
    assert!(r["uptime_ms"].as_u64().is_some(), "{r}");
}

#[test]
fn every_job_object_has_every_field_in_every_state() {
    let d = Daemon::start(&jobs(TWO_SLEEPERS));
    d.running_pid("a");
    // running, stopped (never started), daemon, and an exited one.
    d.ok("start", json!({ "names": ["quick"] }));
    d.wait_job("quick", "exits", |j| j.state.as_str() == "exited");
    let all = d.ok("status", Value::Null);
    let jobs = all["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 4);
    for j in jobs {
        assert_job_fields(j);
    }
    let a = &jobs[0];
    assert_eq!(
        (a["state"].as_str(), a["alive"].as_bool()),
        (Some("running"), Some(true))
    );
    assert!(a["pid"].as_u64().is_some() && a["uptime_ms"].as_u64().is_some());
    assert!(a["started_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(a["exitcode"], Value::Null);
    let bg = &jobs[3];
    assert_eq!(
        (bg["state"].as_str(), bg["daemon"].as_bool(), &bg["pid"]),
        (Some("stopped"), Some(true), &Value::Null)
    );
    // status by group and by name; names keep table order.
    let g = d.ok("status", json!({ "group": "g" }));
    assert_eq!(g["jobs"][0]["name"], "b");
    assert_eq!(g["jobs"].as_array().map(Vec::len), Some(1));
    // Every method that answers with jobs has full Job objects.
    let t = d.ok("terminate", json!({ "names": ["a"] }));
    assert_job_fields(&t["jobs"][0]);
    assert_eq!(t["jobs"][0]["exitcode"], -15);
    assert_eq!(t["jobs"][0]["signal"], "SIGTERM");
    assert_eq!(t["jobs"][0]["state"], "stopped");
}

#[test]
fn start_terminate_restart_kill_and_wait() {
    let d = Daemon::start(&jobs(
        r#"
[job.w]
command = ["sleep", "30"]
autostart = false
"#,
    ));
    assert_eq!(d.job("w").state.as_str(), "stopped");
    let r = d.ok("start", json!({ "names": ["w"] }));
    let pid = r["jobs"][0]["pid"].as_u64().expect("started has a pid") as u32;
    assert!(alive(pid));
    // Starting a live job is not an error and changes nothing.
    let again = d.ok("start", json!({ "names": ["w"] }));
    assert_eq!(again["jobs"][0]["pid"], json!(pid));

    // terminate without wait answers at once, with the job in `stopping`: the answer is
    // built when the signal is sent, before the supervisor hears of the exit.
    let r = d.ok("terminate", json!({ "names": ["w"], "wait": false }));
    assert_eq!(r["jobs"][0]["state"], "stopping", "{r}");
    assert_eq!(r["jobs"][0]["alive"], true, "{r}");
    let j = d.wait_job("w", "stops", |j| j.state.as_str() == "stopped");
    assert_eq!(
        (j.exitcode, j.signal.as_deref()),
        (Some(-15), Some("SIGTERM"))
    );
    assert!(!alive(pid));

    // terminate with another signal.
    d.ok("start", json!({ "names": ["w"] }));
    let r = d.ok("terminate", json!({ "names": ["w"], "signal": "INT" }));
    assert_eq!(r["jobs"][0]["exitcode"], -2);
    assert_eq!(r["jobs"][0]["signal"], "SIGINT");

    // restart: a new pid, restarts counted.
    let r = d.ok("start", json!({ "names": ["w"] }));
    let old = r["jobs"][0]["pid"].as_u64().expect("pid");
    let r = d.ok("restart", json!({ "names": ["w"] }));
    let new = r["jobs"][0]["pid"].as_u64().expect("restarted has a pid");
    assert_ne!(old, new);
    assert!(r["jobs"][0]["alive"].as_bool().expect("alive"));
    assert!(!alive(old as u32));

    // kill: the signal is sent; the job ends on its own terms (restart = never: exited).
    let r = d.ok("kill", json!({ "names": ["w"], "signal": "KILL" }));
    assert_eq!(r["jobs"][0]["pid"], json!(new));
    let j = d.wait_job("w", "is killed", |j| j.state.as_str() == "exited");
    assert_eq!((j.exitcode, j.success), (Some(-9), Some(false)));

    // wait on a settled job answers at once, with success.
    let r = d.ok("wait", json!({ "names": ["w"] }));
    assert_eq!(r["success"], false);
    assert_eq!(r["jobs"][0]["exitcode"], -9);
}

#[test]
fn wait_blocks_until_settled_and_times_out_with_1002() {
    let d = Daemon::start(&jobs(
        r#"
[job.slow]
command = ["sleep", "30"]

[job.short]
command = ["sh", "-c", "read x; exit 0"]
stdout = "null"
"#,
    ));
    let r = d.rpc("wait", json!({ "names": ["slow"], "timeout_ms": 150 }));
    assert_eq!(error_code(&r), 1002, "{r}");
    // The job is untouched by a timed-out wait.
    assert!(d.job("slow").alive);

    // A wait that does settle: `short` ends when its stdin... is /dev/null, so at once.
    let r = d.ok("wait", json!({ "names": ["short"], "timeout_ms": 10_000 }));
    assert_eq!(r["success"], true);
    assert_eq!(r["jobs"][0]["exitcode"], 0);
}

#[test]
fn a_wait_does_not_hold_back_a_status_on_the_same_connection() {
    let d = Daemon::start(&jobs(TWO_SLEEPERS));
    let mut c = d.conn();
    let wait_id = c.send("wait", json!({ "names": ["a"] }));
    let status_id = c.send("status", Value::Null);
    let first = c.recv().expect("an answer");
    assert_eq!(
        first["id"],
        json!(status_id),
        "status answered first: {first}"
    );
    // Now end `a`: the wait answers on the same connection.
    d.ok("terminate", json!({ "names": ["a"] }));
    let w = c.response(wait_id);
    assert_eq!(w["result"]["jobs"][0]["exitcode"], -15, "{w}");
    assert_eq!(w["result"]["success"], false);
}

#[test]
fn add_remove_reload_over_the_socket() {
    let d = Daemon::start(&jobs(TWO_SLEEPERS));
    let r = d.ok(
        "add",
        json!({ "name": "dyn", "job": { "command": ["sleep", "30"], "group": "extra" } }),
    );
    assert_job_fields(&r["jobs"][0]);
    assert_eq!(r["jobs"][0]["group"], "extra");
    let pid = d.running_pid("dyn");
    let r = d.ok("remove", json!({ "names": ["dyn"] }));
    assert_eq!(r["jobs"][0]["name"], "dyn");
    assert_eq!(
        r["jobs"][0]["exitcode"], -15,
        "removed after being stopped: {r}"
    );
    assert!(!alive(pid));
    assert_eq!(
        error_code(&d.rpc("status", json!({ "names": ["dyn"] }))),
        1001
    );

    let r = d.ok("reload", Value::Null);
    assert_eq!(r["unchanged"], json!(["a", "b", "quick", "bg"]), "{r}");
    for k in ["added", "removed", "changed"] {
        assert_eq!(r[k], json!([]), "{r}");
    }
}

#[test]
fn shutdown_stops_jobs_and_the_daemon_exits_0() {
    let mut d = Daemon::start(&jobs(TWO_SLEEPERS));
    let a = d.running_pid("a");
    let r = d.ok("shutdown", Value::Null);
    assert_eq!(r, json!({}));
    assert_eq!(d.wait_exit(), 0);
    assert!(!alive(a));
    assert!(!d.socket.exists());
}

#[test]
fn shutdown_drain_lets_jobs_finish_and_refuses_new_work_with_1004() {
    let mut d = Daemon::start(&jobs(
        r#"
[job.worker]
command = ["sh", "-c", "read line; exit 0"]
stdout = "null"

[job.slow]
command = ["sleep", "30"]
"#,
    ));
    let slow = d.running_pid("slow");
    let r = d.ok("shutdown", json!({ "drain": true }));
    assert_eq!(r, json!({}));
    // Draining: the slow job is left alone, new work is refused.
    let r = d.rpc("start", json!({ "names": ["worker"] }));
    assert_eq!(error_code(&r), 1004, "{r}");
    for method in ["restart", "reload"] {
        let params = if method == "reload" {
            Value::Null
        } else {
            json!({ "names": ["slow"] })
        };
        assert_eq!(error_code(&d.rpc(method, params)), 1004, "{method}");
    }
    let add = d.rpc(
        "add",
        json!({ "name": "x", "job": { "command": ["true"] } }),
    );
    assert_eq!(error_code(&add), 1004);
    assert!(alive(slow), "a drain does not stop non-daemon jobs");
    assert_eq!(d.job("slow").state.as_str(), "running");
    // Status still works during the drain; ending the job ends the daemon.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(slow as i32),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .expect("signal slow");
    assert_eq!(d.wait_exit(), 0);
}

#[test]
fn bad_json_is_32700_and_the_connection_stays_usable() {
    let d = Daemon::start(&jobs(""));
    let mut c = d.conn();
    c.send_raw(b"{this is not json\n");
    let r = c.recv().expect("an answer");
    assert_eq!(error_code(&r), -32700, "{r}");
    assert_eq!(r["id"], Value::Null);
    let r = c.call("ping", Value::Null);
    assert!(r["result"]["pid"].is_number(), "{r}");
}

#[test]
fn invalid_requests_are_32600() {
    let d = Daemon::start(&jobs(""));
    let mut c = d.conn();
    for (line, what) in [
        ("[1, 2]", "not an object"),
        ("42", "not an object"),
        (
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            "wrong jsonrpc",
        ),
        (r#"{"id":2,"method":"ping"}"#, "missing jsonrpc"),
        (r#"{"jsonrpc":"2.0","id":3}"#, "missing method"),
        (
            r#"{"jsonrpc":"2.0","id":4,"method":7}"#,
            "method not a string",
        ),
    ] {
        c.send_raw(format!("{line}\n").as_bytes());
        let r = c.recv().expect("an answer");
        assert_eq!(error_code(&r), -32600, "{what}: {r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{r}"
        );
    }
    // The id is echoed when there is one.
    c.send_raw(b"{\"jsonrpc\":\"1.0\",\"id\":99,\"method\":\"ping\"}\n");
    assert_eq!(c.recv().expect("answer")["id"], 99);
    assert!(c.call("ping", Value::Null)["result"].is_object());
}

#[test]
fn unknown_method_is_32601_and_bad_params_are_32602() {
    let d = Daemon::start(&jobs(TWO_SLEEPERS));
    let r = d.rpc("frobnicate", Value::Null);
    assert_eq!(error_code(&r), -32601, "{r}");
    assert!(r["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("frobnicate")));
    for (method, params) in [
        ("status", json!({ "names": "a" })),
        ("status", json!({ "names": [1] })),
        ("status", json!({ "bogus": true })),
        ("start", json!([1, 2])),
        ("terminate", json!({ "names": ["a"], "wait": "yes" })),
        ("terminate", json!({ "names": ["a"], "signal": "SIGNOPE" })),
        ("kill", json!({ "names": ["a"] })),
        ("wait", json!({ "timeout_ms": -1 })),
        ("add", json!({ "name": "x" })),
        ("shutdown", json!({ "drain": 1 })),
        ("ping", json!({ "x": 1 })),
        ("start", json!({})),
    ] {
        let r = d.rpc(method, params.clone());
        assert_eq!(error_code(&r), -32602, "{method} {params}: {r}");
    }
    // Nothing was done by any of them.
    assert!(d.job("a").alive);
}

#[test]
fn unknown_names_are_1001_and_nothing_is_done() {
    let d = Daemon::start(&jobs(TWO_SLEEPERS));
    let a = d.running_pid("a");
    for (method, params) in [
        ("terminate", json!({ "names": ["a", "nope"] })),
        ("restart", json!({ "names": ["a", "nope"] })),
        ("kill", json!({ "names": ["a", "nope"], "signal": "KILL" })),
        ("remove", json!({ "names": ["a", "nope"] })),
        ("start", json!({ "names": ["quick", "nope"] })),
        ("status", json!({ "names": ["nope"] })),
        ("wait", json!({ "names": ["a", "nope"] })),
    ] {
        let r = d.rpc(method, params.clone());
        assert_eq!(error_code(&r), 1001, "{method} {params}: {r}");
        assert_eq!(r["error"]["data"]["names"], json!(["nope"]), "{r}");
    }
    let r = d.rpc("terminate", json!({ "group": "no-such-group" }));
    assert_eq!(error_code(&r), 1001, "{r}");
    // `a` still runs with the same pid; `quick` was not started.
    let j = d.job("a");
    assert_eq!((j.state.as_str(), j.pid), ("running", Some(a)));
    assert!(alive(a));
    let q = d.job("quick");
    assert_eq!((q.state.as_str(), q.started_at), ("stopped", None));
}

#[test]
fn reload_of_a_broken_file_is_1003_with_position_and_changes_nothing() {
    let d = Daemon::start(&jobs(TWO_SLEEPERS));
    let a = d.running_pid("a");
    let broken = jobs("[job.a]\ncommand = [\"sleep\", \"30\"]\nbogus_key = 1\n");
    std::fs::write(&d.config, &broken).expect("write");
    let r = d.rpc("reload", Value::Null);
    assert_eq!(error_code(&r), 1003, "{r}");
    let data = &r["error"]["data"];
    assert!(
        data["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("jobs.toml")),
        "{r}"
    );
    assert_eq!(data["line"], 7, "{r}");
    assert!(data["column"].as_u64().is_some(), "{r}");
    assert!(r["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("bogus_key")));
    // Nothing changed: every job is still there, `a` has its pid.
    let names: Vec<String> = d.jobs().into_iter().map(|j| j.name).collect();
    assert_eq!(names, ["a", "b", "quick", "bg"]);
    assert_eq!(d.job("a").pid, Some(a));
}

#[test]
fn a_line_over_1_mib_is_32600_and_closes_the_connection() {
    let d = Daemon::start(&jobs(""));
    let mut c = d.conn();
    let mut big = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{{\"x\":\"{}",
        "a".repeat(1024 * 1024 + 16)
    );
    big.push_str("\"}}\n");
    c.send_raw(big.as_bytes());
    let r = c.recv().expect("an answer before the close");
    assert_eq!(error_code(&r), -32600, "{r}");
    c.set_timeout(Duration::from_secs(10));
    assert!(c.recv().is_none(), "the connection is closed");
    // Others are served as before.
    assert!(d.ok("ping", Value::Null)["pid"].is_number());
}

#[test]
fn notifications_without_id_get_no_answer_but_are_carried_out() {
    let d = Daemon::start(&jobs(TWO_SLEEPERS));
    let mut c = d.conn();
    c.send_raw(b"{\"jsonrpc\":\"2.0\",\"method\":\"start\",\"params\":{\"names\":[\"quick\"]}}\n");
    let id = c.send("ping", Value::Null);
    let r = c.recv().expect("answer");
    assert_eq!(r["id"], json!(id), "only the ping is answered: {r}");
    d.wait_job("quick", "ran", |j| j.exitcode == Some(0));
}

/// A subscriber sees every state change up to the daemon's exit: the stream is not cut
/// before the last events of a shutdown are passed on.
#[test]
fn a_subscriber_gets_the_last_events_of_a_shutdown() {
    let names: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
    let file: String = names
        .iter()
        .map(|n| format!("[job.{n}]\ncommand = [\"sleep\", \"30\"]\n\n"))
        .collect();
    let mut d = Daemon::start(&jobs(&file));
    for n in &names {
        d.running_pid(n);
    }
    let mut c = d.conn();
    c.call("subscribe", Value::Null);
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let mut stopped = Vec::new();
    while let Some(v) = c.recv() {
        if v["params"]["to"] == "stopped" {
            stopped.push(v["params"]["name"].as_str().expect("name").to_owned());
        }
    }
    stopped.sort();
    assert_eq!(
        stopped, names,
        "every job's last event reached the subscriber"
    );
    assert_eq!(d.wait_exit(), 0);
}
