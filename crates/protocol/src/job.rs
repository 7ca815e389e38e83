//! What the daemon says about a job: its status ([`Job`]), its state changes ([`Event`])
//! and its output ([`LogData`]).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A job's state; Supervisor's states in lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Not running: never started, or ended by a stop request.
    Stopped,
    /// Spawned, not yet up for `start_secs`.
    Starting,
    /// Up for at least `start_secs`.
    Running,
    /// Ended too soon or failed to spawn; a restart is scheduled.
    Backoff,
    /// The stop signal was sent; waiting for the process to end.
    Stopping,
    /// Ended on its own.
    Exited,
    /// Could not be started, or failed `max_restarts` times in a row.
    Fatal,
    /// Asked to start, but held back until its dependencies meet their conditions;
    /// `reason` says which. Not alive, not settled.
    Waiting,
}

impl JobState {
    /// `is_alive()`: a process exists for the job.
    pub fn is_alive(self) -> bool {
        matches!(
            self,
            JobState::Starting | JobState::Running | JobState::Stopping
        )
    }

    /// Ended, with nothing scheduled: what `wait` waits for.
    pub fn is_settled(self) -> bool {
        matches!(self, JobState::Stopped | JobState::Exited | JobState::Fatal)
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Stopped => "stopped",
            JobState::Starting => "starting",
            JobState::Running => "running",
            JobState::Backoff => "backoff",
            JobState::Stopping => "stopping",
            JobState::Exited => "exited",
            JobState::Fatal => "fatal",
            JobState::Waiting => "waiting",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job's last run ended, or why it is not running: one word from a fixed list.
/// `Job::reason` says the same for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// Ended on its own with an exit status (`exitcode >= 0`).
    Exit,
    /// Ended on its own by a signal supervisord did not send.
    Signal,
    /// Ended by a stop, terminate, restart or shutdown.
    Stopped,
    /// Did not end within `stop_timeout` and was killed with SIGKILL.
    StopTimeout,
    /// Could not be started (`spawn_error` has the OS's words).
    SpawnError,
    /// Did not become ready within its readiness timeout.
    NotReady,
    /// Stopped or restarted by its health check.
    Unhealthy,
    /// Missed its notify watchdog.
    Watchdog,
    /// Not started: a dependency can no longer meet its condition.
    Dependency,
    /// Killed by the kernel's out-of-memory killer.
    Oom,
    /// supervisord died while it ran.
    DaemonLost,
}

impl Cause {
    /// The word on the wire (`stop_timeout`).
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Exit => "exit",
            Cause::Signal => "signal",
            Cause::Stopped => "stopped",
            Cause::StopTimeout => "stop_timeout",
            Cause::SpawnError => "spawn_error",
            Cause::NotReady => "not_ready",
            Cause::Unhealthy => "unhealthy",
            Cause::Watchdog => "watchdog",
            Cause::Dependency => "dependency",
            Cause::Oom => "oom",
            Cause::DaemonLost => "daemon_lost",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job's status. Every field is always present, `null` where it does not apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The job's name.
    pub name: String,
    /// Its group (its own name unless set).
    pub group: String,
    /// Its state.
    pub state: JobState,
    /// Whether a process exists (`starting`, `running`, `stopping`).
    pub alive: bool,
    /// The live process's pid, or the last one's while it is being stopped.
    pub pid: Option<u32>,
    /// The last run's exit: status `>= 0`, or `-N` for death by signal N.
    pub exitcode: Option<i32>,
    /// `"SIGTERM"` when the last run died by a signal.
    pub signal: Option<String>,
    /// Whether the last run's exit status is in `exit_codes`.
    pub success: Option<bool>,
    /// A background helper that `wait --all` and batch mode do not wait for.
    pub daemon: bool,
    /// How many times the job was restarted (by policy or by `restart`).
    pub restarts: u32,
    /// When the current or last run started (RFC 3339 UTC).
    pub started_at: Option<String>,
    /// When the last run ended (RFC 3339 UTC).
    pub ended_at: Option<String>,
    /// How long the live process has been up.
    pub uptime_ms: Option<u64>,
    /// Why the last spawn failed.
    pub spawn_error: Option<String>,
    /// Why the last run ended, or why the job is not running; `null` for a job that
    /// never ran and is not held back.
    pub cause: Option<Cause>,
    /// The same in words: `exit 3`, `stopped by request`,
    /// `killed with SIGKILL after stop_timeout 10s`.
    pub reason: Option<String>,
    /// Why output capture is failing (for example an unwritable log folder); the job runs
    /// on with that output discarded. Extension: see docs/protocol.md.
    pub output_error: Option<String>,
    /// CPU time (user + system) of the job's processes, in milliseconds; filled only by
    /// `status` with `usage: true`, for a job with a live process group.
    pub cpu_ms: Option<u64>,
    /// Resident memory of the job's processes, in bytes; like `cpu_ms`.
    pub memory_bytes: Option<u64>,
    /// What its health check says; `null` for a job without one.
    #[serde(default)]
    pub health: Option<Health>,
    /// The last health check's result in a line or a few (an exec's first 4 KiB of
    /// output, the HTTP status, the connect error).
    #[serde(default)]
    pub health_output: Option<String>,
    /// Failed health checks in a row that counted. Extension: see docs/protocol.md.
    #[serde(default)]
    pub health_failures: Option<u32>,
    /// When a scheduled job's next run starts (RFC 3339 UTC); `null` for a job without
    /// a schedule, or whose schedule is not armed.
    #[serde(default)]
    pub next_run_at: Option<String>,
}

/// A job's health as its checks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// No result yet (or only failures inside `start_period`), or not running.
    Unknown,
    /// The last check passed.
    Healthy,
    /// `retries` checks in a row failed.
    Unhealthy,
}

