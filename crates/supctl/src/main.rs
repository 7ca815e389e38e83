//! supctl: the command-line client for supervisord.
//!
//! Exit codes: 0 done; 1 the request failed or a waited job did not succeed; 2 usage
//! error; 3 the daemon could not be reached.
//!
//! A command is turned into a [`Request`] by [`request`], sent, and its typed result is
//! printed by one `print_*` function per kind of result.
#![forbid(unsafe_code)]

mod client;
mod discover;
mod history;
mod logs;
mod pipe;
mod render;
mod report;
mod row;
mod suggest;
mod top;

use clap::{Args, CommandFactory, Parser, Subcommand};
use client::{Client, ClientError, Reply};
use protocol::{
    AddParams, Event, HealthChange, HistoryParams, HistoryResult, JobList, KillParams, Lagged,
    LogData, LogsParams, LogsResult, MetricsResult, NamesParams, PingResult, ReloadResult, Request,
    ScaleParams, Selection, ShutdownParams, Signal, StatusParams, Stream, TerminateParams,
    WaitParams,
};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const AFTER_HELP: &str = "\
Exit status:
  0  done
  1  the request failed, or a waited job did not succeed (is-alive: the job is not alive)
  2  usage error
  3  the daemon could not be reached (the message names the socket path tried)

Environment:
  SUPERVISORD_SOCKET  the control socket, when --socket is not given
  NO_COLOR            never colour the output (colour is used on a terminal only)
  XDG_RUNTIME_DIR     where the default socket lives
  XDG_CONFIG_HOME     where a job file naming the socket is looked for

--json prints each method's result as one JSON document (the protocol's result,
unchanged); `events --json` and `logs -f --json` print one JSON object per line.
See docs/protocol.md.";

/// Give orders to supervisord over its control socket.
#[derive(Debug, Parser)]
#[command(name = "supctl", version, about, long_about = None, after_long_help = AFTER_HELP)]
struct Cli {
    /// The control socket [default: $SUPERVISORD_SOCKET, then the --config file's
    /// `socket`, then that of the job file supervisord finds (./supervisord.toml,
    /// $XDG_CONFIG_HOME/supervisord/supervisord.toml, /etc/supervisord.toml), then
    /// $XDG_RUNTIME_DIR/supervisord.sock or /tmp/supervisord-UID/supervisord.sock]
    #[arg(long, value_name = "PATH", global = true, conflicts_with = "config")]
    socket: Option<PathBuf>,
    /// Find the socket in this job file's `[supervisor] socket`
    #[arg(short, long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Print the method's result as JSON, for scripts
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Args)]
struct Select {
    /// Jobs by name
    names: Vec<String>,
    /// Every job in this group
    #[arg(short, long, value_name = "G")]
    group: Option<String>,
    /// Every job
    #[arg(short, long)]
    all: bool,
}

impl Select {
    fn selection(&self) -> Selection {
        Selection {
            names: (!self.names.is_empty()).then(|| self.names.clone()),
            group: self.group.clone(),
            all: self.all.then_some(true),
        }
    }

