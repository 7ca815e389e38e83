//! Dependencies between jobs: holding a job back until what it depends on has met its
//! condition, settling it when that can no longer happen, pulling dependencies in on
//! `start`, restarting dependents whose edge says so, and stopping in reverse order.
//!
//! Everything is judged on the table's current state after each turn, never on a past
//! event: a dependency that restarts while a dependent waits is simply waited for again,
//! and a dependent added after its dependency became healthy starts at once.

use super::{Entry, Phase, Supervisor};
use crate::config::{is_target, Condition, Dependency, JobSpec};
use crate::lifecycle::Input;
use protocol::{Cause, JobState, Signal};
use std::collections::HashSet;

/// Where one edge stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Edge {
    /// The condition holds now.
    Met,
    /// It may still hold later.
    Pending,
    /// It can no longer hold without someone starting the dependency again; says why.
    Broken(String),
}

/// Whether `e` (the dependency, if it is in the table) meets `dep`'s condition.
pub(super) fn judge(dep: &Dependency, e: Option<&Entry>) -> Edge {
    let Some(e) = e else {
        return Edge::Broken(format!("dependency {} is not a job", dep.name));
    };
    let state = e.life.state();
    let met = match dep.condition {
        Condition::Running => state == JobState::Running,
        Condition::Healthy => state == JobState::Running && e.is_healthy(),
        Condition::Exited => state == JobState::Exited,
        Condition::Succeeded => state == JobState::Exited && e.life.success() == Some(true),
    };
    if met {
        return Edge::Met;
    }
    let why = || {
        let reason = e
            .life
            .reason()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        format!(
            "dependency {} ({}) cannot be met: {} is {state}{reason}",
            dep.name,
            dep.condition.as_str(),
            e.spec.name
        )
    };
    let stopped_by_request = state == JobState::Stopped
        && matches!(e.life.cause(), Some(Cause::Stopped | Cause::StopTimeout));
    let failed = match state {
        JobState::Fatal => true,
        JobState::Stopped => stopped_by_request,
        // Ended on its own without success, and no restart scheduled.
        JobState::Exited => dep.condition == Condition::Succeeded,
        _ => false,
    };
    if failed {
        Edge::Broken(why())
    } else {
        Edge::Pending
    }
}

/// Where an edge stands over every job it names: a job, or each replica of a replicated
/// job. All must meet the condition; one that never can breaks the edge; a name that
/// stands for no job now (removed, or a replica set scaled to 0) is broken too.
fn judge_targets<'a>(dep: &Dependency, jobs: impl Iterator<Item = &'a Entry>) -> Edge {
    let mut any = false;
    let mut pending = false;
    for e in jobs.filter(|e| is_target(&dep.name, &e.spec)) {
        any = true;
        match judge(dep, Some(e)) {
            Edge::Met => {}
            Edge::Pending => pending = true,
            broken @ Edge::Broken(_) => return broken,
        }
    }
    match (any, pending) {
        (false, _) => judge(dep, None),
        (true, true) => Edge::Pending,
        (true, false) => Edge::Met,
    }
}

/// `waiting for db (healthy), migrate (succeeded)`.
fn waiting_reason(pending: &[&Dependency]) -> String {
    let list: Vec<String> = pending
        .iter()
        .map(|d| format!("{} ({})", d.name, d.condition.as_str()))
        .collect();
    format!("waiting for {}", list.join(", "))
}

impl Supervisor {
    /// Where a job's dependencies stand: `None` when all are met, else the reason it
    /// waits, or why it never will (`Err`).
    pub(super) fn held(&self, spec: &JobSpec) -> Option<Result<String, String>> {
        let mut pending = Vec::new();
        for dep in &spec.depends_on {
            match judge_targets(dep, self.jobs.values()) {
                Edge::Met => {}
                Edge::Pending => pending.push(dep),
                Edge::Broken(why) => return Some(Err(why)),
            }
        }
        (!pending.is_empty()).then(|| Ok(waiting_reason(&pending)))
    }

