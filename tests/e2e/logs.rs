//! Output capture (docs/jobfile.md, "Output"): byte-exact files, rotation, `logs -n`, `logs -f`, inherit
//! prefixes, timestamps, and the jobs whose output is not captured.

use crate::support::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn log_path(d: &Daemon, name: &str) -> PathBuf {
    d.dir.path().join("logs").join(format!("{name}.stdout.log"))
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    PathBuf::from(format!("{}.{n}", path.display()))
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a hash")
        .to_owned()
}

fn seq(from: u32, to: u32) -> String {
    (from..=to).map(|i| format!("{i}\n")).collect()
}

/// 20 MB of random bytes (every byte value, newlines anywhere) land in the log unchanged.
#[test]
fn large_binary_output_is_captured_byte_exact() {
    let d = Daemon::start(&jobs(
        r#"
[job.noise]
command = ["sh", "-c", "head -c 20000000 /dev/urandom | tee source.bin"]
log_max_bytes = 0
"#,
    ));
    let j = d.wait_job("noise", "exited", |j| j.state.as_str() == "exited");
    assert_eq!(j.exitcode, Some(0), "{j:?}");
    let source = d.dir.path().join("source.bin");
    let log = log_path(&d, "noise");
    let (a, b) = (
        std::fs::metadata(&source).expect("source").len(),
        std::fs::metadata(&log).expect("log").len(),
    );
    assert_eq!((a, b), (20_000_000, 20_000_000), "lengths");
    assert_eq!(sha256(&source), sha256(&log), "same bytes");
}

/// Output still in the pipe when the job exits is in the file by the time `exited` is
/// published — checked on several runs, each ending with a big last write.
#[test]
fn output_written_right_before_exit_is_in_the_log_when_exited_is_seen() {
    let d = Daemon::start(&jobs(
        r#"
[job.last]
command = ["sh", "-c", "seq 1 100000; printf 'last words'"]
autostart = false
log_max_bytes = 0
"#,
    ));
    let want_one = format!("{}last words", seq(1, 100_000));
    let mut events = d.conn();
    events.call("subscribe", Value::Null);
    for run in 1..=5 {
        d.ok("start", json!({ "names": ["last"] }));
        loop {
            let note = events.recv().expect("event stream open");
            if note["method"] == "event" && note["params"]["to"] == "exited" {
                break;
            }
        }
        // Read the file at the moment the event is seen: everything must be there.
        let text = std::fs::read_to_string(log_path(&d, "last")).expect("log");
        assert_eq!(text.len(), want_one.len() * run, "run {run}");
        assert!(text.ends_with(&want_one), "run {run}: tail is complete");
    }
}

/// A small `log_max_bytes`: every file holds whole lines and stays under the limit, the
/// newest lines are kept in order, `log_backups` is respected, and with enough backups
/// every byte is there.
#[test]
fn rotation_keeps_whole_lines_every_byte_and_the_backup_count() {
    let d = Daemon::start(&jobs(
        r#"
[job.few]
command = ["seq", "1", "20000"]
log_max_bytes = 10000
log_backups = 3

[job.many]
command = ["seq", "1", "20000"]
log_max_bytes = 10000
log_backups = 50
"#,
    ));
    for name in ["few", "many"] {
        d.wait_job(name, "exited", |j| j.state.as_str() == "exited");
    }
    let all = seq(1, 20_000);

    let read_set = |name: &str, backups: u32| -> (String, u32) {
        let base = log_path(&d, name);
        let mut kept = String::new();
        let mut files = 0;
        for n in (0..=backups + 1).rev() {
            let p = if n == 0 {
                base.clone()
            } else {
                rotated(&base, n)
            };
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            files += 1;
            assert!(n <= backups, "{} exists beyond log_backups", p.display());
            assert!(
                text.len() <= 10_000,
                "{}: {} bytes",
                p.display(),
                text.len()
            );
            assert!(text.ends_with('\n'), "{} ends mid-line", p.display());
            kept.push_str(&text);
        }
        (kept, files)
    };

    let (kept, files) = read_set("few", 3);
    assert_eq!(files, 4, "the current file and 3 backups");
    assert!(all.ends_with(&kept), "the newest lines, in order");
    let cut = all.len() - kept.len();
    assert_eq!(
        &all[cut - 1..cut],
        "\n",
        "kept files start at a line boundary"
    );

    let (kept, files) = read_set("many", 50);
    assert!(files > 10, "rotated {files} times");
    assert_eq!(kept, all, "every byte, across the files, in order");

    // `logs -n` reads across the rotated files.
    let out = d.ctl_ok(&["logs", "few", "-n", "3000"]);
    assert_eq!(out, seq(17_001, 20_000));
    let out = d.ctl_ok(&["logs", "many", "-n", "15000"]);
    assert_eq!(out, seq(5_001, 20_000));
}

