//! Hardening (docs/SECURITY.md): hostile clients, hostile jobs and a hostile OS. Each attack is
//! followed by the same check: another client is served promptly and the bystander job
//! was not touched (same pid, still alive).

use crate::support::*;
use protocol::Job;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

/// A bystander that every test checks on afterwards.
const VICTIM: &str = r#"
[job.victim]
command = ["sleep", "600"]
"#;

fn start_with_victim(more: &str) -> (Daemon, Job) {
    let d = Daemon::start(&jobs(&format!("{VICTIM}{more}")));
    let v = d.wait_job("victim", "running", |j| j.state.as_str() == "running");
    (d, v)
}

/// Another client is answered promptly, and the victim is the same live process.
fn assert_unharmed(d: &Daemon, victim: &Job) {
    let t = Instant::now();
    let mut c = Conn::open(&d.socket);
    c.set_timeout(Duration::from_secs(5));
    let r = c.call("status", json!({ "names": ["victim"] }));
    let took = t.elapsed();
    let j: Job = serde_json::from_value(r["result"]["jobs"][0].clone()).expect("victim status");
    assert!(took < Duration::from_secs(5), "status took {took:?}");
    assert_eq!(j.pid, victim.pid, "the victim was restarted: {j:?}");
    assert!(j.alive && alive(victim.pid.expect("pid")), "{j:?}");
    assert!(
        !d.stderr().contains("panicked"),
        "daemon panicked:\n{}",
        d.stderr()
    );
}

/// The daemon's child processes that are zombies.
fn zombie_children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        for c in children.split_whitespace().filter_map(|p| p.parse().ok()) {
            if !alive(c) && std::path::Path::new(&format!("/proc/{c}")).exists() {
                out.push(c);
            }
        }
    }
    out
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Live processes whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let group = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(2))
            .and_then(|g| g.parse::<u32>().ok());
        if group == Some(pgid) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// The process group of `pid` (any state, zombies included).
pub fn pgrp_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

// ---- hostile clients ---------------------------------------------------------------------

