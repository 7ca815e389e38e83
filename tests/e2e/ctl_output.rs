//! supctl's output for people and for scripts: the status table, `is-alive`, `--json`.

use crate::support::{jobs, skip, Daemon, JOB_FIELDS};
use protocol::JobState;
use serde_json::Value;

const JOBS: &str = r#"
[job.web]
command = ["sleep", "60"]
[job.done]
command = ["sh", "-c", "exit 0"]
start_secs = "0s"
[job.failed]
command = ["sh", "-c", "exit 3"]
start_secs = "0s"
[job.killed]
command = ["sleep", "60"]
"#;

fn settled(d: &Daemon) {
    d.wait_job("web", "running", |j| j.state == JobState::Running);
    d.wait_job("done", "exited", |j| j.exitcode == Some(0));
    d.wait_job("failed", "exited", |j| j.exitcode == Some(3));
    d.wait_job("killed", "running", |j| j.state == JobState::Running);
    d.ctl_ok(&["terminate", "killed"]);
}

#[test]
fn status_table_is_aligned_and_describes_exits() {
    let d = Daemon::start(&jobs(JOBS));
    settled(&d);
    let out = d.ctl_ok(&["status"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    let header = lines[0];
    assert!(header.starts_with("NAME"), "{out}");
    let col = |name: &str| header.find(name).expect("column");
    for line in &lines[1..] {
        // Every column starts where its header does.
        for name in ["GROUP", "STATE", "PID", "UPTIME/EXIT"] {
            let at = col(name);
            assert!(
                line.len() > at && line.as_bytes()[at - 1] == b' ' && line.as_bytes()[at] != b' ',
                "{name} misaligned in {line:?}\n{out}"
            );
        }
    }
    let row = |name: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .copied()
            .unwrap_or_else(|| panic!("no row for {name}: {out}"))
    };
    assert!(row("web").contains("running"), "{out}");
    let uptime = &row("web")[col("UPTIME/EXIT")..];
    assert!(
        uptime.starts_with("up ") && uptime.ends_with(['s']),
        "uptime like `up 2m13s`: {uptime:?}"
    );
    assert!(row("done").ends_with("exit 0"), "{out}");
    assert!(row("failed").ends_with("exit 3"), "{out}");
    assert!(row("killed").ends_with("killed by SIGTERM (-15)"), "{out}");
    assert!(!out.contains('\x1b'), "no colour off a terminal: {out:?}");
}

#[test]
fn is_alive_prints_the_state_and_exits_0_only_if_alive() {
    let d = Daemon::start(&jobs(JOBS));
    settled(&d);
    let out = d.ctl(&["is-alive", "web"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "running\n");
    for (name, state) in [("done", "exited"), ("killed", "stopped")] {
        let out = d.ctl(&["is-alive", name]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{state}\n"));
    }
    let out = d.ctl(&["is-alive", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

#[test]
fn json_status_is_the_protocol_result() {
    let d = Daemon::start(&jobs(JOBS));
    settled(&d);
    let out = d.ctl_ok(&["--json", "status"]);
    let v: Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(v, d.ok("status", Value::Null).tap_volatile(&v));
    let job = &v["jobs"][0];
    for key in JOB_FIELDS.iter().chain(&["output_error"]) {
        assert!(job.get(key).is_some(), "Job lacks {key}: {job}");
    }
    let killed = v["jobs"]
        .as_array()
        .and_then(|a| a.iter().find(|j| j["name"] == "killed"))
        .expect("killed");
    assert_eq!(killed["exitcode"], -15);
    assert_eq!(killed["signal"], "SIGTERM");
    let alive = d.ctl_ok(&["--json", "is-alive", "web"]);
    let alive: Value = serde_json::from_str(&alive).expect("JSON");
    assert_eq!(alive["jobs"][0]["alive"], true);
}

/// `uptime_ms` moves between two calls; everything else must be equal.
trait Volatile {
    fn tap_volatile(self, like: &Value) -> Value;
}

impl Volatile for Value {
    fn tap_volatile(mut self, like: &Value) -> Value {
        if let (Some(mine), Some(theirs)) = (self["jobs"].as_array_mut(), like["jobs"].as_array()) {
            for (m, t) in mine.iter_mut().zip(theirs) {
                m["uptime_ms"] = t["uptime_ms"].clone();
            }
        }
        self
    }
}

/// Whether util-linux `script` (which makes a pseudo-terminal) is on the PATH.
fn have_script() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("script").is_file()))
}

/// Run supctl on a pseudo-terminal (util-linux `script`); what it printed.
fn on_a_terminal(d: &Daemon, no_color: bool) -> String {
    let cmd = format!(
        "{} --socket {} status",
        crate::support::bin("supctl").display(),
        d.socket.display()
    );
    let mut script = std::process::Command::new("script");
    script
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("NO_COLOR");
    if no_color {
        script.env("NO_COLOR", "1");
    }
    let out = script.env("TERM", "xterm").output().expect("run script");
    assert!(out.status.success(), "supctl status under script: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn states_are_coloured_on_a_terminal_unless_no_color() {
    if !have_script() {
        return skip(
            "ctl_output::states_are_coloured_on_a_terminal_unless_no_color",
            "no `script` (util-linux) on the PATH to make a terminal",
        );
    }
    let d = Daemon::start(&jobs(JOBS));
    settled(&d);
    let coloured = on_a_terminal(&d, false);
    assert!(coloured.contains("\x1b[32mrunning"), "{coloured:?}");
    let plain = on_a_terminal(&d, true);
    assert!(plain.contains("running"), "{plain:?}");
    assert!(!plain.contains('\x1b'), "NO_COLOR: {plain:?}");
}
