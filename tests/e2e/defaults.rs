//! What both binaries find without being told: the default socket
//! (`$XDG_RUNTIME_DIR/supervisord.sock`, else `/tmp/supervisord-UID/supervisord.sock`) and
//! the job file (`./supervisord.toml`, then `$XDG_CONFIG_HOME/supervisord/supervisord.toml`
//! — `$HOME/.config/...` without it — then `/etc/supervisord.toml`).

use crate::support::*;
use std::path::Path;
use std::process::{Command, Output};

fn job_file(name: &str) -> String {
    format!("[job.{name}]\ncommand = [\"sleep\", \"30\"]\n")
}

fn put(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    std::fs::write(path, text).expect("write job file");
}

/// `supervisord --check` with no `--config` or `--socket`, in `cwd`, with exactly the
/// environment given (no inherited XDG or HOME).
fn check(cwd: &Path, env: &[(&str, &Path)]) -> Output {
    Command::new(bin("supervisord"))
        .arg("--check")
        .current_dir(cwd)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("HOME")
        .envs(env.iter().copied())
        .output()
        .expect("run supervisord --check")
}

/// The job file `--check` read (its first line: `PATH: ok, N jobs`) and its socket.
fn found(out: &Output) -> (String, String) {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = text
        .lines()
        .next()
        .and_then(|l| l.split(": ok").next())
        .unwrap_or_default()
        .to_owned();
    let socket = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("socket"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    (file, socket)
}

#[test]
fn the_job_file_is_found_in_the_working_folder_then_xdg_config_home_then_home() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cwd = dir.path().join("cwd");
    let xdg = dir.path().join("xdg");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&cwd).expect("mkdir");
    put(&xdg.join("supervisord/supervisord.toml"), &job_file("x"));
    put(
        &home.join(".config/supervisord/supervisord.toml"),
        &job_file("h"),
    );
    let here = cwd.join("supervisord.toml");
    put(&here, &job_file("c"));

    let env = [("XDG_CONFIG_HOME", xdg.as_path()), ("HOME", home.as_path())];
    assert_eq!(found(&check(&cwd, &env)).0, here.display().to_string());
    std::fs::remove_file(&here).expect("rm");
    assert_eq!(
        found(&check(&cwd, &env)).0,
        xdg.join("supervisord/supervisord.toml")
            .display()
            .to_string()
    );
    // Without XDG_CONFIG_HOME, its default: $HOME/.config.
    assert_eq!(
        found(&check(&cwd, &[("HOME", home.as_path())])).0,
        home.join(".config/supervisord/supervisord.toml")
            .display()
            .to_string()
    );
}

