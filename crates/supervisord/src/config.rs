//! The job file: TOML in, validated [`Config`] out, or a [`ConfigError`] that names the
//! file, line and column.
//!
//! Parsing is two steps. serde reads the document into `Raw*` structs whose leaf types
//! ([`Dur`], [`Size`], [`CommandLine`], [`Signal`]) validate themselves while they are
//! read, so the `toml` crate attaches the offending value's span to their errors. Checks
//! that need the whole job (names, empty commands) run after, with spans kept by
//! [`Spanned`]. Then `[defaults]` is merged under each job and every path is resolved
//! against the file's folder.

use indexmap::IndexMap;
use protocol::Signal;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

mod expand;
mod schema;
pub use expand::Files;
pub use schema::schema;
mod run_as;
use run_as::RawLimits;
pub use run_as::{Resource, Rlim, RunAs};
mod batch;
pub use batch::GroupSpec;
mod checks;
pub use checks::{
    is_target, levels, Condition, Dependency, HealthSpec, OnUnhealthy, Probe, ReadySpec,
};

/// The longest a backoff delay grows.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The longest any duration in a job may be (30 days). Each one ends up in a timer, and a
/// timer far enough out (about 795 days) panics the timer wheel.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The most rotated files a job's log may keep.
pub const MAX_LOG_BACKUPS: u32 = 1000;

/// A job file that could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS's reason.
        message: String,
    },
    /// The file was read but is not a valid job file.
    #[error("{}:{line}:{column}: {message}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// One line saying what is wrong.
        message: String,
    },
}

impl ConfigError {
    /// `{file, line, column}` for error 1003's `data`.
    pub fn position(&self) -> protocol::FilePosition {
        match self {
            ConfigError::Read { path, .. } => protocol::FilePosition {
                file: path.to_string_lossy().into_owned(),
                line: None,
                column: None,
            },
            ConfigError::Invalid {
                file, line, column, ..
            } => protocol::FilePosition {
                file: file.to_string_lossy().into_owned(),
                line: Some(*line),
                column: Some(*column),
            },
        }
    }

    /// The error a client gets for a refused reload (1003, with the position).
    pub fn to_rpc(&self) -> protocol::RpcError {
        protocol::RpcError::invalid_job_file(self.to_string(), &self.position())
    }

    /// The reason alone, without the position.
    pub fn reason(&self) -> &str {
        match self {
            ConfigError::Read { message, .. } | ConfigError::Invalid { message, .. } => message,
        }
    }
}

/// Why a job sent over the socket (`add`) was refused. Every message names the job.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AddError {
    /// The name is not a valid job name.
    #[error("{0}")]
    Name(String),
    /// The job keys are not an object of job keys.
    #[error("job {name:?}: {reason}")]
    Invalid {
        /// The job.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A key is unknown or has a bad value (the message names the job and the key).
    #[error("{0}")]
    Key(String),
}

/// The validated job file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it came from (absolute).
    pub path: PathBuf,
    /// `[supervisor] socket`, resolved against the file's folder.
    pub socket: Option<PathBuf>,
    /// `[supervisor] log_dir`, resolved; default `logs` beside the file.
    pub log_dir: PathBuf,
    /// `[supervisor] exit_when_done`.
    pub exit_when_done: bool,
    /// `[supervisor] metrics`: where to serve `GET /metrics` over HTTP (off when unset).
    pub metrics: Option<SocketAddr>,
    /// `[supervisor] state_dir`, resolved; default the job file's folder. The run history
    /// (`history.jsonl`) lives there.
    pub state_dir: PathBuf,
    /// `[supervisor] history`: write the run history (default true).
    pub history: bool,
    /// `[supervisor] history_max_bytes`: compact the history past this size (0: never).
    pub history_max_bytes: u64,
    /// `[supervisor] cgroup`: a cgroup per run where possible (`auto`), or never (`off`).
    pub cgroup: crate::cgroup::Setting,
    /// The `[defaults]` table, kept to fill in jobs added over the socket.
    defaults: RawJob,
    /// `[defaults] env_file`'s variables, under the env of jobs added over the socket.
    defaults_file_env: Vec<(String, String)>,
    /// The jobs, in file order.
    pub jobs: Vec<JobSpec>,
    /// The file's text, parsed again (without the disk) to scale a job's replicas; empty
    /// when no job has replicas.
    text: String,
    /// Every env file the job file read, as read: scaling sees the same values.
    files: Files,
    /// Each job with `replicas`, and its count in the file.
    pub replicas: BTreeMap<String, u32>,
    /// `[group.NAME]` sections.
    pub groups: BTreeMap<String, GroupSpec>,
    /// Each cgroup limit a job asks for, where: refused by [`Config::refuse_missing`]
    /// where supervisord cannot give runs its controller.
    limit_asks: Vec<LimitAsk>,
}

/// A cgroup limit a job asks for, and where in the file.
#[derive(Debug, Clone, PartialEq)]
struct LimitAsk {
    job: String,
    key: &'static str,
    controller: crate::cgroup::Controller,
    /// The error to give, with its position; its message is filled in when refused.
    at: ConfigError,
}

/// When a job is started again after it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Never.
    #[default]
    Never,
    /// When its exit status is not in `exit_codes` (or it died by a signal).
    OnFailure,
    /// Whenever it ends on its own.
    Always,
}

impl<'de> Deserialize<'de> for RestartPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RestartPolicy;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(RESTART_VALUES)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RestartPolicy, E> {
                match v {
                    "never" => Ok(RestartPolicy::Never),
                    "on-failure" => Ok(RestartPolicy::OnFailure),
                    "always" => Ok(RestartPolicy::Always),
                    _ => Err(E::custom(format!(
                        "restart = {v:?}: expected {RESTART_VALUES}"
                    ))),
                }
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RestartPolicy, E> {
                Err(E::custom(format!(
                    "restart = {v}: expected {RESTART_VALUES}"
                )))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RestartPolicy, E> {
                Err(E::custom(format!(
                    "restart = {v}: expected {RESTART_VALUES}"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// What supervisord does when a job ends on its own for good (`exited` or `fatal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnExit {
    /// Nothing: the other jobs keep running.
    #[default]
    Nothing,
    /// Stop every job and exit (1 unless the job succeeded): a container whose main
    /// process ended.
    Shutdown,
}

/// The allowed `restart` values, for error messages.
const RESTART_VALUES: &str = "\"never\", \"on-failure\" or \"always\" \
                              (Supervisor's autorestart = true is \"always\", unexpected is \"on-failure\")";

impl RestartPolicy {
    /// The job-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Never => "never",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Always => "always",
        }
    }
}

/// Where one output stream of a job goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Captured into this log file (rotated), readable with `supctl logs`.
    Log(PathBuf),
    /// Written to supervisord's own stdout, each line prefixed with `name | `.
    Inherit,
    /// Discarded.
    Null,
    /// Appended to this file by the job itself (no capture, no rotation).
    File(PathBuf),
    /// stderr only: the same pipe or file as stdout, so both streams land in stdout's
    /// destination in the order they were written (Supervisor's `redirect_stderr`).
    Stdout,
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Log(p) => write!(f, "log {}", p.display()),
            Output::Inherit => f.write_str("inherit"),
            Output::Null => f.write_str("null"),
            Output::File(p) => write!(f, "file {}", p.display()),
            Output::Stdout => f.write_str("stdout (merged into stdout, in order)"),
        }
    }
}

