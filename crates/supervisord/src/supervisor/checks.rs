//! Ready and health checks and the notify socket, at the edge of the actor.
//!
//! Each check runs as a task on the daemon's tracker, only for jobs that have one and
//! only in the state it is for (a ready check while `starting`, a health check while
//! `running`, the notify socket for the whole run). It reports by message, tagged with
//! the run's id, so a late result of an earlier run is dropped. Leaving the state drops
//! the task's [`DropGuard`], which cancels it: an idle daemon with no checks arms no
//! timer at all.

use super::{rfc3339, Entry, Published, Supervisor};
use crate::checks::{self, ExecContext, HealthTrack};
use crate::config::{OnUnhealthy, Probe};
use crate::lifecycle::Input;
use crate::logs::LineWatch;
use protocol::{Cause, Health, HealthChange, JobState};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

/// What a check task tells the actor.
#[derive(Debug)]
pub(super) struct CheckReport {
    /// The job.
    pub name: String,
    /// The run it checked.
    pub run: u64,
    /// What happened.
    pub what: Finding,
}

/// One finding of a check task.
#[derive(Debug)]
pub(super) enum Finding {
    /// The ready check passed (a notify job sent `READY=1`).
    Ready,
    /// A health check's result.
    Health {
        /// It passed.
        passed: bool,
        /// What it said.
        output: String,
    },
    /// A notify job's `STATUS=` text.
    Status(String),
    /// A notify job missed its watchdog.
    WatchdogMissed(Duration),
}

/// The check state of one entry.
#[derive(Default)]
pub(super) struct Checks {
    /// The task for the state it was started in.
    task: Option<(JobState, DropGuard)>,
    /// The notify socket's task, for the whole run.
    notify: Option<DropGuard>,
    /// The health of the current run (jobs with a health table).
    pub track: Option<HealthTrack>,
    /// The last `STATUS=` of a notify job, shown as its reason while it is alive.
    pub status: Option<String>,
    /// A `log` ready check's tokens from the spawn until its task takes them:
    /// (found, pending).
    log: Option<(CancellationToken, CancellationToken)>,
}

impl Entry {
    /// Whether its last health check passed (a job without one never is).
    pub(super) fn is_healthy(&self) -> bool {
        self.checks
            .track
            .as_ref()
            .is_some_and(|t| t.health == Health::Healthy)
    }

    /// `health` for the protocol.
    pub(super) fn health(&self) -> Option<Health> {
        self.spec.health.as_ref()?;
        Some(
            self.checks
                .track
                .as_ref()
                .map_or(Health::Unknown, |t| t.health),
        )
    }
}

/// Where notify sockets live: one folder per daemon.
fn notify_dir() -> PathBuf {
    std::env::temp_dir().join(format!("supervisord-notify-{}", std::process::id()))
}

