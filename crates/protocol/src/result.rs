//! The results of the methods, typed: the daemon encodes these and clients decode them,
//! so neither side reads the other's JSON by string key.

use crate::job::{Job, Stream};
use serde::{Deserialize, Serialize};

/// `ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingResult {
    /// supervisord's version.
    pub version: String,
    /// supervisord's pid.
    pub pid: u32,
    /// How long it has been up.
    pub uptime_ms: u64,
    /// Why the run history is not being written (an unwritable `state_dir`, a full
    /// disk); absent while it works or is off. Extension: see docs/protocol.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_error: Option<String>,
    /// How jobs are contained: a cgroup per run, or process groups only and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containment: Option<String>,
}

/// `status`, `start`, `terminate`, `restart`, `kill`, `add`, `remove`, `wait` and the
/// snapshot that opens `subscribe`: jobs, and for `wait` whether all succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobList {
    /// The jobs, in table order.
    pub jobs: Vec<Job>,
    /// `wait` only: every waited job succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    /// `status` only: why the run history is not being written, as in `ping`; absent
    /// while it works or is off. Extension: see docs/protocol.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_error: Option<String>,
}

impl JobList {
    /// A list without `success`.
    pub fn new(jobs: Vec<Job>) -> Self {
        JobList {
            jobs,
            success: None,
            history_error: None,
        }
    }
}

/// `reload`: what changed, by job name, once it has been applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadResult {
    /// New in the file (started if `autostart`).
    pub added: Vec<String>,
    /// Gone from the file (stopped and forgotten).
    pub removed: Vec<String>,
    /// Different in the file (restarted if they were running).
    pub changed: Vec<String>,
    /// The same (left alone: same process).
    pub unchanged: Vec<String>,
    /// Settings that take effect only when supervisord restarts. Extension: see
    /// docs/protocol.md.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// `logs`: the last lines; with `follow`, `log` notifications come after it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsResult {
    /// The lines, oldest first, without their newlines.
    pub lines: Vec<String>,
}

/// `metrics`: the Prometheus text exposition (format 0.0.4), ready to serve or write to
/// node_exporter's textfile collector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsResult {
    /// The exposition, `# HELP` and `# TYPE` lines included, ending in a newline.
    pub text: String,
}

/// `shutdown`: an empty object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShutdownResult {}

/// The `lagged` notification: a stream skipped what the client could not keep up with.
/// On a `logs` stream it names the job and stream; on `subscribe` it does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lagged {
    /// The job whose output was skipped (`logs` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its stream (`logs` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<Stream>,
    /// How many events or chunks were skipped.
    pub missed: u64,
}

/// The methods of notifications.
pub mod note {
    /// A state change: params are an `Event`.
    pub const EVENT: &str = "event";
    /// A change of a job's health: params are a `HealthChange`.
    pub const HEALTH: &str = "health";
    /// Output of a followed job: params are a `LogData`.
    pub const LOG: &str = "log";
    /// Skipped messages: params are a `Lagged`.
    pub const LAGGED: &str = "lagged";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T>(value: &T, golden: &str)
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
    {
        let text = serde_json::to_string(value).expect("serialize");
        assert_eq!(text, golden);
        assert_eq!(&serde_json::from_str::<T>(&text).expect("parse"), value);
    }

    #[test]
    fn ping() {
        round_trip(
            &PingResult {
                version: "0.1.0".into(),
                pid: 42,
                uptime_ms: 1500,
                history_error: None,
                containment: None,
            },
            r#"{"version":"0.1.0","pid":42,"uptime_ms":1500}"#,
        );
        round_trip(
            &PingResult {
                version: "0.1.0".into(),
                pid: 42,
                uptime_ms: 1500,
                history_error: Some("cannot open /s/history.jsonl: Not a directory".into()),
                containment: Some("process groups only: why".into()),
            },
            r#"{"version":"0.1.0","pid":42,"uptime_ms":1500,"history_error":"cannot open /s/history.jsonl: Not a directory","containment":"process groups only: why"}"#,
        );
    }

    #[test]
    fn reload() {
        round_trip(
            &ReloadResult {
                added: vec!["File4".into()],
                removed: vec!["File1".into()],
                changed: vec!["File3".into()],
                unchanged: vec!["File2".into()],
                warnings: vec![],
            },
            r#"{"added":["File4"],"removed":["File1"],"changed":["File3"],"unchanged":["File2"],"warnings":[]}"#,
        );
    }

    #[test]
    fn logs_shutdown_and_lagged() {
        round_trip(
            &LogsResult {
                lines: vec!["a".into(), "b".into()],
            },
            r#"{"lines":["a","b"]}"#,
        );
        round_trip(&ShutdownResult {}, "{}");
        round_trip(
            &Lagged {
                name: None,
                stream: None,
                missed: 7,
            },
            r#"{"missed":7}"#,
        );
        round_trip(
            &Lagged {
                name: Some("web".into()),
                stream: Some(Stream::Stderr),
                missed: 3,
            },
            r#"{"name":"web","stream":"stderr","missed":3}"#,
        );
    }

    #[test]
    fn metrics() {
        round_trip(
            &MetricsResult {
                text: "# TYPE up gauge\nup 1\n".into(),
            },
            r##"{"text":"# TYPE up gauge\nup 1\n"}"##,
        );
    }

    #[test]
    fn job_list_has_success_only_for_wait() {
        let list = JobList::new(vec![]);
        round_trip(&list, r#"{"jobs":[]}"#);
        let waited = JobList {
            success: Some(false),
            ..JobList::new(vec![])
        };
        round_trip(&waited, r#"{"jobs":[],"success":false}"#);
    }

    #[test]
    fn a_status_list_may_say_why_the_history_is_off() {
        let status = JobList {
            history_error: Some("cannot create state_dir /s: Not a directory".into()),
            ..JobList::new(vec![])
        };
        round_trip(
            &status,
            r#"{"jobs":[],"history_error":"cannot create state_dir /s: Not a directory"}"#,
        );
    }
}
