//! The event stream (docs/protocol.md, "Notifications"): `subscribe` order and fields, `supctl events` output, and
//! what a subscriber that never reads costs everyone else (nothing).

use crate::support::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The next `event` notification on a subscribed connection.
fn next_event(c: &mut Conn) -> Value {
    loop {
        let note = c.recv().expect("event stream open");
        if note["method"] == "event" {
            return note["params"].clone();
        }
    }
}

/// start → running → stopping → stopped, in order, each with from/to/pid/exitcode/signal/at.
#[test]
fn events_come_in_order_with_every_field() {
    let d = Daemon::start(&jobs(
        r#"
[job.sleeper]
command = ["sleep", "30"]
autostart = false
"#,
    ));
    let mut sub = d.conn();
    let snap = sub.call("subscribe", Value::Null);
    assert_eq!(snap["result"]["jobs"][0]["state"], "stopped", "{snap}");
    d.ok("start", json!({ "names": ["sleeper"] }));
    let e1 = next_event(&mut sub);
    let e2 = next_event(&mut sub);
    d.ok("terminate", json!({ "names": ["sleeper"] }));
    let e3 = next_event(&mut sub);
    let e4 = next_event(&mut sub);
    let pid = e1["pid"].as_u64().expect("a pid on start");
    let got: Vec<(&str, &str)> = [&e1, &e2, &e3, &e4]
        .iter()
        .map(|e| {
            (
                e["from"].as_str().expect("from"),
                e["to"].as_str().expect("to"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("stopped", "starting"),
            ("starting", "running"),
            ("running", "stopping"),
            ("stopping", "stopped"),
        ]
    );
    let mut last_at = String::new();
    for e in [&e1, &e2, &e3, &e4] {
        assert_eq!(e["name"], "sleeper");
        assert_eq!(e["group"], "sleeper");
        assert_eq!(e["pid"], json!(pid), "the same process throughout: {e}");
        for key in ["exitcode", "signal", "at"] {
            assert!(e.get(key).is_some(), "{key} missing in {e}");
        }
        let at = e["at"].as_str().expect("at").to_owned();
        assert!(at.ends_with('Z') && at.contains('T'), "{at}");
        assert!(at >= last_at, "time goes forward: {at} after {last_at}");
        last_at = at;
    }
    for e in [&e1, &e2, &e3] {
        assert_eq!((&e["exitcode"], &e["signal"]), (&Value::Null, &Value::Null));
    }
    assert_eq!(e4["exitcode"], -15);
    assert_eq!(e4["signal"], "SIGTERM");
}

/// A job that ends on its own: its `exited` event comes after `starting` and `running`,
/// carries the exit, and a `status` asked right after it says the same — though the
/// `status` asked while the job ran had its text kept for the next answer (a kept text
/// that outlived the change would still say `running`).
#[test]
fn an_exit_is_one_exited_event_in_order_and_status_shows_it_at_once() {
    let d = Daemon::prepare("");
    let go = d.dir.path().join("go");
    let body = format!(
        r#"
[job.quick]
command = ["sh", "-c", "while [ ! -e {go} ]; do sleep 0.01; done; exit 3"]
autostart = false
restart = "never"

[job.other]
command = ["sleep", "30"]
"#,
        go = go.display()
    );
    std::fs::write(&d.config, jobs(&body)).expect("job file");
    let d = d.launch(&[]);
    let mut sub = d.conn();
    sub.call("subscribe", Value::Null);
    let mut ctl = d.conn();
    for run in 1..=2 {
        let r = ctl.call("start", json!({ "names": ["quick"] }));
        assert!(r.get("error").is_none(), "{r}");
        let mut seen = Vec::new();
        let exited = loop {
            let e = next_event(&mut sub);
            if e["name"] != "quick" {
                continue;
            }
            seen.push((
                e["from"].as_str().unwrap_or("?").to_owned(),
                e["to"].as_str().unwrap_or("?").to_owned(),
            ));
            if e["to"] == "running" {
                // Asked while it runs: every job's text is kept for the next answer.
                let status = ctl.call("status", Value::Null);
                let job = &status["result"]["jobs"][0];
                assert_eq!(
                    (&job["name"], &job["state"]),
                    (&json!("quick"), &json!("running")),
                    "{status}"
                );
                std::fs::write(&go, "").expect("go");
            }
            if e["to"] == "exited" {
                break e;
            }
        };
        let from = if run == 1 { "stopped" } else { "exited" };
        assert_eq!(
            seen,
            [
                (from, "starting"),
                ("starting", "running"),
                ("running", "exited")
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned())),
            "run {run}"
        );
        assert_eq!(
            (&exited["exitcode"], &exited["signal"]),
            (&json!(3), &Value::Null)
        );
        let status = ctl.call("status", json!({ "names": ["quick"] }));
        let job = &status["result"]["jobs"][0];
        assert_eq!(job["state"], "exited", "{status}");
        assert_eq!(job["alive"], false, "{status}");
        assert_eq!(job["exitcode"], 3, "{status}");
        assert_eq!(job["success"], false, "{status}");
        assert_eq!(job["uptime_ms"], Value::Null, "{status}");
        assert_eq!(job["pid"], Value::Null, "no live process: {status}");
        assert!(exited["pid"].is_u64(), "the run's pid: {exited}");
        assert!(job["ended_at"].is_string(), "{status}");
        std::fs::remove_file(&go).expect("rm go");
    }
    let other = d.job("other");
    assert_eq!(
        other.state.as_str(),
        "running",
        "the other job is untouched"
    );
}

/// `supctl events --json`: one JSON object per line; without it, one readable line each.
#[test]
fn supctl_events_prints_json_lines_or_readable_lines() {
    let d = Daemon::start(&jobs(
        r#"
[job.brief]
command = ["sh", "-c", "exit 3"]
autostart = false
"#,
    ));
    let (mut json_child, json_rx) = d.ctl_lines(&["--json", "events"]);
    let (mut text_child, text_rx) = d.ctl_lines(&["events"]);
    // Both have subscribed once the snapshot line is out (json) or a ping answers after it.
    let first = json_rx.recv_timeout(DEADLINE).expect("snapshot line");
    let snap: Value = serde_json::from_str(&first).expect("snapshot is one JSON line");
    assert!(snap["jobs"].is_array(), "{first}");
    d.ok("start", json!({ "names": ["brief"] }));
    let mut events = Vec::new();
    while !events.iter().any(|e: &Value| e["to"] == "exited") {
        let line = json_rx.recv_timeout(DEADLINE).expect("an event line");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(v.is_object(), "{line}");
        events.push(v);
    }
    let exited = events.last().expect("exited");
    assert_eq!(exited["exitcode"], 3, "{exited}");
    assert_eq!(exited["name"], "brief");

    // The text client prints nothing until an event, so it cannot say when it has
    // subscribed: run the job again until it has printed a whole run.
    let mut texts: Vec<String> = Vec::new();
    let started = Instant::now();
    while !texts.iter().any(|l| l.contains("-> exited")) {
        assert!(
            started.elapsed() < DEADLINE,
            "supctl events printed {texts:?}"
        );
        d.ok("start", json!({ "names": ["brief"] }));
        while let Ok(line) = text_rx.recv_timeout(Duration::from_millis(500)) {
            texts.push(line);
        }
    }
    let last = texts
        .iter()
        .find(|l| l.contains("-> exited"))
        .expect("an exited line");
    assert!(
        last.contains("brief starting -> exited") && last.contains("exit 3"),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .all(|l| serde_json::from_str::<Value>(l).is_err()),
        "readable lines, not JSON: {texts:?}"
    );
    for c in [&mut json_child, &mut text_child] {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A subscriber that never reads while thousands of events flow: `status` on other
/// connections keeps answering, and the subscriber, once it reads, gets a `lagged`
/// notification with the count it missed, then the events that follow.
#[test]
fn a_subscriber_that_never_reads_costs_others_nothing() {
    // Process groups, not a cgroup per run: this is about the event path, and 4000
    // restarts must fit in the time limit on a loaded machine (entering a cgroup makes
    // each spawn a fork plus a cgroup migration, several times slower; see bench/).
    let d = Daemon::start(&jobs(
        r#"
[supervisor]
cgroup = "off"

[job.victim]
command = ["sleep", "600"]

[job.marker]
command = ["true"]
autostart = false
"#,
    ));
    // Four jobs that restart as fast as they can: start_secs = 0, restart = always,
    // backoff = 0.
    for n in 0..4 {
        d.ok(
            "add",
            json!({ "name": format!("flood{n}"), "job": {
                "command": ["true"], "restart": "always", "start_secs": 0, "backoff": 0, "autostart": false
            }}),
        );
    }
    let victim = d.wait_job("victim", "running", |j| j.state.as_str() == "running");
    let mut lazy = d.conn();
    lazy.send("subscribe", Value::Null);
    // Never read `lazy` while the flood runs.
    let flood = json!({ "names": ["flood0", "flood1", "flood2", "flood3"] });
    d.ok("start", flood.clone());
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut restarts = 0;
    // ~3 events per restart; 4000 restarts are well past what the socket buffer, the
    // connection's queue and the event backlog together can hold.
    while restarts < 4000 {
        let t = Instant::now();
        let r = d.ok("status", Value::Null);
        slowest = slowest.max(t.elapsed());
        restarts = r["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .map(|j| j["restarts"].as_u64().unwrap_or(0))
            .sum();
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the flood stalled at {restarts} restarts"
        );
    }
    d.ok("terminate", flood);
    eprintln!(
        "flood: {restarts} restarts in {:?}; slowest status {slowest:?}",
        started.elapsed()
    );
    assert!(
        slowest < Duration::from_secs(5),
        "status took {slowest:?} while a subscriber did not read"
    );
    let j = d.job("victim");
    assert_eq!(
        (j.pid, j.alive),
        (victim.pid, true),
        "the victim is untouched"
    );

    // The last thing that happens: a run of `marker`.
    d.ok("start", json!({ "names": ["marker"] }));
    d.wait_job("marker", "exited", |j| j.state.as_str() == "exited");

    // Now read: a `lagged` notice with a count, then the stream goes on to the end.
    let mut missed = 0;
    loop {
        let note = lazy.recv().expect("stream open");
        match note["method"].as_str() {
            Some("lagged") => missed += note["params"]["missed"].as_u64().expect("missed count"),
            Some("event")
                if note["params"]["name"] == "marker" && note["params"]["to"] == "exited" =>
            {
                break
            }
            _ => {}
        }
    }
    assert!(missed > 0, "a lagged notice with a count");
    eprintln!("the lazy subscriber missed {missed} events");
}
