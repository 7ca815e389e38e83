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

#[test]
fn replicas_scale_up_and_down_and_reload_goes_back_to_the_file() {
    let d = Daemon::start(&jobs(
        r#"
[job.web]
command = ["sleep", "3${REPLICA}"]
replicas = 2
stop_signal = "KILL"
"#,
    ));
    let w1 = running(&d, "web-1");
    running(&d, "web-0");
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{w1}/cmdline")).expect("cmdline"),
        "sleep\u{0}31\u{0}",
        "${{REPLICA}} in the command"
    );
    let env = environ(w1);
    assert_eq!(env["SUPERVISOR_REPLICA"], "1");
    assert_eq!(env["SUPERVISOR_GROUP"], "web");
    assert_eq!(env["SUPERVISOR_JOB"], "web-1");

    let out = d.ctl_ok(&["scale", "web", "4"]);
    assert!(out.contains("web-3"), "{out}");
    running(&d, "web-2");
    let w3 = running(&d, "web-3");
    assert_eq!(environ(w3)["SUPERVISOR_REPLICA"], "3");
    let names: Vec<String> = d.jobs().into_iter().map(|j| j.name).collect();
    assert_eq!(names, ["web-0", "web-1", "web-2", "web-3"]);

    // Down to one: the highest index stops first.
    let mut events = d.conn();
    let snapshot = events.call("subscribe", Value::Null);
    assert!(snapshot.get("error").is_none(), "{snapshot}");
    d.ctl_ok(&["scale", "web", "1"]);
    let mut stopping = Vec::new();
    while stopping.len() < 3 {
        let Some(note) = events.recv() else {
            panic!("no event; stopping so far {stopping:?}")
        };
        if note["method"] == "event" && note["params"]["to"] == "stopping" {
            stopping.push(note["params"]["name"].as_str().unwrap_or("?").to_owned());
        }
    }
    assert_eq!(stopping, ["web-3", "web-2", "web-1"]);
    wait_until("the extra replicas to be forgotten", DEADLINE, || {
        (d.jobs().len() == 1).then_some(())
    });
    assert_eq!(d.job("web-0").state.as_str(), "running");

    // reload: back to the file's two.
    let r = d.ok("reload", Value::Null);
    assert_eq!(r["added"], json!(["web-1"]), "{r}");
    assert_eq!(r["unchanged"], json!(["web-0"]), "{r}");
    running(&d, "web-1");
    d.ok("scale", json!({ "name": "web", "replicas": 3 }));
    running(&d, "web-2");
    let r = d.ok("reload", Value::Null);
    assert_eq!(r["removed"], json!(["web-2"]), "{r}");
    assert_eq!(r["unchanged"], json!(["web-0", "web-1"]), "{r}");

    // Only a job with `replicas` scales.
    let e = d.rpc("scale", json!({ "name": "web-0", "replicas": 2 }));
    assert_eq!(e["error"]["code"], -32602, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("has no `replicas`")),
        "{e}"
    );
    let e = d.rpc("scale", json!({ "name": "ghost", "replicas": 2 }));
    assert_eq!(e["error"]["code"], 1001, "{e}");
    let e = d.rpc("scale", json!({ "name": "web", "replicas": 5000 }));
    assert_eq!(e["error"]["code"], -32602, "{e}");
}

/// `on_exit = "shutdown"`: the job's end for good stops every job and ends supervisord,
/// 1 when it failed — what a container's event listener did under Supervisor. A stop by
/// request does not count.
#[test]
fn a_job_with_on_exit_shutdown_ends_the_run() {
    let file = |code: u8| {
        jobs(&format!(
            r#"
[job.main]
command = ["sh", "-c", "sleep 0.5; exit {code}"]
on_exit = "shutdown"

[job.helper]
command = ["sleep", "60"]
"#
        ))
    };
    for (code, exit) in [(3, 1), (0, 0)] {
        let mut d = Daemon::start(&file(code));
        let helper = running(&d, "helper");
        assert_eq!(d.wait_exit(), exit, "main exited {code}");
        assert!(!alive(helper), "the other jobs were stopped");
        assert!(d.stderr().contains("on_exit"), "{}", d.stderr());
    }
    // Terminated by request: the run goes on.
    let d = Daemon::start(&file(0));
    running(&d, "main");
    d.ok("terminate", json!({ "names": ["main"] }));
    assert_eq!(d.job("main").state.as_str(), "stopped");
    d.ok("ping", Value::Null);
}
