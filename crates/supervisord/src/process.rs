//! One child's life: spawn it as a process-group leader, carry signals to it, reap it, and
//! report its exit once its output is on disk.
//!
//! The supervisor decides; the task here carries out. Signals go through the task because
//! only the task knows whether the child has been reaped: signalling a reaped pid could hit
//! an unrelated process that reused the number.

use crate::cgroup::{RunCgroup, Tree};
use crate::config::{JobSpec, Output};
use crate::logs::{LineWatch, LogError, LogHub, OutputPipe, SinkKey, Target};
use crate::os;
use protocol::{Signal, Stream};
use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::pin::Pin;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::signal::unix::{signal, Signal as SignalStream, SignalKind};
use tokio::sync::{mpsc, Notify};
use tokio_util::task::TaskTracker;

/// How long an exit report waits for the job's output pipes to reach end of file. A
/// grandchild that keeps the pipe open does not hold the report back longer than this;
/// its output is still captured afterwards.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// The most runs watched through a pidfd at once (and at most an eighth of the open-files
/// limit). Past it a run's end is found on SIGCHLD instead, which costs a `waitid` per
/// such run on every SIGCHLD, but no descriptor.
///
/// Why not a pidfd for every run: each spawn copies the daemon's whole descriptor table
/// into the child and closes it again at `exec`, so a descriptor per running job makes
/// starting N jobs cost O(N²) in the kernel (10,000 jobs: 11 s, nearly all of it in
/// `dup_fd` and `do_close_on_exec`), and 10,000 pidfds beside 10,000 pipes do not fit
/// under a 20,000 limit. Signalling stays safe either way: a run's leader is never reaped
/// while it can be signalled (see `watch`), a pidfd or not.
const MAX_PIDFDS: usize = 1024;

/// Runs watched through a pidfd right now.
static PIDFDS: AtomicUsize = AtomicUsize::new(0);

/// How many runs may hold a pidfd: [`MAX_PIDFDS`], or an eighth of the open-files limit.
fn pidfd_budget() -> usize {
    static BUDGET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(soft, _)| soft);
        usize::try_from(soft / 8)
            .unwrap_or(MAX_PIDFDS)
            .min(MAX_PIDFDS)
    })
}

/// A pidfd counted against [`pidfd_budget`]; gives its place back when dropped.
struct Watched(AsyncFd<OwnedFd>);

impl Watched {
    /// A pidfd for `pid` while the budget has room.
    fn open(pid: u32) -> Option<Watched> {
        if PIDFDS.fetch_add(1, Ordering::Relaxed) >= pidfd_budget() {
            PIDFDS.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        match os::pidfd_watch(pid) {
            Some(fd) => Some(Watched(fd)),
            None => {
                PIDFDS.fetch_sub(1, Ordering::Relaxed);
                None
            }
        }
    }
}

impl Watched {
    /// Whether a new run may be watched through a pidfd (so its spawn should ask for one).
    fn room() -> bool {
        PIDFDS.load(Ordering::Relaxed) < pidfd_budget()
    }