/// Garbage of every kind on one connection: each line gets its error, the connection stays
/// usable, nothing is touched.
#[test]
fn malformed_requests_get_their_error_and_the_connection_stays_usable() {
    let (d, victim) = start_with_victim("");
    let deep = format!("{}\n", "[".repeat(100_000));
    let cases: Vec<(&[u8], i64)> = vec![
        (b"{\n", -32700),
        (b"not json at all\n", -32700),
        (b"\xff\xfe\xfd{}\n", -32700),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"st\xffatus\"}\n", -32700),
        (deep.as_bytes(), -32700),
        (b"[1,2,3]\n", -32600),
        (b"[]\n", -32600),
        (b"42\n", -32600),
        (b"\"ping\"\n", -32600),
        (b"null\n", -32600),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1}\n", -32600),
        (b"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}\n", -32600),
        (b"{\"id\":1,\"method\":\"ping\"}\n", -32600),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}\n", -32600),
        (b"{\"jsonrpc\":\"2.0\",\"id\":{\"x\":1},\"method\":\"ping\"}\n", -32600),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"nope\"}\n", -32601),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\",\"params\":{\"names\":\"victim\"}}\n", -32602),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"terminate\",\"params\":{\"names\":[1]}}\n", -32602),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"terminate\",\"params\":{\"all\":\"yes\"}}\n", -32602),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"kill\",\"params\":{\"names\":[\"victim\"],\"signal\":\"NOPE\"}}\n", -32602),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"kill\",\"params\":{\"names\":[\"victim\"],\"signal\":9.5}}\n", -32602),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"logs\",\"params\":{\"name\":\"victim\",\"lines\":-1}}\n", -32602),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"wait\",\"params\":{\"timeout_ms\":\"soon\"}}\n", -32602),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":[1]}\n", -32602),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"add\",\"params\":{\"name\":\"x\",\"job\":{\"command\":42}}}\n", -32602),
    ];
    let mut c = d.conn();
    for (line, want) in &cases {
        c.send_raw(line);
        let r = c.recv().expect("an answer");
        assert_eq!(
            r["error"]["code"],
            json!(want),
            "{}: {r}",
            String::from_utf8_lossy(&line[..line.len().min(80)])
        );
        assert!(r["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert!(c.call("ping", Value::Null)["result"]["pid"].is_number());
    }
    assert_unharmed(&d, &victim);
    assert_eq!(d.jobs().len(), 1, "nothing was added");
}

/// One unknown name among known ones: 1001 naming it, and nothing done to the others.
#[test]
fn unknown_job_names_are_1001_and_nothing_is_done() {
    let (d, victim) = start_with_victim("");
    for (method, params) in [
        ("terminate", json!({ "names": ["victim", "ghost"] })),
        (
            "kill",
            json!({ "names": ["victim", "ghost"], "signal": "KILL" }),
        ),
        ("restart", json!({ "names": ["ghost", "victim"] })),
        ("start", json!({ "names": ["victim", "ghost"] })),
        ("remove", json!({ "names": ["victim", "ghost"] })),
        ("wait", json!({ "names": ["victim", "ghost"] })),
        ("status", json!({ "names": ["ghost"] })),
        ("logs", json!({ "name": "ghost" })),
    ] {
        let r = d.rpc(method, params);
        assert_eq!(r["error"]["code"], 1001, "{method}: {r}");
        if method != "logs" {
            assert_eq!(
                r["error"]["data"]["names"],
                json!(["ghost"]),
                "{method}: {r}"
            );
        }
        assert_unharmed(&d, &victim);
    }
    let r = d.rpc("status", json!({ "group": "ghosts" }));
    assert_eq!(r["error"]["code"], 1001, "an unknown group: {r}");
    assert_eq!(r["error"]["data"]["group"], "ghosts", "{r}");
    assert_eq!(d.jobs().len(), 1, "the victim was not removed");
}

/// A line over 1 MiB: error -32600, then the connection is closed. With or without its
/// newline ever arriving.
#[test]
fn an_over_long_line_gets_an_error_then_the_connection_closes() {
    let (d, victim) = start_with_victim("");
    for newline in [true, false] {
        let mut s = UnixStream::connect(&d.socket).expect("connect");
        s.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let mut w = s.try_clone().expect("clone");
        let writer = std::thread::spawn(move || {
            let big = vec![b'a'; 2 * 1024 * 1024];
            // The daemon closes mid-way: a write error here is the expected end.
            let _ = w.write_all(&big);
            if newline {
                let _ = w.write_all(b"\n");
            }
        });
        // The daemon closes with the rest of the line unread, so the end may come as a
        // reset after the error line rather than a clean end of file.
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("reading: {e}"),
            }
        }
        let _ = writer.join();
        let text = String::from_utf8_lossy(&got);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let r: Value = serde_json::from_str(lines[0]).expect("json");
        assert_eq!(r["error"]["code"], -32600, "{r}");
        assert_unharmed(&d, &victim);
    }
}

/// Half a line, then silence: others are served meanwhile, and the line still works
/// when its end arrives.
#[test]
fn half_a_line_then_silence_holds_up_nobody() {
    let (d, victim) = start_with_victim("");
    let mut slow = d.conn();
    slow.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":7,\"meth");
    assert_unharmed(&d, &victim);
    d.ctl_ok(&["status"]);
    slow.send_raw(b"od\":\"ping\"}\n");
    let r = slow.recv().expect("answer");
    assert_eq!(r["id"], 7, "{r}");
    assert!(r["result"]["pid"].is_number());
}

