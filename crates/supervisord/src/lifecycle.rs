//! One job's state machine, as a plain function of (state, input) → (transitions, effects).
//!
//! Nothing here touches a process, a clock or a channel: the supervisor feeds inputs
//! (a request, a spawn result, an exit, a timer) and carries out the [`Effect`]s it gets
//! back. That keeps every rule of a job's states (docs/protocol.md, "Job states") and its restart policy unit-testable.
//!
//! Timers are identified by the job's `epoch`, which changes on every state change, so a
//! timer set in one state can never act in a later one.

use crate::config::{JobSpec, RestartPolicy};
use protocol::{describe_exit, Cause, JobState, Signal};
use std::time::{Duration, SystemTime};

/// Something that happened to a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A `start` request.
    Start,
    /// A `restart` request: stop (if alive), then start.
    Restart,
    /// A stop request, with the signal to send (the job's `stop_signal` unless overridden).
    Stop(Signal),
    /// The spawn the supervisor attempted worked.
    Spawned {
        /// The new process.
        pid: u32,
    },
    /// The spawn failed.
    SpawnFailed(String),
    /// The process ended: exit status `>= 0` or `-signal`.
    Exited(i32),
    /// The process ended (as [`Input::Exited`]), and the OOM killer killed a process of
    /// its run (the run's cgroup counted an `oom_kill`): outside a stop, cause `oom`.
    OomKilled(i32),
    /// A timer set by an [`Effect::Timer`] fired (already checked against the epoch).
    Timer(TimerKind),
    /// Its dependencies have not met their conditions: a job that is not alive waits,
    /// with this reason (a waiting job only takes the new reason).
    Hold(String),
    /// A dependency can no longer meet its condition: a waiting job settles as `fatal`,
    /// cause `dependency`, with this reason.
    DependencyFailed(String),
    /// Its ready check passed: a starting job is `running`.
    Ready,
    /// Its health check (or notify watchdog) gave up on it: stop it, with this cause and
    /// reason for the run's end, and start it again when `restart`.
    Unwell {
        /// `unhealthy` or `watchdog`.
        cause: Cause,
        /// In words.
        reason: String,
        /// Start it again once stopped.
        restart: bool,
    },
}

/// Which timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    /// `start_secs` passed since the spawn.
    StartSecs,
    /// `stop_timeout` passed since the stop signal.
    StopTimeout,
    /// The backoff delay passed.
    Backoff,
    /// The ready check's `timeout` passed since the spawn.
    ReadyTimeout,
    /// A scheduled job's next run is due. The supervisor handles it (never fed here):
    /// it carries the schedule's epoch, not the job's.
    Schedule,
}

/// What the supervisor must do for the job.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Spawn the job's process, then feed back `Spawned` or `SpawnFailed`.
    Spawn,
    /// Send this signal to the live process (or its group).
    Signal(Signal),
    /// Feed back `Timer(kind)` after this delay, unless the epoch has moved on.
    Timer(TimerKind, Duration),
}

/// A state change, which the supervisor publishes as an `Event`.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The state left.
    pub from: JobState,
    /// The state entered.
    pub to: JobState,
    /// The pid concerned.
    pub pid: Option<u32>,
    /// The exit, when the change is one.
    pub exitcode: Option<i32>,
    /// Why the job is no longer alive, when the change is an end (exit, failed spawn,
    /// stop of a job in backoff); `None` when it enters a live state.
    pub cause: Option<Cause>,
    /// The same in words.
    pub reason: Option<String>,
}

/// The outcome of one input.
#[derive(Debug, Default, PartialEq)]
pub struct Step {
    /// State changes, in order.
    pub transitions: Vec<Transition>,
    /// Work for the supervisor, in order.
    pub effects: Vec<Effect>,
}

/// A past run's end, as [`Lifecycle::remembered`] takes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Remembered {
    /// Its exit.
    pub exitcode: Option<i32>,
    /// Whether the exit counted as success.
    pub success: Option<bool>,
    /// When it started.
    pub started_at: Option<SystemTime>,
    /// When it ended.
    pub ended_at: Option<SystemTime>,
    /// Why its spawn failed.
    pub spawn_error: Option<String>,
    /// Why it ended.
    pub cause: Option<Cause>,
    /// The same in words.
    pub reason: Option<String>,
}

/// A job's runtime state. The fields are private: only [`Lifecycle::step`] changes them,
/// so the invariants it keeps (a live state has a pid, an epoch moves with every
/// transition, `cause` is set exactly when the job stopped being alive) cannot be broken
/// from outside.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    state: JobState,
    epoch: u64,
    pid: Option<u32>,
    exitcode: Option<i32>,
    success: Option<bool>,
    restarts: u32,
    failures: u32,
    /// Failed runs in a row (quick or not), for `retries`.
    retried: u32,
    started_at: Option<SystemTime>,
    ended_at: Option<SystemTime>,
    spawn_error: Option<String>,
    cause: Option<Cause>,
    reason: Option<String>,
    /// Start again once the stop in progress completes.
    restart_after_stop: bool,
    /// The stop in progress was escalated to SIGKILL after `stop_timeout`.
    escalated: bool,
    /// Stops completed (a `stopping` or `backoff` job reaching `stopped`). A request that
    /// stops a job answers once this moves past what it was when the request came, even
    /// if a `start` that crossed it has already started the job again.
    stops: u64,
    /// The signal the stop in progress sent.
    stop_sent: Option<Signal>,
    /// Why the stop in progress was decided by supervisord itself (a ready timeout, a
    /// health check, a watchdog): the run's cause once it ends.
    stop_cause: Option<(Cause, String)>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle::new()
    }
}

impl Lifecycle {
    /// A job that has not run.
    pub fn new() -> Self {
        Lifecycle {
            state: JobState::Stopped,
            epoch: 0,
            pid: None,
            exitcode: None,
            success: None,
            restarts: 0,
            failures: 0,
            retried: 0,
            started_at: None,
            ended_at: None,
            spawn_error: None,
            cause: None,
            reason: None,
            restart_after_stop: false,
            escalated: false,
            stops: 0,
            stop_sent: None,
            stop_cause: None,
        }
    }

