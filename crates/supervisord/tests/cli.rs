//! The command line of supervisord itself: `--check`, bad job files, usage errors.
//! (The daemon's behaviour is tested end to end in the workspace's `tests/` package.)

use std::process::Command;

fn supervisord(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_supervisord"))
        .args(args)
        .output()
        .expect("run supervisord")
}

fn example(name: &str) -> String {
    format!("{}/../../config/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn check_prints_the_resolved_jobs_of_every_example() {
    for (file, jobs) in [
        ("uploads.toml", 4),
        ("backups.toml", 4),
        ("downloads.toml", 3),
    ] {
        let out = supervisord(&["--config", &example(file), "--check"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(&format!("ok, {jobs} jobs")), "{stdout}");
        assert_eq!(stdout.matches("[job.").count(), jobs, "{stdout}");
    }
}

#[test]
fn check_resolves_defaults_and_paths() {
    let out = supervisord(&["--config", &example("backups.toml"), "--check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("daemon          true"), "{stdout}");
    assert!(stdout.contains("group           helpers"), "{stdout}");
    assert!(stdout.contains("config/run/backups.sock"), "{stdout}");
}

#[test]
fn a_bad_job_file_is_one_line_with_file_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[job.a]\ncommand = [\"true\"]\nstop_timeout = \"soon\"\n",
    )
    .expect("write");
    let out = supervisord(&["--config", file.to_str().expect("utf-8"), "--check"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3:16: bad duration", file.display())),
        "{stderr}"
    );
}

#[test]
fn a_missing_job_file_is_named() {
    let out = supervisord(&["--config", "/nonexistent/jobs.toml", "--check"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/jobs.toml"), "{stderr}");
}

#[test]
fn unknown_flags_are_usage_errors() {
    let out = supervisord(&["--frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_takes_the_file_as_its_value() {
    let out = supervisord(&["--check", &example("downloads.toml")]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("downloads.toml: ok"));
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let out = supervisord(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8_lossy(&out.stdout);
        for word in ["log-format", "import", "check"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let out = supervisord(&["man"]);
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH supervisord 1"), "{page}");
    for word in ["import", "NOTIFY_SOCKET", "JOURNAL_STREAM", "RUST_LOG"] {
        assert!(page.contains(word), "man page lacks {word}");
    }
}
