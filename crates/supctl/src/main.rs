//! supctl: the command-line client for supervisord.
//!
//! Exit codes: 0 done; 1 the request failed or a waited job did not succeed; 2 usage
//! error; 3 the daemon could not be reached.

mod client;
mod render;

use clap::{Args, CommandFactory, Parser, Subcommand};
use client::{Client, ClientError};
use protocol::{
    AddParams, KillParams, LogsParams, NamesParams, Request, Selection, ShutdownParams, Signal,
    Stream, TerminateParams, WaitParams,
};
use serde_json::{json, Value};
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

--json prints each method's result as one JSON document (the protocol's result,
unchanged); `events --json` and `logs -f --json` print one JSON object per line.
See docs/protocol.md.";

/// Give orders to supervisord over its control socket.
#[derive(Debug, Parser)]
#[command(name = "supctl", version, about, long_about = None, after_long_help = AFTER_HELP)]
struct Cli {
    /// The control socket [default: $SUPERVISORD_SOCKET, then the --config file's
    /// `socket`, then $XDG_RUNTIME_DIR/supervisord.sock or /tmp/supervisord-UID/supervisord.sock]
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
    fn selection(self) -> Selection {
        Selection {
            names: (!self.names.is_empty()).then_some(self.names),
            group: self.group,
            all: self.all.then_some(true),
        }
    }

    fn require(self) -> Result<Selection, Failure> {
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
    },
    /// Start jobs
    Start(Select),
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
    },
    /// Print a job's captured output
    Logs {
        /// The job
        name: String,
        /// Standard error instead of standard output
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
    let cli = Cli::parse();
    if let Some(code) = offline(&cli.command) {
        return code;
    }
    let socket = match socket_path(&cli) {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("supctl: {msg}");
            return ExitCode::from(2);
        }
    };
    match run(cli, &socket) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Failed(msg)) => {
            if let Some(m) = msg {
                eprintln!("supctl: {m}");
            }
            ExitCode::from(1)
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("supctl: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Client(e)) => {
            eprintln!("supctl: {e}");
            match e {
                ClientError::Unreachable { .. } => ExitCode::from(3),
                _ => ExitCode::from(1),
            }
        }
    }
}

/// The commands that print something about supctl itself and need no daemon.
fn offline(cmd: &Cmd) -> Option<ExitCode> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = match cmd {
        Cmd::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "supctl", &mut out);
            Ok(())
        }
        Cmd::Man { dir: Some(dir) } => clap_mangen::generate_to(Cli::command(), dir),
        Cmd::Man { dir: None } => clap_mangen::Man::new(Cli::command()).render(&mut out),
        _ => return None,
    };
    Some(match written.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("supctl: writing the output: {e}");
            ExitCode::FAILURE
        }
    })
}

/// `--socket`, then `$SUPERVISORD_SOCKET`, then the `--config` file's socket, then the
/// default.
fn socket_path(cli: &Cli) -> Result<PathBuf, String> {
    if let Some(s) = &cli.socket {
        return Ok(s.clone());
    }
    if let Some(s) = std::env::var_os("SUPERVISORD_SOCKET").filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(s));
    }
    if let Some(file) = &cli.config {
        if let Some(s) = socket_from_job_file(file)? {
            return Ok(s);
        }
    }
    Ok(
        match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            Some(dir) => Path::new(&dir).join("supervisord.sock"),
            None => PathBuf::from(format!(
                "/tmp/supervisord-{}/supervisord.sock",
                nix::unistd::geteuid()
            )),
        },
    )
}

fn socket_from_job_file(file: &Path) -> Result<Option<PathBuf>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let doc: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{}: {}", file.display(), e.message().trim()))?;
    let socket = doc
        .get("supervisor")
        .and_then(|s| s.get("socket"))
        .and_then(|s| s.as_str());
    let base = std::path::absolute(file)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    Ok(socket.map(|s| base.join(s)))
}