/// The `/etc` leg, in a private mount namespace whose `/etc` is an empty tmpfs: the real
/// `/etc/supervisord.toml` is neither read nor written.
#[test]
fn the_job_file_falls_back_to_etc_and_none_found_is_a_clear_error() {
    if !is_root() {
        return skip("defaults::etc", "needs root for a private mount namespace");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cwd = dir.path().join("cwd");
    let xdg = dir.path().join("xdg");
    std::fs::create_dir_all(&cwd).expect("mkdir");
    std::fs::create_dir_all(&xdg).expect("mkdir");
    let etc_file = dir.path().join("etc.toml");
    put(&etc_file, &job_file("e"));
    let in_namespace = |with_etc_file: bool| {
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(concat!(
                "mount -t tmpfs none /etc || exit 99; ",
                r#"if [ "$1" = yes ]; then cp "$2" /etc/supervisord.toml || exit 99; fi; "#,
                r#"exec "$3" --check"#
            ))
            .args(["sh", if with_etc_file { "yes" } else { "no" }])
            .arg(&etc_file)
            .arg(bin("supervisord"))
            .current_dir(&cwd)
            .env_remove("HOME")
            .env_remove("XDG_RUNTIME_DIR")
            .env("XDG_CONFIG_HOME", &xdg)
            .output()
            .expect("run unshare")
    };
    let out = in_namespace(true);
    if out.status.code() == Some(99) {
        return skip(
            "defaults::etc",
            &format!(
                "cannot mount a private /etc here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        );
    }
    assert_eq!(found(&out).0, "/etc/supervisord.toml");
    // $XDG_CONFIG_HOME comes before /etc.
    let in_xdg = xdg.join("supervisord/supervisord.toml");
    put(&in_xdg, &job_file("x"));
    assert_eq!(found(&in_namespace(true)).0, in_xdg.display().to_string());
    std::fs::remove_file(&in_xdg).expect("rm");

    let out = in_namespace(false);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    for place in [
        "./supervisord.toml",
        "$XDG_CONFIG_HOME/supervisord/supervisord.toml",
        "/etc/supervisord.toml",
    ] {
        assert!(err.contains(place), "{err}");
    }
}

/// `supervisord --check --config FILE` with no `--socket`: the socket it would use.
fn default_socket_of_the_daemon(config: &Path, runtime: Option<&Path>) -> String {
    let mut cmd = Command::new(bin("supervisord"));
    cmd.arg("--check").arg("--config").arg(config);
    match runtime {
        Some(r) => cmd.env("XDG_RUNTIME_DIR", r),
        None => cmd.env_remove("XDG_RUNTIME_DIR"),
    };
    found(&cmd.output().expect("run supervisord --check")).1
}

/// Kills a daemon a test started by hand if the test ends early.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Both binaries default to `$XDG_RUNTIME_DIR/supervisord.sock`: a daemon started with no
/// `--socket` is reached by a supctl given no `--socket`.
#[test]
fn both_binaries_default_to_the_same_socket_under_xdg_runtime_dir() {
    let d = Daemon::prepare(&jobs(""));
    let runtime = d.dir.path().join("run");
    std::fs::create_dir(&runtime).expect("mkdir");
    let expected = runtime.join("supervisord.sock");
    assert_eq!(
        default_socket_of_the_daemon(&d.config, Some(&runtime)),
        expected.display().to_string()
    );
    let mut daemon = Reap(
        Command::new(bin("supervisord"))
            .arg("--config")
            .arg(&d.config)
            .env("XDG_RUNTIME_DIR", &runtime)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn supervisord"),
    );
    let ctl = |args: &[&str]| {
        Command::new(bin("supctl"))
            .args(args)
            .env_remove("SUPERVISORD_SOCKET")
            .env("XDG_RUNTIME_DIR", &runtime)
            .output()
            .expect("run supctl")
    };
    let pinged = wait_until("supctl to reach the default socket", DEADLINE, || {
        let out = ctl(&["--json", "ping"]);
        out.status.success().then_some(out)
    });
    let v: serde_json::Value = serde_json::from_slice(&pinged.stdout).expect("ping JSON");
    assert_eq!(v["pid"], daemon.0.id());
    assert!(expected.exists(), "{} is the socket", expected.display());
    assert!(ctl(&["shutdown"]).status.success());
    let status = wait_until("supervisord to exit", DEADLINE, || {
        daemon.0.try_wait().ok().flatten()
    });
    assert!(status.success());
}

/// Without `$XDG_RUNTIME_DIR` both use `/tmp/supervisord-UID/supervisord.sock`. Run in a
/// private mount namespace with its own empty `/tmp`, so a daemon already listening there
/// is neither disturbed nor mistaken for this one.
#[test]
fn without_xdg_runtime_dir_both_binaries_use_tmp_supervisord_uid() {
    let d = Daemon::prepare(&jobs(""));
    let expected = format!(
        "/tmp/supervisord-{}/supervisord.sock",
        nix::unistd::geteuid()
    );
    assert_eq!(default_socket_of_the_daemon(&d.config, None), expected);
    if !is_root() {
        return skip(
            "defaults::tmp_socket",
            "needs root for a private mount namespace (the daemon's half was checked)",
        );
    }
    // The job file moves to the private /tmp; the daemon's pid is printed by `ping`.
    let script = r#"
        jobs="$(cat "$1")"
        mount -t tmpfs none /tmp || exit 99
        printf '%s\n' "$jobs" > /tmp/jobs.toml
        "$2" --config /tmp/jobs.toml </dev/null >/dev/null 2>&1 &
        daemon=$!
        trap 'kill -9 $daemon 2>/dev/null' EXIT
        i=0
        until "$3" --json ping; do
            i=$((i + 1)); [ $i -lt 200 ] || exit 98
            sleep 0.1
        done
        echo "daemon $daemon"
        ls "$4"
        "$3" shutdown >/dev/null && wait $daemon
    "#;
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(&d.config)
        .arg(bin("supervisord"))
        .arg(bin("supctl"))
        .arg(&expected)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("SUPERVISORD_SOCKET")
        .output()
        .expect("run unshare");
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(99) {
        return skip(
            "defaults::tmp_socket",
            &format!("cannot mount a private /tmp here: {}", err.trim()),
        );
    }
    assert!(out.status.success(), "{text}{err}");
    let mut lines = text.lines();
    let ping: serde_json::Value =
        serde_json::from_str(lines.next().unwrap_or_default()).expect("ping JSON");
    assert_eq!(
        Some(format!("daemon {}", ping["pid"])).as_deref(),
        lines.next(),
        "{text}"
    );
    assert_eq!(lines.next(), Some(expected.as_str()), "{text}");
}