/// One job, with every key resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    /// The job's name.
    pub name: String,
    /// Its group.
    pub group: String,
    /// argv; `command[0]` is looked up in `PATH` when it has no slash.
    pub command: Vec<String>,
    /// Not waited for; terminated when the run ends.
    pub daemon: bool,
    /// Start when the daemon starts or the job is added.
    pub autostart: bool,
    /// When to start it again.
    pub restart: RestartPolicy,
    /// Exit statuses that count as success.
    pub exit_codes: Vec<i32>,
    /// How long a run must last to count as started.
    pub start_secs: Duration,
    /// Failed starts in a row allowed before `fatal`.
    pub max_restarts: u32,
    /// The first restart delay; doubles per failure up to [`MAX_BACKOFF`].
    pub backoff: Duration,
    /// The signal a stop sends.
    pub stop_signal: Signal,
    /// How long a stop waits before SIGKILL.
    pub stop_timeout: Duration,
    /// Signals go to the whole process group.
    pub kill_group: bool,
    /// The working folder.
    pub cwd: PathBuf,
    /// Variables set over supervisord's environment.
    pub env: BTreeMap<String, String>,
    /// Where stdout goes.
    pub stdout: Output,
    /// Where stderr goes.
    pub stderr: Output,
    /// Prefix captured lines with their arrival time.
    pub log_timestamps: bool,
    /// Rotate a captured log past this size (0: never).
    pub log_max_bytes: u64,
    /// Rotated files kept.
    pub log_backups: u32,
    /// The `env` keys whose value came from an env file: never shown (`--check` masks
    /// them).
    pub secret_env: std::collections::BTreeSet<String>,
    /// The env files this job read, in order (missing optional ones included).
    pub env_files: Vec<PathBuf>,
    /// For a replica: the job as written (`web` for `web-2`).
    pub replica_of: Option<String>,
    /// What its end for good does to supervisord.
    pub on_exit: OnExit,
    /// Who the job runs as (`None`: supervisord's own user).
    pub user: Option<Box<RunAs>>,
    /// The job's umask (`None`: supervisord's).
    pub umask: Option<u32>,
    /// rlimits set before the program runs (soft = hard).
    pub limits: Vec<(Resource, Rlim)>,
    /// cgroup limits (`memory`, `cpu`, `tasks`), written into each run's cgroup.
    pub cgroup_limits: crate::cgroup::Limits,
    /// `[job.X.ready]`: when a start counts as `running` (default: up for `start_secs`).
    pub ready: Option<Box<ReadySpec>>,
    /// `[job.X.health]`: checked while running.
    pub health: Option<Box<HealthSpec>>,
    /// `depends_on`, in file order.
    pub depends_on: Vec<Dependency>,
    /// `schedule` with `timezone`, `overlap` and `catch_up`.
    pub schedule: Option<Box<crate::schedule::ScheduleSpec>>,
    /// `retries`: failed runs in a row run again (`None`: no bound).
    pub retries: Option<u32>,
}

impl JobSpec {
    /// Left out of `wait --all`/`--group` and batch mode: a daemon job, or a scheduled
    /// one.
    pub fn background(&self) -> bool {
        self.daemon || self.schedule.is_some()
    }

    /// Whether an exit status counts as success.
    pub fn is_success(&self, exitcode: i32) -> bool {
        exitcode >= 0 && self.exit_codes.contains(&exitcode)
    }

    /// The backoff delay before restart number `failures` (1-based), doubled per failure
    /// and capped at [`MAX_BACKOFF`].
    pub fn backoff_delay(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(16);
        self.backoff
            .checked_mul(1u32 << shift)
            .unwrap_or(MAX_BACKOFF)
            .min(MAX_BACKOFF)
    }
}

// ---- the raw document -----------------------------------------------------------------

/// A supervisord job file.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "supervisord job file")]
struct RawFile {
    /// Settings of the daemon itself.
    #[serde(default)]
    supervisor: RawSupervisor,
    /// Job keys applied to every job that does not set them (`command` and `replicas`
    /// excepted).
    #[serde(default)]
    defaults: RawJob,
    /// The jobs: `[job.NAME]`, NAME being 1-64 letters, digits, `-`, `_` or `.`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, RawJob>")]
    job: IndexMap<Spanned<String>, Spanned<RawJob>>,
    /// Groups: `[group.NAME]`, for settings of a whole group (`max_parallel`).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, batch::RawGroup>")]
    group: IndexMap<Spanned<String>, batch::RawGroup>,
}

/// `[supervisor]`: settings of the daemon itself.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Supervisor")]
struct RawSupervisor {
    /// The control socket; `--socket` overrides it. Relative to the job file's folder.
    /// Default: `$XDG_RUNTIME_DIR/supervisord.sock`, else
    /// `/tmp/supervisord-<uid>/supervisord.sock`.
    socket: Option<PathBuf>,
    /// Where captured output goes (`<log_dir>/<name>.stdout.log`), relative to the job
    /// file's folder.
    #[schemars(extend("default" = "logs"))]
    log_dir: Option<PathBuf>,
    /// Batch mode: exit once every non-daemon job has settled (0 if all succeeded).
    #[schemars(extend("default" = false))]
    exit_when_done: Option<bool>,
    /// Env files whose variables are the values of `${VAR}` in this file (over
    /// supervisord's environment); `?` in front: may be missing.
    // Read by the first pass, before serde; here its type is checked.
    #[serde(rename = "env_file")]
    _env_file: Option<EnvFiles>,
    /// `IP:PORT` to serve `GET /metrics` on (off when unset).
    #[schemars(with = "Option<String>")]
    metrics: Option<Spanned<String>>,
    /// Where supervisord keeps its state (the run history, `history.jsonl`), relative to
    /// the job file's folder. Default: the job file's folder.
    state_dir: Option<PathBuf>,
    /// Write each run's start and end to `<state_dir>/history.jsonl` (read back at start,
    /// listed by `supctl history`).
    #[schemars(extend("default" = true))]
    history: Option<bool>,
    /// Compact the history once it is larger than this, keeping the newest runs: a number
    /// of bytes or a string such as "10MiB"; 0 for never.
    #[schemars(extend("default" = "10MiB"))]
    history_max_bytes: Option<Size>,
    /// Containment: "auto" puts every run in a cgroup of its own where supervisord may
    /// create cgroups (cgroup v2, root or a delegated service); "off" uses process groups.
    #[schemars(extend("default" = "auto"))]
    cgroup: Option<crate::cgroup::Setting>,
}

