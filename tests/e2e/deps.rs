//! Dependencies between jobs: `depends_on`, the `waiting` state, dependents settling when
//! a dependency never can meet its condition, `restart = true` edges, reverse-order stops,
//! and the load errors of the graph.

use crate::support::*;
use protocol::{Cause, JobState};
use serde_json::json;

#[test]
fn a_dependent_waits_for_its_dependencies_and_starts_the_moment_they_have() {
    let d = Daemon::start(&jobs(
        r#"
[job.api]
command = ["sleep", "300"]
depends_on = { db = "running", migrate = "succeeded" }

[job.db]
command = ["sleep", "300"]
start_secs = "2s"

[job.migrate]
command = ["sh", "-c", "sleep 1"]
start_secs = 0
"#,
    ));
    let api = d.wait_job("api", "waiting", |j| j.state == JobState::Waiting);
    let reason = api.reason.expect("a reason");
    assert!(reason.starts_with("waiting for db (running)"), "{reason}");
    assert_eq!(api.pid, None);
    let api = d.wait_job("api", "running", |j| j.state == JobState::Running);
    assert_eq!(api.reason, None);
    let db = d.job("db");
    let migrate = d.job("migrate");
    assert_eq!(db.state, JobState::Running);
    assert_eq!(migrate.state, JobState::Exited);
    let table = d.ctl_ok(&["status"]);
    assert!(table.contains("api"), "{table}");
}