    /// Watch the run through `pidfd` (the one its spawn gave) while the budget has room,
    /// else through a new pidfd while the budget has room; `None` past the budget.
    fn adopt(pid: u32, pidfd: Option<OwnedFd>) -> Option<Watched> {
        let Some(fd) = pidfd else {
            return Watched::open(pid);
        };
        if PIDFDS.fetch_add(1, Ordering::Relaxed) >= pidfd_budget() {
            PIDFDS.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        match os::pidfd_register(fd) {
            Some(fd) => Some(Watched(fd)),
            None => {
                PIDFDS.fetch_sub(1, Ordering::Relaxed);
                None
            }
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        PIDFDS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How the end of a run is noticed.
enum Exit {
    /// Its pidfd turns readable.
    Pidfd(Watched),
    /// A SIGCHLD arrives (then `waitid` tells whether it was this run's).
    Sigchld(SignalStream),
    /// Neither is available: look every 50 ms.
    Poll,
}

/// A read this large shows a chatty job: its pipe is grown to 1 MiB then, not at spawn,
/// since a 1 MiB pipe holds a 10 KiB ring of buffer slots in the kernel even while empty.
const GROW_PIPE_AFTER: usize = 16 * 1024;

/// A job's output pipe that grows once its job turns out to be chatty.
struct GrowingPipe<R> {
    inner: R,
    grown: bool,
}

impl<R: AsyncRead + AsFd + Unpin> AsyncRead for GrowingPipe<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if !self.grown
            && matches!(polled, Poll::Ready(Ok(())))
            && buf.filled().len() - before >= GROW_PIPE_AFTER
        {
            self.grown = true;
            os::enlarge_pipe(self.inner.as_fd());
        }
        polled
    }
}

impl OutputPipe for GrowingPipe<tokio::net::unix::pipe::Receiver> {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.inner.poll_read_ready(cx)
    }
}

fn growing(rx: tokio::net::unix::pipe::Receiver) -> Box<dyn OutputPipe> {
    Box::new(GrowingPipe {
        inner: rx,
        grown: false,
    })
}

/// What a child task reports to the supervisor.
#[derive(Debug)]
pub enum Report {
    /// The run ended. Its leader is left unreaped (a zombie), which keeps its process
    /// group ours: the supervisor reaps it once the group is empty (or killed).
    Exited {
        /// The job.
        name: String,
        /// Which run.
        run: u64,
        /// Exit status, or `-signal`.
        exitcode: i32,
    },
    /// Output capture for the job failed; the job runs on.
    OutputError {
        /// The job.
        name: String,
        /// What failed.
        error: LogError,
    },
}

/// The supervisor's handle on a live run.
#[derive(Debug)]
pub struct Run {
    /// Unique across the daemon's life.
    pub id: u64,
    /// The process (and process-group) id.
    pub pid: u32,
    /// Whether signals go to the whole process group (the spec's `kill_group` at spawn).
    pub kill_group: bool,
    /// The run's own cgroup, when supervisord contains runs in cgroups.
    pub cgroup: Option<RunCgroup>,
    /// Signals for the run's task to send.
    mailbox: Arc<Mailbox>,
}

impl Run {
    /// Ask the child task to send a signal a client asked for. Never waits: the task
    /// drains its queue promptly, and a full queue already holds signals enough.
    pub fn signal(&self, sig: Signal) {
        if !self.mailbox.post(sig, false) {
            tracing::debug!(pid = self.pid, signal = %sig, "signal queue full or run ended");
        }
    }