/// A job table as written: every key optional, so `[defaults]` can fill the gaps.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    rename = "Job",
    description = "A job's keys; only `command` is required (in [job.NAME], not in [defaults])."
)]
struct RawJob {
    /// The program and its arguments: a list (argv), or a string split into words the way
    /// a shell would (no shell runs it). Required in every job.
    #[schemars(with = "Option<CommandLine>")]
    command: Option<Spanned<CommandLine>>,
    /// The job's group (for `--group`); default: the job's name.
    #[schemars(with = "Option<String>")]
    group: Option<Spanned<String>>,
    /// A background helper: not waited for, terminated when the run ends.
    #[schemars(extend("default" = false))]
    daemon: Option<bool>,
    /// Start when supervisord starts, and when a reload adds the job.
    #[schemars(extend("default" = true))]
    autostart: Option<bool>,
    /// When the job is started again after it ends on its own.
    #[schemars(extend("default" = "never"))]
    restart: Option<RestartPolicy>,
    /// Exit statuses that count as success.
    #[schemars(extend("default" = [0]))]
    exit_codes: Option<Vec<i32>>,
    /// How long a run must last to count as started.
    #[schemars(extend("default" = "1s"))]
    start_secs: Option<Dur>,
    /// Failed starts in a row before the job is `fatal`.
    #[schemars(extend("default" = 3))]
    max_restarts: Option<u32>,
    /// The first restart delay; doubles per failed start, up to 60s.
    #[schemars(extend("default" = "1s"))]
    backoff: Option<Dur>,
    /// The signal a stop sends.
    #[schemars(extend("default" = "TERM"))]
    #[schemars(with = "Option<schema::SignalName>")]
    stop_signal: Option<Signal>,
    /// How long a stop waits before SIGKILL.
    #[schemars(extend("default" = "10s"))]
    stop_timeout: Option<Dur>,
    /// Signals go to the job's whole process group.
    #[schemars(extend("default" = true))]
    kill_group: Option<bool>,
    /// The working folder, relative to the job file's folder; default: that folder.
    cwd: Option<PathBuf>,
    /// Variables set over supervisord's environment (and over `env_file`'s).
    env: Option<BTreeMap<String, String>>,
    /// Where stdout goes.
    #[schemars(extend("default" = "log"))]
    #[schemars(with = "Option<OutputKey>")]
    stdout: Option<Spanned<OutputKey>>,
    /// Where stderr goes (also "stdout": merged into stdout, in order).
    #[schemars(extend("default" = "log"))]
    #[schemars(with = "Option<OutputKey>")]
    stderr: Option<Spanned<OutputKey>>,
    /// Prefix each captured line with its arrival time.
    #[schemars(extend("default" = false))]
    log_timestamps: Option<bool>,
    /// Rotate a captured log past this size (0: never).
    #[schemars(extend("default" = "50MiB"))]
    log_max_bytes: Option<Size>,
    /// Rotated files kept.
    #[schemars(extend("default" = 5))]
    log_backups: Option<Backups>,
    /// Env files (docker compose's .env syntax) read under `env`, relative to the job
    /// file's folder; `?` in front: may be missing.
    #[schemars(with = "Option<EnvFiles>")]
    env_file: Option<Spanned<EnvFiles>>,
    /// Run this many copies, NAME-0 ... NAME-(N-1), in group NAME.
    #[schemars(with = "Option<schema::Replicas>")]
    replicas: Option<Spanned<u32>>,
    /// When the job ends on its own for good (exited, not restarted, or fatal):
    /// "nothing", or "shutdown" (stop every job and exit, 1 unless it succeeded).
    #[schemars(extend("default" = "nothing"))]
    on_exit: Option<OnExit>,
    /// Run the job as this user: "name", "name:group" or "uid:gid" (needs root).
    #[schemars(with = "Option<String>")]
    user: Option<Spanned<String>>,
    /// The job's umask as octal digits, such as "027".
    #[schemars(with = "Option<serde_json::Value>")]
    umask: Option<Spanned<toml::Value>>,
    /// rlimits (soft = hard): nofile, nproc, core, stack, memlock.
    limits: Option<RawLimits>,
    /// When a start counts as `running` (a table: exactly one of tcp, http, exec, log,
    /// notify; interval, timeout, watchdog).
    #[schemars(with = "Option<schema::ReadyTable>")]
    ready: Option<Spanned<checks::RawCheck>>,
    /// Checked while running (a table: one of tcp, http, exec; interval, timeout,
    /// retries, start_period, on_unhealthy).
    #[schemars(with = "Option<schema::HealthTable>")]
    health: Option<Spanned<checks::RawCheck>>,
    /// Jobs this one waits for: a list of names, or a table of name = condition or
    /// name = { condition, restart }.
    #[schemars(with = "Option<schema::DependsOn>")]
    depends_on: Option<Spanned<checks::RawDeps>>,
    /// When the job runs: a 5-field cron expression ("0 3 * * *") or "every DURATION".
    /// Its `autostart` arms the schedule instead of starting it.
    #[schemars(with = "Option<String>")]
    schedule: Option<Spanned<String>>,
    /// The IANA time zone `schedule` is read in (needs `schedule`); default: local time.
    #[schemars(with = "Option<String>")]
    timezone: Option<Spanned<String>>,
    /// A scheduled time that comes while a run is alive: "skip", "queue" or "replace"
    /// (needs `schedule`).
    #[schemars(extend("default" = "skip"))]
    #[schemars(with = "Option<String>")]
    overlap: Option<Spanned<String>>,
    /// At daemon start, run once if a scheduled time passed while it was down (needs
    /// `schedule`).
    #[schemars(extend("default" = false))]
    #[schemars(with = "Option<bool>")]
    catch_up: Option<Spanned<bool>>,
    /// A failed run (quick or not) is run again up to this many times in a row, after
    /// `backoff`; default: no bound.
    retries: Option<u32>,
}

/// `env_file`: one path or a list; `?` in front marks an optional file.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(from = "OneOrMany")]
struct EnvFiles(Vec<String>);

#[derive(Deserialize)]
#[serde(untagged, expecting = "an env file path or a list of them")]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrMany> for EnvFiles {
    fn from(v: OneOrMany) -> EnvFiles {
        match v {
            OneOrMany::One(s) => EnvFiles(vec![s]),
            OneOrMany::Many(v) => EnvFiles(v),
        }
    }
}

impl RawJob {
    /// This job's keys, with `defaults` filling the ones it leaves out (`env` merges key by
    /// key, the job's winning).
    fn over(self, defaults: &RawJob) -> RawJob {
        let d = defaults.clone();
        let env = match (d.env, self.env) {
            (Some(mut base), Some(mine)) => {
                base.extend(mine);
                Some(base)
            }
            (base, mine) => mine.or(base),
        };
        RawJob {
            command: self.command.or(d.command),
            group: self.group.or(d.group),
            daemon: self.daemon.or(d.daemon),
            autostart: self.autostart.or(d.autostart),
            restart: self.restart.or(d.restart),
            exit_codes: self.exit_codes.or(d.exit_codes),
            start_secs: self.start_secs.or(d.start_secs),
            max_restarts: self.max_restarts.or(d.max_restarts),
            backoff: self.backoff.or(d.backoff),
            stop_signal: self.stop_signal.or(d.stop_signal),
            stop_timeout: self.stop_timeout.or(d.stop_timeout),
            kill_group: self.kill_group.or(d.kill_group),
            cwd: self.cwd.or(d.cwd),
            env,
            stdout: self.stdout.or(d.stdout),
            stderr: self.stderr.or(d.stderr),
            log_timestamps: self.log_timestamps.or(d.log_timestamps),
            log_max_bytes: self.log_max_bytes.or(d.log_max_bytes),
            log_backups: self.log_backups.or(d.log_backups),
            env_file: self.env_file,
            replicas: self.replicas,
            on_exit: self.on_exit.or(d.on_exit),
            user: self.user.or(d.user),
            umask: self.umask.or(d.umask),
            limits: match (self.limits, d.limits) {
                (Some(mine), Some(base)) => Some(mine.over(base)),
                (mine, base) => mine.or(base),
            },
            // Never from [defaults] (refused there): they are about one job.
            ready: self.ready,
            health: self.health,
            depends_on: self.depends_on,
            schedule: self.schedule,
            // From [defaults] they apply to scheduled jobs only.
            timezone: self.timezone.or(d.timezone),
            overlap: self.overlap.or(d.overlap),
            catch_up: self.catch_up.or(d.catch_up),
            retries: self.retries.or(d.retries),
        }
    }
}

