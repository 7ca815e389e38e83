//! `[job.X.ready]`, `[job.X.health]` and `depends_on`: their raw forms, their validation,
//! and the dependency graph (unknown names, cycles, the start order in levels).

use super::{CommandLine, Dur, Source};
use crate::config::{ConfigError, JobSpec, Output};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// What a check tries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A TCP connection to `host:port` is accepted.
    Tcp(String),
    /// A GET of this `http://` URL is answered 2xx or 3xx.
    Http(String),
    /// This argv exits 0 within the timeout (run with the job's cwd and env).
    Exec(Vec<String>),
    /// A captured output line matches this regex (ready only).
    Log(String),
    /// The job sends `READY=1` on its own `NOTIFY_SOCKET` (ready only).
    Notify,
}

impl Probe {
    /// The job-file key.
    pub fn kind(&self) -> &'static str {
        match self {
            Probe::Tcp(_) => "tcp",
            Probe::Http(_) => "http",
            Probe::Exec(_) => "exec",
            Probe::Log(_) => "log",
            Probe::Notify => "notify",
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Probe::Tcp(a) => write!(f, "tcp {a}"),
            Probe::Http(u) => write!(f, "http {u}"),
            Probe::Exec(argv) => write!(
                f,
                "exec {}",
                shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "))
            ),
            Probe::Log(r) => write!(f, "log /{r}/"),
            Probe::Notify => f.write_str("notify"),
        }
    }
}

/// `[job.X.ready]`: when a started job counts as `running`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadySpec {
    /// The check.
    pub probe: Probe,
    /// Between attempts (tcp, http, exec).
    pub interval: Duration,
    /// Not ready by then: a failed start, cause `not_ready`.
    pub timeout: Duration,
    /// With `notify`: the longest allowed gap between two `WATCHDOG=1`.
    pub watchdog: Option<Duration>,
}

/// What a job's health check does once it gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnhealthy {
    /// Restart the job (cause `unhealthy`).
    Restart,
    /// Stop the job (cause `unhealthy`).
    Stop,
    /// Only report it.
    None,
}

impl OnUnhealthy {
    /// The job-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OnUnhealthy::Restart => "restart",
            OnUnhealthy::Stop => "stop",
            OnUnhealthy::None => "none",
        }
    }
}

/// `[job.X.health]`: checked while the job is `running`.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSpec {
    /// The check (tcp, http or exec).
    pub probe: Probe,
    /// Between checks.
    pub interval: Duration,
    /// For one check.
    pub timeout: Duration,
    /// Failures in a row before `unhealthy`.
    pub retries: u32,
    /// Failures this soon after `running` do not count.
    pub start_period: Duration,
    /// What happens when it turns unhealthy.
    pub on_unhealthy: OnUnhealthy,
}

/// What a dependency must have done for its dependent to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Reached `running` (ready).
    Running,
    /// Running and its last health check passed.
    Healthy,
    /// Ended on its own, any status.
    Exited,
    /// Ended with success.
    Succeeded,
}

impl Condition {
    /// The job-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Running => "running",
            Condition::Healthy => "healthy",
            Condition::Exited => "exited",
            Condition::Succeeded => "succeeded",
        }
    }

    fn parse(s: &str) -> Result<Condition, String> {
        Ok(match s {
            "running" => Condition::Running,
            "healthy" => Condition::Healthy,
            "exited" => Condition::Exited,
            "succeeded" => Condition::Succeeded,
            other => {
                return Err(format!(
                    "unknown condition {other:?}: expected \"running\", \"healthy\", \"exited\" or \"succeeded\""
                ))
            }
        })
    }
}

/// One `depends_on` edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The job depended on.
    pub name: String,
    /// What it must have done.
    pub condition: Condition,
    /// Restart the (running) dependent when this dependency restarts.
    pub restart: bool,
}

// ---- raw forms ------------------------------------------------------------------------

/// A `ready` or `health` table as written; which keys are allowed is checked after.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheck {
    tcp: Option<Spanned<String>>,
    http: Option<Spanned<String>>,
    exec: Option<Spanned<CommandLine>>,
    log: Option<Spanned<String>>,
    notify: Option<Spanned<bool>>,
    interval: Option<Spanned<Dur>>,
    timeout: Option<Spanned<Dur>>,
    retries: Option<u32>,
    start_period: Option<Spanned<Dur>>,
    on_unhealthy: Option<Spanned<String>>,
    watchdog: Option<Spanned<Dur>>,
}

