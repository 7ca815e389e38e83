//! After every turn of the loop: answer the requests whose jobs reached their condition,
//! forget removed jobs, and end batch mode or a drain.
//!
//! A request that cannot answer at once (`wait`, `terminate`, `restart`, `remove`,
//! `reload`) becomes a [`Waiter`]: conditions on named jobs plus what to answer once they
//! all hold. Conditions are judged on the table's current state after each turn, never on
//! a past event, so a waiter cannot miss the change it waits for.

use super::{encode, Answer, Entry, Phase, Reply, Supervisor};
use protocol::{JobList, JobState, ReloadResult, RpcError};
use std::collections::HashSet;

/// What a job must reach for a waiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Until {
    /// Settled: `stopped`, `exited` or `fatal`, nothing scheduled (`wait`).
    Settled,
    /// Settled, or past a stop completed after the given count of stops (`terminate`,
    /// `remove`): a `start` that crossed the stop does not hold the answer back.
    Stopped(u64),
    /// Past its stop and respawned (`restart`, a changed job at `reload`).
    Restarted,
    /// Gone from the table (a job a `reload` removed), or no longer being removed.
    Forgotten,
    /// `running` (and healthy, with a health check), or settled (`wait --ready`).
    ReadyOrSettled,
}

/// What a waiter answers once its conditions hold.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Then {
    /// `{"jobs": [...]}` of the jobs named in the conditions.
    Jobs,
    /// The same with `"success"` (`wait`).
    JobsAndSuccess,
    /// The same with `"success"`: all ready (`wait` with `ready`).
    JobsAndReady,
    /// A reload's summary, computed when it was applied.
    Reload(ReloadResult),
}

/// A request that answers once its jobs reach their conditions.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Pending {
    conditions: Vec<(String, Until)>,
    then: Then,
}

impl Pending {
    /// Answer with these jobs once each reaches `until`.
    pub(super) fn jobs(names: Vec<String>, until: Until) -> Pending {
        Pending {
            conditions: names.into_iter().map(|n| (n, until)).collect(),
            then: Then::Jobs,
        }
    }

    /// Answer with the jobs of `conditions` once each holds.
    pub(super) fn each(conditions: Vec<(String, Until)>) -> Pending {
        Pending {
            conditions,
            then: Then::Jobs,
        }
    }

    /// `wait`: answer with these jobs and whether all succeeded once all settled.
    pub(super) fn wait(names: Vec<String>) -> Pending {
        Pending {
            conditions: names.into_iter().map(|n| (n, Until::Settled)).collect(),
            then: Then::JobsAndSuccess,
        }
    }

    /// `wait` with `ready`: answer once each is ready or settled.
    pub(super) fn ready(names: Vec<String>) -> Pending {
        Pending {
            conditions: names
                .into_iter()
                .map(|n| (n, Until::ReadyOrSettled))
                .collect(),
            then: Then::JobsAndReady,
        }
    }

    /// `reload`: answer with `result` once removed jobs are gone and changed ones
    /// restarted.
    pub(super) fn reload(result: ReloadResult) -> Pending {
        let conditions = result
            .removed
            .iter()
            .map(|n| (n.clone(), Until::Forgotten))
            .chain(result.changed.iter().map(|n| (n.clone(), Until::Restarted)))
            .collect();
        Pending {
            conditions,
            then: Then::Reload(result),
        }
    }
}

/// How a request is answered.
pub(super) enum Outcome {
    /// Now, with this.
    Now(Result<Answer, RpcError>),
    /// Once the jobs reach their conditions.
    Later(Pending),
}

/// A parked request.
pub(super) struct Waiter {
    pending: Pending,
    reply: Reply,
    /// How many of the first conditions held when last looked at. Each turn looks again
    /// from there, so a `wait` on 1000 jobs costs one check per turn while the job it
    /// stopped at is still going, not 1000 (that made a burst of exits O(N²)); all are
    /// checked again, at one moment, before it is answered.
    held: usize,
}

impl Waiter {
    /// Answer with an error instead (the daemon is going away).
    pub(super) fn refuse(self, error: RpcError) {
        let _ = self.reply.send(Err(error));
    }
}

/// `running`, and healthy if it has a health check.
fn ready(e: &Entry) -> bool {
    e.life.state() == JobState::Running && (e.spec.health.is_none() || e.is_healthy())
}

/// A removed job can go once nothing of it runs and nothing is scheduled.
fn forgettable(e: &Entry) -> bool {
    e.run.is_none() && e.life.state().is_settled()
}

impl Supervisor {
    /// Park a request until its jobs reach their conditions.
    pub(super) fn park(&mut self, pending: Pending, reply: Reply) {
        // Forget waiters whose client has gone, so clients that leave in the middle of a
        // `wait` do not pile up until the job settles.
        self.waiters.retain(|w| !w.reply.is_closed());
        self.waiters.push(Waiter {
            pending,
            reply,
            held: 0,
        });
    }

