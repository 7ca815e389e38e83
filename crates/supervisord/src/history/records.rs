//! The lines of `history.jsonl`, as pure functions of text: reading them (a garbled line
//! is skipped and reported, never fatal), folding each run's start and end lines into one
//! [`Run`], and choosing what a compaction keeps.
//!
//! One line per record, `{"record":"start","run":{...}}` when a run is spawned and
//! `{"record":"end","state":"exited","run":{...}}` when it ends; `state` is the settled
//! state the job entered (what `status` shows for it after a restart). An end line
//! carries the whole run, so a run whose start line was lost (or a spawn that failed,
//! which has no start line) is still complete.

use protocol::{Cause, JobState, Run};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Which end of a run a line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Spawned.
    Start,
    /// Ended.
    End,
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// Start or end.
    pub record: Kind,
    /// End lines: the state the job entered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    /// The run as known at that point.
    pub run: Run,
}

impl Line {
    /// The line for a run that was spawned.
    pub fn start(run: Run) -> Line {
        Line {
            record: Kind::Start,
            state: None,
            run,
        }
    }

    /// The line for a run that ended, the job entering `state`.
    pub fn end(state: JobState, run: Run) -> Line {
        Line {
            record: Kind::End,
            state: Some(state),
            run,
        }
    }

    /// The line as written: one JSON object and a newline.
    pub fn to_text(&self) -> String {
        let mut buf = Vec::new();
        self.write_to(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Append the line as written (one JSON object and a newline) to `buf`.
    pub fn write_to(&self, buf: &mut Vec<u8>) {
        let at = buf.len();
        // A struct of strings, numbers and enums always serializes; were it to fail,
        // what it wrote of the line goes rather than a torn line.
        if serde_json::to_writer(&mut *buf, self).is_err() {
            buf.truncate(at);
            return;
        }
        buf.push(b'\n');
    }
}

/// A line that could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct BadLine {
    /// Its number, from 1.
    pub number: usize,
    /// Why.
    pub error: String,
}

/// One run as the file knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    /// The run (its end line's copy when there is one).
    pub run: Run,
    /// The state its end line recorded; `None` while only its start is known.
    pub ended: Option<JobState>,
}

/// What a history file holds: every run by `run_id`, and the lines that could not be read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Book {
    /// Every run, by `run_id`.
    pub runs: BTreeMap<u64, Known>,
    /// Garbled lines, skipped.
    pub bad: Vec<BadLine>,
}

/// Read a history's text (whole lines; see [`torn_tail`] for a last line without its
/// newline). Empty lines are ignored; garbled ones are listed in [`Book::bad`].
pub fn read(text: &str) -> Book {
    let mut book = Book::default();
    for (i, raw) in text.split('\n').enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Line>(raw) {
            Ok(line) => book.add(line),
            Err(e) => book.bad.push(BadLine {
                number: i + 1,
                error: e.to_string(),
            }),
        }
    }
    book
}

/// Where the last line of `bytes` begins when it has no newline yet (a write cut short by
/// a crash): everything from there on is a torn line. `None` when the text ends with a
/// newline or is empty.
pub fn torn_tail(bytes: &[u8]) -> Option<usize> {
    match bytes.last() {
        None | Some(b'\n') => None,
        Some(_) => Some(bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)),
    }
}

impl Book {
    /// Take one line into account: an end line replaces what a start line said.
    pub fn add(&mut self, line: Line) {
        let id = line.run.run_id;
        match line.record {
            Kind::Start => {
                self.runs.entry(id).or_insert(Known {
                    run: line.run,
                    ended: None,
                });
            }
            Kind::End => {
                self.runs.insert(
                    id,
                    Known {
                        run: line.run,
                        ended: Some(line.state.unwrap_or(JobState::Exited)),
                    },
                );
            }
        }
    }

