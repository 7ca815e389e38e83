//! Usage (`status` with `usage: true`), the `metrics` method and `GET /metrics`.

use crate::support::{jobs, wait_until, Daemon, DEADLINE};
use protocol::Job;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A job whose group burns CPU in two processes and holds 32 MiB in one of them.
const BURNER: &str = r#"
[job.burner]
command = ["sh", "-c", "(while :; do :; done) & s=x; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25; do s=$s$s; done; echo held; while :; do :; done"]
group = "hot"

[job.idle]
command = ["sleep", "300"]

[job.never]
command = ["sleep", "300"]
autostart = false
"#;

fn usage_of(d: &Daemon, name: &str) -> Job {
    let r = d.ok("status", json!({ "names": [name], "usage": true }));
    serde_json::from_value(r["jobs"][0].clone()).expect("job")
}

#[test]
fn status_usage_measures_the_whole_process_group_only_when_asked() {
    let d = Daemon::start(&jobs(BURNER));
    d.wait_job("burner", "running", |j| {
        j.state == protocol::JobState::Running
    });
    // Not asked: the fields are there, and null.
    let plain = d.ok("status", json!({ "names": ["burner"] }));
    for key in ["cpu_ms", "memory_bytes"] {
        assert_eq!(
            plain["jobs"][0].get(key),
            Some(&Value::Null),
            "{key}: {plain}"
        );
    }
    // Asked: memory holds the 32 MiB string, CPU climbs (two busy processes).
    let first = wait_until("burner to hold its memory", DEADLINE, || {
        let j = usage_of(&d, "burner");
        (j.memory_bytes? >= 32 << 20).then_some(j)
    });
    let first_cpu = first.cpu_ms.expect("cpu measured");
    let later = wait_until("burner's CPU time to grow", DEADLINE, || {
        let j = usage_of(&d, "burner");
        (j.cpu_ms? >= first_cpu + 500).then_some(j)
    });
    assert!(later.memory_bytes.expect("memory") >= 32 << 20);
    // More than one process counted: the leader alone cannot have used more CPU than it
    // has been alive, while two busy processes can (checked against its own /proc stat).
    let leader = proc_cpu_ms(later.pid.expect("pid"));
    let group = usage_of(&d, "burner").cpu_ms.expect("cpu");
    assert!(
        group > leader,
        "group CPU {group} ms should exceed the leader's own {leader} ms"
    );
    // A job with no process has nothing measured; an idle one has a little.
    let never = usage_of(&d, "never");
    assert_eq!((never.cpu_ms, never.memory_bytes), (None, None));
    let idle = usage_of(&d, "idle");
    assert!(idle.memory_bytes.expect("idle memory") > 0);
    // supctl status --usage: CPU and MEM columns.
    let out = d.ctl_ok(&["status", "--usage"]);
    let header = out.lines().next().expect("header");
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["NAME", "GROUP", "STATE", "PID", "CPU", "MEM", "UPTIME/EXIT"],
        "{out}"
    );
    let burner = out
        .lines()
        .find(|l| l.starts_with("burner"))
        .expect("burner row");
    assert!(burner.contains('M'), "MEM in MiB: {burner}");
    let never_row = out.lines().find(|l| l.starts_with("never")).expect("row");
    assert_eq!(
        never_row.split_whitespace().nth(4),
        Some("-"),
        "{never_row}"
    );
    // usage is a status param, not a start one.
    let bad = d.rpc("start", json!({ "names": ["never"], "usage": true }));
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
}

/// utime + stime of one process, in milliseconds (clock ticks at 100 a second).
fn proc_cpu_ms(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .expect("fields")
        .split_whitespace()
        .collect();
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    ticks * 10
}

/// `promtool`, where it is installed (.ci/run installs it).
fn promtool() -> Option<&'static str> {
    Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
        .filter(|s| s.success())
        .map(|_| "promtool")
}

/// Check an exposition with Prometheus's own parser and linter.
fn check_with_promtool(text: &str) {
    let Some(tool) = promtool() else {
        crate::support::skip(
            "the promtool check of the exposition",
            "promtool is not installed (apt-get install prometheus; .ci/run does)",
        );
        return;
    };
    let mut child = Command::new(tool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n--- the text:\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The samples of an exposition: (name with labels, value).
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("sample line");
            (series.to_owned(), value.parse().expect("value"))
        })
        .collect()
}

