//! One function per protocol method the actor answers, and the routing that sends the
//! other methods elsewhere before they reach it.
//!
//! [`Route`] splits a decoded [`Request`] once, at the server: streaming requests
//! (`subscribe`, `logs`) and `reload` (which reads the job file off the runtime first)
//! are handled by the server; everything else is a [`Call`] for the actor. The dispatch in
//! [`Supervisor::call`] is one line per method.

use super::waiters::{Outcome, Pending, Until};
use super::{encode, Answer, Entry, Origin, Phase, Supervisor};
use crate::lifecycle::Input;
use protocol::{
    AddParams, JobList, JobState, KillParams, LogsParams, NamesParams, PingResult, Request,
    RpcError, ScaleParams, Selection, ShutdownParams, ShutdownResult, TerminateParams, WaitParams,
};
use std::collections::HashSet;

/// A request the actor answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// `ping`
    Ping,
    /// `status`
    Status(Selection),
    /// `start`
    Start(protocol::StartParams),
    /// `terminate`
    Terminate(TerminateParams),
    /// `restart`
    Restart(Selection),
    /// `kill`
    Kill(KillParams),
    /// `wait` (the server applies its timeout)
    Wait(WaitParams),
    /// `add`
    Add(AddParams),
    /// `remove`
    Remove(NamesParams),
    /// `scale`
    Scale(ScaleParams),
    /// `shutdown`
    Shutdown(ShutdownParams),
    /// `history` (the history's writer thread answers it)
    History(protocol::HistoryParams),
}

/// Where a request is handled.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// By the actor.
    Call(Call),
    /// By the server: a snapshot, then events.
    Subscribe,
    /// By the server and the log writer: the tail, then (with `follow`) the stream.
    Logs(LogsParams),
    /// By the server: read the job file off the runtime, then hand it to the actor.
    Reload,
    /// By the server: the actor's table, then usage measured off the runtime
    /// (`status` with `usage: true`).
    Usage(Selection),
    /// By the server: the table with usage, written as Prometheus text off the runtime.
    Metrics,
}

impl From<Request> for Route {
    fn from(request: Request) -> Route {
        match request {
            Request::Ping => Route::Call(Call::Ping),
            Request::Status(p) if p.usage == Some(true) => Route::Usage(p.selection),
            Request::Status(p) => Route::Call(Call::Status(p.selection)),
            Request::Start(s) => Route::Call(Call::Start(s)),
            Request::Terminate(p) => Route::Call(Call::Terminate(p)),
            Request::Restart(s) => Route::Call(Call::Restart(s)),
            Request::Kill(p) => Route::Call(Call::Kill(p)),
            Request::Wait(p) => Route::Call(Call::Wait(p)),
            Request::Add(p) => Route::Call(Call::Add(p)),
            Request::Remove(p) => Route::Call(Call::Remove(p)),
            Request::Scale(p) => Route::Call(Call::Scale(p)),
            Request::Shutdown(p) => Route::Call(Call::Shutdown(p)),
            Request::History(p) => Route::Call(Call::History(p)),
            Request::Subscribe => Route::Subscribe,
            Request::Logs(p) => Route::Logs(p),
            Request::Reload => Route::Reload,
            Request::Metrics => Route::Metrics,
        }
    }
}

impl Call {
    /// Whether the request starts work, which is refused (1004) once shutdown began.
    fn starts_work(&self) -> bool {
        matches!(
            self,
            Call::Start(_) | Call::Restart(_) | Call::Add(_) | Call::Scale(_)
        )
    }
}

/// Whether a `group` or `all` selection takes in daemon jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Daemons {
    /// Every job of the group (`status`, `start`, `terminate`, ...).
    Included,
    /// Not daemon jobs: nobody waits for them (`wait`).
    LeftOut,
}

fn jobs(list: Vec<protocol::Job>) -> Outcome {
    Outcome::Now(encode(&JobList::new(list)))
}