/// A job printing numbered lines forever, rotating every ~2 KB.
const TICKER: &str = r#"
[job.tick]
command = ["sh", "-c", "echo old-line; i=0; while :; do echo tick-$i; i=$((i+1)); if [ $((i % 50)) = 0 ]; then sleep 0.02; fi; done"]
log_max_bytes = 2000
log_backups = 2
"#;

/// Feed `data` pieces into whole lines.
fn take_lines(buf: &mut String, data: &str) -> Vec<String> {
    buf.push_str(data);
    let mut out = Vec::new();
    while let Some(i) = buf.find('\n') {
        out.push(buf[..i].to_owned());
        buf.drain(..=i);
    }
    out
}

/// Tick numbers must follow each other with no gap and no repeat.
fn assert_contiguous(lines: &[String]) -> u64 {
    let ticks: Vec<u64> = lines
        .iter()
        .map(|l| {
            l.strip_prefix("tick-")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {l:?}"))
        })
        .collect();
    for w in ticks.windows(2) {
        assert_eq!(w[1], w[0] + 1, "lost or repeated output around {w:?}");
    }
    ticks[0]
}

/// `logs` with `follow` on a raw connection streams across several rotations without a
/// gap; with `lines: 0` it starts with new output only.
#[test]
fn follow_survives_rotation_and_n0_shows_only_new_output() {
    let d = Daemon::start(&jobs(TICKER));
    let log = log_path(&d, "tick");
    // Wait until some ticks are on disk, so "new" means something.
    wait_until("tick-5 in the log", DEADLINE, || {
        let text = std::fs::read_to_string(&log).ok()?;
        text.contains("tick-5\n").then_some(())
    });
    let mut c = d.conn();
    let r = c.call(
        "logs",
        json!({ "name": "tick", "stream": "stdout", "lines": 0, "follow": true }),
    );
    assert_eq!(r["result"]["lines"], json!([]), "{r}");
    let mut buf = String::new();
    let mut lines = Vec::new();
    let first_backup = rotated(&log, 1);
    let inode = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).map(|m| m.ino()).ok()
    };
    let start_inode = inode(&log);
    // Follow until the file has been replaced at least three times.
    let mut rotations = 0;
    let mut last_inode = start_inode;
    while rotations < 3 || lines.len() < 2000 {
        let note = c.recv().expect("follow stream open");
        assert_eq!(note["method"], "log", "{note}");
        assert_eq!(note["params"]["name"], "tick");
        lines.extend(take_lines(
            &mut buf,
            note["params"]["data"].as_str().expect("data"),
        ));
        let now = inode(&log);
        if now.is_some() && now != last_inode {
            rotations += 1;
            last_inode = now;
        }
    }
    assert!(first_backup.exists());
    let first = assert_contiguous(&lines);
    assert!(first > 5, "-n 0 showed old output: started at tick-{first}");
    assert!(!lines.iter().any(|l| l == "old-line"));
}

