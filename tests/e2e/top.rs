//! `supctl top` in a real terminal: tmux runs it in a detached session of a fixed size,
//! the test types keys with `send-keys` and reads the screen with `capture-pane`.

use crate::support::{bin, jobs, wait_until, Daemon, DEADLINE};
use protocol::JobState;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// A private tmux server (its own socket in the test's folder) with one session running
/// a shell; killed on drop.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// `None` (the caller skips, saying why) when tmux is not installed.
    fn start(dir: &Path, width: u16, height: u16) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            crate::support::skip(
                "supctl top in tmux",
                "tmux is not installed (apt-get install tmux; .ci/run does)",
            );
            return None;
        }
        let t = Tmux {
            socket: dir.join("tmux.sock"),
        };
        let out = t.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            "sh",
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        Some(t)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("run tmux")
    }

    /// Type keys (tmux key names: "Enter", "Escape", "Down", or literal text).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top"];
        args.extend_from_slice(keys);
        let out = self.run(&args);
        assert!(out.status.success(), "tmux send-keys {keys:?}: {out:?}");
    }

    /// The screen, as text.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }

    /// A tmux format evaluated for the pane (`#{alternate_on}`, `#{cursor_flag}`).
    fn show(&self, format: &str) -> String {
        let out = self.run(&["display-message", "-p", "-t", "top", format]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Wait until the screen satisfies `pred`; the screen then.
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_until(what, DEADLINE, || {
                last = self.screen();
                pred(&last).then(|| last.clone())
            })
        }));
        found.unwrap_or_else(|_| panic!("timed out waiting for {what}; the screen:\n{last}"))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The state shown on the job's row (`NAME GROUP STATE ...`, maybe marked `>`).
fn state_on_screen(screen: &str, name: &str) -> Option<String> {
    screen.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w.first()?.trim_start_matches('>') == name).then(|| w.get(2).map(|s| (*s).to_owned()))?
    })
}

fn selected_on_screen(screen: &str) -> Option<String> {
    screen.lines().find_map(|l| {
        let name = l.trim_start().strip_prefix('>')?;
        name.split_whitespace().next().map(str::to_owned)
    })
}

const THREE: &str = r#"
[job.web]
command = ["sleep", "300"]
group = "front"

[job.api]
command = ["sleep", "300"]
group = "front"

[job.cache]
command = ["sleep", "300"]
group = "back"
"#;

/// The command typed into the shell: top, then its exit status once it ends.
fn top_command(d: &Daemon) -> String {
    format!(
        "'{}' --socket '{}' top; echo top-exit=$?",
        bin("supctl").display(),
        d.socket.display()
    )
}

#[test]
fn top_shows_jobs_follows_events_acts_on_keys_and_restores_the_terminal() {
    let d = Daemon::start(&jobs(THREE));
    for name in ["web", "api", "cache"] {
        d.wait_job(name, "running", |j| j.state == JobState::Running);
    }
    let Some(tmux) = Tmux::start(d.dir.path(), 100, 30) else {
        return;
    };
    tmux.keys(&[&top_command(&d), "Enter"]);
    // The rows come from the event stream's snapshot; the version in the header from
    // the first `ping`, which may land a moment later: wait for both.
    let screen = tmux.wait_for("the three jobs running in top, under the header", |s| {
        s.contains("supervisord 0.1.0")
            && ["web", "api", "cache"]
                .iter()
                .all(|n| state_on_screen(s, n).as_deref() == Some("running"))
    });
    assert!(screen.contains("3 jobs: 3 running"), "{screen}");
    assert_eq!(
        tmux.show("#{alternate_on}"),
        "1",
        "top uses the alternate screen"
    );

    // A job terminated from another shell changes state on screen.
    let asked = Instant::now();
    d.ctl_ok(&["terminate", "api"]);
    tmux.wait_for("api stopped on screen", |s| {
        state_on_screen(s, "api").as_deref() == Some("stopped")
    });
    let seen_after = asked.elapsed();
    eprintln!("api was shown stopped {seen_after:?} after the terminate request was sent");

    // `t` on the selected job terminates it: select cache (the third row) first.
    tmux.keys(&["j", "j"]);
    tmux.wait_for("cache selected", |s| {
        selected_on_screen(s).as_deref() == Some("cache")
    });
    tmux.keys(&["t"]);
    tmux.wait_for("cache stopped on screen", |s| {
        state_on_screen(s, "cache").as_deref() == Some("stopped")
    });
    assert_eq!(d.job("cache").state, JobState::Stopped);
    assert_eq!(
        d.job("web").state,
        JobState::Running,
        "only the selected job"
    );

    // `q` quits and leaves the terminal as it was.
    tmux.keys(&["q"]);
    tmux.wait_for("top to exit 0", |s| s.contains("top-exit=0"));
    assert_eq!(
        tmux.show("#{alternate_on}"),
        "0",
        "the alternate screen is left"
    );
    assert_eq!(tmux.show("#{cursor_flag}"), "1", "the cursor is visible");
    // The shell is back in cooked mode: a typed line runs as a command.
    tmux.keys(&["echo typed-$((40+2))", "Enter"]);
    tmux.wait_for("the shell to echo", |s| s.contains("typed-42"));
}

