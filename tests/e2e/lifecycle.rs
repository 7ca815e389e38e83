//! Job lifecycle (docs/jobfile.md, docs/protocol.md): restart policies and their counters, backoff
//! measured from event timestamps, fatal, spawn errors, restart, reload, add/remove, and
//! the draining shutdown.

use crate::support::*;
use nix::sys::signal::Signal;
use protocol::Event;
use serde_json::{json, Value};
use std::time::Duration;

/// A `subscribe` stream on its own connection.
struct Events {
    conn: Conn,
    /// Events read but not yet taken.
    seen: Vec<Event>,
}

impl Events {
    fn open(d: &Daemon) -> (Events, Value) {
        let mut conn = d.conn();
        let snapshot = conn.call("subscribe", Value::Null);
        assert!(snapshot.get("error").is_none(), "{snapshot}");
        (
            Events {
                conn,
                seen: Vec::new(),
            },
            snapshot["result"].clone(),
        )
    }

    fn read_one(&mut self) -> Option<Event> {
        let v = self.conn.recv()?;
        if v["method"] != "event" {
            return None;
        }
        Some(serde_json::from_value(v["params"].clone()).expect("an event"))
    }

    /// Every event of `name` up to and including the first one into `to`. Events of
    /// other jobs are kept for later calls.
    fn until(&mut self, name: &str, to: &str) -> Vec<Event> {
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            let e = if i < self.seen.len() {
                if self.seen[i].name != name {
                    i += 1;
                    continue;
                }
                self.seen.remove(i)
            } else {
                let e = self
                    .read_one()
                    .unwrap_or_else(|| panic!("stream ended waiting for {name} -> {to}: {out:?}"));
                if e.name != name {
                    self.seen.push(e);
                    i += 1;
                    continue;
                }
                e
            };
            let done = e.to.as_str() == to;
            out.push(e);
            if done {
                return out;
            }
        }
    }

    /// Whatever events arrive until none has for `window` (to show that nothing happens).
    fn quiet_for(&mut self, window: Duration) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(v) = self.conn.recv_within(window) {
            if v["method"] == "event" {
                out.push(serde_json::from_value(v["params"].clone()).expect("an event"));
            }
        }
        out
    }
}