    /// A job that is not running and whose last run, remembered from the run history of
    /// an earlier supervisord, ended this way: `state` is the settled state it ended in
    /// (`stopped`, `exited` or `fatal`; any other state is taken as `exited`).
    pub fn remembered(state: JobState, run: &Remembered) -> Self {
        let state = match state {
            JobState::Stopped | JobState::Exited | JobState::Fatal => state,
            _ => JobState::Exited,
        };
        Lifecycle {
            state,
            exitcode: run.exitcode,
            success: run.success,
            started_at: run.started_at,
            ended_at: run.ended_at,
            spawn_error: run.spawn_error.clone(),
            cause: run.cause,
            reason: run.reason.clone(),
            ..Lifecycle::new()
        }
    }

    /// Stops completed so far (see the field).
    pub fn stops(&self) -> u64 {
        self.stops
    }

    /// The current state.
    pub fn state(&self) -> JobState {
        self.state
    }

    /// Changes on every state change; timers carry it.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The live process.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The last run's exit.
    pub fn exitcode(&self) -> Option<i32> {
        self.exitcode
    }

    /// Whether the last run's exit counts as success.
    pub fn success(&self) -> Option<bool> {
        self.success
    }

    /// Restarts so far (by policy or by request).
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Failed starts in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Failed runs in a row (quick or not), which `retries` bounds.
    pub fn retried(&self) -> u32 {
        self.retried
    }

    /// When the current or last run started.
    pub fn started_at(&self) -> Option<SystemTime> {
        self.started_at
    }

    /// When the last run ended.
    pub fn ended_at(&self) -> Option<SystemTime> {
        self.ended_at
    }

    /// Why the last spawn failed.
    pub fn spawn_error(&self) -> Option<&str> {
        self.spawn_error.as_deref()
    }

    /// Why the last run ended, or why the job is not running.
    pub fn cause(&self) -> Option<Cause> {
        self.cause
    }

    /// [`cause`](Self::cause) in words.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// Whether a restart waits for the stop in progress.
    pub fn restart_pending(&self) -> bool {
        self.restart_after_stop
    }

