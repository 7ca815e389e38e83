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

    /// A run's cgroup after its leader ended: removed if empty, else watched until it
    /// is. True when `exit` is held until then.
    pub(super) fn keep_cgroup(&mut self, cg: RunCgroup, job: &str, exit: Option<i32>) -> bool {
        // Most runs' cgroups are empty by the time their leader has ended. When the exit
        // is reported at once (not held for a stop), an empty one is handed to the
        // janitor thread, which removes it off the runtime.
        // Otherwise removing it is the whole work when it is empty, and what tells so.
        // A cgroup just read as populated goes straight to the watch.
        let cg = match (&self.janitor, exit) {
            (Some(janitor), None) => {
                if cg.populated() {
                    cg
                } else {
                    match janitor.remove(cg) {
                        Ok(()) => return false,
                        Err(cg) if cg.remove() => return false,
                        Err(cg) => cg,
                    }
                }
            }
            _ => match cg.remove_if_empty() {
                Ok(true) => return false,
                _ => cg,
            },
        };
        if self.cgroup_watch.is_none() {
            match Watcher::new() {
                Ok(w) => self.cgroup_watch = Some(w),
                Err(e) => tracing::warn!(error = %e, "cannot watch cgroups"),
            }
        }
        let watched = match self.cgroup_watch.as_mut().map(|w| w.watch(&cg)) {
            Some(Ok(w)) => w,
            Some(Err(e)) => {
                tracing::warn!(cgroup = %cg.dir().display(), error = %e, "cannot watch a cgroup");
                false
            }
            None => false,
        };
        if !watched {
            cg.remove();
            return false;
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

    /// Cgroups that emptied: removed, and a stopped run's exit reported at last.
    pub(super) fn cgroups_emptied(&mut self, emptied: Vec<RunCgroup>) {
        for cg in emptied {
            cg.remove();
            let Some(left) = self.cgroups_left.remove(&cg) else {
                continue;
            };
            if let Some(code) = left.exit {
                self.feed(&left.job, Input::Exited(code));
            }
        }
    }

    /// At shutdown: kill what is left in runs' cgroups, wait a moment for them to empty,
    /// remove them and the subtree.
    pub(super) async fn end_cgroups(&mut self) {
        // What the janitor was given is removed before the subtree is.
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
