//! supervisord's command line: parse arguments, set up logging, find and check the job
//! file, then hand over to [`supervisord::daemon::run`] on a current-thread runtime.
//! The subcommands (`import`, `completions`, `man`) are one-shot tools that never start
//! the daemon.
//!
//! Exit codes: 0 ok; 1 a batch run had a failed job, or the daemon could not start;
//! 2 a bad job file or usage.

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use supervisord::config::{self, Config, JobSpec};
use supervisord::daemon::{self, Options};
use supervisord::guard::{self, Guard};
use supervisord::server::Limits;

mod pipe;

const AFTER_HELP: &str = "\
Signals:
  SIGTERM, SIGINT  stop every job (stop_signal, then SIGKILL after stop_timeout) and exit
  SIGHUP           re-read the job file, like `supctl reload`

Exit status:
  0  shut down cleanly; in batch mode (--exit-when-done), every job succeeded
  1  in batch mode, a job failed; or the daemon could not start (socket in use, ...)
  2  a bad job file, or a usage error

Environment:
  RUST_LOG        log filter when --log-level is not given (e.g. info, supervisord=debug)
  JOURNAL_STREAM  set by systemd: text log lines are written without timestamps
  NOTIFY_SOCKET   set by systemd (Type=notify): READY=1, RELOADING=1, STOPPING=1, STATUS=
  WATCHDOG_USEC   set by systemd (WatchdogSec=): WATCHDOG=1 pings at half the period
  XDG_RUNTIME_DIR, XDG_CONFIG_HOME  where the default socket and job file are looked for";

