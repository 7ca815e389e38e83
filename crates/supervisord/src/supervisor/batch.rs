//! Batch work on the table: schedules (arming the one timer of each scheduled job, what a
//! due time does, `overlap`, `catch_up`) and group work queues (`max_parallel` slots,
//! taken first come first served).
//!
//! A scheduled job has at most one timer in the queue: its next run (or, for a run more
//! than [`LONGEST_SLEEP`] away, that far; it is re-armed then). Between runs nothing wakes.
//! Each timer carries the job's `schedule_epoch`, which moves whenever the schedule is
//! armed again or disarmed, so an old timer is ignored rather than cancelled.
//!
//! The slots of a group are held by its alive jobs (`starting`, `running`, `stopping`).
//! A start beyond the limit holds the job in `waiting` — the state dependencies use — with
//! a ticket: its place in the group's line. Each turn, `release_waiting` goes through the
//! waiting jobs in ticket order. A job waits for its dependencies first; it takes its
//! ticket when they are met and no slot is free.

use super::{Supervisor, TimerEntry};
use crate::config::JobSpec;
use crate::lifecycle::{Input, TimerKind};
use crate::schedule::{on_due, Due};
use protocol::JobState;
use std::time::{Duration, SystemTime};

/// The longest a schedule timer is armed for. A run further out is re-armed on the way:
/// the timer wheel cannot hold years, and the wall clock may be set in between.
const LONGEST_SLEEP: Duration = Duration::from_secs(24 * 3600);
/// A schedule timer that fires this close before its wall-clock time counts as on time
/// (the monotonic and wall clocks drift apart by a little).
const EARLY_OK: Duration = Duration::from_millis(50);

/// Where a job's last run can be looked up (the history), for `catch_up`.
pub type LastStarted = Box<dyn Fn(&str) -> Option<SystemTime> + Send>;

impl Supervisor {
    /// What `autostart` does for a job: arm its schedule, or start it.
    pub(super) fn autostart(&mut self, name: &str) {
        let scheduled = self
            .jobs
            .get(name)
            .is_some_and(|e| e.spec.schedule.is_some());
        if scheduled {
            self.arm(name, SystemTime::now());
        } else {
            self.feed(name, Input::Start);
        }
    }

    /// At daemon start: arm each autostart schedule, and run now the `catch_up` jobs that
    /// missed a time while supervisord was down.
    pub(super) fn arm_schedules(&mut self) {
        let now = SystemTime::now();
        let names: Vec<String> = self
            .jobs
            .values()
            .filter(|e| e.spec.autostart && e.spec.schedule.is_some())
            .map(|e| e.spec.name.clone())
            .collect();
        for name in names {
            self.arm(&name, now);
            let missed = self.jobs.get(&name).is_some_and(|e| {
                e.spec.schedule.as_ref().is_some_and(|s| {
                    s.catch_up
                        && self
                            .last_started_at(&name)
                            .is_some_and(|t| s.schedule.missed(t, now))
                })
            });
            if missed {
                tracing::info!(job = %name, "catch_up: a scheduled time passed while supervisord was down; running it now");
                self.start_with_dependencies(&name);
            }
        }
    }

    /// When a job's last run before this daemon started: from the hook a caller handed
    /// in (tests), else from the run history.
    fn last_started_at(&self, name: &str) -> Option<SystemTime> {
        (self.last_started)(name).or_else(|| {
            let run = self.last_runs().get(name)?;
            humantime::parse_rfc3339(&run.started_at).ok()
        })
    }

    /// Arm a job's schedule for its first time after `from`.
    pub(super) fn arm(&mut self, name: &str, from: SystemTime) {
        let Some(e) = self.jobs.get(name) else {
            return;
        };
        let next = e.spec.schedule.as_ref().and_then(|s| s.schedule.next(from));
        self.arm_at(name, next);
    }

    /// Arm (or with `None`, disarm) a job's schedule for `next`.
    fn arm_at(&mut self, name: &str, next: Option<SystemTime>) {
        let Some(e) = self.jobs.get_mut(name) else {
            return;
        };
        e.schedule_epoch += 1;
        e.next_run_at = next;
        if let Some(at) = next {
            let epoch = e.schedule_epoch;
            self.sleep_until(name, epoch, at);
        }
    }

