//! The job file's first pass, on the parsed but not yet typed document: `[supervisor]
//! env_file` is read, `replicas = N` turns a job into N jobs, and `${VAR}` is expanded in
//! every string value, each error placed at the file, line and column of the expression.
//! Then serde reads the expanded document, spans intact.
//!
//! Values for `${VAR}` come from supervisord's environment with `[supervisor] env_file`
//! over it; a replica also sees `${REPLICA}` (its index). Env files are read through a
//! [`Files`] cache, so a job file parsed again (`scale`) sees the same files without
//! touching the disk.

use super::{ConfigError, Source};
use crate::{envfile, interpolate};
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The env files a job file read, by absolute path: their text, or `None` when missing.
pub type Files = BTreeMap<PathBuf, Option<String>>;

/// How env files are read: from the disk (remembering what was read) or only from a cache.
pub(super) enum Reader<'a> {
    /// Read the disk and fill the cache.
    Disk(&'a mut Files),
    /// Use only the cache (a file not in it is missing).
    Cached(&'a Files),
}

impl Reader<'_> {
    fn read(&mut self, path: &Path) -> Result<Option<String>, String> {
        match self {
            Reader::Cached(files) => Ok(files.get(path).cloned().flatten()),
            Reader::Disk(files) => {
                let text = match read_regular(path) {
                    Ok(t) => Some(t),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(format!("cannot read env file: {e}")),
                };
                files.insert(path.to_path_buf(), text.clone());
                Ok(text)
            }
        }
    }
}

/// The most an env file may hold.
const MAX_ENV_FILE_BYTES: u64 = 1 << 20;

/// A regular file's text, at most [`MAX_ENV_FILE_BYTES`]: a FIFO or a device
/// (`/dev/zero`) would block or never end, so it is refused before it is opened.
fn read_regular(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    if !std::fs::metadata(path)?.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_ENV_FILE_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_ENV_FILE_BYTES {
        return Err(Error::new(ErrorKind::InvalidData, "larger than 1 MiB"));
    }
    Ok(text)
}

/// Where `${VAR}` values come from.
pub(super) struct Vars<'a> {
    /// `[supervisor] env_file`'s variables (over the environment).
    pub file: BTreeMap<String, String>,
    /// supervisord's environment.
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl Vars<'_> {
    fn get(&self, name: &str, used_file: &Cell<bool>) -> Option<String> {
        if let Some(v) = self.file.get(name) {
            used_file.set(true);
            return Some(v.clone());
        }
        (self.env)(name)
    }
}

/// One env file a job reads, as written: a path, `?` in front when it may be missing.
pub(super) fn split_optional(name: &str) -> (&str, bool) {
    match name.strip_prefix('?') {
        Some(rest) => (rest, true),
        None => (name, false),
    }
}

/// Read one env file (`name` as written, relative to `base`) into its `KEY=VALUE`s, in
/// file order, expanding `${VAR}` in the values that compose expands. A missing optional
/// file reads as nothing. Errors name the env file and line, never a value.
pub(super) fn read_env_file(
    reader: &mut Reader,
    base: &Path,
    name: &str,
    vars: &Vars,
) -> Result<(PathBuf, Vec<(String, String)>), ConfigError> {
    let (rel, optional) = split_optional(name);
    let path = base.join(rel);
    let invalid = |line: usize, column: usize, message: String| ConfigError::Invalid {
        file: path.clone(),
        line,
        column,
        message,
    };
    let text = match reader.read(&path) {
        Ok(Some(t)) => t,
        Ok(None) if optional => return Ok((path, Vec::new())),
        Ok(None) => {
            return Err(ConfigError::Read {
                path: path.clone(),
                message: format!("not found (write \"?{rel}\" if it may be missing)"),
            })
        }
        Err(message) => return Err(ConfigError::Read { path, message }),
    };
    let entries = envfile::parse(&text).map_err(|e| invalid(e.line, e.column, e.message))?;
    let mut out: Vec<(String, String)> = Vec::with_capacity(entries.len());
    for entry in entries {
        let value = if entry.expand && interpolate::needs_expanding(&entry.value) {
            let used = Cell::new(false);
            let lookup = |k: &str| {
                out.iter()
                    .rev()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
                    .or_else(|| vars.get(k, &used))
            };
            interpolate::expand(&entry.value, &lookup)
                .map_err(|e| invalid(entry.line, 1, format!("{}: {}", entry.key, e.message)))?
        } else {
            entry.value
        };
        out.push((entry.key, value));
    }
    Ok((path, out))
}

