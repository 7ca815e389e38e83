//! The supervisor's side of the run history: turning a job's transitions into start and
//! end records, holding back answers until a run's end is on disk, restoring each job's
//! last run at start, and the `history` method.
//!
//! A run is opened when its job enters `starting` from a state without a process (the
//! record gets the spawn's run id, pid and start time) and ended when the job leaves the
//! live states (`starting`, `running`, `stopping`); a failed spawn is a run with no pid
//! that starts and ends at once (one end record). Times, exit codes, causes and reasons
//! are the lifecycle's, so a restored job shows what it showed before.

use super::{Reply, Supervisor};
use crate::config::JobSpec;
use crate::history::{Attached, Durable, HistoryLog, Note, Recovered};
use crate::lifecycle::{Lifecycle, Remembered, Transition};
use protocol::{code, signal_name, Cause, HistoryParams, JobState, RpcError, Run};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::mpsc;

/// The history as the supervisor holds it.
pub(super) struct RunLog {
    log: Option<HistoryLog>,
    /// The writer's wake-ups (a closed channel when the history is off).
    pub(super) notes: mpsc::UnboundedReceiver<Note>,
    /// How far the writer got.
    durable: Arc<Durable>,
    /// Why the history is not being written.
    error: Option<String>,
    /// The run each live job is in, as recorded at its start.
    open: HashMap<String, OpenRun>,
    /// Jobs whose last end record may not be on disk yet, with its sequence number.
    unsynced: HashMap<String, u64>,
    /// Each job's last run as the history said at start (see [`Supervisor::last_runs`]).
    last: HashMap<String, Run>,
}

impl RunLog {
    /// No history (`[supervisor] history = false`, and unit tests).
    pub(super) fn off() -> RunLog {
        RunLog {
            log: None,
            notes: mpsc::unbounded_channel().1,
            durable: Arc::default(),
            error: None,
            open: HashMap::new(),
            unsynced: HashMap::new(),
            last: HashMap::new(),
        }
    }

    /// Whether the last end records of these jobs are on disk (or there is nothing to
    /// wait for). When they are not, the writer wakes the supervisor once they are.
    pub(super) fn on_disk<'a>(&self, names: impl Iterator<Item = &'a str>) -> bool {
        if self.unsynced.is_empty() {
            return true;
        }
        // Sequence numbers grow and the writer syncs in order: the highest covers all.
        names
            .filter_map(|n| self.unsynced.get(n))
            .max()
            .is_none_or(|seq| self.durable.covers(*seq))
    }

    /// Hand this turn's records to the writer: once per turn of the loop.
    pub(super) fn flush(&mut self) {
        if let Some(log) = self.log.as_mut() {
            log.flush();
        }
    }

    /// Why the history is not being written, for `ping`.
    pub(super) fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// A run that started and has not ended: what its start record was made of, to make the
/// end record from. Kept this small because every running job has one (the whole record,
/// with its strings, was about 0.4 KiB a job).
struct OpenRun {
    id: u64,
    spec: Arc<JobSpec>,
    started: SystemTime,
    pid: Option<u32>,
}

/// A run's end as the lifecycle remembers it, from its history record.
fn remembered(run: &Run) -> Remembered {
    let time = |t: &str| humantime::parse_rfc3339(t).ok();
    Remembered {
        exitcode: run.exitcode,
        success: run.success,
        started_at: time(&run.started_at),
        ended_at: run.ended_at.as_deref().and_then(time),
        spawn_error: run
            .reason
            .as_deref()
            .filter(|_| run.cause == Some(Cause::SpawnError))
            .map(|r| r.strip_prefix("cannot spawn: ").unwrap_or(r).to_owned()),
        cause: run.cause,
        reason: run.reason.clone(),
    }
}

impl Supervisor {
    /// Write the run history through `opened` and start from what it remembers: run ids
    /// continue past the file's, and each job of the file that is not running shows its
    /// last run (not in batch mode, whose exit code speaks of this run's jobs only).
    pub fn with_history(mut self, attached: Attached) -> Supervisor {
        let Attached {
            log,
            notes,
            durable,
            recovered,
        } = attached;
        self.remember(&recovered);
        self.runs = RunLog {
            log: Some(log),
            notes,
            durable,
            error: recovered.error,
            open: HashMap::new(),
            unsynced: HashMap::new(),
            last: recovered
                .last
                .into_iter()
                .map(|(name, (_, run))| (name, run))
                .collect(),
        };
        self
    }