impl Health {
    /// The protocol's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// An exit code in words: `exit 0`, `exit 3`, `killed by SIGTERM (-15)`.
pub fn describe_exit(exitcode: i32) -> String {
    if exitcode >= 0 {
        return format!("exit {exitcode}");
    }
    match crate::Signal::from_number(-exitcode) {
        Some(sig) => format!("killed by {} ({exitcode})", sig.name()),
        None => format!("killed by signal {} ({exitcode})", -exitcode),
    }
}

/// The name of the signal an exit code says the process died by (`-15` → `"SIGTERM"`).
pub fn signal_name(exitcode: i32) -> Option<String> {
    (exitcode < 0).then(|| {
        crate::Signal::from_number(-exitcode)
            .map_or_else(|| format!("SIG{}", -exitcode), |s| s.name().to_owned())
    })
}

/// One state change, sent as an `event` notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The job.
    pub name: String,
    /// Its group.
    pub group: String,
    /// The state it left.
    pub from: JobState,
    /// The state it entered.
    pub to: JobState,
    /// The process concerned (the new one on a start, the ended one on an exit).
    pub pid: Option<u32>,
    /// Set when the change is an exit.
    pub exitcode: Option<i32>,
    /// Set when the exit was by a signal.
    pub signal: Option<String>,
    /// Why the run ended (set when the change is an end, a failed spawn or a stop of a
    /// job in backoff).
    pub cause: Option<Cause>,
    /// The same in words.
    pub reason: Option<String>,
    /// When (RFC 3339 UTC, milliseconds).
    pub at: String,
}

/// A change of a job's `health`, sent as a `health` notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthChange {
    /// The job.
    pub name: String,
    /// Its group.
    pub group: String,
    /// Its health now (`unknown` again once the run it was about has ended).
    pub health: Health,
    /// The last check's result, as in the Job's `health_output`.
    pub output: Option<String>,
    /// When (RFC 3339 UTC, milliseconds).
    pub at: String,
}

