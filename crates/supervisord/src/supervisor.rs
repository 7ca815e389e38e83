//! The supervisor: the one owner of the process table.
//!
//! # Theory of operation
//!
//! A single task runs [`Supervisor::run`], a `select!` loop over four sources: commands
//! from connections (each with a `oneshot` for its reply), reports from child tasks
//! (exits, output errors), timers (start_secs, stop escalation, backoff) and SIGCHLD (to
//! reap adopted orphans). Every state change happens here, in one order, through
//! [`Lifecycle::step`], and each one publishes exactly one [`Event`] on a broadcast
//! channel. Requests that answer later (`wait`, `terminate`, `restart`, `remove`) park a
//! [`Waiter`] that is checked after every turn of the loop, so they never block the loop
//! or each other.
//!
//! Channels: connections → supervisor is bounded (`mpsc`, awaited by the sender); child
//! tasks → supervisor is unbounded but holds at most a few messages per run; supervisor →
//! child tasks never waits (`try_send`). No two bounded channels form a cycle.

use crate::config::{Config, ConfigError, JobSpec, Output};
use crate::guard::Guard;
use crate::lifecycle::{Effect, Input, Lifecycle, TimerKind, Transition};
use crate::logs::LogHub;
use crate::os;
use crate::process::{self, Report, Run};
use indexmap::IndexMap;
use protocol::{
    code, describe_exit, signal_name, Event, Job, JobState, Request, RpcError, Selection, Stream,
};
use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::task::TaskTracker;
use tokio_util::time::DelayQueue;

/// How many events a subscriber may fall behind before it skips.
const EVENT_BACKLOG: usize = 4096;
/// How many commands may queue for the supervisor.
const COMMAND_QUEUE: usize = 256;

/// A request's result, already encoded as JSON. The job table is serialized once, straight
/// from its structs into the text that goes on the socket (no `serde_json::Value` tree in
/// between: for `status` of 200 jobs that tree was three quarters of the round trip).
pub type Answer = Box<RawValue>;

/// Encode a result.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Answer, RpcError> {
    serde_json::value::to_raw_value(value).map_err(|e| {
        RpcError::new(
            code::INTERNAL_ERROR,
            format!("cannot encode the answer: {e}"),
        )
    })
}

/// `{"jobs": [...]}`, and `"success"` for `wait`.
#[derive(Serialize)]
struct JobList<'a> {
    jobs: &'a [Job],
    #[serde(skip_serializing_if = "Option::is_none")]
    success: Option<bool>,
}

fn job_list(jobs: &[Job]) -> Result<Answer, RpcError> {
    encode(&JobList {
        jobs,
        success: None,
    })
}

/// What connections (and signal handlers) ask of the supervisor.
pub enum Command {
    /// A request answered with one result.
    Rpc {
        /// The request.
        request: Request,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<Answer, RpcError>>,
    },
    /// `subscribe`: a snapshot and the event stream from the same instant.
    Subscribe {
        /// Where the pair goes.
        reply: oneshot::Sender<(Vec<Job>, broadcast::Receiver<Event>)>,
    },
    /// Where a job's captured stream is written, for `logs`.
    LogSource {
        /// The job.
        name: String,
        /// The stream.
        stream: Stream,
        /// The log file, or why there is none.
        reply: oneshot::Sender<Result<PathBuf, RpcError>>,
    },
    /// Apply a freshly read job file (or refuse it).
    Reload {
        /// The file as read.
        config: Box<Result<Config, ConfigError>>,
        /// Where the answer goes (none for SIGHUP).
        reply: Option<oneshot::Sender<Result<Answer, RpcError>>>,
    },
}

/// A cheap handle on the supervisor: what the server and signal handlers hold.
#[derive(Clone)]
pub struct SupervisorHandle {
    tx: mpsc::Sender<Command>,
}