fn value(text: &str, series: &str) -> Option<f64> {
    samples(text)
        .into_iter()
        .find(|(s, _)| s == series)
        .map(|(_, v)| v)
}

const WATCHED: &str = r#"
[job.web]
command = ["sleep", "300"]
group = "front"

[job.once]
command = ["sh", "-c", "exit 3"]
group = "batch.jobs"
"#;

#[test]
fn metrics_are_valid_prometheus_text_with_every_job_and_the_daemon() {
    let d = Daemon::start(&jobs(WATCHED));
    d.wait_job("web", "running", |j| j.state == protocol::JobState::Running);
    d.wait_job("once", "exited", |j| j.state == protocol::JobState::Exited);
    let text = d.ctl_ok(&["metrics"]);
    check_with_promtool(&text);
    let web = r#"name="web",group="front""#;
    // (Names and groups are letters, digits, '-', '_' and '.': escaping is unit-tested.)
    let once = r#"name="once",group="batch.jobs""#;
    assert_eq!(
        value(
            &text,
            &format!("supervisord_job_state{{{web},state=\"running\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            &format!("supervisord_job_state{{{web},state=\"stopped\"}}")
        ),
        Some(0.0)
    );
    assert_eq!(
        value(&text, &format!("supervisord_job_up{{{web}}}")),
        Some(1.0)
    );
    assert_eq!(
        value(&text, &format!("supervisord_job_up{{{once}}}")),
        Some(0.0)
    );
    assert_eq!(
        value(&text, &format!("supervisord_job_last_exit_code{{{once}}}")),
        Some(3.0),
        "{text}"
    );
    assert!(
        value(&text, &format!("supervisord_job_memory_bytes{{{web}}}")).is_some_and(|m| m > 0.0)
    );
    assert!(value(
        &text,
        &format!("supervisord_job_cpu_seconds_total{{{web}}}")
    )
    .is_some());
    assert!(value(
        &text,
        &format!("supervisord_job_cpu_seconds_total{{{once}}}")
    )
    .is_none());
    assert!(value(&text, &format!("supervisord_job_restarts_total{{{web}}}")).is_some());
    assert!(value(&text, &format!("supervisord_job_uptime_seconds{{{web}}}")).is_some());
    let started = value(&text, "process_start_time_seconds").expect("start time");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(
        (now - started).abs() < 600.0,
        "started {started}, now {now}"
    );
    assert!(value(&text, "process_resident_memory_bytes").is_some_and(|m| m > 0.0));
    assert!(value(&text, "process_open_fds").is_some_and(|n| n > 0.0));
    assert!(value(&text, "process_cpu_seconds_total").is_some());
    // --json is the method's result: {"text": ...}.
    let json: Value = serde_json::from_str(&d.ctl_ok(&["--json", "metrics"])).expect("json");
    assert!(json["text"]
        .as_str()
        .is_some_and(|t| t.contains("# TYPE supervisord_job_state gauge")));
}

#[test]
fn metrics_carry_each_checked_jobs_health() {
    let d = Daemon::start(&jobs(
        r#"
[job.api]
command = ["sleep", "300"]
[job.api.health]
exec = ["test", "-e", "ok"]
interval = "200ms"
retries = 1
on_unhealthy = "none"

[job.plain]
command = ["sleep", "300"]

[job.later]
command = ["sleep", "300"]
depends_on = { api = "healthy" }
"#,
    ));
    let api = r#"name="api",group="api""#;
    let health = |text: &str, h: &str| {
        value(
            text,
            &format!("supervisord_job_health{{{api},health=\"{h}\"}}"),
        )
    };
    let text = wait_until("api unhealthy in the metrics", DEADLINE, || {
        let text = d.ctl_ok(&["metrics"]);
        (health(&text, "unhealthy") == Some(1.0)).then_some(text)
    });
    check_with_promtool(&text);
    assert_eq!(health(&text, "healthy"), Some(0.0));
    assert_eq!(health(&text, "unknown"), Some(0.0));
    assert!(
        !text.contains(r#"supervisord_job_health{name="plain""#),
        "no health series for a job without a check:\n{text}"
    );
    // The waiting state is one of the state series.
    assert_eq!(
        value(
            &text,
            r#"supervisord_job_state{name="later",group="later",state="waiting"}"#
        ),
        Some(1.0),
        "{text}"
    );
    std::fs::write(d.dir.path().join("ok"), "").expect("ok");
    wait_until("api healthy in the metrics", DEADLINE, || {
        let text = d.ctl_ok(&["metrics"]);
        (health(&text, "healthy") == Some(1.0)).then_some(())
    });
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// One HTTP/1.1 exchange over a plain TcpStream: (status code, headers, body).
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics address");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let body = if method == "POST" { "start=web" } else { "" };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read the response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    (code, head.to_owned(), body.to_owned())
}

#[test]
fn metrics_over_http_serve_get_only_and_change_nothing() {
    let port = free_port();
    let d = Daemon::start(&jobs(&format!(
        "[supervisor]\nmetrics = \"127.0.0.1:{port}\"\n{WATCHED}\n[job.held]\ncommand = [\"sleep\", \"300\"]\nautostart = false\n"
    )));
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    d.wait_job("web", "running", |j| j.state == protocol::JobState::Running);
    let (code, head, body) = http(addr, "GET", "/metrics");
    assert_eq!(code, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    check_with_promtool(&body);
    assert!(body.contains(r#"supervisord_job_state{name="web",group="front",state="running"} 1"#));
    if Command::new("curl").arg("--version").output().is_ok() {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", &format!("http://{addr}/metrics")])
            .output()
            .expect("curl");
        assert!(out.status.success(), "curl: {out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("# TYPE supervisord_job_up gauge"));
    }
    let before = d.jobs();
    let (code, head, _) = http(addr, "POST", "/metrics");
    assert_eq!(code, 405, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("allow: get, head"),
        "{head}"
    );
    for path in ["/", "/start", "/metrics/x", "/jobs/held/start"] {
        assert_eq!(http(addr, "GET", path).0, 404, "GET {path}");
        assert_eq!(http(addr, "POST", path).0, 404, "POST {path}");
    }
    assert_eq!(http(addr, "DELETE", "/metrics").0, 405);
    let after = d.jobs();
    let summary = |jobs: &[Job]| -> Vec<(String, protocol::JobState, Option<u32>, u32)> {
        jobs.iter()
            .map(|j| (j.name.clone(), j.state, j.pid, j.restarts))
            .collect()
    };
    assert_eq!(summary(&before), summary(&after), "nothing changed");
}

#[test]
fn metrics_server_ends_with_the_daemon_even_with_an_idle_client() {
    let port = free_port();
    let mut d = Daemon::start(&jobs(&format!(
        "[supervisor]\nmetrics = \"127.0.0.1:{port}\"\n[job.web]\ncommand = [\"sleep\", \"300\"]\n"
    )));
    // A client that connects and sends nothing holds a connection open.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    idle.set_read_timeout(Some(DEADLINE)).expect("timeout");
    wait_until("the idle connection to be accepted", DEADLINE, || {
        let out = d.ctl_ok(&["metrics"]);
        out.contains("process_open_fds").then_some(())
    });
    let started = std::time::Instant::now();
    d.ctl_ok(&["shutdown"]);
    assert_eq!(d.wait_exit(), 0);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
    let mut buf = [0u8; 64];
    assert!(
        matches!(idle.read(&mut buf), Ok(0) | Err(_)),
        "the idle connection was closed"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens once the daemon is gone"
    );
}

#[test]
fn a_bad_or_busy_metrics_address_stops_the_daemon_at_start_naming_it() {
    let d = Daemon::prepare("[supervisor]\nmetrics = \"localhost:9101\"\n");
    let out = d.run_once();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("jobs.toml:2:11"), "{err}");
    assert!(err.contains("IP:PORT"), "{err}");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let d = Daemon::prepare(&format!("[supervisor]\nmetrics = \"127.0.0.1:{port}\"\n"));
    let out = d.run_once();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!d.socket.exists(), "no socket left behind");
}