/// A duration: `"250ms"`, `"10s"`, `"2m"`, or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Dur(Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"250ms\", \"10s\", \"2m\", or a number of seconds")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dur, E> {
                parse_duration(v).and_then(bounded).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dur, E> {
                u64::try_from(v)
                    .map_err(|_| format!("a duration cannot be negative: {v}"))
                    .and_then(|s| bounded(Duration::from_secs(s)))
                    .map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dur, E> {
                bounded(Duration::from_secs(v)).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Dur, E> {
                Duration::try_from_secs_f64(v)
                    .map_err(|_| format!("not a valid number of seconds: {v}"))
                    .and_then(bounded)
                    .map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A number of rotated files, at most [`MAX_LOG_BACKUPS`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct Backups(u32);

impl<'de> Deserialize<'de> for Backups {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        if n > MAX_LOG_BACKUPS {
            return Err(serde::de::Error::custom(format!(
                "log_backups = {n} is too many: at most {MAX_LOG_BACKUPS}"
            )));
        }
        Ok(Backups(n))
    }
}

/// A duration no longer than [`MAX_DURATION`].
fn bounded(d: Duration) -> Result<Dur, String> {
    if d > MAX_DURATION {
        Err(format!(
            "duration of {} s is too long: at most 30 days ({} s)",
            d.as_secs(),
            MAX_DURATION.as_secs()
        ))
    } else {
        Ok(Dur(d))
    }
}

/// Parse `"250ms"`, `"10s"`, `"1m30s"`, `"2h"`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("not a valid number of seconds: {s:?}"));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("bad duration {s:?}: {e} (expected e.g. \"250ms\", \"10s\", \"2m\")"))
}

/// A byte count: a number, or a string such as `"50MiB"`, `"10KB"`, `"1G"`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Size(u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size: a number of bytes or a string such as \"50MiB\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Size, E> {
                parse_size(v).map(Size).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("a size cannot be negative: {v}")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[supervisor] history_max_bytes` when not set: 10 MiB.
pub const DEFAULT_HISTORY_MAX_BYTES: u64 = 10 << 20;

/// Parse `"50MiB"`, `"10 KB"`, `"1G"`, `"4096"`. `K`, `M`, `G` alone mean the binary units.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad size {s:?} (expected e.g. \"50MiB\" or a number of bytes)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "kb" => 1_000,
        "m" | "mib" => 1 << 20,
        "mb" => 1_000_000,
        "g" | "gib" => 1 << 30,
        "gb" => 1_000_000_000,
        _ => {
            return Err(format!(
                "bad size unit in {s:?} (expected B, KiB, MiB, GiB, KB, MB or GB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// `command`: an argv list, or a string split the way a shell splits words.
#[derive(Debug, Clone, PartialEq)]
struct CommandLine(Vec<String>);

impl<'de> Deserialize<'de> for CommandLine {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = CommandLine;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command: a list of strings, or a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CommandLine, E> {
                shlex::split(v).map(CommandLine).ok_or_else(|| {
                    E::custom(format!(
                        "cannot split command {v:?} into words (unbalanced quote?)"
                    ))
                })
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<CommandLine, A::Error> {
                let mut argv = Vec::new();
                while let Some(arg) = seq.next_element::<String>()? {
                    argv.push(arg);
                }
                Ok(CommandLine(argv))
            }
        }
        d.deserialize_any(V)
    }
}

/// `stdout`/`stderr` as written: a keyword or a path.
#[derive(Debug, Clone, PartialEq)]
enum OutputKey {
    Log,
    Inherit,
    Null,
    Stdout,
    File(PathBuf),
}

/// What an output value may be, for error messages.
const OUTPUT_KEYWORDS: &str = "\"log\", \"inherit\", \"null\", \"stdout\" (stderr only) \
                               or a file path with a '/' (e.g. \"./out.txt\")";

impl<'de> Deserialize<'de> for OutputKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "log" => OutputKey::Log,
            "inherit" => OutputKey::Inherit,
            "null" => OutputKey::Null,
            "stdout" => OutputKey::Stdout,
            // A bare word is a mistyped keyword far more often than a file name
            // (`"none"`, `"Log"`, `"stdout"` on stdout): only a path with a '/' is a file.
            path if path.contains('/') => OutputKey::File(PathBuf::from(path)),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "unknown output {other:?}: expected {OUTPUT_KEYWORDS}"
                )))
            }
        })
    }
}

// ---- validation and resolution --------------------------------------------------------

/// Whether `name` is a valid job or group name: 1–64 of letters, digits, `-`, `_`, `.`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn name_problem(what: &str, name: &str) -> String {
    format!("invalid {what} {name:?}: use 1-64 letters, digits, '-', '_' or '.'")
}

/// What positions are measured against: the file's path and text.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigError {
        let offset = span.map_or(0, |s| s.start).min(self.text.len());
        let before = &self.text[..floor_char_boundary(self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        ConfigError::Invalid {
            file: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Read and validate a job file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Read {
        path: path.clone(),
        message: format!("cannot read job file: {e}"),
    })?;
    parse(&path, &text)
}

/// Validate a job file's text; `path` names it in errors and anchors relative paths.
/// Env files are read from the disk; `${VAR}` sees supervisord's environment.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let mut files = Files::new();
    let env = |k: &str| std::env::var(k).ok();
    let mut config = parse_with(path, text, &env, expand::Reader::Disk(&mut files), None)?;
    config.files = files;
    Ok(config)
}

/// [`parse`] with `${VAR}` looked up in `env` instead of supervisord's environment.
pub fn parse_in_env(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut files = Files::new();
    let mut config = parse_with(path, text, env, expand::Reader::Disk(&mut files), None)?;
    config.files = files;
    Ok(config)
}

/// [`parse`] with the environment, the env-file reader and a replica count override
/// given.
fn parse_with(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    mut reader: expand::Reader,
    scale: Option<(&str, u32)>,
) -> Result<Config, ConfigError> {
    let src = Source { path, text };
    let syntax = |e: toml::de::Error| {
        if let Some(at) = crate::suggest::supervisor_section(text) {
            return src.error(
                Some(at..at),
                format!(
                    "this looks like a Supervisor file ([program:x] sections), not a job file: \
                     run `supervisord import {}` to convert it",
                    path.display()
                ),
            );
        }
        let message = e.message().trim().replace('\n', " ");
        src.error(e.span(), crate::suggest::unknown_field(&message))
    };
    let mut doc = toml::de::DeTable::parse(text).map_err(syntax)?;
    let base = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let vars = expand::supervisor_vars(&src, doc.get_mut(), &base, &mut reader, env)?;
    let facts = expand::expand_document(&src, doc.get_mut(), &vars, scale)?;
    let raw = RawFile::deserialize(toml::de::Deserializer::from(doc)).map_err(syntax)?;
    let defaults = raw.defaults;
    if let Some(cmd) = &defaults.command {
        return Err(src.error(
            Some(cmd.span()),
            "`command` cannot be set in [defaults]; give each job its own",
        ));
    }
    if let Some(r) = &defaults.replicas {
        return Err(src.error(
            Some(r.span()),
            "`replicas` cannot be set in [defaults]; give it to the jobs that scale",
        ));
    }
    let mut layers = EnvLayers {
        src: &src,
        base: &base,
        vars: &vars,
        defaults_files: Vec::new(),
        defaults_file_env: Vec::new(),
    };
    if let Some(files) = &defaults.env_file {
        for name in &files.get_ref().0 {
            let (file, entries) = layers.read(&mut reader, name, files.span())?;
            layers.defaults_files.push(file);
            layers.defaults_file_env.extend(entries);
        }
    }
    for (key, span) in [
        ("ready", defaults.ready.as_ref().map(Spanned::span)),
        ("health", defaults.health.as_ref().map(Spanned::span)),
        (
            "depends_on",
            defaults.depends_on.as_ref().map(Spanned::span),
        ),
        ("schedule", defaults.schedule.as_ref().map(Spanned::span)),
    ] {
        if let Some(span) = span {
            return Err(src.error(
                Some(span),
                format!("`{key}` cannot be set in [defaults]; give it to the jobs that need it"),
            ));
        }
    }
    let log_dir = base.join(raw.supervisor.log_dir.unwrap_or_else(|| "logs".into()));
    let state_dir = match raw.supervisor.state_dir {
        Some(dir) => base.join(dir),
        None => base.clone(),
    };
    let metrics = match &raw.supervisor.metrics {
        None => None,
        Some(addr) => Some(addr.get_ref().trim().parse::<SocketAddr>().map_err(|e| {
            src.error(
                Some(addr.span()),
                format!(
                    "[supervisor] metrics = {:?}: {e}; expected IP:PORT, such as \"127.0.0.1:9101\" or \"[::1]:9101\"",
                    addr.get_ref()
                ),
            )
        })?),
    };
    let mut jobs = Vec::with_capacity(raw.job.len());
    let mut edge_spans = Vec::with_capacity(raw.job.len());
    let mut limit_asks = Vec::new();
    let groups = batch::groups(&src, raw.group)?;
    for (name, job) in raw.job {
        let span = job.span();
        let job = job.into_inner();
        batch::lone_schedule_keys(&src, name.get_ref(), &job)?;
        let env = layers.job_env(&mut reader, &defaults, &job, name.get_ref(), &facts)?;
        let (mut spec, spans, asks) = resolve(
            &src,
            &name,
            Some(span),
            job.over(&defaults),
            &base,
            &log_dir,
        )?;
        limit_asks.extend(asks.into_iter().map(|(span, key, controller)| LimitAsk {
            job: spec.name.clone(),
            key,
            controller,
            at: src.error(Some(span), ""),
        }));
        (spec.env, spec.secret_env, spec.env_files) = env;
        if let Some((of, i)) = facts.replica_of.get(name.get_ref()) {
            spec.replica_of = Some(of.clone());
            spec.env.insert("SUPERVISOR_REPLICA".into(), i.to_string());
        }
        jobs.push(spec);
        edge_spans.push(spans);
    }
    checks::graph(&src, &jobs, &edge_spans)?;
    Ok(Config {
        path: path.to_path_buf(),
        socket: raw.supervisor.socket.map(|s| base.join(s)),
        log_dir,
        exit_when_done: raw.supervisor.exit_when_done.unwrap_or(false),
        metrics,
        state_dir,
        history: raw.supervisor.history.unwrap_or(true),
        history_max_bytes: raw
            .supervisor
            .history_max_bytes
            .map_or(DEFAULT_HISTORY_MAX_BYTES, |s| s.0),
        cgroup: raw.supervisor.cgroup.unwrap_or_default(),
        defaults,
        defaults_file_env: layers.defaults_file_env,
        jobs,
        // Only `scaled` reads it again, and only for a job with replicas: without any,
        // the text is not kept (it is ~50 bytes a job).
        text: if facts.replicas.is_empty() {
            String::new()
        } else {
            text.to_owned()
        },
        files: Files::new(),
        replicas: facts.replicas,
        groups,
        limit_asks,
    })
}

/// A job's environment, its secret keys and the env files it read.
type JobEnv = (
    BTreeMap<String, String>,
    std::collections::BTreeSet<String>,
    Vec<PathBuf>,
);

/// What a job's environment is built from, lowest first: `[defaults] env_file`,
/// `[defaults] env`, the job's `env_file`, the job's `env`.
struct EnvLayers<'a> {
    src: &'a Source<'a>,
    base: &'a Path,
    vars: &'a expand::Vars<'a>,
    defaults_files: Vec<PathBuf>,
    defaults_file_env: Vec<(String, String)>,
}

impl EnvLayers<'_> {
    /// One env file; a file that cannot be read is an error at the `env_file` key.
    fn read(
        &self,
        reader: &mut expand::Reader,
        name: &str,
        key: Range<usize>,
    ) -> Result<(PathBuf, Vec<(String, String)>), ConfigError> {
        expand::read_env_file(reader, self.base, name, self.vars).map_err(|e| match e {
            ConfigError::Read { path, message } => self
                .src
                .error(Some(key), format!("env file {}: {message}", path.display())),
            other => other,
        })
    }

    fn job_env(
        &self,
        reader: &mut expand::Reader,
        defaults: &RawJob,
        job: &RawJob,
        name: &str,
        facts: &expand::Facts,
    ) -> Result<JobEnv, ConfigError> {
        let mut env = BTreeMap::new();
        let mut secret = std::collections::BTreeSet::new();
        let mut files = self.defaults_files.clone();
        for (k, v) in &self.defaults_file_env {
            env.insert(k.clone(), v.clone());
            secret.insert(k.clone());
        }
        let mut set = |env: &mut BTreeMap<String, String>, k: &String, v: &String, hidden| {
            env.insert(k.clone(), v.clone());
            if hidden {
                secret.insert(k.clone());
            } else {
                secret.remove(k);
            }
        };
        for (k, v) in defaults.env.iter().flatten() {
            let hidden = facts.tainted_env.contains(&(None, k.clone()));
            set(&mut env, k, v, hidden);
        }
        if let Some(list) = &job.env_file {
            for file in &list.get_ref().0 {
                let (path, entries) = self.read(reader, file, list.span())?;
                files.push(path);
                for (k, v) in &entries {
                    set(&mut env, k, v, true);
                }
            }
        }
        for (k, v) in job.env.iter().flatten() {
            let hidden = facts
                .tainted_env
                .contains(&(Some(name.to_owned()), k.clone()));
            set(&mut env, k, v, hidden);
        }
        Ok((env, secret, files))
    }
}

/// A resolved job, the spans of its `depends_on` edges, and where it asks for cgroup
/// limits.
type Resolved = (JobSpec, Vec<Range<usize>>, Vec<run_as::CgroupLimit>);

fn resolve(
    src: &Source,
    name: &Spanned<String>,
    table: Option<Range<usize>>,
    raw: RawJob,
    base: &Path,
    log_dir: &Path,
) -> Result<Resolved, ConfigError> {
    let n = name.get_ref();
    if !valid_name(n) {
        return Err(src.error(Some(name.span()), name_problem("job name", n)));
    }
    let Some(command) = raw.command else {
        return Err(src.error(table, format!("job {n:?} has no `command`")));
    };
    let cmd_span = command.span();
    let argv = command.into_inner().0;
    if argv.first().is_none_or(|a| a.is_empty()) {
        return Err(src.error(Some(cmd_span), format!("job {n:?}: `command` is empty")));
    }
    let group = match raw.group {
        Some(g) if !valid_name(g.get_ref()) => {
            return Err(src.error(Some(g.span()), name_problem("group name", g.get_ref())))
        }
        Some(g) => g.into_inner(),
        None => n.clone(),
    };
    if let Some(key) = raw
        .stdout
        .as_ref()
        .filter(|k| *k.get_ref() == OutputKey::Stdout)
    {
        return Err(src.error(
            Some(key.span()),
            format!("job {n:?}: `stdout = \"stdout\"` means nothing; only stderr can be merged into stdout"),
        ));
    }
    let output = |key: Option<Spanned<OutputKey>>, stream: &str| match key
        .map_or(OutputKey::Log, Spanned::into_inner)
    {
        OutputKey::Log => Output::Log(log_dir.join(format!("{n}.{stream}.log"))),
        OutputKey::Inherit => Output::Inherit,
        OutputKey::Null => Output::Null,
        OutputKey::Stdout => Output::Stdout,
        OutputKey::File(p) => Output::File(base.join(p)),
    };
    let user = match raw.user {
        Some(u) => Some(
            run_as::resolve_user(u.get_ref())
                .map_err(|e| src.error(Some(u.span()), format!("job {n:?}: {e}")))?,
        ),
        None => None,
    };
    let umask = match raw.umask {
        Some(m) => Some(
            run_as::parse_umask(m.get_ref())
                .map_err(|e| src.error(Some(m.span()), format!("job {n:?}: {e}")))?,
        ),
        None => None,
    };
    let limits = raw
        .limits
        .unwrap_or_default()
        .resolve()
        .map_err(|(span, why)| src.error(Some(span), format!("job {n:?}: {why}")))?;
    let ready_span = raw.ready.as_ref().map(|r| r.span());
    let ready = raw.ready.map(|r| checks::ready(src, n, r)).transpose()?;
    let health = raw.health.map(|h| checks::health(src, n, h)).transpose()?;
    let (depends_on, spans) = match raw.depends_on {
        Some(d) => checks::edges(src, n, d.into_inner())?,
        None => (Vec::new(), Vec::new()),
    };
    let schedule = batch::schedule(
        src,
        n,
        raw.schedule,
        raw.timezone,
        raw.overlap,
        raw.catch_up,
    )?;
    let spec = JobSpec {
        name: n.clone(),
        group,
        command: argv,
        daemon: raw.daemon.unwrap_or(false),
        autostart: raw.autostart.unwrap_or(true),
        restart: raw.restart.unwrap_or_default(),
        exit_codes: raw.exit_codes.unwrap_or_else(|| vec![0]),
        start_secs: raw.start_secs.map_or(Duration::from_secs(1), |d| d.0),
        max_restarts: raw.max_restarts.unwrap_or(3),
        backoff: raw.backoff.map_or(Duration::from_secs(1), |d| d.0),
        stop_signal: raw.stop_signal.unwrap_or(Signal::Term),
        stop_timeout: raw.stop_timeout.map_or(Duration::from_secs(10), |d| d.0),
        kill_group: raw.kill_group.unwrap_or(true),
        cwd: raw.cwd.map_or_else(|| base.to_path_buf(), |c| base.join(c)),
        env: raw.env.unwrap_or_default(),
        stdout: output(raw.stdout, "stdout"),
        stderr: output(raw.stderr, "stderr"),
        log_timestamps: raw.log_timestamps.unwrap_or(false),
        log_max_bytes: raw.log_max_bytes.map_or(50 << 20, |s| s.0),
        log_backups: raw.log_backups.map_or(5, |b| b.0),
        secret_env: Default::default(),
        env_files: Vec::new(),
        replica_of: None,
        on_exit: raw.on_exit.unwrap_or_default(),
        user: user.map(Box::new),
        umask,
        limits: limits.rlimits,
        cgroup_limits: limits.cgroup,
        ready: ready.map(Box::new),
        health: health.map(Box::new),
        depends_on,
        schedule: schedule.map(Box::new),
        retries: raw.retries,
    };
    if let Some(why) = checks::uncaptured_log_check(&spec) {
        return Err(src.error(ready_span, format!("job {n:?}: {why}")));
    }
    Ok((spec, spans, limits.asks))
}