#[test]
fn a_dependency_that_goes_fatal_settles_its_waiting_dependents() {
    let d = Daemon::start(&jobs(
        r#"
[job.db]
command = ["./no-such-program"]

[job.api]
command = ["sleep", "300"]
depends_on = ["db"]

[job.worker]
command = ["sleep", "300"]
depends_on = ["api"]
"#,
    ));
    // `wait` does not hang on them: they settle.
    let out = d.ctl(&["wait", "api", "worker"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let api = d.job("api");
    assert_eq!(api.state, JobState::Fatal);
    assert_eq!(api.cause, Some(Cause::Dependency));
    let reason = api.reason.expect("reason");
    assert!(reason.contains("db"), "{reason}");
    let worker = d.job("worker");
    assert_eq!(worker.state, JobState::Fatal);
    assert_eq!(worker.cause, Some(Cause::Dependency));
    assert!(worker.reason.expect("reason").contains("api"));
}

#[test]
fn a_failed_one_shot_settles_dependents_that_need_it_to_succeed() {
    let d = Daemon::start(&jobs(
        r#"
[job.migrate]
command = ["sh", "-c", "exit 3"]
start_secs = 0

[job.api]
command = ["sleep", "300"]
depends_on = { migrate = "succeeded" }

[job.report]
command = ["true"]
start_secs = 0
depends_on = { migrate = "exited" }
"#,
    ));
    let api = d.wait_job("api", "fatal", |j| j.state == JobState::Fatal);
    assert_eq!(api.cause, Some(Cause::Dependency));
    // `exited` is met by any exit.
    let report = d.wait_job("report", "exited", |j| j.state == JobState::Exited);
    assert_eq!(report.exitcode, Some(0));
}

#[test]
fn starting_a_job_starts_its_dependencies_and_stopping_one_settles_waiters() {
    let d = Daemon::start(&jobs(
        r#"
[job.db]
command = ["sleep", "300"]
autostart = false

[job.api]
command = ["sleep", "300"]
autostart = false
depends_on = ["db"]
"#,
    ));
    assert_eq!(d.job("db").state, JobState::Stopped);
    d.ctl_ok(&["start", "api"]);
    d.wait_job("api", "running", |j| j.state == JobState::Running);
    assert_eq!(d.job("db").state, JobState::Running);

    // A running dependent is left alone when its dependency stops...
    d.ctl_ok(&["terminate", "db"]);
    assert_eq!(d.job("api").state, JobState::Running);
    // Starting it again pulls the stopped dependency in again; it waits for it.
    d.ctl_ok(&["terminate", "api"]);
    d.ok("start", json!({ "names": ["api"] }));
    d.wait_job("api", "running", |j| j.state == JobState::Running);
}

#[test]
fn restart_true_edges_restart_running_dependents_and_others_are_left_alone() {
    let d = Daemon::start(&jobs(
        r#"
[job.db]
command = ["sleep", "300"]

[job.plain]
command = ["sleep", "300"]
depends_on = ["db"]

[job.tied]
command = ["sleep", "300"]
depends_on = { db = { condition = "running", restart = true } }
"#,
    ));
    let plain = d.wait_job("plain", "running", |j| j.state == JobState::Running);
    let tied = d.wait_job("tied", "running", |j| j.state == JobState::Running);
    let db = d.job("db");
    d.ctl_ok(&["restart", "db"]);
    let tied2 = d.wait_job("tied", "running again", |j| {
        j.state == JobState::Running && j.pid != tied.pid
    });
    assert_ne!(tied2.pid, tied.pid);
    let db2 = d.job("db");
    assert_ne!(db2.pid, db.pid);
    let plain2 = d.job("plain");
    assert_eq!(
        plain2.pid, plain.pid,
        "an edge without restart = true leaves it alone"
    );
    assert_eq!(plain2.state, JobState::Running);
}

#[test]
fn a_dependent_added_by_reload_after_its_dependency_is_up_starts_at_once() {
    let first = jobs("[job.db]\ncommand = [\"sleep\", \"300\"]\n");
    let d = Daemon::start(&first);
    d.wait_job("db", "running", |j| j.state == JobState::Running);
    std::fs::write(
        &d.config,
        format!("{first}\n[job.api]\ncommand = [\"sleep\", \"300\"]\ndepends_on = [\"db\"]\n"),
    )
    .expect("rewrite");
    d.ctl_ok(&["reload"]);
    d.wait_job("api", "running", |j| j.state == JobState::Running);
}

#[test]
fn terminate_all_stops_dependents_before_their_dependencies() {
    let d = Daemon::prepare("");
    let order = d.dir.path().join("order");
    let trap = |name: &str| {
        format!(
            "[\"sh\", \"-c\", \"trap 'sleep 0.3; echo {name} >> {}; exit 0' TERM; while :; do sleep 0.1; done\"]",
            order.display()
        )
    };
    std::fs::write(
        &d.config,
        jobs(&format!(
            r#"
[job.db]
command = {db}

[job.api]
command = {api}
depends_on = ["db"]

[job.web]
command = {web}
depends_on = ["api"]
"#,
            db = trap("db"),
            api = trap("api"),
            web = trap("web"),
        )),
    )
    .expect("write");
    let d = d.launch(&[]);
    for n in ["db", "api", "web"] {
        d.wait_job(n, "running", |j| j.state == JobState::Running);
    }
    d.ctl_ok(&["terminate", "--all"]);
    let text = std::fs::read_to_string(&order).expect("order");
    assert_eq!(text, "web\napi\ndb\n");
}

#[test]
fn graph_errors_are_load_errors_and_check_prints_the_levels() {
    let d = Daemon::prepare(
        "[job.api]\ncommand = \"sleep 1\"\ndepends_on = [\"db\"]\n\n[job.db]\ncommand = \"sleep 1\"\ndepends_on = [\"api\"]\n",
    );
    let out = d.run_once();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        err.contains("jobs.toml:7:15: dependency cycle: api -> db -> api"),
        "{err}"
    );

    std::fs::write(
        &d.config,
        "[job.api]\ncommand = \"a\"\ndepends_on = [\"db\", \"cache\"]\n[job.db]\ncommand = \"b\"\n[job.cache]\ncommand = \"c\"\n[job.web]\ncommand = \"w\"\ndepends_on = [\"api\"]\n",
    )
    .expect("write");
    let out = d
        .command(&["--check"])
        .stdout(std::process::Stdio::piped())
        .output()
        .expect("--check");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("level 0       db, cache"), "{text}");
    assert!(text.contains("level 1       api"), "{text}");
    assert!(text.contains("level 2       web"), "{text}");
}