/// A thousand idle connections cost others nothing.
#[test]
fn a_thousand_idle_connections() {
    let (d, victim) = start_with_victim("");
    let before = fd_count(d.pid());
    let idle: Vec<UnixStream> = (0..1000)
        .map(|i| UnixStream::connect(&d.socket).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    // `before` may still count the helper's own ping connection, closing meanwhile.
    wait_until("the daemon to accept all of them", DEADLINE, || {
        (fd_count(d.pid()) >= before + 999).then_some(())
    });
    assert_unharmed(&d, &victim);
    d.ctl_ok(&["status"]);
    drop(idle);
    wait_until("the daemon to close them all", DEADLINE, || {
        (fd_count(d.pid()) <= before).then_some(())
    });
    assert_unharmed(&d, &victim);
}

/// Past the connection cap (2048) a client gets error 1007 and is closed; once others
/// leave, new clients are served again.
#[test]
fn past_the_connection_cap_clients_get_1007() {
    let (d, victim) = start_with_victim("");
    let held: Vec<UnixStream> = (0..2048)
        .map(|i| UnixStream::connect(&d.socket).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    let mut extra = UnixStream::connect(&d.socket).expect("connect");
    extra.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let mut got = String::new();
    extra.read_to_string(&mut got).expect("read until closed");
    let r: Value = serde_json::from_str(got.trim()).unwrap_or_else(|e| panic!("{got}: {e}"));
    assert_eq!(r["error"]["code"], 1007, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("2048")),
        "{r}"
    );
    drop(held);
    // Until the daemon has seen them go, a newcomer may still get 1007.
    wait_until("a new client to be served", DEADLINE, || {
        try_ping(&d.socket, DEADLINE).then_some(())
    });
    assert_unharmed(&d, &victim);
}

/// A client that sends requests and never reads the answers: it fills its own queue and
/// is no longer read; everyone else is served.
#[test]
fn a_client_that_never_reads_its_answers() {
    let (d, victim) = start_with_victim("");
    let s = UnixStream::connect(&d.socket).expect("connect");
    s.set_nonblocking(true).expect("nonblocking");
    let mut w = &s;
    let req = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}\n";
    let mut sent = 0usize;
    let started = Instant::now();
    // Write until the daemon stops taking more: its in-flight limit and queue are full
    // and both socket buffers with them.
    let mut idle_since = Instant::now();
    while idle_since.elapsed() < Duration::from_millis(500) {
        assert!(started.elapsed() < DEADLINE, "the daemon read forever");
        match w.write(req) {
            Ok(n) => {
                sent += n;
                idle_since = Instant::now();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    eprintln!(
        "a non-reading client got {} requests in before being held off",
        sent / req.len()
    );
    assert!(sent < 100 * 1024 * 1024, "bounded");
    assert_unharmed(&d, &victim);
    drop(s);
    assert_unharmed(&d, &victim);
}

/// Clients that leave in the middle of a `wait` or a `logs -f` leave nothing behind: the
/// daemon's descriptors go back to where they were.
#[test]
fn clients_leaving_mid_wait_or_mid_follow_leave_nothing_behind() {
    let (d, victim) = start_with_victim(
        r#"
[job.chatty]
command = ["sh", "-c", "while :; do echo hello; sleep 0.01; done"]
"#,
    );
    d.wait_job("chatty", "running", |j| j.state.as_str() == "running");
    let before = fd_count(d.pid());
    for _ in 0..50 {
        let mut c = d.conn();
        c.send("wait", json!({ "names": ["victim"] }));
        // The wait is in flight once a later request on the connection is answered.
        let id = c.send("ping", Value::Null);
        c.response(id);
        drop(c);

        let mut f = d.conn();
        let id = f.send(
            "logs",
            json!({ "name": "chatty", "lines": 1, "follow": true }),
        );
        f.response(id);
        let note = f.recv().expect("a log notification");
        assert_eq!(note["method"], "log");
        drop(f);
    }
    wait_until("the daemon to let go of the connections", DEADLINE, || {
        (fd_count(d.pid()) <= before).then_some(())
    });
    assert_unharmed(&d, &victim);
    // A client that only half-closes after `wait` still gets its answer.
    let mut s = UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    s.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"wait\",\"params\":{\"names\":[\"victim\"],\"timeout_ms\":300}}\n")
        .expect("send");
    s.shutdown(std::net::Shutdown::Write).expect("half-close");
    let mut got = String::new();
    s.read_to_string(&mut got).expect("read until closed");
    let r: Value = serde_json::from_str(got.trim()).unwrap_or_else(|e| panic!("{got}: {e}"));
    assert_eq!(r["error"]["code"], 1002, "{r}");
}

/// Whether a fresh connection gets an answer to `ping` within `t`; never panics.
fn try_ping(socket: &std::path::Path, t: Duration) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(t));
    if s.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 4096];
    matches!(s.read(&mut buf), Ok(n) if n > 0 && String::from_utf8_lossy(&buf[..n]).contains("\"pid\""))
}