    /// End every run that has a start line and no end line: supervisord died while it
    /// ran. Returns the end lines to write (each already taken into the book).
    pub fn end_lost(&mut self, now: &str) -> Vec<Line> {
        let mut lines = Vec::new();
        for known in self.runs.values_mut().filter(|k| k.ended.is_none()) {
            let mut run = known.run.clone();
            run.ended_at = Some(now.to_owned());
            run.exitcode = None;
            run.signal = None;
            run.success = Some(false);
            run.cause = Some(Cause::DaemonLost);
            run.reason = Some(LOST.to_owned());
            known.run = run.clone();
            known.ended = Some(JobState::Exited);
            lines.push(Line::end(JobState::Exited, run));
        }
        lines
    }

    /// Each job's last ended run (the highest `run_id`), with the state it left the job in.
    pub fn last_per_job(&self) -> HashMap<String, (JobState, Run)> {
        let mut last = HashMap::new();
        for known in self.runs.values() {
            if let Some(state) = known.ended {
                // Ascending run ids: a later run replaces an earlier one.
                last.insert(known.run.name.clone(), (state, known.run.clone()));
            }
        }
        last
    }

    /// The highest `run_id` in the file (0 for none).
    pub fn max_run_id(&self) -> u64 {
        self.runs.keys().next_back().copied().unwrap_or(0)
    }

    /// The newest `limit` runs, newest first, of the named jobs (every job when `names`
    /// is `None`).
    pub fn newest(&self, names: Option<&[String]>, limit: usize) -> Vec<Run> {
        let wanted: Option<HashSet<&str>> = names.map(|n| n.iter().map(String::as_str).collect());
        self.runs
            .values()
            .rev()
            .filter(|k| {
                wanted
                    .as_ref()
                    .is_none_or(|w| w.contains(k.run.name.as_str()))
            })
            .take(limit)
            .map(|k| k.run.clone())
            .collect()
    }
}

/// The reason of a run ended as `daemon_lost`.
pub const LOST: &str = "supervisord died while it ran";