#[test]
fn start_no_deps_leaves_dependencies_alone_and_a_stopped_one_settles_the_dependent() {
    let d = Daemon::start(&jobs(
        r#"
[job.db]
command = ["sleep", "300"]
autostart = false

[job.api]
command = ["sleep", "300"]
autostart = false
depends_on = ["db"]
"#,
    ));
    d.ctl_ok(&["start", "--no-deps", "api"]);
    let api = d.job("api");
    assert_eq!(
        api.state,
        JobState::Waiting,
        "db was never started: api waits"
    );
    assert_eq!(d.job("db").state, JobState::Stopped);
    d.ctl_ok(&["start", "db"]);
    d.wait_job("api", "running", |j| j.state == JobState::Running);
    d.ctl_ok(&["terminate", "api", "db"]);
    // db is now stopped by request: api cannot wait for it.
    d.ctl_ok(&["start", "--no-deps", "api"]);
    let api = d.wait_job("api", "fatal", |j| j.state == JobState::Fatal);
    assert_eq!(api.cause, Some(Cause::Dependency));
    assert_eq!(d.job("db").state, JobState::Stopped);
}

#[test]
fn wait_ready_exits_0_once_running_and_1_when_one_settles_first() {
    let d = Daemon::start(&jobs(
        r#"
[job.db]
command = ["sleep", "300"]
start_secs = "1s"

[job.api]
command = ["sleep", "300"]
depends_on = ["db"]

[job.broken]
command = ["sh", "-c", "exit 1"]
start_secs = "1s"
"#,
    ));
    let out = d.ctl(&["wait", "--ready", "api"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(d.job("api").state, JobState::Running);
    assert_eq!(d.job("db").state, JobState::Running);
    let out = d.ctl(&["wait", "--ready", "api", "broken"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

/// A dependency on a replicated job's name means every replica: `api` starts once
/// `web-0`, `web-1` and `web-2` are all running (each is ready when its file appears).
#[test]
fn a_dependency_on_a_replica_set_waits_for_every_replica() {
    let body = r#"
[job.web]
command = ["sleep", "300"]
replicas = 3
[job.web.ready]
exec = ["sh", "-c", "test -e ready-$SUPERVISOR_REPLICA"]
interval = "100ms"
timeout = "60s"

[job.api]
command = ["sleep", "300"]
depends_on = ["web"]
"#;
    let d = Daemon::prepare(&jobs(body));
    let check = d
        .command(&["--check"])
        .stdout(std::process::Stdio::piped())
        .output()
        .expect("--check");
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{check:?}");
    assert!(text.contains("level 0       web-0, web-1, web-2"), "{text}");
    assert!(text.contains("level 1       api"), "{text}");
    let d = d.launch(&[]);
    let api = d.wait_job("api", "waiting", |j| j.state == JobState::Waiting);
    assert_eq!(api.reason.as_deref(), Some("waiting for web (running)"));
    for i in 0..2 {
        std::fs::write(d.dir.path().join(format!("ready-{i}")), "").expect("ready");
        d.wait_job(&format!("web-{i}"), "running", |j| {
            j.state == JobState::Running
        });
    }
    // Two of three are not enough.
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(d.job("api").state, JobState::Waiting);
    std::fs::write(d.dir.path().join("ready-2"), "").expect("ready");
    d.wait_job("api", "running", |j| j.state == JobState::Running);
}

/// One replica that can never meet the condition settles the dependents.
#[test]
fn a_fatal_replica_settles_the_jobs_waiting_for_its_set() {
    let d = Daemon::start(&jobs(
        r#"
[job.web]
command = ["sh", "-c", "if [ $SUPERVISOR_REPLICA = 1 ]; then exit 3; fi; exec sleep 300"]
replicas = 2
start_secs = "300ms"
restart = "on-failure"
max_restarts = 0

[job.api]
command = ["sleep", "300"]
depends_on = ["web"]
"#,
    ));
    let api = d.wait_job("api", "fatal", |j| j.state == JobState::Fatal);
    assert_eq!(api.cause, Some(Cause::Dependency));
    let reason = api.reason.unwrap_or_default();
    assert!(
        reason.starts_with("dependency web (running) cannot be met: web-1 is fatal"),
        "{reason}"
    );
    assert!(d.job("web-0").alive, "the other replica is left alone");
}
