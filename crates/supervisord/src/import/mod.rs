//! `supervisord import`: a Supervisor INI file (`supervisord.conf`, `conf.d/*.conf`) in,
//! a job file out, and a list of what could not be carried over.
//!
//! The INI is read the way Supervisor reads it (Python's `configparser`: `key = value` or
//! `key: value`, `;`/`#` comments, inline comments after whitespace, indented
//! continuation lines), `%(name)s` expansions are applied (`program_name`,
//! `process_num`, `group_name`, `host_node_name`, `here`, `ENV_X`), and each
//! `[program:x]` becomes one job, or `numprocs` jobs. Keys are mapped where the meaning
//! carries over; everything else becomes a [`Note`] with its line, so nothing is dropped
//! silently. The output is TOML text written by hand (comments, key order) from values
//! quoted by the `toml` crate.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

mod ini;
pub mod procfile;

use ini::{boolean, byte_size, environment, expand, parse_ini, Section, ENV_LATER};

/// Something in the input that was not carried over as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// 1-based line in the INI file.
    pub line: usize,
    /// What, and why.
    pub message: String,
}

/// The outcome of an import.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The job file.
    pub toml: String,
    /// What could not be mapped, in file order.
    pub notes: Vec<Note>,
    /// How many jobs the job file has.
    pub jobs: usize,
}

/// An INI file that cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}: {message}")]
pub struct ImportError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// The section names (or prefixes, ending in `:`) that Supervisor reads.
const SUPERVISOR_SECTIONS: [&str; 10] = [
    "supervisord",
    "supervisorctl",
    "unix_http_server",
    "inet_http_server",
    "include",
    "program:",
    "group:",
    "eventlistener:",
    "fcgi-program:",
    "rpcinterface:",
];

/// A file with none of Supervisor's sections is not a Supervisor file: an empty file, or
/// a TOML job file given by mistake, is an error rather than an empty job file.
fn not_supervisor(text: &str, sections: &[Section]) -> Result<(), ImportError> {
    let known = |name: &str| {
        SUPERVISOR_SECTIONS
            .iter()
            .any(|k| match k.strip_suffix(':') {
                Some(prefix) => name
                    .strip_prefix(prefix)
                    .is_some_and(|r| r.starts_with(':')),
                None => name == *k,
            })
    };
    if sections.iter().any(|s| known(&s.name)) {
        return Ok(());
    }
    let message = if sections.iter().any(|s| s.name.starts_with("job.")) || text.contains("[job.") {
        "this is a TOML job file already, not a Supervisor INI file: check it with `supervisord --check FILE`"
    } else if text.trim().is_empty() {
        "the file is empty: there is nothing to import"
    } else {
        "no Supervisor sections ([program:x], [group:x], [supervisord], ...): not a Supervisor INI file"
    };
    Err(ImportError {
        line: sections.first().map_or(1, |s| s.line),
        message: message.to_owned(),
    })
}

/// What `%(here)s`, `%(host_node_name)s` and `%(ENV_X)s` expand to.
#[derive(Debug, Clone, Default)]
pub struct Expansions {
    /// The INI file's folder.
    pub here: PathBuf,
    /// This machine's host name.
    pub host: String,
    /// The environment.
    pub env: HashMap<String, String>,
}

impl Expansions {
    /// Expansions for a file at `path`, from this process's environment.
    pub fn for_file(path: &Path) -> Expansions {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Expansions {
            here: abs.parent().map(Path::to_path_buf).unwrap_or_default(),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_default(),
            env: std::env::vars().collect(),
        }
    }
}

/// A TOML string for a job-file value. Every string value of a job file is interpolated,
/// so a `$` that starts `${` or `$$` is written `$$` (a bare `$NAME` means itself): `${X}`
/// in a Supervisor command stays for the shell.
fn quote(s: &str) -> String {
    toml_string(
        &escape_dollars(s)
            .replace('\u{1}', "${")
            .replace('\u{2}', "}"),
    )
}

/// `s` with every `$` that interpolation would read (before `{` or `$`) doubled.
fn escape_dollars(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$' && matches!(chars.peek(), Some('$' | '{')) {
            out.push('$');
        }
    }
    out
}

/// A TOML string, as is (keys are not interpolated).
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A TOML key, quoted unless it is a bare key.
fn key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_owned()
    } else {
        toml_string(s)
    }
}

/// A job name supervisord accepts: letters, digits, `-`, `_`, `.`, at most 64.
fn job_name(s: &str) -> String {
    let mut n: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if n.is_empty() {
        n.push('_');
    }
    n
}

// ---- the mapping ------------------------------------------------------------------------

/// One job to write: (key, TOML value) pairs in order.
struct JobOut {
    name: String,
    priority: i64,
    order: usize,
    lines: Vec<(String, String)>,
}

/// Keys of `[program:x]` that mean nothing to supervisord, with why.
fn unmappable(key: &str) -> Option<&'static str> {
    Some(match key {
        "serverurl" => "jobs reach supervisord through $SUPERVISORD_SOCKET or --socket, not a URL",
        "stdout_capture_maxbytes" | "stderr_capture_maxbytes" => "no capture mode",
        "stdout_events_enabled" | "stderr_events_enabled" => {
            "no log events; follow output with `supctl logs -f`"
        }
        "depend" | "depends_on" | "dependent_startup_wait_for" => {
            "Supervisor itself ignores it; for a start order write `depends_on = [\"NAME\"]` on the job"
        }
        "stdout_syslog" | "stderr_syslog" => {
            "no syslog output; run supervisord under journald, or pipe the job's output"
        }
        _ => return None,
    })
}