    /// Send a signal the supervisor decided on (stop, escalation). Never dropped, and
    /// never behind a client's signals.
    pub fn order(&self, sig: Signal) {
        self.mailbox.post(sig, true);
    }
}

/// How many signals clients may queue for one run; more are dropped.
const CONTROL_BACKLOG: usize = 8;

/// The signals a run's task is to send: the supervisor's orders (the stop signal, the
/// stop_timeout SIGKILL, a shutdown: never dropped, and at most a few per run) go before
/// clients' (`kill`: at most [`CONTROL_BACKLOG`], dropped beyond).
///
/// One small shared block per run instead of a channel for each kind: a tokio channel
/// allocates its first block of slots up front (about half a KiB each), and a sleeping
/// job never receives a signal at all. The queues allocate only when used.
#[derive(Debug, Default)]
struct Mailbox {
    queued: std::sync::Mutex<Queued>,
    wake: Notify,
}

#[derive(Debug, Default)]
struct Queued {
    orders: VecDeque<Signal>,
    control: VecDeque<Signal>,
    /// The run's task has finished: nothing is sent any more.
    closed: bool,
}

impl Mailbox {
    fn queued(&self) -> std::sync::MutexGuard<'_, Queued> {
        // Nothing panics while holding it; if something did, the queues are still valid.
        self.queued.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue `sig` (an order, or a client's signal); false if it was dropped.
    fn post(&self, sig: Signal, order: bool) -> bool {
        {
            let mut q = self.queued();
            if q.closed {
                return false;
            }
            if order {
                q.orders.push_back(sig);
            } else if q.control.len() < CONTROL_BACKLOG {
                q.control.push_back(sig);
            } else {
                return false;
            }
        }
        self.wake.notify_one();
        true
    }

    fn next_order(&self) -> Option<Signal> {
        self.queued().orders.pop_front()
    }

    fn next_control(&self) -> Option<Signal> {
        self.queued().control.pop_front()
    }

    /// The run's task is done: later signals are dropped, and what is queued goes.
    fn close(&self) {
        let mut q = self.queued();
        q.closed = true;
        q.orders = VecDeque::new();
        q.control = VecDeque::new();
    }
}

/// Exit status as the contract numbers it: the status, or `-N` for death by signal N.
pub fn exitcode(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => -sig,
        (None, None) => -1,
    }
}

/// Why a job could not be spawned; the message goes into the job's `spawn_error`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpawnError {
    /// Its `stdout`/`stderr` file could not be opened.
    #[error("cannot open output file {path}: {reason}")]
    OutputFile {
        /// The file.
        path: String,
        /// The OS's words.
        reason: String,
    },
    /// The working folder does not exist.
    #[error("working folder {0} does not exist")]
    NoCwd(String),
    /// The program is not there.
    #[error("cannot run {0:?}: no such program")]
    NoProgram(String),
    /// The program is there but may not be run.
    #[error("cannot run {0:?}: permission denied (not executable?)")]
    NotExecutable(String),
    /// Any other reason the OS gave.
    #[error("cannot run {program:?}: {reason}")]
    Other {
        /// The program.
        program: String,
        /// The OS's words.
        reason: String,
    },
    /// The child was gone before its pid could be read.
    #[error("the process ended before its pid could be read")]
    NoPid,
}

/// How a job is kept from outliving supervisord.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathWatch {
    /// The guard process is told about the job's process group and kills it if
    /// supervisord dies. Then the child is not also given `PR_SET_PDEATHSIG`: that needs
    /// code run between fork and exec, which makes std fork (copying the daemon's page
    /// tables, then copy-on-write faults in the daemon) instead of `posix_spawn`'s vfork.
    /// With 1000 jobs that was most of the daemon's time in a burst of starts, and
    /// starting 10,000 jobs took 66 s instead of 12 s.
    Guard,
    /// No guard runs: the child gets `PR_SET_PDEATHSIG` instead.
    ParentDeathSignal,
}

/// What every spawn needs from the supervisor.
pub struct SpawnContext<'a> {
    /// Where captured output goes.
    pub logs: &'a LogHub,
    /// Where the run's task reports.
    pub reports: &'a mpsc::UnboundedSender<Report>,
    /// Owns the run's tasks.
    pub tracker: &'a TaskTracker,
    /// How the job dies with supervisord.
    pub death: DeathWatch,
    /// A pending `log` ready check, matched on both captured streams.
    pub line_watch: Option<&'a LineWatch>,
    /// Where runs' cgroups go, when runs are contained in cgroups.
    pub cgroups: Option<&'a Tree>,
    /// Usage has been asked for: a run in its job's cgroup used again takes the CPU
    /// counter's value at its start.
    pub measure: bool,
}