    fn sleep_until(&mut self, name: &str, epoch: u64, at: SystemTime) {
        let after = at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(LONGEST_SLEEP);
        self.new_timers.push((
            TimerEntry {
                name: name.to_owned(),
                epoch,
                kind: TimerKind::Schedule,
            },
            after,
        ));
    }

    /// `terminate` (and `stop`) of a scheduled job also disarms its schedule, until the
    /// next `start`; a run queued by `overlap = "queue"` is dropped.
    pub(super) fn disarm(&mut self, name: &str) {
        if let Some(e) = self.jobs.get_mut(name) {
            e.queued_run = false;
            if e.next_run_at.is_some() {
                self.arm_at(name, None);
            }
        }
    }

    /// `start` of a scheduled job runs it now and arms its schedule if it was not.
    pub(super) fn arm_if_idle(&mut self, name: &str) {
        let idle = self
            .jobs
            .get(name)
            .is_some_and(|e| e.spec.schedule.is_some() && e.next_run_at.is_none());
        if idle {
            self.arm(name, SystemTime::now());
        }
    }

    /// A changed job at reload: its schedule is armed again from now if it was armed (or
    /// the job is `autostart`), with the new expression; disarmed if it has none now.
    pub(super) fn rearm_changed(&mut self, name: &str, was_armed: bool) {
        let Some(e) = self.jobs.get(name) else {
            return;
        };
        if e.spec.schedule.is_some() && (was_armed || e.spec.autostart) {
            self.arm(name, SystemTime::now());
        } else {
            self.disarm(name);
        }
    }

    /// A schedule timer fired (already checked against the job's schedule epoch).
    pub(super) fn schedule_fired(&mut self, name: &str) {
        let Some(e) = self.jobs.get(name) else {
            return;
        };
        let (Some(due), Some(spec)) = (e.next_run_at, e.spec.schedule.clone()) else {
            return;
        };
        let now = SystemTime::now();
        if now + EARLY_OK < due {
            // A long wait armed in steps, or the wall clock was set back: not yet.
            let epoch = e.schedule_epoch;
            self.sleep_until(name, epoch, due);
            return;
        }
        let state = e.life.state();
        let busy = state.is_alive() || state == JobState::Backoff || e.life.restart_pending();
        let pending = state == JobState::Waiting;
        match on_due(spec.overlap, busy, pending) {
            Due::Start => self.start_with_dependencies(name),
            Due::Skip => {
                tracing::info!(job = name, state = %state, "scheduled run skipped: the last one is still {state}");
            }
            Due::Queue => {
                if let Some(e) = self.jobs.get_mut(name) {
                    e.queued_run = true;
                    self.scans.queued = true;
                }
            }
            Due::Replace => self.feed(name, Input::Restart),
        }
        let next = spec.schedule.next_from(due, now);
        self.arm_at(name, next);
    }

    /// After every turn: start the runs that `overlap = "queue"` held for jobs whose run
    /// has now ended.
    pub(super) fn start_queued_runs(&mut self) {
        if !self.scans.queued {
            return;
        }
        let mut queued = false;
        let ready: Vec<String> = self
            .jobs
            .values()
            .filter(|e| e.queued_run)
            .inspect(|_| queued = true)
            .filter(|e| e.life.state().is_settled())
            .map(|e| e.spec.name.clone())
            .collect();
        // Set while any is queued (those started below included: the next turn sees them
        // unqueued and clears it).
        self.scans.queued = queued;
        if ready.is_empty() {
            return;
        }
        for name in ready {
            if let Some(e) = self.jobs.get_mut(&name) {
                e.queued_run = false;
            }
            self.start_with_dependencies(&name);
        }
    }

    fn start_with_dependencies(&mut self, name: &str) {
        let names = [name.to_owned()];
        for n in self.dependencies_to_start(&names) {
            self.feed(&n, Input::Start);
        }
        self.feed(name, Input::Start);
    }

    // ---- group queues -------------------------------------------------------------------