/// `[supervisor] env_file`, read before anything else is expanded: its paths see only
/// supervisord's environment.
pub(super) fn supervisor_vars<'a>(
    src: &Source,
    doc: &mut DeTable,
    base: &Path,
    reader: &mut Reader,
    env: &'a dyn Fn(&str) -> Option<String>,
) -> Result<Vars<'a>, ConfigError> {
    let mut vars = Vars {
        file: BTreeMap::new(),
        env,
    };
    let Some(value) = doc.get_mut("supervisor").and_then(|s| match s.get_mut() {
        DeValue::Table(t) => t.get_mut("env_file"),
        _ => None,
    }) else {
        return Ok(vars);
    };
    expand_value(src, value, &vars, None, &mut |_| {})?;
    let names: Vec<String> = match value.get_ref() {
        DeValue::String(s) => vec![s.to_string()],
        DeValue::Array(a) => a
            .iter()
            .filter_map(|v| v.get_ref().as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(), // serde reports the wrong type with its position
    };
    let key = value.span();
    for name in names {
        let (_, entries) = read_env_file(reader, base, &name, &vars).map_err(|e| match e {
            ConfigError::Read { path, message } => src.error(
                Some(key.clone()),
                format!("env file {}: {message}", path.display()),
            ),
            other => other,
        })?;
        vars.file.extend(entries);
    }
    Ok(vars)
}

/// Expand every string in `value`, depth first. `replica` adds `${REPLICA}`. `tainted`
/// is told the key path (below `value`) of every string that took a value from an env
/// file.
fn expand_value(
    src: &Source,
    value: &mut Spanned<DeValue>,
    vars: &Vars,
    replica: Option<u32>,
    tainted: &mut dyn FnMut(&[String]),
) -> Result<(), ConfigError> {
    let mut path = Vec::new();
    walk(src, value, vars, replica, &mut path, tainted)
}

