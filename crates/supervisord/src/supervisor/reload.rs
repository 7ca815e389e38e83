//! `reload`: a pure [`plan`] of what a new job file changes, then [`Supervisor::reload`]
//! carries it out and answers once it is applied.
//!
//! The rules: a file job missing from the new file is removed (stopped, then forgotten);
//! a job new in the file is added (started if `autostart`); a job whose resolved spec
//! differs is changed (restarted if it runs, otherwise it takes the new spec at its next
//! start); the rest are unchanged and keep their process. Jobs added over the socket are
//! kept, and a file job named like one takes it over (counted as changed).

use super::waiters::{Outcome, Pending};
use super::{Entry, Origin, Phase, Supervisor};
use crate::config::{Config, ConfigError, JobSpec};
use crate::lifecycle::Input;
use protocol::{JobState, ReloadResult, RpcError};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A job of the current table, as the plan sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Current<'a> {
    pub name: &'a str,
    pub spec: &'a JobSpec,
    pub origin: Origin,
}

/// What a new job file changes: [`ReloadResult`] before it is applied.
pub(super) type ReloadPlan = ReloadResult;

/// The warning for a job file whose `socket` changed and is not the one being served
/// (`in_use`). Compared with the socket in use, not only the previous file's: a file that
/// goes back to the socket in use needs no warning, and neither does an unchanged file
/// whose socket `--socket` overrides.
pub(super) fn socket_warning(
    new: &Config,
    old: &Config,
    in_use: Option<&std::path::Path>,
) -> Option<String> {
    let (wanted, in_use) = (new.socket.as_deref()?, in_use?);
    (wanted != in_use && new.socket != old.socket).then(|| {
        format!(
            "[supervisor] socket is {} but supervisord serves {}: a new socket applies when \
             supervisord restarts (and --socket overrides it)",
            wanted.display(),
            in_use.display()
        )
    })
}

/// Compare the table with a new job file. `old` is the file the daemon runs with.
pub(super) fn plan<'a>(
    current: impl IntoIterator<Item = Current<'a>>,
    old: &Config,
    new: &Config,
) -> ReloadPlan {
    let mut plan = ReloadPlan::default();
    let wanted: HashSet<&str> = new.jobs.iter().map(|j| j.name.as_str()).collect();
    let mut have: HashMap<&str, Current<'a>> = HashMap::new();
    for c in current {
        if c.origin == Origin::File && !wanted.contains(c.name) {
            plan.removed.push(c.name.to_owned());
        }
        have.insert(c.name, c);
    }
    for spec in &new.jobs {
        let name = spec.name.clone();
        match have.get(spec.name.as_str()) {
            None => plan.added.push(name),
            Some(c) if c.spec == spec && c.origin == Origin::File => plan.unchanged.push(name),
            Some(_) => plan.changed.push(name),
        }
    }
    if new.metrics != old.metrics {
        plan.warnings
            .push("[supervisor] metrics changed: it applies when supervisord restarts".to_owned());
    }
    if (&new.state_dir, new.history, new.history_max_bytes)
        != (&old.state_dir, old.history, old.history_max_bytes)
    {
        plan.warnings.push(
            "[supervisor] state_dir, history or history_max_bytes changed: it applies when supervisord restarts"
                .to_owned(),
        );
    }
    if new.exit_when_done != old.exit_when_done {
        plan.warnings.push(
            "[supervisor] exit_when_done changed: it applies when supervisord restarts".to_owned(),
        );
    }
    plan
}

impl Supervisor {
    /// Apply a job file read from disk, or refuse it whole (1003) and change nothing.
    pub(super) fn reload(&mut self, config: Result<Config, ConfigError>) -> Outcome {
        let mut new = match config {
            Ok(new) => new,
            Err(e) => return Outcome::Now(Err(e.to_rpc())),
        };
        if self.phase != Phase::Serving {
            return Outcome::Now(Err(RpcError::shutting_down()));
        }
        self.enable_controllers(&new.controllers());
        if let Err(e) = new.refuse_missing(&self.offer()) {
            return Outcome::Now(Err(e.to_rpc()));
        }
        let current = self.jobs.values().map(|e| Current {
            name: &e.spec.name,
            spec: &e.spec,
            origin: e.origin,
        });
        let mut plan = plan(current, &self.config, &new);
        let in_use = self.serving.as_deref().or(self.config.socket.as_deref());
        if let Some(w) = socket_warning(&new, &self.config, in_use) {
            plan.warnings.insert(0, w);
        }
        self.apply(&plan, &new);
        // The table has the specs now (see `Supervisor::new`).
        new.jobs = Vec::new();
        tracing::info!(
            added = plan.added.len(),
            removed = plan.removed.len(),
            changed = plan.changed.len(),
            unchanged = plan.unchanged.len(),
            "job file reloaded"
        );
        self.config = new;
        Outcome::Later(Pending::reload(plan))
    }

