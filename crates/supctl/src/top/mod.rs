//! `supctl top`: a full-screen live view of the jobs.
//!
//! The client is blocking `std`, so each source has a thread and a connection of its
//! own, and all of them feed one channel that the main thread drains before each redraw:
//! - the `subscribe` stream (the snapshot, then one event per state change, shown the
//!   moment it arrives; its end means the daemon went away);
//! - a poller: `ping` and `status` with `usage: true` once a second (CPU %, memory,
//!   restarts, jobs added or removed);
//! - the keyboard and resizes (crossterm);
//! - the log pane's `logs` stream with `follow`, while it is open;
//! - one short thread per action (`s`, `t`, `r`), so a slow stop never freezes the screen.
//!
//! The terminal is restored however `top` ends: on quit, on ^C (a key in raw mode), on
//! SIGTERM/SIGHUP (taken by a thread with `sigwait`), on a panic (a hook), and when the
//! daemon goes away (then one line says so).

mod view;

use crate::client::Client;
use crate::Failure;
use protocol::{
    Event, HealthChange, JobList, Lagged, LogData, LogsParams, LogsResult, PingResult, Request,
    Selection, StatusParams, Stream, TerminateParams,
};
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::{cursor, event, execute, terminal};
use ratatui::Terminal;
use std::io::{IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};
use view::{Action, View};

/// How often usage is refreshed.
const USAGE_EVERY: Duration = Duration::from_secs(1);
/// How many lines the log pane starts with.
const LOG_TAIL: usize = 200;

/// What the threads tell the main loop.
enum Msg {
    /// A state change.
    Event(Event),
    /// A change of a job's health.
    Health(HealthChange),
    /// The subscribe stream fell behind; the next usage poll repairs the table.
    Lagged,
    /// The table with usage, asked at this instant.
    Table(JobList, Instant),
    /// The daemon's version and uptime.
    Ping(PingResult),
    /// A key or a resize.
    Input(event::Event),
    /// The last lines of one stream as its follow begins (generation, stream, lines).
    LogTail(u64, Stream, Vec<String>),
    /// More output for the log pane (generation, stream, text).
    Log(u64, Stream, String),
    /// The answer to an action, in words.
    Done(String),
    /// The daemon closed the event stream, or a signal asked `top` to end.
    End(Option<String>),
}

/// Run `top` until the user quits or the daemon goes away.
pub fn run(socket: &Path) -> Result<(), Failure> {
    if !std::io::stdout().is_terminal() {
        return Err(Failure::Usage(
            "top needs a terminal; use `supctl status` or `supctl events` in scripts".into(),
        ));
    }
    // Connect before touching the terminal: an unreachable daemon is the usual message
    // and exit code 3.
    let mut events = Client::connect(socket)?;
    let snapshot: JobList = events.call(&Request::Subscribe)?.decode()?;
    let colour = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
    let mut view = View::new(colour);
    view.table(snapshot.jobs, Instant::now());

    let (tx, rx) = mpsc::channel();
    // SIGTERM, SIGHUP and SIGINT are taken by a thread (blocked here first, so every
    // thread spawned after this inherits the mask): they end `top` like `q` does.
    watch_signals(tx.clone());
    spawn_events(events, tx.clone());
    spawn_poller(socket.to_path_buf(), tx.clone());
    spawn_input(tx.clone());

    let terminal = Screen::enter().map_err(|e| io_failure("cannot set up the terminal", e))?;
    let result = event_loop(terminal, &mut view, &rx, &tx, socket);
    match result {
        Ok(None) => Ok(()),
        Ok(Some(why)) => Err(Failure::Failed(Some(why))),
        Err(e) => Err(io_failure("drawing failed", e)),
    }
}

fn io_failure(what: &str, e: std::io::Error) -> Failure {
    Failure::Failed(Some(format!("top: {what}: {e}")))
}