impl Supervisor {
    /// Handle a request: answer it now, or park a waiter that answers later.
    pub(super) fn call(&mut self, call: Call) -> Outcome {
        if call.starts_work() && self.phase != Phase::Serving {
            return Outcome::Now(Err(RpcError::shutting_down()));
        }
        let outcome = match call {
            Call::Ping => Ok(self.ping()),
            Call::Status(sel) => self.status(&sel),
            Call::Start(p) => self.start(&p),
            Call::Terminate(p) => self.terminate(p),
            Call::Restart(sel) => self.restart(&sel),
            Call::Kill(p) => self.kill(p),
            Call::Wait(p) => self.wait(&p),
            Call::Add(p) => self.add(p),
            Call::Remove(p) => self.remove(p),
            Call::Scale(p) => self.scale(&p),
            Call::Shutdown(p) => Ok(self.shutdown(&p)),
            // Answered by the writer thread (`Supervisor::command` hands it over first).
            Call::History(_) => Err(RpcError::new(
                protocol::code::INTERNAL_ERROR,
                "history is answered by the history writer",
            )),
        };
        outcome.unwrap_or_else(|e| Outcome::Now(Err(e)))
    }

    fn ping(&self) -> Outcome {
        Outcome::Now(encode(&PingResult {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            uptime_ms: super::status::millis(self.started.elapsed()),
            history_error: self.runs.error().map(str::to_owned),
            containment: Some(self.containment.clone()),
        }))
    }

    /// The table (or the selected part of it), written straight into the answer's text.
    /// The history's failure rides along, for `supctl status`'s header.
    fn status(&self, sel: &Selection) -> Result<Outcome, RpcError> {
        Ok(Outcome::Now(Ok(self.status_text(sel)?)))
    }

    /// The `status` answer for the jobs `sel` names.
    pub(super) fn status_text(&self, sel: &Selection) -> Result<Answer, RpcError> {
        let history_error = self.runs.error();
        let text = if sel.is_empty() {
            super::status::job_list(self.jobs.values(), history_error)
        } else {
            let names = self.select(sel, Daemons::Included)?;
            let entries: Vec<&Entry> = names.iter().filter_map(|n| self.jobs.get(n)).collect();
            super::status::job_list(entries.into_iter(), history_error)
        };
        Ok(Answer::trusted(text))
    }

    fn start(&mut self, p: &protocol::StartParams) -> Result<Outcome, RpcError> {
        let names = self.select_some(&p.selection)?;
        let names = self.not_removing(&p.selection, names)?;
        if p.no_deps != Some(true) {
            for n in self.dependencies_to_start(&names) {
                self.feed(&n, Input::Start);
            }
        }
        for n in &names {
            self.feed(n, Input::Start);
            self.arm_if_idle(n);
        }
        Ok(jobs(self.jobs_named(&names)))
    }

    fn terminate(&mut self, p: TerminateParams) -> Result<Outcome, RpcError> {
        let names = self.select_some(&p.selection)?;
        let marks = self.stop_marks(&names);
        for n in &names {
            self.disarm(n);
        }
        self.stop_in_order(names.clone(), p.signal);
        Ok(if p.wait.unwrap_or(true) {
            Outcome::Later(Pending::each(marks))
        } else {
            jobs(self.jobs_named(&names))
        })
    }

    fn restart(&mut self, sel: &Selection) -> Result<Outcome, RpcError> {
        let names = self.select_some(sel)?;
        let names = self.not_removing(sel, names)?;
        for n in &names {
            self.feed(n, Input::Restart);
        }
        Ok(Outcome::Later(Pending::jobs(names, Until::Restarted)))
    }

    fn kill(&mut self, p: KillParams) -> Result<Outcome, RpcError> {
        let names = self.select(&Selection::names(p.names), Daemons::Included)?;
        for n in &names {
            if let Some(run) = self.jobs.get(n).and_then(|e| e.run.as_ref()) {
                run.signal(p.signal);
            }
        }
        Ok(jobs(self.jobs_named(&names)))
    }