fn walk(
    src: &Source,
    value: &mut Spanned<DeValue>,
    vars: &Vars,
    replica: Option<u32>,
    path: &mut Vec<String>,
    tainted: &mut dyn FnMut(&[String]),
) -> Result<(), ConfigError> {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) if interpolate::needs_expanding(s) => {
            let used = Cell::new(false);
            let lookup = |k: &str| match (k, replica) {
                ("REPLICA", Some(i)) => Some(i.to_string()),
                _ => vars.get(k, &used),
            };
            let expanded = interpolate::expand(s, &lookup).map_err(|e| {
                // The string's text starts after its opening quote(s); exact unless escapes
                // come before the expression.
                let quotes = src.text[span.start.min(src.text.len())..]
                    .chars()
                    .take_while(|c| *c == '"' || *c == '\'')
                    .count()
                    .min(3);
                let at = span.start + quotes + e.offset;
                src.error(Some(at..at), e.message)
            })?;
            *s = Cow::Owned(expanded);
            if used.get() {
                tainted(path);
            }
        }
        DeValue::Array(items) => {
            for item in items.iter_mut() {
                walk(src, item, vars, replica, path, tainted)?;
            }
        }
        DeValue::Table(table) => {
            for (k, v) in table.iter_mut() {
                path.push(k.get_ref().to_string());
                walk(src, v, vars, replica, path, tainted)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

/// What the first pass learnt about the jobs.
#[derive(Debug, Default)]
pub(super) struct Facts {
    /// Replica job name → (the job as written, its index).
    pub replica_of: BTreeMap<String, (String, u32)>,
    /// A job as written → its `replicas` in the file.
    pub replicas: BTreeMap<String, u32>,
    /// `env` keys whose value took something from an env file: (`None` for
    /// `[defaults]` or the job's name, key).
    pub tainted_env: BTreeSet<(Option<String>, String)>,
}

/// Expand the whole document: `[supervisor]` (but `env_file`, done already) and
/// `[defaults]` once, every job once per replica. `scale` overrides one job's
/// `replicas`.
pub(super) fn expand_document(
    src: &Source,
    doc: &mut DeTable,
    vars: &Vars,
    scale: Option<(&str, u32)>,
) -> Result<Facts, ConfigError> {
    let mut facts = Facts::default();
    for (key, value) in doc.iter_mut() {
        match key.get_ref().as_ref() {
            "supervisor" => {
                if let DeValue::Table(t) = value.get_mut() {
                    for (k, v) in t.iter_mut() {
                        if k.get_ref() != "env_file" {
                            expand_value(src, v, vars, None, &mut |_| {})?;
                        }
                    }
                }
            }
            "defaults" => expand_value(src, value, vars, None, &mut |p| {
                if let [env, key] = p {
                    if env == "env" {
                        facts.tainted_env.insert((None, key.clone()));
                    }
                }
            })?,
            "job" => {
                if let DeValue::Table(jobs) = value.get_mut() {
                    let written = std::mem::take(jobs);
                    for (name, job) in written {
                        expand_job(src, jobs, name, job, vars, scale, &mut facts)?;
                    }
                }
            }
            _ => {} // serde reports the unknown table
        }
    }
    Ok(facts)
}

/// One `[job.NAME]`: itself, or its replicas `NAME-0` … with `group = NAME` unless set.
fn expand_job<'i>(
    src: &Source,
    jobs: &mut DeTable<'i>,
    name: Spanned<Cow<'i, str>>,
    mut job: Spanned<DeValue<'i>>,
    vars: &Vars,
    scale: Option<(&str, u32)>,
    facts: &mut Facts,
) -> Result<(), ConfigError> {
    let replicas = match job.get_ref() {
        DeValue::Table(t) => t.get("replicas").map(|r| {
            let span = r.span();
            let n = r
                .get_ref()
                .as_integer()
                .and_then(|i| i64::from_str_radix(i.as_str(), i.radix()).ok());
            (span, n)
        }),
        _ => None,
    };
    let Some((span, count)) = replicas else {
        let job_name = name.get_ref().to_string();
        expand_value(src, &mut job, vars, None, &mut |p| {
            if let [env, key] = p {
                if env == "env" {
                    facts
                        .tainted_env
                        .insert((Some(job_name.clone()), key.clone()));
                }
            }
        })?;
        jobs.insert(name, job);
        return Ok(());
    };
    let base = name.get_ref().to_string();
    let count = match count {
        Some(n @ 0..=1000) => n as u32,
        _ => {
            return Err(src.error(
                Some(span),
                format!("job {base:?}: replicas must be a whole number from 0 to 1000"),
            ))
        }
    };
    facts.replicas.insert(base.clone(), count);
    let count = match scale {
        Some((n, c)) if n == base => c,
        _ => count,
    };
    if let DeValue::Table(t) = job.get_mut() {
        if !t.contains_key("group") {
            let group = DeValue::String(Cow::Owned(base.clone()));
            t.insert(
                Spanned::new(name.span(), Cow::Borrowed("group")),
                Spanned::new(name.span(), group),
            );
        }
    }
    for i in 0..count {
        let mut copy = job.clone();
        let replica = format!("{base}-{i}");
        expand_value(src, &mut copy, vars, Some(i), &mut |p| {
            if let [env, key] = p {
                if env == "env" {
                    facts
                        .tainted_env
                        .insert((Some(replica.clone()), key.clone()));
                }
            }
        })?;
        facts.replica_of.insert(replica.clone(), (base.clone(), i));
        jobs.insert(Spanned::new(name.span(), Cow::Owned(replica)), copy);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let mut files = Files::new();
        let mut reader = Reader::Disk(&mut files);
        let e = reader.read(Path::new("/dev/zero")).expect_err("a device");
        assert!(e.contains("not a regular file"), "{e}");
        assert_eq!(reader.read(Path::new("/nonexistent/.env")), Ok(None));
        let dir = tempfile::tempdir().expect("tempdir");
        let big = dir.path().join("big.env");
        std::fs::write(&big, "A=1\n".repeat(300_000)).expect("write");
        let e = reader.read(&big).expect_err("too big");
        assert!(e.contains("1 MiB"), "{e}");
    }
}
