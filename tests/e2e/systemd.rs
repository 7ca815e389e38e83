//! systemd's notify protocol, driven through a fake `NOTIFY_SOCKET`: a datagram socket in
//! the test's temp folder that collects what supervisord sends.

use crate::support::{jobs, wait_until, Daemon, DEADLINE};
use nix::sys::signal::Signal;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

/// The service manager's end: every datagram supervisord sent, verbatim.
struct Manager {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl Manager {
    fn bind(dir: &Path) -> Manager {
        let socket = UnixDatagram::bind(dir.join("notify")).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        Manager {
            socket,
            seen: Vec::new(),
        }
    }

    /// Read datagrams until one satisfies `pred`; returns it.
    fn until(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let mut buf = vec![0u8; 4096];
        wait_until(what, DEADLINE, || {
            let n = self.socket.recv(&mut buf).ok()?;
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            self.seen.push(msg.clone());
            pred(&msg).then_some(msg)
        })
    }

    /// Whatever is queued now.
    fn drain(&mut self) {
        let mut buf = vec![0u8; 4096];
        self.socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("read timeout");
        while let Ok(n) = self.socket.recv(&mut buf) {
            self.seen
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }

    /// The messages that are not only a `STATUS=` update.
    fn lifecycle(&self) -> Vec<String> {
        self.seen
            .iter()
            .filter(|m| !m.lines().all(|l| l.starts_with("STATUS=")))
            .cloned()
            .collect()
    }
}

fn with_notify_socket(d: Daemon, extra: &[(&str, &str)]) -> Daemon {
    let mut d = d;
    let sock = d.dir.path().join("notify").display().to_string();
    d.env.push(("NOTIFY_SOCKET".into(), sock));
    d.env
        .extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    d
}

#[test]
fn notify_messages_follow_the_daemons_life() {
    let d = Daemon::prepare(&jobs(
        r#"
# Long enough that both are still `starting` when READY=1 goes out, even on a busy box.
[job.web]
command = ["sh", "-c", "echo NOTIFY_SOCKET=$${NOTIFY_SOCKET:-unset}; exec sleep 60"]
start_secs = "1s"
[job.worker]
command = ["sleep", "60"]
start_secs = "1s"
[job.broken]
command = ["/no/such/program"]
"#,
    ));
    let mut manager = Manager::bind(d.dir.path());
    let mut d = with_notify_socket(d, &[]).launch(&[]);

    let ready = manager.until("READY=1", |m| m.contains("READY=1"));
    assert_eq!(ready, "READY=1\nSTATUS=2 starting, 1 fatal\n");
    manager.until("STATUS with both jobs running", |m| {
        m == "STATUS=2 running, 1 fatal\n"
    });

    d.signal(Signal::SIGHUP);
    manager.until("READY=1 after SIGHUP", |m| m == "READY=1\n");
    d.ctl_ok(&["reload"]);
    manager.until("READY=1 after the reload request", |m| m == "READY=1\n");

    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(), 0);
    manager.drain();
    eprintln!("notify messages: {:#?}", manager.seen);