/// Convert Supervisor's INI text to a job file.
pub fn import(text: &str, exp: &Expansions) -> Result<Imported, ImportError> {
    let sections = parse_ini(text)?;
    not_supervisor(text, &sections)?;
    let mut notes: Vec<Note> = Vec::new();
    let note = |notes: &mut Vec<Note>, line: usize, message: String| {
        notes.push(Note { line, message });
    };

    // Groups first: a program's group name is used in its expansions.
    let mut group_of: HashMap<String, String> = HashMap::new();
    for s in &sections {
        if let Some(g) = s.name.strip_prefix("group:") {
            match s.get("programs") {
                Some(p) => {
                    for prog in p.text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                        group_of.insert(prog.to_owned(), g.trim().to_owned());
                    }
                }
                None => note(
                    &mut notes,
                    s.line,
                    format!("[{}] has no programs = ...; ignored", s.name),
                ),
            }
            for (k, v) in &s.keys {
                if k != "programs" {
                    note(
                        &mut notes,
                        v.line,
                        format!("[{}] {k}: not mapped (groups have no settings of their own; priority orders the jobs only)", s.name),
                    );
                }
            }
        }
    }

    let mut supervisor_keys: Vec<(String, String)> = Vec::new();
    let mut socket_hint: Vec<String> = Vec::new();
    let mut defaults_env: Vec<(String, String)> = Vec::new();
    let mut jobs: Vec<JobOut> = Vec::new();
    let mut order = 0;
    let mut priorities = false;
    let mut no_directory = false;
    let mut on_exit_shutdown = false;
    // `[supervisord] directory`: where Supervisor ran programs without their own.
    let supervisord_dir: Option<String> = sections
        .iter()
        .filter(|s| s.name == "supervisord")
        .find_map(|s| s.get("directory"))
        .map(|v| v.text.trim().to_owned());
    // `[supervisord] environment` is set before Supervisor expands anything else: its
    // names are known here, and win over the environment's.
    let supervisord_env: Vec<(String, String)> = sections
        .iter()
        .filter(|s| s.name == "supervisord")
        .find_map(|s| s.get("environment"))
        .and_then(|v| environment(&v.text).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, v)| !v.contains("%("))
        .collect();
    for s in &sections {
        // `%(ENV_X)s` is written `${X}`: supervisord expands it from its environment when
        // it loads the file, as Supervisor did when it started (not from the shell that
        // imports). Only values needed now (numprocs, process names) use this shell's.
        let base_vars = || {
            let mut v: HashMap<String, String> = exp
                .env
                .keys()
                .map(|k| (format!("{ENV_LATER}ENV_{k}"), String::new()))
                .collect();
            v.insert(ENV_LATER.into(), String::new());
            v.extend(
                supervisord_env
                    .iter()
                    .map(|(k, x)| (format!("ENV_{k}"), x.clone())),
            );
            v.insert("here".into(), exp.here.display().to_string());
            v.insert("host_node_name".into(), exp.host.clone());
            v
        };
        let section = s.name.as_str();
        match section.split_once(':').map_or(section, |(kind, _)| kind) {
            "program" => {
                let program = section["program:".len()..].trim().to_owned();
                let now: HashMap<String, String> = exp
                    .env
                    .iter()
                    .chain(supervisord_env.iter().map(|(k, v)| (k, v)))
                    .map(|(k, v)| (format!("ENV_{k}"), v.clone()))
                    .collect();
                let out = program_jobs(
                    s,
                    &program,
                    group_of.get(&program),
                    (base_vars(), now),
                    supervisord_dir.as_deref(),
                    &mut notes,
                )?;
                no_directory |= s.get("directory").is_none();
                priorities |= s.get("priority").is_some();
                for mut j in out {
                    j.order = order;
                    order += 1;
                    jobs.push(j);
                }
            }
            "group" => {}
            "supervisord" => {
                for (k, v) in &s.keys {
                    let mut unknown = Vec::new();
                    let text = expand(&v.text, &base_vars(), &mut unknown);
                    report_unknown(&mut notes, v.line, &unknown);
                    match k.as_str() {
                        "childlogdir" => supervisor_keys.push(("log_dir".into(), quote(&text))),
                        "environment" => match environment(&text) {
                            Ok(pairs) => defaults_env.extend(pairs),
                            Err(e) => note(&mut notes, v.line, format!("[supervisord] environment: {e}; not mapped")),
                        },
                        "nodaemon" | "minfds" | "minprocs" | "pidfile" | "directory" => {}
                        "logfile" | "logfile_maxbytes" | "logfile_backups" | "loglevel" | "silent" => note(
                            &mut notes,
                            v.line,
                            format!("[supervisord] {k}: not mapped (supervisord logs to stderr: use the journal, or --log-level / --log-format)"),
                        ),
                        _ => note(&mut notes, v.line, format!("[supervisord] {k}: not mapped")),
                    }
                }
            }
            "unix_http_server" => {
                for (k, v) in &s.keys {
                    let mut unknown = Vec::new();
                    let text = expand(&v.text, &base_vars(), &mut unknown);
                    report_unknown(&mut notes, v.line, &unknown);
                    match k.as_str() {
                        "file" => socket_hint.push(text),
                        _ => note(
                            &mut notes,
                            v.line,
                            format!("[unix_http_server] {k}: not mapped (the socket is mode 0600 and only its owner and root may use it)"),
                        ),
                    }
                }
            }
            "supervisorctl" | "rpcinterface" => {}
            "inet_http_server" => note(
                &mut notes,
                s.line,
                format!("[{section}]: not mapped (supervisord listens on a Unix socket only)"),
            ),
            "include" => note(
                &mut notes,
                s.line,
                format!(
                    "[include] files = {}: not followed; import each file and merge the jobs",
                    s.get("files").map_or("", |v| v.text.as_str())
                ),
            ),
            "eventlistener" if stops_supervisor(s) => {
                on_exit_shutdown = true;
                note(
                    &mut notes,
                    s.line,
                    format!("[{section}]: stops supervisord when a program ends; mapped to [defaults] on_exit = \"shutdown\" (every job that ends for good ends the run: check that is meant)"),
                );
            }
            "eventlistener" | "fcgi-program" => note(
                &mut notes,
                s.line,
                format!("[{section}]: not mapped (no event listeners or FastCGI sockets)"),
            ),
            _ => note(
                &mut notes,
                s.line,
                format!("[{section}]: unknown section, not mapped"),
            ),
        }
    }
    if no_directory && supervisord_dir.is_none() {
        note(
            &mut notes,
            0,
            "directory: programs without one ran in supervisord's own working folder under Supervisor; here they run in the job file's folder (set cwd where it matters)".into(),
        );
    }
    if priorities {
        note(
            &mut notes,
            0,
            "priority: jobs are written lowest priority first; supervisord starts them in file order but does not wait for one before the next".into(),
        );
    }

    // Unique names (sanitizing can collide).
    let mut seen: HashMap<String, usize> = HashMap::new();
    for j in &mut jobs {
        let n = seen.entry(j.name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            j.name = format!("{}-{}", j.name, n);
        }
    }
    jobs.sort_by_key(|j| (j.priority, j.order));

    let mut out = String::new();
    out.push_str("# Imported from a Supervisor configuration by `supervisord import`.\n");
    out.push_str("# Check it with `supervisord --check FILE`.\n");
    if !supervisor_keys.is_empty() || !socket_hint.is_empty() {
        out.push_str("\n[supervisor]\n");
        for (k, v) in &supervisor_keys {
            let _ = writeln!(out, "{k} = {v}");
        }
        for s in &socket_hint {
            let _ = writeln!(
                out,
                "# Supervisor's socket was {s}; supervisord's socket is set here (or with --socket):\n# socket = {}",
                quote(s)
            );
        }
    }
    if !defaults_env.is_empty() || on_exit_shutdown {
        out.push_str("\n[defaults]\n");
    }
    if !defaults_env.is_empty() {
        let _ = writeln!(out, "env = {}", inline_table(&defaults_env));
    }
    if on_exit_shutdown {
        out.push_str("on_exit = \"shutdown\"\n");
    }
    for j in &jobs {
        let _ = writeln!(out, "\n[job.{}]", key(&j.name));
        for (k, v) in &j.lines {
            let _ = writeln!(out, "{k} = {v}");
        }
    }
    notes.sort_by_key(|n| n.line);
    Ok(Imported {
        toml: out,
        notes,
        jobs: jobs.len(),
    })
}