    fn require(&self) -> Result<Selection, Failure> {
        let s = self.selection();
        if s.is_empty() {
            Err(Failure::Usage(
                "name the jobs, or pass --group G or --all".into(),
            ))
        } else {
            Ok(s)
        }
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Show jobs: NAME GROUP STATE PID UPTIME/EXIT
    Status {
        /// Jobs by name (default: all)
        names: Vec<String>,
        /// Every job in this group
        #[arg(short, long, value_name = "G")]
        group: Option<String>,
        /// Add CPU (time used) and MEM (resident) columns, measured over each job's processes
        #[arg(short, long)]
        usage: bool,
    },
    /// Start jobs (and the jobs they depend on)
    Start {
        #[command(flatten)]
        select: Select,
        /// Do not also start the jobs they depend on
        #[arg(long)]
        no_deps: bool,
    },
    /// Stop jobs with their stop signal (SIGKILL after stop_timeout) and print how they ended
    #[command(alias = "stop")]
    Terminate {
        #[command(flatten)]
        select: Select,
        /// Send this signal instead of each job's stop_signal
        #[arg(long, value_name = "SIG")]
        signal: Option<Signal>,
        /// Return once the signal is sent, without waiting for the processes to end
        #[arg(long)]
        no_wait: bool,
    },
    /// Stop, then start jobs
    Restart(Select),
    /// Send a signal to jobs (no state change is implied)
    Kill {
        /// Jobs by name
        #[arg(required = true)]
        names: Vec<String>,
        /// The signal: TERM, SIGUSR1, 9, ...
        #[arg(short, long, value_name = "SIG")]
        signal: Signal,
    },
    /// Print a job's state; exit 0 only if it is alive (is_alive())
    IsAlive {
        /// The job
        name: String,
    },
    /// Wait until jobs have ended; exit 0 only if all succeeded (default: all non-daemon jobs)
    Wait {
        /// Jobs by name (daemon jobs are waited for only when named)
        names: Vec<String>,
        /// Every non-daemon job in this group
        #[arg(short, long, value_name = "G")]
        group: Option<String>,
        /// Every non-daemon job
        #[arg(short, long)]
        all: bool,
        /// Give up after this long (exit 1): 30s, 2m, 500ms
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        timeout: Option<Duration>,
        /// Wait until each is running (and healthy, with a health check); exit 1 if one
        /// settles first
        #[arg(long)]
        ready: bool,
    },
    /// Print jobs' captured output; several jobs' lines are labelled `name | `
    Logs {
        /// The jobs (one job: its lines as they are, without labels)
        names: Vec<String>,
        /// Every job in this group (labelled lines, stdout and stderr)
        #[arg(short, long, value_name = "G")]
        group: Option<String>,
        /// Every job (labelled lines, stdout and stderr)
        #[arg(short, long)]
        all: bool,
        /// Standard error only
        #[arg(long)]
        stderr: bool,
        /// How many of the last lines
        #[arg(short = 'n', long, default_value_t = 10, value_name = "LINES")]
        lines: usize,
        /// Keep printing new output until interrupted
        #[arg(short, long)]
        follow: bool,
    },
    /// Print one line per state change until interrupted
    Events,
    /// Add a job that is not in the job file
    Add {
        /// The new job's name
        name: String,
        /// Its group
        #[arg(short, long, value_name = "G")]
        group: Option<String>,
        /// A background helper: not waited for, terminated when the run ends
        #[arg(long)]
        daemon: bool,
        /// never, on-failure or always
        #[arg(long, value_name = "R")]
        restart: Option<String>,
        /// Add it without starting it
        #[arg(long)]
        no_start: bool,
        /// The command and its arguments (after --)
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Stop and forget jobs
    Remove {
        /// Jobs by name
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Run N replicas of a job with `replicas` in the job file: new ones start, the
    /// highest-numbered stop first (reload goes back to the file's count)
    Scale {
        /// The job as written in the job file (`web` for web-0, web-1, ...)
        name: String,
        /// How many replicas to run
        replicas: u32,
    },
    /// Re-read the job file: start added jobs, stop removed ones, restart changed ones
    Reload,
    /// Stop every job and end supervisord
    Shutdown {
        /// Let non-daemon jobs finish on their own first (daemon jobs are terminated now)
        #[arg(long)]
        drain: bool,
        /// Return at once instead of waiting for supervisord to exit
        #[arg(long)]
        no_wait: bool,
    },
    /// Check that supervisord answers
    Ping,
    /// Past runs, newest first: RUN NAME PID STARTED TOOK RESULT (kept across restarts)
    History {
        /// Only these jobs' runs (default: every job's)
        names: Vec<String>,
        /// How many runs, the newest
        #[arg(short = 'n', long = "limit", default_value_t = 20, value_name = "N")]
        limit: usize,
    },
    /// Print the jobs and supervisord itself as Prometheus metrics (text format)
    Metrics,
    /// Full-screen live view of the jobs: select with arrows, s/t/r start/terminate/restart, l logs, ? help
    Top,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) for supctl(1), or write every page to a folder
    Man {
        /// Write supctl.1 and one supctl-COMMAND.1 per command into this folder
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.trim().parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| e.to_string());
    }
    humantime::parse_duration(s.trim()).map_err(|e| format!("{e} (expected e.g. 30s, 2m, 500ms)"))
}

/// How a command failed, and so how supctl exits.
enum Failure {
    /// Exit 1, with this message (or none when the output already says it).
    Failed(Option<String>),
    /// Exit 2.
    Usage(String),
    /// Exit 1 or 3 depending on the error.
    Client(ClientError),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

fn main() -> ExitCode {
    pipe::quiet_when_reader_goes();
    let parsed = match plain_status(std::env::args_os().skip(1)) {
        Some(cli) => Ok(cli),
        None => Cli::try_parse(),
    };
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => match suggest::for_error(&e) {
            Some(line) => {
                eprintln!("{line}");
                return ExitCode::from(2);
            }
            None => e.exit(),
        },
    };
    if let Some(code) = offline(&cli.command) {
        return code;
    }
    let json_out = cli.json;
    let found = match discover::socket(cli.socket.as_deref(), cli.config.as_deref()) {
        Ok(f) => f,
        Err(msg) => return report::failure(Failure::Usage(msg), json_out, &[]),
    };
    match run(cli, &found.socket) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => report::failure(f, json_out, &found.trail),
    }
}