/// Two hundred clients asking `status` at the same moment are all answered.
#[test]
fn two_hundred_clients_at_once() {
    let (d, victim) = start_with_victim("");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(200));
    let started = Instant::now();
    let clients: Vec<_> = (0..200)
        .map(|_| {
            let (socket, barrier) = (d.socket.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut c = Conn::open(&socket);
                barrier.wait();
                c.call("status", Value::Null)
            })
        })
        .collect();
    for c in clients {
        let r = c.join().expect("client thread");
        assert_eq!(r["result"]["jobs"][0]["name"], "victim", "{r}");
    }
    eprintln!("200 concurrent status calls took {:?}", started.elapsed());
    assert_unharmed(&d, &victim);
}

// ---- hostile jobs ------------------------------------------------------------------------

/// A job that ignores SIGTERM is killed after `stop_timeout`: exitcode -9.
#[test]
fn a_job_ignoring_sigterm_gets_sigkill() {
    let (d, victim) = start_with_victim(
        r#"
[job.stubborn]
command = ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"]
stop_timeout = "300ms"
"#,
    );
    d.wait_job("stubborn", "running", |j| j.state.as_str() == "running");
    let r = d.ok("terminate", json!({ "names": ["stubborn"] }));
    assert_eq!(r["jobs"][0]["exitcode"], -9, "{r}");
    assert_eq!(r["jobs"][0]["signal"], "SIGKILL", "{r}");
    assert_unharmed(&d, &victim);
}

/// A job that forks grandchildren and exits: they are adopted by supervisord (subreaper),
/// ended with the group when the job is stopped, and every orphan is reaped.
#[test]
fn grandchildren_are_ended_with_the_group_and_orphans_are_reaped() {
    let mark = marker("grandchild");
    let short = marker("orphan");
    let (d, victim) = start_with_victim(&format!(
        r#"
[job.forker]
command = ["sh", "-c", "sh -c 'sleep 600; : {mark}' & sh -c 'sleep 600; : {mark}' & sh -c 'sleep 0.2; : {short}' & echo forked"]
"#
    ));
    let j = d.wait_job("forker", "exited", |j| j.state.as_str() == "exited");
    assert_eq!(j.exitcode, Some(0));
    let kids = wait_until("two grandchildren", DEADLINE, || {
        let p = pids_with_arg(&mark);
        (p.len() == 2).then_some(p)
    });
    for k in &kids {
        assert_eq!(parent_of(*k), Some(d.pid()), "adopted by supervisord");
    }
    // The short-lived orphan ends on its own and must not stay a zombie. The job's leader
    // is one on purpose: held unreaped while its group lives on, it keeps the group's id
    // from being reused by an unrelated process.
    wait_until("the orphan to end and be reaped", DEADLINE, || {
        let zombies = zombie_children(d.pid());
        let leaders_only = zombies.iter().all(|z| pgrp_of(*z) == Some(*z));
        (pids_with_arg(&short).is_empty() && zombies.len() <= 1 && leaders_only).then_some(())
    });
    d.ok("terminate", json!({ "names": ["forker"] }));
    wait_until("the grandchildren to be ended", DEADLINE, || {
        pids_with_arg(&mark).is_empty().then_some(())
    });
    wait_until("no zombie children of supervisord", DEADLINE, || {
        zombie_children(d.pid()).is_empty().then_some(())
    });
    assert_unharmed(&d, &victim);
}

/// A job that closes its stdout and stderr early keeps running, and stops normally.
#[test]
fn a_job_closing_its_output_early() {
    let (d, victim) = start_with_victim(
        r#"
[job.mute]
command = ["sh", "-c", "echo bye; exec >&- 2>&-; sleep 600"]
"#,
    );
    let j = d.wait_job("mute", "running", |j| j.state.as_str() == "running");
    wait_until("its last words in the log", DEADLINE, || {
        (d.ctl_ok(&["logs", "mute"]) == "bye\n").then_some(())
    });
    assert!(alive(j.pid.expect("pid")));
    let r = d.ok("terminate", json!({ "names": ["mute"] }));
    assert_eq!(r["jobs"][0]["exitcode"], -15, "{r}");
    assert_unharmed(&d, &victim);
}

