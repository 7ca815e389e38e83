//! supctl's own exit codes that need no daemon: usage errors (2) and an unreachable
//! socket (3, naming the path). Everything else is tested end to end in `tests/`.

use std::process::Command;

fn supctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_supctl"))
        .args(args)
        .env_remove("SUPERVISORD_SOCKET")
        .output()
        .expect("run supctl")
}

#[test]
fn unreachable_daemon_exits_3_and_names_the_socket() {
    let out = supctl(&["--socket", "/nonexistent/supervisord.sock", "status"]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/supervisord.sock"), "{stderr}");
}

#[test]
fn socket_comes_from_the_environment_then_the_job_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_supctl"))
        .args(["ping"])
        .env("SUPERVISORD_SOCKET", "/nonexistent/from-env.sock")
        .output()
        .expect("run supctl");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/from-env.sock"));

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("jobs.toml");
    std::fs::write(&file, "[supervisor]\nsocket = \"run/x.sock\"\n").expect("write");
    let out = supctl(&["--config", file.to_str().expect("utf-8"), "ping"]);
    assert_eq!(out.status.code(), Some(3));
    let want = dir.path().join("run/x.sock");
    assert!(String::from_utf8_lossy(&out.stderr).contains(want.to_str().expect("utf-8")));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["frobnicate"][..],
        &["start"][..],
        &["kill", "x"][..],
        &["terminate", "--signal", "SIGNOPE", "x"][..],
        &["wait", "--timeout", "soon"][..],
        &["add", "x"][..],
    ] {
        let out = supctl(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn completions_for_each_shell_name_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = supctl(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8_lossy(&out.stdout);
        for cmd in ["status", "terminate", "is-alive", "shutdown", "completions"] {
            assert!(script.contains(cmd), "{shell} completion lacks {cmd}");
        }
    }
    assert_eq!(supctl(&["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn bash_accepts_the_completion_script() {
    let Ok(out) = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source <({} completions bash) && complete -p supctl",
            env!("CARGO_BIN_EXE_supctl")
        ))
        .output()
    else {
        // Straight to the stream, so the skip shows even when output is captured.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIPPED bash_accepts_the_completion_script: no bash\n",
        );
        return;
    };
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("_supctl"));
}

#[test]
fn man_page_is_roff_with_every_command_and_the_exit_codes() {
    let out = supctl(&["man"]);
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH supctl 1"), "{page}");
    for cmd in [
        "is\\-alive",
        "terminate",
        "shutdown",
        "SUPERVISORD_SOCKET",
        "NO_COLOR",
    ] {
        assert!(page.contains(cmd), "man page lacks {cmd}");
    }
    assert!(
        page.contains("could not be reached"),
        "exit code 3 is documented"
    );
}

#[test]
fn man_dir_writes_a_page_per_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = supctl(&["man", "--dir", dir.path().to_str().expect("utf-8")]);
    assert!(out.status.success(), "{out:?}");
    for page in [
        "supctl.1",
        "supctl-status.1",
        "supctl-is-alive.1",
        "supctl-completions.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).expect(page);
        assert!(text.starts_with(".ie"), "{page} is roff");
    }
    // A missing folder is created (like `install -d`); one that cannot be is named.
    let missing = dir.path().join("share/man/man1");
    let out = supctl(&["man", "--dir", missing.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{out:?}");
    assert!(missing.join("supctl.1").is_file());
    let blocked = dir.path().join("supctl.1/man1");
    let out = supctl(&["man", "--dir", blocked.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&blocked.display().to_string()),
        "{out:?}"
    );
}
