//! Past runs: the [`Run`] record of the history, the `history` method's params and
//! result.

use crate::job::Cause;
use serde::{Deserialize, Serialize};

/// One run of a job, as the history keeps it: from its spawn to its end. A run that is
/// still alive has `ended_at`, `exitcode`, `signal`, `success`, `cause` and `reason` all
/// `null`. Times and causes are those of the [`Job`](crate::Job) (RFC 3339 UTC with
/// milliseconds; the `cause` words of the job states).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// The run's number: unique in a state folder, growing with every run, kept across
    /// restarts of supervisord.
    pub run_id: u64,
    /// The job.
    pub name: String,
    /// Its group when it ran.
    pub group: String,
    /// The process; `null` when the spawn failed.
    pub pid: Option<u32>,
    /// When it was spawned (RFC 3339 UTC).
    pub started_at: String,
    /// When it ended (RFC 3339 UTC); `null` while it runs.
    pub ended_at: Option<String>,
    /// Its exit: status `>= 0`, or `-N` for death by signal N.
    pub exitcode: Option<i32>,
    /// `"SIGTERM"` when it died by a signal.
    pub signal: Option<String>,
    /// Whether its exit status was in `exit_codes`.
    pub success: Option<bool>,
    /// Why it ended.
    pub cause: Option<Cause>,
    /// The same in words.
    pub reason: Option<String>,
}

/// Params of `history`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryParams {
    /// Only these jobs' runs (names of jobs that are gone are fine); none: every job's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    /// At most this many runs, the newest (default [`HistoryParams::DEFAULT_LIMIT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl HistoryParams {
    /// How many runs `history` lists when `limit` is not given.
    pub const DEFAULT_LIMIT: usize = 100;
}

/// `history`: runs, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryResult {
    /// The runs, newest (highest `run_id`) first.
    pub runs: Vec<Run>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_round_trips_with_every_field() {
        let run = Run {
            run_id: 7,
            name: "File2".into(),
            group: "downloads".into(),
            pid: Some(4242),
            started_at: "2026-11-25T10:00:00.000Z".into(),
            ended_at: Some("2026-11-25T10:00:01.500Z".into()),
            exitcode: Some(-15),
            signal: Some("SIGTERM".into()),
            success: Some(false),
            cause: Some(Cause::Stopped),
            reason: Some("stopped by request".into()),
        };
        let golden = r#"{"run_id":7,"name":"File2","group":"downloads","pid":4242,"started_at":"2026-11-25T10:00:00.000Z","ended_at":"2026-11-25T10:00:01.500Z","exitcode":-15,"signal":"SIGTERM","success":false,"cause":"stopped","reason":"stopped by request"}"#;
        assert_eq!(serde_json::to_string(&run).expect("serialize"), golden);
        assert_eq!(serde_json::from_str::<Run>(golden).expect("parse"), run);

        let lost = r#"{"run_id":8,"name":"a","group":"a","pid":null,"started_at":"2026-11-25T10:00:00.000Z","ended_at":null,"exitcode":null,"signal":null,"success":null,"cause":"daemon_lost","reason":null}"#;
        let back: Run = serde_json::from_str(lost).expect("parse");
        assert_eq!(back.cause, Some(Cause::DaemonLost));
        assert_eq!(serde_json::to_string(&back).expect("serialize"), lost);
    }

    #[test]
    fn history_params_and_result_round_trip() {
        let p = HistoryParams {
            names: Some(vec!["a".into()]),
            limit: Some(5),
        };
        let text = serde_json::to_string(&p).expect("serialize");
        assert_eq!(text, r#"{"names":["a"],"limit":5}"#);
        assert_eq!(
            serde_json::from_str::<HistoryParams>(&text).expect("parse"),
            p
        );
        assert_eq!(
            serde_json::to_string(&HistoryParams::default()).expect("serialize"),
            "{}"
        );
        let r = HistoryResult { runs: vec![] };
        assert_eq!(
            serde_json::to_string(&r).expect("serialize"),
            r#"{"runs":[]}"#
        );
    }
}