/// Whether an `[eventlistener:x]` only stops supervisord when a program changes state
/// (the pattern of container images: listen to PROCESS_STATE_* and kill or shut down).
fn stops_supervisor(s: &Section) -> bool {
    let events = s
        .get("events")
        .map_or(String::new(), |v| v.text.to_ascii_uppercase());
    let command = s
        .get("command")
        .map_or(String::new(), |v| v.text.to_ascii_lowercase());
    events.contains("PROCESS_STATE")
        && ["kill", "shutdown", "stop-supervisor", "stop_supervisor"]
            .iter()
            .any(|w| command.contains(w))
}

fn inline_table(pairs: &[(String, String)]) -> String {
    let map: BTreeMap<&str, &str> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let body: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{} = {}", key(k), quote(v)))
        .collect();
    format!("{{ {} }}", body.join(", "))
}

fn report_unknown(notes: &mut Vec<Note>, line: usize, unknown: &[String]) {
    for u in unknown {
        let message = match u.strip_prefix("ENV_") {
            Some(name) => format!(
                "%({u})s: {name} is not set here; written ${{{name}}}, which supervisord expands \
                 from its environment (or [supervisor] env_file) when it loads the file, and \
                 refuses the file while {name} is unset, as Supervisor does"
            ),
            None => format!("%({u})s: unknown expansion, kept as written"),
        };
        notes.push(Note { line, message });
    }
}