/// Spawn `spec` as a new process group and start its task. `spare`: the job's cgroup
/// from an earlier run, empty, for this one to use again.
pub fn spawn(
    spec: &JobSpec,
    run: u64,
    ctx: &SpawnContext<'_>,
    spare: Option<RunCgroup>,
) -> Result<Run, SpawnError> {
    let SpawnContext {
        logs,
        reports,
        tracker,
        death,
        line_watch,
        cgroups,
        measure,
    } = *ctx;
    let io = child_io(spec)?;
    let cgroup = match cgroups {
        Some(tree) => Some(
            tree.create(&spec.name, run, &spec.cgroup_limits, spare, measure)
                .map_err(|e| SpawnError::Other {
                    program: spec.command[0].clone(),
                    reason: format!("cannot create its cgroup: {e}"),
                })?,
        ),
        None => None,
    };
    let launched = launch(spec, &io, cgroup.as_ref(), death);
    let cgroup = cgroup.map(|(cg, _)| cg);
    let (pid, pidfd) = match launched {
        Ok(started) => started,
        Err(e) => {
            if let Some(cg) = &cgroup {
                cg.remove();
            }
            return Err(e);
        }
    };
    // The child's ends of its pipes: closed here, so the readers see end of file when the
    // job (and whatever inherited the pipes) is gone.
    let ChildIo {
        stdout_read,
        stderr_read,
        ..
    } = io;
    // Registered before the first look at the child, so its end cannot slip in between.
    let exit = match Watched::adopt(pid, pidfd) {
        Some(w) => Exit::Pidfd(w),
        None => signal(SignalKind::child()).map_or(Exit::Poll, Exit::Sigchld),
    };

    let stdout = stdout_read.and_then(async_pipe);
    let stderr = stderr_read.and_then(async_pipe);
    let mut readers = Vec::new();
    for (stream, output, pipe) in [
        (Stream::Stdout, &spec.stdout, stdout),
        (Stream::Stderr, &spec.stderr, stderr),
    ] {
        let Some(pipe) = pipe else { continue };
        let target = match output {
            Output::Log(path) => Target::File {
                path: path.clone(),
                max_bytes: spec.log_max_bytes,
                backups: spec.log_backups,
            },
            _ => Target::Stdout,
        };
        let key = SinkKey {
            name: spec.name.clone(),
            stream,
        };
        let (logs, reports, timestamps) = (logs.clone(), reports.clone(), spec.log_timestamps);
        let watch = line_watch.cloned();
        let opener = tracker.clone();
        readers.push(tracker.spawn(async move {
            // The sink is asked for first (the writer takes messages in order), but its
            // answer — which only matters when the file cannot be opened — is heard on a
            // task of its own: the exit of a run that wrote nothing is not held up while
            // the writer thread creates its log file.
            let opened = logs.open_sent(key.clone(), target, timestamps).await;
            let (name, problems) = (key.name.clone(), reports.clone());
            opener.spawn(async move {
                if let Err(error) = opened.await.unwrap_or(Err(LogError::Stopped)) {
                    let _ = problems.send(Report::OutputError { name, error });
                }
            });
            let name = key.name.clone();
            logs.capture(key, pipe, watch, |error| {
                let _ = reports.send(Report::OutputError {
                    name: name.clone(),
                    error,
                });
            })
            .await;
        }));
    }

    let mailbox = Arc::new(Mailbox::default());
    let inbox = Arc::clone(&mailbox);
    let name = spec.name.clone();
    let kill_group = spec.kill_group;
    let reports = reports.clone();
    let signals = Signals {
        pid,
        kill_group,
        cgroup: cgroup.clone(),
    };
    tracker.spawn(async move {
        let exitcode = watch(&signals, exit, &inbox).await;
        inbox.close();
        tracing::trace!(job = %name, pid, exitcode, "run ended; waiting for its output");
        // Output written just before the exit is in the file before the exit is known.
        let _ = tokio::time::timeout(OUTPUT_GRACE, async {
            for r in readers {
                let _ = r.await;
            }
        })
        .await;
        tracing::trace!(job = %name, pid, "output closed; reporting the exit");
        let _ = reports.send(Report::Exited {
            name,
            run,
            exitcode,
        });
    });
    Ok(Run {
        id: run,
        pid,
        kill_group,
        cgroup,
        mailbox,
    })
}

