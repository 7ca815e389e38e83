//! Soak, run by hand: `cargo test -p supervisor-tests -- --ignored soak
//! --nocapture`. 20,000 start/exit cycles and 2,000 connect/status/disconnect cycles, then
//! the daemon's descriptors and memory must be back where they started, with no zombie.

use crate::support::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn zombies_of(pid: u32) -> usize {
    let mut n = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        for c in children.split_whitespace().filter_map(|p| p.parse().ok()) {
            if !alive(c) {
                n += 1;
            }
        }
    }
    n
}

fn restarts(d: &Daemon) -> u64 {
    d.jobs().iter().map(|j| u64::from(j.restarts)).sum()
}

/// Run the flood jobs until `n` more restarts happened.
fn cycles(d: &Daemon, names: &Value, n: u64) {
    let from = restarts(d);
    d.ok("start", json!({ "names": names }));
    wait_until("the cycles", Duration::from_secs(1800), || {
        (restarts(d) >= from + n).then_some(())
    });
    d.ok("terminate", json!({ "names": names }));
}

#[test]
#[ignore = "soak: run by hand, takes minutes"]
fn soak_start_exit_and_connection_cycles_leave_nothing_behind() {
    let d = Daemon::start(&jobs(""));
    let names: Vec<String> = (0..4).map(|n| format!("cycle{n}")).collect();
    for n in &names {
        d.ok(
            "add",
            json!({ "name": n, "job": {
                "command": ["true"], "restart": "always", "start_secs": 0, "backoff": 0, "autostart": false
            }}),
        );
    }
    let names = json!(names);
    let pid = d.pid();
    // Warm up, so lazily grown buffers and pools count as the starting point.
    cycles(&d, &names, 200);
    for _ in 0..100 {
        d.ok("status", Value::Null);
    }
    let (fds0, rss0) = (fd_count(pid), rss_kib(pid));
    let t = Instant::now();
    cycles(&d, &names, 20_000);
    let spawn_time = t.elapsed();
    let t = Instant::now();
    for _ in 0..2000 {
        let mut c = Conn::open(&d.socket);
        c.call("status", Value::Null);
    }
    let conn_time = t.elapsed();
    let fds1 = wait_until("descriptors back", DEADLINE, || {
        let n = fd_count(pid);
        (n <= fds0).then_some(n)
    });
    let rss1 = rss_kib(pid);
    wait_until("no zombie", DEADLINE, || {
        (zombies_of(pid) == 0).then_some(())
    });
    eprintln!(
        "soak: 20000 start/exit cycles in {spawn_time:?}, 2000 connections in {conn_time:?}; \
         fds {fds0} -> {fds1}; RSS {rss0} KiB -> {rss1} KiB; zombies 0"
    );
    assert!(
        rss1 <= rss0 + 4096,
        "RSS grew from {rss0} KiB to {rss1} KiB"
    );
}