/// Why `offer` refuses a limit of `job`'s (`limits.KEY`, which needs `controller`).
fn refused_limit(job: &str, key: &str, controller: crate::cgroup::Controller, why: &str) -> String {
    format!(
        "job {job:?}: `limits.{key}` needs the cgroup v2 `{}` controller, which supervisord \
         cannot give its runs here: {why}; remove the key",
        controller.name()
    )
}

impl JobSpec {
    /// Why this job's cgroup limits cannot be honoured with `offer`, if they cannot (for a
    /// job added over the socket: no position to give).
    pub fn refused_limit(&self, offer: &crate::cgroup::Offer) -> Option<String> {
        let l = &self.cgroup_limits;
        [
            (
                "memory",
                crate::cgroup::Controller::Memory,
                l.memory.is_some(),
            ),
            ("cpu", crate::cgroup::Controller::Cpu, l.cpu.is_some()),
            ("tasks", crate::cgroup::Controller::Pids, l.tasks.is_some()),
        ]
        .into_iter()
        .filter(|(_, _, asked)| *asked)
        .find_map(|(key, c, _)| {
            offer
                .why_not(c)
                .map(|why| refused_limit(&self.name, key, c, why))
        })
    }
}

impl Config {
    /// Refuse the file if a job asks for a cgroup limit whose controller `offer` cannot
    /// give: the first such limit, at its position, naming the job and the controller.
    pub fn refuse_missing(&self, offer: &crate::cgroup::Offer) -> Result<(), ConfigError> {
        for ask in &self.limit_asks {
            if let Some(why) = offer.why_not(ask.controller) {
                let mut e = ask.at.clone();
                if let ConfigError::Invalid { message, .. } = &mut e {
                    *message = refused_limit(&ask.job, ask.key, ask.controller, why);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// The controllers the jobs' limits need, each once.
    pub fn controllers(&self) -> Vec<crate::cgroup::Controller> {
        let mut out: Vec<_> = self.limit_asks.iter().map(|a| a.controller).collect();
        out.sort();
        out.dedup();
        out
    }

    /// A job added over the socket: `job` holds the job-file keys as JSON; this file's
    /// `[defaults]` fill the gaps and its folder anchors relative paths. The error's
    /// message names the job; its position is meaningless and should not be shown.
    pub fn job_from_json(&self, name: &str, job: &serde_json::Value) -> Result<JobSpec, AddError> {
        let invalid = |reason: String| AddError::Invalid {
            name: name.to_owned(),
            reason,
        };
        if !valid_name(name) {
            return Err(AddError::Name(name_problem("job name", name)));
        }
        let table: toml::Value =
            serde_json::from_value(job.clone()).map_err(|e| invalid(e.to_string()))?;
        if !table.is_table() {
            return Err(invalid("`job` must be an object of job keys".into()));
        }
        let mut doc = toml::Table::new();
        let mut jobs = toml::Table::new();
        jobs.insert(name.to_owned(), table);
        doc.insert("job".into(), toml::Value::Table(jobs));
        let text = toml::to_string(&doc).map_err(|e| invalid(e.to_string()))?;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct JobsOnly {
            job: IndexMap<Spanned<String>, Spanned<RawJob>>,
        }
        let src = Source {
            path: Path::new("<add>"),
            text: &text,
        };
        let parsed: JobsOnly = toml::from_str(&text).map_err(|e| {
            invalid(crate::suggest::unknown_field(
                &e.message().trim().replace('\n', " "),
            ))
        })?;
        let base = self.path.parent().unwrap_or(Path::new("/"));
        let (key, raw) = parsed
            .job
            .into_iter()
            .next()
            .ok_or_else(|| invalid("no job keys".into()))?;
        let span = raw.span();
        let raw = raw.into_inner();
        batch::lone_schedule_keys(&src, name, &raw)
            .map_err(|e| AddError::Key(e.reason().to_owned()))?;
        if raw.env_file.is_some() || raw.replicas.is_some() {
            return Err(invalid(
                "`env_file` and `replicas` are read from the job file only; send `env` instead"
                    .into(),
            ));
        }
        let mut spec = resolve(
            &src,
            &key,
            Some(span),
            raw.over(&self.defaults),
            base,
            &self.log_dir,
        )
        .map(|(spec, _, _)| spec)
        .map_err(|e| AddError::Key(e.reason().to_owned()))?;
        let from_files: BTreeMap<&String, &String> =
            self.defaults_file_env.iter().map(|(k, v)| (k, v)).collect();
        for (k, v) in from_files {
            if !spec.env.contains_key(k) {
                spec.env.insert(k.clone(), v.clone());
                spec.secret_env.insert(k.clone());
            }
        }
        Ok(spec)
    }

    /// The replicas of `name` (a job with `replicas` in the file) when there are `count`
    /// of them: the file parsed again with that count, from the text and env files read at
    /// load (no disk). `None` when `name` has no `replicas`.
    pub fn scaled(&self, name: &str, count: u32) -> Option<Result<Vec<JobSpec>, ConfigError>> {
        self.replicas.get(name)?;
        let env = |k: &str| std::env::var(k).ok();
        let parsed = parse_with(
            &self.path,
            &self.text,
            &env,
            expand::Reader::Cached(&self.files),
            Some((name, count)),
        );
        Some(parsed.map(|c| {
            c.jobs
                .into_iter()
                .filter(|j| j.replica_of.as_deref() == Some(name))
                .collect()
        }))
    }
}

#[cfg(test)]
mod edge_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("/srv/jobs/supervisord.toml"), text)
    }

    fn err(text: &str) -> (usize, usize, String) {
        match parse_str(text).expect_err("should be rejected") {
            ConfigError::Invalid {
                line,
                column,
                message,
                ..
            } => (line, column, message),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Parse with a fixed environment and env files given as (name beside the job
    /// file, text).
    fn parse_env(
        text: &str,
        env: &[(&str, &str)],
        files: &[(&str, &str)],
    ) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let files: Files = files
            .iter()
            .map(|(n, t)| (Path::new("/srv/jobs").join(n), Some(t.to_string())))
            .collect();
        let lookup = |k: &str| env.get(k).cloned();
        parse_with(
            Path::new("/srv/jobs/supervisord.toml"),
            text,
            &lookup,
            expand::Reader::Cached(&files),
            None,
        )
    }

    fn env_of<'a>(c: &'a Config, job: &str) -> Vec<(&'a str, &'a str, bool)> {
        let j = c.jobs.iter().find(|j| j.name == job).expect("job");
        j.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str(), j.secret_env.contains(k)))
            .collect()
    }

