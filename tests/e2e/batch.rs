//! Batch work: `schedule` (with `overlap`), `retries`, and groups with `max_parallel` as
//! work queues (the `waiting` state with a slot reason, first come first served,
//! `terminate` of a waiting job, `add --group` joining the line), and their load errors.

use crate::support::*;
use protocol::{Cause, JobState};
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime};

/// Lines in a file the job appends to (one per run).
fn count(d: &Daemon, file: &str) -> usize {
    std::fs::read_to_string(d.dir.path().join(file))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// A connection subscribed to the event stream (the snapshot already read).
fn subscribe(d: &Daemon) -> Conn {
    let mut sub = d.conn();
    sub.set_timeout(DEADLINE);
    let snap = sub.call("subscribe", Value::Null);
    assert!(snap.get("result").is_some(), "{snap}");
    sub
}

/// The next event on a subscribed connection.
fn next_event(sub: &mut Conn) -> Value {
    loop {
        let note = sub.recv().expect("an event within the deadline");
        if note["method"] == "event" {
            return note["params"].clone();
        }
    }
}

/// An event's time.
fn at(e: &Value) -> SystemTime {
    humantime::parse_rfc3339(e["at"].as_str().unwrap_or_default()).expect("`at` in RFC 3339")
}

fn alive(state: &Value) -> bool {
    matches!(state.as_str(), Some("starting" | "running" | "stopping"))
}

#[test]
fn an_every_1s_schedule_runs_again_and_again_with_next_run_at_moving_on() {
    let d = Daemon::start(&jobs(
        r#"
[job.tick]
command = ["sh", "-c", "echo run >> ticks"]
schedule = "every 1s"
start_secs = 0
"#,
    ));
    // Armed, not started: autostart arms the schedule.
    let first = d.job("tick");
    let armed = first.next_run_at.clone().expect("next_run_at once armed");
    assert_eq!(first.started_at, None, "{first:?}");
    wait_until("three runs", DEADLINE, || {
        (count(&d, "ticks") >= 3).then_some(())
    });
    // Between runs it keeps its end state.
    let later = d.wait_job("tick", "exited, with a later next_run_at", |j| {
        j.state == JobState::Exited && j.next_run_at.as_deref().is_some_and(|n| n > armed.as_str())
    });
    assert_eq!(later.success, Some(true));
    let next = humantime::parse_rfc3339(later.next_run_at.as_deref().unwrap_or_default())
        .expect("RFC 3339");
    let ahead = next
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    assert!(ahead <= Duration::from_secs(1), "next run {ahead:?} away");
    let table = d.ctl_ok(&["status"]);
    assert!(table.contains("next run"), "{table}");
    let block = d.ctl_ok(&["status", "tick"]);
    assert!(block.contains("next_run_at"), "{block}");
    // Left out of `wait --all`, like a daemon job: it answers at once.
    let t = Instant::now();
    d.ctl_ok(&["wait", "--all"]);
    assert!(t.elapsed() < Duration::from_secs(5));
    // `terminate` disarms it; `start` runs it now and arms it again.
    d.ctl_ok(&["terminate", "tick"]);
    assert_eq!(d.job("tick").next_run_at, None);
    d.ctl_ok(&["start", "tick"]);
    assert!(d.job("tick").next_run_at.is_some());
}

#[test]
fn batch_mode_does_not_wait_for_a_scheduled_job() {
    let mut d = Daemon::start_with(
        &jobs(
            r#"
[job.once]
command = ["sh", "-c", "sleep 0.2"]
start_secs = 0

[job.nightly]
command = ["true"]
schedule = "0 3 * * *"
timezone = "Europe/Berlin"
"#,
        ),
        &["--exit-when-done"],
    );
    assert_eq!(d.wait_exit(), 0, "{}", d.stderr());
}

/// 20 uploads through 4 slots: never more than 4 alive at once (counted from the event
/// stream: runs that began minus runs that ended), all 20 succeed, `wait --group`
/// returns 0, and the ones in line say why.
#[test]
fn a_pool_of_4_runs_20_jobs_never_more_than_4_at_once() {
    let d = Daemon::start(&jobs(
        r#"
[group.uploads]
max_parallel = 4

[job.upload]
replicas = 20
group = "uploads"
command = ["sh", "-c", "sleep 0.4"]
start_secs = 0
autostart = false
"#,
    ));
    let mut sub = subscribe(&d);
    let started = Instant::now();
    d.ctl_ok(&["start", "--group", "uploads"]);
    // Some are in line, with the slot reason.
    let waiting = d
        .jobs()
        .into_iter()
        .filter(|j| j.state == JobState::Waiting)
        .collect::<Vec<_>>();
    assert!(!waiting.is_empty(), "nobody waits for a slot");
    for j in &waiting {
        assert_eq!(
            j.reason.as_deref(),
            Some("waiting for a slot in uploads (4 of 4 busy)"),
            "{j:?}"
        );
    }
    let out = d.ctl(&["wait", "--group", "uploads"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let (mut live, mut most, mut ended) = (0i32, 0i32, 0);
    let mut first_starts = Vec::new();
    while ended < 20 {
        let e = next_event(&mut sub);
        match (alive(&e["from"]), alive(&e["to"])) {
            (false, true) => {
                live += 1;
                first_starts.push(e["name"].as_str().unwrap_or_default().to_owned());
            }
            (true, false) => {
                live -= 1;
                ended += 1;
                assert_eq!(e["exitcode"], 0, "{e}");
            }
            _ => {}
        }
        most = most.max(live);
    }
    assert_eq!(most, 4, "at most 4 alive at once, and the 4 slots used");
    assert_eq!(first_starts.len(), 20);
    // First come first served: `start --group` asked in table order.
    let expected: Vec<String> = (0..20).map(|i| format!("upload-{i}")).collect();
    assert_eq!(first_starts, expected);
    // 5 rounds of 0.4s: well under what one at a time (8s) would take.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn terminate_takes_a_waiting_job_out_of_the_line_and_add_group_joins_it() {
    let d = Daemon::start(&jobs(
        r#"
[group.g]
max_parallel = 1

[job.a]
command = ["sleep", "300"]
group = "g"

[job.b]
command = ["sleep", "300"]
group = "g"
"#,
    ));
    d.running_pid("a");
    let b = d.wait_job("b", "waiting", |j| j.state == JobState::Waiting);
    assert_eq!(
        b.reason.as_deref(),
        Some("waiting for a slot in g (1 of 1 busy)")
    );
    let table = d.ctl_ok(&["status"]);
    assert!(
        table.contains("waiting for a slot in g (1 of 1 busy)"),
        "{table}"
    );
    d.ctl_ok(&["add", "c", "--group", "g", "--", "sleep", "300"]);
    let c = d.wait_job("c", "waiting", |j| j.state == JobState::Waiting);
    assert_eq!(c.reason, b.reason);
    // b leaves the line: stopped, by request; a keeps its slot; c moves up.
    d.ctl_ok(&["terminate", "b"]);
    let b = d.job("b");
    assert_eq!(
        (b.state, b.cause),
        (JobState::Stopped, Some(Cause::Stopped))
    );
    assert_eq!(b.pid, None);
    assert_eq!(d.job("a").state, JobState::Running);
    // When a's slot frees, c (still in line) gets it, not b.
    d.ctl_ok(&["terminate", "a"]);
    d.running_pid("c");
    assert_eq!(d.job("b").state, JobState::Stopped);
}

#[test]
fn a_job_that_always_fails_with_retries_2_runs_exactly_3_times() {
    let d = Daemon::start(&jobs(
        r#"
[job.flaky]
command = ["sh", "-c", "echo run >> runs; exit 3"]
start_secs = 0
retries = 2
backoff = "100ms"
"#,
    ));
    let out = d.ctl(&["wait", "flaky"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let j = d.job("flaky");
    assert_eq!(
        (j.state, j.exitcode, j.success),
        (JobState::Exited, Some(3), Some(false))
    );
    assert_eq!(count(&d, "runs"), 3, "the first run and 2 retries");
    assert_eq!(j.restarts, 2);
}

/// Three jobs on `every 2s` whose runs last 2.2s, one per overlap mode. From the event
/// stream: `skip` starts again only at a later tick (a gap of ~1.8s after each end),
/// `queue` starts the held run the moment the last one ends, `replace` stops the run at
/// the next tick (SIGTERM) and starts again. The gaps are told apart at 0.9s, so a busy
/// machine that delays a start by a few hundred milliseconds does not blur them.
#[test]
fn overlap_skip_queue_and_replace() {
    let d = Daemon::prepare(
        r#"
[defaults]
start_secs = 0
autostart = false

[job.skip]
command = ["sleep", "2.2"]
schedule = "every 2s"
overlap = "skip"

[job.queue]
command = ["sleep", "2.2"]
schedule = "every 2s"
overlap = "queue"

[job.replace]
command = ["sleep", "2.2"]
schedule = "every 2s"
overlap = "replace"
"#,
    )
    .launch(&[]);
    let mut sub = subscribe(&d);
    // `start` runs each now and arms its schedule.
    d.ctl_ok(&["start", "skip", "queue", "replace"]);
    // name -> (time the last run ended, gaps between an end and the next start)
    let mut ended: std::collections::HashMap<String, SystemTime> = Default::default();
    let mut gaps: std::collections::HashMap<String, Vec<Duration>> = Default::default();
    let mut replaced = false;
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        let e = next_event(&mut sub);
        let name = e["name"].as_str().unwrap_or_default().to_owned();
        match (alive(&e["from"]), alive(&e["to"])) {
            (true, false) => {
                if name == "replace" && e["cause"] == "stopped" && e["exitcode"] == -15 {
                    replaced = true;
                }
                ended.insert(name, at(&e));
            }
            (false, true) => {
                if let Some(t) = ended.remove(&name) {
                    let gap = at(&e).duration_since(t).unwrap_or(Duration::ZERO);
                    gaps.entry(name).or_default().push(gap);
                }
            }
            _ => {}
        }
        let enough = |n: &str| gaps.get(n).is_some_and(|g| g.len() >= 2);
        if replaced && enough("skip") && enough("queue") {
            break;
        }
    }
    assert!(replaced, "replace never stopped a run: {gaps:?}");
    let skip = &gaps["skip"];
    let queue = &gaps["queue"];
    assert!(
        skip.iter().all(|g| *g >= Duration::from_millis(900)),
        "skip restarted at once: {skip:?}"
    );
    assert!(
        queue.iter().all(|g| *g < Duration::from_millis(900)),
        "queue did not start the held run at once: {queue:?}"
    );
}

#[test]
fn schedule_and_pool_mistakes_are_load_errors_at_their_position() {
    for (body, at, says) in [
        (
            "[job.a]\ncommand = \"true\"\nschedule = \"0 25 * * *\"\n",
            "jobs.toml:3:12:",
            "is not a 5-field cron expression",
        ),
        (
            "[job.a]\ncommand = \"true\"\nschedule = \"0 3 * * *\"\ntimezone = \"Europe/Atlantis\"\n",
            "jobs.toml:4:12:",
            "unknown time zone \"Europe/Atlantis\"",
        ),
        (
            "[job.a]\ncommand = \"true\"\noverlap = \"skip\"\n",
            "jobs.toml:3:11:",
            "`overlap` needs `schedule`",
        ),
        (
            "[job.a]\ncommand = \"true\"\ncatch_up = true\n",
            "jobs.toml:3:12:",
            "`catch_up` needs `schedule`",
        ),
        (
            "[job.a]\ncommand = \"true\"\ntimezone = \"UTC\"\n",
            "jobs.toml:3:12:",
            "`timezone` needs `schedule`",
        ),
        (
            "[group.downloads]\nmax_parallel = 0\n[job.a]\ncommand = \"true\"\n",
            "jobs.toml:2:16:",
            "max_parallel = 0: at least 1",
        ),
    ] {
        let d = Daemon::prepare(body);
        let out = d.run_once();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_ne!(out.status.code(), Some(0), "{body}");
        assert!(err.contains(at) && err.contains(says), "{body}\n{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
}