/// Where a run's signals go: its leader (unreaped, so the pid is still its), its process
/// group, or every process of its cgroup.
struct Signals {
    pid: u32,
    kill_group: bool,
    cgroup: Option<RunCgroup>,
}

impl Signals {
    fn send(&self, sig: Signal) {
        match &self.cgroup {
            Some(cg) if self.kill_group => cg.signal(self.pid, sig),
            _ => os::send_signal(self.pid, self.kill_group, sig),
        }
    }
}

/// Wait for the child to end (without reaping it), carrying out signal requests
/// meanwhile. Every signal goes out while the child is unreaped, so `pid` and its
/// process group are still ours. Orders go out before the end is looked at, clients'
/// signals only while the child has not ended.
async fn watch(signals: &Signals, mut exit: Exit, mailbox: &Mailbox) -> i32 {
    // Without pidfds, look again this often (made when first needed).
    let mut poll = None;
    loop {
        // Registered before the queues are looked at, so a signal posted from here on
        // wakes this task.
        let woken = mailbox.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        while let Some(sig) = mailbox.next_order() {
            signals.send(sig);
        }
        let control = mailbox.next_control();
        let has_control = control.is_some();
        tokio::select! {
            biased;
            ended = ended(signals.pid, &mut exit, &mut poll) => return ended,
            () = async {
                if !has_control {
                    woken.await;
                }
            } => {}
        }
        if let Some(sig) = control {
            signals.send(sig);
        }
    }
}

/// The 50 ms interval of a run whose end is looked for by polling.
async fn tick(poll: &mut Option<tokio::time::Interval>) {
    poll.get_or_insert_with(|| tokio::time::interval(Duration::from_millis(50)))
        .tick()
        .await;
}

/// Resolves with the exit once the child has ended (it stays a zombie).
async fn ended(pid: u32, exit: &mut Exit, poll: &mut Option<tokio::time::Interval>) -> i32 {
    loop {
        match exit {
            Exit::Pidfd(Watched(fd)) => {
                if let Ok(mut ready) = fd.readable().await {
                    if let Some(code) = os::exited(pid, Some(ready.get_inner().as_fd())) {
                        return code;
                    }
                    ready.clear_ready();
                    continue;
                }
                tick(poll).await;
            }
            Exit::Sigchld(sigchld) => {
                if let Some(code) = os::exited(pid, None) {
                    return code;
                }
                if sigchld.recv().await.is_none() {
                    *exit = Exit::Poll;
                }
                continue;
            }
            Exit::Poll => {
                tick(poll).await;
            }
        }
        if let Some(code) = os::exited(pid, None) {
            return code;
        }
    }
}

/// The read end of a pipe from the child (made by `child_fd`) as an async reader.
fn async_pipe(fd: OwnedFd) -> Option<Box<dyn OutputPipe>> {
    // The read end of a pipe made by `child_fd`, whose flags are `O_RDONLY` alone: made
    // non-blocking in one call, and handed over without the checks (fstat, F_GETFL) that
    // `from_owned_fd` makes of a descriptor it knows nothing about.
    let nonblocking = nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map_err(std::io::Error::from)
    .and_then(|_| tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(fd));
    match nonblocking {
        Ok(rx) => Some(growing(rx)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a job's output pipe");
            None
        }
    }
}

/// A child's stdout or stderr.
enum ChildFd {
    /// `/dev/null`.
    Null,
    /// A pipe's write end or an output file.
    Fd(OwnedFd),
    /// stderr only: wherever stdout goes.
    Stdout,
}

/// The child's stdout and stderr, and the read ends of the pipes the daemon captures.
/// When stderr is merged into a captured stdout both share one pipe (not two read in
/// turn), which is what keeps the order in which the job wrote the lines.
struct ChildIo {
    stdout: ChildFd,
    stderr: ChildFd,
    stdout_read: Option<OwnedFd>,
    stderr_read: Option<OwnedFd>,
}