/// Runs named jobs from a TOML job file and takes orders over a Unix socket.
#[derive(Debug, Parser)]
#[command(
    name = "supervisord",
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true,
    after_long_help = AFTER_HELP
)]
struct Args {
    #[command(subcommand)]
    command: Option<Tool>,
    /// The job file [default: ./supervisord.toml, then
    /// $XDG_CONFIG_HOME/supervisord/supervisord.toml, then /etc/supervisord.toml]
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The control socket [default: the job file's `socket`, else
    /// $XDG_RUNTIME_DIR/supervisord.sock, else /tmp/supervisord-UID/supervisord.sock]
    #[arg(short, long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Batch mode: exit once every non-daemon job has ended (0 if all succeeded, else 1)
    #[arg(long)]
    exit_when_done: bool,
    /// Only validate the job file (this FILE, or --config's) and print the resolved jobs
    #[arg(long, value_name = "FILE", num_args = 0..=1)]
    check: Option<Option<PathBuf>>,
    /// How the daemon's own log lines (on stderr) look
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// The daemon's log level (error, warn, info, debug, trace); overrides RUST_LOG
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
}

/// One-shot tools: they print to stdout and exit.
#[derive(Debug, Subcommand)]
enum Tool {
    /// Convert a Supervisor INI file ([program:x] sections) or a Procfile (foreman,
    /// honcho, overmind; the .env beside it is read) to a job file on stdout; what could
    /// not be mapped is listed on stderr
    Import {
        /// supervisord.conf, a conf.d/*.conf file, or a Procfile
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the job file's JSON Schema (for editors: `#:schema` in taplo / Even Better
    /// TOML)
    Schema,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) for supervisord(1), or write every page to a folder
    Man {
        /// Write supervisord.1 and one supervisord-COMMAND.1 per subcommand into this folder
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == guard::GUARD_ARG)
    {
        guard::run();
    }
    supervisord::os::tune_malloc();
    let args = Args::parse();
    if let Some(tool) = args.command {
        return run_tool(tool);
    }
    if let Err(e) = init_logging(args.log_format, args.log_level.as_deref()) {
        eprintln!("supervisord: {e}");
        return ExitCode::from(2);
    }
    let check = args.check.is_some();
    let path = match args
        .check
        .clone()
        .flatten()
        .or_else(|| args.config.clone())
        .or_else(find_config)
    {
        Some(p) => p,
        None => {
            eprintln!(
                "supervisord: no job file: pass --config FILE, or create ./supervisord.toml, \
                 $XDG_CONFIG_HOME/supervisord/supervisord.toml or /etc/supervisord.toml"
            );
            return ExitCode::from(2);
        }
    };
    let config = match config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("supervisord: {e}");
            return ExitCode::from(2);
        }
    };
    let socket = args
        .socket
        .clone()
        .map(|s| std::path::absolute(&s).unwrap_or(s))
        .or_else(|| config.socket.clone())
        .unwrap_or_else(default_socket);
    if check {
        // The verdict the daemon would give at start: a cgroup limit whose controller
        // it could not give its runs refuses the file.
        if let Err(e) = config.refuse_missing(&supervisord::cgroup::predict(config.cgroup).1) {
            eprintln!("supervisord: {e}");
            return ExitCode::from(2);
        }
        pipe::quiet_when_reader_goes();
        print_check(&config, &socket);
        return ExitCode::SUCCESS;
    }
    let batch = args.exit_when_done || config.exit_when_done;

    supervisord::os::become_subreaper();
    let fd_limit = supervisord::os::raise_fd_limit();
    tracing::debug!(fd_limit, "open-files limit");
    let guard = match Guard::spawn() {
        Ok(g) => Some(g),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the guard process; jobs may outlive a crash of supervisord");
            None
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("supervisord: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = Options {
        config,
        socket,
        batch,
        limits: Limits::default(),
        notify: supervisord::notify::Notifier::from_env(),
    };
    let outcome = runtime.block_on(daemon::run(opts, guard));
    // Dropping the runtime drops every task, and with them the last log handles.
    drop(runtime);
    match outcome {
        Ok((code, leftovers)) => {
            leftovers.writer.join();
            if let Some(h) = leftovers.history {
                h.join();
            }
            if let Some(g) = leftovers.guard {
                g.finish();
            }
            ExitCode::from(code)
        }
        Err(e) => {
            eprintln!("supervisord: {e}");
            match e {
                // A job file refused: as a load error.
                daemon::StartError::Config(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn run_tool(tool: Tool) -> ExitCode {
    use std::io::Write;
    pipe::quiet_when_reader_goes();
    let mut text = Vec::new();
    let written = match tool {
        Tool::Import { file } => return import(&file),
        Tool::Schema => {
            text = supervisord::config::schema().into_bytes();
            Ok(())
        }
        Tool::Completions { shell } => {
            clap_complete::generate(shell, &mut Args::command(), "supervisord", &mut text);
            Ok(())
        }
        Tool::Man { dir: Some(dir) } => std::fs::create_dir_all(&dir)
            .and_then(|()| clap_mangen::generate_to(Args::command(), &dir))
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
        Tool::Man { dir: None } => clap_mangen::Man::new(Args::command()).render(&mut text),
    };
    let mut out = std::io::stdout().lock();
    match written.and_then(|()| out.write_all(&text).and_then(|()| out.flush())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if pipe::reader_gone(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("supervisord: writing the output: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `supervisord import FILE`: the job file on stdout, one line per unmapped thing on
/// stderr (`FILE:LINE: what`). Exit 0 when a job file was written, 2 when the INI file
/// cannot be read.
fn import(file: &Path) -> ExitCode {
    use supervisord::import::{import, Expansions};
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("supervisord: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let imported = if supervisord::import::procfile::looks_like(&text) {
        let dotenv = file.with_file_name(".env").is_file();
        supervisord::import::procfile::import(&text, dotenv)
    } else {
        import(&text, &Expansions::for_file(file))
    };
    match imported {
        Ok(imported) => {
            print!("{}", imported.toml);
            for n in &imported.notes {
                match n.line {
                    0 => eprintln!("{}: {}", file.display(), n.message),
                    l => eprintln!("{}:{l}: {}", file.display(), n.message),
                }
            }
            if imported.jobs == 0 && !supervisord::import::procfile::looks_like(&text) {
                eprintln!(
                    "{}: no [program:x] sections: the job file has no jobs",
                    file.display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("supervisord: {}:{e}", file.display());
            ExitCode::from(2)
        }
    }
}

fn init_logging(format: LogFormat, level: Option<&str>) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => {
            check_level(l)?;
            EnvFilter::try_new(l).map_err(|e| format!("bad --log-level {l:?}: {e}"))?
        }
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // Under systemd the journal stamps every line itself.
    let journald = stderr_is_journal();
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false);
    match (format, journald) {
        (LogFormat::Json, true) => builder.json().flatten_event(true).without_time().init(),
        (LogFormat::Json, false) => builder.json().flatten_event(true).init(),
        (LogFormat::Text, true) => builder.without_time().init(),
        (LogFormat::Text, false) => builder.init(),
    }
    Ok(())
}

/// A bare word in a filter names a *target*, so `infoo` parses and then lets nothing
/// through: every directive without `=` must be a level.
fn check_level(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    for directive in filter.split(',').map(str::trim) {
        if !directive.contains('=') && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "bad --log-level {filter:?}: {directive:?} is not a level (expected error, warn, \
                 info, debug, trace or off, or a filter such as supervisord=debug)"
            ));
        }
    }
    Ok(())
}

/// Whether stderr is connected to the journal: systemd sets `JOURNAL_STREAM=DEV:INODE`
/// for the stream it connected, and a redirected stderr inherits the variable but not
/// the stream, so the two are compared (as sd_journal_stream_fd(3) advises).
fn stderr_is_journal() -> bool {
    let Some(var) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = var.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    match nix::sys::stat::fstat(std::io::stderr()) {
        Ok(st) => st.st_dev == dev && st.st_ino == ino,
        Err(_) => false,
    }
}

fn find_config() -> Option<PathBuf> {
    protocol::discovery::job_file_candidates()
        .into_iter()
        .find(|p| p.is_file())
}

fn default_socket() -> PathBuf {
    protocol::default_socket_path(
        std::env::var_os("XDG_RUNTIME_DIR").as_deref(),
        nix::unistd::geteuid().as_raw(),
    )
}

/// `--check`: the resolved job file on stdout. Written in one piece, so a reader that
/// stops early (`| head`) ends it quietly.
fn print_check(config: &Config, socket: &Path) {
    use std::io::Write;
    let mut out = String::new();
    check_report(&mut out, config, socket);
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
}

fn check_report(out: &mut String, config: &Config, socket: &Path) {
    let _ = writeln!(
        out,
        "{}: ok, {} job{}",
        config.path.display(),
        config.jobs.len(),
        if config.jobs.len() == 1 { "" } else { "s" }
    );
    let _ = writeln!(out, "  socket          {}", socket.display());
    let _ = writeln!(out, "  log_dir         {}", config.log_dir.display());
    let _ = writeln!(out, "  exit_when_done  {}", config.exit_when_done);
    for (name, g) in &config.groups {
        if let Some(n) = g.max_parallel {
            let _ = writeln!(out, "  group {name:<9} max_parallel {n}");
        }
    }
    let (parent, offer) = supervisord::cgroup::predict(config.cgroup);
    let containment = match parent {
        Ok(dir) => format!(
            "a cgroup per run below {} (if supervisord may create cgroups there)",
            dir.join("supervisord-<pid>").display()
        ),
        Err(why) => format!("process groups only: {why}"),
    };
    let _ = writeln!(out, "  containment     {containment}");
    let available: Vec<&str> = offer.available().iter().map(|c| c.name()).collect();
    let _ = writeln!(
        out,
        "  controllers     {} (for limits.memory, cpu, tasks)",
        if available.is_empty() {
            "none".to_owned()
        } else {
            available.join(" ")
        }
    );
    if config.jobs.iter().any(|j| !j.depends_on.is_empty()) {
        let _ = writeln!(out, "  start order     (stop order is the reverse)");
        for (i, level) in config::levels(&config.jobs).iter().enumerate() {
            let _ = writeln!(out, "    level {i}       {}", level.join(", "));
        }
    }
    for job in &config.jobs {
        print_job(out, job);
    }
}

/// `schedule` (with its zone, overlap and catch_up) and `retries`, when set.
fn print_batch_keys(out: &mut String, j: &JobSpec) {
    if let Some(s) = &j.schedule {
        let _ = writeln!(out, "  schedule        {}", s.schedule);
        let _ = writeln!(out, "  overlap         {}", s.overlap.as_str());
        let _ = writeln!(out, "  catch_up        {}", s.catch_up);
    }
    if let Some(n) = j.retries {
        let _ = writeln!(out, "  retries         {n}");
    }
}

fn print_job(out: &mut String, j: &JobSpec) {
    let human = |d: std::time::Duration| humantime::format_duration(d).to_string();
    let _ = writeln!(out);
    let _ = writeln!(out, "[job.{}]", j.name);
    let _ = writeln!(
        out,
        "  command         {}",
        shlex::try_join(j.command.iter().map(String::as_str))
            .unwrap_or_else(|_| format!("{:?}", j.command))
    );
    let _ = writeln!(out, "  group           {}", j.group);
    let _ = writeln!(out, "  daemon          {}", j.daemon);
    let _ = writeln!(out, "  autostart       {}", j.autostart);
    let _ = writeln!(out, "  restart         {}", j.restart.as_str());
    let _ = writeln!(out, "  exit_codes      {:?}", j.exit_codes);
    let _ = writeln!(out, "  start_secs      {}", human(j.start_secs));
    let _ = writeln!(out, "  max_restarts    {}", j.max_restarts);
    let _ = writeln!(out, "  backoff         {}", human(j.backoff));
    let _ = writeln!(out, "  stop_signal     {}", j.stop_signal);
    let _ = writeln!(out, "  stop_timeout    {}", human(j.stop_timeout));
    let _ = writeln!(out, "  kill_group      {}", j.kill_group);
    let _ = writeln!(out, "  cwd             {}", j.cwd.display());
    for file in &j.env_files {
        let missing = if file.exists() {
            ""
        } else {
            " (missing, optional)"
        };
        let _ = writeln!(out, "  env_file        {}{missing}", file.display());
    }
    for (k, v) in &j.env {
        if j.secret_env.contains(k) {
            let _ = writeln!(out, "  env             {k}=****** (from an env file)");
        } else {
            let _ = writeln!(out, "  env             {k}={v}");
        }
    }
    if j.on_exit == config::OnExit::Shutdown {
        let _ = writeln!(out, "  on_exit         shutdown");
    }
    let _ = writeln!(out, "  stdout          {}", j.stdout);
    let _ = writeln!(out, "  stderr          {}", j.stderr);
    if matches!(j.stdout, config::Output::Log(_)) || matches!(j.stderr, config::Output::Log(_)) {
        let _ = writeln!(out, "  log_max_bytes   {}", j.log_max_bytes);
        let _ = writeln!(out, "  log_backups     {}", j.log_backups);
        let _ = writeln!(out, "  log_timestamps  {}", j.log_timestamps);
    }
    if let Some(u) = &j.user {
        let groups: Vec<String> = u.groups.iter().map(u32::to_string).collect();
        let _ = writeln!(
            out,
            "  user            uid {} gid {} groups {}",
            u.uid,
            u.gid,
            groups.join(",")
        );
    }
    if let Some(m) = j.umask {
        let _ = writeln!(out, "  umask           {m:03o}");
    }
    for (resource, value) in &j.limits {
        let value = value.map_or_else(|| "unlimited".to_owned(), |v| v.to_string());
        let _ = writeln!(
            out,
            "  limits.{:<8} {value}",
            format!("{resource:?}").to_lowercase()
        );
    }
    for (file, value) in j.cgroup_limits.files() {
        let _ = writeln!(out, "  cgroup {file:<8} {value}");
    }
    if !j.depends_on.is_empty() {
        let edges: Vec<String> = j
            .depends_on
            .iter()
            .map(|d| {
                let restart = if d.restart { ", restart" } else { "" };
                format!("{} ({}{restart})", d.name, d.condition.as_str())
            })
            .collect();
        let _ = writeln!(out, "  depends_on      {}", edges.join(", "));
    }
    print_batch_keys(out, j);
    if let Some(r) = &j.ready {
        let _ = writeln!(
            out,
            "  ready           {} every {}, timeout {}",
            r.probe,
            human(r.interval),
            human(r.timeout)
        );
        if let Some(w) = r.watchdog {
            let _ = writeln!(out, "  watchdog        {}", human(w));
        }
    }
    if let Some(h) = &j.health {
        let _ = writeln!(
            out,
            "  health          {} every {}, timeout {}, retries {}, start_period {}, on_unhealthy {}",
            h.probe,
            human(h.interval),
            human(h.timeout),
            h.retries,
            human(h.start_period),
            h.on_unhealthy.as_str()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::check_level;

    #[test]
    fn levels_and_filters_pass_typos_do_not() {
        for ok in [
            "info",
            "DEBUG",
            "warn,supervisord=trace",
            "supervisord=debug",
            "off",
        ] {
            assert_eq!(check_level(ok), Ok(()), "{ok}");
        }
        for bad in ["infoo", "verbose", "info,debgu", ""] {
            assert!(check_level(bad).is_err(), "{bad}");
        }
    }
}