/// `supctl logs -f` as a child process: prints the last lines, then new output, across
/// rotations, with nothing lost or repeated.
#[test]
fn supctl_logs_follow_survives_rotation() {
    let d = Daemon::start(&jobs(TICKER));
    let log = log_path(&d, "tick");
    // The ticker is writing. (Waiting for one particular line would race with rotation:
    // at ~2 KB a file, that line can be rotated away between two looks.)
    wait_until("the ticker's first lines in the log", DEADLINE, || {
        let text = std::fs::read_to_string(&log).ok()?;
        text.contains("tick-").then_some(())
    });
    let (mut child, rx) = d.ctl_lines(&["logs", "tick", "-n", "5", "-f"]);
    // 6000 lines at ~2 KB per file is well over ten rotations.
    let mut lines = Vec::new();
    while lines.len() < 6000 {
        let line = rx
            .recv_timeout(DEADLINE)
            .expect("supctl logs -f kept printing");
        lines.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_contiguous(&lines);
    assert!(rotated(&log, 2).exists(), "the log rotated meanwhile");
}

/// A job whose output is not captured: `logs` says where its output goes instead.
#[test]
fn logs_of_uncaptured_output_say_where_it_goes() {
    let d = Daemon::start(&jobs(
        r#"
[job.inh]
command = ["sleep", "30"]
stdout = "inherit"

[job.nul]
command = ["sleep", "30"]
stdout = "null"

[job.fil]
command = ["sleep", "30"]
stdout = "out/fil.txt"
stderr = "null"
"#,
    ));
    for (name, stream, needle) in [
        ("inh", "stdout", "inherit"),
        ("nul", "stdout", "null"),
        ("fil", "stdout", "out/fil.txt"),
        ("fil", "stderr", "null"),
    ] {
        let mut args = vec!["logs", name];
        if stream == "stderr" {
            args.push("--stderr");
        }
        let out = d.ctl(&args);
        assert_eq!(out.status.code(), Some(1), "{name} {stream}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(needle) && err.contains(stream) && err.lines().count() == 1,
            "{name} {stream}: {err}"
        );
    }
    let out = d.ctl(&["logs", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ghost"));
}

/// An unwritable log folder: the job runs on, the reason is in the daemon's log and in
/// `status` (`output_error`), and `logs` says the file is not there.
#[test]
fn unwritable_log_folder_leaves_the_job_running_and_says_why() {
    let d = Daemon::prepare("");
    // A regular file where the folder should be: not creatable, even for root.
    std::fs::write(d.dir.path().join("blocker"), "").expect("blocker");
    std::fs::write(
        &d.config,
        jobs(
            r#"
[supervisor]
log_dir = "blocker/logs"

[job.chatty]
command = ["sh", "-c", "while :; do echo hi; sleep 0.05; done"]
"#,
        ),
    )
    .expect("job file");
    let d = d.launch(&[]);
    let j = d.wait_job("chatty", "an output_error", |j| j.output_error.is_some());
    assert!(j.alive, "{j:?}");
    let why = j.output_error.clone().expect("output_error");
    assert!(why.contains("blocker/logs/chatty.std"), "{why}");
    wait_until("the error in the daemon log", DEADLINE, || {
        d.stderr()
            .contains("blocker/logs/chatty.stdout.log")
            .then_some(())
    });
    // Still alive a while later: the discarded output does not block it.
    let pid = j.pid.expect("pid");
    d.wait_job("chatty", "running", |j| j.state.as_str() == "running");
    assert!(alive(pid));
    assert_eq!(d.job("chatty").pid, Some(pid));
    let out = d.ctl(&["logs", "chatty"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

/// `inherit` output of several jobs writing long lines at once: every line whole, each with
/// its job's prefix.
#[test]
fn inherit_lines_of_concurrent_jobs_never_interleave() {
    let writer = |c: char| {
        format!(
            r#"["awk", "BEGIN {{ s = \"{c}\"; while (length(s) < 20000) s = s s; s = substr(s, 1, 20000); for (i = 0; i < 300; i++) print s }}"]"#
        )
    };
    let d = Daemon::start(&jobs(&format!(
        r#"
[job.a]
command = {}
stdout = "inherit"

[job.b]
command = {}
stdout = "inherit"

[job.c]
command = {}
stdout = "inherit"
"#,
        writer('A'),
        writer('B'),
        writer('C')
    )));
    for n in ["a", "b", "c"] {
        let j = d.wait_job(n, "exited", |j| j.state.as_str() == "exited");
        assert_eq!(j.exitcode, Some(0), "{j:?}");
    }
    let out = d.stdout();
    let mut counts = std::collections::HashMap::new();
    for line in out.lines() {
        let Some((name, body)) = line.split_once(" | ") else {
            panic!("line without a prefix: {:.80}", line)
        };
        let c = name.to_uppercase();
        assert_eq!(body.len(), 20_000, "{name}: a cut or mixed line");
        assert!(body.chars().all(|ch| ch.to_string() == c), "{name}: mixed");
        *counts.entry(name.to_owned()).or_insert(0) += 1;
    }
    for n in ["a", "b", "c"] {
        assert_eq!(counts.get(n), Some(&300), "{n}: {counts:?}");
    }
}

/// `log_timestamps = true`: each captured line starts with its RFC 3339 UTC arrival time.
#[test]
fn log_timestamps_prefix_each_line() {
    let d = Daemon::start(&jobs(
        r#"
[job.ts]
command = ["sh", "-c", "echo one; echo two"]
log_timestamps = true
"#,
    ));
    d.wait_job("ts", "exited", |j| j.state.as_str() == "exited");
    let text = std::fs::read_to_string(log_path(&d, "ts")).expect("log");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for (line, word) in lines.iter().zip(["one", "two"]) {
        let (stamp, rest) = line.split_once(' ').expect("stamp");
        assert_eq!(rest, word);
        // 2026-01-02T03:04:05.678Z
        let b = stamp.as_bytes();
        assert!(
            stamp.len() == 24
                && b[4] == b'-'
                && b[10] == b'T'
                && b[19] == b'.'
                && b[23] == b'Z'
                && stamp[..4].parse::<u32>().is_ok(),
            "{stamp}"
        );
    }
}

/// A full disk (the log is `/dev/full`): the job runs on, the daemon says so once — not
/// once per chunk of a job that keeps writing — and `status` shows it as `output_error`.
#[test]
fn a_full_disk_is_reported_once_and_the_job_runs_on() {
    let d = Daemon::prepare(&jobs(
        r#"
[job.filler]
command = ["sh", "-c", "while :; do echo fill fill fill fill; done"]
log_max_bytes = 0
"#,
    ));
    let logs = d.dir.path().join("logs");
    std::fs::create_dir(&logs).expect("logs folder");
    std::os::unix::fs::symlink("/dev/full", logs.join("filler.stdout.log")).expect("symlink");
    let d = d.launch(&[]);
    let j = d.wait_job("filler", "running", |j| j.state.as_str() == "running");
    wait_until("the failure in the daemon log", DEADLINE, || {
        d.stderr().contains("No space left on device").then_some(())
    });
    // Many more chunks are written (and lost) meanwhile; still one report.
    let pid = j.pid.expect("pid");
    let cpu = |p: u32| {
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .ok()
            .and_then(|s| {
                let f: Vec<String> = s
                    .rsplit(')')
                    .next()?
                    .split_whitespace()
                    .map(String::from)
                    .collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
            .unwrap_or(0)
    };
    let start = cpu(pid);
    wait_until("the job to keep writing", DEADLINE, || {
        (cpu(pid) > start + 20).then_some(())
    });
    assert!(alive(pid));
    assert_eq!(d.job("filler").pid, Some(pid));
    let reports = d.stderr().matches("writing log failed").count();
    assert_eq!(reports, 1, "{}", d.stderr());
    // And `status` says why the output is missing.
    let why = d
        .wait_job("filler", "an output_error", |j| j.output_error.is_some())
        .output_error
        .expect("output_error");
    assert!(
        why.contains("filler.stdout.log") && why.contains("No space left on device"),
        "{why}"
    );
}

/// `log_backups = 0`: a full log is started afresh, and no `.1` (or any backup) is kept.
#[test]
fn log_backups_zero_keeps_no_backup() {
    let d = Daemon::start(&jobs(
        r#"
[job.none]
command = ["seq", "1", "20000"]
log_max_bytes = 10000
log_backups = 0
"#,
    ));
    d.wait_job("none", "exited", |j| j.state.as_str() == "exited");
    let base = log_path(&d, "none");
    // The exit is reported after the output is written, or after a grace period when
    // the writer is slow (a loaded machine): wait for the last line itself.
    wait_until("the last line in the log", DEADLINE, || {
        std::fs::read_to_string(&base)
            .ok()
            .filter(|t| t.ends_with("20000\n"))
    });
    let logs: Vec<String> = std::fs::read_dir(base.parent().expect("log dir"))
        .expect("log dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("none.stdout.log"))
        .collect();
    assert_eq!(logs, ["none.stdout.log"], "no backup beside the log");
    let text = std::fs::read_to_string(&base).expect("log");
    assert!(text.len() <= 10_000, "{} bytes", text.len());
    assert!(seq(1, 20_000).ends_with(&text), "the newest lines");
    assert!(text.ends_with("20000\n"));
}

/// `stdout = PATH`: the job appends to the file (not rotated); what was there before,
/// and each earlier run's output, stay.
#[test]
fn an_output_file_is_appended_to_across_runs() {
    let d = Daemon::prepare("");
    let file = d.dir.path().join("out.txt");
    std::fs::write(&file, "from before\n").expect("seed the file");
    std::fs::write(
        &d.config,
        jobs(
            r#"
[job.note]
command = ["sh", "-c", "echo run-x; echo err-line >&2; sleep 0.3"]
stdout = "./out.txt"
stderr = "./out.txt"
restart = "never"
"#,
        ),
    )
    .expect("job file");
    let d = d.launch(&[]);
    d.wait_job("note", "exited", |j| j.state.as_str() == "exited");
    d.ctl_ok(&["start", "note"]);
    d.wait_job("note", "exited again", |j| j.state.as_str() == "exited");
    let text = wait_until("the second run's lines", DEADLINE, || {
        let text = std::fs::read_to_string(&file).ok()?;
        (text.matches("run-x").count() >= 2 && text.matches("err-line").count() >= 2)
            .then_some(text)
    });
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"from before"), "{text:?}");
    lines.sort_unstable();
    assert_eq!(
        lines,
        ["err-line", "err-line", "from before", "run-x", "run-x"],
        "both runs, both streams, nothing overwritten: {text:?}"
    );
}

/// Once the file `go` exists: 5000 lines of 1000 bytes, each its own write about 1 ms
/// apart, so each is (about) one chunk. A follower that does not read falls past the
/// 1024-chunk backlog plus what the connection's queue (256), its socket (~200 of these)
/// and a pipe (64) hold — about 1500 chunks — even if a loaded machine reads two lines
/// at a time. Before that, one `00000 ready` line.
const FLOOD: &str = r#"
[job.flood]
command = ["perl", "-e", "$| = 1; print qq(00000 ready\n); select(undef, undef, undef, 0.01) until -e q(go); for my $i (1..5000) { printf qq(%05d %s\n), $i, q(x) x 993; select(undef, undef, undef, 0.001) }"]
restart = "never"
log_max_bytes = "16MiB"
"#;

/// A `logs` follower that does not read gets `lagged` with the job, the stream and a count
/// of skipped chunks, then the stream goes on to the end; the file has every line.
#[test]
fn a_follower_that_falls_behind_gets_lagged_then_the_rest() {
    let d = Daemon::start(&jobs(FLOOD));
    d.wait_job("flood", "running", |j| j.state.as_str() == "running");
    let mut slow = d.conn();
    let id = slow.send(
        "logs",
        json!({ "name": "flood", "lines": 0, "follow": true }),
    );
    let r = slow.response(id);
    assert!(r.get("error").is_none(), "{r}");
    std::fs::write(d.dir.path().join("go"), "").expect("go");
    d.wait_job("flood", "exited", |j| j.state.as_str() == "exited");
    let mut missed = 0;
    loop {
        let note = slow.recv().expect("the stream stays open");
        match note["method"].as_str() {
            Some("lagged") => {
                assert_eq!(
                    (&note["params"]["name"], &note["params"]["stream"]),
                    (&json!("flood"), &json!("stdout")),
                    "{note}"
                );
                missed += note["params"]["missed"].as_u64().expect("a count");
            }
            Some("log") => {
                let data = note["params"]["data"].as_str().unwrap_or_default();
                if data.contains("05000 ") {
                    break;
                }
            }
            _ => panic!("unexpected {note}"),
        }
    }
    assert!(missed > 0, "the follower was never told it fell behind");
    eprintln!("the follower missed {missed} chunks");
    let lines = std::fs::read_to_string(log_path(&d, "flood"))
        .expect("log")
        .lines()
        .count();
    assert_eq!(lines, 5001, "the file has every line (and `ready`)");
}

/// `supctl logs -f` whose output is not read falls behind; it then prints one line saying
/// so between the output it did get, and `--json` passes the notification through.
#[test]
fn supctl_logs_follow_says_where_it_skipped_output() {
    for json_out in [false, true] {
        let d = Daemon::start(&jobs(FLOOD));
        d.wait_job("flood", "running", |j| j.state.as_str() == "running");
        let mut args = vec!["logs", "-f", "-n", "1", "flood"];
        if json_out {
            args.insert(0, "--json");
        }
        let mut child = Command::new(bin("supctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(&args)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run supctl");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        // The tail (`00000 ready`) comes in the answer that starts the follow: once it is
        // printed supctl follows. Then nothing is read until the flood is over.
        let first = lines.next().expect("the tail").expect("a line");
        assert!(first.contains("00000 ready"), "{first}");
        std::fs::write(d.dir.path().join("go"), "").expect("go");
        d.wait_job("flood", "exited", |j| j.state.as_str() == "exited");
        // Now read, each line within the deadline (a missing end is a failure, not a hang).
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut skipped = 0;
        loop {
            let line = rx
                .recv_timeout(DEADLINE)
                .unwrap_or_else(|e| panic!("json {json_out}: no `05000` line ({e})"));
            if json_out {
                // Bare `{"name","stream","data"}` objects and `{"lagged":true,"missed":N}`.
                let v: Value = serde_json::from_str(&line).expect("JSON lines");
                if v["lagged"] == true {
                    assert!(v["missed"].as_u64() > Some(0), "{v}");
                    skipped += 1;
                } else if v["data"].as_str().is_some_and(|s| s.contains("05000 ")) {
                    assert_eq!(v["name"], "flood", "{v}");
                    break;
                }
            } else if line == "[supctl: skipped output the terminal could not keep up with]" {
                skipped += 1;
            } else if line.starts_with("05000 ") {
                break;
            } else {
                assert_eq!(line.len(), 999, "{line:?}");
            }
        }
        assert!(skipped > 0, "json {json_out}: no skip was shown");
        let _ = child.kill();
        let _ = child.wait();
    }
}