/// The command line of the most common command, `supctl [--socket P | -c F] [--json]
/// status [NAME...]`, read without clap: building clap's tree of every command and flag
/// costs more than the rest of a small `status`. Anything else — another flag, a value
/// that looks like one, `--`, text that is not UTF-8 — is `None`, and clap reads it as
/// always (errors and help included), so both readings agree wherever this one answers.
fn plain_status(args: impl Iterator<Item = std::ffi::OsString>) -> Option<Cli> {
    let mut args = args.map(|a| a.into_string().ok());
    let (mut socket, mut config, mut json, mut status) = (None, None, false, false);
    let mut names = Vec::new();
    while let Some(arg) = args.next() {
        let arg = arg?;
        let value = |v: Option<Option<String>>| v.flatten().filter(|v| !v.starts_with('-'));
        match arg.as_str() {
            "--json" if !json => json = true,
            "--socket" if socket.is_none() => socket = Some(value(args.next())?),
            "--config" | "-c" if config.is_none() => config = Some(value(args.next())?),
            "status" if !status => status = true,
            a if a.starts_with('-') => return None,
            name if status && !name.is_empty() => names.push(name.to_owned()),
            _ => return None,
        }
    }
    if !status || (socket.is_some() && config.is_some()) {
        return None;
    }
    Some(Cli {
        socket: socket.map(PathBuf::from),
        config: config.map(PathBuf::from),
        json,
        command: Cmd::Status {
            names,
            group: None,
            usage: false,
        },
    })
}

/// The commands that print something about supctl itself and need no daemon.
fn offline(cmd: &Cmd) -> Option<ExitCode> {
    use std::io::Write;
    let mut text = Vec::new();
    let written = match cmd {
        Cmd::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "supctl", &mut text);
            Ok(())
        }
        Cmd::Man { dir: Some(dir) } => std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(Cli::command(), dir))
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
        Cmd::Man { dir: None } => clap_mangen::Man::new(Cli::command()).render(&mut text),
        _ => return None,
    };
    let mut out = std::io::stdout().lock();
    Some(
        match written.and_then(|()| out.write_all(&text).and_then(|()| out.flush())) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if pipe::reader_gone(&e) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("supctl: writing the output: {e}");
                ExitCode::FAILURE
            }
        },
    )
}

