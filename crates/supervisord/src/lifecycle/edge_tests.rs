//! Unit tests for the edges mutation testing found unchecked: which starts reset the
//! restart count, which restarts count, and a run that lasted exactly `backoff`.

use super::*;
use crate::config;
use std::path::Path;
use JobState::*;

const T0: SystemTime = SystemTime::UNIX_EPOCH;

fn spec(extra: &str) -> JobSpec {
    let text = format!("[job.j]\ncommand = [\"x\"]\n{extra}\n");
    config::parse(Path::new("/t/jobs.toml"), &text)
        .expect("valid")
        .jobs
        .remove(0)
}

fn secs(n: u64) -> SystemTime {
    T0 + Duration::from_secs(n)
}

/// A job that ran (restarted once by its policy) and exited for good.
fn exited_after_one_restart() -> (JobSpec, Lifecycle) {
    let s = spec("restart = \"on-failure\"\nbackoff = \"1s\"");
    let mut l = Lifecycle::new();
    l.step(&s, Input::Start, T0);
    l.step(&s, Input::Spawned { pid: 7 }, T0);
    l.step(&s, Input::Timer(TimerKind::StartSecs), secs(1));
    l.step(&s, Input::Exited(1), secs(5));
    l.step(&s, Input::Spawned { pid: 8 }, secs(5));
    l.step(&s, Input::Timer(TimerKind::StartSecs), secs(6));
    l.step(&s, Input::Exited(0), secs(9));
    assert_eq!((l.state, l.restarts), (Exited, 1));
    (s, l)
}

#[test]
fn a_start_keeps_the_restart_count_unless_the_job_was_fatal() {
    let (s, mut l) = exited_after_one_restart();
    assert_eq!(
        l.step(&s, Input::Start, secs(10)).effects,
        vec![Effect::Spawn]
    );
    assert_eq!(l.restarts, 1, "a start of an exited job keeps the count");
}

#[test]
fn a_restart_counts_only_for_a_job_that_ran_or_waits_in_backoff() {
    // Never started: a restart is its first start, not a restart.
    let s = spec("");
    let mut l = Lifecycle::new();
    assert_eq!(l.step(&s, Input::Restart, T0).effects, vec![Effect::Spawn]);
    assert_eq!(l.restarts, 0);

    // Waiting in backoff after a failed spawn (it never started): counts.
    let s = spec("restart = \"always\"");
    let mut l = Lifecycle::new();
    l.step(&s, Input::Start, T0);
    l.step(&s, Input::SpawnFailed("e".into()), T0);
    assert_eq!((l.state, l.started_at), (Backoff, None));
    assert_eq!(l.step(&s, Input::Restart, T0).effects, vec![Effect::Spawn]);
    assert_eq!(l.restarts, 1);

    // Exited after a run: counts.
    let (s, mut l) = exited_after_one_restart();
    l.step(&s, Input::Restart, secs(10));
    assert_eq!(l.restarts(), 2);
}

#[test]
fn a_run_that_lasted_exactly_backoff_restarts_at_once() {
    let s = spec("restart = \"always\"\nstart_secs = 0\nbackoff = \"10s\"");
    let mut l = Lifecycle::new();
    l.step(&s, Input::Start, T0);
    l.step(&s, Input::Spawned { pid: 7 }, T0);
    let step = l.step(&s, Input::Exited(0), secs(10));
    assert_eq!(step.effects, vec![Effect::Spawn]);
    assert_eq!(l.state, Exited);
}

/// The read-only view the supervisor and `status` use says what the fields hold.
#[test]
fn the_accessors_read_the_runtime_state() {
    let s = spec("restart = \"on-failure\"\nstart_secs = 0\nmax_restarts = 5");
    let mut l = Lifecycle::new();
    assert_eq!((l.state(), l.epoch(), l.pid()), (Stopped, 0, None));
    l.step(&s, Input::Start, T0);
    l.step(&s, Input::Spawned { pid: 7 }, T0);
    assert_eq!((l.state(), l.pid()), (Running, Some(7)));
    assert_eq!((l.started_at(), l.ended_at()), (Some(T0), None));
    l.step(&s, Input::Exited(3), secs(5));
    assert_eq!(l.exitcode(), Some(3));
    assert_eq!(l.success(), Some(false));
    assert_eq!(l.ended_at(), Some(secs(5)));
    assert_eq!(l.cause(), Some(protocol::Cause::Exit));
    assert!(
        l.reason().is_some_and(|r| r.contains('3')),
        "{:?}",
        l.reason()
    );
    assert_eq!(l.restarts(), 1, "on-failure restarted it");
    l.step(&s, Input::Spawned { pid: 8 }, secs(5));
    l.step(&s, Input::Exited(0), secs(9));
    assert_eq!((l.exitcode(), l.success()), (Some(0), Some(true)));
    assert_eq!(l.pid(), None);
    assert!(l.epoch() > 1, "each change moves the epoch: {}", l.epoch());
    // A failed spawn: failures and the OS's words.
    let s = spec("restart = \"always\"\nmax_restarts = 5");
    let mut l = Lifecycle::new();
    l.step(&s, Input::Start, T0);
    l.step(&s, Input::SpawnFailed("no such file".into()), T0);
    l.step(&s, Input::Timer(TimerKind::Backoff), T0);
    l.step(&s, Input::SpawnFailed("no such file".into()), T0);
    assert_eq!(l.failures(), 2);
    assert_eq!(l.restarts(), 1);
    assert_eq!(l.spawn_error(), Some("no such file"));
}