/// The jobs of one `[program:x]` (one, or `numprocs`).
fn program_jobs(
    s: &Section,
    program: &str,
    group: Option<&String>,
    (mut vars, env_now): (HashMap<String, String>, HashMap<String, String>),
    supervisord_dir: Option<&str>,
    notes: &mut Vec<Note>,
) -> Result<Vec<JobOut>, ImportError> {
    vars.insert("program_name".into(), program.to_owned());
    vars.insert(
        "group_name".into(),
        group.cloned().unwrap_or_else(|| program.to_owned()),
    );
    // Values needed to name and count the jobs are expanded now, from this environment
    // (Supervisor expands them before it reads them); an unset %(ENV_X)s is an error, as
    // it is for Supervisor.
    let mut now_vars = vars.clone();
    now_vars.remove(ENV_LATER);
    now_vars.extend(env_now);
    let now = |key: &str| -> Result<Option<ini::Value>, ImportError> {
        let Some(v) = s.get(key) else { return Ok(None) };
        let mut unknown = Vec::new();
        let text = expand(&v.text, &now_vars, &mut unknown);
        if let Some(u) = unknown.first() {
            return Err(ImportError {
                line: v.line,
                message: format!(
                    "[program:{program}] {key}: %({u})s cannot be expanded (is {} set?); Supervisor refuses such a file too",
                    u.strip_prefix("ENV_").unwrap_or(u)
                ),
            });
        }
        Ok(Some(ini::Value { text, line: v.line }))
    };
    let numprocs_v = now("numprocs")?;
    let start_v = now("numprocs_start")?;
    let priority_v = now("priority")?;
    let at = |k: &str| s.get(k);
    let numprocs: u32 = match numprocs_v
        .as_ref()
        .map(|v| (v, v.text.trim().parse::<u32>()))
    {
        None => 1,
        Some((_, Ok(n))) if n >= 1 => n,
        Some((v, _)) => {
            notes.push(Note {
                line: v.line,
                message: format!(
                    "[program:{program}] numprocs = {:?}: not a positive number; using 1",
                    v.text
                ),
            });
            1
        }
    };
    let start: u32 = start_v
        .and_then(|v| v.text.trim().parse().ok())
        .unwrap_or(0);
    let priority: i64 = priority_v
        .and_then(|v| v.text.trim().parse().ok())
        .unwrap_or(999);
    let process_name = match at("process_name") {
        Some(v) if numprocs == 1 || v.text.contains("%(process_num)") => v.text.clone(),
        Some(v) => {
            notes.push(Note {
                line: v.line,
                message: format!("[program:{program}] process_name = {:?} has no %(process_num)s but numprocs = {numprocs}; naming the jobs {program}_00, {program}_01, ...", v.text),
            });
            "%(program_name)s_%(process_num)02d".into()
        }
        None if numprocs > 1 => "%(program_name)s_%(process_num)02d".into(),
        None => "%(program_name)s".into(),
    };

    // One job per process; notes are taken from the first, as every process has the
    // same keys.
    let mut jobs = Vec::new();
    for n in start..start + numprocs {
        vars.insert("process_num".into(), n.to_string());
        let first = n == start;
        let mut unknown_at: Vec<(usize, Vec<String>)> = Vec::new();
        let mut unknown_name = Vec::new();
        now_vars.insert("process_num".into(), n.to_string());
        let name_raw = expand(&process_name, &now_vars, &mut unknown_name);
        if !unknown_name.is_empty() {
            unknown_at.push((at("process_name").map_or(s.line, |v| v.line), unknown_name));
        }
        let mut get = |k: &str| -> Option<(String, usize)> {
            let v = s.get(k)?;
            let mut unknown = Vec::new();
            let text = expand(&v.text, &vars, &mut unknown);
            if !unknown.is_empty() {
                unknown_at.push((v.line, unknown));
            }
            Some((text, v.line))
        };
        let name = job_name(&name_raw);
        let mut lines: Vec<(String, String)> = Vec::new();
        let mut msgs: Vec<(usize, String)> = Vec::new();
        if name != name_raw && first {
            msgs.push((s.line, format!("[program:{program}] process name {name_raw:?} renamed {name:?} (job names are letters, digits, -, _ and .)")));
        }
        match get("command") {
            Some((cmd, line)) => match shlex::split(&cmd) {
                Some(argv) if !argv.is_empty() => {
                    let list: Vec<String> = argv.iter().map(|a| quote(a)).collect();
                    lines.push(("command".into(), format!("[{}]", list.join(", "))));
                }
                _ => {
                    lines.push(("command".into(), quote(&cmd)));
                    msgs.push((line, format!("[program:{program}] command {cmd:?} cannot be split into words; copied as a string")));
                }
            },
            None => msgs.push((s.line, format!("[program:{program}] has no command; supervisord will reject this job until one is added"))),
        }
        if let Some(g) = group {
            lines.push(("group".into(), quote(g)));
        } else if numprocs > 1 {
            lines.push(("group".into(), quote(program)));
        }
        for (k, v) in &s.keys {
            if k == "process_name" {
                continue;
            }
            let Some((text, line)) = get(k) else { continue };
            let m = map_key(s, program, k, &v.text, &text);
            lines.extend(m.keys);
            msgs.extend(m.notes.into_iter().map(|n| (line, n)));
        }
        if s.get("autorestart").is_none() {
            // Supervisor's default is `unexpected`; supervisord's is `never`.
            lines.push(("restart".into(), quote("on-failure")));
        }
        // Supervisor's defaults where they differ from supervisord's, written out.
        if s.get("stdout_logfile_backups").is_none() {
            lines.push(("log_backups".into(), "10".into()));
        }
        if s.get("directory").is_none() {
            if let Some(dir) = supervisord_dir {
                lines.push(("cwd".into(), quote(dir)));
            }
        }
        if first
            && s.get("autorestart").and_then(|v| boolean(&v.text)) == Some(false)
            && s.get("startretries").is_none_or(|v| v.text.trim() != "0")
        {
            let line = s.get("autorestart").map_or(s.line, |v| v.line);
            msgs.push((line, format!("[program:{program}] autorestart = false: Supervisor still retries a start that ends within startsecs (startretries times); supervisord's restart = \"never\" does not retry (use restart = \"on-failure\" if the job exits non-zero only when it fails)")));
        }
        // stopasgroup implies killasgroup in Supervisor; either means the whole group.
        let asgroup = ["stopasgroup", "killasgroup"]
            .iter()
            .filter_map(|k| s.get(k).map(|v| (*k, v)))
            .collect::<Vec<_>>();
        if asgroup.is_empty() {
            // Supervisor signals only the program's own process.
            lines.push(("kill_group".into(), "false".into()));
        } else {
            let stop = s
                .get("stopasgroup")
                .and_then(|v| boolean(&v.text))
                .unwrap_or(false);
            let kill = s
                .get("killasgroup")
                .and_then(|v| boolean(&v.text))
                .unwrap_or(false);
            lines.push(("kill_group".into(), (stop || kill).to_string()));
            if kill && !stop {
                msgs.push((asgroup[0].1.line, format!("[program:{program}] killasgroup without stopasgroup: supervisord sends both the stop signal and SIGKILL to the whole group")));
            }
        }
        // Both streams into stdout's destination, in the order they were written.
        if s.get("redirect_stderr").and_then(|v| boolean(&v.text)) == Some(true) {
            lines.push(("stderr".into(), quote("stdout")));
        }
        if first {
            unknown_at.sort();
            unknown_at.dedup();
            for (line, u) in &unknown_at {
                report_unknown(notes, *line, u);
            }
            notes.extend(
                msgs.into_iter()
                    .map(|(line, message)| Note { line, message }),
            );
        }
        jobs.push(JobOut {
            name,
            priority,
            order: 0,
            lines,
        });
    }
    Ok(jobs)
}