fn run(cli: Cli, socket: &Path) -> Result<(), Failure> {
    let out = Out {
        json: cli.json,
        colour: render::colour_enabled(),
    };
    if let Cmd::Top = cli.command {
        return top::run(socket);
    }
    if let Some(selection) = several_logs(&cli.command)? {
        let Cmd::Logs {
            stderr,
            lines,
            follow,
            ..
        } = cli.command
        else {
            return Ok(());
        };
        return logs::many(socket, selection, stderr, lines, follow, out.json);
    }
    let request = request(&cli.command)?;
    let mut client = Client::connect(socket)?;
    if let Cmd::Status {
        names,
        group,
        usage,
    } = &cli.command
    {
        let one_named = names.len() == 1 && group.is_none();
        if !out.json && !one_named && !usage {
            // The plain table: rows that borrow from the answer's line, rendered into
            // one text before the line goes.
            let text = client.call_then(&request, |line, id| {
                let rows = match row::quick(line, id) {
                    Some(rows) => Ok(rows),
                    None => client::answer::<row::Rows<'_>>(line, id)?,
                };
                Some(rows.map(|rows| {
                    let mut text = history_warning(rows.history_error.as_deref());
                    render::rows_table(&mut text, &rows.jobs, out.colour);
                    text
                }))
            })?;
            print!("{text}");
            return Ok(());
        }
        if !out.json {
            let list: JobList = client.call_decoded(&request)?;
            print!("{}", history_warning(list.history_error.as_deref()));
            print_status(out, &list, one_named, *usage);
            return Ok(());
        }
    }
    let reply = client.call(&request)?;
    match cli.command {
        Cmd::IsAlive { .. } => print_is_alive(out, &reply),
        Cmd::Logs { follow, .. } => print_logs(out, &reply, &mut client, follow),
        Cmd::Events => print_events(out, &reply, &mut client),
        Cmd::Shutdown { no_wait, drain } => {
            print_shutdown(out, &reply, &mut client, !no_wait, drain)
        }
        Cmd::Wait { .. } => print_waited(out, &reply),
        Cmd::Start { .. } | Cmd::Restart(_) if out.json => {
            print_raw(&reply)?;
            failed_start(&cli.command, &reply.decode()?)
        }
        _ if out.json => print_raw(&reply),
        // Without --json, printed above.
        Cmd::Status { .. } => Ok(()),
        Cmd::Start { .. } | Cmd::Restart(_) | Cmd::Add { .. } => {
            let list: JobList = reply.decode()?;
            print!("{}", render::table(&list.jobs, out.colour));
            failed_start(&cli.command, &list)
        }
        Cmd::Terminate { no_wait, .. } => print_terminated(&reply, no_wait),
        Cmd::Kill { signal, .. } => print_killed(&reply, signal),
        Cmd::Remove { .. } => print_removed(&reply),
        Cmd::Scale { .. } => {
            let list: JobList = reply.decode()?;
            print!("{}", render::table(&list.jobs, out.colour));
            Ok(())
        }
        Cmd::Reload => print_reload(&reply),
        Cmd::Ping => print_ping(&reply, socket),
        Cmd::History { .. } => {
            let result: HistoryResult = reply.decode()?;
            print!("{}", history::table(&result.runs));
            Ok(())
        }
        Cmd::Metrics => print_metrics(&reply),
        Cmd::Completions { .. } | Cmd::Man { .. } | Cmd::Top => Ok(()),
    }
}

/// `status` for people: one job named alone as a block, otherwise the table (with usage
/// columns when asked).
fn print_status(out: Out, list: &JobList, one_named: bool, usage: bool) {
    let text = match list.jobs.as_slice() {
        [job] if one_named => render::block(job),
        jobs if usage => render::usage_table(jobs, out.colour),
        jobs => render::table(jobs, out.colour),
    };
    print!("{text}");
}

/// How output is printed.
#[derive(Debug, Clone, Copy)]
struct Out {
    json: bool,
    colour: bool,
}

