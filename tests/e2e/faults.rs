//! Fault injection: the daemon under resource limits (`prlimit` on the running daemon),
//! frozen with SIGSTOP while work piles up, on a disk that fills (see `reliability.rs`),
//! and with freed pids handed straight to other processes (`reliability.rs`). The quick
//! ones run with `cargo test`; the long soak is ignored:
//!
//! ```sh
//! cargo test -p supervisor-tests --test e2e -- faults:: --ignored
//! ```

use crate::support::*;
use nix::sys::signal::Signal;
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

/// Whether `prlimit` is there (util-linux); say so when it is not.
fn have_prlimit() -> bool {
    let ok = Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: no prlimit (util-linux) on this machine");
    }
    ok
}

/// A file-size limit on the daemon: a log that reaches it is an output error of that job
/// (the write fails with EFBIG; SIGXFSZ does not kill the daemon), and the daemon and its
/// other jobs carry on.
#[test]
fn a_file_size_limit_fails_a_log_not_the_daemon() {
    if !have_prlimit() {
        return;
    }
    let d = Daemon::start(&jobs(
        r#"
[job.victim]
command = ["sleep", "600"]

[job.big]
command = ["sh", "-c", "sleep 0.5; i=0; while [ $i -lt 4000 ]; do echo line-$i-padding-padding-padding-padding; i=$((i+1)); done; sleep 600"]
log_max_bytes = 0
"#,
    ));
    let victim = d.wait_job("victim", "running", |j| j.state.as_str() == "running");
    let limited = Command::new("prlimit")
        .arg(format!("--pid={}", d.pid()))
        .arg("--fsize=16384:16384")
        .status()
        .expect("prlimit");
    assert!(limited.success());
    let big = d.wait_job("big", "an output error", |j| j.output_error.is_some());
    assert!(big.alive, "the job runs on: {big:?}");
    assert_eq!(d.job("victim").pid, victim.pid);
    d.ok("ping", json!({}));
}

/// A daemon frozen with SIGSTOP while a job floods its output and clients queue
/// requests: once continued, every request is answered and no output line is lost.
#[test]
fn a_daemon_stopped_and_continued_loses_nothing() {
    let d = Daemon::start(&jobs(
        r#"
[job.counter]
command = ["sh", "-c", "i=0; while [ $i -lt 20000 ]; do echo $i; i=$((i+1)); done; sleep 600"]
log_max_bytes = 0
"#,
    ));
    d.wait_job("counter", "running", |j| j.pid.is_some());
    d.signal(Signal::SIGSTOP);
    let mut conns: Vec<(Conn, u64)> = (0..20)
        .map(|_| {
            let mut c = Conn::open(&d.socket);
            let id = c.send("status", json!({}));
            (c, id)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    d.signal(Signal::SIGCONT);
    for (c, id) in conns.iter_mut() {
        let r = c.response(*id);
        assert!(r.get("result").is_some(), "{r}");
    }
    let log = d.dir.path().join("logs/counter.stdout.log");
    wait_until("every line on disk", DEADLINE, || {
        let text = std::fs::read_to_string(&log).ok()?;
        (text.lines().count() == 20000).then_some(())
    });
    let text = std::fs::read_to_string(&log).expect("log");
    for (i, l) in text.lines().enumerate() {
        assert_eq!(l, i.to_string(), "line {i}");
    }
}

/// The long soak: for `FAULT_SECONDS` (default 120), stop and continue the daemon at
/// random moments while jobs restart in a loop and clients ask for status; then every
/// job must still be accounted for and the daemon must shut down cleanly.
#[test]
#[ignore]
fn soak_under_repeated_sigstop() {
    let secs = std::env::var("FAULT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let mut d = Daemon::start(&jobs(
        r#"
[job.flapper]
command = ["sh", "-c", "echo up; sleep 0.05"]
restart = "always"
start_secs = 0
backoff = 0
stdout = "null"

[job.steady]
command = ["sleep", "100000"]
"#,
    ));
    let steady = d.wait_job("steady", "running", |j| j.state.as_str() == "running");
    let until = Instant::now() + Duration::from_secs(secs);
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        d.signal(Signal::SIGSTOP);
        std::thread::sleep(Duration::from_millis(n % 7 * 20));
        d.signal(Signal::SIGCONT);
        d.ok("status", json!({}));
    }
    assert_eq!(d.job("steady").pid, steady.pid, "after {n} freezes");
    d.ok("shutdown", json!({}));
    assert_eq!(d.wait_exit(), 0);
}