    /// Feed one input.
    pub fn step(&mut self, spec: &JobSpec, input: Input, now: SystemTime) -> Step {
        let mut step = Step::default();
        use JobState::*;
        let (input, oom) = match input {
            Input::OomKilled(code) => (Input::Exited(code), true),
            other => (other, false),
        };
        match (self.state, input) {
            (Stopped | Exited | Fatal | Backoff, Input::Hold(reason)) => {
                self.reason = Some(reason);
                self.transition(Waiting, None, None, &mut step);
            }
            (Waiting, Input::Hold(reason)) => self.reason = Some(reason),
            (_, Input::Hold(_)) => {}
            (Waiting, Input::DependencyFailed(reason)) => {
                self.because(Cause::Dependency, reason);
                self.transition(Fatal, None, None, &mut step);
            }
            (_, Input::DependencyFailed(_)) => {}
            (Waiting, Input::Start | Input::Restart) => {
                self.failures = 0;
                step.effects.push(Effect::Spawn);
            }
            (Waiting, Input::Stop(_)) => {
                self.because(Cause::Stopped, STOPPED_BY_REQUEST.to_owned());
                self.transition(Stopped, None, None, &mut step);
            }
            (Waiting, Input::Exited(_)) => {}
            (Starting, Input::Ready) => {
                self.failures = 0;
                self.transition(Running, self.pid, None, &mut step);
            }
            (_, Input::Ready) => {}
            // With a ready check, only the check makes a start `running`.
            (Starting, Input::Timer(TimerKind::StartSecs)) if spec.ready.is_some() => {}
            (
                Starting | Running,
                Input::Unwell {
                    cause,
                    reason,
                    restart,
                },
            ) => {
                self.stop_cause = Some((cause, reason));
                self.restart_after_stop = restart;
                self.stop(spec.stop_signal, spec, &mut step);
            }
            (_, Input::Unwell { .. }) => {}
            (Starting, Input::Timer(TimerKind::ReadyTimeout)) => {
                let timeout = spec.ready.as_ref().map_or(Duration::ZERO, |r| r.timeout);
                self.stop_cause = Some((
                    Cause::NotReady,
                    format!("not ready within {}", humantime::format_duration(timeout)),
                ));
                self.restart_after_stop = false;
                self.stop(spec.stop_signal, spec, &mut step);
            }
            (Stopping, Input::Exited(code)) if self.stop_cause.is_some() => {
                let pid = self.ended(spec, code, now);
                let Some((cause, reason)) = self.stop_cause.take() else {
                    return step;
                };
                let failed_start = cause == Cause::NotReady;
                self.because(cause, reason);
                if failed_start && !self.restart_after_stop {
                    self.failures += 1;
                    if spec.restart == RestartPolicy::Never || self.failures > spec.max_restarts {
                        self.transition(Fatal, pid, Some(code), &mut step);
                    } else {
                        self.transition(Backoff, pid, Some(code), &mut step);
                        step.effects.push(Effect::Timer(
                            TimerKind::Backoff,
                            spec.backoff_delay(self.failures),
                        ));
                    }
                } else {
                    self.transition(Stopped, pid, Some(code), &mut step);
                    if std::mem::take(&mut self.restart_after_stop) {
                        self.restarts += 1;
                        self.failures = 0;
                        step.effects.push(Effect::Spawn);
                    }
                }
            }
            (Starting | Running, Input::Start) => {}
            (Stopping, Input::Start | Input::Restart) => self.restart_after_stop = true,
            (Backoff | Stopped | Exited | Fatal, Input::Start) => {
                if self.state == Fatal {
                    self.restarts = 0;
                }
                self.failures = 0;
                self.retried = 0;
                step.effects.push(Effect::Spawn);
            }
            (Starting | Running, Input::Restart) => {
                self.restart_after_stop = true;
                self.stop(spec.stop_signal, spec, &mut step);
            }
            (Backoff | Stopped | Exited | Fatal, Input::Restart) => {
                if self.started_at.is_some() || self.state == Backoff {
                    self.restarts += 1;
                }
                self.failures = 0;
                self.retried = 0;
                step.effects.push(Effect::Spawn);
            }
            (Starting | Running, Input::Stop(sig)) => {
                self.restart_after_stop = false;
                self.stop(sig, spec, &mut step);
            }
            (Stopping, Input::Stop(sig)) => {
                self.restart_after_stop = false;
                // A different signal (`terminate --signal KILL` on a job that ignores its
                // stop signal) goes out at once; the stop timeout keeps running.
                if self.stop_sent != Some(sig) {
                    self.stop_sent = Some(sig);
                    step.effects.push(Effect::Signal(sig));
                }
            }
            (Backoff, Input::Stop(_)) => {
                self.because(Cause::Stopped, STOPPED_BY_REQUEST.to_owned());
                self.transition(Stopped, None, None, &mut step);
            }
            (Stopped | Exited | Fatal, Input::Stop(_)) => {}
            (_, Input::Spawned { pid }) => {
                self.pid = Some(pid);
                self.exitcode = None;
                self.success = None;
                self.spawn_error = None;
                self.started_at = Some(now);
                self.ended_at = None;
                self.cause = None;
                self.reason = None;
                self.escalated = false;
                self.stop_cause = None;
                self.transition(Starting, Some(pid), None, &mut step);
                if let Some(ready) = &spec.ready {
                    step.effects
                        .push(Effect::Timer(TimerKind::ReadyTimeout, ready.timeout));
                } else if spec.start_secs.is_zero() {
                    self.failures = 0;
                    self.transition(Running, Some(pid), None, &mut step);
                } else {
                    step.effects
                        .push(Effect::Timer(TimerKind::StartSecs, spec.start_secs));
                }
            }
            (_, Input::SpawnFailed(error)) => {
                self.pid = None;
                self.because(Cause::SpawnError, format!("cannot spawn: {error}"));
                self.spawn_error = Some(error);
                self.ended_at = Some(now);
                self.failures += 1;
                if spec.restart == RestartPolicy::Never || self.failures > spec.max_restarts {
                    self.transition(Fatal, None, None, &mut step);
                } else {
                    self.backoff(spec, &mut step);
                }
            }
            (Starting, Input::Timer(TimerKind::StartSecs)) => {
                self.failures = 0;
                self.transition(Running, self.pid, None, &mut step);
            }
            (Stopping, Input::Timer(TimerKind::StopTimeout)) => {
                self.escalated = true;
                step.effects.push(Effect::Signal(Signal::Kill));
            }
            (Backoff, Input::Timer(TimerKind::Backoff)) => {
                self.restarts += 1;
                step.effects.push(Effect::Spawn);
            }
            (_, Input::Timer(_)) => {}
            (Stopping, Input::Exited(code)) => {
                let pid = self.ended(spec, code, now);
                if self.escalated {
                    self.because(
                        Cause::StopTimeout,
                        format!(
                            "killed with SIGKILL after stop_timeout {}",
                            humantime::format_duration(spec.stop_timeout)
                        ),
                    );
                } else {
                    self.because(Cause::Stopped, STOPPED_BY_REQUEST.to_owned());
                }
                self.transition(Stopped, pid, Some(code), &mut step);
                if std::mem::take(&mut self.restart_after_stop) {
                    self.restarts += 1;
                    self.failures = 0;
                    step.effects.push(Effect::Spawn);
                }
            }
            (Starting | Running, Input::Exited(code)) => {
                let failed_start = self.state == Starting;
                let pid = self.ended(spec, code, now);
                let cause = if oom {
                    Cause::Oom
                } else if code >= 0 {
                    Cause::Exit
                } else {
                    Cause::Signal
                };
                let reason = if oom {
                    format!(
                        "the OOM killer killed a process of the run ({})",
                        describe_exit(code)
                    )
                } else {
                    describe_exit(code)
                };
                self.because(cause, reason);
                let failed = self.success != Some(true);
                self.retried = if failed { self.retried + 1 } else { 0 };
                // `retries = N`: a failed run is run again up to N times in a row, whatever
                // the policy; past that the job settles with its failure.
                let retry = failed && spec.retries.is_some_and(|n| self.retried <= n);
                let spent = failed && spec.retries.is_some_and(|n| self.retried > n);
                let again = !spent
                    && (retry
                        || match spec.restart {
                            RestartPolicy::Never => false,
                            RestartPolicy::OnFailure => failed,
                            RestartPolicy::Always => true,
                        });
                if !again {
                    self.transition(Exited, pid, Some(code), &mut step);
                } else if failed_start {
                    self.failures += 1;
                    if self.failures > spec.max_restarts {
                        self.transition(Fatal, pid, Some(code), &mut step);
                    } else {
                        self.transition(Backoff, pid, Some(code), &mut step);
                        step.effects.push(Effect::Timer(
                            TimerKind::Backoff,
                            spec.backoff_delay(self.failures),
                        ));
                    }
                } else if retry {
                    // A retry of a run that lasted waits for the backoff, doubled per
                    // failed run in a row.
                    self.transition(Backoff, pid, Some(code), &mut step);
                    step.effects.push(Effect::Timer(
                        TimerKind::Backoff,
                        spec.backoff_delay(self.retried),
                    ));
                } else {
                    // A run that counted as started is restarted at once, but never
                    // sooner than `backoff` after it started: with a short (or zero)
                    // start_secs, a job that keeps ending would otherwise fork in a hot
                    // loop without ever counting as failing.
                    let ran = self
                        .started_at
                        .and_then(|t| now.duration_since(t).ok())
                        .unwrap_or(Duration::MAX);
                    let least = spec.backoff.min(crate::config::MAX_BACKOFF);
                    if ran < least {
                        self.transition(Backoff, pid, Some(code), &mut step);
                        step.effects
                            .push(Effect::Timer(TimerKind::Backoff, least - ran));
                    } else {
                        self.transition(Exited, pid, Some(code), &mut step);
                        self.restarts += 1;
                        step.effects.push(Effect::Spawn);
                    }
                }
            }
            // An exit for a job with no live process cannot come from its current run.
            (Stopped | Exited | Fatal | Backoff, Input::Exited(_)) => {}
            // Turned into `Exited` above.
            (_, Input::OomKilled(_)) => {}
        }
        step
    }

    fn stop(&mut self, sig: Signal, spec: &JobSpec, step: &mut Step) {
        self.stop_sent = Some(sig);
        self.transition(JobState::Stopping, self.pid, None, step);
        step.effects.push(Effect::Signal(sig));
        step.effects
            .push(Effect::Timer(TimerKind::StopTimeout, spec.stop_timeout));
    }

    fn backoff(&mut self, spec: &JobSpec, step: &mut Step) {
        self.transition(JobState::Backoff, None, None, step);
        step.effects.push(Effect::Timer(
            TimerKind::Backoff,
            spec.backoff_delay(self.failures),
        ));
    }