/// The request a command sends.
fn request(cmd: &Cmd) -> Result<Request, Failure> {
    Ok(match cmd {
        Cmd::Status {
            names,
            group,
            usage,
        } => Request::Status(StatusParams {
            selection: Selection {
                names: (!names.is_empty()).then(|| names.clone()),
                group: group.clone(),
                all: None,
            },
            usage: usage.then_some(true),
        }),
        Cmd::Start { select, no_deps } => Request::Start(protocol::StartParams {
            selection: select.require()?,
            no_deps: no_deps.then_some(true),
        }),
        Cmd::Terminate {
            select,
            signal,
            no_wait,
        } => Request::Terminate(TerminateParams {
            selection: select.require()?,
            signal: *signal,
            wait: Some(!no_wait),
        }),
        Cmd::Restart(sel) => Request::Restart(sel.require()?),
        Cmd::Kill { names, signal } => Request::Kill(KillParams {
            names: names.clone(),
            signal: *signal,
        }),
        Cmd::IsAlive { name } => Request::Status(Selection::names(vec![name.clone()]).into()),
        Cmd::Wait {
            names,
            group,
            all,
            timeout,
            ready,
        } => Request::Wait(WaitParams {
            selection: Selection {
                names: (!names.is_empty()).then(|| names.clone()),
                group: group.clone(),
                all: all.then_some(true),
            },
            timeout_ms: timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            ready: ready.then_some(true),
        }),
        Cmd::Logs {
            names,
            stderr,
            lines,
            follow,
            ..
        } => Request::Logs(LogsParams {
            name: names.first().cloned().unwrap_or_default(),
            stream: if *stderr {
                Stream::Stderr
            } else {
                Stream::Stdout
            },
            lines: Some(*lines),
            follow: Some(*follow),
        }),
        Cmd::Events => Request::Subscribe,
        Cmd::Add {
            name,
            group,
            daemon,
            restart,
            no_start,
            command,
        } => Request::Add(AddParams {
            name: name.clone(),
            job: added_job(
                command,
                group.as_deref(),
                *daemon,
                restart.as_deref(),
                *no_start,
            ),
        }),
        Cmd::Remove { names } => Request::Remove(NamesParams {
            names: names.clone(),
        }),
        Cmd::Scale { name, replicas } => Request::Scale(ScaleParams {
            name: name.clone(),
            replicas: *replicas,
        }),
        Cmd::Reload => Request::Reload,
        Cmd::Shutdown { drain, .. } => Request::Shutdown(ShutdownParams {
            drain: drain.then_some(true),
        }),
        Cmd::Ping => Request::Ping,
        Cmd::History { names, limit } => Request::History(HistoryParams {
            names: (!names.is_empty()).then(|| names.clone()),
            limit: Some(*limit),
        }),
        Cmd::Metrics => Request::Metrics,
        Cmd::Completions { .. } | Cmd::Man { .. } | Cmd::Top => {
            return Err(Failure::Usage(
                "completions, man and top send no single request".into(),
            ))
        }
    })
}

/// The job keys of `supctl add`, as the `add` method takes them.
fn added_job(
    command: &[String],
    group: Option<&str>,
    daemon: bool,
    restart: Option<&str>,
    no_start: bool,
) -> Value {
    let mut job = Map::new();
    job.insert("command".into(), Value::from(command.to_vec()));
    if let Some(g) = group {
        job.insert("group".into(), Value::from(g));
    }
    if daemon {
        job.insert("daemon".into(), Value::from(true));
    }
    if let Some(r) = restart {
        job.insert("restart".into(), Value::from(r));
    }
    if no_start {
        job.insert("autostart".into(), Value::from(false));
    }
    Value::Object(job)
}

fn print_raw(reply: &Reply) -> Result<(), Failure> {
    println!("{}", reply.raw());
    Ok(())
}

/// Print a line and flush; false once stdout is closed (`supctl events | head -3`),
/// which ends a stream quietly.
fn emit(line: std::fmt::Arguments<'_>) -> bool {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_fmt(line).and_then(|()| out.flush()).is_ok()
}

fn print_is_alive(out: Out, reply: &Reply) -> Result<(), Failure> {
    let list: JobList = reply.decode()?;
    let job = list
        .jobs
        .first()
        .ok_or(Failure::Failed(Some("no such job".into())))?;
    if out.json {
        println!("{}", reply.raw());
    } else {
        println!("{}", job.state);
    }
    if job.alive {
        Ok(())
    } else {
        Err(Failure::Failed(None))
    }
}