/// The main loop: wait for a message, take every one that is waiting, draw once.
/// `Ok(Some(message))` when the daemon went away.
fn event_loop(
    mut screen: Screen,
    view: &mut View,
    rx: &Receiver<Msg>,
    tx: &Sender<Msg>,
    socket: &Path,
) -> std::io::Result<Option<String>> {
    let mut log_gen = 0u64;
    let mut log_streams: Vec<UnixStream> = Vec::new();
    loop {
        screen.terminal.draw(|f| view.draw(f))?;
        let Ok(first) = rx.recv() else {
            return Ok(None);
        };
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Event(e) => view.event(&e),
                Msg::Health(h) => view.health(&h),
                Msg::Lagged => view.message = Some("missed some events; refreshing".into()),
                Msg::Table(list, asked) => view.table(list.jobs, asked),
                Msg::Ping(p) => {
                    view.daemon = Some(view::Daemon {
                        version: p.version,
                        uptime_ms: p.uptime_ms,
                        seen: Instant::now(),
                    });
                }
                Msg::Input(event::Event::Key(key)) if key.kind == event::KeyEventKind::Press => {
                    match view.key(key) {
                        Action::None => {}
                        Action::Quit => return Ok(None),
                        Action::Start(name) => act(socket, tx, "start", name),
                        Action::Terminate(name) => act(socket, tx, "terminate", name),
                        Action::Restart(name) => act(socket, tx, "restart", name),
                        Action::FollowLog(name) => {
                            close(log_streams.drain(..));
                            log_gen += 1;
                            view.open_log(&name, Vec::new());
                            for stream in [Stream::Stdout, Stream::Stderr] {
                                log_streams.extend(follow_log(
                                    socket,
                                    tx,
                                    log_gen,
                                    name.clone(),
                                    stream,
                                ));
                            }
                        }
                        Action::CloseLog => {
                            close(log_streams.drain(..));
                            log_gen += 1;
                            view.log = None;
                        }
                    }
                }
                Msg::Input(_) => {} // a resize: the next draw fits the new size
                Msg::LogTail(generation, stream, lines) if generation == log_gen => {
                    view.stream_tail(stream, lines);
                }
                Msg::Log(generation, stream, data) if generation == log_gen => {
                    view.stream_data(stream, &data);
                }
                Msg::LogTail(..) | Msg::Log(..) => {}
                Msg::Done(text) => view.message = Some(text),
                Msg::End(why) => return Ok(why),
            }
            next = rx.try_recv().ok();
        }
    }
}

fn close(streams: impl IntoIterator<Item = UnixStream>) {
    for s in streams {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
}

/// The event stream: every event as it comes; its end is the daemon going away.
fn spawn_events(mut client: Client, tx: Sender<Msg>) {
    std::thread::spawn(move || loop {
        let msg = match client.next_notification() {
            Ok(Some(note)) if note.method == protocol::note::EVENT => {
                match serde_json::from_value::<Event>(note.params) {
                    Ok(e) => Msg::Event(e),
                    Err(_) => continue,
                }
            }
            Ok(Some(note)) if note.method == protocol::note::HEALTH => {
                match serde_json::from_value::<HealthChange>(note.params) {
                    Ok(h) => Msg::Health(h),
                    Err(_) => continue,
                }
            }
            Ok(Some(note)) => match serde_json::from_value::<Lagged>(note.params) {
                Ok(_) => Msg::Lagged,
                Err(_) => continue,
            },
            Ok(None) => Msg::End(Some(
                "supervisord went away (it closed the connection)".into(),
            )),
            Err(e) => Msg::End(Some(format!("supervisord went away: {e}"))),
        };
        let end = matches!(msg, Msg::End(_));
        if tx.send(msg).is_err() || end {
            return;
        }
    });
}

/// `ping` and `status --usage` once a second on a connection of its own.
fn spawn_poller(socket: PathBuf, tx: Sender<Msg>) {
    std::thread::spawn(move || {
        let Ok(mut client) = Client::connect(&socket) else {
            return;
        };
        let usage = Request::Status(StatusParams {
            selection: Selection::default(),
            usage: Some(true),
        });
        loop {
            let started = Instant::now();
            if let Ok(p) = client.call(&Request::Ping).and_then(|r| r.decode()) {
                if tx.send(Msg::Ping(p)).is_err() {
                    return;
                }
            }
            let asked = Instant::now();
            match client.call(&usage).and_then(|r| r.decode::<JobList>()) {
                Ok(list) => {
                    if tx.send(Msg::Table(list, asked)).is_err() {
                        return;
                    }
                }
                // The event stream reports the daemon going away; this thread just ends.
                Err(_) => return,
            }
            std::thread::sleep(USAGE_EVERY.saturating_sub(started.elapsed()));
        }
    });
}

/// Keys and resizes.
fn spawn_input(tx: Sender<Msg>) {
    std::thread::spawn(move || {
        while let Ok(e) = event::read() {
            if tx.send(Msg::Input(e)).is_err() {
                return;
            }
        }
    });
}

/// SIGTERM, SIGHUP and SIGINT end `top` cleanly: blocked in every thread and taken by one
/// that waits for them.
fn watch_signals(tx: Sender<Msg>) {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGHUP, Signal::SIGINT] {
        set.add(s);
    }
    if set.thread_block().is_err() {
        return;
    }
    std::thread::spawn(move || {
        if let Ok(sig) = set.wait() {
            let _ = tx.send(Msg::End(Some(format!("top: ended by {sig}"))));
        }
    });
}