    /// After every turn: answer waiters, forget removed jobs, end batch mode or a drain.
    pub(super) fn after_turn(&mut self) {
        if let Some(g) = self.guard.as_mut() {
            g.flush();
        }
        self.start_queued_runs();
        self.release_waiting();
        self.advance_stops();
        self.answer_waiters();
        self.forget_removed();
        self.finish_batch_or_drain();
    }

    fn met(&self, name: &str, until: Until) -> bool {
        let Some(e) = self.jobs.get(name) else {
            return true;
        };
        match until {
            Until::Settled => e.life.state().is_settled(),
            Until::Stopped(mark) => e.life.state().is_settled() || e.life.stops() > mark,
            Until::Restarted => e.life.state() != JobState::Stopping && !e.life.restart_pending(),
            Until::Forgotten => !e.removing || forgettable(e),
            Until::ReadyOrSettled => e.life.state().is_settled() || ready(e),
        }
    }

    /// Whether an answer whose conditions are all met may go: one that reports a run as
    /// ended waits until the run's end record is on disk (see `history.rs`). Asked only
    /// once every condition is met, so a `wait --all` has the writer wake the loop once,
    /// for its last record, not for each run that ends on the way.
    fn on_disk(&self, conditions: &[(String, Until)]) -> bool {
        let ended = conditions.iter().filter(|(n, u)| match u {
            Until::Settled | Until::Stopped(_) => true,
            Until::ReadyOrSettled => !self.jobs.get(n).is_some_and(ready),
            Until::Restarted | Until::Forgotten => false,
        });
        self.runs.on_disk(ended.map(|(n, _)| n.as_str()))
    }

    fn answer_waiters(&mut self) {
        let mut i = 0;
        while i < self.waiters.len() {
            let w = &self.waiters[i];
            if w.reply.is_closed() {
                self.waiters.swap_remove(i);
                continue;
            }
            let conditions = &w.pending.conditions;
            let from = w.held.min(conditions.len());
            let unmet = |skip: usize| {
                conditions
                    .iter()
                    .skip(skip)
                    .position(|(n, u)| !self.met(n, *u))
                    .map(|p| p + skip)
            };
            // From where it stopped last time, then (once that reached the end) all of
            // them again.
            let first_unmet = match unmet(from) {
                None if from > 0 => unmet(0),
                other => other,
            };
            if let Some(held) = first_unmet {
                self.waiters[i].held = held;
                i += 1;
                continue;
            }
            if !self.on_disk(&self.waiters[i].pending.conditions) {
                i += 1;
                continue;
            }
            let w = self.waiters.swap_remove(i);
            let names: Vec<String> = w.pending.conditions.into_iter().map(|(n, _)| n).collect();
            let answer = match w.pending.then {
                Then::Jobs => encode(&JobList::new(self.jobs_named(&names))),
                Then::JobsAndSuccess => {
                    let jobs = self.jobs_named(&names);
                    let success = jobs.iter().all(|j| j.success == Some(true));
                    encode(&JobList {
                        success: Some(success),
                        ..JobList::new(jobs)
                    })
                }
                Then::JobsAndReady => {
                    let success = names.iter().all(|n| self.jobs.get(n).is_some_and(ready));
                    encode(&JobList {
                        success: Some(success),
                        ..JobList::new(self.jobs_named(&names))
                    })
                }
                Then::Reload(result) => encode(&result),
            };
            let _ = w.reply.send(answer);
        }
    }

    /// A removed job stays in the table while a request still waits to report its status,
    /// so that `remove a b` answers with both last statuses even when `b` went at once.
    fn forget_removed(&mut self) {
        // Every turn: no set of the awaited names unless a job is being removed.
        if !self.scans.removing {
            return;
        }
        if !self.jobs.values().any(|e| e.removing) {
            self.scans.removing = false;
            return;
        }
        let awaited: HashSet<&str> = self
            .waiters
            .iter()
            .flat_map(|w| w.pending.conditions.iter())
            .filter(|(_, until)| *until != Until::Forgotten)
            .map(|(n, _)| n.as_str())
            .collect();
        let removed: Vec<String> = self
            .jobs
            .values()
            .filter(|e| e.removing && forgettable(e))
            .filter(|e| !awaited.contains(e.spec.name.as_str()))
            .map(|e| e.spec.name.clone())
            .collect();
        for name in removed {
            // Its cgroup goes with it, before the answer that says it is gone.
            if let Some(cg) = self.jobs.shift_remove(&name).and_then(|e| e.spare_cgroup) {
                cg.remove();
            }
            tracing::info!(job = %name, "job removed");
        }
    }