/// A job that floods stdout: the daemon keeps answering, the log stays within its
/// rotation budget, and the flood stops with the job.
#[test]
fn a_job_flooding_stdout() {
    let (d, victim) = start_with_victim(
        r#"
[job.flood]
command = ["yes", "flood flood flood flood flood flood flood flood"]
log_max_bytes = "1MiB"
log_backups = 1
"#,
    );
    let log = d.dir.path().join("logs/flood.stdout.log");
    wait_until("a rotation", DEADLINE, || {
        std::path::Path::new(&format!("{}.1", log.display()))
            .exists()
            .then_some(())
    });
    for _ in 0..20 {
        assert_unharmed(&d, &victim);
    }
    let tail = d.ctl_ok(&["logs", "flood", "-n", "3"]);
    assert_eq!(tail.lines().count(), 3, "{tail}");
    assert!(tail.lines().all(|l| l.starts_with("flood flood")), "{tail}");
    d.ok("terminate", json!({ "names": ["flood"] }));
    let total: u64 = std::fs::read_dir(d.dir.path().join("logs"))
        .expect("logs")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("flood."))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(
        total <= 2 << 20,
        "{total} bytes on disk for 1 MiB x (1 + 1 backup)"
    );
    assert_unharmed(&d, &victim);
}

/// A job that forks a thousand children: all of them end with the job.
#[test]
fn a_job_forking_a_thousand_children() {
    let (d, victim) = start_with_victim(
        r#"
[job.hydra]
command = ["sh", "-c", "i=0; while [ $i -lt 1000 ]; do sleep 600 & i=$((i+1)); done; echo spawned; wait"]
"#,
    );
    let j = d.wait_job("hydra", "running", |j| j.state.as_str() == "running");
    let pgid = j.pid.expect("pid");
    wait_until("a thousand children", Duration::from_secs(60), || {
        (group_members(pgid).len() > 1000).then_some(())
    });
    assert_unharmed(&d, &victim);
    let r = d.ok("terminate", json!({ "names": ["hydra"] }));
    assert_eq!(r["jobs"][0]["state"], "stopped", "{r}");
    wait_until("every child gone", DEADLINE, || {
        group_members(pgid).is_empty().then_some(())
    });
    wait_until("no zombie children of supervisord", DEADLINE, || {
        zombie_children(d.pid()).is_empty().then_some(())
    });
    assert_unharmed(&d, &victim);
}

/// A program that does not exist, or is not executable: `fatal` with a `spawn_error`.
#[test]
fn missing_or_non_executable_programs_are_fatal() {
    let (d, victim) = start_with_victim(
        r#"
[job.missing]
command = ["/nonexistent/program"]

[job.noexec]
command = ["./noexec.sh"]
autostart = false
"#,
    );
    let script = d.dir.path().join("noexec.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").expect("script");
    let j = d.wait_job("missing", "fatal", |j| j.state.as_str() == "fatal");
    let e = j.spawn_error.expect("spawn_error");
    assert!(
        e.contains("/nonexistent/program") && e.contains("no such program"),
        "{e}"
    );
    d.ok("start", json!({ "names": ["noexec"] }));
    let j = d.wait_job("noexec", "fatal", |j| j.state.as_str() == "fatal");
    let e = j.spawn_error.expect("spawn_error");
    assert!(
        e.contains("noexec.sh") && e.contains("permission denied"),
        "{e}"
    );
    assert_unharmed(&d, &victim);
}

/// Without cgroups (`cgroup = "off"`), a job that calls setsid leaves its process group:
/// stopping the job does not reach it (documented in docs/SECURITY.md), but as an orphan
/// it is adopted and reaped by supervisord once it ends.
#[test]
fn a_job_that_calls_setsid_escapes_the_group_but_is_reaped() {
    let mark = marker("escaped");
    let (d, victim) = start_with_victim(&format!(
        r#"
[supervisor]
cgroup = "off"

[job.escape]
command = ["setsid", "sh", "-c", "sleep 600; : {mark}"]
"#
    ));
    d.wait_job("escape", "exited", |j| j.state.as_str() == "exited");
    let pid = wait_until("the escaped process", DEADLINE, || {
        pids_with_arg(&mark).first().copied()
    });
    assert_eq!(parent_of(pid), Some(d.pid()), "adopted by supervisord");
    d.ok("terminate", json!({ "names": ["escape"] }));
    assert!(alive(pid), "setsid took it out of the job's group");
    // It leads its own session and group: end that group ourselves.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the escaped group");
    wait_until("it to be reaped", DEADLINE, || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()
            && zombie_children(d.pid()).is_empty())
        .then_some(())
    });
    assert_unharmed(&d, &victim);
}

