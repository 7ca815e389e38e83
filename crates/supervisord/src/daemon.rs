//! The daemon's life, top to bottom: bind, serve and supervise, then shut down in order.

use crate::cgroup::Containment;
use crate::config::Config;
use crate::guard::Guard;
use crate::history::{self, HistoryWriter};
use crate::logs::{self, LogWriter};
use crate::metrics;
use crate::notify::{self, Notifier};
use crate::server::{self, Context, Limits, Socket};
use crate::supervisor::{Call, Supervisor, SupervisorHandle};
use protocol::ShutdownParams;
use std::path::PathBuf;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long shutdown waits for connection and output tasks once every job has ended.
const DRAIN_TASKS: Duration = Duration::from_secs(2);

/// What the daemon runs with.
pub struct Options {
    /// The validated job file.
    pub config: Config,
    /// The socket path.
    pub socket: PathBuf,
    /// Exit once every non-daemon job has settled.
    pub batch: bool,
    /// Connection limits.
    pub limits: Limits,
    /// The service manager's notify socket (systemd `Type=notify`), if any.
    pub notify: Notifier,
}

/// What is left to finish once the runtime is gone: both need blocking waits.
pub struct Leftovers {
    /// The log writer thread, to join once every log handle is dropped.
    pub writer: LogWriter,
    /// The guard process, to release and reap.
    pub guard: Option<Guard>,
    /// The run history's writer thread, to join (it fsyncs what is queued first).
    pub history: Option<HistoryWriter>,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The socket.
    #[error(transparent)]
    Bind(#[from] server::BindError),
    /// The log writer thread.
    #[error("cannot start the log writer: {0}")]
    Logs(std::io::Error),
    /// The metrics address (the message names it).
    #[error("{0}")]
    Metrics(std::io::Error),
    /// The run history's writer thread.
    #[error("cannot start the history writer: {0}")]
    History(std::io::Error),
    /// A job asks for a cgroup limit whose controller supervisord cannot give its runs.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Run until shut down. Returns the exit code and what must be finished outside the
/// runtime.
pub async fn run(opts: Options, guard: Option<Guard>) -> Result<(u8, Leftovers), StartError> {
    // 1. The socket first: a second daemon must refuse before it starts any job.
    let socket = Socket::bind(&opts.socket).await?;
    let metrics = match opts.config.metrics {
        Some(addr) => Some(
            metrics::http::Listener::bind(addr)
                .await
                .map_err(StartError::Metrics)?,
        ),
        None => None,
    };
    let (logs, writer) = logs::start().map_err(StartError::Logs)?;
    let containment = contain(opts.config.cgroup, opts.config.controllers()).await;
    if let Err(e) = opts.config.refuse_missing(&containment.offer()) {
        if let Some(t) = containment.tree() {
            t.remove();
        }
        return Err(e.into());
    }
    let tracker = TaskTracker::new();
    let config_path = opts.config.path.clone();
    let history = open_history(&opts.config).await?;
    let (supervisor, handle) = Supervisor::new(
        opts.config,
        opts.batch,
        logs.clone(),
        guard,
        tracker.clone(),
    );
    let mut supervisor = supervisor.serving(socket.path().to_path_buf());
    let mut history_writer = None;
    if let Some(opened) = history {
        history_writer = Some(opened.writer);
        supervisor = supervisor.with_history(opened.attached);
    }
    let supervisor = supervisor
        .serving(socket.path().to_path_buf())
        .contained(&containment);
    tracing::info!(socket = %socket.path().display(), pid = std::process::id(), "supervisord started");

    // 2. Serve and supervise until the supervisor has stopped every job.
    let shutdown = CancellationToken::new();
    let notifier = opts.notify;
    let reopen = logs.clone();
    let ctx = Context {
        supervisor: handle.clone(),
        logs,
        config_path: config_path.clone(),
        limits: opts.limits,
        notify: notifier.clone(),
    };
    if let Some(listener) = metrics {
        if let Some(addr) = listener.local_addr() {
            tracing::info!(%addr, "serving metrics at http://{addr}/metrics");
        }
        tracker.spawn(listener.serve(handle.clone(), shutdown.clone(), tracker.clone()));
    }
    if notifier.enabled() {
        // READY=1 (once autostart jobs are spawned), STATUS= lines, watchdog pings.
        tracker.spawn(notify::run(
            notifier.clone(),
            handle.clone(),
            shutdown.clone(),
        ));
    }
    let (code, guard) = tokio::select! {
        out = supervisor.run() => out,
        () = server::serve(&socket, ctx, shutdown.clone(), tracker.clone()) => {
            unreachable_serve()
        }
        () = handle_signals(handle, config_path, notifier.clone(), tracker.clone(), reopen) => unreachable_serve(),
    };

    // 3. Stop accepting, end connections, give output readers a moment to finish.
    notifier.stopping(); // batch mode ends here; other ways of stopping sent it already
    shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(DRAIN_TASKS, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connection or output tasks did not finish; leaving them");
    }
    // 4. Remove the socket.
    drop(socket);
    tracing::info!(exit_code = code, "supervisord stopped");
    Ok((
        code,
        Leftovers {
            writer,
            guard,
            history: history_writer,
        },
    ))
}

/// Open the run history (off the runtime: it reads, repairs and may compact the file),
/// unless `[supervisor] history = false`. A history that cannot be written is not an
/// error: the daemon runs without it and says so.
async fn open_history(config: &Config) -> Result<Option<history::Opened>, StartError> {
    if !config.history {
        return Ok(None);
    }
    let (dir, max) = (config.state_dir.clone(), config.history_max_bytes);
    match tokio::task::spawn_blocking(move || history::open(&dir, max)).await {
        Ok(opened) => opened.map(Some).map_err(StartError::History),
        Err(e) => Err(StartError::History(std::io::Error::other(e.to_string()))),
    }
}

/// Set up containment (blocking: it may clear cgroups a dead daemon left, waiting for
/// them to empty) with the controllers `wanted` by the jobs' limits, and say once which
/// is in force.
async fn contain(
    setting: crate::cgroup::Setting,
    wanted: Vec<crate::cgroup::Controller>,
) -> Containment {
    let containment = tokio::task::spawn_blocking(move || {
        let mut c = crate::cgroup::setup(setting);
        if let Containment::Cgroups(tree) = &mut c {
            tree.enable(&wanted);
        }
        c
    })
    .await
    .unwrap_or_else(|e| Containment::Groups {
        why: format!("setting up cgroups failed: {e}"),
    });
    match &containment {
        Containment::Cgroups(_) => tracing::info!("containment: {}", containment.describe()),
        Containment::Groups { .. } => tracing::warn!(
            "containment: {}; a job that calls setsid or double-forks can escape a stop",
            containment.describe()
        ),
    }
    containment
}

/// `serve` and `handle_signals` only return once shut down, and the supervisor's loop
/// ends first; reaching here would be a bug, and the safe answer is to stop.
fn unreachable_serve() -> (u8, Option<Guard>) {
    tracing::error!("the server stopped before the supervisor");
    (1, None)
}

/// Signals whose default action would end supervisord (and with it every job) but that
/// mean nothing to it: each is logged and otherwise ignored. (A handler, unlike
/// `SIG_IGN`, is not inherited by jobs.) SIGXFSZ included: past a file-size limit a write
/// then fails with `EFBIG`, which the log writer reports, instead of killing the daemon.
const IGNORED: [(i32, &str); 7] = [
    (nix::libc::SIGUSR1, "SIGUSR1"),
    (nix::libc::SIGALRM, "SIGALRM"),
    (nix::libc::SIGVTALRM, "SIGVTALRM"),
    (nix::libc::SIGPROF, "SIGPROF"),
    (nix::libc::SIGIO, "SIGIO"),
    (nix::libc::SIGPWR, "SIGPWR"),
    (nix::libc::SIGXFSZ, "SIGXFSZ"),
];

/// SIGTERM/SIGINT: shut down (a second one kills every job at once). SIGHUP: reload, in
/// a task of its own, since a reload answers only once applied (a stop can take
/// `stop_timeout`) and a SIGTERM meanwhile must still be heard.
/// SIGUSR2: reopen the log files (after logrotate moved them). The [`IGNORED`] ones: a log
/// line.
async fn handle_signals(
    handle: SupervisorHandle,
    config_path: PathBuf,
    notifier: Notifier,
    tracker: TaskTracker,
    logs: logs::LogHub,
) {
    let (Ok(mut term), Ok(mut int), Ok(mut hup), Ok(mut usr2)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined2()),
    ) else {
        tracing::error!("cannot install signal handlers; use `supctl shutdown` to stop");
        return std::future::pending().await;
    };
    // The real-time signals end a process by default too.
    let realtime = (nix::libc::SIGRTMIN()..=nix::libc::SIGRTMAX())
        .map(|n| (n, format!("SIGRTMIN+{}", n - nix::libc::SIGRTMIN())));
    let mut ignored: Vec<(tokio::signal::unix::Signal, String)> = IGNORED
        .iter()
        .map(|(n, name)| (*n, (*name).to_owned()))
        .chain(realtime)
        .filter_map(|(n, name)| signal(SignalKind::from_raw(n)).ok().map(|s| (s, name)))
        .collect();
    let any_ignored = |cx: &mut std::task::Context<'_>| {
        for (s, name) in ignored.iter_mut() {
            if let std::task::Poll::Ready(Some(())) = s.poll_recv(cx) {
                return std::task::Poll::Ready(name.clone());
            }
        }
        std::task::Poll::Pending
    };
    let mut any_ignored = any_ignored;
    loop {
        tokio::select! {
            name = std::future::poll_fn(&mut any_ignored) => {
                tracing::warn!("{name} received: ignored (SIGUSR2 reopens the log files, SIGHUP reloads, SIGTERM stops)");
            }
            _ = usr2.recv() => {
                let n = logs.reopen().await;
                tracing::info!(files = n, "SIGUSR2: log files reopened");
            }
            _ = term.recv() => shutdown(&handle, "SIGTERM", &notifier).await,
            _ = int.recv() => shutdown(&handle, "SIGINT", &notifier).await,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading {}", config_path.display());
                let (handle, path, notifier) = (handle.clone(), config_path.clone(), notifier.clone());
                tracker.spawn(async move {
                    match server::reload_from_disk(&handle, &path, &notifier).await {
                        Ok(v) => tracing::info!(result = %v, "reloaded on SIGHUP"),
                        Err(e) => tracing::error!(error = %e.message, "reload on SIGHUP refused"),
                    }
                });
            }
        }
    }
}

async fn shutdown(handle: &SupervisorHandle, why: &str, notifier: &Notifier) {
    tracing::info!("{why}: shutting down");
    notifier.stopping();
    let _ = handle
        .call(Call::Shutdown(ShutdownParams { drain: Some(false) }))
        .await;
}