/// `depends_on` as written: a list of names, or a table of name = condition or
/// name = { condition, restart }.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RawDeps(Vec<(Spanned<String>, Condition, bool)>);

impl<'de> Deserialize<'de> for RawDeps {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawDeps;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a list of job names, or a table of name = \"condition\" or name = { condition, restart }",
                )
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawDeps, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = seq.next_element::<Spanned<String>>()? {
                    out.push((name, Condition::Running, false));
                }
                Ok(RawDeps(out))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawDeps, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = map.next_key::<Spanned<String>>()? {
                    let edge: RawEdge = map.next_value()?;
                    out.push((name, edge.condition, edge.restart));
                }
                Ok(RawDeps(out))
            }
        }
        d.deserialize_any(V)
    }
}

struct RawEdge {
    condition: Condition,
    restart: bool,
}

impl<'de> Deserialize<'de> for RawEdge {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawEdge;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a condition (\"running\", \"healthy\", \"exited\", \"succeeded\") or { condition, restart }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawEdge, E> {
                Ok(RawEdge {
                    condition: Condition::parse(v).map_err(E::custom)?,
                    restart: false,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawEdge, A::Error> {
                let mut edge = RawEdge {
                    condition: Condition::Running,
                    restart: false,
                };
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "condition" => {
                            let c: String = map.next_value()?;
                            edge.condition =
                                Condition::parse(&c).map_err(serde::de::Error::custom)?;
                        }
                        "restart" => edge.restart = map.next_value()?,
                        other => {
                            return Err(serde::de::Error::custom(format!(
                                "unknown key {other:?} in a dependency: expected `condition` or `restart`"
                            )))
                        }
                    }
                }
                Ok(edge)
            }
        }
        d.deserialize_any(V)
    }
}

// ---- validation -----------------------------------------------------------------------

fn check_address(addr: &str) -> Result<(), String> {
    let bad = || format!("bad address {addr:?}: expected host:port, e.g. \"127.0.0.1:5432\"");
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(bad()),
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|e| {
        format!("bad URL {url:?}: {e} (expected e.g. \"http://127.0.0.1:8000/health\")")
    })?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "bad URL {url:?}: only http:// is supported (e.g. \"http://127.0.0.1:8000/health\")"
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("bad URL {url:?}: no host"));
    }
    Ok(())
}

/// Which check kinds and keys each table allows.
#[derive(Clone, Copy, PartialEq)]
enum Table {
    Ready,
    Health,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Ready => "ready",
            Table::Health => "health",
        }
    }
}

/// The one probe of a check table, or an error naming the table.
fn probe(
    src: &Source,
    job: &str,
    t: Table,
    span: Range<usize>,
    raw: &RawCheck,
) -> Result<Probe, ConfigError> {
    let mut found: Vec<(Range<usize>, Probe)> = Vec::new();
    if let Some(a) = &raw.tcp {
        check_address(a.get_ref())
            .map_err(|m| src.error(Some(a.span()), format!("job {job:?}: {m}")))?;
        found.push((a.span(), Probe::Tcp(a.get_ref().clone())));
    }
    if let Some(u) = &raw.http {
        check_url(u.get_ref())
            .map_err(|m| src.error(Some(u.span()), format!("job {job:?}: {m}")))?;
        found.push((u.span(), Probe::Http(u.get_ref().clone())));
    }
    if let Some(e) = &raw.exec {
        let argv = e.get_ref().0.clone();
        if argv.first().is_none_or(|a| a.is_empty()) {
            return Err(src.error(Some(e.span()), format!("job {job:?}: `exec` is empty")));
        }
        found.push((e.span(), Probe::Exec(argv)));
    }
    if let Some(l) = &raw.log {
        if t == Table::Health {
            return Err(src.error(Some(l.span()), format!("job {job:?}: `log` is a ready check only (health checks are tcp, http or exec)")));
        }
        regex::Regex::new(l.get_ref()).map_err(|e| {
            let first = e.to_string().lines().last().unwrap_or("").trim().to_owned();
            src.error(
                Some(l.span()),
                format!("job {job:?}: bad regex {:?}: {first}", l.get_ref()),
            )
        })?;
        found.push((l.span(), Probe::Log(l.get_ref().clone())));
    }
    if let Some(n) = &raw.notify {
        if t == Table::Health {
            return Err(src.error(Some(n.span()), format!("job {job:?}: `notify` is a ready check only (use `watchdog` in [job.{job}.ready])")));
        }
        if !*n.get_ref() {
            return Err(src.error(
                Some(n.span()),
                format!("job {job:?}: `notify = false` means nothing; leave it out"),
            ));
        }
        found.push((n.span(), Probe::Notify));
    }
    let kinds = match t {
        Table::Ready => "tcp, http, exec, log or notify",
        Table::Health => "tcp, http or exec",
    };
    match found.len() {
        0 => Err(src.error(Some(span), format!("job {job:?}: [job.{job}.{}] needs one check: {kinds}", t.name()))),
        1 => Ok(found.remove(0).1),
        _ => Err(src.error(
            Some(found[1].0.clone()),
            format!(
                "job {job:?}: [job.{job}.{}] has two checks ({} and {}): give exactly one of {kinds}",
                t.name(),
                found[0].1.kind(),
                found[1].1.kind()
            ),
        )),
    }
}