    let lifecycle = manager.lifecycle();
    let shape: Vec<&str> = lifecycle
        .iter()
        .map(|m| m.lines().next().unwrap_or_default())
        .collect();
    assert_eq!(
        shape,
        [
            "READY=1",
            "RELOADING=1",
            "READY=1",
            "RELOADING=1",
            "READY=1",
            "STOPPING=1"
        ],
        "{lifecycle:#?}"
    );
    for reloading in lifecycle.iter().filter(|m| m.starts_with("RELOADING=1")) {
        let usec = reloading
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .and_then(|r| r.strip_suffix('\n'))
            .and_then(|n| n.parse::<u64>().ok());
        assert!(usec.is_some_and(|n| n > 0), "{reloading:?}");
    }
    assert_eq!(
        lifecycle.last().map(String::as_str),
        Some("STOPPING=1\nSTATUS=stopping\n")
    );
    assert!(
        !manager.seen.iter().any(|m| m.contains("WATCHDOG")),
        "no watchdog was asked for: {:?}",
        manager.seen
    );
    // The job does not inherit supervisord's notify socket.
    let log = std::fs::read_to_string(d.dir.path().join("logs/web.stdout.log")).expect("web log");
    assert_eq!(log, "NOTIFY_SOCKET=unset\n");
}

/// A 1 s period: pings about every 500 ms. The median gap of five is checked against
/// the period: a ping per period (1000) or a hot loop fails, a busy box's jitter does not.
#[test]
fn watchdog_pings_at_half_the_period() {
    let d = Daemon::prepare(&jobs("[job.idle]\ncommand = [\"sleep\", \"60\"]\n"));
    let mut manager = Manager::bind(d.dir.path());
    let _d = with_notify_socket(d, &[("WATCHDOG_USEC", "1000000")]).launch(&[]);
    manager.until("READY=1", |m| m.contains("READY=1"));
    let mut at = Vec::new();
    for i in 0..6 {
        manager.until(&format!("watchdog ping {i}"), |m| m == "WATCHDOG=1\n");
        at.push(Instant::now());
    }
    let mut gaps: Vec<u128> = at.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
    gaps.sort_unstable();
    let median = gaps[gaps.len() / 2];
    assert!(
        (350..=700).contains(&median),
        "pings {gaps:?} ms apart; half of 1000 ms expected"
    );
}

#[test]
fn watchdog_for_another_pid_is_not_ours() {
    let d = Daemon::prepare(&jobs("[job.idle]\ncommand = [\"sleep\", \"60\"]\n"));
    let mut manager = Manager::bind(d.dir.path());
    let mut d =
        with_notify_socket(d, &[("WATCHDOG_USEC", "100000"), ("WATCHDOG_PID", "1")]).launch(&[]);
    manager.until("READY=1", |m| m.contains("READY=1"));
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(), 0);
    manager.drain();
    assert!(
        !manager.seen.iter().any(|m| m.contains("WATCHDOG")),
        "{:?}",
        manager.seen
    );
}

#[test]
fn a_crash_loop_does_not_flood_status_lines() {
    let d = Daemon::prepare(&jobs(
        r#"
[job.crashy]
command = ["sh", "-c", "sleep 0.05; exit 1"]
start_secs = "10ms"
backoff = "10ms"
restart = "always"
"#,
    ));
    let mut manager = Manager::bind(d.dir.path());
    let begun = Instant::now();
    let mut d = with_notify_socket(d, &[]).launch(&[]);
    d.wait_job("crashy", "restarted 30 times", |j| j.restarts >= 30);
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(), 0);
    manager.drain();
    let elapsed = begun.elapsed().as_secs_f64();
    let status_only = manager
        .seen
        .iter()
        .filter(|m| m.starts_with("STATUS="))
        .count();
    // Status updates are at least a second apart, whatever the events: 90+ transitions
    // happened, and at most one line per second (plus the first) went out.
    assert!(
        (status_only as f64) <= elapsed + 1.0,
        "{status_only} STATUS lines in {elapsed:.1}s: {:#?}",
        manager.seen
    );
    assert!(status_only >= 1, "{:#?}", manager.seen);
}

#[test]
fn a_refused_reload_still_ends_with_ready() {
    let d = Daemon::prepare(&jobs("[job.idle]\ncommand = [\"sleep\", \"60\"]\n"));
    let mut manager = Manager::bind(d.dir.path());
    let d = with_notify_socket(d, &[]).launch(&[]);
    manager.until("READY=1", |m| m.contains("READY=1"));
    let pid = d.job("idle").pid;
    std::fs::write(&d.config, "[job.idle]\ncommand = 42\n").expect("break the job file");
    d.signal(Signal::SIGHUP);
    manager.until("RELOADING=1", |m| m.starts_with("RELOADING=1\n"));
    manager.until("READY=1 after the refused reload", |m| m == "READY=1\n");
    let out = d.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(1), "the reload request is refused");
    manager.until("RELOADING=1", |m| m.starts_with("RELOADING=1\n"));
    manager.until("READY=1 after the refused request", |m| m == "READY=1\n");
    let idle = d.job("idle");
    assert!(
        idle.alive && idle.pid == pid,
        "the job runs on untouched: {idle:?}"
    );
}
