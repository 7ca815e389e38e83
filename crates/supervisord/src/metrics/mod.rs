//! The `metrics` method and `GET /metrics`: the jobs and supervisord itself in
//! Prometheus's text exposition format (0.0.4).
//!
//! [`collect`] asks the supervisor for the table, then measures usage and writes the text
//! in `spawn_blocking` (it reads `/proc`), so the actor only copies its table. The text
//! itself is a pure function, [`exposition`], unit-tested here; `http.rs` serves it.
//!
//! Per job: `supervisord_job_state` (one series per state, 1 for the current one),
//! `_health` (likewise, for jobs with a health check), `_up`, `_restarts_total`, `_uptime_seconds`, `_cpu_seconds_total` and `_memory_bytes`
//! (for jobs with a live process group), `_last_exit_code` (for jobs that have ended
//! once). Then supervisord's own `process_*` series.

pub mod http;

use crate::supervisor::SupervisorHandle;
use crate::usage::{self, OwnProcess};
use protocol::{code, Health, Job, JobList, JobState, RpcError, Selection};
use std::fmt::Write as _;

/// Every state, in the order of the `supervisord_job_state` series.
const STATES: [JobState; 8] = [
    JobState::Stopped,
    JobState::Waiting,
    JobState::Starting,
    JobState::Running,
    JobState::Backoff,
    JobState::Stopping,
    JobState::Exited,
    JobState::Fatal,
];

/// Every health, in the order of the `supervisord_job_health` series.
const HEALTHS: [Health; 3] = [Health::Healthy, Health::Unhealthy, Health::Unknown];

/// The table with usage filled in, then the text; the measuring and writing happen off
/// the runtime.
pub async fn collect(supervisor: &SupervisorHandle) -> Result<String, RpcError> {
    let jobs = jobs_with_usage(supervisor, Selection::default())
        .await?
        .jobs;
    let text = tokio::task::spawn_blocking(move || {
        let own = usage::own_process();
        exposition(&jobs, own.as_ref())
    })
    .await
    .map_err(|e| RpcError::new(code::INTERNAL_ERROR, format!("measuring failed: {e}")))?;
    Ok(text)
}

/// `status` with `usage: true`: the actor answers the table as usual; the usage of each
/// live job is measured here, in `spawn_blocking`, so a walk of `/proc` never holds up
/// the actor.
pub async fn jobs_with_usage(
    supervisor: &SupervisorHandle,
    selection: Selection,
) -> Result<JobList, RpcError> {
    let (answer, cgroups) = supervisor.usage(selection).await?;
    let list: JobList = serde_json::from_str(answer.get()).map_err(|e| {
        RpcError::new(
            code::INTERNAL_ERROR,
            format!("cannot read the job table: {e}"),
        )
    })?;
    let mut list = list;
    tokio::task::spawn_blocking(move || {
        usage::fill(&mut list.jobs, &cgroups);
        list
    })
    .await
    .map_err(|e| RpcError::new(code::INTERNAL_ERROR, format!("measuring failed: {e}")))
}

/// A label value as the format wants it: backslash, double quote and newline escaped.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Writes families: a `# HELP` and `# TYPE` line, then the samples, each family whole.
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }

    /// One family with one sample per job that has a value.
    fn per_job<V: std::fmt::Display>(
        &mut self,
        jobs: &[(String, &Job)],
        name: &str,
        kind: &str,
        help: &str,
        value: impl Fn(&Job) -> Option<V>,
    ) {
        self.family(name, kind, help);
        for (labels, job) in jobs {
            if let Some(v) = value(job) {
                self.sample(name, labels, v);
            }
        }
    }
}