fn print_logs(out: Out, reply: &Reply, client: &mut Client, follow: bool) -> Result<(), Failure> {
    if out.json {
        println!("{}", reply.raw());
    } else {
        let tail: LogsResult = reply.decode()?;
        for l in tail.lines {
            println!("{l}");
        }
    }
    if !follow {
        return Ok(());
    }
    while let Some(note) = client.next_notification()? {
        let written = if out.json && note.method == protocol::note::LAGGED {
            let lag: Lagged =
                serde_json::from_value(note.params).map_err(ClientError::Unreadable)?;
            emit(format_args!(
                "{{\"lagged\":true,\"missed\":{}}}\n",
                lag.missed
            ))
        } else if out.json {
            // Bare `{"name","stream","data"}` objects, as `events --json` prints events.
            emit(format_args!("{}\n", note.params))
        } else if note.method == protocol::note::LAGGED {
            emit(format_args!(
                "[supctl: skipped output the terminal could not keep up with]\n"
            ))
        } else {
            match serde_json::from_value::<LogData>(note.params) {
                Ok(data) => emit(format_args!("{}", data.data)),
                Err(e) => return Err(ClientError::Unreadable(e).into()),
            }
        };
        if !written {
            break;
        }
    }
    Ok(())
}

/// Scripts get the snapshot first (`{"jobs":[...]}`, the state the events start from),
/// then one line per event, and `{"lagged":true,"missed":N}` if they fell behind.
fn print_events(out: Out, reply: &Reply, client: &mut Client) -> Result<(), Failure> {
    if out.json {
        println!("{}", reply.raw());
    }
    while let Some(note) = client.next_notification()? {
        let line = if note.method == protocol::note::EVENT {
            let event: Event =
                serde_json::from_value(note.params).map_err(ClientError::Unreadable)?;
            if out.json {
                serde_json::to_string(&event).unwrap_or_default()
            } else {
                render::event(&event)
            }
        } else if note.method == protocol::note::HEALTH {
            let change: HealthChange =
                serde_json::from_value(note.params).map_err(ClientError::Unreadable)?;
            if out.json {
                serde_json::to_string(&change).unwrap_or_default()
            } else {
                render::health_change(&change)
            }
        } else {
            let lag: Lagged =
                serde_json::from_value(note.params).map_err(ClientError::Unreadable)?;
            if out.json {
                format!("{{\"lagged\":true,\"missed\":{}}}", lag.missed)
            } else {
                format!(
                    "[supctl: missed {} events; run `supctl status`]",
                    lag.missed
                )
            }
        };
        if !emit(format_args!("{line}\n")) {
            break;
        }
    }
    Ok(())
}

fn print_shutdown(
    out: Out,
    reply: &Reply,
    client: &mut Client,
    wait: bool,
    drain: bool,
) -> Result<(), Failure> {
    if out.json {
        println!("{}", reply.raw());
    } else if !wait {
        println!("supervisord is shutting down");
    } else if drain {
        println!("supervisord is draining: waiting for jobs to finish");
    }
    if wait {
        client.wait_closed();
        if !out.json {
            println!("supervisord has shut down");
        }
    }
    Ok(())
}

fn print_waited(out: Out, reply: &Reply) -> Result<(), Failure> {
    let list: JobList = reply.decode()?;
    if out.json {
        println!("{}", reply.raw());
    } else {
        for job in &list.jobs {
            if job.alive {
                println!("{}: {}", job.name, render::uptime_or_exit(job));
            } else {
                println!("{}", render::ended(job));
            }
        }
    }
    if list.success == Some(true) {
        Ok(())
    } else {
        Err(Failure::Failed(None))
    }
}

fn print_terminated(reply: &Reply, no_wait: bool) -> Result<(), Failure> {
    let list: JobList = reply.decode()?;
    for job in list.jobs {
        if no_wait {
            println!("{}: {}", job.name, job.state);
        } else {
            println!("{}", render::ended(&job));
        }
    }
    Ok(())
}

fn print_killed(reply: &Reply, signal: Signal) -> Result<(), Failure> {
    let list: JobList = reply.decode()?;
    for job in list.jobs {
        match job.pid {
            Some(pid) => println!("{}: sent {signal} to pid {pid}", job.name),
            None => println!("{}: not running ({}), nothing sent", job.name, job.state),
        }
    }
    Ok(())
}

fn print_removed(reply: &Reply) -> Result<(), Failure> {
    let list: JobList = reply.decode()?;
    for job in list.jobs {
        println!("removed {}", render::ended(&job));
    }
    Ok(())
}

