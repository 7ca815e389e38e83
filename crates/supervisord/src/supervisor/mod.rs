//! The supervisor: the one owner of the process table.
//!
//! # Theory of operation
//!
//! A single task runs [`Supervisor::run`], a `select!` loop over four sources: commands
//! from connections (each with a `oneshot` for its reply), reports from child tasks
//! (exits, output errors), timers (start_secs, stop escalation, backoff) and SIGCHLD (to
//! reap adopted orphans). Every state change happens here, in one order, through
//! [`Lifecycle::step`], and each one publishes exactly one [`Event`] on a broadcast
//! channel. Requests that answer later (`wait`, `terminate`, `restart`, `remove`,
//! `reload`) park a waiter that is checked after every turn of the loop, so they never
//! block the loop or each other.
//!
//! The files of this module, by concern:
//! - `mod.rs` (here): the table, the loop, and the edge of the state machine (feeding
//!   inputs, carrying out effects: spawn, signal, timers; publishing events).
//! - `requests.rs`: one function per protocol method the actor answers, and the
//!   [`Route`] that sends streaming requests elsewhere before they reach the actor.
//! - `reload.rs`: a pure plan of what a new job file changes, then its application.
//! - `waiters.rs`: what happens after every turn: answering waiters, forgetting removed
//!   jobs, ending batch mode or a drain.
//! - `status.rs`: the table as the protocol's `Job`, and batch mode's lines.
//! - `history.rs`: runs' start and end records for the run history, answers held until
//!   a run's end is on disk, each job's last run restored at start, `history`.
//! - `cgroups.rs`: runs' cgroups after their leader ended (watched until empty; a
//!   stopped run ends only then).
//!
//! Channels: connections → supervisor is bounded (`mpsc`, awaited by the sender); child
//! tasks → supervisor is unbounded but holds at most a few messages per run; supervisor →
//! child tasks never waits (`try_send`). No two bounded channels form a cycle.

mod batch;
mod cgroups;
mod checks;
mod deps;
mod history;
mod reload;
mod requests;
mod status;
mod table;
mod waiters;

pub use batch::LastStarted;
pub use requests::{Call, Route};
pub use status::rfc3339;

use crate::cgroup::{Containment, RunCgroup, Tree, Watcher};
use crate::config::{Config, ConfigError, JobSpec, Output};
use crate::guard::Guard;
use crate::lifecycle::{Effect, Input, Lifecycle, TimerKind, Transition};
use crate::logs::LogHub;
use crate::os;
use crate::process::{self, DeathWatch, Report, Run, SpawnContext};
use cgroups::CgroupLeft;
use protocol::{code, signal_name, Event, HealthChange, Job, RpcError, Stream};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use table::Table;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::task::TaskTracker;
use tokio_util::time::DelayQueue;
use waiters::{Outcome, Waiter};

/// What `subscribe` streams, in the order it happened: state changes (`event`) and
/// changes of health (`health`). Boxed, so that the broadcast's ring of
/// [`EVENT_BACKLOG`] slots, allocated whole when the daemon starts, holds a pointer a
/// slot rather than a whole event (a 672 KiB ring, 192 KiB so).
#[derive(Debug, Clone)]
pub enum Published {
    /// A state change.
    State(Box<Event>),
    /// A change of a job's health.
    Health(Box<HealthChange>),
}

/// How many events a subscriber may fall behind before it skips.
const EVENT_BACKLOG: usize = 4096;
/// How many commands may queue for the supervisor.
const COMMAND_QUEUE: usize = 256;
/// How soon after a run ends its leader is reaped if its group is empty. Exits in a burst
/// share one pass over `/proc`.
const SWEEP_SOON: Duration = Duration::from_millis(100);
/// How often a group that outlived its leader is looked at again.
const SWEEP_AGAIN: Duration = Duration::from_secs(1);
/// How long after a SIGCHLD adopted orphans are looked for (and the guard checked). Not at
/// once: the SIGCHLD of a run's end comes with the end itself, and the look (a read of
/// `/proc/self/task/*/children` per thread, some 30 system calls) would otherwise run
/// before the run's `exited` event goes out. Waiting also makes a burst of exits one
/// look instead of one per signal. An orphan stays a zombie that much longer.
const REAP_AFTER: Duration = Duration::from_millis(10);