#[test]
fn top_says_so_and_restores_the_terminal_when_the_daemon_goes_away() {
    let mut d = Daemon::start(&jobs(THREE));
    d.wait_job("web", "running", |j| j.state == JobState::Running);
    let Some(tmux) = Tmux::start(d.dir.path(), 80, 24) else {
        return;
    };
    tmux.keys(&[&top_command(&d), "Enter"]);
    tmux.wait_for("web in top", |s| state_on_screen(s, "web").is_some());
    d.ctl_ok(&["shutdown"]);
    assert_eq!(d.wait_exit(), 0);
    let screen = tmux.wait_for("top to exit 1", |s| s.contains("top-exit=1"));
    assert!(
        screen.contains("supctl: supervisord went away"),
        "one line says why: {screen}"
    );
    assert_eq!(tmux.show("#{alternate_on}"), "0");
    assert_eq!(tmux.show("#{cursor_flag}"), "1");
}

#[test]
fn top_without_a_daemon_fails_like_any_command_and_without_a_terminal_is_refused() {
    let d = Daemon::prepare("");
    let out = d.ctl(&["top"]);
    assert_eq!(out.status.code(), Some(2), "not a terminal: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("top needs a terminal"));
    let Some(tmux) = Tmux::start(d.dir.path(), 80, 24) else {
        return;
    };
    tmux.keys(&[&top_command(&d), "Enter"]);
    let screen = tmux.wait_for("top to exit 3", |s| s.contains("top-exit=3"));
    assert!(screen.contains("cannot reach supervisord"), "{screen}");
    assert_eq!(tmux.show("#{alternate_on}"), "0");
}

#[test]
fn top_ended_by_sigterm_restores_the_terminal() {
    let d = Daemon::start(&jobs(THREE));
    let Some(tmux) = Tmux::start(d.dir.path(), 80, 24) else {
        return;
    };
    tmux.keys(&[&top_command(&d), "Enter"]);
    tmux.wait_for("web in top", |s| state_on_screen(s, "web").is_some());
    assert_eq!(tmux.show("#{alternate_on}"), "1");
    let needle = format!("{} top", d.socket.display());
    let pids = wait_until("supctl top's pid", DEADLINE, || {
        let p = crate::support::pids_with_arg(&needle);
        (!p.is_empty()).then_some(p)
    });
    for pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let screen = tmux.wait_for("top to exit 1", |s| s.contains("top-exit=1"));
    assert!(screen.contains("ended by SIGTERM"), "{screen}");
    assert_eq!(tmux.show("#{alternate_on}"), "0");
    assert_eq!(tmux.show("#{cursor_flag}"), "1");
}

/// The HEALTH column shown on the job's row (`NAME GROUP STATE HEALTH ...`).
fn health_on_screen(screen: &str, name: &str) -> Option<String> {
    screen.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w.first()?.trim_start_matches('>') == name).then(|| w.get(3).map(|s| (*s).to_owned()))?
    })
}

#[test]
fn top_shows_health_as_it_changes_and_the_log_pane_follows_stdout_and_stderr() {
    let d = Daemon::start(&jobs(
        r#"
[job.api]
command = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo out-$i; echo err-$i >&2; sleep 0.2; done"]
[job.api.health]
exec = ["test", "-e", "ok"]
interval = "200ms"
retries = 1
on_unhealthy = "none"

[job.plain]
command = ["sleep", "300"]
"#,
    ));
    d.wait_job("api", "unhealthy", |j| {
        j.health == Some(protocol::Health::Unhealthy)
    });
    let Some(tmux) = Tmux::start(d.dir.path(), 100, 30) else {
        return;
    };
    tmux.keys(&[&top_command(&d), "Enter"]);
    let screen = tmux.wait_for("api unhealthy in top", |s| {
        health_on_screen(s, "api").as_deref() == Some("unhealthy")
    });
    assert_eq!(
        health_on_screen(&screen, "plain").as_deref(),
        Some("-"),
        "{screen}"
    );
    // The change comes from the `health` notification, within the poll's second or not.
    std::fs::write(d.dir.path().join("ok"), "").expect("ok");
    tmux.wait_for("api healthy in top", |s| {
        health_on_screen(s, "api").as_deref() == Some("healthy")
    });
    // `l` on api (the first row): both streams, stderr marked.
    tmux.keys(&["l"]);
    let screen = tmux.wait_for("stdout and stderr lines in the log pane", |s| {
        s.lines().any(|l| l.starts_with("out-")) && s.lines().any(|l| l.starts_with("err│ err-"))
    });
    assert!(screen.contains("log: api"), "{screen}");
    tmux.keys(&["q"]);
    tmux.wait_for("top to exit 0", |s| s.contains("top-exit=0"));
}