    /// After every turn: start waiting jobs whose dependencies are all met, settle those
    /// with a dependency that can no longer be met, and keep the reason of the others
    /// current. Repeated until nothing changes, since a job settling as `fatal` can break
    /// the edges of jobs waiting for it.
    pub(super) fn release_waiting(&mut self) {
        for _ in 0..=self.jobs.len() {
            let waiting = self.waiting_in_line();
            let mut changed = false;
            for name in waiting {
                let Some(spec) = self.jobs.get(&name).map(|e| e.spec.clone()) else {
                    continue;
                };
                if self.phase != Phase::Serving {
                    // Nothing new starts once shutdown began.
                    self.feed(&name, Input::Stop(spec.stop_signal));
                    changed = true;
                    continue;
                }
                match self.held(&spec) {
                    None => match self.no_slot(&name, &spec) {
                        Some(reason) => {
                            self.take_ticket(&name);
                            self.feed(&name, Input::Hold(reason));
                        }
                        None => {
                            self.feed(&name, Input::Start);
                            changed = true;
                        }
                    },
                    Some(Err(why)) => {
                        self.feed(&name, Input::DependencyFailed(why));
                        changed = true;
                    }
                    Some(Ok(reason)) => self.feed(&name, Input::Hold(reason)),
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// `start`: the dependencies (and theirs) of `names` that are not alive, not about to
    /// start, and have not met their condition, dependencies first.
    pub(super) fn dependencies_to_start(&self, names: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen: HashSet<String> = names.iter().cloned().collect();
        let mut stack: Vec<String> = names.to_vec();
        while let Some(n) = stack.pop() {
            let Some(e) = self.jobs.get(&n) else {
                continue;
            };
            for dep in &e.spec.depends_on {
                for d in self.jobs.values().filter(|d| is_target(&dep.name, &d.spec)) {
                    if !seen.insert(d.spec.name.clone()) {
                        continue;
                    }
                    let idle = matches!(
                        d.life.state(),
                        JobState::Stopped | JobState::Exited | JobState::Fatal
                    );
                    if idle && judge(dep, Some(d)) != Edge::Met {
                        out.push(d.spec.name.clone());
                        stack.push(d.spec.name.clone());
                    }
                }
            }
        }
        out.reverse();
        out
    }

    /// `name` began a new run: restart its running dependents whose edge says
    /// `restart = true` (they then wait for it again).
    pub(super) fn restart_dependents(&mut self, name: &str) {
        let jobs = &self.jobs;
        let any_edge = *self.restart_edges.get_or_insert_with(|| {
            jobs.values()
                .any(|e| e.spec.depends_on.iter().any(|d| d.restart))
        });
        if !any_edge {
            return;
        }
        let Some(started) = self.jobs.get(name).map(|e| e.spec.clone()) else {
            return;
        };
        let dependents: Vec<String> = self
            .jobs
            .values()
            .filter(|e| {
                matches!(e.life.state(), JobState::Starting | JobState::Running)
                    && e.spec
                        .depends_on
                        .iter()
                        .any(|d| d.restart && is_target(&d.name, &started))
            })
            .map(|e| e.spec.name.clone())
            .collect();
        for d in dependents {
            tracing::info!(job = %d, dependency = name, "restarting: its dependency restarted");
            self.feed(&d, Input::Restart);
        }
    }

    /// Stop `names` dependents first: the jobs no other selected job depends on go now,
    /// the next level once those have ended, and so on.
    pub(super) fn stop_in_order(&mut self, names: Vec<String>, signal: Option<Signal>) {
        let specs: Vec<JobSpec> = names
            .iter()
            .filter_map(|n| self.jobs.get(n).map(|e| (*e.spec).clone()))
            .collect();
        let mut levels = crate::config::levels(&specs);
        // Jobs in no level (an edge cycle through jobs added over the socket) go first.
        let placed: HashSet<&String> = levels.iter().flatten().collect();
        let unplaced: Vec<String> = names
            .iter()
            .filter(|n| !placed.contains(n))
            .cloned()
            .collect();
        if !unplaced.is_empty() {
            levels.push(unplaced);
        }
        if let Some(first) = levels.last() {
            for n in first {
                self.stop(n, signal);
            }
        }
        self.stop_stages.push(StopStages { levels, signal });
        self.advance_stops();
    }

    /// After every turn: stop the next level of each staged stop whose last level has
    /// ended.
    pub(super) fn advance_stops(&mut self) {
        let mut stages = std::mem::take(&mut self.stop_stages);
        for s in &mut stages {
            while let Some(level) = s.levels.last_mut() {
                // Names that have stopped are dropped from the end, so each turn looks at
                // one live name instead of scanning the level from its start (a stop of
                // 10,000 jobs made that O(N²)).
                while let Some(n) = level.last() {
                    let alive = self
                        .jobs
                        .get(n)
                        .is_some_and(|e| e.run.is_some() || e.life.state().is_alive());
                    if alive {
                        break;
                    }
                    level.pop();
                }
                if !level.is_empty() {
                    break;
                }
                s.levels.pop();
                if let Some(next) = s.levels.last().cloned() {
                    for n in &next {
                        self.stop(n, s.signal);
                    }
                }
            }
        }
        stages.retain(|s| !s.levels.is_empty());
        self.stop_stages.extend(stages);
    }
}

/// A stop that goes level by level, last level first.
#[derive(Debug)]
pub(super) struct StopStages {
    /// The levels still to stop; the last one is being stopped.
    pub(super) levels: Vec<Vec<String>>,
    signal: Option<Signal>,
}