fn nonzero(
    src: &Source,
    job: &str,
    key: &str,
    d: &Option<Spanned<Dur>>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match d {
        Some(s) if s.get_ref().0.is_zero() => Err(src.error(
            Some(s.span()),
            format!("job {job:?}: `{key}` must be more than 0"),
        )),
        Some(s) => Ok(s.get_ref().0),
        None => Ok(default),
    }
}

pub(super) fn ready(
    src: &Source,
    job: &str,
    raw: Spanned<RawCheck>,
) -> Result<ReadySpec, ConfigError> {
    let span = raw.span();
    let raw = raw.into_inner();
    let p = probe(src, job, Table::Ready, span.clone(), &raw)?;
    let misplaced = [
        ("retries", raw.retries.is_some()),
        ("start_period", raw.start_period.is_some()),
        ("on_unhealthy", raw.on_unhealthy.is_some()),
    ];
    if let Some((key, _)) = misplaced.iter().find(|(_, set)| *set) {
        return Err(src.error(
            Some(span),
            format!("job {job:?}: `{key}` belongs in [job.{job}.health], not [job.{job}.ready]"),
        ));
    }
    if let Some(w) = &raw.watchdog {
        if p != Probe::Notify {
            return Err(src.error(
                Some(w.span()),
                format!("job {job:?}: `watchdog` needs `notify = true`"),
            ));
        }
    }
    Ok(ReadySpec {
        probe: p,
        interval: nonzero(
            src,
            job,
            "interval",
            &raw.interval,
            Duration::from_millis(250),
        )?,
        timeout: nonzero(src, job, "timeout", &raw.timeout, Duration::from_secs(60))?,
        watchdog: match &raw.watchdog {
            Some(_) => Some(nonzero(
                src,
                job,
                "watchdog",
                &raw.watchdog,
                Duration::ZERO,
            )?),
            None => None,
        },
    })
}

/// A `log` ready check on a job none of whose output is captured can never pass.
pub(super) fn uncaptured_log_check(spec: &JobSpec) -> Option<String> {
    let ready = spec.ready.as_ref()?;
    if !matches!(ready.probe, Probe::Log(_)) {
        return None;
    }
    let captured = |o: &Output| matches!(o, Output::Log(_) | Output::Inherit);
    let stderr = match spec.stderr {
        Output::Stdout => captured(&spec.stdout),
        ref o => captured(o),
    };
    if captured(&spec.stdout) || stderr {
        return None;
    }
    let say = |o: &Output| match o {
        Output::Null => "\"null\"".to_owned(),
        Output::Stdout => "\"stdout\"".to_owned(),
        other => format!("written by the job itself ({other})"),
    };
    Some(format!(
        "a `log` ready check reads the job's captured output, but stdout is {} and \
         stderr is {}; set one of them to \"log\" or \"inherit\"",
        say(&spec.stdout),
        say(&spec.stderr)
    ))
}