    fn apply(&mut self, plan: &ReloadPlan, new: &Config) {
        let specs: HashMap<&str, &JobSpec> =
            new.jobs.iter().map(|j| (j.name.as_str(), j)).collect();
        for name in &plan.added {
            let Some(spec) = specs.get(name.as_str()) else {
                continue;
            };
            self.jobs
                .insert(name.clone(), Entry::new((*spec).clone(), Origin::File));
            if spec.autostart {
                self.autostart(name);
            }
        }
        for name in &plan.unchanged {
            // In the file, so kept even if a `remove` of it is still stopping it.
            if let Some(e) = self.jobs.get_mut(name) {
                e.removing = false;
            }
        }
        for name in &plan.changed {
            if let Some(spec) = specs.get(name.as_str()) {
                self.change(name, Arc::new((*spec).clone()));
            }
        }
        for name in &plan.removed {
            if let Some(e) = self.jobs.get_mut(name) {
                e.removing = true;
                self.scans.removing = true;
            }
            self.stop(name, None);
        }
        // File jobs in the file's order, then jobs added over the socket.
        let order: HashMap<&str, usize> = new
            .jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (j.name.as_str(), i))
            .collect();
        self.jobs
            .sort_by_cached_key(|name, _| order.get(name.as_str()).copied().unwrap_or(usize::MAX));
    }

    /// Give a job its new spec. The run in progress is stopped the way it was started
    /// (its stop signal, stop timeout and kill_group); the new spec applies from the next
    /// spawn on. Settled jobs keep their state and take the new spec at their next start.
    fn change(&mut self, name: &str, spec: Arc<JobSpec>) {
        let Some(e) = self.jobs.get_mut(name) else {
            return;
        };
        e.origin = Origin::File;
        e.removing = false;
        let was_armed = e.next_run_at.is_some();
        let scheduled = spec.schedule.is_some() || e.spec.schedule.is_some();
        match e.life.state() {
            JobState::Starting | JobState::Running => {
                self.feed(name, Input::Restart);
                if let Some(e) = self.jobs.get_mut(name) {
                    e.spec = spec;
                }
            }
            JobState::Stopping | JobState::Backoff => {
                e.spec = spec;
                self.feed(name, Input::Restart);
            }
            // A waiting job is judged on its new edges from the next turn on.
            JobState::Stopped | JobState::Exited | JobState::Fatal | JobState::Waiting => {
                e.spec = spec
            }
        }
        if scheduled {
            self.rearm_changed(name, was_armed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> Config {
        crate::config::parse(Path::new("/t/jobs.toml"), text).expect("valid")
    }

    fn current(c: &Config, origin: Origin) -> Vec<Current<'_>> {
        c.jobs
            .iter()
            .map(|j| Current {
                name: &j.name,
                spec: j,
                origin,
            })
            .collect()
    }

    const OLD: &str = r#"
[job.File1]
command = ["sh", "download.sh", "File1"]
[job.File2]
command = ["sh", "download.sh", "File2"]
[job.File3]
command = ["sh", "download.sh", "File3"]
"#;

    #[test]
    fn added_removed_changed_unchanged_in_file_order() {
        let old = config(OLD);
        let new = config(
            r#"
[job.File2]
command = ["sh", "download.sh", "File2"]
[job.File3]
command = ["sh", "download.sh", "File3", "--fast"]
[job.File4]
command = ["sh", "download.sh", "File4"]
"#,
        );
        let p = plan(current(&old, Origin::File), &old, &new);
        assert_eq!(p.added, ["File4"]);
        assert_eq!(p.removed, ["File1"]);
        assert_eq!(p.changed, ["File3"]);
        assert_eq!(p.unchanged, ["File2"]);
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn the_same_file_changes_nothing() {
        let old = config(OLD);
        let p = plan(current(&old, Origin::File), &old, &config(OLD));
        assert_eq!(p.unchanged, ["File1", "File2", "File3"]);
        assert!(p.added.is_empty() && p.removed.is_empty() && p.changed.is_empty());
    }

    #[test]
    fn added_jobs_are_kept_and_a_file_job_of_the_same_name_takes_one_over() {
        let old = config(OLD);
        let dynamic = config(
            r#"
[job.extra]
command = ["sleep", "1"]
[job.File9]
command = ["sleep", "1"]
"#,
        );
        let mut now = current(&old, Origin::File);
        now.extend(current(&dynamic, Origin::Added));
        let new = config(&format!(
            "{OLD}\n[job.File9]\ncommand = [\"sleep\", \"1\"]\n"
        ));
        let p = plan(now, &old, &new);
        assert!(p.removed.is_empty(), "added jobs are not removed: {p:?}");
        assert_eq!(p.changed, ["File9"], "same spec, but now the file's");
        assert_eq!(p.unchanged, ["File1", "File2", "File3"]);
    }

    #[test]
    fn a_defaults_change_changes_every_job_it_reaches() {
        let old = config(OLD);
        let new = config(&format!("[defaults]\nstop_timeout = \"3s\"\n{OLD}"));
        let p = plan(current(&old, Origin::File), &old, &new);
        assert_eq!(p.changed, ["File1", "File2", "File3"]);
    }

    #[test]
    fn supervisor_settings_that_need_a_restart_are_warned_about() {
        let old = config(OLD);
        let new = config(&format!(
            "[supervisor]\nsocket = \"other.sock\"\nexit_when_done = true\n{OLD}"
        ));
        let p = plan(current(&old, Origin::File), &old, &new);
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        assert!(p.warnings[0].contains("exit_when_done"));
        let new = config(&format!(
            "[supervisor]\nhistory_max_bytes = \"1MiB\"\n{OLD}"
        ));
        let p = plan(current(&old, Origin::File), &old, &new);
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        assert!(p.warnings[0].contains("history_max_bytes"));
    }

    #[test]
    fn the_socket_warning_compares_with_the_socket_served() {
        let new = config(&format!("[supervisor]\nsocket = \"other.sock\"\n{OLD}"));
        let other = new.socket.clone().expect("socket");
        let served = other.with_file_name("served.sock");
        let old = config(OLD);
        let w = socket_warning(&new, &old, Some(&served)).expect("a warning");
        assert!(w.contains("other.sock but supervisord serves"), "{w}");
        // Back to the socket in use, after a file that named another.
        assert_eq!(socket_warning(&new, &old, Some(&other)), None);
        // Unchanged (the socket in use came from --socket).
        assert_eq!(socket_warning(&new, &new, Some(&served)), None);
        assert_eq!(socket_warning(&old, &old, Some(&served)), None);
    }
}