impl SupervisorHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, RpcError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| RpcError::shutting_down())?;
        rx.await.map_err(|_| RpcError::shutting_down())
    }

    /// Run a request that answers once.
    pub async fn rpc(&self, request: Request) -> Result<Answer, RpcError> {
        self.ask(|reply| Command::Rpc { request, reply }).await?
    }

    /// Subscribe to events.
    pub async fn subscribe(&self) -> Result<(Vec<Job>, broadcast::Receiver<Event>), RpcError> {
        self.ask(|reply| Command::Subscribe { reply }).await
    }

    /// The log file of a job's stream.
    pub async fn log_source(&self, name: String, stream: Stream) -> Result<PathBuf, RpcError> {
        self.ask(|reply| Command::LogSource {
            name,
            stream,
            reply,
        })
        .await?
    }

    /// Apply a job file read from disk.
    pub async fn reload(&self, config: Result<Config, ConfigError>) -> Result<Answer, RpcError> {
        self.ask(|reply| Command::Reload {
            config: Box::new(config),
            reply: Some(reply),
        })
        .await?
    }

    /// Apply a job file without waiting for the answer (SIGHUP).
    pub async fn reload_quietly(&self, config: Result<Config, ConfigError>) {
        let _ = self
            .tx
            .send(Command::Reload {
                config: Box::new(config),
                reply: None,
            })
            .await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Waiting for non-daemon jobs to end on their own.
    Draining,
    /// Stopping everything; the loop ends when no process is left.
    Stopping,
}

struct Entry {
    spec: Arc<JobSpec>,
    life: Lifecycle,
    run: Option<Run>,
    output_error: Option<String>,
    /// Added over the socket: kept by reload.
    dynamic: bool,
    /// Forget the job once it has stopped.
    removing: bool,
}