fn child_io(spec: &JobSpec) -> Result<ChildIo, SpawnError> {
    let (stdout, stdout_read) = child_fd(&spec.stdout, "stdout")?;
    let (stderr, stderr_read) = match (&spec.stderr, &stdout) {
        (Output::Stdout, ChildFd::Fd(_)) => (ChildFd::Stdout, None),
        (Output::Stdout, _) => (ChildFd::Null, None),
        (output, _) => child_fd(output, "stderr")?,
    };
    Ok(ChildIo {
        stdout,
        stderr,
        stdout_read,
        stderr_read,
    })
}

fn child_fd(output: &Output, stream: &str) -> Result<(ChildFd, Option<OwnedFd>), SpawnError> {
    Ok(match output {
        Output::Log(_) | Output::Inherit => {
            let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| {
                SpawnError::OutputFile {
                    path: format!("(the pipe of its {stream})"),
                    reason: e.to_string(),
                }
            })?;
            (ChildFd::Fd(write), Some(read))
        }
        Output::Null | Output::Stdout => (ChildFd::Null, None),
        Output::File(path) => (ChildFd::Fd(OwnedFd::from(open_output_file(path)?)), None),
    })
}

/// The environment a job starts with: supervisord's own, less its systemd notify
/// variables (not the job's to use), then the passwd entry's `HOME`, `USER`, `LOGNAME`
/// and `SHELL`, then the job's `env`, then `SUPERVISOR_JOB` and `SUPERVISOR_GROUP`; later
/// entries win.
fn job_env(spec: &JobSpec) -> impl Iterator<Item = (&std::ffi::OsStr, &std::ffi::OsStr)> {
    use std::ffi::{OsStr, OsString};
    // supervisord never changes its own environment once running.
    static BASE: std::sync::OnceLock<Vec<(OsString, OsString)>> = std::sync::OnceLock::new();
    let base = BASE.get_or_init(|| {
        std::env::vars_os()
            .filter(|(k, _)| {
                !matches!(
                    k.to_str(),
                    Some("NOTIFY_SOCKET" | "WATCHDOG_USEC" | "WATCHDOG_PID")
                )
            })
            .collect()
    });
    base.iter()
        .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
        .chain(
            spec.user
                .iter()
                .flat_map(|u| u.env.iter())
                .map(|(k, v)| (OsStr::new(k.as_str()), OsStr::new(v.as_str()))),
        )
        .chain(
            spec.env
                .iter()
                .map(|(k, v)| (OsStr::new(k.as_str()), OsStr::new(v.as_str()))),
        )
        .chain([
            (OsStr::new("SUPERVISOR_JOB"), OsStr::new(spec.name.as_str())),
            (
                OsStr::new("SUPERVISOR_GROUP"),
                OsStr::new(spec.group.as_str()),
            ),
        ])
}