pub(super) fn health(
    src: &Source,
    job: &str,
    raw: Spanned<RawCheck>,
) -> Result<HealthSpec, ConfigError> {
    let span = raw.span();
    let raw = raw.into_inner();
    let p = probe(src, job, Table::Health, span.clone(), &raw)?;
    if let Some(w) = &raw.watchdog {
        return Err(src.error(
            Some(w.span()),
            format!("job {job:?}: `watchdog` belongs in [job.{job}.ready] with `notify = true`"),
        ));
    }
    let on_unhealthy = match &raw.on_unhealthy {
        None => OnUnhealthy::Restart,
        Some(s) => match s.get_ref().as_str() {
            "restart" => OnUnhealthy::Restart,
            "stop" => OnUnhealthy::Stop,
            "none" => OnUnhealthy::None,
            other => {
                return Err(src.error(Some(s.span()), format!("job {job:?}: on_unhealthy = {other:?}: expected \"restart\", \"stop\" or \"none\"")))
            }
        },
    };
    Ok(HealthSpec {
        probe: p,
        interval: nonzero(src, job, "interval", &raw.interval, Duration::from_secs(10))?,
        timeout: nonzero(src, job, "timeout", &raw.timeout, Duration::from_secs(5))?,
        retries: raw.retries.unwrap_or(3).max(1),
        start_period: raw
            .start_period
            .as_ref()
            .map_or(Duration::ZERO, |d| d.get_ref().0),
        on_unhealthy,
    })
}

/// The edges of one job, with the span of each name for errors about the graph.
pub(super) fn edges(
    src: &Source,
    job: &str,
    raw: RawDeps,
) -> Result<(Vec<Dependency>, Vec<Range<usize>>), ConfigError> {
    let mut deps: Vec<Dependency> = Vec::new();
    let mut spans = Vec::new();
    for (name, condition, restart) in raw.0 {
        if name.get_ref() == job {
            return Err(src.error(Some(name.span()), format!("job {job:?} depends on itself")));
        }
        if deps.iter().any(|d| d.name == *name.get_ref()) {
            return Err(src.error(
                Some(name.span()),
                format!(
                    "job {job:?}: {:?} is listed twice in `depends_on`",
                    name.get_ref()
                ),
            ));
        }
        spans.push(name.span());
        deps.push(Dependency {
            name: name.into_inner(),
            condition,
            restart,
        });
    }
    Ok((deps, spans))
}

/// Whether a dependency named `name` points at `spec`: the job of that name, or one
/// replica of the replicated job of that name (`web` stands for `web-0`, `web-1`, ...,
/// whatever the count is now).
pub fn is_target(name: &str, spec: &JobSpec) -> bool {
    spec.name == name || spec.replica_of.as_deref() == Some(name)
}

/// Every name a dependency can use, with the jobs it stands for (indexes into `jobs`).
fn target_index(jobs: &[JobSpec]) -> BTreeMap<&str, Vec<usize>> {
    let mut index: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, j) in jobs.iter().enumerate() {
        index.entry(j.name.as_str()).or_default().push(i);
        if let Some(set) = j.replica_of.as_deref() {
            index.entry(set).or_default().push(i);
        }
    }
    index
}

/// What is wrong with one dependency edge, given the jobs it may point at.
pub fn edge_problem(job: &str, dep: &Dependency, target: Option<&JobSpec>) -> Option<String> {
    let Some(target) = target else {
        return Some(format!(
            "job {job:?} depends on {:?}, which is not a job",
            dep.name
        ));
    };
    if dep.condition == Condition::Healthy && target.health.is_none() {
        return Some(format!(
            "job {job:?} waits for {:?} to be healthy, but {:?} has no [job.{}.health] check",
            dep.name, dep.name, dep.name
        ));
    }
    None
}

/// Check the whole graph: every edge's target exists (and has a health check when the edge
/// asks for `healthy`), and there is no cycle. `spans[i][k]` is the span of job i's edge k.
pub(super) fn graph(
    src: &Source,
    jobs: &[JobSpec],
    spans: &[Vec<Range<usize>>],
) -> Result<(), ConfigError> {
    let index = target_index(jobs);
    for (i, job) in jobs.iter().enumerate() {
        for (k, dep) in job.depends_on.iter().enumerate() {
            // A replica set: each replica is checked (they share their keys).
            let target = index
                .get(dep.name.as_str())
                .and_then(|t| t.first())
                .map(|&t| &jobs[t]);
            if let Some(m) = edge_problem(&job.name, dep, target) {
                return Err(src.error(spans[i].get(k).cloned(), m));
            }
        }
    }
    if let Some((i, k, path)) = find_cycle(jobs, &index) {
        return Err(src.error(
            spans[i].get(k).cloned(),
            format!("dependency cycle: {}", path.join(" -> ")),
        ));
    }
    Ok(())
}