    fn wait(&self, p: &WaitParams) -> Result<Outcome, RpcError> {
        let names = if p.selection.is_empty() {
            self.jobs
                .values()
                .filter(|e| !e.spec.background())
                .map(|e| e.spec.name.clone())
                .collect()
        } else {
            self.select(&p.selection, Daemons::LeftOut)?
        };
        if p.ready == Some(true) {
            return Ok(Outcome::Later(Pending::ready(names)));
        }
        Ok(Outcome::Later(Pending::wait(names)))
    }

    fn add(&mut self, p: AddParams) -> Result<Outcome, RpcError> {
        if self.jobs.contains_key(&p.name) {
            return Err(RpcError::invalid_job(
                &p.name,
                format!("a job named {:?} already exists", p.name),
            ));
        }
        let spec = self
            .config
            .job_from_json(&p.name, &p.job)
            .map_err(|e| RpcError::invalid_job(&p.name, e.to_string()))?;
        self.enable_controllers(&spec.cgroup_limits.controllers());
        if let Some(why) = spec.refused_limit(&self.offer()) {
            return Err(RpcError::invalid_job(&p.name, why));
        }
        let autostart = spec.autostart;
        self.jobs
            .insert(p.name.clone(), Entry::new(spec, Origin::Added));
        tracing::info!(job = %p.name, "job added");
        if autostart {
            self.autostart(&p.name);
        }
        Ok(jobs(self.jobs_named(&[p.name])))
    }

    fn remove(&mut self, p: NamesParams) -> Result<Outcome, RpcError> {
        let names = self.select(&Selection::names(p.names), Daemons::Included)?;
        let marks = self.stop_marks(&names);
        for n in &names {
            if let Some(e) = self.jobs.get_mut(n) {
                e.removing = true;
                self.scans.removing = true;
            }
            self.stop(n, None);
        }
        Ok(Outcome::Later(Pending::each(marks)))
    }

    /// Run `p.replicas` replicas of a job with `replicas` in the file: the missing ones
    /// are added (and started if `autostart`), the extra ones stopped, highest index
    /// first, and forgotten once stopped. Answers at once with every replica.
    fn scale(&mut self, p: &ScaleParams) -> Result<Outcome, RpcError> {
        const MAX: u32 = 1000;
        if p.replicas > MAX {
            return Err(RpcError::invalid_params(format!(
                "replicas must be at most {MAX}"
            )));
        }
        let specs = match self.config.scaled(&p.name, p.replicas) {
            Some(Ok(specs)) => specs,
            Some(Err(e)) => return Err(e.to_rpc()),
            None if self.jobs.contains_key(&p.name) => {
                return Err(RpcError::invalid_job(
                    &p.name,
                    format!(
                        "job {:?} has no `replicas` in the job file, so it cannot be scaled",
                        p.name
                    ),
                ))
            }
            None => return Err(RpcError::no_such_job(vec![p.name.clone()])),
        };
        let index = |name: &str| {
            name.strip_prefix(p.name.as_str())
                .and_then(|rest| rest.strip_prefix('-'))
                .and_then(|i| i.parse::<u32>().ok())
        };
        let mut extra: Vec<(u32, String)> = self
            .jobs
            .values()
            .filter(|e| e.spec.replica_of.as_deref() == Some(p.name.as_str()))
            .filter_map(|e| index(&e.spec.name).map(|i| (i, e.spec.name.clone())))
            .filter(|(i, _)| *i >= p.replicas)
            .collect();
        extra.sort_by_key(|e| std::cmp::Reverse(e.0));
        for (_, name) in &extra {
            if let Some(e) = self.jobs.get_mut(name) {
                e.removing = true;
                self.scans.removing = true;
            }
            self.stop(name, None);
        }
        // New replicas go after the set's last one, in index order.
        let mut at = self
            .jobs
            .values()
            .rposition(|e| e.spec.replica_of.as_deref() == Some(p.name.as_str()))
            .map_or(self.jobs.len(), |i| i + 1);
        let mut names: Vec<String> = Vec::with_capacity(specs.len());
        for spec in specs {
            let name = spec.name.clone();
            names.push(name.clone());
            if let Some(e) = self.jobs.get_mut(&name) {
                // Kept: a replica that an earlier scale-down is stopping stays.
                e.removing = false;
                continue;
            }
            let autostart = spec.autostart;
            self.jobs.shift_insert(
                at.min(self.jobs.len()),
                name.clone(),
                Entry::new(spec, Origin::File),
            );
            at += 1;
            tracing::info!(job = %name, "replica added");
            if autostart {
                self.autostart(&name);
            }
        }
        names.extend(extra.into_iter().rev().map(|(_, n)| n));
        Ok(jobs(self.jobs_named(&names)))
    }

