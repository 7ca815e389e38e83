//! `supctl history`: past runs as a table for people, newest first.

use crate::render::short_duration;
use protocol::{describe_exit, Cause, Run};
use std::time::Duration;

/// RUN NAME PID STARTED (UTC) TOOK RESULT, one run per row.
pub fn table(runs: &[Run]) -> String {
    let header = ["RUN", "NAME", "PID", "STARTED (UTC)", "TOOK", "RESULT"];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    for r in runs {
        rows.push(vec![
            r.run_id.to_string(),
            r.name.clone(),
            r.pid.map_or_else(|| "-".into(), |p| p.to_string()),
            when(&r.started_at),
            took(r),
            result(r),
        ]);
    }
    let mut widths = vec![0; header.len()];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `2026-11-25 10:00:01` from RFC 3339 UTC (as it is, when it is not).
fn when(t: &str) -> String {
    match t.get(..19) {
        Some(s) if t.len() > 19 => s.replacen('T', " ", 1),
        _ => t.to_owned(),
    }
}

/// How long the run lasted; `-` while it runs or when unknown.
fn took(r: &Run) -> String {
    let parse = |t: &str| humantime::parse_rfc3339(t).ok();
    let (Some(start), Some(end)) = (parse(&r.started_at), r.ended_at.as_deref().and_then(parse))
    else {
        return "-".into();
    };
    short_duration(end.duration_since(start).unwrap_or(Duration::ZERO))
}

/// How it ended, in words: `exit 0`, `stopped by request, killed by SIGTERM (-15)`,
/// `supervisord died while it ran`; `running` while it runs.
fn result(r: &Run) -> String {
    if r.ended_at.is_none() {
        return "running".into();
    }
    let exit = r.exitcode.map(describe_exit);
    match (r.cause, &r.reason, exit) {
        (Some(Cause::Stopped), Some(reason), Some(exit)) => format!("{reason}, {exit}"),
        (Some(_), Some(reason), _) => reason.clone(),
        (_, _, Some(exit)) => exit,
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_of_runs_newest_first_as_given() {
        let ended = Run {
            run_id: 12,
            name: "File2".into(),
            group: "downloads".into(),
            pid: Some(4242),
            started_at: "2026-11-25T10:00:00.000Z".into(),
            ended_at: Some("2026-11-25T10:02:13.500Z".into()),
            exitcode: Some(-15),
            signal: Some("SIGTERM".into()),
            success: Some(false),
            cause: Some(Cause::Stopped),
            reason: Some("stopped by request".into()),
        };
        let lost = Run {
            run_id: 9,
            name: "File1".into(),
            pid: Some(77),
            ended_at: Some("2026-11-25T10:00:00.000Z".into()),
            exitcode: None,
            signal: None,
            cause: Some(Cause::DaemonLost),
            reason: Some("supervisord died while it ran".into()),
            ..ended.clone()
        };
        let live = Run {
            run_id: 13,
            ended_at: None,
            exitcode: None,
            signal: None,
            success: None,
            cause: None,
            reason: None,
            ..ended.clone()
        };
        assert_eq!(
            table(&[live, ended, lost]),
            "\
RUN  NAME   PID   STARTED (UTC)        TOOK   RESULT
13   File2  4242  2026-11-25 10:00:00  -      running
12   File2  4242  2026-11-25 10:00:00  2m13s  stopped by request, killed by SIGTERM (-15)
9    File1  77    2026-11-25 10:00:00  0ms    supervisord died while it ran
"
        );
    }
}