/// Milliseconds since the epoch of an RFC 3339 UTC time with milliseconds
/// (`2026-11-25T17:01:02.123Z`).
fn at_ms(at: &str) -> i64 {
    let num = |s: &str| {
        s.parse::<i64>()
            .unwrap_or_else(|_| panic!("bad time {at:?}"))
    };
    let (date, time) = at.split_once('T').expect("T");
    let d: Vec<i64> = date.split('-').map(num).collect();
    let time = time.trim_end_matches('Z');
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(num).collect();
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m, day) = (d[0] - i64::from(d[1] <= 2), d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let frac_ms = num(&format!("{frac:0<3}")[..3]);
    ((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + frac_ms
}

/// A command that counts its runs in `<job>.runs` and exits with the status a shell case
/// on the run number gives, after sleeping as told.
fn counted(cases: &str) -> String {
    format!(
        "[\"sh\", \"-c\", \"n=$(cat $SUPERVISOR_JOB.runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > $SUPERVISOR_JOB.runs; case $n in {cases} esac\"]"
    )
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(since.as_millis()).expect("in range")
}

/// Event times are UTC with milliseconds (`2026-11-25T17:01:02.123Z`) and say when the
/// change happened (which the backoff measurements below rely on).
#[test]
fn event_times_are_utc_milliseconds_of_when_it_happened() {
    let d = Daemon::start(&jobs(
        "[job.w]\ncommand = [\"sleep\", \"30\"]\nautostart = false\n",
    ));
    let (mut ev, _) = Events::open(&d);
    let before = now_ms();
    d.ok("start", json!({ "names": ["w"] }));
    let events = ev.until("w", "running");
    let after = now_ms();
    for e in &events {
        let shape = e.at.len() == 24
            && e.at.ends_with('Z')
            && e.at.as_bytes()[10] == b'T'
            && e.at.as_bytes()[19] == b'.';
        assert!(shape, "{:?}", e.at);
        let t = at_ms(&e.at);
        assert!(
            (before - 1..=after + 1).contains(&t),
            "{} is not between {before} and {after}",
            e.at
        );
    }
}

/// A run that lasted past `backoff` (and start_secs) is restarted at once: the gap between
/// its exit and the next start is far below the 1 s backoff it would otherwise wait.
#[test]
fn a_run_that_lasted_is_restarted_without_backoff() {
    let d = Daemon::start(&jobs(
        r#"
[job.lasting]
command = ["sleep", "1.2"]
restart = "always"
backoff = "1s"
"#,
    ));
    let (mut ev, _) = Events::open(&d);
    ev.until("lasting", "running");
    let next = ev.until("lasting", "starting");
    let steps: Vec<(&str, &str)> = next
        .iter()
        .map(|e| (e.from.as_str(), e.to.as_str()))
        .collect();
    assert_eq!(
        steps,
        [("running", "exited"), ("exited", "starting")],
        "no backoff state"
    );
    let gap = at_ms(&next[1].at) - at_ms(&next[0].at);
    assert!(gap < 500, "restarted {gap} ms after a run that lasted");
}

#[test]
fn each_restart_policy_and_its_counter() {
    let d = Daemon::start(&jobs(&format!(
        r#"
[job.never]
command = ["sh", "-c", "exit 1"]

[job.succeeds]
command = ["true"]
restart = "on-failure"

[job.flaky]
command = {}
restart = "on-failure"
backoff = "20ms"

[job.forever]
command = ["sh", "-c", "sleep 0.15"]
restart = "always"
backoff = "50ms"
"#,
        counted("1|2) exit 1;; *) exit 0;;")
    )));
    let never = d.wait_job("never", "exits", |j| j.state.as_str() == "exited");
    assert_eq!((never.exitcode, never.restarts), (Some(1), 0));
    let ok = d.wait_job("succeeds", "exits", |j| j.state.as_str() == "exited");
    assert_eq!((ok.success, ok.restarts), (Some(true), 0));
    let flaky = d.wait_job("flaky", "succeeds", |j| j.state.as_str() == "exited");
    assert_eq!((flaky.exitcode, flaky.restarts), (Some(0), 2), "{flaky:?}");
    // `always` restarts a run that succeeded too, with no backoff once it lasted.
    let forever = d.wait_job("forever", "restarted 3 times", |j| j.restarts >= 3);
    assert!(forever.state.as_str() != "fatal", "{forever:?}");
    // A stop by request is never followed by a restart.
    let (mut ev, _) = Events::open(&d);
    let r = d.ok("terminate", json!({ "names": ["forever"] }));
    assert_eq!(r["jobs"][0]["state"], "stopped", "{r}");
    // Nothing must happen: a restart would follow the exit after at most `backoff`
    // (50 ms; the run lasted), so 500 ms of quiet is ten times that.
    let after = ev.quiet_for(Duration::from_millis(500));
    assert!(
        !after
            .iter()
            .any(|e| e.name == "forever" && matches!(e.to.as_str(), "starting" | "backoff")),
        "restarted after a stop: {after:?}"
    );
    assert_eq!(d.job("forever").state.as_str(), "stopped");
}

#[test]
fn a_killed_job_is_restarted_by_its_policy_but_a_stopped_one_is_not() {
    let d = Daemon::start(&jobs(
        r#"
[job.svc]
command = ["sleep", "30"]
restart = "always"
backoff = "10ms"
"#,
    ));
    let pid = d.running_pid("svc");
    // `kill` is not a stop request: the policy applies.
    d.ok("kill", json!({ "names": ["svc"], "signal": "TERM" }));
    let j = d.wait_job("svc", "restarted", |j| {
        j.pid.is_some_and(|p| p != pid) && j.state.as_str() == "running"
    });
    assert_eq!(j.restarts, 1);
    assert!(!alive(pid));
    let (mut ev, _) = Events::open(&d);
    d.ok("terminate", json!({ "names": ["svc"] }));
    // Nothing must happen: a restart would come within `backoff` (10 ms) of the exit, and
    // the quiet window starts only after the exit; 300 ms is thirty times that.
    let late = ev.quiet_for(Duration::from_millis(300));
    assert!(
        !late.iter().any(|e| e.to.as_str() == "starting"),
        "{late:?}"
    );
}

#[test]
fn backoff_doubles_per_failure_then_fatal() {
    let d = Daemon::start(&jobs(
        r#"
[job.crashy]
command = ["sh", "-c", "exit 7"]
restart = "on-failure"
backoff = "150ms"
max_restarts = 3
start_secs = "1s"
autostart = false
"#,
    ));
    let (mut ev, _) = Events::open(&d);
    d.ok("start", json!({ "names": ["crashy"] }));
    let timeline = ev.until("crashy", "fatal");
    eprintln!("crash-loop timeline (backoff 150ms, max_restarts 3):");
    let t0 = at_ms(&timeline[0].at);
    for e in &timeline {
        eprintln!(
            "  +{:>5} ms  {} {} -> {}  pid={:?} exitcode={:?}",
            at_ms(&e.at) - t0,
            e.at,
            e.from,
            e.to,
            e.pid,
            e.exitcode
        );
    }
    // Each backoff -> starting gap is the delay; they double: 150, 300, 600 ms.
    let mut delays = Vec::new();
    for pair in timeline.windows(2) {
        if pair[0].to.as_str() == "backoff" && pair[1].to.as_str() == "starting" {
            delays.push(at_ms(&pair[1].at) - at_ms(&pair[0].at));
        }
    }
    assert_eq!(delays.len(), 3, "{timeline:?}");
    for (got, want) in delays.iter().zip([150, 300, 600]) {
        assert!(
            *got >= want - 2 && *got < want + 400,
            "backoff {got} ms, want {want} ms: {delays:?}"
        );
    }
    let last = timeline.last().expect("fatal");
    assert_eq!((last.from.as_str(), last.exitcode), ("starting", Some(7)));
    let j = d.job("crashy");
    assert_eq!(
        (j.state.as_str(), j.restarts, j.exitcode),
        ("fatal", 3, Some(7))
    );
    assert!(!j.alive);

    // `start` of a fatal job resets its counters and tries again.
    let r = d.ok("start", json!({ "names": ["crashy"] }));
    assert_eq!(r["jobs"][0]["restarts"], 0, "{r}");
    assert_eq!(ev.until("crashy", "starting").len(), 1);
    assert_eq!(d.job("crashy").restarts, 0);
}

#[test]
fn a_run_that_lasts_start_secs_resets_the_backoff() {
    let d = Daemon::start(&jobs(&format!(
        r#"
[job.recovers]
command = {}
restart = "on-failure"
backoff = "100ms"
max_restarts = 2
start_secs = "1s"
autostart = false
"#,
        counted("3) sleep 1.3; exit 1;; *) exit 1;;")
    )));
    let (mut ev, _) = Events::open(&d);
    d.ok("start", json!({ "names": ["recovers"] }));
    let timeline = ev.until("recovers", "fatal");
    let states: Vec<String> = timeline.iter().map(|e| e.to.as_str().to_owned()).collect();
    // Runs 1 and 2 fail at once (backoff 100, 200); run 3 lasts, so its failure is
    // restarted at once and the count starts over: runs 4, 5 back off 100, 200; run 6
    // is the third failed start in a row: fatal.
    assert_eq!(
        states,
        [
            "starting", "backoff", "starting", "backoff", "starting", "running", "exited",
            "starting", "backoff", "starting", "backoff", "starting", "fatal"
        ],
        "{timeline:?}"
    );
    let mut delays = Vec::new();
    for pair in timeline.windows(2) {
        if pair[0].to.as_str() == "backoff" {
            delays.push(at_ms(&pair[1].at) - at_ms(&pair[0].at));
        }
    }
    for (got, want) in delays.iter().zip([100, 200, 100, 200]) {
        assert!(
            *got >= want - 2 && *got < want + 400,
            "backoff {got} ms, want {want}: {delays:?}"
        );
    }
    assert_eq!(d.job("recovers").restarts, 5);
}

#[test]
fn spawn_errors_are_fatal_with_spawn_error_and_the_daemon_carries_on() {
    let d = Daemon::prepare("");
    let plain = d.dir.path().join("plain.txt");
    std::fs::write(&plain, "not a program\n").expect("write");
    let config = jobs(&format!(
        r#"
[job.missing]
command = ["/no/such/program"]

[job.not-exec]
command = ["{}"]

[job.bad-cwd]
command = ["true"]
cwd = "no/such/folder"

[job.retries]
command = ["no-such-program-anywhere"]
restart = "always"
backoff = "10ms"
max_restarts = 2

[job.fine]
command = ["sleep", "30"]
"#,
        plain.display()
    ));
    std::fs::write(&d.config, config).expect("write");
    let d = d.launch(&[]);
    for (name, says) in [
        ("missing", "no such program"),
        ("not-exec", "permission denied"),
        ("bad-cwd", "no/such/folder"),
        ("retries", "no such program"),
    ] {
        let j = d.wait_job(name, "is fatal", |j| j.state.as_str() == "fatal");
        let err = j.spawn_error.clone().unwrap_or_default();
        assert!(err.contains(says), "{name}: {err:?}");
        assert!(!j.alive && j.pid.is_none(), "{j:?}");
    }
    assert_eq!(d.job("retries").restarts, 2);
    assert_eq!(d.job("missing").restarts, 0);
    d.running_pid("fine");
    assert!(d.ok("ping", Value::Null)["pid"].is_number());
}

#[test]
fn restart_names_group_and_all_gives_new_pids() {
    let d = Daemon::start(&jobs(
        r#"
[job.a]
command = ["sleep", "30"]
group = "g"

[job.b]
command = ["sleep", "30"]
group = "g"

[job.c]
command = ["sleep", "30"]
"#,
    ));
    let pids =
        |d: &Daemon| -> Vec<u32> { ["a", "b", "c"].iter().map(|n| d.running_pid(n)).collect() };
    let p0 = pids(&d);
    let r = d.ok("restart", json!({ "names": ["a"] }));
    assert_eq!(r["jobs"].as_array().map(Vec::len), Some(1));
    let p1 = pids(&d);
    assert!(
        p1[0] != p0[0] && p1[1] == p0[1] && p1[2] == p0[2],
        "{p0:?} {p1:?}"
    );
    d.ok("restart", json!({ "group": "g" }));
    let p2 = pids(&d);
    assert!(
        p2[0] != p1[0] && p2[1] != p1[1] && p2[2] == p1[2],
        "{p1:?} {p2:?}"
    );
    let r = d.ok("restart", json!({ "all": true }));
    for j in r["jobs"].as_array().expect("jobs") {
        assert_eq!(j["alive"], true, "{j}");
    }
    let p3 = pids(&d);
    for i in 0..3 {
        assert_ne!(p3[i], p2[i]);
        assert!(!alive(p2[i]));
    }
    assert_eq!(d.job("a").restarts, 3);
    // Restarting a stopped job starts it.
    d.ok("terminate", json!({ "names": ["c"] }));
    let r = d.ok("restart", json!({ "names": ["c"] }));
    assert_eq!(r["jobs"][0]["alive"], true);
}

const BEFORE: &str = r#"
[job.same]
command = ["sleep", "30"]

[job.edited]
command = ["sleep", "30"]

[job.dropped]
command = ["sleep", "30"]

[job.idle]
command = ["true"]
autostart = false
"#;

const AFTER: &str = r#"
[job.fresh]
command = ["sleep", "31"]

[job.idle]
command = ["true"]
autostart = false

[job.edited]
command = ["sleep", "32"]

[job.same]
command = ["sleep", "30"]

[job.lazy]
command = ["sleep", "30"]
autostart = false
"#;

#[test]
fn reload_adds_removes_restarts_changed_and_leaves_unchanged_alone() {
    let d = Daemon::start(&jobs(BEFORE));
    let same = d.running_pid("same");
    let edited = d.running_pid("edited");
    let dropped = d.running_pid("dropped");
    d.ok(
        "add",
        json!({ "name": "dynamic", "job": { "command": ["sleep", "30"] } }),
    );
    let dynamic = d.running_pid("dynamic");
    std::fs::write(&d.config, jobs(AFTER)).expect("write");
    let r = d.ok("reload", Value::Null);
    assert_eq!(r["added"], json!(["fresh", "lazy"]), "{r}");
    assert_eq!(r["changed"], json!(["edited"]), "{r}");
    assert_eq!(r["unchanged"], json!(["idle", "same"]), "{r}");
    assert_eq!(r["removed"], json!(["dropped"]), "{r}");

    let e = d.running_pid("edited");
    assert_ne!(e, edited);
    assert!(!alive(edited));
    wait_until("the removed job's process to end", DEADLINE, || {
        (!alive(dropped)).then_some(())
    });
    assert_eq!(
        error_code(&d.rpc("status", json!({ "names": ["dropped"] }))),
        1001
    );
    d.running_pid("fresh");
    assert_eq!(d.job("lazy").state.as_str(), "stopped", "autostart = false");
    // Once the reload has settled (the changed job restarted, the new one running), the
    // unchanged job still runs the process it had.
    let j = d.job("same");
    assert_eq!((j.state.as_str(), j.pid), ("running", Some(same)), "{j:?}");
    assert_eq!(j.restarts, 0);
    assert!(alive(same));
    assert_eq!(
        d.job("dynamic").pid,
        Some(dynamic),
        "reload keeps dynamic jobs"
    );
    // The table follows the file, dynamic jobs last.
    let names: Vec<String> = d.jobs().into_iter().map(|j| j.name).collect();
    assert_eq!(
        names,
        ["fresh", "idle", "edited", "same", "lazy", "dynamic"]
    );
    // The changed job runs its new command.
    let cmd = std::fs::read_to_string(format!("/proc/{e}/cmdline")).expect("cmdline");
    assert_eq!(cmd, "sleep\u{0}32\u{0}");
}

/// A changed job's old run is stopped with the stop settings it was started with; the
/// new ones apply to the new run.
#[test]
fn reload_stops_a_changed_job_with_its_old_stop_signal() {
    let job = |signal: &str, arg: &str| {
        jobs(&format!(
            r#"
[job.svc]
command = ["sh", "-c", "trap 'echo INT >> got.txt; exit 0' INT; trap 'echo TERM >> got.txt; exit 0' TERM; while :; do sleep 0.02; done", "{arg}"]
stop_signal = "{signal}"
"#
        ))
    };
    let d = Daemon::start(&job("INT", "old"));
    let old = d.running_pid("svc");
    std::fs::write(&d.config, job("TERM", "new")).expect("write");
    let r = d.ok("reload", Value::Null);
    assert_eq!(r["changed"], json!(["svc"]), "{r}");
    let new = d.running_pid("svc");
    assert_ne!(old, new);
    d.ok("terminate", json!({ "names": ["svc"] }));
    let got = std::fs::read_to_string(d.dir.path().join("got.txt")).expect("got.txt");
    assert_eq!(got, "INT\nTERM\n", "old run by INT, new run by TERM");
}

#[test]
fn a_broken_file_is_refused_whole_and_nothing_changes() {
    let d = Daemon::start(&jobs(BEFORE));
    let same = d.running_pid("same");
    let broken = jobs(&format!("{AFTER}\n[job.bad]\ncommand = []\n"));
    std::fs::write(&d.config, &broken).expect("write");
    let r = d.rpc("reload", Value::Null);
    assert_eq!(error_code(&r), 1003, "{r}");
    assert!(r["error"]["data"]["line"].as_u64().is_some(), "{r}");
    let names: Vec<String> = d.jobs().into_iter().map(|j| j.name).collect();
    assert_eq!(names, ["same", "edited", "dropped", "idle"]);
    assert_eq!(d.job("same").pid, Some(same));
    d.running_pid("dropped");
}

#[test]
fn sighup_reloads_the_job_file() {
    let d = Daemon::start(&jobs(BEFORE));
    let same = d.running_pid("same");
    std::fs::write(&d.config, jobs(AFTER)).expect("write");
    d.signal(Signal::SIGHUP);
    wait_until("the added job to appear", DEADLINE, || {
        d.rpc("status", json!({ "names": ["fresh"] }))
            .get("result")
            .map(|_| ())
    });
    d.running_pid("fresh");
    wait_until("dropped to go", DEADLINE, || {
        (d.rpc("status", json!({ "names": ["dropped"] }))["error"]["code"] == 1001).then_some(())
    });
    assert_eq!(d.job("same").pid, Some(same));
    // A broken file on SIGHUP is refused and logged; the daemon serves on.
    std::fs::write(&d.config, "[job.x]\ncommand = 5\n").expect("write");
    d.signal(Signal::SIGHUP);
    wait_until("the refusal in the log", DEADLINE, || {
        d.stderr()
            .contains("reload on SIGHUP refused")
            .then_some(())
    });
    assert_eq!(d.job("same").pid, Some(same));
}

#[test]
fn add_refuses_clashes_and_bad_specs_and_remove_stops_live_jobs_first() {
    let d = Daemon::start(&jobs(BEFORE));
    let r = d.rpc(
        "add",
        json!({ "name": "same", "job": { "command": ["true"] } }),
    );
    assert_eq!(error_code(&r), -32602, "{r}");
    assert!(r["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("same")));
    for (job, key) in [
        (json!({ "command": ["true"], "bogus": 1 }), "bogus"),
        (
            json!({ "command": ["true"], "restart": "sometimes" }),
            "sometimes",
        ),
        (
            json!({ "command": ["true"], "stop_timeout": "soon" }),
            "soon",
        ),
        (json!({ "command": [] }), "command"),
        (json!({ "group": "g" }), "command"),
    ] {
        let r = d.rpc("add", json!({ "name": "newbie", "job": job }));
        assert_eq!(error_code(&r), -32602, "{job}: {r}");
        let msg = r["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(key), "{job}: the message names {key:?}: {msg}");
    }
    let r = d.rpc(
        "add",
        json!({ "name": "bad name!", "job": { "command": ["true"] } }),
    );
    assert_eq!(error_code(&r), -32602, "{r}");
    assert_eq!(
        error_code(&d.rpc("status", json!({ "names": ["newbie"] }))),
        1001
    );

    // A dynamic job with the file's keys, not started.
    let r = d.ok(
        "add",
        json!({ "name": "newbie", "job": {
            "command": "sleep 30", "group": "dyn", "daemon": true, "autostart": false
        } }),
    );
    assert_eq!(r["jobs"][0]["state"], "stopped");
    assert_eq!(r["jobs"][0]["daemon"], true);
    d.ok("start", json!({ "group": "dyn" }));
    let pid = d.running_pid("newbie");
    let r = d.ok("remove", json!({ "names": ["newbie", "idle"] }));
    assert_eq!(r["jobs"][0]["name"], "idle", "table order: {r}");
    assert_eq!(r["jobs"][1]["name"], "newbie");
    assert_eq!(r["jobs"][1]["exitcode"], -15, "stopped first: {r}");
    assert!(!alive(pid));
    let names: Vec<String> = d.jobs().into_iter().map(|j| j.name).collect();
    assert_eq!(names, ["same", "edited", "dropped"]);
}

const DRAIN: &str = r#"
[job.helper]
command = ["sleep", "30"]
daemon = true

[job.w1]
command = ["sh", "-c", "while [ ! -e go ]; do sleep 0.02; done; exit 0"]

[job.w2]
command = ["sh", "-c", "while [ ! -e go ]; do sleep 0.02; done; exit 0"]
"#;

#[test]
fn drain_terminates_daemon_jobs_at_once_and_waits_for_the_workers() {
    let mut d = Daemon::start(&jobs(DRAIN));
    let helper = d.running_pid("helper");
    d.running_pid("w1");
    d.running_pid("w2");
    let (mut ev, _) = Events::open(&d);
    let out = d.ctl(&["shutdown", "--drain", "--no-wait"]);
    assert_eq!(out.status.code(), Some(0));
    let stop = ev.until("helper", "stopped");
    assert_eq!(stop.last().and_then(|e| e.exitcode), Some(-15));
    assert!(!alive(helper));
    // The workers run on; the daemon still answers.
    for w in ["w1", "w2"] {
        assert_eq!(d.job(w).state.as_str(), "running");
    }
    std::fs::write(d.dir.path().join("go"), "").expect("go");
    for w in ["w1", "w2"] {
        let e = ev.until(w, "exited");
        assert_eq!(e.last().and_then(|e| e.exitcode), Some(0), "{e:?}");
    }
    assert_eq!(d.wait_exit(), 0);
}

#[test]
fn a_second_shutdown_during_a_drain_stops_everything() {
    let mut d = Daemon::start(&jobs(DRAIN));
    let w1 = d.running_pid("w1");
    d.running_pid("w2");
    let (mut ev, _) = Events::open(&d);
    d.ok("shutdown", json!({ "drain": true }));
    ev.until("helper", "stopped");
    assert!(alive(w1));
    d.ok("shutdown", Value::Null);
    for w in ["w1", "w2"] {
        let e = ev.until(w, "stopped");
        assert_eq!(e.last().and_then(|e| e.exitcode), Some(-15), "{e:?}");
    }
    assert_eq!(d.wait_exit(), 0);
}

#[test]
fn sigterm_during_a_drain_stops_everything() {
    let mut d = Daemon::start(&jobs(DRAIN));
    let w1 = d.running_pid("w1");
    d.ok("shutdown", json!({ "drain": true }));
    d.wait_job("helper", "stops", |j| j.state.as_str() == "stopped");
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(), 0);
    assert!(!alive(w1));
}

/// A drain lets jobs end; it does not restart them, or a `restart = "always"` job would
/// keep the daemon from ever exiting.
#[test]
fn a_drain_does_not_restart_jobs_that_end() {
    let mut d = Daemon::start(&jobs(
        r#"
[job.loop]
command = ["sh", "-c", "while [ ! -e go ]; do sleep 0.02; done; exit 0"]
restart = "always"

[job.flaky]
command = ["sh", "-c", "exit 1"]
restart = "always"
backoff = "200ms"
max_restarts = 100

[job.late]
command = ["sh", "-c", "while [ ! -e go ]; do sleep 0.02; done; exit 1"]
restart = "on-failure"
start_secs = "30s"
backoff = "100ms"
"#,
    ));
    d.running_pid("loop");
    d.wait_job("flaky", "backs off", |j| j.restarts >= 1);
    let (mut ev, _) = Events::open(&d);
    d.ok("shutdown", json!({ "drain": true }));
    std::fs::write(d.dir.path().join("go"), "").expect("go");
    // `late` fails after the drain began: its backoff runs out, and it stops there.
    let late = ev.until("late", "stopped");
    let states: Vec<&str> = late.iter().map(|e| e.to.as_str()).collect();
    assert_eq!(states, ["backoff", "stopped"], "{late:?}");
    assert_eq!(d.wait_exit(), 0, "{}", d.stderr());
}

/// The file is the source of truth on reload: a file job that a `remove` is still
/// stopping stays in the table when the reloaded file still has it.
#[test]
fn reload_keeps_a_file_job_that_a_remove_is_still_stopping() {
    let d = Daemon::start(&jobs(
        r#"
[job.slowstop]
command = ["sh", "-c", "trap 'sleep 0.3; exit 0' TERM; while :; do sleep 0.02; done"]
"#,
    ));
    d.running_pid("slowstop");
    let mut remover = d.conn();
    let id = remover.send("remove", json!({ "names": ["slowstop"] }));
    d.wait_job("slowstop", "is stopping", |j| {
        j.state.as_str() == "stopping"
    });
    let r = d.ok("reload", Value::Null);
    assert_eq!(r["unchanged"], json!(["slowstop"]), "{r}");
    let removed = remover.response(id);
    assert_eq!(
        removed["result"]["jobs"][0]["state"], "stopped",
        "{removed}"
    );
    let j = d.job("slowstop");
    assert_eq!((j.state.as_str(), j.exitcode), ("stopped", Some(0)));
}

#[test]
fn restart_of_a_job_that_ignores_its_stop_signal_escalates_then_starts() {
    let d = Daemon::start(&jobs(
        r#"
[job.stubborn]
command = ["sh", "-c", "trap '' TERM; while :; do sleep 0.02; done"]
stop_timeout = "200ms"
"#,
    ));
    let old = d.running_pid("stubborn");
    let (mut ev, _) = Events::open(&d);
    let r = d.ok("restart", json!({ "names": ["stubborn"] }));
    let new = r["jobs"][0]["pid"].as_u64().expect("a new pid") as u32;
    assert_ne!(new, old);
    assert!(!alive(old));
    let stop = ev.until("stubborn", "stopped");
    assert_eq!(stop.last().and_then(|e| e.exitcode), Some(-9), "{stop:?}");
    assert_eq!(d.job("stubborn").restarts, 1);
}

/// `[supervisor]` settings that cannot change live are reported, not ignored.
#[test]
fn reload_reports_a_socket_change_it_cannot_apply() {
    let d = Daemon::start(&jobs("[job.a]\ncommand = [\"sleep\", \"30\"]\n"));
    let pid = d.running_pid("a");
    std::fs::write(
        &d.config,
        format!(
            "[supervisor]\nsocket = \"elsewhere.sock\"\n\n{}",
            jobs("[job.a]\ncommand = [\"sleep\", \"30\"]\n")
        ),
    )
    .expect("write");
    let r = d.ok("reload", Value::Null);
    assert_eq!(r["unchanged"], json!(["a"]));
    let warnings = r["warnings"].to_string();
    assert!(warnings.contains("socket"), "{r}");
    assert_eq!(d.job("a").pid, Some(pid));
    // Still served on the old socket.
    assert!(d.ok("ping", Value::Null)["pid"].is_number());
}

/// `start_secs = 0` makes every run count as started, so no failure is ever counted; the
/// restarts are still spaced by `backoff` from each start instead of forking in a loop.
#[test]
fn a_job_that_keeps_ending_at_once_is_not_restarted_in_a_hot_loop() {
    let d = Daemon::start(&jobs(
        r#"
[job.hot]
command = ["true"]
restart = "always"
start_secs = 0
backoff = "200ms"
autostart = false
"#,
    ));
    let (mut ev, _) = Events::open(&d);
    d.ok("start", json!({ "names": ["hot"] }));
    let mut starts = Vec::new();
    while starts.len() < 4 {
        let e = ev.until("hot", "starting");
        starts.push(at_ms(&e.last().expect("event").at));
    }
    for pair in starts.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= 198,
            "restarted {gap} ms after the last start: {starts:?}"
        );
    }
    let j = d.job("hot");
    assert!(j.restarts >= 3 && j.state.as_str() != "fatal", "{j:?}");
}

/// A job that ignores SIGTERM: stopping it takes its whole 30 s stop_timeout unless
/// something kills it.
const STUBBORN: &str = r#"
[job.stubborn]
command = ["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"]
stop_timeout = "30s"
"#;

/// Requests still waiting when shutdown begins (`wait`, a waiting `terminate`) are
/// answered with 1004 instead of being left hanging.
#[test]
fn waiting_requests_are_answered_1004_at_shutdown() {
    let mut d = Daemon::start(&jobs(&format!(
        "{STUBBORN}\n[job.idle]\ncommand = [\"sleep\", \"30\"]\n"
    )));
    d.running_pid("stubborn");
    d.running_pid("idle");
    let mut waiter = d.conn();
    let wait_id = waiter.send("wait", json!({ "names": ["idle"] }));
    let mut stopper = d.conn();
    let stop_id = stopper.send("terminate", json!({ "names": ["stubborn"] }));
    // Both are pending: `idle` never ends by itself and `stubborn` ignores SIGTERM for
    // 30 s; 300 ms of silence shows the requests reached the daemon and wait.
    assert_eq!(waiter.recv_within(Duration::from_millis(300)), None);
    d.wait_job("stubborn", "stopping", |j| j.state.as_str() == "stopping");
    d.ok("shutdown", Value::Null);
    for (conn, id, what) in [
        (&mut waiter, wait_id, "wait"),
        (&mut stopper, stop_id, "terminate"),
    ] {
        let r = conn.response(id);
        assert_eq!(error_code(&r), 1004, "{what}: {r}");
    }
    // A second shutdown kills the stubborn job rather than waiting out its timeout.
    d.ok("shutdown", Value::Null);
    assert_eq!(d.wait_exit(), 0);
}

/// Asking again while stopping kills every job at once: drain, then a second shutdown
/// (an ordinary stop, which `stubborn` ignores), then a third (SIGKILL, long before the
/// 30 s stop_timeout).
#[test]
fn shutdown_again_while_stopping_kills_every_job_at_once() {
    let mut d = Daemon::start(&jobs(STUBBORN));
    let pid = d.running_pid("stubborn");
    let (mut ev, _) = Events::open(&d);
    let t0 = std::time::Instant::now();
    d.ok("shutdown", json!({ "drain": true }));
    // A drain leaves the non-daemon job running.
    assert_eq!(d.job("stubborn").state.as_str(), "running");
    d.ok("shutdown", Value::Null);
    let stopping = ev.until("stubborn", "stopping");
    assert_eq!(stopping.len(), 1, "{stopping:?}");
    assert!(alive(pid), "SIGTERM is ignored");
    d.ok("shutdown", Value::Null);
    let end = ev.until("stubborn", "stopped");
    assert_eq!(end.last().and_then(|e| e.exitcode), Some(-9), "{end:?}");
    assert_eq!(d.wait_exit(), 0);
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "took {:?}: the stop timeout was waited out",
        t0.elapsed()
    );
}