/// Which captured stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// `"stdout"` or `"stderr"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Output of a job, sent as a `log` notification while following.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogData {
    /// The job.
    pub name: String,
    /// The stream.
    pub stream: Stream,
    /// The text: whole lines, newlines included (invalid UTF-8 replaced).
    pub data: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_round_trip_has_every_field() {
        let job = Job {
            name: "File2".into(),
            group: "downloads".into(),
            state: JobState::Stopped,
            alive: false,
            pid: None,
            exitcode: Some(-15),
            signal: Some("SIGTERM".into()),
            success: Some(false),
            daemon: false,
            restarts: 0,
            started_at: Some("2026-11-25T10:00:00.000Z".into()),
            ended_at: Some("2026-11-25T10:00:01.500Z".into()),
            uptime_ms: None,
            spawn_error: None,
            cause: Some(Cause::Stopped),
            reason: Some("stopped by request".into()),
            output_error: None,
            cpu_ms: Some(1250),
            memory_bytes: None,
            health: None,
            health_output: None,
            health_failures: None,
            next_run_at: None,
        };
        let v = serde_json::to_value(&job).expect("serialize");
        for key in [
            "name",
            "group",
            "state",
            "alive",
            "pid",
            "exitcode",
            "signal",
            "success",
            "daemon",
            "restarts",
            "started_at",
            "ended_at",
            "uptime_ms",
            "spawn_error",
            "cause",
            "reason",
            "output_error",
            "cpu_ms",
            "memory_bytes",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["state"], "stopped");
        assert_eq!(v["cause"], "stopped");
        assert_eq!(serde_json::from_value::<Job>(v).expect("parse"), job);
    }

    #[test]
    fn event_round_trip() {
        let e = Event {
            name: "a".into(),
            group: "a".into(),
            from: JobState::Running,
            to: JobState::Exited,
            pid: Some(10),
            exitcode: Some(0),
            signal: None,
            cause: Some(Cause::Exit),
            reason: Some("exit 0".into()),
            at: "2026-11-25T10:00:00.000Z".into(),
        };
        let s = serde_json::to_string(&e).expect("serialize");
        assert_eq!(
            s,
            r#"{"name":"a","group":"a","from":"running","to":"exited","pid":10,"exitcode":0,"signal":null,"cause":"exit","reason":"exit 0","at":"2026-11-25T10:00:00.000Z"}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&s).expect("parse"), e);
    }

    #[test]
    fn exits_in_words() {
        assert_eq!(describe_exit(0), "exit 0");
        assert_eq!(describe_exit(3), "exit 3");
        assert_eq!(describe_exit(-15), "killed by SIGTERM (-15)");
        assert_eq!(describe_exit(-9), "killed by SIGKILL (-9)");
        assert_eq!(describe_exit(-40), "killed by signal 40 (-40)");
        assert_eq!(signal_name(-15).as_deref(), Some("SIGTERM"));
        assert_eq!(signal_name(0), None);
    }

    #[test]
    fn causes_are_snake_case_on_the_wire() {
        for (cause, word) in [
            (Cause::Exit, "exit"),
            (Cause::Signal, "signal"),
            (Cause::Stopped, "stopped"),
            (Cause::StopTimeout, "stop_timeout"),
            (Cause::SpawnError, "spawn_error"),
            (Cause::NotReady, "not_ready"),
            (Cause::Unhealthy, "unhealthy"),
            (Cause::Watchdog, "watchdog"),
            (Cause::Dependency, "dependency"),
            (Cause::Oom, "oom"),
            (Cause::DaemonLost, "daemon_lost"),
        ] {
            assert_eq!(
                serde_json::to_string(&cause).expect("serialize"),
                format!("\"{word}\"")
            );
            assert_eq!(cause.as_str(), word);
        }
    }

    #[test]
    fn alive_and_settled() {
        assert!(JobState::Stopping.is_alive());
        assert!(!JobState::Backoff.is_alive());
        assert!(!JobState::Backoff.is_settled());
        assert!(JobState::Fatal.is_settled());
    }
}