    /// Why a job about to spawn must wait for a slot of its group, or `None` if it may
    /// go: a slot is free and no job of the group got in line before it.
    pub(super) fn no_slot(&self, name: &str, spec: &JobSpec) -> Option<String> {
        let max = self.config.groups.get(&spec.group)?.max_parallel?;
        let mine = self.jobs.get(name).and_then(|e| e.slot_ticket);
        let mut busy = 0u32;
        let mut ahead = false;
        for e in self.jobs.values() {
            if e.spec.group != spec.group || e.spec.name == name {
                continue;
            }
            if e.life.state().is_alive() {
                busy += 1;
            } else if e.life.state() == JobState::Waiting {
                ahead |= e.slot_ticket.is_some_and(|t| mine.is_none_or(|m| t < m));
            }
        }
        (busy >= max || ahead).then(|| {
            format!(
                "waiting for a slot in {} ({busy} of {max} busy)",
                spec.group
            )
        })
    }

    /// Put a job in its group's line (once: it keeps its place while it waits).
    pub(super) fn take_ticket(&mut self, name: &str) {
        let ticket = self.next_ticket;
        if let Some(e) = self.jobs.get_mut(name) {
            if e.slot_ticket.is_none() {
                e.slot_ticket = Some(ticket);
                self.next_ticket += 1;
            }
        }
    }

    /// The waiting jobs in the order they are let go: in line by ticket, then the jobs
    /// waiting for dependencies only, in table order. Tickets of jobs that no longer wait
    /// are dropped.
    pub(super) fn waiting_in_line(&mut self) -> Vec<String> {
        let mut waiting = Vec::new();
        let mut done = Vec::new();
        if !self.scans.waiting {
            return Vec::new();
        }
        for e in self.jobs.values() {
            if e.life.state() == JobState::Waiting {
                waiting.push((e.slot_ticket.unwrap_or(u64::MAX), e.spec.name.clone()));
            } else if e.slot_ticket.is_some() {
                done.push(e.spec.name.clone());
            }
        }
        // None waits and none holds a ticket: nothing to look at until one comes to wait.
        if waiting.is_empty() {
            self.scans.waiting = false;
        }
        // Only the entries that change are taken to change (which drops their status text;
        // this runs after every turn).
        for name in done {
            if let Some(e) = self.jobs.get_mut(&name) {
                e.slot_ticket = None;
            }
        }
        waiting.sort_by_key(|(t, _)| *t);
        waiting.into_iter().map(|(_, n)| n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{harness, Call};
    use protocol::Selection;
    use std::time::{Duration, SystemTime};

    const JOBS: &str = r#"
[defaults]
start_secs = 0
stdout = "null"
stderr = "null"
[job.missed]
command = ["true"]
schedule = "0 3 * * *"
catch_up = true
[job.no-catch-up]
command = ["true"]
schedule = "0 3 * * *"
[job.never-ran]
command = ["true"]
schedule = "0 3 * * *"
catch_up = true
"#;

    /// `catch_up` at start: a job whose remembered last run is two days old runs at once;
    /// one without `catch_up`, or with no remembered run, only has its schedule armed.
    #[tokio::test]
    async fn catch_up_runs_at_start_only_a_job_that_missed_a_time() {
        let (sup, handle, writer) = harness::build(JOBS, false);
        let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
        let sup = sup.remembering(Box::new(move |name| {
            (name != "never-ran").then_some(two_days_ago)
        }));
        // Subscribed before the first turn, so the start-up's events are in the stream
        // (asking the handle would wait for a loop that is not running yet).
        let mut events = sup.events.subscribe();
        let h = harness::Harness::running(tokio::spawn(sup.run()), handle, writer);
        let published = tokio::time::timeout(Duration::from_secs(20), events.recv())
            .await
            .expect("an event within 20s")
            .expect("an event");
        let super::super::Published::State(e) = published else {
            panic!("a state change first");
        };
        assert_eq!(
            (e.name.as_str(), e.to),
            ("missed", protocol::JobState::Starting)
        );
        let status = h
            .handle
            .call(Call::Status(Selection::all()))
            .await
            .expect("status");
        let list: protocol::JobList = serde_json::from_str(status.get()).expect("jobs");
        for j in &list.jobs {
            assert!(j.next_run_at.is_some(), "{} is armed", j.name);
            let ran = j.started_at.is_some();
            assert_eq!(ran, j.name == "missed", "{j:?}");
        }
        assert_eq!(h.finish().await, 0);
    }
}