/// Seconds from milliseconds, as the format's float.
fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// The exposition of `jobs` (usage filled in where measured) and of supervisord itself.
pub fn exposition(jobs: &[Job], own: Option<&OwnProcess>) -> String {
    let labelled: Vec<(String, &Job)> = jobs
        .iter()
        .map(|j| {
            let labels = format!(
                "name=\"{}\",group=\"{}\"",
                escape(&j.name),
                escape(&j.group)
            );
            (labels, j)
        })
        .collect();
    let mut t = Text(String::with_capacity(512 + jobs.len() * 1024));
    t.family(
        "supervisord_job_state",
        "gauge",
        "1 for the state the job is in, 0 for the others.",
    );
    for (labels, job) in &labelled {
        for state in STATES {
            let on = u8::from(job.state == state);
            t.sample(
                "supervisord_job_state",
                &format!("{labels},state=\"{state}\""),
                on,
            );
        }
    }
    t.family(
        "supervisord_job_health",
        "gauge",
        "1 for the job's health (healthy, unhealthy, unknown), 0 for the others; only jobs with a health check.",
    );
    for (labels, job) in &labelled {
        let Some(health) = job.health else { continue };
        for h in HEALTHS {
            t.sample(
                "supervisord_job_health",
                &format!("{labels},health=\"{}\"", h.as_str()),
                u8::from(health == h),
            );
        }
    }
    t.per_job(
        &labelled,
        "supervisord_job_up",
        "gauge",
        "1 when a process of the job is alive (starting, running or stopping).",
        |j| Some(u8::from(j.alive)),
    );
    t.per_job(
        &labelled,
        "supervisord_job_restarts_total",
        "counter",
        "How many times the job was restarted, by policy or by request.",
        |j| Some(j.restarts),
    );
    t.per_job(
        &labelled,
        "supervisord_job_uptime_seconds",
        "gauge",
        "How long the job's live process has been up; 0 when none is.",
        |j| Some(seconds(j.uptime_ms.unwrap_or(0))),
    );
    t.per_job(
        &labelled,
        "supervisord_job_cpu_seconds_total",
        "counter",
        "CPU time (user and system) of the job's process group; only while it is alive.",
        |j| j.cpu_ms.map(seconds),
    );
    t.per_job(
        &labelled,
        "supervisord_job_memory_bytes",
        "gauge",
        "Resident memory of the job's process group; only while it is alive.",
        |j| j.memory_bytes,
    );
    t.per_job(
        &labelled,
        "supervisord_job_last_exit_code",
        "gauge",
        "The last run's exit status, or -N for death by signal N; only once a run ended.",
        |j| j.exitcode,
    );
    t.family(
        "supervisord_build_info",
        "gauge",
        "Always 1; the version of supervisord is in the label.",
    );
    t.sample(
        "supervisord_build_info",
        &format!("version=\"{}\"", escape(env!("CARGO_PKG_VERSION"))),
        1,
    );
    if let Some(me) = own {
        own_process(&mut t, me);
    }
    t.0
}

