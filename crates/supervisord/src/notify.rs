//! systemd's notify protocol (`Type=notify`): `READY=1` once the socket listens and the
//! autostart jobs are spawned, `RELOADING=1`/`READY=1` around a reload, `STOPPING=1` when
//! shutdown begins, `STATUS=` lines that count jobs by state, and `WATCHDOG=1` pings
//! when the unit sets `WatchdogSec=`.
//!
//! Everything here is a no-op unless `NOTIFY_SOCKET` is set when supervisord starts: no
//! task is spawned and no timer exists. The datagrams are sent with the `sd-notify`
//! crate; a send to the service manager's local socket does not wait on anything but the
//! kernel (as with libsystemd's `sd_notify`), so it is done inline, which also keeps the
//! messages in order.

use crate::supervisor::{Call, SupervisorHandle};
use protocol::{Job, JobList, JobState, Selection};
use sd_notify::NotifyState;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// The shortest gap between two `STATUS=` lines: a crash loop must not flood the journal
/// of the service manager.
pub const STATUS_GAP: Duration = Duration::from_secs(1);

/// Sends notifications to the service manager, if there is one. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Notifier {
    enabled: bool,
    stopping: Arc<AtomicBool>,
}

impl Notifier {
    /// A notifier for the service manager named by `NOTIFY_SOCKET` (disabled without it).
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty()),
            stopping: Arc::default(),
        }
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier::default()
    }

    /// Whether a service manager listens.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn send(&self, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
        }
    }

    /// `READY=1`, with the current `STATUS=` line.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (systemd 253 and later require it).
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read CLOCK_MONOTONIC");
                self.send(&[NotifyState::Reloading]);
            }
        }
    }

    /// `READY=1` after a reload, successful or not: the daemon serves either way.
    pub fn reloaded(&self) {
        self.send(&[NotifyState::Ready]);
    }

    /// `STOPPING=1`, once, however many ways shutdown is asked for.
    pub fn stopping(&self) {
        if !self.stopping.swap(true, Ordering::Relaxed) {
            self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
        }
    }
}

/// The watchdog period systemd asks for (`WATCHDOG_USEC`, when `WATCHDOG_PID` is unset or
/// names this process).
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled().filter(|d| !d.is_zero())
}

/// `STATUS=` text: the number of jobs in each state, busiest first in a fixed order, e.g.
/// `12 running, 1 fatal`.
pub fn status_line(jobs: &[Job]) -> String {
    const ORDER: [JobState; 8] = [
        JobState::Running,
        JobState::Starting,
        JobState::Waiting,
        JobState::Backoff,
        JobState::Stopping,
        JobState::Exited,
        JobState::Stopped,
        JobState::Fatal,
    ];
    if jobs.is_empty() {
        return "no jobs".into();
    }
    ORDER
        .iter()
        .filter_map(|state| {
            let n = jobs.iter().filter(|j| j.state == *state).count();
            (n > 0).then(|| format!("{n} {state}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Tell the service manager when supervisord is ready, keep its `STATUS=` line current
/// (at most one per [`STATUS_GAP`]) and ping the watchdog, until `shutdown` fires or the
/// supervisor is gone. Spawn it only when the notifier is enabled.
pub async fn run(notifier: Notifier, handle: SupervisorHandle, shutdown: CancellationToken) {
    // The supervisor answers commands only after it has spawned the autostart jobs, and
    // the socket was bound before it started: so once this answers, both are done.
    let Ok((jobs, mut events)) = handle.subscribe().await else {
        return;
    };
    notifier.ready(&status_line(&jobs));
    let mut last_status = Instant::now();
    let mut dirty = false;
    let mut watchdog = watchdog_period().map(|period| {
        tracing::info!(period = ?period, "systemd watchdog enabled");
        let mut tick = tokio::time::interval(period / 2);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tick
    });
    loop {
        // A timer exists only while a STATUS= line is held back by the rate limit.
        let due = dirty.then_some(last_status + STATUS_GAP);
        tokio::select! {
            () = shutdown.cancelled() => return,
            event = events.recv() => match event {
                Ok(_) | Err(RecvError::Lagged(_)) => dirty = true,
                Err(RecvError::Closed) => return,
            },
            () = sleep_until(due), if due.is_some() => {}
            _ = tick(&mut watchdog), if watchdog.is_some() => {
                // Ping only if the supervisor itself answers, not merely this task.
                if handle.call(Call::Ping).await.is_ok() {
                    notifier.send(&[NotifyState::Watchdog]);
                }
            }
        }
        if dirty && last_status.elapsed() >= STATUS_GAP {
            dirty = false;
            last_status = Instant::now();
            let all = Call::Status(Selection::default());
            if let Ok(result) = handle.call(all).await {
                let jobs: Vec<Job> = serde_json::from_str::<JobList>(result.get())
                    .map(|list| list.jobs)
                    .unwrap_or_default();
                notifier.send(&[NotifyState::Status(&status_line(&jobs))]);
            }
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(at) = due {
        tokio::time::sleep_until(at).await;
    }
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: JobState) -> Job {
        serde_json::from_value(serde_json::json!({
            "name": "x", "group": "x", "state": state, "alive": state.is_alive(),
            "pid": null, "exitcode": null, "signal": null, "success": null,
            "daemon": false, "restarts": 0, "started_at": null, "ended_at": null,
            "uptime_ms": null, "spawn_error": null, "output_error": null,
        }))
        .expect("a job")
    }

    #[test]
    fn status_counts_states_in_a_fixed_order() {
        let mut jobs: Vec<Job> = (0..12).map(|_| job(JobState::Running)).collect();
        jobs.insert(3, job(JobState::Fatal));
        assert_eq!(status_line(&jobs), "12 running, 1 fatal");
        assert_eq!(
            status_line(&[job(JobState::Stopped), job(JobState::Starting)]),
            "1 starting, 1 stopped"
        );
        assert_eq!(status_line(&[]), "no jobs");
    }
}