    fn remember(&mut self, recovered: &Recovered) {
        self.next_run = self.next_run.max(recovered.next_run_id);
        if self.batch {
            return;
        }
        for (name, (state, run)) in &recovered.last {
            if let Some(e) = self.jobs.get_mut(name) {
                e.life = Lifecycle::remembered(*state, &remembered(run));
            }
        }
        self.scans = super::Scans::default();
    }

    /// Each job's last run as the history said when supervisord started, by job name:
    /// what `catch_up` compares a schedule with (its `started_at`). Runs since are not
    /// in it.
    pub(crate) fn last_runs(&self) -> &HashMap<String, Run> {
        &self.runs.last
    }

    /// Record the runs that `transitions` of job `name` started and ended;
    /// `spawn_failed` when they answer a failed spawn (a run that ends as it starts).
    pub(super) fn record_runs(
        &mut self,
        name: &str,
        spec: &JobSpec,
        transitions: &[Transition],
        spawn_failed: bool,
    ) {
        if self.runs.log.is_none() {
            return;
        }
        if spawn_failed {
            let id = self.next_run;
            self.next_run += 1;
            if let (Some(e), Some(t)) = (self.jobs.get(name), transitions.first()) {
                let run = new_run(id, spec, e.life.ended_at(), None);
                self.run_ended(name, run, t);
            }
            return;
        }
        for t in transitions {
            if t.to == JobState::Starting && !t.from.is_alive() {
                self.run_started(name, spec);
            } else if t.from.is_alive() && !t.to.is_alive() {
                if let Some(open) = self.runs.open.remove(name) {
                    let run = new_run(open.id, &open.spec, Some(open.started), open.pid);
                    self.run_ended(name, run, t);
                }
            }
        }
    }

    fn run_started(&mut self, name: &str, spec: &JobSpec) {
        let Some(e) = self.jobs.get(name) else {
            return;
        };
        let Some(id) = e.run.as_ref().map(|r| r.id) else {
            return;
        };
        let started = e.life.started_at().unwrap_or_else(SystemTime::now);
        let open = OpenRun {
            id,
            spec: Arc::clone(&e.spec),
            started,
            pid: e.life.pid(),
        };
        if let Some(log) = self.runs.log.as_mut() {
            log.started(new_run(id, spec, Some(started), open.pid));
        }
        self.runs.open.insert(name.to_owned(), open);
    }

    fn run_ended(&mut self, name: &str, mut run: Run, t: &Transition) {
        let Some(e) = self.jobs.get(name) else {
            return;
        };
        run.ended_at = e.life.ended_at().map(super::rfc3339);
        run.exitcode = t.exitcode;
        run.signal = t.exitcode.and_then(signal_name);
        run.success = e.life.success();
        run.cause = t.cause;
        run.reason = t.reason.clone();
        if let Some(log) = self.runs.log.as_mut() {
            let seq = log.ended(t.to, run);
            self.runs.unsynced.insert(name.to_owned(), seq);
        }
    }

    /// Records an answer was held back for are durable, or the writer stopped working.
    pub(super) fn history_note(&mut self, note: Note) {
        match note {
            Note::Durable(seq) => {
                self.runs.durable.advance(seq);
                self.runs.unsynced.retain(|_, s| *s > seq);
            }
            Note::Failed(error) => self.runs.error = Some(error),
        }
    }

    /// `history`: answered by the writer thread, after every record handed over so far.
    pub(super) fn history(&mut self, params: HistoryParams, reply: Reply) {
        match self.runs.log.as_mut() {
            Some(log) => log.query(params, reply),
            None => {
                let _ = reply.send(Err(RpcError::new(
                    code::CONFLICT,
                    "the run history is off ([supervisor] history = false)",
                )));
            }
        }
    }
}