/// How long a shutdown runs quietly before naming the jobs it is still waiting for.
const STOP_HINT_AFTER: Duration = Duration::from_secs(1);

/// A request's result, already encoded as JSON text. The job table is written once,
/// straight from the table into the text that goes on the socket (no `serde_json::Value`
/// tree, no `Job` structs in between: see `status::job_list`), and the server puts the
/// envelope around it without parsing or copying it (one `writev` of the envelope's
/// head, this text and its end). Its buffer is kept for the next answer when dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer(String);

impl Answer {
    /// The JSON text.
    pub fn get(&self) -> &str {
        &self.0
    }

    /// Text this crate wrote itself and knows to be one JSON value.
    fn trusted(json: String) -> Answer {
        Answer(json)
    }
}

impl Drop for Answer {
    /// Its buffer is kept for the next `status` answer (see `status::spare`).
    fn drop(&mut self) {
        status::spare::give(std::mem::take(&mut self.0));
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Encode a result (one of the protocol crate's result types).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Answer, RpcError> {
    serde_json::to_string(value).map(Answer).map_err(|e| {
        RpcError::new(
            code::INTERNAL_ERROR,
            format!("cannot encode the answer: {e}"),
        )
    })
}

/// Where an answer goes.
pub type Reply = oneshot::Sender<Result<Answer, RpcError>>;

/// What connections (and signal handlers) ask of the supervisor.
pub enum Command {
    /// A request the actor answers (now or once its jobs reach a condition).
    Call {
        /// The request.
        call: Call,
        /// Where the answer goes.
        reply: Reply,
    },
    /// `subscribe`: a snapshot and the event stream from the same instant.
    Subscribe {
        /// Where the pair goes.
        reply: oneshot::Sender<(Vec<Job>, broadcast::Receiver<Published>)>,
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
    /// `status` with `usage`: the table, and the cgroup of each run in it, from the same
    /// instant (usage is measured by the caller, off the actor).
    Usage {
        /// The jobs.
        selection: protocol::Selection,
        /// The table's text and each contained run's cgroup by job name.
        reply: oneshot::Sender<Result<WithCgroups, RpcError>>,
    },
    /// Apply a freshly read job file (or refuse it); answered once applied.
    Reload {
        /// The file as read.
        config: Box<Result<Config, ConfigError>>,
        /// Where the answer goes.
        reply: Reply,
    },
}

/// A `status` answer, and the cgroup of each run in it by job name.
pub type WithCgroups = (Answer, Vec<(String, RunCgroup)>);

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

    /// Run a request the actor answers.
    pub async fn call(&self, call: Call) -> Result<Answer, RpcError> {
        self.ask(|reply| Command::Call { call, reply }).await?
    }

    /// Subscribe to events.
    pub async fn subscribe(&self) -> Result<(Vec<Job>, broadcast::Receiver<Published>), RpcError> {
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

    /// The table, and the cgroups of the runs in it, for `status` with `usage`.
    pub async fn usage(&self, selection: protocol::Selection) -> Result<WithCgroups, RpcError> {
        self.ask(|reply| Command::Usage { selection, reply })
            .await?
    }

    /// Apply a job file read from disk; answers once removed jobs are gone, changed ones
    /// restarted and added ones spawned.
    pub async fn reload(&self, config: Result<Config, ConfigError>) -> Result<Answer, RpcError> {
        self.ask(|reply| Command::Reload {
            config: Box::new(config),
            reply,
        })
        .await?
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

/// One job of the table.
struct Entry {
    spec: Arc<JobSpec>,
    life: Lifecycle,
    run: Option<Run>,
    output_error: Option<String>,
    /// Where the job came from: reload keeps jobs added over the socket.
    origin: Origin,
    /// Forget the job once it has stopped.
    removing: bool,
    /// Its ready and health checks.
    checks: checks::Checks,
    /// When its armed schedule runs it next.
    next_run_at: Option<SystemTime>,
    /// Moves whenever the schedule is armed or disarmed; schedule timers carry it.
    schedule_epoch: u64,
    /// A scheduled time came during a run with `overlap = "queue"`: run once it ends.
    queued_run: bool,
    /// Its place in its group's line while it waits for a slot.
    slot_ticket: Option<u64>,
    /// Its `status` text while it does not change (dropped by the table on every change).
    encoded: status::Encoded,
    /// Its cgroup from an earlier run, empty, for the next run to use again.
    spare_cgroup: Option<RunCgroup>,
}

/// Where a job came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The job file.
    File,
    /// `add` over the socket.
    Added,
}

impl Entry {
    fn new(spec: JobSpec, origin: Origin) -> Entry {
        Entry {
            spec: Arc::new(spec),
            life: Lifecycle::new(),
            run: None,
            output_error: None,
            origin,
            removing: false,
            checks: checks::Checks::default(),
            next_run_at: None,
            schedule_epoch: 0,
            queued_run: false,
            slot_ticket: None,
            encoded: status::Encoded::default(),
            spare_cgroup: None,
        }
    }
}

/// Which of the after-turn scans of the whole table may find something: set wherever a
/// job may come to need one, cleared by the scan that finds nothing. Each scan is
/// O(jobs) and a turn comes with every exit, so without them a burst of N runs ending
/// cost O(N²) (touching every entry four times a turn).
#[derive(Debug, Clone, Copy)]
struct Scans {
    /// A job may have a scheduled run queued (`queued_run`).
    queued: bool,
    /// A job may be `waiting`, or hold a place in its group's line.
    waiting: bool,
    /// A job may be being removed.
    removing: bool,
}

impl Default for Scans {
    /// Everything looked at once.
    fn default() -> Self {
        Scans {
            queued: true,
            waiting: true,
            removing: true,
        }
    }
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
    jobs: Table,
    commands: mpsc::Receiver<Command>,
    reports_tx: mpsc::UnboundedSender<Report>,
    reports: mpsc::UnboundedReceiver<Report>,
    new_timers: Vec<(TimerEntry, Duration)>,
    events: broadcast::Sender<Published>,
    waiters: Vec<Waiter>,
    logs: LogHub,
    guard: Option<Guard>,
    tracker: TaskTracker,
    next_run: u64,
    /// When a shutdown began, until the jobs still stopping have been named once.
    stop_hint: Option<Instant>,
    /// The socket being served (reload compares a job file's `socket` with it).
    serving: Option<PathBuf>,
    phase: Phase,
    batch: bool,
    /// Leaders that ended and are held unreaped (zombies), by job: each keeps its process
    /// group's id ours while members of the group may live on. Reaped by `sweep` once
    /// the group is empty, and only then forgotten.
    lingering: HashMap<u32, String>,
    /// When `sweep` runs next (while anything is held).
    next_sweep: Option<tokio::time::Instant>,
    /// When adopted orphans are looked for, after a SIGCHLD (see [`REAP_AFTER`]).
    reap_at: Option<tokio::time::Instant>,
    /// Whether this turn published an event (the loop lets subscribers send it first).
    published: bool,
    /// Whether some job's `depends_on` restarts it with its dependency (`restart = true`),
    /// worked out when first needed after each command (only a command adds a job or
    /// changes a spec). Most job files have none, and then a new run needs no scan of the
    /// whole table for dependents: starting 10,000 jobs did 10,000 such scans.
    restart_edges: Option<bool>,
    /// Lines for supervisord's stdout (batch mode), printed after the turn.
    prints: Vec<String>,
    exit_code: u8,
    /// A job with `on_exit = "shutdown"` that ended for good, and whether it succeeded:
    /// supervisord stops after this turn.
    ended_for_good: Option<(String, bool)>,
    started: Instant,
    /// Stops that go level by level, dependents first.
    stop_stages: Vec<deps::StopStages>,
    checks_tx: mpsc::UnboundedSender<checks::CheckReport>,
    checks_rx: mpsc::UnboundedReceiver<checks::CheckReport>,
    /// The run history (off unless [`Supervisor::with_history`]).
    runs: history::RunLog,
    /// The next place in a group's line (see `batch.rs`).
    next_ticket: u64,
    /// When a job's last run started, from before this daemon (for `catch_up`).
    last_started: LastStarted,
    /// Where runs' cgroups go, when runs are contained in cgroups.
    cgroups: Option<Tree>,
    /// The containment in force, in words (for `ping`).
    containment: String,
    /// Watches the cgroups in `cgroups_left` (made on first use).
    cgroup_watch: Option<Watcher>,
    /// Removes emptied runs' cgroups off the runtime.
    janitor: Option<crate::cgroup::Janitor>,
    /// Cgroups of runs whose leader ended while processes were left in them, until they
    /// empty: with the exit to report then (a stop: the run has ended only once its
    /// cgroup is empty), or none (the exit was reported; what is left goes at the job's
    /// next stop or at shutdown).
    cgroups_left: HashMap<RunCgroup, CgroupLeft>,
    /// A client asked for usage (`status --usage`, `metrics`): from then on runs in
    /// cgroups used again take the CPU counter's value at their start.
    usage_asked: bool,
    /// Which of the after-turn scans of the whole table may find something.
    scans: Scans,
}

impl Supervisor {
    /// A supervisor for `config` and the handle to reach it. `batch` is
    /// `--exit-when-done` (or the file's `exit_when_done`).
    pub fn new(
        mut config: Config,
        batch: bool,
        logs: LogHub,
        guard: Option<Guard>,
        tracker: TaskTracker,
    ) -> (Supervisor, SupervisorHandle) {
        let (tx, commands) = mpsc::channel(COMMAND_QUEUE);
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let (checks_tx, checks_rx) = mpsc::unbounded_channel();
        // The table owns the specs; the file is kept without them (a second copy of every
        // spec was most of a KiB a job).
        let jobs = std::mem::take(&mut config.jobs)
            .into_iter()
            .map(|spec| (spec.name.clone(), Entry::new(spec, Origin::File)))
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
            stop_hint: None,
            serving: None,
            phase: Phase::Serving,
            batch,
            lingering: HashMap::new(),
            next_sweep: None,
            reap_at: None,
            published: false,
            restart_edges: None,
            prints: Vec::new(),
            exit_code: 0,
            ended_for_good: None,
            started: Instant::now(),
            stop_stages: Vec::new(),
            checks_tx,
            checks_rx,
            runs: history::RunLog::off(),
            next_ticket: 0,
            last_started: Box::new(|_| None),
            cgroups: None,
            containment: "process groups only".into(),
            cgroup_watch: None,
            janitor: None,
            cgroups_left: HashMap::new(),
            usage_asked: false,
            scans: Scans::default(),
        };
        (sup, SupervisorHandle { tx })
    }

    /// The socket actually served, which may be `--socket`'s rather than the job file's.
    pub fn serving(mut self, socket: PathBuf) -> Supervisor {
        self.serving = Some(socket);
        self
    }

    /// Where `catch_up` finds when a job's last run started (before this daemon).
    pub fn remembering(mut self, last_started: LastStarted) -> Supervisor {
        self.last_started = last_started;
        self
    }

    /// Contain runs as `containment` says (the guard is told about a cgroup subtree).
    pub fn contained(mut self, containment: &Containment) -> Supervisor {
        self.containment = containment.describe();
        self.cgroups = containment.tree().cloned();
        self.start_janitor();
        if let (Some(g), Some(t)) = (self.guard.as_mut(), &self.cgroups) {
            g.watch_tree(t.dir());
        }
        self
    }

    /// Start the autostart jobs and serve until shut down and every process is gone.
    /// Returns supervisord's exit code. Hands the guard back for the caller to finish.
    pub async fn run(mut self) -> (u8, Option<Guard>) {
        let autostart: Vec<String> = self
            .jobs
            .values()
            .filter(|e| e.spec.autostart && e.spec.schedule.is_none())
            .map(|e| e.spec.name.clone())
            .collect();
        for name in self
            .dependencies_to_start(&autostart)
            .into_iter()
            .chain(autostart)
        {
            self.feed(&name, Input::Start);
        }
        self.arm_schedules();
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
            if self.lingering.is_empty() {
                self.next_sweep = None;
            } else if self.next_sweep.is_none() {
                self.next_sweep = Some(tokio::time::Instant::now() + SWEEP_SOON);
            }
            let next_sweep = self.next_sweep;
            for (entry, after) in self.new_timers.drain(..) {
                timers.insert(entry, after);
            }
            for line in std::mem::take(&mut self.prints) {
                self.logs.print(line).await;
            }
            if self.phase == Phase::Stopping
                && self.jobs.values().all(|e| e.run.is_none())
                && self.cgroups_left.values().all(|c| c.exit.is_none())
            {
                break;
            }
            if std::mem::take(&mut self.published) && self.events.receiver_count() > 0 {
                // One runtime thread runs everything: without this the loop would take its
                // next ready input (a SIGCHLD, a timer) and hand the history its records
                // before the subscribers' connections could write this turn's events.
                tokio::task::yield_now().await;
            }
            self.runs.flush();
            let reap_at = self.reap_at;
            let cgroup_watch = self.cgroup_watch.as_mut().filter(|w| !w.is_empty());
            let stop_hint = self.stop_hint.map(|began| began + STOP_HINT_AFTER);
            tokio::select! {
                () = async {
                    match stop_hint {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                } => self.name_stubborn_jobs(),
                Some(cmd) = self.commands.recv() => self.command(cmd),
                Some(report) = self.reports.recv() => self.report(report),
                Some(found) = self.checks_rx.recv() => self.check_report(found),
                Some(note) = self.runs.notes.recv() => self.history_note(note),
                Some(expired) = std::future::poll_fn(|cx| timers.poll_expired(cx)) => {
                    self.timer(expired.into_inner());
                }
                Some(()) = async {
                    match sigchld.as_mut() {
                        Some(s) => s.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.reap_at.get_or_insert_with(|| tokio::time::Instant::now() + REAP_AFTER);
                }
                () = async {
                    match reap_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.reap();
                }
                () = async {
                    match next_sweep {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => self.sweep(),
                emptied = async {
                    match cgroup_watch {
                        Some(w) => w.emptied().await,
                        None => std::future::pending().await,
                    }
                } => self.cgroups_emptied(emptied),
            }
        }
        self.end_cgroups().await;
        // Whatever is left of lingering groups goes with the daemon: killed while their
        // leaders are still held, then the leaders are reaped.
        for pgid in self.lingering.keys() {
            os::kill_group(*pgid);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while !self.lingering.is_empty() && tokio::time::Instant::now() < deadline {
            self.reap();
            let held: HashSet<u32> = self.lingering.keys().copied().collect();
            if os::groups_with_members(&held).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for pgid in std::mem::take(&mut self.lingering).into_keys() {
            self.forget_group(pgid);
            os::reap(pgid);
        }
        self.reap();
        for w in self.waiters.drain(..) {
            w.refuse(RpcError::shutting_down());
        }
        (self.exit_code, self.guard.take())
    }

    // ---- inputs ------------------------------------------------------------------------

    fn command(&mut self, cmd: Command) {
        // Only a command adds jobs or changes their specs.
        self.restart_edges = None;
        match cmd {
            Command::Call {
                call: Call::History(params),
                reply,
            } => self.history(params, reply),
            Command::Call { call, reply } => {
                let outcome = self.call(call);
                self.settle(outcome, reply);
            }
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
            Command::Usage { selection, reply } => {
                self.usage_asked = true;
                let answer = self.status_text(&selection).map(|text| {
                    let cgroups = self
                        .jobs
                        .values()
                        .filter_map(|e| {
                            let cg = e.run.as_ref()?.cgroup.as_ref()?;
                            Some((e.spec.name.clone(), cg.clone()))
                        })
                        .collect();
                    (text, cgroups)
                });
                let _ = reply.send(answer);
            }
            Command::Reload { config, reply } => {
                let outcome = self.reload(*config);
                self.settle(outcome, reply);
            }
        }
    }

    /// Answer now, or park a waiter that answers later.
    fn settle(&mut self, outcome: Outcome, reply: Reply) {
        match outcome {
            Outcome::Now(result) => {
                let _ = reply.send(result);
            }
            Outcome::Later(pending) => self.park(pending, reply),
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
                let stopping = entry.life.state() == protocol::JobState::Stopping;
                let ends_all = stopping && finished.kill_group;
                // Whether the run's cgroup still holds processes.
                let populated = finished.cgroup.as_ref().map(RunCgroup::populated);
                if ends_all {
                    // A stop ends the whole group: members that outlived the leader
                    // already had the stop signal. The leader is an unreaped zombie, so
                    // the group is still ours. An empty cgroup is not killed: it stays
                    // fit for the job's next run.
                    match &finished.cgroup {
                        Some(cg) if populated == Some(true) => cg.kill(),
                        Some(_) => {}
                        None => os::kill_group(pgid),
                    }
                }
                // Held until `sweep` finds its group empty.
                self.lingering.insert(pgid, name.clone());
                // Where the memory controller is on, the run's cgroup counts OOM kills.
                let oom = finished.cgroup.as_ref().is_some_and(RunCgroup::oom_killed);
                if let Some(cg) = finished.cgroup {
                    let exit = ends_all.then_some(exitcode);
                    if self.keep_cgroup(cg, &name, populated == Some(true), exit) {
                        // The exit is reported once the cgroup is empty.
                        return;
                    }
                }
                let input = if oom {
                    Input::OomKilled(exitcode)
                } else {
                    Input::Exited(exitcode)
                };
                self.feed(&name, input);
            }
            Report::OutputError { name, error } => {
                if let Some(entry) = self.jobs.get_mut(&name) {
                    entry.output_error = Some(error.to_string());
                }
            }
        }
    }

    fn timer(&mut self, t: TimerEntry) {
        if t.kind == TimerKind::Schedule {
            if self.jobs.get(&t.name).map(|e| e.schedule_epoch) == Some(t.epoch) {
                self.schedule_fired(&t.name);
            }
            return;
        }
        let current = self.jobs.get(&t.name).map(|e| e.life.epoch());
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

    /// After a SIGCHLD (by [`REAP_AFTER`]) and on each sweep: reap adopted orphans and
    /// replace a guard that died. Says whether supervisord had any child besides its runs,
    /// held leaders, guard and exec checks.
    fn reap(&mut self) -> bool {
        self.reap_at = None;
        self.mend_guard();
        // Exec checks are children too but not counted here: while one runs, the set is
        // built (an over-count could hide an orphan, an under-count only costs time).
        let runs = self.jobs.values().filter(|e| e.run.is_some()).count();
        let expected = runs + self.lingering.len() + usize::from(self.guard.is_some());
        let (reaped, strays) = os::reap_orphans(expected, || {
            let mut ours: HashSet<u32> = self
                .jobs
                .values()
                .filter_map(|e| e.run.as_ref().map(|r| r.pid))
                .collect();
            if let Some(g) = &self.guard {
                ours.insert(g.pid());
            }
            // Held leaders are not orphans: reaping one would free its group's id.
            ours.extend(self.lingering.keys().copied());
            // Nor are exec checks: the runtime waits for them.
            ours.extend(crate::checks::running_pids());
            ours
        });
        if reaped > 0 {
            tracing::debug!(reaped, "reaped adopted orphans");
        }
        strays
    }

    /// Reap held leaders whose process group has emptied — however it emptied: members
    /// reaped by us, or by a parent of theirs that moved out of the group, which sends us
    /// nothing. The guard is told first, and a leader is reaped only once that message is
    /// in the guard's pipe, so the guard never holds a group id that may be reused.
    fn sweep(&mut self) {
        let strays = self.reap();
        let held: HashSet<u32> = self.lingering.keys().copied().collect();
        // A process left in a held group outlived its leader, so it (or an ancestor of
        // it below the leader) was reparented to supervisord: with no such child, every
        // held group is empty and `/proc` need not be read.
        let busy = if strays {
            os::groups_with_members(&held)
        } else {
            HashSet::new()
        };
        let empty: Vec<u32> = held.difference(&busy).copied().collect();
        for pgid in &empty {
            self.forget_group(*pgid);
        }
        let told = self.guard.as_mut().is_none_or(|g| {
            g.flush();
            g.is_flushed()
        });
        if told {
            for pgid in empty {
                os::reap(pgid);
                self.lingering.remove(&pgid);
            }
        }
        self.next_sweep =
            (!self.lingering.is_empty()).then(|| tokio::time::Instant::now() + SWEEP_AGAIN);
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
                if let Some(t) = &self.cgroups {
                    g.watch_tree(t.dir());
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
        let spawn_failed = matches!(input, Input::SpawnFailed(_));
        let step = entry.life.step(&spec, input, SystemTime::now());
        for t in &step.transitions {
            self.publish(&spec, t);
        }
        self.record_runs(name, &spec, &step.transitions, spawn_failed);
        let new_run = step
            .transitions
            .iter()
            .any(|t| t.to == protocol::JobState::Starting);
        for effect in step.effects {
            match effect {
                Effect::Spawn => self.spawn(name),
                Effect::Signal(sig) => {
                    if let Some(run) = self.jobs.get(name).and_then(|e| e.run.as_ref()) {
                        run.order(sig);
                    }
                }
                Effect::Timer(kind, after) => {
                    if let Some(e) = self.jobs.get(name) {
                        self.new_timers.push((
                            TimerEntry {
                                name: name.to_owned(),
                                epoch: e.life.epoch(),
                                kind,
                            },
                            after,
                        ));
                    }
                }
            }
        }
        if !step.transitions.is_empty() {
            self.follow_checks(name);
        }
        if new_run {
            self.restart_dependents(name);
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
        let Some(spec) = self.jobs.get(name).map(|e| e.spec.clone()) else {
            return;
        };
        if let Some(held) = self.held(&spec) {
            // Its dependencies have not met their conditions: it waits (and settles as
            // `fatal` after this turn if one never can).
            self.feed(name, Input::Hold(held.unwrap_or_else(|why| why)));
            return;
        }
        if let Some(reason) = self.no_slot(name, &spec) {
            // Its group's slots are taken: it waits in line.
            self.take_ticket(name);
            self.feed(name, Input::Hold(reason));
            return;
        }
        self.mend_guard();
        let run_id = self.next_run;
        self.next_run += 1;
        let notify_env = self.open_notify(name, run_id);
        let line_watch = self.open_line_watch(name);
        let spare = self.jobs.get_mut(name).and_then(|e| e.spare_cgroup.take());
        let Some(entry) = self.jobs.get(name) else {
            return;
        };
        let ctx = SpawnContext {
            logs: &self.logs,
            reports: &self.reports_tx,
            tracker: &self.tracker,
            death: if self.guard.is_some() {
                DeathWatch::Guard
            } else {
                DeathWatch::ParentDeathSignal
            },
            line_watch: line_watch.as_ref(),
            cgroups: self.cgroups.as_ref(),
            measure: self.usage_asked,
        };
        let spec = match notify_env {
            Some((k, v)) => {
                let mut s = (*entry.spec).clone();
                s.env.insert(k, v);
                Arc::new(s)
            }
            None => entry.spec.clone(),
        };
        match process::spawn(&spec, run_id, &ctx, spare) {
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
            Err(error) => {
                tracing::warn!(job = name, error = %error, "spawn failed");
                self.feed(name, Input::SpawnFailed(error.to_string()));
            }
        }
    }

    fn publish(&mut self, spec: &JobSpec, t: &Transition) {
        self.published = true;
        if t.to == protocol::JobState::Waiting {
            self.scans.waiting = true;
        }
        let signal = t.exitcode.and_then(signal_name);
        tracing::info!(
            job = %spec.name,
            group = %spec.group,
            from = %t.from,
            to = %t.to,
            pid = t.pid,
            exitcode = t.exitcode,
            signal = signal.as_deref(),
            cause = t.cause.map(|c| c.as_str()),
            "job {} {} -> {}", spec.name, t.from, t.to
        );
        if self.batch && t.to.is_settled() {
            self.prints
                .push(status::batch_line(spec, t, self.jobs.get(&spec.name)));
        }
        if spec.on_exit == crate::config::OnExit::Shutdown
            && matches!(t.to, protocol::JobState::Exited | protocol::JobState::Fatal)
            && self.ended_for_good.is_none()
        {
            let ok = t.to == protocol::JobState::Exited
                && t.exitcode.is_some_and(|c| spec.is_success(c));
            self.ended_for_good = Some((spec.name.clone(), ok));
        }
        let _ = self.events.send(Published::State(Box::new(Event {
            name: spec.name.clone(),
            group: spec.group.clone(),
            from: t.from,
            to: t.to,
            pid: t.pid,
            exitcode: t.exitcode,
            signal,
            cause: t.cause,
            reason: t.reason.clone(),
            at: rfc3339(SystemTime::now()),
        })));
    }

    fn begin_stop(&mut self) {
        self.phase = Phase::Stopping;
        self.stop_hint = Some(Instant::now());
        // Requests still waiting are answered now, not after every job's stop timeout:
        // what they waited for will not happen, the daemon is going away.
        for w in self.waiters.drain(..) {
            w.refuse(RpcError::shutting_down());
        }
        let names: Vec<String> = self.jobs.keys().cloned().collect();
        self.stop_in_order(names, None);
    }

    /// A shutdown that is still waiting after [`STOP_HINT_AFTER`] says, once, for whom and
    /// how long at most, and how not to wait.
    fn name_stubborn_jobs(&mut self) {
        let Some(began) = self.stop_hint.take() else {
            return;
        };
        let stubborn: Vec<(&str, Duration)> = self
            .jobs
            .values()
            .filter(|e| e.life.state() == protocol::JobState::Stopping)
            .map(|e| {
                let left = e.spec.stop_timeout.saturating_sub(began.elapsed());
                (e.spec.name.as_str(), left)
            })
            .filter(|(_, left)| !left.is_zero())
            .collect();
        let Some(longest) = stubborn.iter().map(|(_, left)| *left).max() else {
            return;
        };
        let names: Vec<&str> = stubborn.iter().map(|(n, _)| *n).collect();
        tracing::info!(
            "waiting up to {}s for {}; ^C again to kill now",
            longest.as_secs_f64().ceil(),
            names.join(", ")
        );
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
        for (cg, left) in &self.cgroups_left {
            if left.job == name {
                cg.kill();
            }
        }
        self.feed(name, Input::Stop(sig));
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
            Output::Stdout => Err(RpcError::invalid_params(format!(
                "job {name:?} merges its stderr into its stdout (stderr = \"stdout\"): read its stdout"
            ))),
        }
    }

    fn all_jobs(&self) -> Vec<Job> {
        self.jobs.values().map(status::job_status).collect()
    }

    fn jobs_named(&self, names: &[String]) -> Vec<Job> {
        names
            .iter()
            .filter_map(|n| self.jobs.get(n))
            .map(status::job_status)
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod harness {
    //! An in-process supervisor for unit tests: real processes, no socket.
    use super::*;

    pub struct Harness {
        pub run: tokio::task::JoinHandle<(u8, Option<Guard>)>,
        pub handle: SupervisorHandle,
        writer: Option<crate::logs::LogWriter>,
    }

    /// A supervisor of `jobs` (a job file's text), running on the test's runtime.
    pub fn start(jobs: &str) -> Harness {
        let (sup, handle, writer) = build(jobs, false);
        Harness {
            run: tokio::spawn(sup.run()),
            handle,
            writer: Some(writer),
        }
    }

    /// The supervisor before it runs (for tests that look inside).
    pub fn build(
        jobs: &str,
        batch: bool,
    ) -> (Supervisor, SupervisorHandle, crate::logs::LogWriter) {
        let file = std::env::temp_dir().join("supervisor-unit.toml");
        let config = crate::config::parse(&file, jobs).expect("a valid job file");
        let (logs, writer) = crate::logs::start().expect("the log writer");
        let (sup, handle) = Supervisor::new(config, batch, logs, None, TaskTracker::new());
        (sup, handle, writer)
    }

    impl Harness {
        /// A harness around a supervisor built with [`build`] and already running.
        pub fn running(
            run: tokio::task::JoinHandle<(u8, Option<Guard>)>,
            handle: SupervisorHandle,
            writer: crate::logs::LogWriter,
        ) -> Harness {
            Harness {
                run,
                handle,
                writer: Some(writer),
            }
        }

        /// Shut down, and return supervisord's exit code.
        pub async fn finish(mut self) -> u8 {
            let _ = self
                .handle
                .call(Call::Shutdown(protocol::ShutdownParams { drain: None }))
                .await;
            let (code, _) = (&mut self.run).await.expect("the supervisor ends");
            drop(self.handle);
            if let Some(w) = self.writer.take() {
                w.join();
            }
            code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{JobState, Selection};
    use tokio::time::Instant as VirtualInstant;

    /// The backoff timer lives in the supervisor's loop: under a paused clock, restarts of
    /// a job that ends at once are `backoff` apart in (virtual) time, never a hot loop.
    #[tokio::test(start_paused = true)]
    async fn restarts_of_a_job_that_ends_at_once_wait_for_the_backoff_timer() {
        let h = harness::start(
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
        let (_, mut events) = h.handle.subscribe().await.expect("subscribe");
        h.handle
            .call(Call::Start(Selection::names(vec!["quick".into()]).into()))
            .await
            .expect("start");
        let mut starts = Vec::new();
        while starts.len() < 4 {
            let Published::State(e) = events.recv().await.expect("an event") else {
                continue;
            };
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
        assert_eq!(h.finish().await, 0);
    }

    /// The broadcast allocates its whole ring of events when the daemon starts: a slot
    /// holds a pointer to an event, not the event.
    #[test]
    fn a_published_event_is_a_pointer_in_the_ring() {
        assert!(std::mem::size_of::<Published>() <= 16);
    }
}