    fn finish_batch_or_drain(&mut self) {
        if let Some((name, ok)) = self.ended_for_good.take() {
            if self.phase != Phase::Stopping {
                tracing::info!(job = %name, "job ended and has on_exit = \"shutdown\": shutting down");
                self.exit_code = u8::from(!ok);
                self.begin_stop();
                return;
            }
        }
        // Only batch mode and a drain end when every non-daemon job has settled.
        let batch = self.batch && self.phase == Phase::Serving;
        if !batch && self.phase != Phase::Draining {
            return;
        }
        let non_daemon_settled = self
            .jobs
            .values()
            .filter(|e| !e.spec.background())
            .all(|e| e.life.state().is_settled());
        if !non_daemon_settled {
            return;
        }
        if self.batch && self.phase == Phase::Serving {
            let ran: Vec<&Entry> = self
                .jobs
                .values()
                .filter(|e| !e.spec.background() && e.life.ended_at().is_some())
                .collect();
            let failed: Vec<&str> = ran
                .iter()
                .filter(|e| e.life.success() != Some(true))
                .map(|e| e.spec.name.as_str())
                .collect();
            self.exit_code = u8::from(!failed.is_empty());
            self.prints.push(if failed.is_empty() {
                format!("supervisord: all {} jobs succeeded", ran.len())
            } else {
                format!(
                    "supervisord: {} of {} jobs failed: {}",
                    failed.len(),
                    ran.len(),
                    failed.join(", ")
                )
            });
            self.begin_stop();
        } else if self.phase == Phase::Draining {
            self.begin_stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::harness;
    use super::super::{Call, Published};
    use super::*;
    use protocol::{JobState, NamesParams, Selection, ShutdownParams, TerminateParams, WaitParams};

    const TWO: &str = r#"
[job.quick]
command = ["sh", "-c", "exit 0"]
start_secs = 0
stdout = "null"
stderr = "null"
[job.sleeper]
command = ["sleep", "30"]
start_secs = 0
stdout = "null"
stderr = "null"
"#;

    fn decode(answer: Result<Answer, RpcError>) -> JobList {
        let answer = answer.expect("an answer");
        serde_json::from_str(answer.get()).expect("a job list")
    }

    #[tokio::test]
    async fn wait_answers_once_every_job_settled_with_success() {
        let h = harness::start(TWO);
        let waited = h
            .handle
            .call(Call::Wait(WaitParams {
                selection: Selection::names(vec!["quick".into()]),
                timeout_ms: None,
                ready: None,
            }))
            .await;
        let list = decode(waited);
        assert_eq!(list.success, Some(true));
        assert_eq!(list.jobs[0].state, JobState::Exited);
        assert_eq!(h.finish().await, 0);
    }

    #[tokio::test]
    async fn terminate_answers_after_the_job_ended_and_remove_forgets_it_after_answering() {
        let h = harness::start(TWO);
        let stopped = h
            .handle
            .call(Call::Terminate(TerminateParams {
                selection: Selection::names(vec!["sleeper".into()]),
                signal: None,
                wait: None,
            }))
            .await;
        let list = decode(stopped);
        assert_eq!(list.jobs[0].state, JobState::Stopped);
        assert_eq!(list.jobs[0].exitcode, Some(-15));
        assert_eq!(list.success, None, "only wait says success");

        let removed = h
            .handle
            .call(Call::Remove(NamesParams {
                names: vec!["quick".into(), "sleeper".into()],
            }))
            .await;
        let names: Vec<String> = decode(removed).jobs.into_iter().map(|j| j.name).collect();
        assert_eq!(names, ["quick", "sleeper"], "both last statuses");
        let left = decode(h.handle.call(Call::Status(Selection::default())).await);
        assert!(left.jobs.is_empty(), "removed jobs are forgotten: {left:?}");
        assert_eq!(h.finish().await, 0);
    }

    #[tokio::test]
    async fn a_drain_terminates_daemon_jobs_and_ends_when_the_others_are_done() {
        let h = harness::start(
            r#"
[job.helper]
command = ["sleep", "30"]
daemon = true
start_secs = 0
stdout = "null"
stderr = "null"
[job.work]
command = ["sh", "-c", "sleep 0.3"]
start_secs = 0
stdout = "null"
stderr = "null"
"#,
        );
        let (_, mut events) = h.handle.subscribe().await.expect("subscribe");
        h.handle
            .call(Call::Shutdown(ShutdownParams { drain: Some(true) }))
            .await
            .expect("drain");
        let mut order = Vec::new();
        while order.len() < 2 {
            let Published::State(e) = events.recv().await.expect("an event") else {
                continue;
            };
            if e.to.is_settled() {
                order.push((e.name, e.to));
            }
        }
        assert_eq!(
            order,
            [
                ("helper".to_owned(), JobState::Stopped),
                ("work".to_owned(), JobState::Exited)
            ],
            "the daemon job is stopped at once; the worker finishes on its own"
        );
        let (code, _) = h
            .run
            .await
            .expect("the loop ends by itself after the drain");
        assert_eq!(code, 0);
    }

    #[test]
    fn a_reload_waits_for_removed_and_changed_jobs_only() {
        let p = Pending::reload(ReloadResult {
            added: vec!["a".into()],
            removed: vec!["r".into()],
            changed: vec!["c".into()],
            unchanged: vec!["u".into()],
            warnings: vec![],
        });
        assert_eq!(
            p.conditions,
            vec![
                ("r".to_owned(), Until::Forgotten),
                ("c".to_owned(), Until::Restarted)
            ]
        );
    }
}