fn run(cli: Cli, socket: &Path) -> Result<(), Failure> {
    let colour = render::colour_enabled();
    let json_out = cli.json;
    let is_alive = matches!(cli.command, Cmd::IsAlive { .. });
    let shutdown_wait = match cli.command {
        Cmd::Shutdown { no_wait, drain } => Some((!no_wait, drain)),
        _ => None,
    };
    let request = match cli.command {
        Cmd::Status { names, group } => Request::Status(Selection {
            names: (!names.is_empty()).then_some(names),
            group,
            all: None,
        }),
        Cmd::Start(sel) => Request::Start(sel.require()?),
        Cmd::Terminate {
            select,
            signal,
            no_wait,
        } => Request::Terminate(TerminateParams {
            selection: select.require()?,
            signal,
            wait: Some(!no_wait),
        }),
        Cmd::Restart(sel) => Request::Restart(sel.require()?),
        Cmd::Kill { names, signal } => Request::Kill(KillParams { names, signal }),
        Cmd::IsAlive { name } => Request::Status(Selection::names(vec![name])),
        Cmd::Wait {
            names,
            group,
            all,
            timeout,
        } => Request::Wait(WaitParams {
            selection: Select { names, group, all }.selection(),
            timeout_ms: timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        }),
        Cmd::Logs {
            ref name,
            stderr,
            lines,
            follow,
        } => Request::Logs(LogsParams {
            name: name.clone(),
            stream: if stderr {
                Stream::Stderr
            } else {
                Stream::Stdout
            },
            lines: Some(lines),
            follow: Some(follow),
        }),
        Cmd::Events => Request::Subscribe,
        Cmd::Add {
            ref name,
            ref group,
            daemon,
            ref restart,
            no_start,
            ref command,
        } => {
            let mut job = json!({ "command": command });
            if let Some(g) = group {
                job["group"] = json!(g);
            }
            if daemon {
                job["daemon"] = json!(true);
            }
            if let Some(r) = restart {
                job["restart"] = json!(r);
            }
            if no_start {
                job["autostart"] = json!(false);
            }
            Request::Add(AddParams {
                name: name.clone(),
                job,
            })
        }
        Cmd::Remove { names } => Request::Remove(NamesParams { names }),
        Cmd::Reload => Request::Reload,
        Cmd::Shutdown { drain, .. } => Request::Shutdown(ShutdownParams {
            drain: drain.then_some(true),
        }),
        Cmd::Ping => Request::Ping,
        Cmd::Completions { .. } | Cmd::Man { .. } => {
            return Err(Failure::Usage("completions and man need no daemon".into()))
        }
    };

    let mut client = Client::connect(socket)?;
    let reply = client.call(&request)?;

    match &request {
        _ if is_alive => {
            let jobs = reply.jobs();
            let job = jobs
                .first()
                .ok_or(Failure::Failed(Some("no such job".into())))?;
            if json_out {
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
        Request::Logs(p) => {
            if json_out {
                println!("{}", reply.raw());
            } else if let Some(lines) = reply.value()["lines"].as_array() {
                for l in lines {
                    println!("{}", l.as_str().unwrap_or_default());
                }
            }
            if p.follow == Some(true) {
                use std::io::Write;
                while let Some(note) = client.next_notification()? {
                    let mut out = std::io::stdout().lock();
                    let written = if json_out {
                        writeln!(out, "{}", serde_json::to_string(&note).unwrap_or_default())
                    } else if note.method == "lagged" {
                        writeln!(
                            out,
                            "[supctl: skipped output the terminal could not keep up with]"
                        )
                    } else {
                        write!(out, "{}", note.params["data"].as_str().unwrap_or_default())
                    };
                    if written.and_then(|()| out.flush()).is_err() {
                        break;
                    }
                }
            }
            Ok(())
        }
        Request::Subscribe => {
            // Scripts get the snapshot first (`{"jobs":[...]}`, the state the events start
            // from), then one line per event, and `{"lagged":true,"missed":N}` if they fell
            // behind.
            if json_out {
                println!("{}", reply.raw());
            }
            while let Some(note) = client.next_notification()? {
                let line = if json_out && note.method == "event" {
                    serde_json::to_string(&note.params).unwrap_or_default()
                } else if json_out {
                    json!({ "lagged": true, "missed": note.params["missed"] }).to_string()
                } else if note.method == "event" {
                    match serde_json::from_value(note.params.clone()) {
                        Ok(e) => render::event(&e),
                        Err(_) => note.params.to_string(),
                    }
                } else {
                    format!(
                        "[supctl: missed {} events; run `supctl status`]",
                        note.params["missed"]
                    )
                };
                // A closed stdout (`supctl events | head -3`) ends the stream quietly.
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                    break;
                }
            }
            Ok(())
        }
        _ if json_out => {
            println!("{}", reply.raw());
            match &request {
                Request::Wait(_) if reply.value()["success"] != json!(true) => {
                    Err(Failure::Failed(None))
                }
                _ => Ok(()),
            }
        }
        Request::Status(_) | Request::Start(_) | Request::Restart(_) | Request::Add(_) => {
            print!("{}", render::table(&reply.jobs(), colour));
            Ok(())
        }
        Request::Terminate(p) => {
            for job in reply.jobs() {
                if p.wait == Some(false) {
                    println!("{}: {}", job.name, job.state);
                } else {
                    println!("{}", render::ended(&job));
                }
            }
            Ok(())
        }
        Request::Kill(p) => {
            for job in reply.jobs() {
                match job.pid {
                    Some(pid) => println!("{}: sent {} to pid {pid}", job.name, p.signal),
                    None => println!("{}: not running ({}), nothing sent", job.name, job.state),
                }
            }
            Ok(())
        }
        Request::Wait(_) => {
            for job in reply.jobs() {
                println!("{}", render::ended(&job));
            }
            if reply.value()["success"] == json!(true) {
                Ok(())
            } else {
                Err(Failure::Failed(None))
            }
        }
        Request::Remove(_) => {
            for job in reply.jobs() {
                println!("removed {}", render::ended(&job));
            }
            Ok(())
        }
        Request::Reload => {
            let result = reply.value();
            for key in ["added", "changed", "removed", "unchanged"] {
                let names: Vec<&str> = result[key]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                println!(
                    "{key:<10} {}",
                    if names.is_empty() {
                        "-".into()
                    } else {
                        names.join(", ")
                    }
                );
            }
            if let Some(warnings) = result["warnings"].as_array() {
                for w in warnings.iter().filter_map(Value::as_str) {
                    eprintln!("supctl: warning: {w}");
                }
            }
            Ok(())
        }
        Request::Shutdown(_) => {
            let (wait, drain) = shutdown_wait.unwrap_or((false, false));
            if !wait {
                println!("supervisord is shutting down");
            } else {
                if drain {
                    println!("supervisord is draining: waiting for jobs to finish");
                }
                client.wait_closed();
                println!("supervisord has shut down");
            }
            Ok(())
        }
        Request::Ping => {
            let result = reply.value();
            let up = Duration::from_millis(result["uptime_ms"].as_u64().unwrap_or(0));
            println!(
                "supervisord {} pid {} up {} at {}",
                result["version"].as_str().unwrap_or("?"),
                result["pid"],
                render::short_duration(up),
                socket.display()
            );
            Ok(())
        }
    }
}