// ---- hostile OS ----------------------------------------------------------------------------

/// A missing socket folder is created 0700.
#[test]
fn a_missing_socket_folder_is_created_0700() {
    use std::os::unix::fs::PermissionsExt;
    let mut d = Daemon::prepare(&jobs(VICTIM));
    d.socket = d.dir.path().join("new/deeper/sock");
    let d = d.launch(&[]);
    let mode = std::fs::metadata(d.dir.path().join("new/deeper"))
        .expect("folder")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

/// A socket folder that cannot be created, and a socket path over the kernel's limit: one
/// clear line at start, exit non-zero.
#[test]
fn unusable_socket_paths_are_a_clear_error_at_start() {
    let mut d = Daemon::prepare(&jobs(VICTIM));
    std::fs::write(d.dir.path().join("file"), "").expect("file");
    let long = d.dir.path().join("x".repeat(120)).join("sock");
    for (socket, needle) in [
        (d.dir.path().join("file/sock"), "file/sock".to_owned()),
        (long.clone(), "107".to_owned()),
    ] {
        d.socket = socket;
        let out = d.run_once();
        // 1: the daemon could not start.
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&needle), "{err}");
    }
}

/// Under `ulimit -n 64` the daemon runs out of descriptors: it refuses work with errors,
/// does not crash, and recovers when descriptors are free again.
#[test]
fn running_out_of_descriptors_degrades_and_recovers() {
    let mut d = Daemon::prepare(&jobs(&format!(
        r#"{VICTIM}
[job.late]
command = ["sleep", "600"]
autostart = false
"#
    )));
    let inner = d.command(&[]);
    let mut cmd = Command::new("prlimit");
    cmd.arg("--nofile=64:64")
        .arg(inner.get_program())
        .args(inner.get_args())
        .env("RUST_LOG", "debug")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(d.dir.path().join("daemon.out")).expect("out file"))
        .stderr(std::fs::File::create(d.dir.path().join("daemon.err")).expect("err file"));
    d.child = Some(cmd.spawn().expect("run prlimit supervisord"));
    let socket = d.socket.clone();
    let mut control = wait_until("supervisord to answer", DEADLINE, || {
        let mut c = Conn::try_open(&socket)?;
        c.call("ping", Value::Null).get("result")?;
        Some(c)
    });
    let victim = d.wait_job("victim", "running", |j| j.state.as_str() == "running");
    // Use up the daemon's descriptors with idle connections.
    let hog: Vec<UnixStream> = (0..100)
        .filter_map(|_| UnixStream::connect(&d.socket).ok())
        .collect();
    wait_until("accept to fail", DEADLINE, || {
        d.stderr().contains("accept failed").then_some(())
    });
    // With no descriptor left, starting a job fails with an error, and nothing crashes.
    let r = control.call("start", json!({ "names": ["late"] }));
    let late: Job = serde_json::from_value(r["result"]["jobs"][0].clone()).expect("late");
    assert_eq!(late.state.as_str(), "fatal", "{r}");
    assert!(
        late.spawn_error
            .as_deref()
            .is_some_and(|e| e.contains("open files")),
        "{late:?}"
    );
    drop(hog);
    // Recovery: new clients are served, the job starts.
    wait_until("new clients served again", DEADLINE, || {
        try_ping(&socket, Duration::from_millis(500)).then_some(())
    });
    let r = control.call("start", json!({ "names": ["late"] }));
    assert_eq!(r["result"]["jobs"][0]["state"], "starting", "{r}");
    assert_unharmed(&d, &victim);
}