    #[test]
    fn env_files_layer_in_order_and_are_secret() {
        let c = parse_env(
            r#"
[defaults]
env_file = [".env", "?missing.env"]
env = { B = "defaults-env" }
[job.a]
command = ["x"]
env_file = "?local.env"
env = { D = "job-env" }
[job.b]
command = ["x"]
"#,
            &[],
            &[
                (".env", "A=dotenv\nB=dotenv\nC=dotenv\nD=dotenv\n"),
                ("local.env", "C=local\nD=local\n"),
            ],
        )
        .expect("valid");
        assert_eq!(
            env_of(&c, "a"),
            [
                ("A", "dotenv", true),
                ("B", "defaults-env", false),
                ("C", "local", true),
                ("D", "job-env", false)
            ]
        );
        assert_eq!(
            env_of(&c, "b"),
            [
                ("A", "dotenv", true),
                ("B", "defaults-env", false),
                ("C", "dotenv", true),
                ("D", "dotenv", true)
            ]
        );
        assert_eq!(
            c.jobs[0].env_files,
            [
                PathBuf::from("/srv/jobs/.env"),
                "/srv/jobs/missing.env".into(),
                "/srv/jobs/local.env".into()
            ]
        );
    }

    #[test]
    fn a_missing_env_file_is_an_error_at_its_key() {
        let e = parse_env(
            "[job.a]\ncommand = [\"x\"]\nenv_file = \"nope.env\"\n",
            &[],
            &[],
        )
        .expect_err("missing");
        let text = e.to_string();
        assert_eq!(
            text,
            "/srv/jobs/supervisord.toml:3:12: env file /srv/jobs/nope.env: not found \
             (write \"?nope.env\" if it may be missing)"
        );
        let e =
            parse_env("[supervisor]\nenv_file = [\"vars.env\"]\n", &[], &[]).expect_err("missing");
        assert!(
            e.to_string().starts_with(
                "/srv/jobs/supervisord.toml:2:12: env file /srv/jobs/vars.env: not found"
            ),
            "{e}"
        );
        let e = parse_env(
            "[job.a]\ncommand = [\"x\"]\nenv_file = \".env\"\n",
            &[],
            &[(".env", "A=1\nnot a line\n")],
        )
        .expect_err("bad line");
        assert_eq!(e.position().file, "/srv/jobs/.env");
        assert_eq!(e.position().line, Some(2));
    }