    fn because(&mut self, cause: Cause, reason: String) {
        self.cause = Some(cause);
        self.reason = Some(reason);
    }

    /// Record an exit; returns the pid that ended.
    fn ended(&mut self, spec: &JobSpec, code: i32, now: SystemTime) -> Option<u32> {
        self.exitcode = Some(code);
        self.success = Some(spec.is_success(code));
        self.ended_at = Some(now);
        self.pid.take()
    }

    fn transition(
        &mut self,
        to: JobState,
        pid: Option<u32>,
        exitcode: Option<i32>,
        step: &mut Step,
    ) {
        let from = self.state;
        self.state = to;
        self.epoch += 1;
        let ended = !to.is_alive();
        if to == JobState::Stopped
            && matches!(
                from,
                JobState::Stopping | JobState::Backoff | JobState::Waiting
            )
        {
            self.stops += 1;
        }
        step.transitions.push(Transition {
            from,
            to,
            pid,
            exitcode,
            cause: self.cause.filter(|_| ended),
            reason: self.reason.clone().filter(|_| ended),
        });
    }
}

/// The reason of a job ended by a stop, terminate, restart or shutdown.
pub const STOPPED_BY_REQUEST: &str = "stopped by request";

#[cfg(test)]
mod edge_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use std::path::Path;

    fn spec(extra: &str) -> JobSpec {
        let text = format!("[job.j]\ncommand = [\"x\"]\n{extra}\n");
        config::parse(Path::new("/t/jobs.toml"), &text)
            .expect("valid")
            .jobs
            .remove(0)
    }

    fn states(step: &Step) -> Vec<(JobState, JobState)> {
        step.transitions.iter().map(|t| (t.from, t.to)).collect()
    }

    const T0: SystemTime = SystemTime::UNIX_EPOCH;
    use JobState::*;

    fn started(spec: &JobSpec, l: &mut Lifecycle) {
        assert_eq!(l.step(spec, Input::Start, T0).effects, vec![Effect::Spawn]);
        l.step(spec, Input::Spawned { pid: 7 }, T0);
    }

    /// Run to its end with `code` after `ran` (from spawn), and return the step.
    fn run_and_exit(s: &JobSpec, l: &mut Lifecycle, code: i32, ran: Duration) -> Step {
        l.step(s, Input::Spawned { pid: 7 }, T0);
        if !s.start_secs.is_zero() && ran >= s.start_secs {
            l.step(s, Input::Timer(TimerKind::StartSecs), T0);
        }
        l.step(s, Input::Exited(code), T0 + ran)
    }

    #[test]
    fn retries_run_a_failed_run_again_n_times_then_it_settles_exited() {
        // restart = "never": a one-shot retry, spaced by the doubling backoff.
        let s = spec("retries = 2\nstart_secs = 0\nbackoff = \"2s\"");
        let mut l = Lifecycle::new();
        l.step(&s, Input::Start, T0);
        let mut runs = 0;
        let mut delays = Vec::new();
        loop {
            runs += 1;
            let step = run_and_exit(&s, &mut l, 1, Duration::from_secs(30));
            match step.effects.as_slice() {
                [Effect::Timer(TimerKind::Backoff, d)] => delays.push(*d),
                [] => break,
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(l.state(), Backoff);
            assert_eq!(
                l.step(&s, Input::Timer(TimerKind::Backoff), T0).effects,
                vec![Effect::Spawn]
            );
        }
        assert_eq!(runs, 3, "the first run and 2 retries");
        assert_eq!(delays, [Duration::from_secs(2), Duration::from_secs(4)]);
        assert_eq!(
            (l.state(), l.success(), l.retried()),
            (Exited, Some(false), 3)
        );
        // A new start is a new series.
        l.step(&s, Input::Start, T0);
        assert_eq!(l.retried(), 0);
    }

    #[test]
    fn retries_count_quick_failures_too_and_a_success_resets_them() {
        let s = spec("retries = 1\nstart_secs = \"5s\"");
        let mut l = Lifecycle::new();
        l.step(&s, Input::Start, T0);
        let step = run_and_exit(&s, &mut l, 1, Duration::from_secs(1));
        assert_eq!(
            states(&step),
            vec![(Starting, Backoff)],
            "a quick failure is retried"
        );
        assert_eq!(l.failures(), 1);
        l.step(&s, Input::Timer(TimerKind::Backoff), T0);
        let step = run_and_exit(&s, &mut l, 1, Duration::from_secs(1));
        assert_eq!(states(&step), vec![(Starting, Exited)], "retries spent");
        // With on-failure, a success in between starts the count again.
        let s = spec("retries = 1\nstart_secs = 0\nrestart = \"always\"");
        let mut l = Lifecycle::new();
        l.step(&s, Input::Start, T0);
        let long = Duration::from_secs(60);
        assert_eq!(
            states(&run_and_exit(&s, &mut l, 1, long)),
            vec![(Running, Backoff)]
        );
        l.step(&s, Input::Timer(TimerKind::Backoff), T0);
        assert_eq!(
            states(&run_and_exit(&s, &mut l, 0, long)),
            vec![(Running, Exited)]
        );
        assert_eq!(
            l.retried(),
            0,
            "a success ends the series; always restarts it"
        );
        assert_eq!(
            states(&run_and_exit(&s, &mut l, 1, long)),
            vec![(Running, Backoff)]
        );
        l.step(&s, Input::Timer(TimerKind::Backoff), T0);
        let step = run_and_exit(&s, &mut l, 1, long);
        assert_eq!(
            states(&step),
            vec![(Running, Exited)],
            "two failures in a row: bounded"
        );
        assert!(step.effects.is_empty());
    }

    #[test]
    fn max_restarts_still_makes_quick_failures_fatal_before_retries_run_out() {
        let s =
            spec("retries = 10\nmax_restarts = 1\nstart_secs = \"5s\"\nrestart = \"on-failure\"");
        let mut l = Lifecycle::new();
        l.step(&s, Input::Start, T0);
        run_and_exit(&s, &mut l, 1, Duration::from_secs(1));
        l.step(&s, Input::Timer(TimerKind::Backoff), T0);
        let step = run_and_exit(&s, &mut l, 1, Duration::from_secs(1));
        assert_eq!(states(&step), vec![(Starting, Fatal)]);
        // Without retries, on-failure stays unbounded for runs that lasted.
        let s = spec("start_secs = 0\nrestart = \"on-failure\"\nbackoff = \"1s\"");
        let mut l = Lifecycle::new();
        l.step(&s, Input::Start, T0);
        for _ in 0..20 {
            let step = run_and_exit(&s, &mut l, 1, Duration::from_secs(60));
            assert_eq!(step.effects, vec![Effect::Spawn]);
        }
    }

    #[test]
    fn a_held_job_waits_keeps_its_cause_and_settles_fatal_when_its_dependency_fails() {
        let s = spec("start_secs = 0");
        let mut l = Lifecycle::new();
        let step = l.step(&s, Input::Hold("waiting for db (running)".into()), T0);
        assert_eq!(states(&step), vec![(Stopped, Waiting)]);
        assert_eq!(l.reason(), Some("waiting for db (running)"));
        assert!(!l.state().is_alive() && !l.state().is_settled());
        // A new reason only rewords it.
        let step = l.step(&s, Input::Hold("waiting for db (healthy)".into()), T0);
        assert!(step.transitions.is_empty());
        assert_eq!(l.reason(), Some("waiting for db (healthy)"));
        let step = l.step(&s, Input::DependencyFailed("db is fatal".into()), T0);
        assert_eq!(states(&step), vec![(Waiting, Fatal)]);
        assert_eq!(
            (l.cause(), l.reason()),
            (Some(Cause::Dependency), Some("db is fatal"))
        );
        // Released: it spawns; stopped while waiting: it is stopped by request.
        l.step(&s, Input::Hold("w".into()), T0);
        assert_eq!(l.step(&s, Input::Start, T0).effects, vec![Effect::Spawn]);
        let before = l.stops();
        l.step(&s, Input::Stop(Signal::Term), T0);
        assert_eq!((l.state(), l.cause()), (Stopped, Some(Cause::Stopped)));
        assert_eq!(l.stops(), before + 1);
    }

    #[test]
    fn with_a_ready_check_only_ready_makes_it_running_and_a_timeout_is_a_failed_start() {
        let s = spec("restart = \"on-failure\"\nmax_restarts = 1\n[job.j.ready]\ntcp = \"h:1\"\ntimeout = \"5s\"");
        let mut l = Lifecycle::new();
        l.step(&s, Input::Start, T0);
        let step = l.step(&s, Input::Spawned { pid: 7 }, T0);
        assert_eq!(
            step.effects,
            vec![Effect::Timer(
                TimerKind::ReadyTimeout,
                Duration::from_secs(5)
            )]
        );
        assert!(l
            .step(&s, Input::Timer(TimerKind::StartSecs), T0)
            .transitions
            .is_empty());
        let step = l.step(&s, Input::Timer(TimerKind::ReadyTimeout), T0);
        assert_eq!(states(&step), vec![(Starting, Stopping)]);
        let step = l.step(&s, Input::Exited(-15), T0);
        assert_eq!(states(&step), vec![(Stopping, Backoff)]);
        assert_eq!(
            (l.cause(), l.reason()),
            (Some(Cause::NotReady), Some("not ready within 5s"))
        );
        assert_eq!(l.failures(), 1);
        l.step(&s, Input::Timer(TimerKind::Backoff), T0);
        l.step(&s, Input::Spawned { pid: 8 }, T0);
        let step = l.step(&s, Input::Ready, T0);
        assert_eq!(states(&step), vec![(Starting, Running)]);
        assert_eq!(l.failures(), 0);
    }

    #[test]
    fn unwell_stops_with_its_cause_and_starts_again_when_asked() {
        let s = spec("start_secs = 0");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        let unwell = Input::Unwell {
            cause: Cause::Unhealthy,
            reason: "unhealthy (3 failed: refused)".into(),
            restart: true,
        };
        l.step(&s, unwell, T0);
        assert_eq!(l.state(), Stopping);
        let step = l.step(&s, Input::Exited(-15), T0);
        assert_eq!(states(&step), vec![(Stopping, Stopped)]);
        assert_eq!(step.transitions[0].cause, Some(Cause::Unhealthy));
        assert_eq!(step.effects, vec![Effect::Spawn]);
    }

    #[test]
    fn a_different_stop_signal_while_stopping_goes_out_at_once() {
        let s = spec("start_secs = 0");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        l.step(&s, Input::Stop(Signal::Term), T0);
        // The same signal again is not repeated.
        assert!(l.step(&s, Input::Stop(Signal::Term), T0).effects.is_empty());
        let step = l.step(&s, Input::Stop(Signal::Kill), T0);
        assert_eq!(step.effects, vec![Effect::Signal(Signal::Kill)]);
        assert!(step.transitions.is_empty());
        assert_eq!(l.state, Stopping);
    }

    #[test]
    fn a_stop_crossed_by_a_start_still_counts_as_a_completed_stop() {
        let s = spec("start_secs = 0");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        l.step(&s, Input::Stop(Signal::Term), T0);
        let before = l.stops;
        l.step(&s, Input::Start, T0);
        let step = l.step(&s, Input::Exited(-15), T0);
        assert_eq!(states(&step), vec![(Stopping, Stopped)]);
        assert_eq!(step.effects, vec![Effect::Spawn]);
        assert_eq!(l.stops, before + 1);
    }

    #[test]
    fn the_least_time_between_restarts_is_capped_like_the_backoff() {
        let s = spec("start_secs = 0\nrestart = \"always\"\nbackoff = \"10d\"");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        let step = l.step(&s, Input::Exited(0), T0);
        assert_eq!(
            step.effects,
            vec![Effect::Timer(
                TimerKind::Backoff,
                crate::config::MAX_BACKOFF
            )]
        );
    }

    #[test]
    fn start_runs_after_start_secs() {
        let s = spec("start_secs = \"1s\"");
        let mut l = Lifecycle::new();
        assert_eq!(l.step(&s, Input::Start, T0).effects, vec![Effect::Spawn]);
        let step = l.step(&s, Input::Spawned { pid: 7 }, T0);
        assert_eq!(states(&step), vec![(Stopped, Starting)]);
        assert_eq!(
            step.effects,
            vec![Effect::Timer(TimerKind::StartSecs, Duration::from_secs(1))]
        );
        assert!(l.state.is_alive());
        let step = l.step(&s, Input::Timer(TimerKind::StartSecs), T0);
        assert_eq!(states(&step), vec![(Starting, Running)]);
        assert_eq!(l.pid, Some(7));
    }

    #[test]
    fn zero_start_secs_is_running_at_once() {
        let s = spec("start_secs = 0");
        let mut l = Lifecycle::new();
        l.step(&s, Input::Start, T0);
        let step = l.step(&s, Input::Spawned { pid: 7 }, T0);
        assert_eq!(
            states(&step),
            vec![(Stopped, Starting), (Starting, Running)]
        );
    }

    #[test]
    fn exit_with_restart_never_is_exited() {
        let s = spec("");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        let step = l.step(&s, Input::Exited(3), T0);
        assert_eq!(states(&step), vec![(Starting, Exited)]);
        assert!(step.effects.is_empty());
        assert_eq!((l.exitcode, l.success, l.pid), (Some(3), Some(false), None));
    }

    #[test]
    fn stop_sends_signal_then_kill_after_timeout() {
        let s = spec("stop_timeout = \"2s\"\nstop_signal = \"INT\"");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        let step = l.step(&s, Input::Stop(Signal::Int), T0);
        assert_eq!(states(&step), vec![(Starting, Stopping)]);
        assert_eq!(
            step.effects,
            vec![
                Effect::Signal(Signal::Int),
                Effect::Timer(TimerKind::StopTimeout, Duration::from_secs(2))
            ]
        );
        let step = l.step(&s, Input::Timer(TimerKind::StopTimeout), T0);
        assert_eq!(step.effects, vec![Effect::Signal(Signal::Kill)]);
        let step = l.step(&s, Input::Exited(-9), T0);
        assert_eq!(states(&step), vec![(Stopping, Stopped)]);
        assert_eq!(step.transitions[0].exitcode, Some(-9));
        assert_eq!(l.success, Some(false));
    }

    #[test]
    fn stopped_job_is_never_restarted() {
        let s = spec("restart = \"always\"");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        l.step(&s, Input::Stop(Signal::Term), T0);
        let step = l.step(&s, Input::Exited(-15), T0);
        assert_eq!(states(&step), vec![(Stopping, Stopped)]);
        assert!(step.effects.is_empty());
    }

    #[test]
    fn on_failure_backs_off_doubling_then_fatal() {
        let s = spec("restart = \"on-failure\"\nmax_restarts = 2\nbackoff = \"1s\"");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        let step = l.step(&s, Input::Exited(1), T0);
        assert_eq!(states(&step), vec![(Starting, Backoff)]);
        assert_eq!(
            step.effects,
            vec![Effect::Timer(TimerKind::Backoff, Duration::from_secs(1))]
        );
        assert_eq!(
            l.step(&s, Input::Timer(TimerKind::Backoff), T0).effects,
            vec![Effect::Spawn]
        );
        assert_eq!(l.restarts, 1);
        l.step(&s, Input::Spawned { pid: 8 }, T0);
        let step = l.step(&s, Input::Exited(1), T0);
        assert_eq!(
            step.effects,
            vec![Effect::Timer(TimerKind::Backoff, Duration::from_secs(2))]
        );
        l.step(&s, Input::Timer(TimerKind::Backoff), T0);
        l.step(&s, Input::Spawned { pid: 9 }, T0);
        let step = l.step(&s, Input::Exited(1), T0);
        assert_eq!(states(&step), vec![(Starting, Fatal)]);
        assert!(step.effects.is_empty());
        assert_eq!(l.restarts, 2);
        assert!(l.state.is_settled());
    }

    /// Failed starts wait 5, 10, 20, 40 s (three doublings), then the 60 s cap, and stay
    /// there: linear growth or a missing cap fails this.
    #[test]
    fn backoff_doubles_per_failed_start_up_to_the_cap() {
        let s = spec("restart = \"on-failure\"\nmax_restarts = 10\nbackoff = \"5s\"");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        let mut delays = Vec::new();
        for pid in 10..16 {
            let step = l.step(&s, Input::Exited(1), T0);
            assert_eq!(states(&step), vec![(Starting, Backoff)]);
            match step.effects.as_slice() {
                [Effect::Timer(TimerKind::Backoff, d)] => delays.push(d.as_secs()),
                other => panic!("expected one backoff timer, got {other:?}"),
            }
            assert_eq!(
                l.step(&s, Input::Timer(TimerKind::Backoff), T0).effects,
                vec![Effect::Spawn]
            );
            l.step(&s, Input::Spawned { pid }, T0);
        }
        assert_eq!(delays, [5, 10, 20, 40, 60, 60]);
        assert_eq!(l.restarts, 6);
    }

    #[test]
    fn on_failure_success_is_not_restarted() {
        let s = spec("restart = \"on-failure\"\nexit_codes = [0, 2]");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        let step = l.step(&s, Input::Exited(2), T0);
        assert_eq!(states(&step), vec![(Starting, Exited)]);
        assert_eq!(l.success, Some(true));
    }

    fn secs(n: u64) -> SystemTime {
        T0 + Duration::from_secs(n)
    }

    #[test]
    fn always_restarts_a_run_that_lasted_at_once() {
        let s = spec("restart = \"always\"\nbackoff = \"1s\"");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        l.step(&s, Input::Timer(TimerKind::StartSecs), T0);
        let step = l.step(&s, Input::Exited(0), secs(5));
        assert_eq!(states(&step), vec![(Running, Exited)]);
        assert_eq!(step.effects, vec![Effect::Spawn]);
        assert_eq!(l.restarts, 1);
    }

    #[test]
    fn a_run_shorter_than_backoff_waits_out_the_rest_of_it() {
        let s = spec("restart = \"always\"\nstart_secs = 0\nbackoff = \"10s\"\nmax_restarts = 0");
        let mut l = Lifecycle::new();
        l.step(&s, Input::Start, T0);
        l.step(&s, Input::Spawned { pid: 7 }, T0);
        assert_eq!(l.state, Running, "start_secs = 0: running at once");
        let step = l.step(&s, Input::Exited(0), secs(4));
        assert_eq!(states(&step), vec![(Running, Backoff)]);
        assert_eq!(
            step.effects,
            vec![Effect::Timer(TimerKind::Backoff, Duration::from_secs(6))]
        );
        assert_eq!(l.failures, 0, "not a failed start: never fatal for it");
        assert_eq!(
            l.step(&s, Input::Timer(TimerKind::Backoff), secs(10))
                .effects,
            vec![Effect::Spawn]
        );
        assert_eq!(l.restarts, 1);
    }

    #[test]
    fn a_run_that_lasts_resets_the_backoff() {
        let s = spec("restart = \"always\"\nmax_restarts = 1");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        l.step(&s, Input::Exited(1), T0);
        assert_eq!(l.failures, 1);
        l.step(&s, Input::Timer(TimerKind::Backoff), T0);
        l.step(&s, Input::Spawned { pid: 8 }, T0);
        l.step(&s, Input::Timer(TimerKind::StartSecs), T0);
        assert_eq!(l.failures, 0);
        // Fails quickly again: one failure, not fatal.
        l.step(&s, Input::Exited(1), T0);
        l.step(&s, Input::Timer(TimerKind::Backoff), T0);
        l.step(&s, Input::Spawned { pid: 9 }, T0);
        let step = l.step(&s, Input::Exited(1), T0);
        assert_eq!(states(&step), vec![(Starting, Backoff)]);
    }

    #[test]
    fn spawn_error_with_never_is_fatal() {
        let s = spec("");
        let mut l = Lifecycle::new();
        l.step(&s, Input::Start, T0);
        let step = l.step(&s, Input::SpawnFailed("no such file".into()), T0);
        assert_eq!(states(&step), vec![(Stopped, Fatal)]);
        assert_eq!(l.spawn_error.as_deref(), Some("no such file"));
    }

    #[test]
    fn spawn_error_with_policy_backs_off_then_fatal() {
        let s = spec("restart = \"always\"\nmax_restarts = 1");
        let mut l = Lifecycle::new();
        l.step(&s, Input::Start, T0);
        let step = l.step(&s, Input::SpawnFailed("e".into()), T0);
        assert_eq!(states(&step), vec![(Stopped, Backoff)]);
        l.step(&s, Input::Timer(TimerKind::Backoff), T0);
        let step = l.step(&s, Input::SpawnFailed("e".into()), T0);
        assert_eq!(states(&step), vec![(Backoff, Fatal)]);
    }

    #[test]
    fn start_of_fatal_resets_counters() {
        let s = spec("restart = \"always\"\nmax_restarts = 0");
        let mut l = Lifecycle::new();
        l.step(&s, Input::Start, T0);
        l.step(&s, Input::SpawnFailed("e".into()), T0);
        assert_eq!(l.state, Fatal);
        assert_eq!(l.step(&s, Input::Start, T0).effects, vec![Effect::Spawn]);
        assert_eq!((l.failures, l.restarts), (0, 0));
    }

    #[test]
    fn stop_during_backoff_cancels_the_restart() {
        let s = spec("restart = \"always\"");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        l.step(&s, Input::Exited(1), T0);
        let epoch = l.epoch;
        let step = l.step(&s, Input::Stop(Signal::Term), T0);
        assert_eq!(states(&step), vec![(Backoff, Stopped)]);
        assert_ne!(l.epoch, epoch, "the backoff timer must be invalidated");
    }

    #[test]
    fn restart_stops_then_spawns() {
        let s = spec("");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        let step = l.step(&s, Input::Restart, T0);
        assert_eq!(states(&step), vec![(Starting, Stopping)]);
        assert!(l.restart_pending());
        let step = l.step(&s, Input::Exited(-15), T0);
        assert_eq!(states(&step), vec![(Stopping, Stopped)]);
        assert_eq!(step.effects, vec![Effect::Spawn]);
        assert_eq!(l.restarts, 1);
        // Restart of an ended job is a start that counts.
        l.step(&s, Input::Spawned { pid: 9 }, T0);
        l.step(&s, Input::Exited(0), T0);
        assert_eq!(l.step(&s, Input::Restart, T0).effects, vec![Effect::Spawn]);
        assert_eq!(l.restarts, 2);
    }

    #[test]
    fn a_stop_while_stopping_cancels_a_pending_restart() {
        let s = spec("");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        l.step(&s, Input::Restart, T0);
        assert!(l.restart_pending());
        let step = l.step(&s, Input::Stop(Signal::Term), T0);
        assert_eq!(step, Step::default(), "no second signal, no new timer");
        assert!(!l.restart_pending());
        let step = l.step(&s, Input::Exited(-15), T0);
        assert_eq!(states(&step), vec![(Stopping, Stopped)]);
        assert!(step.effects.is_empty());
        assert_eq!(l.restarts, 0);
    }

    #[test]
    fn a_start_while_stopping_starts_again_once_stopped() {
        let s = spec("");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        l.step(&s, Input::Stop(Signal::Term), T0);
        assert_eq!(l.step(&s, Input::Start, T0), Step::default());
        let step = l.step(&s, Input::Exited(-15), T0);
        assert_eq!(states(&step), vec![(Stopping, Stopped)]);
        assert_eq!(step.effects, vec![Effect::Spawn]);
    }

    #[test]
    fn restart_in_backoff_spawns_at_once_and_counts() {
        let s = spec("restart = \"on-failure\"\nmax_restarts = 1");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        l.step(&s, Input::Exited(1), T0);
        assert_eq!((l.state, l.failures), (Backoff, 1));
        let epoch = l.epoch;
        assert_eq!(l.step(&s, Input::Restart, T0).effects, vec![Effect::Spawn]);
        assert_eq!((l.restarts, l.failures), (1, 0));
        let step = l.step(&s, Input::Spawned { pid: 8 }, T0);
        assert_eq!(states(&step), vec![(Backoff, Starting)]);
        assert_ne!(l.epoch, epoch, "the old backoff timer is void");
    }

    #[test]
    fn a_failure_after_start_secs_restarts_at_once_without_backoff() {
        let s = spec("restart = \"on-failure\"\nmax_restarts = 0");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        l.step(&s, Input::Timer(TimerKind::StartSecs), T0);
        let step = l.step(&s, Input::Exited(1), secs(60));
        assert_eq!(states(&step), vec![(Running, Exited)]);
        assert_eq!(step.effects, vec![Effect::Spawn]);
        assert_eq!((l.failures, l.restarts), (0, 1));
    }

    #[test]
    fn zero_max_restarts_is_fatal_at_the_first_failed_start() {
        let s = spec("restart = \"always\"\nmax_restarts = 0");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        let step = l.step(&s, Input::Exited(0), T0);
        assert_eq!(states(&step), vec![(Starting, Fatal)]);
        assert_eq!(step.transitions[0].exitcode, Some(0));
        assert_eq!(l.restarts, 0);
    }

    #[test]
    fn death_by_signal_is_a_failure_for_on_failure() {
        let s = spec("restart = \"on-failure\"\nexit_codes = [0]");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        l.step(&s, Input::Timer(TimerKind::StartSecs), T0);
        let step = l.step(&s, Input::Exited(-9), secs(60));
        assert_eq!(l.success, Some(false));
        assert_eq!(step.effects, vec![Effect::Spawn]);
    }

    #[test]
    fn a_start_secs_timer_after_a_stop_is_ignored() {
        let s = spec("");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        l.step(&s, Input::Stop(Signal::Term), T0);
        assert_eq!(
            l.step(&s, Input::Timer(TimerKind::StartSecs), T0),
            Step::default()
        );
        assert_eq!(l.state, Stopping);
        // Likewise a backoff timer outside backoff.
        assert_eq!(
            l.step(&s, Input::Timer(TimerKind::Backoff), T0),
            Step::default()
        );
    }

    #[test]
    fn stale_inputs_do_nothing() {
        let s = spec("");
        let mut l = Lifecycle::new();
        assert_eq!(l.step(&s, Input::Exited(0), T0), Step::default());
        assert_eq!(
            l.step(&s, Input::Timer(TimerKind::StopTimeout), T0),
            Step::default()
        );
        assert_eq!(l.step(&s, Input::Stop(Signal::Term), T0), Step::default());
        started(&s, &mut l);
        assert_eq!(l.step(&s, Input::Start, T0), Step::default());
    }

    fn cause_of(step: &Step) -> (Option<Cause>, Option<&str>) {
        let t = step.transitions.last().expect("a transition");
        (t.cause, t.reason.as_deref())
    }

    #[test]
    fn a_job_that_never_ran_has_no_cause() {
        let l = Lifecycle::new();
        assert_eq!((l.cause(), l.reason()), (None, None));
    }

    #[test]
    fn an_exit_is_cause_exit_in_words() {
        let s = spec("");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        assert_eq!((l.cause(), l.reason()), (None, None), "alive: no cause");
        let step = l.step(&s, Input::Exited(3), T0);
        assert_eq!(cause_of(&step), (Some(Cause::Exit), Some("exit 3")));
        assert_eq!((l.cause(), l.reason()), (Some(Cause::Exit), Some("exit 3")));
    }

    #[test]
    fn an_oom_kill_in_the_run_is_cause_oom_but_not_during_a_stop() {
        let s = spec("");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        let step = l.step(&s, Input::OomKilled(-9), T0);
        assert_eq!(
            cause_of(&step),
            (
                Some(Cause::Oom),
                Some("the OOM killer killed a process of the run (killed by SIGKILL (-9))")
            )
        );
        assert_eq!(step.transitions.last().map(|t| t.exitcode), Some(Some(-9)));
        started(&s, &mut l);
        l.step(&s, Input::Stop(Signal::Term), T0);
        let step = l.step(&s, Input::OomKilled(-15), T0);
        assert_eq!(
            cause_of(&step).0,
            Some(Cause::Stopped),
            "a stop's end stays a stop"
        );
    }

    #[test]
    fn a_signal_we_did_not_send_is_cause_signal() {
        let s = spec("");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        let step = l.step(&s, Input::Exited(-11), T0);
        assert_eq!(
            cause_of(&step),
            (Some(Cause::Signal), Some("killed by SIGSEGV (-11)"))
        );
    }

    #[test]
    fn a_stop_is_cause_stopped_even_when_the_job_exits_zero() {
        let s = spec("");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        l.step(&s, Input::Stop(Signal::Term), T0);
        assert_eq!(l.cause(), None, "stopping is still alive");
        let step = l.step(&s, Input::Exited(0), T0);
        assert_eq!(
            cause_of(&step),
            (Some(Cause::Stopped), Some(STOPPED_BY_REQUEST))
        );
    }

    #[test]
    fn a_stop_escalated_to_sigkill_is_cause_stop_timeout() {
        let s = spec("stop_timeout = \"10s\"");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        l.step(&s, Input::Stop(Signal::Term), T0);
        l.step(&s, Input::Timer(TimerKind::StopTimeout), T0);
        let step = l.step(&s, Input::Exited(-9), T0);
        assert_eq!(
            cause_of(&step),
            (
                Some(Cause::StopTimeout),
                Some("killed with SIGKILL after stop_timeout 10s")
            )
        );
        // The next run starts clean: a later ordinary stop is not a timeout.
        l.step(&s, Input::Start, T0);
        l.step(&s, Input::Spawned { pid: 8 }, T0);
        assert_eq!((l.cause(), l.reason()), (None, None));
        l.step(&s, Input::Stop(Signal::Term), T0);
        let step = l.step(&s, Input::Exited(-15), T0);
        assert_eq!(step.transitions[0].cause, Some(Cause::Stopped));
    }

    #[test]
    fn a_spawn_error_is_cause_spawn_error() {
        let s = spec("");
        let mut l = Lifecycle::new();
        l.step(&s, Input::Start, T0);
        let step = l.step(&s, Input::SpawnFailed("no such program: x".into()), T0);
        assert_eq!(states(&step), vec![(Stopped, Fatal)]);
        assert_eq!(
            cause_of(&step),
            (
                Some(Cause::SpawnError),
                Some("cannot spawn: no such program: x")
            )
        );
    }

    #[test]
    fn stopping_a_job_in_backoff_is_cause_stopped() {
        let s = spec("restart = \"on-failure\"\nbackoff = \"1s\"");
        let mut l = Lifecycle::new();
        started(&s, &mut l);
        let step = l.step(&s, Input::Exited(1), T0);
        assert_eq!(cause_of(&step), (Some(Cause::Exit), Some("exit 1")));
        let step = l.step(&s, Input::Stop(Signal::Term), T0);
        assert_eq!(states(&step), vec![(Backoff, Stopped)]);
        assert_eq!(
            cause_of(&step),
            (Some(Cause::Stopped), Some(STOPPED_BY_REQUEST))
        );
    }

    #[test]
    fn live_transitions_carry_no_cause() {
        let s = spec("start_secs = 0");
        let mut l = Lifecycle::new();
        l.step(&s, Input::Start, T0);
        let step = l.step(&s, Input::Spawned { pid: 7 }, T0);
        assert!(step.transitions.iter().all(|t| t.cause.is_none()));
        let step = l.step(&s, Input::Stop(Signal::Term), T0);
        assert_eq!(cause_of(&step), (None, None));
    }
}