/// No value from the daemon's own environment or from an env file comes back in any
/// answer, event or error: the protocol never echoes an environment, an env file's broken
/// line is named by its number only, and `--check` masks what came from an env file.
/// (Jobs do inherit it: see docs/SECURITY.md.)
#[test]
fn no_secret_from_the_daemons_environment_reaches_a_response() {
    const SECRET: &str = "s3cr3t-token-7f1d";
    const FILE_SECRET: &str = "f1le-s3cr3t-9c2e";
    let mut d = Daemon::prepare(&jobs(
        r#"
[job.envy]
command = ["sh", "-c", "exit 3"]
env = { FROM_FILE = "visible-by-design", FROM_VARS = "${VAR_SECRET}" }
env_file = "secret.env"

[job.ghostly]
command = ["/nonexistent/$DAEMON_SECRET"]
"#,
    ));
    d.env = vec![("DAEMON_SECRET".into(), SECRET.into())];
    let secret_env = d.dir.path().join("secret.env");
    std::fs::write(&secret_env, format!("TOKEN={FILE_SECRET}\n")).expect("secret.env");
    // `${VAR_SECRET}` comes from [supervisor] env_file: secret too.
    let text = std::fs::read_to_string(&d.config).expect("read");
    std::fs::write(
        &d.config,
        format!("[supervisor]\nenv_file = \"vars.env\"\n{text}"),
    )
    .expect("write");
    std::fs::write(
        d.dir.path().join("vars.env"),
        format!("VAR_SECRET={FILE_SECRET}-vars\n"),
    )
    .expect("vars.env");
    let d = d.launch(&[]);
    let mut sub = UnixStream::connect(&d.socket).expect("connect");
    sub.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"subscribe\"}\n")
        .expect("subscribe");
    sub.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let mut sub = std::io::BufReader::new(sub);
    let mut seen = String::new();
    std::io::BufRead::read_line(&mut sub, &mut seen).expect("the snapshot");
    d.wait_job("envy", "exited", |j| j.state.as_str() == "exited");
    d.wait_job("ghostly", "fatal", |j| j.state.as_str() == "fatal");
    for (method, params) in [
        ("ping", Value::Null),
        ("status", Value::Null),
        ("start", json!({ "all": true })),
        ("wait", json!({ "all": true, "timeout_ms": 2000 })),
        (
            "add",
            json!({ "name": "added", "job": { "command": ["true"], "env": { "X": "$DAEMON_SECRET" } } }),
        ),
        (
            "add",
            json!({ "name": "bad", "job": { "command": ["true"], "env": 5 } }),
        ),
        ("logs", json!({ "name": "envy" })),
        ("logs", json!({ "name": "nope" })),
        ("reload", Value::Null),
        ("status", Value::Null),
    ] {
        seen.push_str(&d.rpc(method, params).to_string());
    }
    // A broken env file: the reload is refused naming the line, not showing it.
    std::fs::write(
        &secret_env,
        format!("TOKEN={FILE_SECRET}\n{FILE_SECRET}\n'{FILE_SECRET}' x\n"),
    )
    .expect("secret.env");
    let refused = d.rpc("reload", Value::Null);
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("secret.env:2:1: expected KEY=VALUE")),
        "{refused}"
    );
    seen.push_str(&refused.to_string());
    std::fs::write(&secret_env, format!("TOKEN=\"{FILE_SECRET}\" junk\n")).expect("secret.env");
    seen.push_str(&d.rpc("reload", Value::Null).to_string());
    std::fs::write(&secret_env, format!("TOKEN={FILE_SECRET}\n")).expect("secret.env");
    // Everything the subscriber got meanwhile; a quiet spell ends it.
    sub.get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut line = String::new();
    while matches!(std::io::BufRead::read_line(&mut sub, &mut line), Ok(n) if n > 0) {
        seen.push_str(&line);
        line.clear();
    }
    assert!(seen.contains("\"event\""), "events were collected");
    assert!(
        seen.contains("ghostly"),
        "the answers were collected: {seen:.200}"
    );
    assert!(
        !seen.contains(SECRET),
        "the daemon's environment leaked: {seen}"
    );
    assert!(!seen.contains(FILE_SECRET), "an env file leaked: {seen}");
    let check = Command::new(bin("supervisord"))
        .arg("--check")
        .arg("--config")
        .arg(&d.config)
        .env("DAEMON_SECRET", SECRET)
        .output()
        .expect("run --check");
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(text.contains("FROM_FILE=visible-by-design"), "{text}");
    assert!(text.contains("TOKEN=****** (from an env file)"), "{text}");
    assert!(
        text.contains("FROM_VARS=****** (from an env file)"),
        "{text}"
    );
    assert!(!text.contains(SECRET), "{text}");
    assert!(!text.contains(FILE_SECRET), "{text}");
}

