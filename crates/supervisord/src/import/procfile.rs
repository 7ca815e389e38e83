//! `supervisord import Procfile`: foreman's format (also honcho's and overmind's) — one
//! `name: command` per line, `#` comments — to a job file that runs the same way: each
//! command through `sh -c` in the Procfile's folder, `PORT` as foreman gives it (5000,
//! then 100 more per line), the `.env` beside it read with `env_file`, and every line of
//! output on supervisord's own stdout behind `name | `.

use super::{job_name, key, quote, ImportError, Imported, Note};
use std::fmt::Write as _;

/// One `name: command` line.
struct Process {
    line: usize,
    name: String,
    command: String,
}

fn processes(text: &str) -> Result<Vec<Process>, ImportError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |message: String| ImportError {
            line: i + 1,
            message,
        };
        let Some((name, command)) = line.split_once(':') else {
            return Err(fail("expected `name: command`".into()));
        };
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(fail(format!(
                "{name:?} is not a process name (letters, digits, `_`, `-`)"
            )));
        }
        let command = command.trim();
        if command.is_empty() {
            return Err(fail(format!("process {name:?} has no command")));
        }
        out.push(Process {
            line: i + 1,
            name: name.to_owned(),
            command: command.to_owned(),
        });
    }
    Ok(out)
}

/// Whether `text` reads as a Procfile: at least one `name: command` line, every other
/// line blank or a comment, and no INI section.
pub fn looks_like(text: &str) -> bool {
    !text.lines().any(|l| l.trim_start().starts_with('['))
        && processes(text).is_ok_and(|p| !p.is_empty())
}

/// Convert a Procfile's text. `dotenv` says whether a `.env` is beside it.
pub fn import(text: &str, dotenv: bool) -> Result<Imported, ImportError> {
    let procs = processes(text)?;
    if procs.is_empty() {
        return Err(ImportError {
            line: 1,
            message: "no `name: command` lines: not a Procfile".into(),
        });
    }
    let mut notes = Vec::new();
    let mut toml = String::from(
        "# Imported from a Procfile by `supervisord import`. Put this file beside the \
         Procfile:\n# the jobs run in its folder and read the .env there, like foreman.\n\n",
    );
    toml.push_str("[defaults]\n");
    if dotenv {
        toml.push_str("env_file = \".env\"\n");
    } else {
        toml.push_str("env_file = \"?.env\"                 # read when it exists\n");
    }
    toml.push_str(
        "stdout = \"inherit\"                 # on supervisord's stdout, as `name | line`\n",
    );
    toml.push_str("stderr = \"inherit\"\n");
    let mut seen = std::collections::HashSet::new();
    for (i, p) in procs.iter().enumerate() {
        let name = job_name(&p.name);
        if !seen.insert(name.clone()) {
            notes.push(Note {
                line: p.line,
                message: format!("process {:?} again: this later line is used", p.name),
            });
        }
        let port = 5000 + 100 * i;
        let _ = write!(
            toml,
            "\n[job.{}]\ncommand = [\"sh\", \"-c\", {}]\nenv = {{ PORT = \"{port}\" }}             # foreman's PORT for line {}\n",
            key(&name),
            quote(&p.command),
            i + 1
        );
    }
    // A later line with the same name replaces the earlier one, as foreman does.
    let toml = dedupe_jobs(&toml);
    let jobs = seen.len();
    Ok(Imported { toml, notes, jobs })
}

/// Keep only the last `[job.NAME]` table of each name.
fn dedupe_jobs(toml: &str) -> String {
    let mut tables: Vec<(Option<String>, String)> = Vec::new();
    for chunk in toml.split_inclusive('\n') {
        if let Some(name) = chunk
            .strip_prefix("[job.")
            .and_then(|r| r.trim_end().strip_suffix(']'))
        {
            tables.push((Some(name.to_owned()), String::new()));
        } else if tables.is_empty() {
            tables.push((None, String::new()));
        }
        if let Some((_, body)) = tables.last_mut() {
            body.push_str(chunk);
        }
    }
    let mut out = String::new();
    for (i, (name, body)) in tables.iter().enumerate() {
        let later = name
            .as_ref()
            .is_some_and(|n| tables[i + 1..].iter().any(|(m, _)| m.as_ref() == Some(n)));
        if !later {
            out.push_str(body);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_a_procfile_and_not_an_ini_file() {
        assert!(looks_like(
            "web: bundle exec rails s\n# c\n\nworker: rake jobs:work\n"
        ));
        assert!(!looks_like("[program:web]\ncommand: x\n"));
        assert!(!looks_like(""));
        assert!(!looks_like("just some words\n"));
    }

    #[test]
    fn one_job_per_line_with_foremans_port_and_the_env_file() {
        let out = import(
            "web: bundle exec puma -p $PORT\nworker: echo ${QUEUE:-default}\n",
            true,
        )
        .expect("imports");
        assert_eq!(out.jobs, 2);
        assert!(out.notes.is_empty(), "{:?}", out.notes);
        let parsed =
            crate::config::parse(std::path::Path::new("/srv/app/supervisord.toml"), &out.toml);
        // `.env` is required here and missing at /srv/app: the only error.
        let e = parsed.expect_err("no .env at /srv/app").to_string();
        assert!(e.contains("env file /srv/app/.env"), "{e}");
        let out = import(
            "web: bundle exec puma -p $PORT\nworker: echo ${QUEUE:-default}\n",
            false,
        )
        .expect("imports");
        let c = crate::config::parse(std::path::Path::new("/srv/app/supervisord.toml"), &out.toml)
            .expect("a valid job file");
        assert_eq!(c.jobs[0].command, ["sh", "-c", "bundle exec puma -p $PORT"]);
        assert_eq!(c.jobs[1].command, ["sh", "-c", "echo ${QUEUE:-default}"]);
        assert_eq!(c.jobs[1].env["PORT"], "5100");
        assert_eq!(c.jobs[0].stdout, crate::config::Output::Inherit);
    }

    #[test]
    fn a_repeated_name_keeps_the_last_line_and_bad_lines_are_errors() {
        let out = import("a: one\nb: two\na: three\n", false).expect("imports");
        assert_eq!(out.jobs, 2);
        assert_eq!(out.notes[0].line, 3);
        let c = crate::config::parse(std::path::Path::new("/x/s.toml"), &out.toml).expect("valid");
        let names: Vec<_> = c.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(c.jobs[1].command[2], "three");
        let e = import("web: x\nno colon here\n", false).expect_err("bad");
        assert_eq!(e.line, 2);
        let e = import("web:\n", false).expect_err("empty");
        assert!(e.message.contains("no command"), "{e}");
    }
}