/// Start the job's process: through `clone3` where the kernel has it (born in its cgroup,
/// with its pidfd), else through std's `Command` (fork and exec; the child writes itself
/// into its cgroup). Returns its pid, and its pidfd when the spawn gave one.
fn launch(
    spec: &JobSpec,
    io: &ChildIo,
    cgroup: Option<&(RunCgroup, OwnedFd)>,
    death: DeathWatch,
) -> Result<(u32, Option<OwnedFd>), SpawnError> {
    let program = || spec.command[0].clone();
    let null = os::spawn::dev_null().ok_or_else(|| SpawnError::Other {
        program: program(),
        reason: "cannot open /dev/null".into(),
    })?;
    if os::spawn::available() {
        let mut plan =
            os::spawn::Plan::new(&spec.command, &spec.cwd, job_env(spec)).map_err(|e| {
                SpawnError::Other {
                    program: program(),
                    reason: e.to_string(),
                }
            })?;
        plan.process_group().limits(&spec.limits).umask(spec.umask);
        if let Some(u) = spec
            .user
            .as_ref()
            .filter(|_| nix::unistd::geteuid().is_root())
        {
            plan.identity(u.uid, u.gid, u.groups.clone());
        }
        if death == DeathWatch::ParentDeathSignal {
            plan.die_with(std::process::id());
        }
        let out = match &io.stdout {
            ChildFd::Fd(fd) => fd.as_fd(),
            _ => null,
        };
        let err = match &io.stderr {
            ChildFd::Fd(fd) => fd.as_fd(),
            ChildFd::Stdout => out,
            ChildFd::Null => null,
        };
        let dir = cgroup.map(|(_, dir)| dir.as_fd());
        match os::spawn::spawn(&plan, out, err, dir, Watched::room()) {
            os::spawn::Outcome::Running { pid, pidfd } => return Ok((pid, pidfd)),
            os::spawn::Outcome::Failed { step, error } => {
                return Err(step_problem(spec, step, &error))
            }
            os::spawn::Outcome::CloneFailed(e) => {
                return Err(SpawnError::Other {
                    program: program(),
                    reason: if dir.is_some() {
                        format!("cannot start it inside its cgroup: {e}")
                    } else {
                        e.to_string()
                    },
                })
            }
            os::spawn::Outcome::Unsupported => {}
        }
    }
    launch_with_std(spec, io, cgroup, death)
}

/// [`launch`] through std's `Command`, where `clone3` is not available.
fn launch_with_std(
    spec: &JobSpec,
    io: &ChildIo,
    cgroup: Option<&(RunCgroup, OwnedFd)>,
    death: DeathWatch,
) -> Result<(u32, Option<OwnedFd>), SpawnError> {
    let problem = |e: std::io::Error| SpawnError::OutputFile {
        path: "(a pipe of the job)".into(),
        reason: e.to_string(),
    };
    let stdout = match &io.stdout {
        ChildFd::Fd(fd) => Stdio::from(fd.try_clone().map_err(problem)?),
        _ => Stdio::null(),
    };
    let stderr = match &io.stderr {
        ChildFd::Fd(fd) => Stdio::from(fd.try_clone().map_err(problem)?),
        ChildFd::Stdout => match &io.stdout {
            ChildFd::Fd(fd) => Stdio::from(fd.try_clone().map_err(problem)?),
            _ => Stdio::null(),
        },
        ChildFd::Null => Stdio::null(),
    };
    let mut cmd = Command::new(&spec.command[0]);
    cmd.args(&spec.command[1..])
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(job_env(spec))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    if let Some((cg, _)) = cgroup {
        let procs = std::fs::OpenOptions::new()
            .write(true)
            .open(cg.dir().join("cgroup.procs"))
            .map_err(|e| SpawnError::Other {
                program: spec.command[0].clone(),
                reason: format!("cannot enter its cgroup: {e}"),
            })?;
        os::enter_cgroup(&mut cmd, procs.into());
    }
    os::set_credentials(&mut cmd, spec.user.as_deref(), spec.umask, &spec.limits);
    if death == DeathWatch::ParentDeathSignal {
        os::die_with_parent(&mut cmd);
    }
    os::reset_signals(&mut cmd);
    // std's `Child`, not tokio's: tokio reaps its children (and the ones it drops) on its
    // own, and this one must stay unreaped until the supervisor says so. Dropping a std
    // `Child` neither waits for nor kills it.
    let child = cmd
        .spawn()
        .map_err(|e| spawn_problem(spec, cgroup.is_some(), &e))?;
    Ok((child.id(), None))
}

