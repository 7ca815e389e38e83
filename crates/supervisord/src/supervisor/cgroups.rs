//! Runs' cgroups once their leader has ended: removed when empty, watched until then; a
//! stopped run's exit reported only once its cgroup is empty; what is left killed at
//! shutdown.

use super::Supervisor;
use crate::cgroup::{Controller, Janitor, Offer, RunCgroup, Watcher};
use crate::lifecycle::Input;
use std::time::Duration;

/// A run's cgroup that outlived its leader.
pub(super) struct CgroupLeft {
    pub(super) job: String,
    /// The leader's exit, reported once the cgroup is empty.
    pub(super) exit: Option<i32>,
}

impl Supervisor {
    /// The janitor thread that removes emptied runs' cgroups, where runs have cgroups
    /// (without one, they are removed on the runtime).
    pub(super) fn start_janitor(&mut self) {
        if self.cgroups.is_some() && self.janitor.is_none() {
            match Janitor::start() {
                Ok(j) => self.janitor = Some(j),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the cgroup janitor thread; runs' cgroups are removed on the runtime")
                }
            }
        }
    }

    /// Which controllers runs' cgroups can have (a job file asking for others is refused).
    pub(super) fn offer(&self) -> Offer {
        match &self.cgroups {
            Some(t) => t.offer().clone(),
            None => Offer::none(&self.containment),
        }
    }

    /// Give runs' cgroups the controllers `wanted` by jobs' limits, where they can have
    /// them; one that cannot be given after all is refused by [`Supervisor::offer`] from
    /// then on (so check the job file against it afterwards).
    pub(super) fn enable_controllers(&mut self, wanted: &[Controller]) {
        if let Some(t) = self.cgroups.as_mut() {
            t.enable(wanted);
        }
    }

    /// A run's cgroup after its leader ended (`populated`: with processes left in it):
    /// kept for the job's next run if empty, else watched until it is. True when `exit`
    /// is held until then.
    pub(super) fn keep_cgroup(
        &mut self,
        cg: RunCgroup,
        job: &str,
        populated: bool,
        exit: Option<i32>,
    ) -> bool {
        // Almost always empty by the time its leader has ended: the job's next run uses
        // it again, sparing the kernel a `rmdir` now and a `mkdir` then.
        if !populated {
            self.spare(job, cg);
            return false;
        }
        if self.cgroup_watch.is_none() {
            match Watcher::new() {
                Ok(w) => self.cgroup_watch = Some(w),
                Err(e) => tracing::warn!(error = %e, "cannot watch cgroups"),
            }
        }
        match self.cgroup_watch.as_mut().map(|w| w.watch(&cg)) {
            Some(Ok(true)) => {}
            // Emptied between the two looks: fit for the next run after all.
            Some(Ok(false)) => {
                self.spare(job, cg);
                return false;
            }
            // Not watched, and processes may be left: never another run's. Removed if it
            // is empty by now; else it stays (as before the reuse) until a supervisord
            // clears stale subtrees.
            Some(Err(e)) => {
                tracing::warn!(cgroup = %cg.dir().display(), error = %e, "cannot watch a cgroup");
                cg.remove();
                return false;
            }
            None => {
                cg.remove();
                return false;
            }
        }
        let held = exit.is_some();
        self.cgroups_left.insert(
            cg,
            CgroupLeft {
                job: job.to_owned(),
                exit,
            },
        );
        held
    }

    /// An empty cgroup of `job`'s: kept for its next run. Removed instead when the job
    /// is going (at once, so a `remove` or reload answers with it gone), or already has
    /// one, or it was killed (by the janitor).
    fn spare(&mut self, job: &str, cg: RunCgroup) {
        match self.jobs.get(job) {
            Some(e) if !e.removing && e.spare_cgroup.is_none() && cg.reusable() => {
                if let Some(e) = self.jobs.get_mut(job) {
                    e.spare_cgroup = Some(cg);
                }
            }
            Some(e) if !e.removing => self.discard_cgroup(cg),
            _ => {
                cg.remove();
            }
        }
    }

    /// Remove an empty cgroup: by the janitor thread, off the runtime, where there is one.
    fn discard_cgroup(&self, cg: RunCgroup) {
        let cg = match &self.janitor {
            Some(janitor) => match janitor.remove(cg) {
                Ok(()) => return,
                Err(cg) => cg,
            },
            None => cg,
        };
        cg.remove();
    }

    /// Cgroups that emptied: kept for their job's next run (or removed), and a stopped
    /// run's exit reported at last.
    pub(super) fn cgroups_emptied(&mut self, emptied: Vec<RunCgroup>) {
        for cg in emptied {
            let Some(left) = self.cgroups_left.remove(&cg) else {
                self.discard_cgroup(cg);
                continue;
            };
            self.spare(&left.job, cg);
            if let Some(code) = left.exit {
                self.feed(&left.job, Input::Exited(code));
            }
        }
    }

    /// At shutdown: kill what is left in runs' cgroups, wait a moment for them to empty,
    /// remove them and the subtree.
    pub(super) async fn end_cgroups(&mut self) {
        // Jobs' spare cgroups, and what the janitor was given, are removed before the
        // subtree is.
        let names: Vec<String> = self
            .jobs
            .values()
            .filter(|e| e.spare_cgroup.is_some())
            .map(|e| e.spec.name.clone())
            .collect();
        for name in names {
            if let Some(cg) = self.jobs.get_mut(&name).and_then(|e| e.spare_cgroup.take()) {
                self.discard_cgroup(cg);
            }
        }
        if let Some(janitor) = self.janitor.take() {
            let _ = tokio::task::spawn_blocking(move || janitor.finish()).await;
        }
        for cg in self.cgroups_left.keys() {
            cg.kill();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while !self.cgroups_left.is_empty() {
            let Some(w) = self.cgroup_watch.as_mut() else {
                break;
            };
            match tokio::time::timeout_at(deadline, w.emptied()).await {
                Ok(emptied) => {
                    for cg in emptied {
                        cg.remove();
                        self.cgroups_left.remove(&cg);
                    }
                }
                Err(_) => break,
            }
        }
        if let Some(tree) = &self.cgroups {
            tree.remove();
        }
    }
}