/// A socket folder that exists but is not writable for the daemon's user: one clear line
/// naming the socket, exit non-zero. Runs supervisord as `nobody` (needs root to drop).
#[test]
fn an_unwritable_socket_folder_is_a_clear_error_at_start() {
    use std::os::unix::fs::PermissionsExt;
    const TEST: &str = "hostile::an_unwritable_socket_folder_is_a_clear_error_at_start";
    if !is_root() {
        return skip(TEST, "needs root to run supervisord as nobody");
    }
    let supervisord = match copy_for_nobody("supervisord") {
        Ok(copy) => copy,
        Err(why) => return skip(TEST, &why),
    };
    let dir = tempfile::Builder::new()
        .prefix("svro")
        .tempdir()
        .expect("tempdir");
    let open = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(dir.path(), open.clone()).expect("chmod");
    let config = dir.path().join("jobs.toml");
    std::fs::write(&config, jobs(VICTIM)).expect("job file");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let folder = dir.path().join("ro");
    std::fs::create_dir(&folder).expect("mkdir");
    std::fs::set_permissions(&folder, open).expect("chmod");
    let socket = folder.join("sock");
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(&supervisord.path)
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(&socket)
        .output()
        .expect("run setpriv supervisord");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        err.contains(&socket.display().to_string())
            && (err.contains("ermission denied") || err.contains("owned by uid")),
        "{err}"
    );
    assert!(!socket.exists());
}

/// A running job holds its output pipes and nothing else: no log file (opened only to
/// write, a bounded number at once) and, past a budget of an eighth of the open-files
/// limit, no pidfd (its end is found on SIGCHLD). So 40 jobs with both streams captured
/// fit under a limit of 128 descriptors (at five a job they did not), their output still
/// lands in their files, and every one's end is still noticed.
#[test]
fn forty_captured_jobs_fit_under_128_descriptors_and_every_end_is_seen() {
    let mut body = String::new();
    for i in 0..40 {
        body += &format!(
            "\n[job.j{i}]\nautostart = false\ncommand = [\"sh\", \"-c\", \"echo started-{i}; echo err-{i} >&2; exec sleep 600\"]\n"
        );
    }
    let d = Daemon::start(&jobs(&body));
    // Lowered on the running daemon, before its first spawn sizes its budgets.
    let lowered = Command::new("prlimit")
        .arg("--pid")
        .arg(d.pid().to_string())
        .arg("--nofile=128:128")
        .status();
    match lowered {
        Ok(s) if s.success() => {}
        other => {
            skip(
                "forty_captured_jobs_fit_under_128_descriptors_and_every_end_is_seen",
                &format!("cannot lower the daemon's open-files limit with prlimit: {other:?}"),
            );
            return;
        }
    }
    let before = fd_count(d.pid());
    d.ctl_ok(&["start", "--all"]);
    for i in 0..40 {
        let name = format!("j{i}");
        let j = d.wait_job(&name, "running", |j| j.state.as_str() == "running");
        assert!(j.spawn_error.is_none(), "{j:?}");
    }
    for i in 0..40 {
        for (stream, want) in [("stdout", "started"), ("stderr", "err")] {
            let path = d.dir.path().join(format!("logs/j{i}.{stream}.log"));
            wait_until(&format!("j{i}'s {stream} in its file"), DEADLINE, || {
                std::fs::read_to_string(&path)
                    .ok()
                    .filter(|t| t.contains(&format!("{want}-{i}\n")))
                    .map(|_| ())
            });
        }
    }
    // Two pipes a job, at most 16 pidfds (128 / 8) and 16 open log files; waited for,
    // since the connections of the checks above may still be closing.
    wait_until("the descriptors of 40 running jobs", DEADLINE, || {
        let held = fd_count(d.pid()).saturating_sub(before);
        (held <= 40 * 2 + 16 + 16).then_some(())
    });
    let out = d.ctl(&["stop", "--all"]);
    assert!(out.status.success(), "{out:?}");
    for j in d.jobs() {
        assert_eq!(j.state.as_str(), "stopped", "{j:?}");
        assert!(j.output_error.is_none(), "{j:?}");
    }
    d.ok("ping", json!({}));
}