fn new_run(id: u64, spec: &JobSpec, started: Option<SystemTime>, pid: Option<u32>) -> Run {
    Run {
        run_id: id,
        name: spec.name.clone(),
        group: spec.group.clone(),
        pid,
        started_at: super::rfc3339(started.unwrap_or_else(SystemTime::now)),
        ended_at: None,
        exitcode: None,
        signal: None,
        success: None,
        cause: None,
        reason: None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::harness;
    use super::super::Call;
    use super::*;
    use crate::history::records::Kind;
    use crate::history::Msg;
    use protocol::{Selection, WaitParams};
    use std::time::Duration;

    /// The writer is played by the test: `wait` for a job that ended does not answer
    /// until the job's end record is acknowledged as on disk.
    #[tokio::test]
    async fn wait_answers_only_once_the_end_record_is_acknowledged() {
        let (sup, handle, writer) = harness::build(
            r#"
[job.quick]
command = ["true"]
start_secs = 0
autostart = false
stdout = "null"
stderr = "null"
"#,
            false,
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let (notes_tx, notes) = mpsc::unbounded_channel();
        let mut sup = sup;
        sup.runs = RunLog {
            log: Some(HistoryLog::to_channel(tx)),
            notes,
            ..RunLog::off()
        };
        let run = tokio::spawn(sup.run());
        let (_, mut events) = handle.subscribe().await.expect("subscribe");
        handle
            .call(Call::Start(Selection::names(vec!["quick".into()]).into()))
            .await
            .expect("start");
        loop {
            if let super::super::Published::State(e) = events.recv().await.expect("an event") {
                if e.to.is_settled() {
                    break;
                }
            }
        }
        let waited = {
            let handle = handle.clone();
            tokio::spawn(async move {
                handle
                    .call(Call::Wait(WaitParams {
                        selection: Selection::names(vec!["quick".into()]),
                        timeout_ms: None,
                        ready: None,
                    }))
                    .await
            })
        };
        // The records the supervisor handed over: a start, then an end. Looked for without
        // blocking the test's runtime, which the supervisor runs on too (a turn that
        // published events yields before it hands records over).
        let mut seqs = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while seqs.len() < 2 {
            let msg = match rx.try_recv() {
                Ok(msg) => msg,
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    assert!(std::time::Instant::now() < deadline, "no record");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                Err(e) => panic!("the records' channel: {e}"),
            };
            match msg {
                Msg::Records(records) => {
                    for r in records {
                        assert_eq!(r.end, r.line.record == Kind::End, "{:?}", r.line);
                        assert_eq!(r.line.run.name, "quick");
                        seqs.push((r.seq, r.end));
                    }
                }
                Msg::Query { .. } => panic!("no query was made"),
            }
        }
        assert_eq!(seqs, [(1, false), (2, true)]);
        // Nothing acknowledged: 300 ms is many turns of the loop for an answer that is
        // otherwise immediate (the job settled before the wait was sent).
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !waited.is_finished(),
            "wait answered before the end was on disk"
        );
        notes_tx.send(Note::Durable(1)).expect("send");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !waited.is_finished(),
            "the start's acknowledgement is not the end's"
        );
        notes_tx.send(Note::Durable(2)).expect("send");
        let answer = tokio::time::timeout(Duration::from_secs(10), waited)
            .await
            .expect("answered once acknowledged")
            .expect("the task")
            .expect("an answer");
        let list: protocol::JobList = serde_json::from_str(answer.get()).expect("a job list");
        assert_eq!(list.success, Some(true));
        let _ = handle
            .call(Call::Shutdown(protocol::ShutdownParams { drain: None }))
            .await;
        let _ = run.await;
        drop(handle);
        writer.join();
    }

    #[test]
    fn a_history_record_is_remembered_as_the_lifecycle_shows_it() {
        let run = Run {
            run_id: 4,
            name: "a".into(),
            group: "a".into(),
            pid: None,
            started_at: "2026-11-25T10:00:00.000Z".into(),
            ended_at: Some("2026-11-25T10:00:00.000Z".into()),
            exitcode: None,
            signal: None,
            success: None,
            cause: Some(Cause::SpawnError),
            reason: Some("cannot spawn: No such file or directory (os error 2)".into()),
        };
        let r = remembered(&run);
        assert_eq!(
            r.spawn_error.as_deref(),
            Some("No such file or directory (os error 2)")
        );
        assert_eq!(
            r.ended_at.map(super::super::rfc3339).as_deref(),
            Some("2026-11-25T10:00:00.000Z")
        );
        let life = Lifecycle::remembered(JobState::Fatal, &r);
        assert_eq!(life.state(), JobState::Fatal);
        assert_eq!(life.cause(), Some(Cause::SpawnError));
        let life = Lifecycle::remembered(JobState::Backoff, &r);
        assert_eq!(
            life.state(),
            JobState::Exited,
            "nothing is scheduled after a restart"
        );
    }
}