fn print_reload(reply: &Reply) -> Result<(), Failure> {
    let result: ReloadResult = reply.decode()?;
    for (key, names) in [
        ("added", &result.added),
        ("changed", &result.changed),
        ("removed", &result.removed),
        ("unchanged", &result.unchanged),
    ] {
        let names = if names.is_empty() {
            "-".to_owned()
        } else {
            names.join(", ")
        };
        println!("{key:<10} {names}");
    }
    for w in &result.warnings {
        eprintln!("supctl: warning: {w}");
    }
    Ok(())
}

fn print_ping(reply: &Reply, socket: &Path) -> Result<(), Failure> {
    let ping: PingResult = reply.decode()?;
    let up = Duration::from_millis(ping.uptime_ms);
    println!(
        "supervisord {} pid {} up {} at {}",
        ping.version,
        ping.pid,
        render::short_duration(up),
        socket.display()
    );
    if let Some(e) = &ping.history_error {
        println!("run history off: {e}");
    }
    if let Some(c) = &ping.containment {
        println!("containment: {c}");
    }
    Ok(())
}

/// The status table's header line when the daemon's run history is not being written
/// (the `status` result says so); empty otherwise.
fn history_warning(history_error: Option<&str>) -> String {
    match history_error {
        Some(e) => format!("warning: run history off: {e}\n"),
        None => String::new(),
    }
}

/// `start` and `restart` fail (exit 1) when a job they started is `fatal` or in
/// `backoff` once the daemon answers: it could not be spawned, or ended too soon.
fn failed_start(cmd: &Cmd, list: &JobList) -> Result<(), Failure> {
    if !matches!(cmd, Cmd::Start { .. } | Cmd::Restart(_)) {
        return Ok(());
    }
    let failed: Vec<&str> = list
        .jobs
        .iter()
        .filter(|j| {
            matches!(
                j.state,
                protocol::JobState::Fatal | protocol::JobState::Backoff
            )
        })
        .map(|j| j.name.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::Failed(Some(format!(
            "did not start: {}",
            failed.join(", ")
        ))))
    }
}

/// `logs` of several jobs (`logs a b`, `--group`, `--all`): their selection. `None` for
/// the one-job form, which prints the lines as they are.
fn several_logs(cmd: &Cmd) -> Result<Option<Selection>, Failure> {
    let Cmd::Logs {
        names, group, all, ..
    } = cmd
    else {
        return Ok(None);
    };
    if names.len() == 1 && group.is_none() && !all {
        return Ok(None);
    }
    let select = Select {
        names: names.clone(),
        group: group.clone(),
        all: *all,
    };
    select.require().map(Some)
}

fn print_metrics(reply: &Reply) -> Result<(), Failure> {
    let metrics: MetricsResult = reply.decode()?;
    print!("{}", metrics.text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wherever the fast reading of `status` answers, it is what clap reads; everything
    /// else is left to clap.
    #[test]
    fn plain_status_agrees_with_clap_or_declines() {
        let lines: &[&[&str]] = &[
            &["status"],
            &["status", "a", "b"],
            &["status", "status"],
            &["--socket", "/run/s.sock", "status"],
            &["status", "--socket", "/run/s.sock", "web"],
            &["-c", "jobs.toml", "status", "x"],
            &["--config", "jobs.toml", "--json", "status"],
            &["status", "--json", "a"],
            // Left to clap:
            &[],
            &["ping"],
            &["start", "status"],
            &["status", "-g", "g"],
            &["status", "--usage"],
            &["status", "--help"],
            &["status", "--", "-x"],
            &["--socket=/s", "status"],
            &["--socket", "/s", "--config", "j.toml", "status"],
            &["--socket", "-weird", "status"],
            &["--json", "--json", "status"],
            &["status", ""],
            &["--version"],
        ];
        let mut fast = 0;
        for line in lines {
            let args = line.iter().map(std::ffi::OsString::from);
            let Some(ours) = plain_status(args) else {
                continue;
            };
            fast += 1;
            let clap = Cli::try_parse_from(std::iter::once("supctl").chain(line.iter().copied()))
                .unwrap_or_else(|e| panic!("{line:?}: clap refused what the fast path took: {e}"));
            assert_eq!(format!("{ours:?}"), format!("{clap:?}"), "{line:?}");
        }
        assert_eq!(fast, 8, "the first eight lines take the fast path");
    }
}