impl Entry {
    fn new(spec: JobSpec, dynamic: bool) -> Entry {
        Entry {
            spec: Arc::new(spec),
            life: Lifecycle::new(),
            run: None,
            output_error: None,
            dynamic,
            removing: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// Every job settled (`wait`, `terminate`, `remove`).
    Settled,
    /// Every job past its stop and respawned (`restart`).
    Restarted,
}

/// How a request is answered.
enum Outcome {
    /// Now, with this.
    Now(Result<Answer, RpcError>),
    /// Once these jobs reach the condition; `true` adds `"success"` (`wait`).
    Later(Vec<String>, Until, bool),
}

/// A request that answers once its jobs reach a condition.
struct Waiter {
    names: Vec<String>,
    until: Until,
    /// Add `"success"` to the answer (`wait`).
    with_success: bool,
    reply: oneshot::Sender<Result<Answer, RpcError>>,
}

#[derive(Debug, Clone)]
struct TimerEntry {
    name: String,
    epoch: u64,
    kind: TimerKind,
}

/// The supervisor task's state. Build it with [`Supervisor::new`], run it with
/// [`Supervisor::run`].
pub struct Supervisor {
    config: Config,
    jobs: IndexMap<String, Entry>,
    commands: mpsc::Receiver<Command>,
    reports_tx: mpsc::UnboundedSender<Report>,
    reports: mpsc::UnboundedReceiver<Report>,
    new_timers: Vec<(TimerEntry, Duration)>,
    events: broadcast::Sender<Event>,
    waiters: Vec<Waiter>,
    logs: LogHub,
    guard: Option<Guard>,
    tracker: TaskTracker,
    next_run: u64,
    phase: Phase,
    batch: bool,
    /// Process groups whose leader ended but whose members live on, by job.
    lingering: HashMap<u32, String>,
    /// Lines for supervisord's stdout (batch mode), printed after the turn.
    prints: Vec<String>,
    exit_code: u8,
    started: Instant,
}

impl Supervisor {
    /// A supervisor for `config` and the handle to reach it. `batch` is
    /// `--exit-when-done` (or the file's `exit_when_done`).
    pub fn new(
        config: Config,
        batch: bool,
        logs: LogHub,
        guard: Option<Guard>,
        tracker: TaskTracker,
    ) -> (Supervisor, SupervisorHandle) {
        let (tx, commands) = mpsc::channel(COMMAND_QUEUE);
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let jobs = config
            .jobs
            .iter()
            .map(|spec| (spec.name.clone(), Entry::new(spec.clone(), false)))
            .collect();
        let sup = Supervisor {
            config,
            jobs,
            commands,
            reports_tx,
            reports,
            new_timers: Vec::new(),
            events: broadcast::channel(EVENT_BACKLOG).0,
            waiters: Vec::new(),
            logs,
            guard,
            tracker,
            next_run: 1,
            phase: Phase::Serving,
            batch,
            lingering: HashMap::new(),
            prints: Vec::new(),
            exit_code: 0,
            started: Instant::now(),
        };
        (sup, SupervisorHandle { tx })
    }

    /// Start the autostart jobs and serve until shut down and every process is gone.
    /// Returns supervisord's exit code. Hands the guard back for the caller to finish.
    pub async fn run(mut self) -> (u8, Option<Guard>) {
        let autostart: Vec<String> = self
            .jobs
            .values()
            .filter(|e| e.spec.autostart)
            .map(|e| e.spec.name.clone())
            .collect();
        for name in autostart {
            self.feed(&name, Input::Start);
        }
        let mut timers: DelayQueue<TimerEntry> = DelayQueue::new();
        let mut sigchld = match signal(SignalKind::child()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGCHLD; adopted orphans will not be reaped");
                None
            }
        };
        loop {
            self.after_turn();
            for (entry, after) in self.new_timers.drain(..) {
                timers.insert(entry, after);
            }
            for line in std::mem::take(&mut self.prints) {
                self.logs.print(line).await;
            }
            if self.phase == Phase::Stopping && self.jobs.values().all(|e| e.run.is_none()) {
                break;
            }
            tokio::select! {
                Some(cmd) = self.commands.recv() => self.command(cmd),
                Some(report) = self.reports.recv() => self.report(report),
                Some(expired) = std::future::poll_fn(|cx| timers.poll_expired(cx)) => {
                    self.timer(expired.into_inner());
                }
                Some(()) = async {
                    match sigchld.as_mut() {
                        Some(s) => s.recv().await,
                        None => std::future::pending().await,
                    }
                } => self.reap(),
            }
        }
        // Whatever is left of lingering groups goes with the daemon.
        for pgid in std::mem::take(&mut self.lingering).into_keys() {
            os::kill_group(pgid);
            self.forget_group(pgid);
        }
        self.reap();
        for w in self.waiters.drain(..) {
            let _ = w.reply.send(Err(RpcError::shutting_down()));
        }
        (self.exit_code, self.guard.take())
    }

    // ---- inputs ------------------------------------------------------------------------

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Rpc { request, reply } => match self.rpc(request) {
                Outcome::Now(result) => {
                    let _ = reply.send(result);
                }
                Outcome::Later(names, until, with_success) => {
                    // Forget waiters whose client has gone, so clients that leave in
                    // the middle of a `wait` do not pile up until the job settles.
                    self.waiters.retain(|w| !w.reply.is_closed());
                    self.waiters.push(Waiter {
                        names,
                        until,
                        with_success,
                        reply,
                    })
                }
            },
            Command::Subscribe { reply } => {
                let rx = self.events.subscribe();
                let _ = reply.send((self.all_jobs(), rx));
            }
            Command::LogSource {
                name,
                stream,
                reply,
            } => {
                let _ = reply.send(self.log_source(&name, stream));
            }
            Command::Reload { config, reply } => {
                let result = self.reload(*config);
                match reply {
                    Some(reply) => {
                        let _ = reply.send(result);
                    }
                    None => match result {
                        Ok(v) => tracing::info!(result = %v, "reloaded on SIGHUP"),
                        Err(e) => tracing::error!(error = %e.message, "reload on SIGHUP refused"),
                    },
                }
            }
        }
    }

    fn report(&mut self, report: Report) {
        match report {
            Report::Exited {
                name,
                run,
                exitcode,
            } => {
                let Some(entry) = self.jobs.get_mut(&name) else {
                    return;
                };
                if entry.run.as_ref().map(|r| r.id) != Some(run) {
                    return;
                }
                let Some(finished) = entry.run.take() else {
                    return;
                };
                let pgid = finished.pid;
                let stopping = entry.life.state == JobState::Stopping;
                if stopping && finished.kill_group {
                    // A stop ends the whole group: members that outlived the leader
                    // already had the stop signal.
                    os::kill_group(pgid);
                    self.forget_group(pgid);
                } else if os::group_exists(pgid) {
                    self.lingering.insert(pgid, name.clone());
                } else {
                    self.forget_group(pgid);
                }
                self.feed(&name, Input::Exited(exitcode));
            }
            Report::OutputError { name, message } => {
                if let Some(entry) = self.jobs.get_mut(&name) {
                    entry.output_error = Some(message);
                }
            }
        }
    }

    fn timer(&mut self, t: TimerEntry) {
        let current = self.jobs.get(&t.name).map(|e| e.life.epoch);
        if current != Some(t.epoch) {
            return;
        }
        if t.kind == TimerKind::Backoff && self.phase != Phase::Serving {
            // Nothing new starts once shutdown began: a job waiting to be restarted
            // settles as stopped instead, so a drain can end.
            self.stop(&t.name, None);
        } else {
            self.feed(&t.name, Input::Timer(t.kind));
        }
    }

    /// SIGCHLD: reap adopted orphans and forget process groups that emptied.
    fn reap(&mut self) {
        self.mend_guard();
        let mut ours: HashSet<u32> = self
            .jobs
            .values()
            .filter_map(|e| e.run.as_ref().map(|r| r.pid))
            .collect();
        if let Some(g) = &self.guard {
            ours.insert(g.pid());
        }
        os::reap_orphans(&ours);
        let gone: Vec<u32> = self
            .lingering
            .keys()
            .copied()
            .filter(|pgid| !os::group_exists(*pgid))
            .collect();
        for pgid in gone {
            self.lingering.remove(&pgid);
            self.forget_group(pgid);
        }
    }

    /// Replace a guard that died (killed, or its pipe broke) and tell the new one every
    /// live process group. Jobs are spawned without a parent-death signal while a guard
    /// runs, so the guard must not stay missing.
    fn mend_guard(&mut self) {
        let Some(old) = self.guard.as_mut() else {
            return;
        };
        if old.is_alive() {
            return;
        }
        if let Some(old) = self.guard.take() {
            old.discard();
        }
        match Guard::spawn() {
            Ok(mut g) => {
                let live = self
                    .jobs
                    .values()
                    .filter_map(|e| e.run.as_ref().map(|r| r.pid))
                    .chain(self.lingering.keys().copied());
                for pgid in live {
                    g.watch(pgid);
                }
                tracing::warn!(pid = g.pid(), "the guard process died; started a new one");
                self.guard = Some(g);
            }
            Err(e) => tracing::error!(
                error = %e,
                "the guard process died and cannot be restarted; running jobs may outlive a crash of supervisord"
            ),
        }
    }

    fn forget_group(&mut self, pgid: u32) {
        if let Some(g) = self.guard.as_mut() {
            g.forget(pgid);
        }
    }

    // ---- the state machine's edge --------------------------------------------------------

    /// Feed one input to a job's lifecycle and carry out what it asks.
    fn feed(&mut self, name: &str, input: Input) {
        let Some(entry) = self.jobs.get_mut(name) else {
            return;
        };
        let spec = entry.spec.clone();
        let step = entry.life.step(&spec, input, SystemTime::now());
        for t in &step.transitions {
            self.publish(&spec, t);
        }
        for effect in step.effects {
            match effect {
                Effect::Spawn => self.spawn(name),
                Effect::Signal(sig) => {
                    if let Some(run) = self.jobs.get(name).and_then(|e| e.run.as_ref()) {
                        run.signal(sig);
                    }
                }
                Effect::Timer(kind, after) => {
                    if let Some(e) = self.jobs.get(name) {
                        self.new_timers.push((
                            TimerEntry {
                                name: name.to_owned(),
                                epoch: e.life.epoch,
                                kind,
                            },
                            after,
                        ));
                    }
                }
            }
        }
    }

    fn spawn(&mut self, name: &str) {
        // Once shutdown began (a drain included) nothing new starts: requests that start
        // work are refused with 1004, and a job that ends is not restarted by its policy
        // (a `restart = "always"` job would otherwise never let a drain end). The job
        // keeps the settled state it reached.
        if self.phase != Phase::Serving {
            return;
        }
        self.mend_guard();
        let Some(entry) = self.jobs.get(name) else {
            return;
        };
        let run_id = self.next_run;
        self.next_run += 1;
        match process::spawn(
            &entry.spec,
            run_id,
            self.guard.is_some(),
            &self.logs,
            &self.reports_tx,
            &self.tracker,
        ) {
            Ok(run) => {
                let pid = run.pid;
                if let Some(g) = self.guard.as_mut() {
                    g.watch(pid);
                }
                if let Some(e) = self.jobs.get_mut(name) {
                    e.run = Some(run);
                }
                self.feed(name, Input::Spawned { pid });
            }
            Err(message) => {
                tracing::warn!(job = name, error = %message, "spawn failed");
                self.feed(name, Input::SpawnFailed(message));
            }
        }
    }

    fn publish(&mut self, spec: &JobSpec, t: &Transition) {
        let signal = t.exitcode.and_then(signal_name);
        tracing::info!(
            job = %spec.name,
            group = %spec.group,
            from = %t.from,
            to = %t.to,
            pid = t.pid,
            exitcode = t.exitcode,
            signal = signal.as_deref(),
            "job {} {} -> {}", spec.name, t.from, t.to
        );
        if self.batch && t.to.is_settled() {
            self.prints
                .push(batch_line(spec, t, self.jobs.get(&spec.name)));
        }
        let _ = self.events.send(Event {
            name: spec.name.clone(),
            group: spec.group.clone(),
            from: t.from,
            to: t.to,
            pid: t.pid,
            exitcode: t.exitcode,
            signal,
            at: rfc3339(SystemTime::now()),
        });
    }

    /// After every turn: answer waiters, forget removed jobs, end batch mode or a drain.
    fn after_turn(&mut self) {
        if let Some(g) = self.guard.as_mut() {
            g.flush();
        }
        let mut i = 0;
        while i < self.waiters.len() {
            let w = &self.waiters[i];
            if w.reply.is_closed() {
                self.waiters.swap_remove(i);
                continue;
            }
            let done = w.names.iter().all(|n| match self.jobs.get(n) {
                None => true,
                Some(e) => match w.until {
                    Until::Settled => e.life.state.is_settled(),
                    Until::Restarted => {
                        e.life.state != JobState::Stopping && !e.life.restart_pending()
                    }
                },
            });
            if done {
                let w = self.waiters.swap_remove(i);
                let jobs = self.jobs_named(&w.names);
                let success = w
                    .with_success
                    .then(|| jobs.iter().all(|j| j.success == Some(true)));
                let _ = w.reply.send(encode(&JobList {
                    jobs: &jobs,
                    success,
                }));
            } else {
                i += 1;
            }
        }

        // A removed job stays in the table while a request still waits on it, so that
        // `remove a b` answers with both last statuses even when `b` went at once.
        let awaited: HashSet<&str> = self
            .waiters
            .iter()
            .flat_map(|w| w.names.iter().map(String::as_str))
            .collect();
        let removed: Vec<String> = self
            .jobs
            .values()
            .filter(|e| e.removing && e.run.is_none() && e.life.state.is_settled())
            .filter(|e| !awaited.contains(e.spec.name.as_str()))
            .map(|e| e.spec.name.clone())
            .collect();
        for name in removed {
            self.jobs.shift_remove(&name);
            tracing::info!(job = %name, "job removed");
        }

        let non_daemon_settled = self
            .jobs
            .values()
            .filter(|e| !e.spec.daemon)
            .all(|e| e.life.state.is_settled());
        if self.batch && self.phase == Phase::Serving && non_daemon_settled {
            let ran: Vec<&Entry> = self
                .jobs
                .values()
                .filter(|e| !e.spec.daemon && e.life.ended_at.is_some())
                .collect();
            let failed: Vec<&str> = ran
                .iter()
                .filter(|e| e.life.success != Some(true))
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
        } else if self.phase == Phase::Draining && non_daemon_settled {
            self.begin_stop();
        }
    }

    fn begin_stop(&mut self) {
        self.phase = Phase::Stopping;
        let names: Vec<String> = self.jobs.keys().cloned().collect();
        for name in names {
            self.stop(&name, None);
        }
    }

    /// Stop a job (with its own stop signal unless one is given), and end what is left of
    /// a group its last run left behind.
    fn stop(&mut self, name: &str, signal: Option<protocol::Signal>) {
        let Some(entry) = self.jobs.get(name) else {
            return;
        };
        let sig = signal.unwrap_or(entry.spec.stop_signal);
        let leftovers: Vec<u32> = self
            .lingering
            .iter()
            .filter(|(_, n)| n.as_str() == name)
            .map(|(pgid, _)| *pgid)
            .collect();
        for pgid in leftovers {
            os::kill_group(pgid);
        }
        self.feed(name, Input::Stop(sig));
    }

    // ---- requests ------------------------------------------------------------------------

    /// Handle a request: answer it now, or park a waiter that answers later.
    fn rpc(&mut self, request: Request) -> Outcome {
        use Outcome::Now as answer;
        let starting_work = matches!(
            request,
            Request::Start(_) | Request::Restart(_) | Request::Add(_) | Request::Reload
        );
        if starting_work && self.phase != Phase::Serving {
            return answer(Err(RpcError::shutting_down()));
        }
        match request {
            Request::Ping => answer(encode(&json!({
                "version": env!("CARGO_PKG_VERSION"),
                "pid": std::process::id(),
                "uptime_ms": millis(self.started.elapsed()),
            }))),
            Request::Status(sel) => {
                let names = if sel.is_empty() {
                    Ok(self.jobs.keys().cloned().collect())
                } else {
                    self.select(&sel, false)
                };
                answer(names.and_then(|n| job_list(&self.jobs_named(&n))))
            }
            Request::Start(sel) => match self.select_some(&sel, false) {
                Err(e) => answer(Err(e)),
                Ok(names) => {
                    for n in &names {
                        self.feed(n, Input::Start);
                    }
                    answer(job_list(&self.jobs_named(&names)))
                }
            },
            Request::Terminate(p) => match self.select_some(&p.selection, false) {
                Err(e) => answer(Err(e)),
                Ok(names) => {
                    for n in &names {
                        self.stop(n, p.signal);
                    }
                    if p.wait.unwrap_or(true) {
                        Outcome::Later(names, Until::Settled, false)
                    } else {
                        answer(job_list(&self.jobs_named(&names)))
                    }
                }
            },
            Request::Restart(sel) => match self.select_some(&sel, false) {
                Err(e) => answer(Err(e)),
                Ok(names) => {
                    for n in &names {
                        self.feed(n, Input::Restart);
                    }
                    Outcome::Later(names, Until::Restarted, false)
                }
            },
            Request::Kill(p) => match self.select(&Selection::names(p.names), false) {
                Err(e) => answer(Err(e)),
                Ok(names) => {
                    for n in &names {
                        if let Some(run) = self.jobs.get(n).and_then(|e| e.run.as_ref()) {
                            run.signal(p.signal);
                        }
                    }
                    answer(job_list(&self.jobs_named(&names)))
                }
            },
            Request::Wait(p) => {
                let names = if p.selection.is_empty() {
                    Ok(self
                        .jobs
                        .values()
                        .filter(|e| !e.spec.daemon)
                        .map(|e| e.spec.name.clone())
                        .collect())
                } else {
                    self.select(&p.selection, true)
                };
                match names {
                    Err(e) => answer(Err(e)),
                    Ok(names) => Outcome::Later(names, Until::Settled, true),
                }
            }
            Request::Add(p) => {
                if self.jobs.contains_key(&p.name) {
                    return answer(Err(RpcError::invalid_params(format!(
                        "a job named {:?} already exists",
                        p.name
                    ))
                    .with_data(json!({ "name": p.name }))));
                }
                match self.config.job_from_json(&p.name, &p.job) {
                    Err(message) => answer(Err(
                        RpcError::invalid_params(message).with_data(json!({ "name": p.name }))
                    )),
                    Ok(spec) => {
                        let autostart = spec.autostart;
                        self.jobs.insert(p.name.clone(), Entry::new(spec, true));
                        tracing::info!(job = %p.name, "job added");
                        if autostart {
                            self.feed(&p.name, Input::Start);
                        }
                        answer(job_list(&self.jobs_named(&[p.name])))
                    }
                }
            }
            Request::Remove(p) => match self.select(&Selection::names(p.names), false) {
                Err(e) => answer(Err(e)),
                Ok(names) => {
                    for n in &names {
                        if let Some(e) = self.jobs.get_mut(n) {
                            e.removing = true;
                        }
                        self.stop(n, None);
                    }
                    Outcome::Later(names, Until::Settled, false)
                }
            },
            Request::Shutdown(p) => {
                match (self.phase, p.drain.unwrap_or(false)) {
                    (Phase::Serving, true) => {
                        tracing::info!(
                            "draining: waiting for jobs to finish, terminating daemon jobs"
                        );
                        self.phase = Phase::Draining;
                        // Daemon jobs end now; so do restarts that were only scheduled.
                        let daemons: Vec<String> = self
                            .jobs
                            .values()
                            .filter(|e| e.spec.daemon || e.life.state == JobState::Backoff)
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
                                run.signal(protocol::Signal::Kill);
                            }
                        }
                    }
                }
                answer(encode(&json!({})))
            }
            Request::Logs(_) | Request::Subscribe | Request::Reload => answer(Err(RpcError::new(
                code::INTERNAL_ERROR,
                "request routed to the wrong handler",
            ))),
        }
    }

    fn log_source(&self, name: &str, stream: Stream) -> Result<PathBuf, RpcError> {
        let entry = self
            .jobs
            .get(name)
            .ok_or_else(|| RpcError::no_such_job(vec![name.to_owned()]))?;
        let output = match stream {
            Stream::Stdout => &entry.spec.stdout,
            Stream::Stderr => &entry.spec.stderr,
        };
        let s = stream.as_str();
        match output {
            Output::Log(path) => Ok(path.clone()),
            Output::Inherit => Err(RpcError::invalid_params(format!(
                "job {name:?} does not capture its {s}: it goes to supervisord's own stdout ({s} = \"inherit\")"
            ))),
            Output::Null => Err(RpcError::invalid_params(format!(
                "job {name:?} does not capture its {s}: it is discarded ({s} = \"null\")"
            ))),
            Output::File(path) => Err(RpcError::invalid_params(format!(
                "job {name:?} does not capture its {s}: it goes to the file {}",
                path.display()
            ))),
        }
    }

    fn reload(&mut self, config: Result<Config, ConfigError>) -> Result<Answer, RpcError> {
        let new = config.map_err(|e| {
            RpcError::new(code::INVALID_JOB_FILE, e.to_string()).with_data(e.position())
        })?;
        if self.phase != Phase::Serving {
            return Err(RpcError::shutting_down());
        }
        let mut warnings = Vec::new();
        if new.socket != self.config.socket {
            warnings.push(
                "[supervisor] socket changed: it applies when supervisord restarts".to_owned(),
            );
        }
        if new.exit_when_done != self.config.exit_when_done {
            warnings.push(
                "[supervisor] exit_when_done changed: it applies when supervisord restarts"
                    .to_owned(),
            );
        }
        let (mut added, mut changed, mut unchanged, mut removed) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let wanted: HashSet<&str> = new.jobs.iter().map(|j| j.name.as_str()).collect();
        for (name, e) in &self.jobs {
            if !e.dynamic && !wanted.contains(name.as_str()) {
                removed.push(name.clone());
            }
        }
        for spec in &new.jobs {
            let name = spec.name.clone();
            match self.jobs.get_mut(&name) {
                None => {
                    let autostart = spec.autostart;
                    self.jobs
                        .insert(name.clone(), Entry::new(spec.clone(), false));
                    if autostart {
                        self.feed(&name, Input::Start);
                    }
                    added.push(name);
                }
                Some(e) if *e.spec == *spec && !e.dynamic => {
                    // In the file, so kept even if a `remove` of it is still stopping it.
                    e.removing = false;
                    unchanged.push(name);
                }
                Some(e) => {
                    e.dynamic = false;
                    e.removing = false;
                    let new_spec = Arc::new(spec.clone());
                    match e.life.state {
                        // The run in progress is stopped the way it was started (its
                        // stop signal, stop timeout and kill_group); the new spec applies
                        // from the next spawn on.
                        JobState::Starting | JobState::Running => {
                            self.feed(&name, Input::Restart);
                            if let Some(e) = self.jobs.get_mut(&name) {
                                e.spec = new_spec;
                            }
                        }
                        JobState::Stopping | JobState::Backoff => {
                            e.spec = new_spec;
                            self.feed(&name, Input::Restart);
                        }
                        // Settled jobs keep their state and take the new spec on their
                        // next start.
                        JobState::Stopped | JobState::Exited | JobState::Fatal => {
                            e.spec = new_spec;
                        }
                    }
                    changed.push(name);
                }
            }
        }
        for name in &removed {
            if let Some(e) = self.jobs.get_mut(name) {
                e.removing = true;
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
        tracing::info!(
            added = added.len(),
            removed = removed.len(),
            changed = changed.len(),
            unchanged = unchanged.len(),
            "job file reloaded"
        );
        self.config = new;
        encode(&json!({
            "added": added,
            "removed": removed,
            "changed": changed,
            "unchanged": unchanged,
            "warnings": warnings,
        }))
    }

    // ---- selection and status ------------------------------------------------------------

    /// Like [`select`](Self::select), but an empty selection is an error.
    fn select_some(&self, sel: &Selection, waiting: bool) -> Result<Vec<String>, RpcError> {
        if sel.is_empty() {
            return Err(RpcError::invalid_params(
                "select jobs with \"names\", \"group\" or \"all\": true",
            ));
        }
        self.select(sel, waiting)
    }

    /// The jobs a selection names, in table order. Unknown names are an error (1001) and
    /// nothing is done. `waiting`: `group` and `all` leave out daemon jobs.
    fn select(&self, sel: &Selection, waiting: bool) -> Result<Vec<String>, RpcError> {
        let mut chosen: HashSet<&str> = HashSet::new();
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
                return Err(
                    RpcError::new(code::NO_SUCH_JOB, format!("no such group: {group}"))
                        .with_data(json!({ "names": [], "group": group })),
                );
            }
            chosen.extend(
                self.jobs
                    .values()
                    .filter(|e| &e.spec.group == group && !(waiting && e.spec.daemon))
                    .map(|e| e.spec.name.as_str()),
            );
        }
        if sel.all == Some(true) {
            chosen.extend(
                self.jobs
                    .values()
                    .filter(|e| !(waiting && e.spec.daemon))
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

    fn all_jobs(&self) -> Vec<Job> {
        self.jobs.values().map(job_status).collect()
    }

    fn jobs_named(&self, names: &[String]) -> Vec<Job> {
        names
            .iter()
            .filter_map(|n| self.jobs.get(n))
            .map(job_status)
            .collect()
    }
}

fn job_status(e: &Entry) -> Job {
    let l = &e.life;
    let alive = l.state.is_alive();
    Job {
        name: e.spec.name.clone(),
        group: e.spec.group.clone(),
        state: l.state,
        alive,
        pid: l.pid,
        exitcode: l.exitcode,
        signal: l.exitcode.and_then(signal_name),
        success: l.success,
        daemon: e.spec.daemon,
        restarts: l.restarts,
        started_at: l.started_at.map(rfc3339),
        ended_at: l.ended_at.map(rfc3339),
        uptime_ms: l
            .started_at
            .filter(|_| alive)
            .and_then(|t| t.elapsed().ok())
            .map(millis),
        spawn_error: l.spawn_error.clone(),
        output_error: e.output_error.clone(),
    }
}

fn batch_line(spec: &JobSpec, t: &Transition, entry: Option<&Entry>) -> String {
    let what = match (t.to, t.exitcode) {
        (JobState::Fatal, _) => match entry.and_then(|e| e.life.spawn_error.as_deref()) {
            Some(err) => format!("fatal: {err}"),
            None => format!(
                "fatal after {} failed starts{}",
                entry.map_or(0, |e| e.life.failures),
                t.exitcode
                    .map(|c| format!(" ({})", describe_exit(c)))
                    .unwrap_or_default()
            ),
        },
        (state, Some(code)) if spec.daemon => format!("{state}, {}", describe_exit(code)),
        (state, Some(code)) => {
            let verdict = if spec.is_success(code) {
                "success"
            } else {
                "failure"
            };
            format!("{state}, {} ({verdict})", describe_exit(code))
        }
        (state, None) => state.to_string(),
    };
    let daemon = if spec.daemon { " [daemon]" } else { "" };
    format!("{}{daemon}: {what}", spec.name)
}

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::ShutdownParams;
    use tokio::time::Instant as VirtualInstant;

    fn supervisor(jobs: &str) -> (Supervisor, SupervisorHandle, crate::logs::LogWriter) {
        let file = std::env::temp_dir().join("supervisor-unit.toml");
        let config = crate::config::parse(&file, jobs).expect("a valid job file");
        let (logs, writer) = crate::logs::start().expect("the log writer");
        let (sup, handle) = Supervisor::new(config, false, logs, None, TaskTracker::new());
        (sup, handle, writer)
    }

    /// The backoff timer lives in the supervisor's loop: under a paused clock, restarts of
    /// a job that ends at once are `backoff` apart in (virtual) time, never a hot loop.
    #[tokio::test(start_paused = true)]
    async fn restarts_of_a_job_that_ends_at_once_wait_for_the_backoff_timer() {
        let (sup, handle, writer) = supervisor(
            r#"
[job.quick]
command = ["true"]
restart = "always"
start_secs = 0
backoff = "10s"
autostart = false
stdout = "null"
stderr = "null"
"#,
        );
        let run = tokio::spawn(sup.run());
        let (_, mut events) = handle.subscribe().await.expect("subscribe");
        handle
            .rpc(Request::Start(Selection::names(vec!["quick".into()])))
            .await
            .expect("start");
        let mut starts = Vec::new();
        while starts.len() < 4 {
            let e = events.recv().await.expect("an event");
            if e.to == JobState::Starting {
                starts.push(VirtualInstant::now());
            }
        }
        for pair in starts.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= Duration::from_secs(9) && gap <= Duration::from_secs(10),
                "restart {gap:?} after the last start"
            );
        }
        handle
            .rpc(Request::Shutdown(ShutdownParams { drain: None }))
            .await
            .expect("shutdown");
        let (code, _) = run.await.expect("the supervisor ends");
        assert_eq!(code, 0);
        drop(handle);
        writer.join();
    }
}