/// What a compaction keeps of `text`: every line of the newest runs whose lines add up
/// to at most `budget` bytes (newest first, stopping at the first run that does not
/// fit), and every line of a run that has not ended (it is alive: its end line will
/// follow). Lines keep their order; garbled lines go.
pub fn compact(text: &str, budget: u64) -> String {
    let mut size: BTreeMap<u64, u64> = BTreeMap::new();
    let mut ended: HashSet<u64> = HashSet::new();
    let mut lines: Vec<(u64, &str)> = Vec::new();
    for raw in text.split('\n') {
        let Ok(line) = serde_json::from_str::<Line>(raw) else {
            continue;
        };
        let id = line.run.run_id;
        *size.entry(id).or_default() += raw.len() as u64 + 1;
        if line.record == Kind::End {
            ended.insert(id);
        }
        lines.push((id, raw));
    }
    let mut keep: HashSet<u64> = size
        .keys()
        .filter(|id| !ended.contains(id))
        .copied()
        .collect();
    let mut used: u64 = 0;
    for (id, bytes) in size.iter().rev() {
        if keep.contains(id) {
            continue;
        }
        used += bytes;
        if used > budget {
            break;
        }
        keep.insert(*id);
    }
    let mut out = String::new();
    for (id, raw) in lines {
        if keep.contains(&id) {
            out.push_str(raw);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: u64, name: &str) -> Run {
        Run {
            run_id: id,
            name: name.into(),
            group: name.into(),
            pid: Some(1000 + u32::try_from(id).expect("small")),
            started_at: "2026-11-25T10:00:00.000Z".into(),
            ended_at: None,
            exitcode: None,
            signal: None,
            success: None,
            cause: None,
            reason: None,
        }
    }

    fn ended(id: u64, name: &str, code: i32) -> Run {
        Run {
            ended_at: Some("2026-11-25T10:00:01.000Z".into()),
            exitcode: Some(code),
            success: Some(code == 0),
            cause: Some(Cause::Exit),
            reason: Some(format!("exit {code}")),
            ..run(id, name)
        }
    }

    fn text(lines: &[Line]) -> String {
        lines.iter().map(Line::to_text).collect()
    }

    #[test]
    fn the_record_format_is_one_json_object_per_line() {
        let start = Line::start(run(3, "a")).to_text();
        assert_eq!(
            start,
            "{\"record\":\"start\",\"run\":{\"run_id\":3,\"name\":\"a\",\"group\":\"a\",\"pid\":1003,\"started_at\":\"2026-11-25T10:00:00.000Z\",\"ended_at\":null,\"exitcode\":null,\"signal\":null,\"success\":null,\"cause\":null,\"reason\":null}}\n"
        );
        let end = Line::end(JobState::Exited, ended(3, "a", 2)).to_text();
        assert_eq!(
            end,
            "{\"record\":\"end\",\"state\":\"exited\",\"run\":{\"run_id\":3,\"name\":\"a\",\"group\":\"a\",\"pid\":1003,\"started_at\":\"2026-11-25T10:00:00.000Z\",\"ended_at\":\"2026-11-25T10:00:01.000Z\",\"exitcode\":2,\"signal\":null,\"success\":false,\"cause\":\"exit\",\"reason\":\"exit 2\"}}\n"
        );
        let book = read(&(start + &end));
        assert!(book.bad.is_empty());
        assert_eq!(book.runs.len(), 1);
        assert_eq!(book.runs[&3].ended, Some(JobState::Exited));
        assert_eq!(book.runs[&3].run, ended(3, "a", 2));
    }

    #[test]
    fn an_end_line_wins_whatever_the_order_and_a_start_does_not_undo_it() {
        let t = text(&[
            Line::end(JobState::Stopped, ended(1, "a", -15)),
            Line::start(run(1, "a")),
        ]);
        let book = read(&t);
        assert_eq!(book.runs[&1].ended, Some(JobState::Stopped));
        assert_eq!(book.runs[&1].run.exitcode, Some(-15));
    }

    #[test]
    fn a_torn_last_line_is_found_and_garbled_lines_are_skipped_and_numbered() {
        let good = text(&[
            Line::start(run(1, "a")),
            Line::end(JobState::Exited, ended(1, "a", 0)),
        ]);
        assert_eq!(torn_tail(good.as_bytes()), None);
        assert_eq!(torn_tail(b""), None);
        let torn = format!("{good}{{\"record\":\"sta");
        assert_eq!(torn_tail(torn.as_bytes()), Some(good.len()));
        assert_eq!(torn_tail(b"{\"rec"), Some(0));

        let garbled = format!("{good}not json\n\n{}", Line::start(run(2, "b")).to_text());
        let book = read(&garbled);
        assert_eq!(book.bad.len(), 1);
        assert_eq!(book.bad[0].number, 3);
        assert_eq!(book.runs.len(), 2, "the lines around it are kept");
        // Reading the torn text whole also skips the fragment rather than failing.
        let book = read(&torn);
        assert_eq!(book.runs.len(), 1);
        assert_eq!(book.bad.len(), 1);
    }

    #[test]
    fn runs_without_an_end_are_ended_as_daemon_lost() {
        let t = text(&[
            Line::start(run(1, "a")),
            Line::end(JobState::Exited, ended(1, "a", 0)),
            Line::start(run(2, "a")),
            Line::start(run(3, "b")),
        ]);
        let mut book = read(&t);
        let lost = book.end_lost("2026-11-25T11:00:00.000Z");
        let ids: Vec<u64> = lost.iter().map(|l| l.run.run_id).collect();
        assert_eq!(ids, [2, 3]);
        for l in &lost {
            assert_eq!(l.record, Kind::End);
            assert_eq!(l.state, Some(JobState::Exited));
            assert_eq!(l.run.cause, Some(Cause::DaemonLost));
            assert_eq!(l.run.success, Some(false));
            assert_eq!(l.run.ended_at.as_deref(), Some("2026-11-25T11:00:00.000Z"));
            assert_eq!(
                l.run.pid,
                Some(1000 + u32::try_from(l.run.run_id).expect("small"))
            );
        }
        assert!(book.end_lost("later").is_empty(), "only once");
        let last = book.last_per_job();
        assert_eq!(last["a"].1.run_id, 2);
        assert_eq!(last["a"].1.cause, Some(Cause::DaemonLost));
        assert_eq!(last["b"].1.run_id, 3);
        assert_eq!(book.max_run_id(), 3);
        assert_eq!(Book::default().max_run_id(), 0);
    }

    #[test]
    fn the_last_run_per_job_is_the_highest_ended_run_id() {
        let t = text(&[
            Line::end(JobState::Exited, ended(5, "a", 1)),
            Line::end(JobState::Fatal, ended(2, "a", 2)),
            Line::start(run(9, "a")),
        ]);
        let last = read(&t).last_per_job();
        assert_eq!(last["a"].0, JobState::Exited);
        assert_eq!(last["a"].1.run_id, 5, "run 9 has not ended");
    }

    #[test]
    fn newest_first_filtered_and_limited() {
        let t = text(&[
            Line::end(JobState::Exited, ended(1, "a", 0)),
            Line::end(JobState::Exited, ended(2, "b", 0)),
            Line::end(JobState::Exited, ended(3, "a", 0)),
            Line::start(run(4, "a")),
        ]);
        let book = read(&t);
        let ids = |runs: Vec<Run>| runs.iter().map(|r| r.run_id).collect::<Vec<_>>();
        assert_eq!(ids(book.newest(None, 10)), [4, 3, 2, 1]);
        assert_eq!(ids(book.newest(None, 2)), [4, 3]);
        assert_eq!(ids(book.newest(Some(&["b".into()]), 10)), [2]);
        assert_eq!(
            ids(book.newest(Some(&["a".into(), "zz".into()]), 2)),
            [4, 3]
        );
        assert!(book.newest(Some(&[]), 10).is_empty());
    }

    #[test]
    fn compaction_keeps_the_newest_runs_within_the_budget_and_every_open_run() {
        let mut lines = Vec::new();
        for id in 1..=20 {
            lines.push(Line::start(run(id, "a")));
            lines.push(Line::end(JobState::Exited, ended(id, "a", 0)));
        }
        // Run 3000 is still alive: it must survive any compaction.
        lines.push(Line::start(run(3_000, "live")));
        let mut t = text(&lines);
        t.push_str("garbage\n");
        let one_run = (Line::start(run(10, "a")).to_text().len()
            + Line::end(JobState::Exited, ended(10, "a", 0))
                .to_text()
                .len()) as u64;
        let kept = compact(&t, one_run * 5 + one_run / 2);
        let book = read(&kept);
        assert!(book.bad.is_empty(), "garbled lines go");
        let ids: Vec<u64> = book.runs.keys().copied().collect();
        assert_eq!(ids, [16, 17, 18, 19, 20, 3_000]);
        assert!(book
            .runs
            .values()
            .filter(|k| k.run.name == "a")
            .all(|k| k.ended.is_some()));
        assert!(kept.len() as u64 <= one_run * 6 + 300);
        assert!(kept.ends_with('\n'));
        // Order is kept: the result is a subsequence of the input lines.
        let mut rest = t.as_str();
        for line in kept.lines() {
            let at = rest.find(line).expect("in order");
            rest = &rest[at + line.len()..];
        }
        // A budget smaller than one run keeps only what is alive.
        let book = read(&compact(&t, 10));
        assert_eq!(book.runs.keys().copied().collect::<Vec<_>>(), [3_000]);
    }
}