/// A cycle, as (job, edge that closes it, names from the first job round to itself).
fn find_cycle(
    jobs: &[JobSpec],
    index: &BTreeMap<&str, Vec<usize>>,
) -> Option<(usize, usize, Vec<String>)> {
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut mark = vec![0u8; jobs.len()];
    let mut path: Vec<usize> = Vec::new();
    fn visit(
        v: usize,
        jobs: &[JobSpec],
        index: &BTreeMap<&str, Vec<usize>>,
        mark: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<(usize, usize, Vec<String>)> {
        mark[v] = 1;
        path.push(v);
        for (k, dep) in jobs[v].depends_on.iter().enumerate() {
            for &w in index.get(dep.name.as_str()).into_iter().flatten() {
                if let Some(c) = step(v, k, w, jobs, index, mark, path) {
                    return Some(c);
                }
            }
        }
        path.pop();
        mark[v] = 2;
        None
    }
    /// The edge `v -> w` (edge `k` of `v`).
    fn step(
        v: usize,
        k: usize,
        w: usize,
        jobs: &[JobSpec],
        index: &BTreeMap<&str, Vec<usize>>,
        mark: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<(usize, usize, Vec<String>)> {
        if mark[w] == 1 {
            let from = path.iter().position(|&p| p == w).unwrap_or(0);
            let mut names: Vec<String> =
                path[from..].iter().map(|&p| jobs[p].name.clone()).collect();
            names.push(jobs[w].name.clone());
            return Some((v, k, names));
        }
        if mark[w] == 0 {
            return visit(w, jobs, index, mark, path);
        }
        None
    }
    for v in 0..jobs.len() {
        if mark[v] == 0 {
            if let Some(c) = visit(v, jobs, index, &mut mark, &mut path) {
                return Some(c);
            }
        }
    }
    None
}

/// The start order: level 0 is the jobs with no dependencies, level n the jobs whose
/// dependencies are all in levels below n. Stop order is the reverse. File order within
/// a level. Edges to unknown jobs are ignored; jobs in a cycle end up in no level.
pub fn levels(jobs: &[JobSpec]) -> Vec<Vec<String>> {
    let mut level: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out: Vec<Vec<String>> = Vec::new();
    let index = target_index(jobs);
    loop {
        let mut progressed = false;
        for job in jobs {
            if level.contains_key(job.name.as_str()) {
                continue;
            }
            let mut lv = Some(0);
            // A replica set's name stands for each of its replicas.
            let targets = job
                .depends_on
                .iter()
                .flat_map(|d| index.get(d.name.as_str()).into_iter().flatten());
            for &t in targets {
                match (lv, level.get(jobs[t].name.as_str())) {
                    (Some(l), Some(&dl)) => lv = Some(l.max(dl + 1)),
                    _ => lv = None,
                }
            }
            if let Some(l) = lv {
                level.insert(&job.name, l);
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    for job in jobs {
        if let Some(&l) = level.get(job.name.as_str()) {
            if out.len() <= l {
                out.resize(l + 1, Vec::new());
            }
            out[l].push(job.name.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, Config};
    use std::path::Path;

    fn ok(text: &str) -> Config {
        parse(Path::new("/srv/j.toml"), text).expect("valid")
    }

    fn err(text: &str) -> (usize, usize, String) {
        match parse(Path::new("/srv/j.toml"), text).expect_err("should be rejected") {
            ConfigError::Invalid {
                line,
                column,
                message,
                ..
            } => (line, column, message),
            other => panic!("unexpected {other:?}"),
        }
    }

    const STACK: &str = r#"
[job.db]
command = "db"
[job.db.ready]
tcp = "127.0.0.1:5432"
interval = "100ms"
timeout = "5s"
[job.db.health]
exec = ["pg_isready", "-q"]
interval = "2s"
retries = 5
start_period = "1s"
on_unhealthy = "stop"

[job.migrate]
command = "migrate"
depends_on = ["db"]

[job.api]
command = "api"
depends_on = { db = { condition = "healthy", restart = true }, migrate = "succeeded" }
[job.api.ready]
notify = true
watchdog = "30s"

[job.tail]
command = "tail"
depends_on = ["api"]
[job.tail.ready]
log = "listening on .*"
"#;

    #[test]
    fn full_stack_resolves() {
        let c = ok(STACK);
        let db = &c.jobs[0];
        let r = db.ready.as_ref().expect("ready");
        assert_eq!(r.probe, Probe::Tcp("127.0.0.1:5432".into()));
        assert_eq!(r.interval, Duration::from_millis(100));
        assert_eq!(r.timeout, Duration::from_secs(5));
        let h = db.health.as_ref().expect("health");
        assert_eq!(h.probe, Probe::Exec(vec!["pg_isready".into(), "-q".into()]));
        assert_eq!((h.retries, h.on_unhealthy), (5, OnUnhealthy::Stop));
        assert_eq!(h.start_period, Duration::from_secs(1));
        assert_eq!(h.timeout, Duration::from_secs(5));
        assert_eq!(
            c.jobs[1].depends_on,
            vec![Dependency {
                name: "db".into(),
                condition: Condition::Running,
                restart: false
            }]
        );
        let api = &c.jobs[2];
        assert_eq!(api.depends_on[0].condition, Condition::Healthy);
        assert!(api.depends_on[0].restart);
        assert_eq!(api.depends_on[1].condition, Condition::Succeeded);
        assert_eq!(
            api.ready.as_ref().map(|r| r.watchdog),
            Some(Some(Duration::from_secs(30)))
        );
        assert_eq!(
            levels(&c.jobs),
            vec![
                vec!["db".to_string()],
                vec!["migrate".into()],
                vec!["api".into()],
                vec!["tail".into()]
            ]
        );
    }

    #[test]
    fn levels_put_independent_jobs_together() {
        let c = ok(r#"
[job.a]
command = "a"
[job.b]
command = "b"
depends_on = ["a", "c"]
[job.c]
command = "c"
"#);
        assert_eq!(
            levels(&c.jobs),
            vec![vec!["a".to_string(), "c".into()], vec!["b".into()]]
        );
    }

    #[test]
    fn graph_errors_name_the_edge() {
        let (l, c, m) = err("[job.a]\ncommand = \"a\"\ndepends_on = [\"nope\"]\n");
        assert_eq!((l, c), (3, 15));
        assert_eq!(m, "job \"a\" depends on \"nope\", which is not a job");

        let (l, _, m) = err("[job.a]\ncommand = \"a\"\ndepends_on = { b = \"healthy\" }\n[job.b]\ncommand = \"b\"\n");
        assert_eq!(l, 3);
        assert!(m.contains("has no [job.b.health]"), "{m}");

        let (l, _, m) = err(
            "[job.api]\ncommand = \"a\"\ndepends_on = [\"db\"]\n[job.db]\ncommand = \"b\"\ndepends_on = [\"api\"]\n",
        );
        assert_eq!(l, 6);
        assert_eq!(m, "dependency cycle: api -> db -> api");

        let (_, _, m) = err("[job.a]\ncommand = \"a\"\ndepends_on = [\"a\"]\n");
        assert_eq!(m, "job \"a\" depends on itself");

        let (_, _, m) = err(
            "[job.a]\ncommand = \"a\"\ndepends_on = { b = \"up\" }\n[job.b]\ncommand = \"b\"\n",
        );
        assert!(m.contains("unknown condition \"up\""), "{m}");
    }

    #[test]
    fn check_tables_need_exactly_one_kind() {
        let (l, _, m) = err("[job.a]\ncommand = \"a\"\n[job.a.ready]\ninterval = \"1s\"\n");
        assert_eq!(l, 3);
        assert_eq!(
            m,
            "job \"a\": [job.a.ready] needs one check: tcp, http, exec, log or notify"
        );

        let (l, c, m) =
            err("[job.a]\ncommand = \"a\"\n[job.a.ready]\ntcp = \"h:1\"\nhttp = \"http://h:1/\"\n");
        assert_eq!((l, c), (5, 8));
        assert!(m.contains("two checks (tcp and http)"), "{m}");

        let (_, _, m) = err("[job.a]\ncommand = \"a\"\n[job.a.health]\nlog = \"x\"\n");
        assert!(m.contains("ready check only"), "{m}");
    }

    #[test]
    fn bad_values_are_named() {
        for (table, line, want) in [
            ("tcp = \"localhost\"", 4, "bad address \"localhost\""),
            ("tcp = \"h:99999\"", 4, "bad address"),
            ("http = \"ftp://h/\"", 4, "only http://"),
            ("http = \"http://\"", 4, "bad URL"),
            ("log = \"(unclosed\"", 4, "bad regex \"(unclosed\""),
            (
                "tcp = \"h:1\"\nwatchdog = \"1s\"",
                5,
                "`watchdog` needs `notify = true`",
            ),
            (
                "tcp = \"h:1\"\ntimeout = \"0s\"",
                5,
                "`timeout` must be more than 0",
            ),
        ] {
            let (l, _, m) = err(&format!(
                "[job.a]\ncommand = \"a\"\n[job.a.ready]\n{table}\n"
            ));
            assert_eq!(l, line, "{table}: {m}");
            assert!(m.contains(want), "{table}: {m}");
        }
        let (_, _, m) = err(
            "[job.a]\ncommand = \"a\"\n[job.a.health]\ntcp = \"h:1\"\non_unhealthy = \"panic\"\n",
        );
        assert!(m.contains("on_unhealthy = \"panic\""), "{m}");
        let (_, _, m) = err("[defaults]\ndepends_on = [\"x\"]\n[job.a]\ncommand = \"a\"\n");
        assert!(
            m.contains("`depends_on` cannot be set in [defaults]"),
            "{m}"
        );
    }

    #[test]
    fn a_log_check_needs_captured_output() {
        let job = |outputs: &str| {
            format!("[job.a]\ncommand = \"a\"\n{outputs}\n[job.a.ready]\nlog = \"up\"\n")
        };
        let (l, _, m) = err(&job("stdout = \"null\"\nstderr = \"./err.txt\""));
        assert_eq!(l, 5, "{m}");
        assert!(
            m.contains("stdout is \"null\" and stderr is written by the job itself"),
            "{m}"
        );
        let (_, _, m) = err(&job("stdout = \"null\"\nstderr = \"stdout\""));
        assert!(
            m.contains("set one of them to \"log\" or \"inherit\""),
            "{m}"
        );
        for fine in [
            "",
            "stdout = \"inherit\"",
            "stdout = \"null\"",
            "stderr = \"stdout\"",
        ] {
            ok(&job(fine));
        }
    }

    #[test]
    fn a_replica_set_name_stands_for_each_replica_in_the_graph() {
        let c = ok(
            "[job.web]\ncommand = \"w\"\nreplicas = 2\ndepends_on = [\"db\"]\n\
             [job.db]\ncommand = \"d\"\n[job.db.health]\ntcp = \"h:1\"\n\
             [job.api]\ncommand = \"a\"\ndepends_on = [\"web\"]\n",
        );
        assert_eq!(
            levels(&c.jobs),
            [vec!["db"], vec!["web-0", "web-1"], vec!["api"]]
        );
        // `healthy` on a set without health is named like on a job.
        let (_, _, m) = err(
            "[job.web]\ncommand = \"w\"\nreplicas = 2\n[job.api]\ncommand = \"a\"\ndepends_on = { web = \"healthy\" }\n",
        );
        assert!(m.contains("waits for \"web\" to be healthy"), "{m}");
        // A cycle through a set.
        let (_, _, m) = err(
            "[job.web]\ncommand = \"w\"\nreplicas = 2\ndepends_on = [\"api\"]\n[job.api]\ncommand = \"a\"\ndepends_on = [\"web\"]\n",
        );
        assert!(m.starts_with("dependency cycle: "), "{m}");
        assert!(
            m.contains("api -> web-0") || m.contains("web-0 -> api"),
            "{m}"
        );
        // A replica's own name still works.
        ok("[job.web]\ncommand = \"w\"\nreplicas = 2\n[job.api]\ncommand = \"a\"\ndepends_on = [\"web-1\"]\n");
    }
}
