//! Env files, `${VAR}` interpolation and replicas (docs/jobfile.md): what a job's process
//! really gets, read from /proc; load errors with their position; reload and scale.

use crate::support::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The pid of a running job, once it runs.
fn running(d: &Daemon, name: &str) -> u32 {
    d.wait_job(name, "running", |j| j.state.as_str() == "running")
        .pid
        .expect("a running job has a pid")
}

/// A process's environment, from /proc.
fn environ(pid: u32) -> BTreeMap<String, String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    raw.split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

#[test]
fn a_job_gets_env_files_in_precedence_order() {
    let d = Daemon::prepare(
        r#"
[defaults]
start_secs = "100ms"
env_file = [".env", "?absent.env"]
env = { FROM_DEFAULTS_ENV = "defaults-env", SHADOWED_BY_JOB_FILE = "defaults-env" }

[job.app]
command = ["sleep", "30"]
env_file = ["?local.env"]
env = { FROM_JOB_ENV = "job-env", SUPERVISOR_JOB = "cannot" }
"#,
    );
    std::fs::write(
        d.dir.path().join(".env"),
        "# the project's defaults\n\
         FROM_DAEMON=dotenv\n\
         FROM_DOTENV=dotenv\n\
         FROM_DEFAULTS_ENV=dotenv\n\
         export QUOTED=\"two words # not a comment\"\n\
         SINGLE='${NOT_EXPANDED}'\n",
    )
    .expect("write .env");
    std::fs::write(
        d.dir.path().join("local.env"),
        "SHADOWED_BY_JOB_FILE=local\nFROM_JOB_ENV=local\nFROM_LOCAL=local # mine\n",
    )
    .expect("write local.env");
    let mut d = d;
    d.env = vec![
        ("FROM_DAEMON".into(), "daemon".into()),
        ("ONLY_DAEMON".into(), "daemon".into()),
    ];
    let d = d.launch(&[]);
    let env = environ(running(&d, "app"));
    let get = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(get("ONLY_DAEMON"), Some("daemon"));
    assert_eq!(
        get("FROM_DAEMON"),
        Some("dotenv"),
        "env files over the daemon's"
    );
    assert_eq!(get("FROM_DOTENV"), Some("dotenv"));
    assert_eq!(get("FROM_DEFAULTS_ENV"), Some("defaults-env"));
    assert_eq!(get("SHADOWED_BY_JOB_FILE"), Some("local"));
    assert_eq!(get("FROM_LOCAL"), Some("local"));
    assert_eq!(get("FROM_JOB_ENV"), Some("job-env"));
    assert_eq!(get("SUPERVISOR_JOB"), Some("app"), "SUPERVISOR_* last");
    assert_eq!(get("QUOTED"), Some("two words # not a comment"));
    assert_eq!(get("SINGLE"), Some("${NOT_EXPANDED}"));
}

#[test]
fn an_unset_required_variable_is_refused_with_its_position() {
    let d = Daemon::prepare(
        "[job.web]\ncommand = [\"./server\", \"--port\", \"${PORT:-8000}\"]\n\
         env = { DATABASE_URL = \"${DATABASE_URL:?set DATABASE_URL in .env}\" }\n",
    );
    let out = d.run_once();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        format!(
            "supervisord: {}:3:25: DATABASE_URL: set DATABASE_URL in .env",
            d.config.display()
        )
    );
    // Set in [supervisor] env_file, it is used.
    std::fs::write(
        &d.config,
        "[supervisor]\nenv_file = \"vars.env\"\n[job.web]\ncommand = [\"sleep\", \"30\"]\n\
         env = { DATABASE_URL = \"${DATABASE_URL:?set DATABASE_URL in .env}\" }\n",
    )
    .expect("write");
    std::fs::write(
        d.dir.path().join("vars.env"),
        "DATABASE_URL=postgres://db\n",
    )
    .expect("vars");
    let d = d.launch(&[]);
    let env = environ(running(&d, "web"));
    assert_eq!(env["DATABASE_URL"], "postgres://db");
}

#[test]
fn a_changed_env_file_changes_the_jobs_that_read_it() {
    let d = Daemon::prepare(&jobs(
        r#"
[job.reader]
command = ["sleep", "30"]
env_file = "app.env"

[job.other]
command = ["sleep", "30"]
"#,
    ));
    std::fs::write(d.dir.path().join("app.env"), "LEVEL=1\n").expect("env");
    let d = d.launch(&[]);
    let before = running(&d, "reader");
    let other = running(&d, "other");
    let r = d.ok("reload", Value::Null);
    assert_eq!(r["unchanged"], json!(["reader", "other"]), "{r}");
    std::fs::write(d.dir.path().join("app.env"), "LEVEL=2\n").expect("env");
    let r = d.ok("reload", Value::Null);
    assert_eq!(r["changed"], json!(["reader"]), "{r}");
    assert_eq!(r["unchanged"], json!(["other"]), "{r}");
    let after = running(&d, "reader");
    assert_ne!(before, after);
    assert_eq!(environ(after)["LEVEL"], "2");
    assert_eq!(d.job("other").pid, Some(other));
}
