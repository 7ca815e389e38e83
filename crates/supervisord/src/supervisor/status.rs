//! The table as people and clients see it: the protocol's `Job`, and batch mode's lines.

use super::Entry;
use crate::config::JobSpec;
use crate::lifecycle::Transition;
use protocol::{describe_exit, signal_name, Job, JobState};
use std::time::{Duration, SystemTime};

/// A job's status as the protocol's `Job`.
pub(super) fn job_status(e: &Entry) -> Job {
    let l = &e.life;
    let alive = l.state().is_alive();
    Job {
        name: e.spec.name.clone(),
        group: e.spec.group.clone(),
        state: l.state(),
        alive,
        pid: l.pid(),
        exitcode: l.exitcode(),
        signal: l.exitcode().and_then(signal_name),
        success: l.success(),
        daemon: e.spec.daemon,
        restarts: l.restarts(),
        started_at: l.started_at().map(rfc3339),
        ended_at: l.ended_at().map(rfc3339),
        uptime_ms: l
            .started_at()
            .filter(|_| alive)
            .and_then(|t| t.elapsed().ok())
            .map(millis),
        spawn_error: l.spawn_error().map(str::to_owned),
        cause: l.cause(),
        reason: match &e.checks.status {
            Some(s) if alive => Some(s.clone()),
            _ => l.reason().map(str::to_owned),
        },
        output_error: e.output_error.clone(),
        cpu_ms: None,
        memory_bytes: None,
        health: e.health(),
        health_output: e.checks.track.as_ref().and_then(|t| t.output.clone()),
        health_failures: e
            .checks
            .track
            .as_ref()
            .map(|t| t.failures)
            .filter(|_| e.spec.health.is_some()),
        next_run_at: e.next_run_at.map(rfc3339),
    }
}

/// Batch mode's line for a job that settled: `upload-1: exited, exit 0 (success)`.
pub(super) fn batch_line(spec: &JobSpec, t: &Transition, entry: Option<&Entry>) -> String {
    let what = match (t.to, t.exitcode) {
        (JobState::Fatal, _) if t.cause == Some(protocol::Cause::Dependency) => {
            format!(
                "fatal: {}",
                t.reason.as_deref().unwrap_or("a dependency failed")
            )
        }
        (JobState::Fatal, _) => match entry.and_then(|e| e.life.spawn_error()) {
            Some(err) => format!("fatal: {err}"),
            None => format!(
                "fatal after {} failed starts{}",
                entry.map_or(0, |e| e.life.failures()),
                t.exitcode
                    .map(|c| format!(" ({})", describe_exit(c)))
                    .unwrap_or_default()
            ),
        },
        (state, Some(code)) if spec.daemon => format!("{state}, {}", describe_exit(code)),
        (state, Some(code)) => {
            let verdict = if spec.is_success(code) {
                "success"
            } else {
                "failure"
            };
            format!("{state}, {} ({verdict})", describe_exit(code))
        }
        (state, None) => state.to_string(),
    };
    let daemon = if spec.daemon { " [daemon]" } else { "" };
    format!("{}{daemon}: {what}", spec.name)
}

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Whole milliseconds, saturating.
pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