    #[test]
    fn interpolation_in_every_string_with_positions() {
        let c = parse_env(
            r#"
[supervisor]
env_file = "vars.env"
log_dir = "${LOGS:-logs}"
[job.a]
command = ["./server", "--port", "${PORT:-8000}", "$HOME", "$${X}"]
cwd = "${APP}"
env = { URL = "${DB}", PLAIN = "${APP}" }
"#,
            &[("APP", "/opt/app"), ("DB", "from-environment")],
            &[("vars.env", "DB=from-file\n")],
        )
        .expect("valid");
        let a = &c.jobs[0];
        assert_eq!(a.command, ["./server", "--port", "8000", "$HOME", "${X}"]);
        assert_eq!(a.cwd, PathBuf::from("/opt/app"));
        assert_eq!(c.log_dir, PathBuf::from("/srv/jobs/logs"));
        assert_eq!(
            env_of(&c, "a"),
            [("PLAIN", "/opt/app", false), ("URL", "from-file", true)],
            "a value taken from [supervisor] env_file is secret"
        );
        let e = parse_env(
            "[job.a]\ncommand = [\"x\"]\nenv = { U = \"${DATABASE_URL:?set DATABASE_URL in .env}\" }\n",
            &[],
            &[],
        )
        .expect_err("unset");
        assert_eq!(
            e.to_string(),
            "/srv/jobs/supervisord.toml:3:14: DATABASE_URL: set DATABASE_URL in .env"
        );
        let (line, col, msg) = match parse_env("[job.a]\ncommand = \"run ${NOPE}\"\n", &[], &[]) {
            Err(ConfigError::Invalid {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            other => panic!("{other:?}"),
        };
        assert_eq!((line, col), (2, 16));
        assert!(msg.contains("NOPE is not set"), "{msg}");
    }

    #[test]
    fn replicas_are_jobs_in_a_group() {
        let c = parse_env(
            r#"
[job.web]
command = ["./server", "--port", "${PORT_BASE:-800}${REPLICA}"]
replicas = 3
[job.other]
command = ["x"]
"#,
            &[],
            &[],
        )
        .expect("valid");
        let names: Vec<_> = c.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["web-0", "web-1", "web-2", "other"]);
        let w2 = &c.jobs[2];
        assert_eq!(w2.group, "web");
        assert_eq!(w2.command[2], "8002");
        assert_eq!(
            w2.env.get("SUPERVISOR_REPLICA").map(String::as_str),
            Some("2")
        );
        assert_eq!(w2.replica_of.as_deref(), Some("web"));
        assert_eq!(c.replicas.get("web"), Some(&3));
        let more = c.scaled("web", 5).expect("has replicas").expect("valid");
        assert_eq!(more.len(), 5);
        assert_eq!(more[4].command[2], "8004");
        assert!(c.scaled("other", 2).is_none());
        let (_, _, msg) = err("[job.a]\ncommand = [\"x\"]\nreplicas = -1\n");
        assert!(msg.contains("replicas must be"), "{msg}");
        let (_, _, msg) = err("[job.a]\ncommand = [\"${REPLICA}\"]\n");
        assert!(msg.contains("REPLICA is not set"), "{msg}");
        let c = parse_env(
            "[job.w]\ncommand = [\"x\"]\nreplicas = 2\ngroup = \"g\"\n",
            &[],
            &[],
        )
        .expect("valid");
        assert_eq!(c.jobs[1].group, "g");
    }

    #[test]
    fn full_example_resolves() {
        let c = parse_str(
            r#"
[supervisor]
socket = "run/s.sock"
log_dir = "logs"
exit_when_done = true

[defaults]
restart = "on-failure"
env = { A = "1", B = "2" }

[job.File1]
command = ["sh", "workers/download.sh", "File1"]
group = "downloads"
daemon = false
exit_codes = [0, 2]
start_secs = "250ms"
max_restarts = 5
backoff = 2
stop_signal = "INT"
stop_timeout = "1m"
kill_group = false
cwd = "work"
env = { B = "3" }
stdout = "inherit"
stderr = "out/err.txt"
log_timestamps = true
log_max_bytes = "1MiB"
log_backups = 2

[job.helper]
command = "python3 -c 'print(1)'"
daemon = true
"#,
        )
        .expect("valid");
        assert_eq!(c.socket, Some(PathBuf::from("/srv/jobs/run/s.sock")));
        assert!(c.exit_when_done);
        let f = &c.jobs[0];
        assert_eq!(f.name, "File1");
        assert_eq!(f.group, "downloads");
        assert_eq!(f.restart, RestartPolicy::OnFailure);
        assert_eq!(f.exit_codes, vec![0, 2]);
        assert_eq!(f.start_secs, Duration::from_millis(250));
        assert_eq!(f.backoff, Duration::from_secs(2));
        assert_eq!(f.stop_signal, Signal::Int);
        assert_eq!(f.stop_timeout, Duration::from_secs(60));
        assert!(!f.kill_group);
        assert_eq!(f.cwd, PathBuf::from("/srv/jobs/work"));
        assert_eq!(f.env.get("A").map(String::as_str), Some("1"));
        assert_eq!(f.env.get("B").map(String::as_str), Some("3"));
        assert_eq!(f.stdout, Output::Inherit);
        assert_eq!(f.stderr, Output::File("/srv/jobs/out/err.txt".into()));
        assert_eq!(f.log_max_bytes, 1 << 20);
        let h = &c.jobs[1];
        assert_eq!(h.command, vec!["python3", "-c", "print(1)"]);
        assert_eq!(h.group, "helper");
        assert!(h.daemon);
        assert_eq!(h.cwd, PathBuf::from("/srv/jobs"));
        assert_eq!(
            h.stdout,
            Output::Log("/srv/jobs/logs/helper.stdout.log".into())
        );
        assert_eq!(h.restart, RestartPolicy::OnFailure);
    }

    #[test]
    fn defaults_when_keys_are_left_out() {
        let c = parse_str("[job.a]\ncommand = [\"true\"]\n").expect("valid");
        let a = &c.jobs[0];
        assert!(a.autostart && a.kill_group && !a.daemon);
        assert_eq!(a.restart, RestartPolicy::Never);
        assert_eq!(a.exit_codes, vec![0]);
        assert_eq!(a.stop_signal, Signal::Term);
        assert_eq!(a.stop_timeout, Duration::from_secs(10));
        assert_eq!(a.log_max_bytes, 50 << 20);
        assert_eq!(a.log_backups, 5);
        assert_eq!(c.log_dir, PathBuf::from("/srv/jobs/logs"));
    }

    #[test]
    fn metrics_address_is_off_by_default_and_checked_with_its_position() {
        assert_eq!(parse_str("").expect("valid").metrics, None);
        let c = parse_str("[supervisor]\nmetrics = \"127.0.0.1:9101\"\n").expect("valid");
        assert_eq!(c.metrics, Some(SocketAddr::from(([127, 0, 0, 1], 9101))));
        let c = parse_str("[supervisor]\nmetrics = \"[::1]:9\"\n").expect("valid");
        assert_eq!(c.metrics.map(|a| a.port()), Some(9));
        let (line, column, message) = err("[supervisor]\nmetrics = \"localhost\"\n");
        assert_eq!((line, column), (2, 11));
        assert!(
            message.contains("metrics") && message.contains("IP:PORT"),
            "{message}"
        );
    }

    #[test]
    fn jobs_keep_file_order() {
        let c =
            parse_str("[job.z]\ncommand=\"a\"\n[job.a]\ncommand=\"a\"\n[job.m]\ncommand=\"a\"\n")
                .expect("valid");
        let names: Vec<_> = c.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["z", "a", "m"]);
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let (line, col, msg) = err("[job.a]\ncommand = [\"x\"]\n  colour = 1\n");
        assert_eq!((line, col), (3, 3));
        assert!(msg.contains("unknown field `colour`"), "{msg}");
    }