    fn shutdown(&mut self, p: &ShutdownParams) -> Outcome {
        match (self.phase, p.drain.unwrap_or(false)) {
            (Phase::Serving, true) => {
                tracing::info!("draining: waiting for jobs to finish, terminating daemon jobs");
                self.phase = Phase::Draining;
                // Daemon jobs end now; so do restarts that were only scheduled.
                let daemons: Vec<String> = self
                    .jobs
                    .values()
                    .filter(|e| e.spec.daemon || e.life.state() == JobState::Backoff)
                    .map(|e| e.spec.name.clone())
                    .collect();
                for n in daemons {
                    self.stop(&n, None);
                }
            }
            (Phase::Serving | Phase::Draining, _) => {
                tracing::info!("shutting down: stopping every job");
                self.begin_stop();
            }
            (Phase::Stopping, true) => {}
            (Phase::Stopping, false) => {
                tracing::warn!("asked again to shut down: killing every job now");
                for e in self.jobs.values() {
                    if let Some(run) = &e.run {
                        run.order(protocol::Signal::Kill);
                    }
                }
            }
        }
        Outcome::Now(encode(&ShutdownResult {}))
    }

    /// For each job, the condition "this stop has completed": its count of completed stops
    /// now, before the stop is asked for.
    fn stop_marks(&self, names: &[String]) -> Vec<(String, Until)> {
        names
            .iter()
            .map(|n| {
                let stops = self.jobs.get(n).map_or(0, |e| e.life.stops());
                (n.clone(), Until::Stopped(stops))
            })
            .collect()
    }