fn own_process(t: &mut Text, me: &OwnProcess) {
    t.family(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
    );
    t.sample("process_cpu_seconds_total", "", me.cpu_seconds);
    t.family(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
    );
    t.sample("process_resident_memory_bytes", "", me.resident_bytes);
    t.family(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
    );
    t.sample("process_open_fds", "", me.open_fds);
    if let Some(max) = me.max_fds {
        t.family(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
        );
        t.sample("process_max_fds", "", max);
    }
    t.family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    );
    t.sample("process_start_time_seconds", "", me.start_time_seconds);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, group: &str, state: JobState) -> Job {
        Job {
            name: name.into(),
            group: group.into(),
            state,
            alive: state.is_alive(),
            pid: state.is_alive().then_some(100),
            exitcode: None,
            signal: None,
            success: None,
            daemon: false,
            restarts: 0,
            started_at: None,
            ended_at: None,
            uptime_ms: None,
            spawn_error: None,
            cause: None,
            reason: None,
            output_error: None,
            cpu_ms: None,
            memory_bytes: None,
            health: None,
            health_output: None,
            health_failures: None,
            next_run_at: None,
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape("two\nlines"), "two\\nlines");
        assert_eq!(escape("plain-name_1"), "plain-name_1");
    }

    #[test]
    fn every_job_has_one_state_series_per_state_with_one_set() {
        let text = exposition(&[job("web", "front", JobState::Running)], None);
        let states: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("supervisord_job_state{"))
            .collect();
        assert_eq!(states.len(), 8);
        assert!(states
            .contains(&r#"supervisord_job_state{name="web",group="front",state="waiting"} 0"#));
        assert!(states
            .contains(&r#"supervisord_job_state{name="web",group="front",state="running"} 1"#));
        assert!(
            states.contains(&r#"supervisord_job_state{name="web",group="front",state="fatal"} 0"#)
        );
        assert!(text.contains("supervisord_job_up{name=\"web\",group=\"front\"} 1\n"));
        assert!(
            !text.contains("process_cpu_seconds_total"),
            "no own numbers given"
        );
    }

    #[test]
    fn health_has_one_series_per_value_only_for_jobs_with_a_check() {
        let mut api = job("api", "web", JobState::Running);
        api.health = Some(Health::Unhealthy);
        let mut waiting = job("w", "w", JobState::Waiting);
        waiting.health = Some(Health::Unknown);
        let plain = job("plain", "plain", JobState::Running);
        let text = exposition(&[api, waiting, plain], None);
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("supervisord_job_health{"))
            .collect();
        assert_eq!(
            series,
            [
                r#"supervisord_job_health{name="api",group="web",health="healthy"} 0"#,
                r#"supervisord_job_health{name="api",group="web",health="unhealthy"} 1"#,
                r#"supervisord_job_health{name="api",group="web",health="unknown"} 0"#,
                r#"supervisord_job_health{name="w",group="w",health="healthy"} 0"#,
                r#"supervisord_job_health{name="w",group="w",health="unhealthy"} 0"#,
                r#"supervisord_job_health{name="w",group="w",health="unknown"} 1"#,
            ]
        );
        assert!(text.contains(r#"supervisord_job_state{name="w",group="w",state="waiting"} 1"#));
    }

    #[test]
    fn usage_and_exit_appear_only_where_known() {
        let mut running = job("a", "a", JobState::Running);
        running.cpu_ms = Some(1500);
        running.memory_bytes = Some(4096);
        running.uptime_ms = Some(2500);
        running.restarts = 3;
        let mut ended = job("b", "b", JobState::Exited);
        ended.exitcode = Some(-15);
        let text = exposition(&[running, ended], None);
        assert!(text.contains("supervisord_job_cpu_seconds_total{name=\"a\",group=\"a\"} 1.5\n"));
        assert!(text.contains("supervisord_job_memory_bytes{name=\"a\",group=\"a\"} 4096\n"));
        assert!(text.contains("supervisord_job_uptime_seconds{name=\"a\",group=\"a\"} 2.5\n"));
        assert!(text.contains("supervisord_job_restarts_total{name=\"a\",group=\"a\"} 3\n"));
        assert!(text.contains("supervisord_job_uptime_seconds{name=\"b\",group=\"b\"} 0\n"));
        assert!(text.contains("supervisord_job_last_exit_code{name=\"b\",group=\"b\"} -15\n"));
        assert!(!text.contains("supervisord_job_cpu_seconds_total{name=\"b\""));
        assert!(!text.contains("supervisord_job_last_exit_code{name=\"a\""));
    }

    #[test]
    fn families_are_whole_and_typed() {
        let jobs = [
            job("a", "g", JobState::Running),
            job("b", "g\"x\\y\nz", JobState::Fatal),
        ];
        let own = OwnProcess {
            cpu_seconds: 0.25,
            resident_bytes: 1 << 20,
            open_fds: 12,
            max_fds: Some(1024),
            start_time_seconds: 1.7e9,
        };
        let text = exposition(&jobs, Some(&own));
        assert!(text.contains(r#"group="g\"x\\y\nz""#), "{text}");
        // Each family's samples follow its TYPE line, with no other family in between.
        let mut seen: Vec<String> = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap_or_default().to_owned();
                assert!(!seen.contains(&name), "{name} appears twice");
                seen.push(name.clone());
                current = name;
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap_or_default();
                assert_eq!(name, current, "a sample of {name} outside its family");
            }
        }
        for family in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            assert!(seen.iter().any(|s| s == family), "{family} missing");
        }
        assert!(text.ends_with('\n'));
    }
}
