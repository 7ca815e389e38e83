//! Output for people: aligned tables, short durations, exits in words, colour on a
//! terminal only (never with `NO_COLOR`).

use crate::row::Row;
use protocol::{describe_exit, Cause, Event, HealthChange, Job, JobState};
use std::io::IsTerminal;
use std::time::Duration;

/// Whether to colour stdout.
pub fn colour_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
        && std::io::stdout().is_terminal()
}

/// `2m13s`, `1h4m`, `3d2h`, `850ms`.
pub fn short_duration(d: Duration) -> String {
    let mut s = String::new();
    push_duration(&mut s, d);
    s
}

/// [`short_duration`], written at the end of `out`.
fn push_duration(out: &mut String, d: Duration) {
    let s = d.as_secs();
    let (big, big_unit, small, small_unit) = match s {
        0 => (u64::from(d.subsec_millis()), "ms", None, ""),
        1..=59 => (s, "s", None, ""),
        60..=3599 => (s / 60, "m", Some(s % 60), "s"),
        3600..=86_399 => (s / 3600, "h", Some((s % 3600) / 60), "m"),
        _ => (s / 86_400, "d", Some((s % 86_400) / 3600), "h"),
    };
    push_number(out, big);
    out.push_str(big_unit);
    if let Some(n) = small {
        push_number(out, n);
        out.push_str(small_unit);
    }
}

/// `n` in decimal at the end of `out`, as `n.to_string()` writes it.
fn push_number(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[i..].iter().map(|&d| char::from(d)));
}

