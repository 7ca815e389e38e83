//! What a new user hits in the first hour: socket discovery from the job file supervisord
//! found, failed starts that exit 1, merged stderr, following several logs, Supervisor's
//! words, and the small things (levels, pipes, permissions, --json errors).

use crate::support::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// supctl run from `cwd` with no --socket, no $SUPERVISORD_SOCKET and an empty XDG config
/// folder: it has to find the socket the way supervisord found its job file.
fn bare_ctl(cwd: &Path, xdg: &Path, args: &[&str]) -> Output {
    Command::new(bin("supctl"))
        .args(args)
        .current_dir(cwd)
        .env_remove("SUPERVISORD_SOCKET")
        .env("XDG_CONFIG_HOME", xdg)
        .env("XDG_RUNTIME_DIR", xdg)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run supctl")
}

#[test]
fn supctl_finds_the_socket_of_a_daemon_started_from_dot_supervisord_toml() {
    let mut d = Daemon::prepare("");
    d.config = d.dir.path().join("supervisord.toml");
    d.socket = d.dir.path().join("run/here.sock");
    std::fs::write(
        &d.config,
        jobs("[supervisor]\nsocket = \"run/here.sock\"\n\n[job.web]\ncommand = [\"sleep\", \"30\"]\n"),
    )
    .expect("write");
    let d = d.launch(&[]);
    let xdg = tempfile::tempdir().expect("tempdir");
    let out = bare_ctl(d.dir.path(), xdg.path(), &["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("web"), "{}", text(&out));

    // The same through $XDG_CONFIG_HOME/supervisord/supervisord.toml, from elsewhere.
    let conf = xdg.path().join("supervisord");
    std::fs::create_dir_all(&conf).expect("mkdir");
    std::fs::write(
        conf.join("supervisord.toml"),
        format!(
            "[supervisor]\nsocket = {:?}\n",
            d.socket.display().to_string()
        ),
    )
    .expect("write");
    let out = bare_ctl(xdg.path(), xdg.path(), &["ping"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn an_unreachable_daemon_names_every_place_supctl_looked() {
    let empty = tempfile::tempdir().expect("tempdir");
    let out = bare_ctl(empty.path(), empty.path(), &["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let xdg_file = empty.path().join("supervisord/supervisord.toml");
    for place in [
        "$SUPERVISORD_SOCKET (not set)",
        "supervisord.toml (no such file)",
        &format!("{} (no such file)", xdg_file.display()),
        "/etc/supervisord.toml",
        "the default socket",
        &empty.path().join("supervisord.sock").display().to_string(),
    ] {
        assert!(err.contains(place), "{place:?} missing from: {err}");
    }
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn start_and_restart_exit_1_when_the_job_goes_fatal() {
    let d = Daemon::start(&jobs(
        "[job.ghost]\ncommand = [\"/no/such/program\"]\nautostart = false\n\n\
         [job.fine]\ncommand = [\"sleep\", \"30\"]\nautostart = false\n",
    ));
    let out = d.ctl(&["start", "ghost"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("fatal"), "{}", text(&out));
    assert!(
        text(&out).contains("did not start: ghost"),
        "{}",
        text(&out)
    );
    let out = d.ctl(&["--json", "restart", "ghost"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = d.ctl(&["start", "fine"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = d.ctl(&["restart", "fine"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_socket_of_another_user_says_permission_denied_and_whose_it_is() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run supctl as nobody against root's socket");
        return;
    }
    let d = Daemon::start(&jobs(""));
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod dir");
    let supctl = bin("supctl");
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(&supctl)
        .arg("--socket")
        .arg(&d.socket)
        .arg("ping")
        .output()
        .expect("run setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    if !err.contains("supctl:") {
        eprintln!("skipped: nobody cannot run {}: {err}", supctl.display());
        return;
    }
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("permission denied"), "{err}");
    assert!(err.contains("belongs to uid 0"), "{err}");
    assert!(!err.contains("is it running"), "{err}");
}

const INTERLEAVED: &str = "for i in 1 2 3; do echo out$i; echo err$i >&2; done";

#[test]
fn stderr_stdout_merges_both_streams_into_the_stdout_log_in_order() {
    let d = Daemon::start(&jobs(&format!(
        "[job.both]\ncommand = [\"sh\", \"-c\", \"{INTERLEAVED}\"]\nstderr = \"stdout\"\n\n\
         [job.file]\ncommand = [\"sh\", \"-c\", \"{INTERLEAVED}\"]\nstdout = \"./both.txt\"\nstderr = \"stdout\"\n"
    )));
    for name in ["both", "file"] {
        d.wait_job(name, "exited", |j| j.state.as_str() == "exited");
    }
    let want = "out1\nerr1\nout2\nerr2\nout3\nerr3\n";
    let logs = d.dir.path().join("logs");
    assert_eq!(
        std::fs::read_to_string(logs.join("both.stdout.log")).expect("stdout log"),
        want
    );
    assert!(!logs.join("both.stderr.log").exists());
    assert_eq!(
        std::fs::read_to_string(d.dir.path().join("both.txt")).expect("file"),
        want
    );
    assert!(
        !d.dir.path().join("stdout").exists(),
        "no file called stdout"
    );
    let out = d.ctl(&["logs", "both", "-n", "6"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
}

#[test]
fn a_bare_word_output_is_a_load_error_listing_the_keywords() {
    for (key, value) in [("stdout", "none"), ("stdout", "Log"), ("stdout", "stdout")] {
        let d = Daemon::prepare(&jobs(&format!(
            "[job.a]\ncommand = [\"true\"]\n{key} = {value:?}\n"
        )));
        let out = d.run_once();
        assert_eq!(out.status.code(), Some(2), "{value}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("jobs.toml:7:10:"), "{err}");
        if value != "stdout" {
            assert!(
                err.contains("\"log\", \"inherit\", \"null\", \"stdout\""),
                "{err}"
            );
        }
        assert!(!d.dir.path().join(value).exists());
    }
}

#[test]
fn followed_lines_carry_the_timestamps_the_file_has() {
    let d = Daemon::start(&jobs(
        "[job.ticker]\ncommand = [\"sh\", \"-c\", \"i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done\"]\nlog_timestamps = true\n",
    ));
    let (mut child, rx) = d.ctl_lines(&["logs", "ticker", "-f", "-n", "0"]);
    let lines: Vec<String> = (0..3)
        .map(|_| rx.recv_timeout(DEADLINE).expect("a followed line"))
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    let file = std::fs::read_to_string(d.dir.path().join("logs/ticker.stdout.log")).expect("log");
    for line in &lines {
        assert!(
            line.starts_with("20") && line.contains("Z tick "),
            "{line:?}"
        );
        assert!(
            file.lines().any(|l| l == line),
            "{line:?} is not a line of the file:\n{file}"
        );
    }
}

const CHATTY: &str = r#"
[job.alpha]
command = ["sh", "-c", "echo alpha-ready; while true; do echo alpha-out; echo alpha-err >&2; sleep 0.1; done"]
group = "pair"

[job.beta-long]
command = ["sh", "-c", "echo beta-ready; while true; do echo beta-out; sleep 0.1; done"]
group = "pair"

[job.gamma]
command = ["sh", "-c", "echo gamma-ready; sleep 30"]
"#;

#[test]
fn logs_all_follow_labels_every_line_with_its_job_and_marks_stderr() {
    let d = Daemon::start(&jobs(CHATTY));
    for name in ["alpha", "beta-long", "gamma"] {
        wait_until(&format!("{name}-ready in its log"), DEADLINE, || {
            let log = d.dir.path().join(format!("logs/{name}.stdout.log"));
            std::fs::read_to_string(log)
                .ok()?
                .contains("-ready")
                .then_some(())
        });
    }
    // Without -f: the last lines of each, labelled and aligned.
    let out = d.ctl_ok(&["logs", "gamma", "alpha", "-n", "1"]);
    assert!(out.contains("gamma | gamma-ready\n"), "{out}");
    assert!(
        out.lines()
            .all(|l| l.starts_with("gamma | ") || l.starts_with("alpha | ")),
        "{out}"
    );
    assert!(out.contains("alpha | [stderr] alpha-err\n"), "{out}");
    assert!(
        !out.contains('\x1b'),
        "no colour when not a terminal: {out:?}"
    );

    let (mut child, rx) = d.ctl_lines(&["logs", "--all", "-f", "-n", "0"]);
    let mut seen = std::collections::HashSet::new();
    wait_until("labelled lines of both chatty jobs", DEADLINE, || {
        while let Ok(line) = rx.try_recv() {
            seen.insert(line);
        }
        [
            "alpha     | alpha-out",
            "alpha     | [stderr] alpha-err",
            "beta-long | beta-out",
        ]
        .iter()
        .all(|want| seen.contains(*want))
        .then_some(())
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.iter()
            .all(|l| l.starts_with("alpha     | ") || l.starts_with("beta-long | ")),
        "{seen:?}"
    );

    // A group selects its jobs only.
    let out = d.ctl_ok(&["logs", "--group", "pair", "-n", "1"]);
    assert!(!out.contains("gamma"), "{out}");
    assert!(out.contains("beta-long | "), "{out}");
    // No jobs named at all is a usage error.
    assert_eq!(d.ctl(&["logs"]).status.code(), Some(2));
}

#[test]
fn logs_follow_json_prints_bare_name_stream_data_objects() {
    let d = Daemon::start(&jobs(CHATTY));
    for args in [
        &["--json", "logs", "alpha", "-f", "-n", "0"][..],
        &["--json", "logs", "alpha", "beta-long", "-f", "-n", "0"][..],
    ] {
        let (mut child, rx) = d.ctl_lines(args);
        let mut objects = Vec::new();
        while objects.len() < 4 {
            let line = rx.recv_timeout(DEADLINE).expect("a line");
            let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
            if v.get("lines").is_none() {
                objects.push(v);
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        for v in objects {
            let mut keys: Vec<&str> = v
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            keys.sort_unstable();
            assert_eq!(keys, ["data", "name", "stream"], "{args:?}: {v}");
        }
    }
}

fn check(text: &str) -> (Option<i32>, String) {
    let d = Daemon::prepare(text);
    let out = Command::new(bin("supervisord"))
        .arg("--check")
        .arg(&d.config)
        .output()
        .expect("run supervisord");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn supervisors_words_get_supctls() {
    for (theirs, ours) in [("tail", "logs"), ("update", "reload"), ("avail", "status")] {
        let out = Command::new(bin("supctl"))
            .args([theirs, "web"])
            .output()
            .expect("run supctl");
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("did you mean `supctl {ours}`?")),
            "{theirs}: {err}"
        );
    }
    let (code, err) = check("[program:web]\ncommand=/usr/bin/web\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("jobs.toml:1:1: this looks like a Supervisor file"),
        "{err}"
    );
    assert!(err.contains("run `supervisord import "), "{err}");

    let (code, err) = check("[job.a]\ncommand = [\"x\"]\nstop_timout = \"1s\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("jobs.toml:3:1: unknown field `stop_timout`: did you mean `stop_timeout`?"),
        "{err}"
    );

    let (code, err) = check("[job.a]\ncommand = [\"x\"]\nrestart = true\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "jobs.toml:3:11: restart = true: expected \"never\", \"on-failure\" or \"always\""
        ),
        "{err}"
    );
}

#[test]
fn status_shows_restarts_once_a_job_restarted_and_a_stop_is_no_failure() {
    let d = Daemon::start(&jobs(
        "[job.web]\ncommand = [\"sleep\", \"30\"]\n\n[job.db]\ncommand = [\"sleep\", \"30\"]\n",
    ));
    d.wait_job("web", "running", |j| j.state.as_str() == "running");
    let header = |out: &str| {
        out.lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        header(&d.ctl_ok(&["status"])),
        ["NAME", "GROUP", "STATE", "PID", "UPTIME/EXIT"]
    );
    d.ctl_ok(&["restart", "web"]);
    let out = d.ctl_ok(&["status"]);
    assert_eq!(
        header(&out),
        ["NAME", "GROUP", "STATE", "PID", "RESTARTS", "UPTIME/EXIT"],
        "{out}"
    );
    let web = out
        .lines()
        .find(|l| l.starts_with("web "))
        .expect("web row");
    assert_eq!(web.split_whitespace().nth(4), Some("1"), "{out}");

    let out = d.ctl_ok(&["terminate", "db"]);
    assert_eq!(
        out.trim(),
        "db: stopped by request, killed by SIGTERM (-15)"
    );
}

#[test]
fn a_slow_shutdown_names_the_job_it_waits_for_once() {
    let mut d = Daemon::start(
        "[job.stubborn]\ncommand = [\"sh\", \"-c\", \"trap '' TERM; while true; do sleep 0.1; done\"]\n\
         start_secs = \"100ms\"\nstop_timeout = \"30s\"\n\n\
         [job.quick]\ncommand = [\"sleep\", \"30\"]\nstart_secs = \"100ms\"\n",
    );
    d.wait_job("stubborn", "running", |j| j.state.as_str() == "running");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let line = wait_until("the hint in the daemon's log", DEADLINE, || {
        d.stderr()
            .lines()
            .find(|l| l.contains("^C again to kill now"))
            .map(str::to_owned)
    });
    // 30 s of stop_timeout less the second the shutdown ran quietly (more on a busy box).
    let secs: u32 = line
        .split("waiting up to ")
        .nth(1)
        .and_then(|r| r.split("s for stubborn;").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!((20..=29).contains(&secs), "{line}");
    assert!(!line.contains("quick"), "{line}");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait_exit(), 0);
    assert_eq!(d.stderr().matches("^C again to kill now").count(), 1);
}

/// Run a command with a stdout whose reader is already gone: every write is EPIPE.
fn into_closed_pipe(mut cmd: Command) -> Output {
    let (read, write) = nix::unistd::pipe().expect("pipe");
    drop(read);
    cmd.stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .expect("run")
}

#[test]
fn a_reader_that_goes_away_ends_every_printing_command_quietly() {
    let d = Daemon::start(&jobs(
        "[job.web]\ncommand = [\"sh\", \"-c\", \"echo hi; sleep 30\"]\n",
    ));
    let ini = d.dir.path().join("sv.conf");
    std::fs::write(&ini, "[program:web]\ncommand=/bin/true\n").expect("write");
    let supctl = |args: &[&str]| {
        let mut c = Command::new(bin("supctl"));
        c.arg("--socket").arg(&d.socket).args(args);
        c
    };
    let supervisord = |args: &[&std::ffi::OsStr]| {
        let mut c = Command::new(bin("supervisord"));
        c.args(args);
        c
    };
    let runs = [
        ("supctl man", supctl(&["man"])),
        ("supctl completions", supctl(&["completions", "bash"])),
        ("supctl status", supctl(&["status"])),
        ("supctl --json status", supctl(&["--json", "status"])),
        ("supctl logs", supctl(&["logs", "web"])),
        ("supctl logs --all", supctl(&["logs", "--all"])),
        ("supervisord man", supervisord(&["man".as_ref()])),
        (
            "supervisord --check",
            supervisord(&["--check".as_ref(), d.config.as_os_str()]),
        ),
        (
            "supervisord import",
            supervisord(&["import".as_ref(), ini.as_os_str()]),
        ),
    ];
    for (what, cmd) in runs {
        let out = into_closed_pipe(cmd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("Broken pipe") && !err.contains("panicked"),
            "{what}: {err}"
        );
        assert_eq!(out.status.code(), Some(0), "{what}: {err}");
    }
}

#[test]
fn man_dir_creates_a_missing_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (bin_name, page) in [
        ("supctl", "supctl-logs.1"),
        ("supervisord", "supervisord-import.1"),
    ] {
        let target = dir.path().join(format!("{bin_name}/share/man/man1"));
        let out = Command::new(bin(bin_name))
            .args(["man", "--dir"])
            .arg(&target)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(target.join(page).is_file(), "{}", target.display());
    }
}

#[test]
fn an_unknown_log_level_is_refused() {
    let d = Daemon::prepare(&jobs(""));
    let out = d
        .command(&["--log-level", "infoo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad --log-level \"infoo\""),
        "{}",
        text(&out)
    );
    assert!(!d.socket.exists());
}

#[test]
fn the_socket_warning_on_reload_compares_with_the_socket_in_use() {
    let body = "[job.web]\ncommand = [\"sleep\", \"30\"]\n";
    let d = Daemon::prepare("");
    std::fs::write(
        &d.config,
        jobs(&format!("[supervisor]\nsocket = \"sock\"\n\n{body}")),
    )
    .expect("write");
    let d = d.launch(&[]);
    let warnings = |socket: &str| {
        std::fs::write(
            &d.config,
            jobs(&format!("[supervisor]\nsocket = {socket:?}\n\n{body}")),
        )
        .expect("write");
        d.ok("reload", serde_json::Value::Null)["warnings"].clone()
    };
    let w = warnings("other.sock");
    assert!(
        w.to_string().contains("other.sock but supervisord serves"),
        "{w}"
    );
    // Back to the socket in use: nothing to warn about, whatever the previous file said.
    let w = warnings("sock");
    assert_eq!(w, serde_json::json!([]), "{w}");
}

#[test]
fn json_errors_are_one_json_object_on_stderr() {
    let d = Daemon::start(&jobs("[job.web]\ncommand = [\"sleep\", \"30\"]\n"));
    let error_of = |out: &Output| -> serde_json::Value {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        serde_json::from_str(&err).unwrap_or_else(|e| panic!("not JSON ({e}): {err}"))
    };
    let out = d.ctl(&["--json", "start", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    let e = error_of(&out);
    assert!(e["error"]["code"].is_i64(), "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nosuch"),
        "{e}"
    );
    assert_eq!(e["exit"], 1);

    let out = d.ctl(&["--json", "start"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(error_of(&out)["exit"], 2);

    let out = Command::new(bin("supctl"))
        .args(["--json", "--socket"])
        .arg(d.dir.path().join("nobody-here.sock"))
        .arg("status")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    let e = error_of(&out);
    assert!(e["error"]["code"].is_null(), "{e}");
    assert_eq!(e["exit"], 3);
}

#[test]
fn importing_a_file_that_is_not_supervisors_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, body, says) in [
        (
            "jobs.toml",
            "[job.a]\ncommand = [\"true\"]\n",
            "TOML job file",
        ),
        ("empty.conf", "", "empty"),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, body).expect("write");
        let out = Command::new(bin("supervisord"))
            .arg("import")
            .arg(&file)
            .output()
            .expect("run import");
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out));
        assert!(out.stdout.is_empty(), "{name}: no job file is written");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{name}:1: ")) && err.contains(says),
            "{err}"
        );
    }
}