    #[test]
    fn a_near_miss_key_gets_a_did_you_mean() {
        let (line, col, msg) = err("[job.a]\ncommand = [\"x\"]\nstop_timout = \"1s\"\n");
        assert_eq!((line, col), (3, 1));
        assert_eq!(
            msg,
            "unknown field `stop_timout`: did you mean `stop_timeout`?"
        );
        let (_, _, msg) = err("[supervisor]\nsokcet = \"s\"\n");
        assert!(msg.contains("did you mean `socket`?"), "{msg}");
    }

    #[test]
    fn a_supervisor_file_is_pointed_at_import() {
        let (line, col, msg) = err("; web\n[program:web]\ncommand=/usr/bin/web\n");
        assert_eq!((line, col), (2, 1));
        assert!(
            msg.contains("supervisord import /srv/jobs/supervisord.toml"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_type() {
        let (line, _, msg) = err("[job.a]\ncommand = [\"x\"]\ndaemon = \"yes\"\n");
        assert_eq!(line, 3);
        assert!(msg.contains("invalid type"), "{msg}");
    }

    #[test]
    fn bad_duration_and_signal() {
        let (line, col, msg) = err("[job.a]\ncommand = [\"x\"]\nstop_timeout = \"10 parsecs\"\n");
        assert_eq!((line, col), (3, 16));
        assert!(msg.contains("bad duration"), "{msg}");
        let (line, _, msg) = err("[job.a]\ncommand = [\"x\"]\nstop_signal = \"SIGNOPE\"\n");
        assert_eq!(line, 3);
        assert!(msg.contains("unknown signal"), "{msg}");
        let (_, _, msg) = err("[job.a]\ncommand = [\"x\"]\nbackoff = -1\n");
        assert!(msg.contains("negative"), "{msg}");
    }

    #[test]
    fn bad_restart_policy() {
        let (line, _, msg) = err("[job.a]\ncommand = [\"x\"]\nrestart = \"sometimes\"\n");
        assert_eq!(line, 3);
        assert!(
            msg.contains("\"never\", \"on-failure\" or \"always\""),
            "{msg}"
        );
        let (line, col, msg) = err("[job.a]\ncommand = [\"x\"]\nrestart = true\n");
        assert_eq!((line, col), (3, 11));
        assert!(
            msg.starts_with("restart = true: expected \"never\""),
            "{msg}"
        );
    }

    #[test]
    fn invalid_names() {
        let (line, col, msg) = err("[job.\"bad name\"]\ncommand = [\"x\"]\n");
        assert_eq!((line, col), (1, 6));
        assert!(msg.contains("invalid job name"), "{msg}");
        let long = "x".repeat(65);
        let (_, _, msg) = err(&format!("[job.{long}]\ncommand = [\"x\"]\n"));
        assert!(msg.contains("invalid job name"), "{msg}");
        let (line, _, msg) = err("[job.a]\ncommand = [\"x\"]\ngroup = \"a/b\"\n");
        assert_eq!(line, 3);
        assert!(msg.contains("invalid group name"), "{msg}");
    }

    #[test]
    fn duplicate_job_is_rejected() {
        let (line, _, msg) = err("[job.a]\ncommand = [\"x\"]\n[job.a]\ncommand = [\"y\"]\n");
        assert_eq!(line, 3);
        assert!(msg.contains("duplicate"), "{msg}");
    }

    #[test]
    fn empty_and_missing_commands() {
        let (line, col, msg) = err("[job.a]\ncommand = []\n");
        assert_eq!((line, col), (2, 11));
        assert!(msg.contains("empty"), "{msg}");
        let (_, _, msg) = err("[job.a]\ncommand = \"   \"\n");
        assert!(msg.contains("empty"), "{msg}");
        let (line, _, msg) = err("\n[job.a]\ngroup = \"g\"\n");
        assert_eq!(line, 2);
        assert!(msg.contains("no `command`"), "{msg}");
        let (_, _, msg) = err("[job.a]\ncommand = \"sh -c 'oops\"\n");
        assert!(msg.contains("unbalanced"), "{msg}");
        let (line, _, msg) = err("[defaults]\ncommand = [\"x\"]\n");
        assert_eq!(line, 2);
        assert!(msg.contains("[defaults]"), "{msg}");
    }

    #[test]
    fn output_keywords_and_paths() {
        let c =
            parse_str("[job.a]\ncommand = [\"x\"]\nstderr = \"stdout\"\nstdout = \"./out.txt\"\n")
                .expect("valid");
        assert_eq!(c.jobs[0].stderr, Output::Stdout);
        assert_eq!(c.jobs[0].stdout, Output::File("/srv/jobs/out.txt".into()));
        for bad in ["none", "Log", "stdout.txt", ""] {
            let (line, col, msg) = err(&format!("[job.a]\ncommand = [\"x\"]\nstdout = {bad:?}\n"));
            assert_eq!((line, col), (3, 10), "{bad}: {msg}");
            assert!(
                msg.contains("unknown output") && msg.contains("\"inherit\""),
                "{msg}"
            );
        }
        let (line, col, msg) = err("[job.a]\ncommand = [\"x\"]\nstdout = \"stdout\"\n");
        assert_eq!((line, col), (3, 10));
        assert!(msg.contains("only stderr"), "{msg}");
    }

    #[test]
    fn toml_syntax_error_has_position() {
        let (line, _, _) = err("[job.a]\ncommand = [\"x\"\n");
        assert!(line >= 2);
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("50MiB"), Ok(50 << 20));
        assert_eq!(parse_size("10KB"), Ok(10_000));
        assert_eq!(parse_size("1 G"), Ok(1 << 30));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("10 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let c = parse_str("[job.a]\ncommand=\"x\"\nbackoff=\"1s\"\n").expect("valid");
        let j = &c.jobs[0];
        let secs: Vec<u64> = (1..=8).map(|n| j.backoff_delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(j.backoff_delay(1000).as_secs(), 60);
    }

    #[test]
    fn added_job_uses_defaults_and_reports_bad_keys() {
        let c = parse_str("[defaults]\nrestart = \"always\"\n").expect("valid");
        let spec = c
            .job_from_json(
                "dyn",
                &serde_json::json!({"command": ["sleep", "1"], "group": "g"}),
            )
            .expect("valid job");
        assert_eq!(spec.restart, RestartPolicy::Always);
        assert_eq!(spec.group, "g");
        let e = c
            .job_from_json("dyn", &serde_json::json!({"command": ["x"], "colour": 1}))
            .expect_err("unknown key")
            .to_string();
        assert!(e.contains("colour") && e.contains("dyn"), "{e}");
        let e = c
            .job_from_json("bad name", &serde_json::json!({"command": ["x"]}))
            .expect_err("bad name")
            .to_string();
        assert!(e.contains("invalid job name"), "{e}");
        let e = c
            .job_from_json("x", &serde_json::json!({"command": []}))
            .expect_err("empty")
            .to_string();
        assert!(e.contains("empty"), "{e}");
        let e = c
            .job_from_json(
                "x",
                &serde_json::json!({"stop_timeout": "forever", "command": "a"}),
            )
            .expect_err("bad duration")
            .to_string();
        assert!(e.contains("bad duration"), "{e}");
    }

    /// Every job's spec lives as long as the job: the sections most jobs leave out
    /// (`ready`, `health`, `schedule`, `user`) are boxed, a pointer each when absent.
    #[test]
    fn a_job_spec_is_small_and_its_boxed_sections_read_back() {
        assert!(
            std::mem::size_of::<JobSpec>() <= 512,
            "JobSpec grew to {} bytes",
            std::mem::size_of::<JobSpec>()
        );
        let c = parse_str(
            "[job.a]\ncommand = [\"x\"]\nuser = \"root\"\nschedule = \"every 5s\"\n[job.a.ready]\ntcp = \"127.0.0.1:1\"\n[job.a.health]\nexec = [\"true\"]\n[job.b]\ncommand = [\"x\"]\n",
        )
        .expect("valid");
        let a = &c.jobs[0];
        assert_eq!(a.user.as_deref().map(|u| (u.uid, u.gid)), Some((0, 0)));
        assert!(a.ready.is_some() && a.health.is_some() && a.schedule.is_some());
        let b = &c.jobs[1];
        assert!(
            b.user.is_none() && b.ready.is_none() && b.health.is_none() && b.schedule.is_none()
        );
    }
}