impl Supervisor {
    /// Before a spawn: a notify job's socket, bound now so the job can use it at once.
    /// Returns the variable to give the job.
    pub(super) fn open_notify(&mut self, name: &str, run: u64) -> Option<(String, String)> {
        let e = self.jobs.get_mut(name)?;
        let ready = e.spec.ready.as_ref()?;
        if ready.probe != Probe::Notify {
            return None;
        }
        let watchdog = ready.watchdog;
        let dir = notify_dir();
        let path = dir.join(format!("{name}.sock"));
        let bound = (|| {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
            let _ = std::fs::remove_file(&path);
            let sock = std::os::unix::net::UnixDatagram::bind(&path)?;
            sock.set_nonblocking(true)?;
            tokio::net::UnixDatagram::from_std(sock)
        })();
        let sock = match bound {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(job = name, error = %err, "cannot open the notify socket; the job will not be ready");
                return None;
            }
        };
        let token = CancellationToken::new();
        let tx = self.checks_tx.clone();
        let job = name.to_owned();
        let cancel = token.clone();
        let file = path.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = listen(sock, job, run, watchdog, tx) => {}
            }
            let _ = std::fs::remove_file(file);
        });
        e.checks.notify = Some(token.drop_guard());
        Some(("NOTIFY_SOCKET".into(), path.to_string_lossy().into_owned()))
    }

    /// Before a spawn: a `log` ready check's watch, for the run's output readers.
    pub(super) fn open_line_watch(&mut self, name: &str) -> Option<LineWatch> {
        let e = self.jobs.get_mut(name)?;
        let Probe::Log(pattern) = &e.spec.ready.as_ref()?.probe else {
            return None;
        };
        // Checked at load; a pattern that somehow does not compile never matches.
        let regex = match regex::bytes::Regex::new(pattern) {
            Ok(r) => r,
            Err(err) => {
                tracing::warn!(job = name, error = %err, "bad log regex; the job will not be ready");
                return None;
            }
        };
        let (found, pending) = (CancellationToken::new(), CancellationToken::new());
        e.checks.log = Some((found.clone(), pending.clone()));
        Some(LineWatch::new(regex, found, pending))
    }

    /// After a job's step: start or cancel its check tasks for the state it is in now.
    pub(super) fn follow_checks(&mut self, name: &str) {
        let Some(e) = self.jobs.get_mut(name) else {
            return;
        };
        let state = e.life.state();
        let run = e.run.as_ref().map(|r| r.id);
        if e.checks.task.as_ref().is_some_and(|(s, _)| *s != state) {
            e.checks.task = None;
        }
        if !state.is_alive() || run.is_none() {
            e.checks.task = None;
            e.checks.notify = None;
            e.checks.status = None;
            if let Some((_, pending)) = e.checks.log.take() {
                pending.cancel();
            }
            if e.checks.track.take().is_some() {
                self.health_changed(name, Health::Unknown);
            }
            return;
        }
        let Some(run) = run else { return };
        // A new run (a restart goes stopped -> starting in one turn): the last run's
        // health is not this one's.
        if state == JobState::Starting && e.checks.track.take().is_some() {
            self.health_changed(name, Health::Unknown);
        }
        let Some(e) = self.jobs.get_mut(name) else {
            return;
        };
        if e.checks.task.is_some() {
            return;
        }
        let ctx = ExecContext {
            cwd: e.spec.cwd.clone(),
            env: e.spec.env.clone(),
            user: e.spec.user.as_deref().cloned(),
            umask: e.spec.umask,
        };
        let job = name.to_owned();
        let tx = self.checks_tx.clone();
        let token = CancellationToken::new();
        let cancel = token.clone();
        match state {
            JobState::Starting => {
                let Some(ready) = e.spec.ready.clone() else {
                    return;
                };
                if let Some((found, pending)) = e.checks.log.take() {
                    // The readers scan while `pending` is not cancelled; leaving
                    // `starting` drops the guard below, which cancels it.
                    let guard = pending.clone().drop_guard();
                    self.tracker.spawn(async move {
                        tokio::select! {
                            () = pending.cancelled() => {}
                            () = found.cancelled() => {
                                let _ = tx.send(CheckReport {
                                    name: job,
                                    run,
                                    what: Finding::Ready,
                                });
                            }
                        }
                    });
                    if let Some(e) = self.jobs.get_mut(name) {
                        e.checks.task = Some((state, guard));
                    }
                    return;
                }
                if matches!(ready.probe, Probe::Notify | Probe::Log(_)) {
                    return;
                }
                let attempt = ready.interval.max(Duration::from_secs(1));
                self.tracker.spawn(async move {
                    let poll = async {
                        loop {
                            if checks::run(&ready.probe, attempt, &ctx).await.is_ok() {
                                let _ = tx.send(CheckReport {
                                    name: job,
                                    run,
                                    what: Finding::Ready,
                                });
                                return;
                            }
                            tokio::time::sleep(ready.interval).await;
                        }
                    };
                    tokio::select! {
                        () = cancel.cancelled() => {}
                        () = poll => {}
                    }
                });
            }
            JobState::Running => {
                let Some(health) = e.spec.health.clone() else {
                    return;
                };
                e.checks.track = Some(HealthTrack::new(tokio::time::Instant::now()));
                self.tracker.spawn(async move {
                    let poll = async {
                        loop {
                            let r = checks::run(&health.probe, health.timeout, &ctx).await;
                            let (passed, output) = match r {
                                Ok(o) => (true, o),
                                Err(o) => (false, o),
                            };
                            let report = CheckReport {
                                name: job.clone(),
                                run,
                                what: Finding::Health { passed, output },
                            };
                            if tx.send(report).is_err() {
                                return;
                            }
                            tokio::time::sleep(health.interval).await;
                        }
                    };
                    tokio::select! {
                        () = cancel.cancelled() => {}
                        () = poll => {}
                    }
                });
            }
            _ => return,
        }
        if let Some(e) = self.jobs.get_mut(name) {
            e.checks.task = Some((state, token.drop_guard()));
        }
    }

    /// A check task's finding.
    pub(super) fn check_report(&mut self, r: CheckReport) {
        let Some(e) = self.jobs.get_mut(&r.name) else {
            return;
        };
        if e.run.as_ref().map(|run| run.id) != Some(r.run) {
            return;
        }
        match r.what {
            Finding::Ready => self.feed(&r.name, Input::Ready),
            Finding::Status(text) => e.checks.status = Some(text),
            Finding::WatchdogMissed(after) => {
                let restart = e
                    .spec
                    .health
                    .as_ref()
                    .is_none_or(|h| h.on_unhealthy == OnUnhealthy::Restart);
                self.feed(
                    &r.name,
                    Input::Unwell {
                        cause: Cause::Watchdog,
                        reason: format!(
                            "no WATCHDOG=1 within {}",
                            humantime::format_duration(after)
                        ),
                        restart,
                    },
                );
            }
            Finding::Health { passed, output } => {
                let Some(spec) = e.spec.health.clone() else {
                    return;
                };
                if e.life.state() != JobState::Running {
                    return;
                }
                let Some(track) = e.checks.track.as_mut() else {
                    return;
                };
                let changed = track.record(&spec, passed, output, tokio::time::Instant::now());
                let summary = track.describe();
                if let Some(h) = changed {
                    self.health_changed(&r.name, h);
                    if h == Health::Unhealthy {
                        tracing::warn!(job = %r.name, "{summary}");
                        let restart = match spec.on_unhealthy {
                            OnUnhealthy::Restart => true,
                            OnUnhealthy::Stop => false,
                            OnUnhealthy::None => return,
                        };
                        self.feed(
                            &r.name,
                            Input::Unwell {
                                cause: Cause::Unhealthy,
                                reason: summary,
                                restart,
                            },
                        );
                    }
                }
            }
        }
    }

    /// Log a change of a job's health and publish it as a `health` notification.
    fn health_changed(&mut self, name: &str, health: Health) {
        let Some(e) = self.jobs.get(name) else {
            return;
        };
        let output = e.checks.track.as_ref().and_then(|t| t.output.clone());
        let _ = self.events.send(Published::Health(Box::new(HealthChange {
            name: name.to_owned(),
            group: e.spec.group.clone(),
            health,
            output: output.clone(),
            at: rfc3339(std::time::SystemTime::now()),
        })));
        tracing::info!(
            job = name,
            health = health.as_str(),
            output = output.as_deref(),
            "job {name} is {}",
            health.as_str()
        );
    }
}

/// Read a notify socket: `READY=1`, `STATUS=...`, `WATCHDOG=1` (systemd's protocol).
async fn listen(
    sock: tokio::net::UnixDatagram,
    name: String,
    run: u64,
    watchdog: Option<Duration>,
    tx: mpsc::UnboundedSender<CheckReport>,
) {
    let mut buf = vec![0u8; 4096];
    let mut ready = false;
    let send = |what: Finding| {
        tx.send(CheckReport {
            name: name.clone(),
            run,
            what,
        })
        .is_ok()
    };
    loop {
        let got = match watchdog.filter(|_| ready) {
            Some(w) => match tokio::time::timeout(w, sock.recv(&mut buf)).await {
                Ok(r) => r,
                Err(_) => {
                    let _ = send(Finding::WatchdogMissed(w));
                    return;
                }
            },
            None => sock.recv(&mut buf).await,
        };
        let Ok(n) = got else {
            return;
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        for line in text.lines() {
            let ok = match line.split_once('=') {
                Some(("READY", "1")) if !ready => {
                    ready = true;
                    send(Finding::Ready)
                }
                Some(("STATUS", s)) => send(Finding::Status(s.to_owned())),
                _ => true,
            };
            if !ok {
                return;
            }
        }
    }
}