/// `start`, `terminate` (without waiting) or `restart` one job, in a thread of its own.
fn act(socket: &Path, tx: &Sender<Msg>, what: &'static str, name: String) {
    let (socket, tx) = (socket.to_path_buf(), tx.clone());
    let selection = Selection::names(vec![name.clone()]);
    let request = match what {
        "start" => Request::Start(selection.into()),
        "restart" => Request::Restart(selection),
        _ => Request::Terminate(TerminateParams {
            selection,
            signal: None,
            wait: Some(false),
        }),
    };
    let _ = tx.send(Msg::Done(format!("{what} {name}…")));
    std::thread::spawn(move || {
        let text = match Client::connect(&socket).and_then(|mut c| c.call(&request)) {
            Ok(_) => format!("{what} {name}: done"),
            Err(e) => format!("{what} {name}: {e}"),
        };
        let _ = tx.send(Msg::Done(text));
    });
}

/// Follow one of a job's streams in the log pane; returns the connection to shut to stop
/// it. A stream supervisord does not capture (`null`, a file, stderr merged into
/// stdout) is skipped quietly for stderr; for stdout the pane's footer says why.
fn follow_log(
    socket: &Path,
    tx: &Sender<Msg>,
    generation: u64,
    name: String,
    stream: Stream,
) -> Option<UnixStream> {
    let mut client = match Client::connect(socket) {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Msg::Done(format!("log {name}: {e}")));
            return None;
        }
    };
    let connection = client.stream().ok();
    let tx = tx.clone();
    std::thread::spawn(move || {
        let request = Request::Logs(LogsParams {
            name: name.clone(),
            stream,
            lines: Some(LOG_TAIL),
            follow: Some(true),
        });
        let tail = client.call(&request).and_then(|r| r.decode::<LogsResult>());
        match tail {
            Ok(t) => {
                if tx.send(Msg::LogTail(generation, stream, t.lines)).is_err() {
                    return;
                }
            }
            Err(crate::client::ClientError::Rpc(e))
                if stream == Stream::Stderr && e.code == protocol::code::INVALID_PARAMS =>
            {
                return;
            }
            Err(e) => {
                let _ = tx.send(Msg::Done(format!("log {name}: {e}")));
                return;
            }
        }
        while let Ok(Some(note)) = client.next_notification() {
            let text = match serde_json::from_value::<LogData>(note.params) {
                Ok(d) => d.data,
                Err(_) => "[supctl: skipped output]\n".into(),
            };
            if tx.send(Msg::Log(generation, stream, text)).is_err() {
                return;
            }
        }
    });
    connection
}

/// The terminal in raw mode on the alternate screen; put back as it was when dropped,
/// and by the panic hook.
struct Screen {
    terminal: Terminal<CrosstermBackend<std::io::Stdout>>,
}

impl Screen {
    fn enter() -> std::io::Result<Screen> {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        terminal::enable_raw_mode()?;
        let mut out = std::io::stdout();
        if let Err(e) = execute!(out, terminal::EnterAlternateScreen, cursor::Hide) {
            restore();
            return Err(e);
        }
        match Terminal::new(CrosstermBackend::new(out)) {
            Ok(terminal) => Ok(Screen { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Leave raw mode and the alternate screen, show the cursor. Safe to call twice.
fn restore() {
    let _ = terminal::disable_raw_mode();
    let mut out = std::io::stdout();
    let _ = execute!(out, terminal::LeaveAlternateScreen, cursor::Show);
    let _ = out.flush();
}