    /// Jobs a `remove` is taking away are not started again: named, the request is
    /// refused (nothing is done); picked by `group` or `all`, they are left out.
    fn not_removing(&self, sel: &Selection, names: Vec<String>) -> Result<Vec<String>, RpcError> {
        let removing = |n: &str| self.jobs.get(n).is_some_and(|e| e.removing);
        let going: Vec<&String> = sel.names.iter().flatten().filter(|n| removing(n)).collect();
        if going.is_empty() {
            return Ok(names.into_iter().filter(|n| !removing(n)).collect());
        }
        Err(RpcError::invalid_params(format!(
            "job {} is being removed",
            going
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_data(serde_json::json!({ "names": going })))
    }

    // ---- selection ------------------------------------------------------------------------

    /// Like [`select`](Self::select), but an empty selection is an error.
    fn select_some(&self, sel: &Selection) -> Result<Vec<String>, RpcError> {
        if sel.is_empty() {
            return Err(RpcError::invalid_params(
                "select jobs with \"names\", \"group\" or \"all\": true",
            ));
        }
        self.select(sel, Daemons::Included)
    }

    /// The jobs a selection names, in table order. Unknown names or an unknown group are
    /// an error (1001) and nothing is done.
    pub(super) fn select(
        &self,
        sel: &Selection,
        daemons: Daemons,
    ) -> Result<Vec<String>, RpcError> {
        let mut chosen: HashSet<&str> = HashSet::new();
        let wanted = |e: &&Entry| daemons == Daemons::Included || !e.spec.background();
        if let Some(names) = &sel.names {
            let unknown: Vec<String> = names
                .iter()
                .filter(|n| !self.jobs.contains_key(n.as_str()))
                .cloned()
                .collect();
            if !unknown.is_empty() {
                return Err(RpcError::no_such_job(unknown));
            }
            chosen.extend(names.iter().map(String::as_str));
        }
        if let Some(group) = &sel.group {
            if !self.jobs.values().any(|e| &e.spec.group == group) {
                return Err(RpcError::no_such_group(group));
            }
            chosen.extend(
                self.jobs
                    .values()
                    .filter(|e| &e.spec.group == group)
                    .filter(wanted)
                    .map(|e| e.spec.name.as_str()),
            );
        }
        if sel.all == Some(true) {
            chosen.extend(
                self.jobs
                    .values()
                    .filter(wanted)
                    .map(|e| e.spec.name.as_str()),
            );
        }
        Ok(self
            .jobs
            .keys()
            .filter(|k| chosen.contains(k.as_str()))
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::harness;
    use super::*;
    use protocol::code;

    const JOBS: &str = r#"
[job.a]
command = ["sleep", "30"]
group = "g"
autostart = false
[job.b]
command = ["sleep", "30"]
group = "g"
daemon = true
autostart = false
[job.c]
command = ["sleep", "30"]
autostart = false
"#;

    fn sup() -> super::super::Supervisor {
        let (sup, _handle, writer) = harness::build(JOBS, false);
        drop(writer);
        sup
    }

    #[tokio::test]
    async fn selection_keeps_table_order_and_leaves_daemons_out_only_when_asked() {
        let s = sup();
        let by_group = Selection::group("g");
        assert_eq!(
            s.select(&by_group, Daemons::Included).expect("g"),
            ["a", "b"]
        );
        assert_eq!(s.select(&by_group, Daemons::LeftOut).expect("g"), ["a"]);
        assert_eq!(
            s.select(&Selection::all(), Daemons::LeftOut).expect("all"),
            ["a", "c"]
        );
        let named = Selection::names(vec!["c".into(), "b".into(), "c".into()]);
        assert_eq!(
            s.select(&named, Daemons::LeftOut).expect("named"),
            ["b", "c"],
            "named daemon jobs are kept, in table order, once each"
        );
    }

    #[tokio::test]
    async fn unknown_names_and_groups_are_1001_with_what_was_unknown() {
        let s = sup();
        let e = s
            .select(
                &Selection::names(vec!["a".into(), "ghost".into()]),
                Daemons::Included,
            )
            .expect_err("ghost");
        assert_eq!(e.code, code::NO_SUCH_JOB);
        assert_eq!(e.data, Some(serde_json::json!({ "names": ["ghost"] })));
        let e = s
            .select(&Selection::group("nope"), Daemons::Included)
            .expect_err("group");
        assert_eq!(e.code, code::NO_SUCH_JOB);
        assert_eq!(
            e.data,
            Some(serde_json::json!({ "names": [], "group": "nope" }))
        );
        let e = s.select_some(&Selection::default()).expect_err("empty");
        assert_eq!(e.code, code::INVALID_PARAMS);
    }

    #[test]
    fn every_request_has_one_route() {
        assert_eq!(Route::from(Request::Subscribe), Route::Subscribe);
        assert_eq!(Route::from(Request::Reload), Route::Reload);
        assert_eq!(Route::from(Request::Ping), Route::Call(Call::Ping));
        assert_eq!(Route::from(Request::Metrics), Route::Metrics);
        let usage = protocol::StatusParams {
            selection: Selection::group("g"),
            usage: Some(true),
        };
        assert_eq!(
            Route::from(Request::Status(usage)),
            Route::Usage(Selection::group("g")),
            "usage is measured by the server, off the actor"
        );
        assert_eq!(
            Route::from(Request::Status(Selection::all().into())),
            Route::Call(Call::Status(Selection::all()))
        );
        assert!(Call::Start(Selection::all().into()).starts_work());
        assert!(!Call::Status(Selection::all()).starts_work());
    }
}