/// What one key of `[program:x]` becomes: job keys, and notes for what did not carry over.
#[derive(Default)]
struct Mapping {
    keys: Vec<(String, String)>,
    notes: Vec<String>,
}

/// Map key `k` (written `raw`, `text` once expanded) of `[program:{program}]`.
fn map_key(s: &Section, program: &str, k: &str, raw: &str, text: &str) -> Mapping {
    let mut m = Mapping::default();
    let bad = |what: &str| format!("[program:{program}] {k} = {raw:?}: not {what}; not mapped");
    match k {
        "command" | "process_name" | "numprocs" | "numprocs_start" | "priority" => {}
        "directory" => m.keys.push(("cwd".into(), quote(text))),
        "user" => m.keys.push(("user".into(), quote(text.trim()))),
        "umask" => {
            let t = text.trim();
            if !t.is_empty() && t.len() <= 4 && t.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                m.keys.push(("umask".into(), quote(t)));
            } else {
                m.notes.push(bad("an octal umask such as 022"));
            }
        }
        "environment" => match environment(text) {
            Ok(pairs) => m.keys.push(("env".into(), inline_table(&pairs))),
            Err(e) => m
                .notes
                .push(format!("[program:{program}] environment: {e}; not mapped")),
        },
        "autostart" => match boolean(text) {
            Some(b) => m.keys.push(("autostart".into(), b.to_string())),
            None => m.notes.push(bad("true or false")),
        },
        "autorestart" => {
            let r = match text.trim().to_ascii_lowercase().as_str() {
                "unexpected" => Some("on-failure"),
                t => boolean(t).map(|b| if b { "always" } else { "never" }),
            };
            match r {
                Some(r) => m.keys.push(("restart".into(), quote(r))),
                None => m.notes.push(bad("true, false or unexpected")),
            }
        }
        "startsecs" => match text.trim().parse::<u64>() {
            Ok(n) => m.keys.push(("start_secs".into(), quote(&format!("{n}s")))),
            Err(_) => m.notes.push(bad("a number of seconds")),
        },
        "startretries" => match text.trim().parse::<u32>() {
            Ok(n) => m.keys.push(("max_restarts".into(), n.to_string())),
            Err(_) => m.notes.push(bad("a number")),
        },
        "exitcodes" => {
            let codes: Result<Vec<i32>, _> =
                text.split(',').map(|c| c.trim().parse::<i32>()).collect();
            match codes {
                Ok(c) => m.keys.push((
                    "exit_codes".into(),
                    format!(
                        "[{}]",
                        c.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")
                    ),
                )),
                Err(_) => m.notes.push(bad("a list of numbers")),
            }
        }
        "stopsignal" => {
            let sig = text.trim().to_ascii_uppercase();
            let sig = sig.strip_prefix("SIG").unwrap_or(&sig).to_owned();
            if sig.parse::<protocol::Signal>().is_ok() {
                m.keys.push(("stop_signal".into(), quote(&sig)));
            } else {
                m.notes.push(bad("a signal supervisord knows"));
            }
        }
        "stopwaitsecs" => match text.trim().parse::<u64>() {
            Ok(n) => m
                .keys
                .push(("stop_timeout".into(), quote(&format!("{n}s")))),
            Err(_) => m.notes.push(bad("a number of seconds")),
        },
        "stopasgroup" | "killasgroup" => {}
        "stdout_logfile" | "stderr_logfile" => {
            let ours = if k == "stdout_logfile" {
                "stdout"
            } else {
                "stderr"
            };
            let value = match text.trim() {
                t if t.eq_ignore_ascii_case("AUTO") => quote("log"),
                t if t.eq_ignore_ascii_case("NONE") => quote("null"),
                t if t.eq_ignore_ascii_case("syslog") => {
                    m.notes.push(format!("[program:{program}] {k} = syslog: not mapped (captured with `supctl logs` instead)"));
                    quote("log")
                }
                // supervisord's stdout, lines behind `name | `.
                "/dev/stdout" | "/dev/fd/1" => quote("inherit"),
                // supervisord's stderr: the job appends to it as to a file, as under
                // Supervisor (a socket, as under systemd, cannot be opened this way).
                "/dev/stderr" | "/dev/fd/2" => quote("/dev/stderr"),
                // A job file takes a bare word for a keyword, so a relative file gets its './'.
                t if !t.contains('/') => quote(&format!("./{t}")),
                t => quote(t),
            };
            if ours == "stderr"
                && s.get("redirect_stderr").and_then(|v| boolean(&v.text)) == Some(true)
            {
                return m;
            }
            m.keys.push((ours.into(), value));
        }
        "redirect_stderr" => {}
        "stdout_logfile_maxbytes" => match byte_size(text) {
            Some(b) => {
                m.keys.push(("log_max_bytes".into(), quote(&b)));
                let path = s
                    .get("stdout_logfile")
                    .map(|v| v.text.trim().to_ascii_uppercase());
                if path.is_some_and(|p| {
                    !matches!(p.as_str(), "AUTO" | "NONE") && !p.starts_with("/DEV/")
                }) {
                    m.notes.push(format!("[program:{program}] {k}: supervisord rotates captured logs (stdout = \"log\") only; a file path is appended to without rotation (use logrotate's copytruncate, or stdout = \"log\")"));
                }
            }
            None => m.notes.push(bad("a size such as 50MB")),
        },
        "stdout_logfile_backups" => match text.trim().parse::<u32>() {
            Ok(n) => m.keys.push(("log_backups".into(), n.to_string())),
            Err(_) => m.notes.push(bad("a number")),
        },
        "stderr_logfile_maxbytes" | "stderr_logfile_backups" => {
            let same = s
                .get(&k.replace("stderr", "stdout"))
                .map(|v| v.text.trim().to_owned())
                == Some(text.trim().to_owned());
            if !same {
                m.notes.push(format!("[program:{program}] {k}: not mapped (log_max_bytes and log_backups apply to both streams; taken from stdout_logfile_*)"));
            }
        }
        other => {
            let why = unmappable(other).unwrap_or("unknown key");
            m.notes.push(format!(
                "[program:{program}] {other} = {raw}: not mapped ({why})"
            ));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp() -> Expansions {
        Expansions {
            here: PathBuf::from("/etc/supervisor"),
            host: "box".into(),
            env: HashMap::from([("APP_ROOT".to_owned(), "/var/www/shop".to_owned())]),
        }
    }

    #[test]
    fn supervisord_environment_names_are_known_when_programs_are_expanded() {
        // Supervisor sets [supervisord] environment before it expands the programs, and
        // its values win over the environment's (APP_ROOT is set in `exp()` too).
        let out = run("[supervisord]\nenvironment=APP_ROOT=\"/srv/app\",WORKERS=\"2\"\n\n[program:a]\ncommand=%(ENV_APP_ROOT)s/bin/a\ndirectory=%(ENV_APP_ROOT)s\nnumprocs=%(ENV_WORKERS)s\n");
        let t = table(&out);
        let a = job(&t, "a_00").clone();
        assert_eq!(a["command"][0].as_str(), Some("/srv/app/bin/a"), "{a}");
        assert_eq!(a["cwd"].as_str(), Some("/srv/app"), "{a}");
        assert_eq!(out.jobs, 2);
        assert!(
            !out.notes.iter().any(|n| n.message.contains("not set")),
            "{:?}",
            out.notes
        );
    }

    #[test]
    fn files_that_are_not_supervisors_are_refused() {
        for (text, says) in [
            ("", "empty"),
            ("\n; only a comment\n", "no Supervisor sections"),
            ("[job.a]\ncommand = [\"x\"]\n", "TOML job file"),
            ("[server]\nport=1\n", "no Supervisor sections"),
        ] {
            let e = import(text, &exp()).expect_err(text);
            assert!(e.message.contains(says), "{text:?}: {e}");
        }
        assert!(import("[include]\nfiles = conf.d/*.conf\n", &exp()).is_ok());
        assert!(import("[program:a]\ncommand=a\n", &exp()).is_ok());
    }

    fn run(ini: &str) -> Imported {
        import(ini, &exp()).expect("imports")
    }

    fn table(out: &Imported) -> toml::Table {
        toml::from_str(&out.toml).unwrap_or_else(|e| panic!("not TOML: {e}\n{}", out.toml))
    }

    fn job<'a>(t: &'a toml::Table, name: &str) -> &'a toml::Table {
        t["job"][name]
            .as_table()
            .unwrap_or_else(|| panic!("no job {name} in {t}"))
    }

    fn sample(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../config/import")
            .join(name);
        std::fs::read_to_string(&path).expect("sample file")
    }

    #[test]
    fn user_and_umask_are_mapped() {
        let out = run(
            "[program:a]\ncommand=a\nuser=www-data\numask=022\n[program:b]\ncommand=b\numask=u+x\n",
        );
        let t = table(&out);
        assert_eq!(job(&t, "a")["user"].as_str(), Some("www-data"));
        assert_eq!(job(&t, "a")["umask"].as_str(), Some("022"));
        assert!(job(&t, "b").get("umask").is_none());
        assert!(
            out.notes
                .iter()
                .any(|n| n.line == 7 && n.message.contains("umask")),
            "{:?}",
            out.notes
        );
    }

    #[test]
    fn every_mappable_program_key_is_mapped() {
        let out = run(r#"
[program:web]
command=/usr/bin/gunicorn app:app --bind "127.0.0.1:8000"
directory=/srv/app
environment=A="x y",B=2,C='q,r'
autostart=false
autorestart=unexpected
startsecs=5
startretries=7
exitcodes=0,2
stopsignal=INT
stopwaitsecs=30
stopasgroup=true
stdout_logfile=/var/log/web.out
stderr_logfile=NONE
stdout_logfile_maxbytes=1MB
stdout_logfile_backups=3
"#);
        let t = table(&out);
        let web = job(&t, "web");
        assert_eq!(
            web["command"],
            toml::Value::try_from(["/usr/bin/gunicorn", "app:app", "--bind", "127.0.0.1:8000"])
                .expect("argv")
        );
        assert_eq!(web["cwd"].as_str(), Some("/srv/app"));
        assert_eq!(web["env"]["A"].as_str(), Some("x y"));
        assert_eq!(web["env"]["B"].as_str(), Some("2"));
        assert_eq!(web["env"]["C"].as_str(), Some("q,r"));
        assert_eq!(web["autostart"].as_bool(), Some(false));
        assert_eq!(web["restart"].as_str(), Some("on-failure"));
        assert_eq!(web["start_secs"].as_str(), Some("5s"));
        assert_eq!(web["max_restarts"].as_integer(), Some(7));
        assert_eq!(web["exit_codes"].as_array().map(Vec::len), Some(2));
        assert_eq!(web["stop_signal"].as_str(), Some("INT"));
        assert_eq!(web["stop_timeout"].as_str(), Some("30s"));
        assert_eq!(web["kill_group"].as_bool(), Some(true));
        assert_eq!(web["stdout"].as_str(), Some("/var/log/web.out"));
        assert_eq!(web["stderr"].as_str(), Some("null"));
        assert_eq!(web["log_max_bytes"].as_str(), Some("1MiB"));
        assert_eq!(web["log_backups"].as_integer(), Some(3));
        assert!(
            !web.contains_key("group"),
            "a lone program keeps its own group"
        );
    }

    #[test]
    fn autorestart_values_map_to_restart_policies() {
        for (theirs, ours) in [
            ("true", "always"),
            ("false", "never"),
            ("unexpected", "on-failure"),
        ] {
            let out = run(&format!(
                "[program:a]\ncommand=true\nautorestart={theirs}\n"
            ));
            assert_eq!(
                job(&table(&out), "a")["restart"].as_str(),
                Some(ours),
                "{theirs}"
            );
        }
    }

    #[test]
    fn supervisors_default_autorestart_is_kept() {
        let out = run("[program:a]\ncommand=a\n");
        assert_eq!(
            job(&table(&out), "a")["restart"].as_str(),
            Some("on-failure")
        );
    }

    #[test]
    fn numprocs_expands_process_num_and_program_name() {
        let out = run("[program:w]\ncommand=worker --id %(process_num)s --name %(program_name)s\nnumprocs=3\n");
        let t = table(&out);
        let names: Vec<&String> = t["job"].as_table().expect("jobs").keys().collect();
        assert_eq!(names, ["w_00", "w_01", "w_02"]);
        let w1 = job(&t, "w_01");
        assert_eq!(w1["command"][2].as_str(), Some("1"));
        assert_eq!(w1["command"][4].as_str(), Some("w"));
        assert_eq!(w1["group"].as_str(), Some("w"));
    }

    #[test]
    fn process_name_and_numprocs_start_choose_the_names() {
        let out = run("[program:q]\ncommand=run\nprocess_name=%(program_name)s-%(process_num)d\nnumprocs=2\nnumprocs_start=5\n");
        let t = table(&out);
        let names: Vec<&String> = t["job"].as_table().expect("jobs").keys().collect();
        assert_eq!(names, ["q-5", "q-6"]);
    }

    #[test]
    fn group_sections_set_the_group_and_priority_orders_jobs() {
        let out = run("[program:b]\ncommand=b\npriority=20\n[program:a]\ncommand=a\npriority=10\n[group:pair]\nprograms=a,b\n");
        let t = table(&out);
        let names: Vec<&String> = t["job"].as_table().expect("jobs").keys().collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(job(&t, "b")["group"].as_str(), Some("pair"));
        assert!(out.notes.iter().any(|n| n.message.starts_with("priority")));
    }

    #[test]
    fn what_cannot_be_mapped_is_listed_with_its_line() {
        let out = run(
            "[program:a]\ncommand=a\nserverurl=AUTO\nfrobnicate=1\n[inet_http_server]\nport=9001\n",
        );
        let lines: Vec<(usize, &str)> = out
            .notes
            .iter()
            .map(|n| (n.line, n.message.as_str()))
            .collect();
        assert!(
            lines
                .iter()
                .any(|(l, m)| *l == 3 && m.contains("serverurl = AUTO: not mapped")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|(l, m)| *l == 4 && m.contains("frobnicate = 1: not mapped (unknown key)")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|(l, m)| *l == 5 && m.contains("[inet_http_server]")),
            "{lines:?}"
        );
    }

    #[test]
    fn redirect_stderr_follows_stdout() {
        let to_file = run("[program:a]\ncommand=a\nredirect_stderr=true\nstdout_logfile=/var/log/a.log\nstderr_logfile=/var/log/other.log\n");
        let t = table(&to_file);
        let a = job(&t, "a");
        assert_eq!(a["stdout"].as_str(), Some("/var/log/a.log"));
        assert_eq!(a["stderr"].as_str(), Some("stdout"));
        let captured = run("[program:a]\ncommand=a\nredirect_stderr=true\n");
        assert_eq!(
            job(&table(&captured), "a")["stderr"].as_str(),
            Some("stdout")
        );
        assert!(!captured
            .notes
            .iter()
            .any(|n| n.message.contains("redirect_stderr")));
        let relative = run("[program:a]\ncommand=a\nstdout_logfile=a.log\n");
        assert_eq!(
            job(&table(&relative), "a")["stdout"].as_str(),
            Some("./a.log")
        );
    }

    #[test]
    fn supervisord_section_gives_log_dir_default_env_and_a_socket_hint() {
        let out = run("[unix_http_server]\nfile=%(here)s/supervisor.sock\n[supervisord]\nchildlogdir=/var/log/supervisor\nenvironment=TZ=UTC\n[program:a]\ncommand=a\n");
        let t = table(&out);
        assert_eq!(
            t["supervisor"]["log_dir"].as_str(),
            Some("/var/log/supervisor")
        );
        assert_eq!(t["defaults"]["env"]["TZ"].as_str(), Some("UTC"));
        assert!(
            out.toml
                .contains("# socket = \"/etc/supervisor/supervisor.sock\""),
            "{}",
            out.toml
        );
    }

    #[test]
    fn ini_syntax_follows_configparser() {
        let out = run("; comment\n# comment\n[program:a]\ncommand: run --flag ; inline comment\n  --more\nautostart = yes\n");
        let a = table(&out);
        let a = job(&a, "a");
        assert_eq!(a["command"].as_array().map(Vec::len), Some(3), "{a}");
        assert_eq!(a["autostart"].as_bool(), Some(true));
    }

    /// The differences from Python Supervisor 4.3's own reading of the same files.
    #[test]
    fn import_means_what_supervisor_means() {
        for shell in ["$HOME", "${X:-y}", "$$", "$${X}", "a$", "$$$"] {
            let written = escape_dollars(shell);
            let read = crate::interpolate::expand(&written, &|_| None).expect("expands");
            assert_eq!(read, shell, "{written}");
        }
        // Equally indented key=value lines are keys, not a continuation of the first.
        let t = table(&run(
            "[program:a]\n  command=/bin/run\n  directory=/srv\n  autostart=false\n",
        ));
        let a = job(&t, "a");
        assert_eq!(a["command"].as_array().map(Vec::len), Some(1), "{a}");
        assert_eq!(a["cwd"].as_str(), Some("/srv"));
        assert_eq!(a["autostart"].as_bool(), Some(false));
        // A key given twice: the later wins, and the job file is valid.
        let out = run("[program:a]\ncommand=one\ncommand=two\n");
        assert_eq!(job(&table(&out), "a")["command"][0].as_str(), Some("two"));
        // numprocs = %(ENV_X)s is expanded before it is read.
        let mut e = exp();
        e.env.insert("WORKERS".into(), "3".into());
        let out = import("[program:w]\ncommand=w\nnumprocs=%(ENV_WORKERS)s\n", &e).expect("ok");
        assert_eq!(out.jobs, 3);
        // ... and an unset one is an error at its line, as Supervisor refuses the file.
        let err =
            import("[program:w]\ncommand=w\nnumprocs = %(ENV_NOPE)s\n", &exp()).expect_err("unset");
        assert_eq!(err.line, 3);
        assert!(err.message.contains("NOPE"), "{err}");
        // %(ENV_X)s elsewhere becomes ${X}: expanded by supervisord from its environment
        // when it loads the file, like Supervisor at its start; never this shell's value
        // or the program's own environment=. A shell's `$` stays the shell's.
        let out = run("[program:a]\ncommand=sh -c 'echo $HOME %(ENV_APP_ROOT)s %(ENV_QUEUE)s'\nenvironment=QUEUE=x\n");
        let a = job(&table(&out), "a").clone();
        assert_eq!(
            a["command"][2].as_str(),
            Some("echo $HOME ${APP_ROOT} ${QUEUE}"),
            "{a}"
        );
        let unset: Vec<_> = out
            .notes
            .iter()
            .filter(|n| n.message.contains("QUEUE is not set"))
            .collect();
        assert_eq!(unset.len(), 1, "{:?}", out.notes);
        assert_eq!(unset[0].line, 2);
        let refused = crate::config::parse_in_env(Path::new("/x/j.toml"), &out.toml, &|_| None)
            .expect_err("unset at load");
        assert!(
            refused.to_string().contains("APP_ROOT is not set"),
            "{refused}"
        );
        // /dev/stderr is supervisord's stderr, /dev/stdout its stdout.
        let t = table(&run("[program:a]\ncommand=a\nstdout_logfile=/dev/stdout\nstdout_logfile_maxbytes=0\nstderr_logfile=/dev/stderr\n"));
        let a = job(&t, "a");
        assert_eq!(a["stdout"].as_str(), Some("inherit"));
        assert_eq!(a["stderr"].as_str(), Some("/dev/stderr"));
        // Supervisor's defaults that differ are written out.
        let out = run(
            "[program:a]\ncommand=a\nautorestart=false\n[program:b]\ncommand=b\nstopasgroup=true\n",
        );
        let t = table(&out);
        assert_eq!(job(&t, "a")["log_backups"].as_integer(), Some(10));
        assert_eq!(job(&t, "a")["kill_group"].as_bool(), Some(false));
        assert_eq!(job(&t, "b")["kill_group"].as_bool(), Some(true));
        assert!(
            out.notes
                .iter()
                .any(|n| n.line == 3 && n.message.contains("startretries")),
            "{:?}",
            out.notes
        );
        assert!(
            out.notes
                .iter()
                .any(|n| n.line == 0 && n.message.contains("working folder")),
            "{:?}",
            out.notes
        );
        let t = table(&run(
            "[supervisord]\ndirectory=/srv/app\n[program:a]\ncommand=a\n",
        ));
        assert_eq!(job(&t, "a")["cwd"].as_str(), Some("/srv/app"));
        // An event listener that kills supervisord when a program exits → on_exit.
        let out = run("[program:a]\ncommand=a\n[eventlistener:quit]\ncommand=bash -c \"printf 'READY\\n'; while read l; do kill -SIGQUIT $PPID; done\"\nevents=PROCESS_STATE_EXITED,PROCESS_STATE_FATAL\n");
        assert_eq!(
            table(&out)["defaults"]["on_exit"].as_str(),
            Some("shutdown")
        );
        assert!(
            out.notes
                .iter()
                .any(|n| n.line == 3 && n.message.contains("on_exit")),
            "{:?}",
            out.notes
        );
        let out = run("[program:a]\ncommand=a\n[eventlistener:mem]\ncommand=memmon -p a=200MB\nevents=TICK_60\n");
        assert!(table(&out).get("defaults").is_none(), "{}", out.toml);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = import("[program:a\ncommand=a\n", &exp()).expect_err("bad header");
        assert_eq!(err.line, 1);
        let err = import("[program:a]\njust words\n", &exp()).expect_err("no =");
        assert_eq!(err.line, 2);
    }

    #[test]
    fn the_sample_files_import_to_valid_job_files() {
        for (file, jobs) in [("supervisord.conf", 4), ("conf.d-queue.conf", 3)] {
            let out = run(&sample(file));
            assert_eq!(out.jobs, jobs, "{file}");
            let env = |k: &str| (k == "APP_ROOT").then(|| "/var/www/shop".to_owned());
            let config = crate::config::parse_in_env(Path::new("/etc/jobs.toml"), &out.toml, &env)
                .unwrap_or_else(|e| panic!("{file}: {e}\n{}", out.toml));
            assert_eq!(config.jobs.len(), jobs);
            if file == "conf.d-queue.conf" {
                assert_eq!(config.jobs[0].command[1], "/var/www/shop/artisan");
            }
        }
        let queue = run(&sample("conf.d-queue.conf"));
        let t = table(&queue);
        let w = job(&t, "queue-worker_01");
        assert_eq!(
            w["command"][1].as_str(),
            Some("${APP_ROOT}/artisan"),
            "%(ENV_X)s is left for supervisord to expand when it loads the file"
        );
        assert_eq!(
            w["command"].as_array().map(Vec::len),
            Some(7),
            "continuation lines join the command"
        );
        assert_eq!(w["stop_signal"].as_str(), Some("TERM"));
        assert_eq!(w["env"]["QUEUE"].as_str(), Some("default,emails"));
    }
}