fn paint(state: JobState, text: &str, colour: bool) -> String {
    if !colour {
        return text.to_owned();
    }
    let code = match state {
        JobState::Running => "32",
        JobState::Starting | JobState::Stopping => "33",
        JobState::Backoff | JobState::Fatal => "31",
        JobState::Exited | JobState::Stopped => "2",
        JobState::Waiting => "36",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// What the last column says: uptime while alive, why it is not running otherwise.
pub fn uptime_or_exit(job: &Job) -> String {
    let mut s = String::new();
    push_uptime_or_exit(&mut s, &Row::from(job));
    s
}

/// [`uptime_or_exit`] of a row, written at the end of `out`.
fn push_uptime_or_exit(out: &mut String, job: &Row<'_>) {
    if job.alive {
        match job.uptime_ms {
            Some(ms) => {
                out.push_str("up ");
                push_duration(out, Duration::from_millis(ms));
            }
            None => out.push('-'),
        }
        if job.health.is_some() {
            out.push_str(", ");
            push_health(out, job);
        }
        if let Some(r) = &job.reason {
            out.push_str(" (");
            out.push_str(r);
            out.push(')');
        }
        return;
    }
    if job.state == JobState::Waiting {
        out.push_str(job.reason.as_deref().unwrap_or("waiting"));
        return;
    }
    let start = out.len();
    push_why(out, job);
    if let Some(next) = next_run(job) {
        if &out[start..] == "-" {
            out.truncate(start);
            out.push_str("next run ");
        } else {
            out.push_str("; next run ");
        }
        out.push_str(&next);
    }
}

/// When a scheduled job runs next, from now: `in 42s` (`now` when already due).
fn next_run(job: &Row<'_>) -> Option<String> {
    let at = humantime::parse_rfc3339(job.next_run_at.as_deref()?).ok()?;
    Some(match at.duration_since(std::time::SystemTime::now()) {
        Ok(d) if d >= Duration::from_secs(1) => format!("in {}", short_duration(d)),
        _ => "now".into(),
    })
}

/// A job's health in words: `healthy`, `unknown`, `unhealthy (3 failed: connection
/// refused)`; `None` for a job without a health check.
pub fn health(job: &Job) -> Option<String> {
    job.health?;
    let mut s = String::new();
    push_health(&mut s, &Row::from(job));
    Some(s)
}

/// [`health`] of a row (nothing without a health check), written at the end of `out`.
fn push_health(out: &mut String, job: &Row<'_>) {
    let Some(h) = job.health else {
        return;
    };
    if h != protocol::Health::Unhealthy {
        out.push_str(h.as_str());
        return;
    }
    let output = job
        .health_output
        .as_deref()
        .and_then(|o| o.lines().next())
        .unwrap_or("");
    out.push_str("unhealthy (");
    push_number(out, u64::from(job.health_failures.unwrap_or(0)));
    out.push_str(" failed: ");
    out.push_str(output);
    out.push(')');
}

/// Why a job is not running, in words: its `reason`, with the exit where the reason
/// does not already say it (`stopped by request, killed by SIGTERM (-15)`).
fn push_why(out: &mut String, job: &Row<'_>) {
    match (job.cause, &job.reason, job.exitcode) {
        (Some(Cause::Stopped), Some(reason), Some(code)) => {
            out.push_str(reason);
            out.push_str(", ");
            out.push_str(&describe_exit(code));
        }
        (Some(_), Some(reason), _) => out.push_str(reason),
        (_, _, Some(code)) => out.push_str(&describe_exit(code)),
        _ => out.push_str(job.spawn_error.as_deref().unwrap_or("-")),
    }
}

/// Every field of one job, one per line, for `supctl status NAME`.
pub fn block(job: &Job) -> String {
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let mut rows: Vec<(&str, String)> = vec![
        ("name", job.name.clone()),
        ("group", job.group.clone()),
        ("state", job.state.to_string()),
        ("alive", job.alive.to_string()),
        ("pid", or_dash(job.pid.map(|p| p.to_string()))),
        (
            "uptime",
            or_dash(
                job.uptime_ms
                    .map(|ms| short_duration(Duration::from_millis(ms))),
            ),
        ),
        ("exitcode", or_dash(job.exitcode.map(|c| c.to_string()))),
        ("signal", or_dash(job.signal.clone())),
        ("success", or_dash(job.success.map(|s| s.to_string()))),
        ("cause", or_dash(job.cause.map(|c| c.to_string()))),
        ("reason", or_dash(job.reason.clone())),
        ("daemon", job.daemon.to_string()),
        ("restarts", job.restarts.to_string()),
        ("started_at", or_dash(job.started_at.clone())),
        ("ended_at", or_dash(job.ended_at.clone())),
        ("spawn_error", or_dash(job.spawn_error.clone())),
    ];
    if let Some(e) = &job.output_error {
        rows.push(("output_error", e.clone()));
    }
    if let Some(at) = &job.next_run_at {
        rows.push(("next_run_at", at.clone()));
    }
    if let Some(h) = health(job) {
        rows.push(("health", h));
        rows.push(("health_output", or_dash(job.health_output.clone())));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

/// The status table: NAME GROUP STATE PID [RESTARTS] UPTIME/EXIT. The RESTARTS column
/// appears only when some job has been restarted, so a quiet table stays narrow.
pub fn table(jobs: &[Job], colour: bool) -> String {
    let rows: Vec<Row<'_>> = jobs.iter().map(Row::from).collect();
    let mut out = String::new();
    rows_table(&mut out, &rows, colour);
    out
}

/// [`table`] of rows, written at the end of `out` cell by cell (the widths first, then
/// each line): `supctl status` of thousands of jobs spends its time here and in
/// decoding.
pub fn rows_table(out: &mut String, jobs: &[Row<'_>], colour: bool) {
    const DAEMON: &str = " (daemon)";
    let restarts = jobs.iter().any(|j| j.restarts > 0);
    // NAME, GROUP, STATE, PID, RESTARTS: the columns that are padded.
    let mut widths = [4, 5, 5, 3, 8];
    for j in jobs {
        let name = width(&j.name) + if j.daemon { DAEMON.len() } else { 0 };
        widths[0] = widths[0].max(name);
        widths[1] = widths[1].max(width(&j.group));
        widths[2] = widths[2].max(j.state.as_str().len());
        widths[3] = widths[3].max(j.pid.map_or(1, |p| digits(u64::from(p))));
        widths[4] = widths[4].max(digits(u64::from(j.restarts)));
    }
    let line_len: usize = widths.iter().sum::<usize>() + 10 + 24;
    out.reserve((jobs.len() + 1) * line_len);
    pad(out, "NAME", widths[0]);
    pad(out, "GROUP", widths[1]);
    pad(out, "STATE", widths[2]);
    pad(out, "PID", widths[3]);
    if restarts {
        pad(out, "RESTARTS", widths[4]);
    }
    out.push_str("UPTIME/EXIT\n");
    for j in jobs {
        let start = out.len();
        out.push_str(&j.name);
        if j.daemon {
            out.push_str(DAEMON);
        }
        let name = width(&j.name) + if j.daemon { DAEMON.len() } else { 0 };
        spaces(out, widths[0] - name + 2);
        pad(out, &j.group, widths[1]);
        if colour {
            let mut cell = String::new();
            pad(&mut cell, j.state.as_str(), widths[2]);
            out.push_str(&paint(j.state, &cell, true));
        } else {
            pad(out, j.state.as_str(), widths[2]);
        }
        let cell = out.len();
        match j.pid {
            Some(p) => push_number(out, u64::from(p)),
            None => out.push('-'),
        }
        spaces(out, widths[3] - (out.len() - cell) + 2);
        if restarts {
            let cell = out.len();
            push_number(out, u64::from(j.restarts));
            spaces(out, widths[4] - (out.len() - cell) + 2);
        }
        push_uptime_or_exit(out, j);
        let kept = out[start..].trim_end().len();
        out.truncate(start + kept);
        out.push('\n');
    }
}

/// How wide a cell is on a terminal, as `format!`'s padding counts it (in chars).
fn width(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

/// Decimal digits of `n`.
fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

fn spaces(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// A cell padded to `w`, and the two spaces between columns.
fn pad(out: &mut String, cell: &str, w: usize) {
    out.push_str(cell);
    spaces(out, w.saturating_sub(width(cell)) + 2);
}

/// One line for a job that ended: `File1: exited, exit 0 (success)`. A job stopped by a
/// request says so, and is not called a failure for dying of the signal it was sent:
/// `File2: stopped by request, killed by SIGTERM (-15)`.
pub fn ended(job: &Job) -> String {
    if job.state == JobState::Stopped {
        return match (job.cause, &job.reason, job.exitcode) {
            (Some(Cause::StopTimeout), Some(reason), _) => {
                format!("{}: stopped, {reason}", job.name)
            }
            (_, _, Some(code)) => {
                format!("{}: stopped by request, {}", job.name, describe_exit(code))
            }
            _ => format!("{}: stopped by request", job.name),
        };
    }
    let mut s = format!("{}: {}", job.name, job.state);
    if let Some(code) = job.exitcode {
        s.push_str(", ");
        s.push_str(&describe_exit(code));
    }
    if let Some(err) = &job.spawn_error {
        s.push_str(": ");
        s.push_str(err);
    }
    match job.success {
        Some(true) => s.push_str(" (success)"),
        Some(false) => s.push_str(" (failure)"),
        None => {}
    }
    s
}

/// One line for an event: `12:00:01.250 File1 starting -> running pid 4242`.
pub fn event(e: &Event) -> String {
    let time = e.at.get(11..23).unwrap_or(&e.at);
    let mut s = format!("{time} {} {} -> {}", e.name, e.from, e.to);
    if let Some(pid) = e.pid {
        s.push_str(&format!(" pid {pid}"));
    }
    match (e.cause, &e.reason, e.exitcode) {
        (Some(Cause::Stopped), Some(reason), Some(code)) => {
            s.push_str(&format!(" ({reason}, {})", describe_exit(code)));
        }
        (Some(_), Some(reason), _) => s.push_str(&format!(" ({reason})")),
        (_, _, Some(code)) => s.push_str(&format!(" ({})", describe_exit(code))),
        _ => {}
    }
    s
}

/// One `health` notification for people: `12:00:01.250 api health unhealthy (HTTP 500)`.
pub fn health_change(h: &HealthChange) -> String {
    let time = h.at.get(11..23).unwrap_or(&h.at);
    let mut s = format!("{time} {} health {}", h.name, h.health.as_str());
    if let Some(first) = h.output.as_deref().and_then(|o| o.lines().next()) {
        if !first.is_empty() {
            s.push_str(&format!(" ({first})"));
        }
    }
    s
}

/// The status table with usage: NAME GROUP STATE PID [RESTARTS] CPU MEM UPTIME/EXIT
/// (`status --usage`; RESTARTS as in [`table`]). CPU is the CPU time used so far, MEM
/// the resident memory; `-` where the daemon measured nothing (no live process).
pub fn usage_table(jobs: &[Job], colour: bool) -> String {
    let restarts = jobs.iter().any(|j| j.restarts > 0);
    let mut header = vec!["NAME", "GROUP", "STATE", "PID"];
    if restarts {
        header.push("RESTARTS");
    }
    header.extend(["CPU", "MEM", "UPTIME/EXIT"]);
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    for j in jobs {
        let mut name = j.name.clone();
        if j.daemon {
            name.push_str(" (daemon)");
        }
        let mut row = vec![
            name,
            j.group.clone(),
            j.state.to_string(),
            j.pid.map_or_else(|| "-".into(), |p| p.to_string()),
        ];
        if restarts {
            row.push(j.restarts.to_string());
        }
        row.push(j.cpu_ms.map_or_else(|| "-".into(), cpu_time));
        row.push(j.memory_bytes.map_or_else(|| "-".into(), bytes));
        row.push(uptime_or_exit(j));
        rows.push(row);
    }
    let mut widths = vec![0; header.len()];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let last = widths.len() - 1;
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let state = i.checked_sub(1).and_then(|k| jobs.get(k)).map(|j| j.state);
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let padded = if c == last {
                cell.clone()
            } else {
                format!("{cell:<w$}  ", w = widths[c])
            };
            match (c, state) {
                (2, Some(st)) => line.push_str(&paint(st, &padded, colour)),
                _ => line.push_str(&padded),
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// CPU time for people: `0.0s`, `12.4s`, `2m13s`, `1h4m`.
pub fn cpu_time(ms: u64) -> String {
    if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        short_duration(Duration::from_millis(ms))
    }
}

/// A size in bytes for people, in powers of 1024: `512B`, `3.4K`, `12.5M`, `1.2G`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else if value < 10.0 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.0}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, state: JobState, exitcode: Option<i32>) -> Job {
        Job {
            name: name.into(),
            group: "g".into(),
            state,
            alive: state.is_alive(),
            pid: state.is_alive().then_some(42),
            exitcode,
            signal: None,
            success: exitcode.map(|c| c == 0),
            daemon: false,
            restarts: 0,
            started_at: None,
            ended_at: None,
            uptime_ms: state.is_alive().then_some(133_000),
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

    fn because(mut j: Job, cause: Cause, reason: &str) -> Job {
        j.cause = Some(cause);
        j.reason = Some(reason.into());
        j
    }

    #[test]
    fn the_table_says_why_a_job_is_not_running() {
        let t = table(
            &[
                because(
                    job("by-hand", JobState::Stopped, Some(-15)),
                    Cause::Stopped,
                    "stopped by request",
                ),
                because(
                    job("stubborn", JobState::Stopped, Some(-9)),
                    Cause::StopTimeout,
                    "killed with SIGKILL after stop_timeout 1s",
                ),
                because(
                    job("missing", JobState::Fatal, None),
                    Cause::SpawnError,
                    "cannot spawn: cannot run \"nope\": no such program",
                ),
            ],
            false,
        );
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[1].ends_with("stopped by request, killed by SIGTERM (-15)"),
            "{t}"
        );
        assert!(
            lines[2].ends_with("killed with SIGKILL after stop_timeout 1s"),
            "{t}"
        );
        assert!(
            lines[3].ends_with("cannot spawn: cannot run \"nope\": no such program"),
            "{t}"
        );
    }

    #[test]
    fn one_job_as_a_block_has_every_field() {
        let j = because(
            job("File2", JobState::Stopped, Some(-15)),
            Cause::Stopped,
            "stopped by request",
        );
        let b = block(&j);
        for key in [
            "name",
            "group",
            "state",
            "alive",
            "pid",
            "uptime",
            "exitcode",
            "signal",
            "success",
            "cause",
            "reason",
            "daemon",
            "restarts",
            "started_at",
            "ended_at",
            "spawn_error",
        ] {
            assert!(
                b.lines().any(|l| l.split_whitespace().next() == Some(key)),
                "{key} missing from\n{b}"
            );
        }
        assert!(b.contains("cause        stopped\n"), "{b}");
        assert!(b.contains("reason       stopped by request\n"), "{b}");
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(short_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(short_duration(Duration::from_secs(133)), "2m13s");
        assert_eq!(short_duration(Duration::from_secs(3_840)), "1h4m");
        assert_eq!(short_duration(Duration::from_secs(180_000)), "2d2h");
    }

    #[test]
    fn table_is_aligned_and_plain_without_colour() {
        let t = table(
            &[
                job("File1", JobState::Running, None),
                job("File2-long", JobState::Stopped, Some(-15)),
            ],
            false,
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "NAME        GROUP  STATE    PID  UPTIME/EXIT");
        assert_eq!(lines[1], "File1       g      running  42   up 2m13s");
        assert_eq!(
            lines[2],
            "File2-long  g      stopped  -    killed by SIGTERM (-15)"
        );
        assert!(!t.contains('\x1b'));
    }

    /// The table as it was written before it was made fast: cells formatted into a
    /// `Vec<Vec<String>>`, padded with `format!`.
    fn table_model(jobs: &[Job], colour: bool) -> String {
        let restarts = jobs.iter().any(|j| j.restarts > 0);
        let rows: Vec<Vec<String>> = jobs
            .iter()
            .map(|j| {
                let mut name = j.name.clone();
                if j.daemon {
                    name.push_str(" (daemon)");
                }
                let mut row = vec![
                    name,
                    j.group.clone(),
                    j.state.to_string(),
                    j.pid.map_or_else(|| "-".into(), |p| p.to_string()),
                ];
                if restarts {
                    row.push(j.restarts.to_string());
                }
                row.push(uptime_or_exit(j));
                row
            })
            .collect();
        let mut header = vec!["NAME", "GROUP", "STATE", "PID"];
        if restarts {
            header.push("RESTARTS");
        }
        header.push("UPTIME/EXIT");
        let last = header.len() - 1;
        let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[&str], state: Option<JobState>| {
            let mut s = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let padded = if i == last {
                    (*cell).to_owned()
                } else {
                    format!("{cell:<w$}  ", w = widths[i])
                };
                match (i, state) {
                    (2, Some(st)) => s.push_str(&paint(st, &padded, colour)),
                    _ => s.push_str(&padded),
                }
            }
            s.trim_end().to_owned()
        };
        let mut out = line(&header, None);
        out.push('\n');
        for (row, job) in rows.iter().zip(jobs) {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            out.push_str(&line(&cells, Some(job.state)));
            out.push('\n');
        }
        out
    }

    #[test]
    fn table_is_the_same_text_as_the_plain_formatting() {
        let mut daemon = job("hélper", JobState::Running, None);
        daemon.daemon = true;
        daemon.group = "grüppe".into();
        daemon.pid = Some(1_234_567);
        let mut trailing = because(
            job("odd", JobState::Exited, Some(1)),
            Cause::Exit,
            "ends in spaces  ",
        );
        trailing.restarts = 12;
        let mut waiting = because(
            job("w", JobState::Waiting, None),
            Cause::Dependency,
            "waiting for db",
        );
        waiting.group = "a-much-longer-group-name".into();
        let sets = [
            vec![],
            vec![job("File1", JobState::Running, None)],
            vec![
                daemon.clone(),
                job("File2", JobState::Stopped, Some(-15)),
                waiting.clone(),
            ],
            vec![daemon, trailing, waiting, job("x", JobState::Fatal, None)],
        ];
        for jobs in &sets {
            for colour in [false, true] {
                assert_eq!(table(jobs, colour), table_model(jobs, colour));
            }
        }
    }

    /// The last column as it was written before it was written in place: with
    /// `format!`, through owned strings.
    fn uptime_or_exit_model(job: &Job) -> String {
        let health = |job: &Job| {
            let h = job.health?;
            if h != protocol::Health::Unhealthy {
                return Some(h.as_str().to_owned());
            }
            let output = job.health_output.as_deref().and_then(|o| o.lines().next());
            Some(format!(
                "unhealthy ({} failed: {})",
                job.health_failures.unwrap_or(0),
                output.unwrap_or("")
            ))
        };
        let short = |d: Duration| {
            let s = d.as_secs();
            match s {
                0 => format!("{}ms", d.as_millis()),
                1..=59 => format!("{s}s"),
                60..=3599 => format!("{}m{}s", s / 60, s % 60),
                3600..=86_399 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
                _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
            }
        };
        if job.alive {
            let mut s = job.uptime_ms.map_or_else(
                || "-".into(),
                |ms| format!("up {}", short(Duration::from_millis(ms))),
            );
            if let Some(h) = health(job) {
                s.push_str(&format!(", {h}"));
            }
            if let Some(r) = &job.reason {
                s.push_str(&format!(" ({r})"));
            }
            return s;
        }
        if job.state == JobState::Waiting {
            return job.reason.clone().unwrap_or_else(|| "waiting".into());
        }
        let exit = job.exitcode.map(describe_exit);
        let why = match (job.cause, &job.reason, exit) {
            (Some(Cause::Stopped), Some(reason), Some(exit)) => format!("{reason}, {exit}"),
            (Some(_), Some(reason), _) => reason.clone(),
            (_, _, Some(exit)) => exit,
            _ => job.spawn_error.clone().unwrap_or_else(|| "-".into()),
        };
        let next = job
            .next_run_at
            .as_deref()
            .and_then(|at| humantime::parse_rfc3339(at).ok())
            .map(|_| "now".to_owned());
        match (why, next) {
            (why, Some(next)) if why == "-" => format!("next run {next}"),
            (why, Some(next)) => format!("{why}; next run {next}"),
            (why, None) => why,
        }
    }

    /// Every shape of the last column is the text it was before it was written in
    /// place (scheduled runs in the past, which read `now` whenever they are read).
    #[test]
    fn the_last_column_is_the_same_text_as_before() {
        let mut jobs = Vec::new();
        for ms in [
            None,
            Some(0),
            Some(999),
            Some(1_000),
            Some(59_999),
            Some(60_000),
        ] {
            for ms2 in [ms, ms.map(|m| m * 61), ms.map(|m| m * 3_601 + 7)] {
                let mut j = job("a", JobState::Running, None);
                j.uptime_ms = ms2;
                jobs.push(j);
            }
        }
        let mut more = Vec::new();
        for j in &jobs {
            for (health, failures, output) in [
                (Some(protocol::Health::Healthy), None, None),
                (Some(protocol::Health::Unknown), Some(0), None),
                (
                    Some(protocol::Health::Unhealthy),
                    Some(3),
                    Some("HTTP 500\nmore"),
                ),
                (Some(protocol::Health::Unhealthy), None, None),
            ] {
                let mut h = j.clone();
                (h.health, h.health_failures) = (health, failures);
                h.health_output = output.map(str::to_owned);
                h.reason = output.map(|_| "unhealthy".into());
                more.push(h);
            }
        }
        jobs.extend(more);
        for state in [
            JobState::Stopped,
            JobState::Exited,
            JobState::Fatal,
            JobState::Waiting,
        ] {
            for exitcode in [None, Some(0), Some(3), Some(-15), Some(-99)] {
                for (cause, reason) in [
                    (None, None),
                    (Some(Cause::Stopped), Some("stopped by request")),
                    (Some(Cause::Exit), Some("exit 3")),
                    (Some(Cause::SpawnError), None),
                    (None, Some("-")),
                ] {
                    for spawn_error in [None, Some("cannot spawn")] {
                        for next in [None, Some("2001-02-03T04:05:06.789Z"), Some("soon")] {
                            let mut j = job("b", state, exitcode);
                            j.cause = cause;
                            j.reason = reason.map(str::to_owned);
                            j.spawn_error = spawn_error.map(str::to_owned);
                            j.next_run_at = next.map(str::to_owned);
                            jobs.push(j);
                        }
                    }
                }
            }
        }
        for j in &jobs {
            assert_eq!(uptime_or_exit(j), uptime_or_exit_model(j), "{j:?}");
        }
        for ms in [0, 999, 59_999, 86_399_999, 86_400_000, u64::MAX] {
            let model = uptime_or_exit_model(&Job {
                uptime_ms: Some(ms),
                ..job("c", JobState::Running, None)
            });
            let d = Duration::from_millis(ms);
            assert_eq!(format!("up {}", short_duration(d)), model);
        }
    }

    #[test]
    fn restarts_column_only_when_a_job_restarted() {
        let mut flappy = job("flappy", JobState::Running, None);
        flappy.restarts = 3;
        let t = table(&[job("File1", JobState::Running, None), flappy], false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "NAME    GROUP  STATE    PID  RESTARTS  UPTIME/EXIT"
        );
        assert_eq!(lines[1], "File1   g      running  42   0         up 2m13s");
        assert_eq!(lines[2], "flappy  g      running  42   3         up 2m13s");
    }

    #[test]
    fn ended_lines() {
        assert_eq!(
            ended(&job("File2", JobState::Stopped, Some(-15))),
            "File2: stopped by request, killed by SIGTERM (-15)"
        );
        assert_eq!(
            ended(&job("File1", JobState::Exited, Some(0))),
            "File1: exited, exit 0 (success)"
        );
    }

    #[test]
    fn usage_table_adds_cpu_and_mem() {
        let mut running = job("File1", JobState::Running, None);
        running.cpu_ms = Some(1250);
        running.memory_bytes = Some(3 << 20);
        let t = usage_table(
            &[running, job("File2", JobState::Stopped, Some(-15))],
            false,
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "NAME   GROUP  STATE    PID  CPU   MEM   UPTIME/EXIT"
        );
        assert_eq!(lines[1], "File1  g      running  42   1.2s  3.0M  up 2m13s");
        assert_eq!(
            lines[2],
            "File2  g      stopped  -    -     -     killed by SIGTERM (-15)"
        );
        let mut again = job("File1", JobState::Running, None);
        again.restarts = 2;
        let t = usage_table(&[again], false);
        let words: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(
            words[0],
            [
                "NAME",
                "GROUP",
                "STATE",
                "PID",
                "RESTARTS",
                "CPU",
                "MEM",
                "UPTIME/EXIT"
            ]
        );
        assert_eq!(words[1][4], "2");
    }

    #[test]
    fn sizes_and_cpu_times_for_people() {
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(3 * 1024 + 400), "3.4K");
        assert_eq!(bytes(200 << 20), "200M");
        assert_eq!(bytes(5 << 30), "5.0G");
        assert_eq!(cpu_time(0), "0.0s");
        assert_eq!(cpu_time(12_449), "12.4s");
        assert_eq!(cpu_time(133_000), "2m13s");
    }
}