/// A failed step of a `clone3` spawn in words that say which part was wrong.
fn step_problem(spec: &JobSpec, step: os::spawn::Step, e: &std::io::Error) -> SpawnError {
    use os::spawn::Step;
    let program = spec.command[0].clone();
    let other = |what: &str| SpawnError::Other {
        program: program.clone(),
        reason: format!("{what}: {e}"),
    };
    match step {
        Step::Cwd
            if matches!(
                e.raw_os_error(),
                Some(nix::libc::ENOENT | nix::libc::ENOTDIR)
            ) =>
        {
            SpawnError::NoCwd(spec.cwd.display().to_string())
        }
        Step::Cwd => other(&format!(
            "cannot enter its working folder {}",
            spec.cwd.display()
        )),
        Step::Limits => other("cannot apply its `limits`"),
        Step::Identity => other("cannot switch to its `user`"),
        Step::ProcessGroup => other("cannot make it a process-group leader"),
        Step::Stdio => other("cannot give it its stdin, stdout and stderr"),
        Step::Unshare => other("cannot give it a descriptor table of its own"),
        Step::Exec => match e.kind() {
            std::io::ErrorKind::NotFound => SpawnError::NoProgram(program.clone()),
            std::io::ErrorKind::PermissionDenied => SpawnError::NotExecutable(program.clone()),
            _ => SpawnError::Other {
                program: program.clone(),
                reason: e.to_string(),
            },
        },
    }
}

fn open_output_file(path: &std::path::Path) -> Result<std::fs::File, SpawnError> {
    open_output(path).map_err(|e| SpawnError::OutputFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Open an output file for appending without ever blocking the runtime: a FIFO nobody
/// reads would block a plain `open` forever (and the whole daemon with it). Opened
/// non-blocking, such a FIFO fails at once; what opens is made blocking again for the
/// job, which expects an ordinary stdout.
fn open_output(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::libc::ENXIO) {
                std::io::Error::other("a FIFO that no process has open for reading")
            } else {
                e
            }
        })?;
    let flags = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) - nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    Ok(file)
}

/// A spawn error in words that say which part was wrong.
fn spawn_problem(spec: &JobSpec, in_cgroup: bool, e: &std::io::Error) -> SpawnError {
    if !spec.cwd.is_dir() {
        return SpawnError::NoCwd(spec.cwd.display().to_string());
    }
    let program = spec.command[0].clone();
    // exec's own permission error is EACCES; EPERM comes from setrlimit, setgroups,
    // setgid or setuid in the child.
    let sets_credentials = spec.user.is_some() || !spec.limits.is_empty();
    if in_cgroup && !sets_credentials && e.raw_os_error() == Some(nix::libc::EPERM) {
        return SpawnError::Other {
            program,
            reason: format!("cannot enter its cgroup: {e}"),
        };
    }
    if sets_credentials && e.raw_os_error() == Some(nix::libc::EPERM) {
        return SpawnError::Other {
            program,
            reason: format!("cannot apply its `user` or `limits`: {e}"),
        };
    }
    match e.kind() {
        std::io::ErrorKind::NotFound => SpawnError::NoProgram(program),
        std::io::ErrorKind::PermissionDenied => SpawnError::NotExecutable(program),
        _ => SpawnError::Other {
            program,
            reason: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The supervisor's orders are never dropped and go before clients' signals; clients'
    /// signals are bounded; nothing is queued once the run's task is done.
    #[test]
    fn orders_are_never_dropped_and_clients_signals_are_bounded() {
        let mailbox = Mailbox::default();
        for _ in 0..CONTROL_BACKLOG {
            assert!(mailbox.post(Signal::Hup, false));
        }
        assert!(!mailbox.post(Signal::Hup, false), "a ninth client signal");
        for _ in 0..100 {
            assert!(mailbox.post(Signal::Term, true));
        }
        assert_eq!(mailbox.next_order(), Some(Signal::Term));
        assert_eq!(mailbox.next_control(), Some(Signal::Hup));
        assert!(mailbox.post(Signal::Usr1, false), "room again");
        mailbox.close();
        assert_eq!(mailbox.next_order(), None);
        assert_eq!(mailbox.next_control(), None);
        assert!(!mailbox.post(Signal::Kill, true));
        assert!(!mailbox.post(Signal::Hup, false));
    }
}
