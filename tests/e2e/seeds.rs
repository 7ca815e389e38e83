//! The three seed programs, re-enacted with the example job files in `config/`.

use crate::support::*;
use serde_json::json;

/// spawn.py: four uploaders start in parallel and `wait --group uploads` joins them.
#[test]
fn spawn_four_uploaders_in_parallel_and_join_them() {
    let d = Daemon::example("uploads.toml", &[], &[("UPLOAD_SECONDS", "1")]);
    let out = d.ctl(&["wait", "--group", "uploads"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("exited, exit 0 (success)").count(),
        4,
        "{text}"
    );

    let jobs = d.jobs();
    assert_eq!(jobs.len(), 4);
    // In parallel: every upload started before any of them ended.
    let first_end = jobs
        .iter()
        .filter_map(|j| j.ended_at.clone())
        .min()
        .expect("ended");
    let last_start = jobs
        .iter()
        .filter_map(|j| j.started_at.clone())
        .max()
        .expect("started");
    assert!(
        last_start < first_end,
        "not parallel: last start {last_start}, first end {first_end}"
    );
    for j in &jobs {
        assert_eq!(
            (j.exitcode, j.success, j.alive),
            (Some(0), Some(true), false),
            "{j:?}"
        );
        assert_eq!(j.group, "uploads");
    }
    // `inherit` output reached supervisord's stdout with the name prefix.
    let stdout = d.stdout();
    for n in 1..=4 {
        assert!(
            stdout.contains(&format!("upload-{n} | uploaded ")),
            "{stdout}"
        );
    }
}

/// spawn.py in batch mode: supervisord is the main program and exits 0 once all joined.
#[test]
fn uploads_in_batch_mode_exit_0_with_a_line_per_job() {
    let mut d = Daemon::prepare("");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    std::fs::copy(root.join("uploads.toml"), &d.config).expect("copy");
    std::fs::create_dir(d.dir.path().join("workers")).expect("mkdir");
    std::fs::copy(
        root.join("workers/upload.sh"),
        d.dir.path().join("workers/upload.sh"),
    )
    .expect("copy");
    d.env = vec![("UPLOAD_SECONDS".into(), "0".into())];
    let status = d.command(&["--exit-when-done"]).status().expect("run");
    assert_eq!(status.code(), Some(0), "{}", d.stderr());
    let out = d.stdout();
    for n in 1..=4 {
        assert!(
            out.contains(&format!("upload-{n}: exited, exit 0 (success)")),
            "{out}"
        );
    }
    assert!(out.contains("supervisord: all 4 jobs succeeded"), "{out}");
    assert!(!d.socket.exists(), "the socket is removed at exit");
}

/// parallel_backups.py: named workers run; the daemon helper is not waited for and is
/// terminated when the run ends.
#[test]
fn backups_do_not_wait_for_the_daemon_helper() {
    let d = Daemon::example("backups.toml", &[], &[("BACKUP_STEP_SECONDS", "0.1")]);
    let out = d.ctl(&["wait", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("progress-reporter"),
        "daemon jobs are not waited for: {text}"
    );
    for name in ["backup-database", "backup-photos", "backup-mail"] {
        let j = d.job(name);
        assert_eq!((j.state.as_str(), j.exitcode), ("exited", Some(0)), "{j:?}");
    }
    let helper = d.job("progress-reporter");
    assert!(helper.daemon && helper.alive, "{helper:?}");
    // Named explicitly, a daemon job is waited for: it never ends, so this times out.
    let r = d.rpc(
        "wait",
        json!({"names": ["progress-reporter"], "timeout_ms": 100}),
    );
    assert_eq!(r["error"]["code"], 1002, "{r}");
}

#[test]
fn backups_batch_mode_terminates_the_daemon_helper_and_exits_0() {
    let mut d = Daemon::prepare("");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    std::fs::copy(root.join("backups.toml"), &d.config).expect("copy");
    std::fs::create_dir(d.dir.path().join("workers")).expect("mkdir");
    for w in ["backup.sh", "progress.sh"] {
        std::fs::copy(
            root.join("workers").join(w),
            d.dir.path().join("workers").join(w),
        )
        .expect("copy");
    }
    d.env = vec![("BACKUP_STEP_SECONDS".into(), "0.1".into())];
    let status = d.command(&["--exit-when-done"]).status().expect("run");
    assert_eq!(status.code(), Some(0), "{}", d.stderr());
    let out = d.stdout();
    let done = out.find("supervisord: all 3 jobs succeeded").expect(&out);
    let helper = out
        .find("progress-reporter [daemon]: stopped, killed by SIGTERM (-15)")
        .expect(&out);
    assert!(
        helper > done,
        "the helper is terminated after the workers finished:\n{out}"
    );
    assert!(pids_with_arg(&d.dir.path().display().to_string()).is_empty());
}

/// killingque.py: terminate File2 mid-way; it ends with -15, the others with 0.
#[test]
fn terminate_file2_mid_download_gives_minus_15() {
    let d = Daemon::example("downloads.toml", &[], &[("DOWNLOAD_CHUNK_SECONDS", "0.2")]);
    let f2 = d.wait_job("File2", "alive", |j| j.alive);
    assert_eq!(d.ctl(&["is-alive", "File2"]).status.code(), Some(0));
    let out = d.ctl_ok(&["terminate", "File2"]);
    assert_eq!(
        out.trim(),
        "File2: stopped by request, killed by SIGTERM (-15)"
    );
    let j = d.job("File2");
    assert_eq!(j.state.as_str(), "stopped");
    assert_eq!(
        (j.exitcode, j.signal.as_deref(), j.alive),
        (Some(-15), Some("SIGTERM"), false)
    );
    assert!(!alive(f2.pid.expect("pid")), "the process is gone");
    let out = d.ctl(&["is-alive", "File2"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "stopped");

    // The others finish on their own with 0; waiting for all fails because of File2.
    let out = d.ctl(&["wait", "File1", "File3"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = d.ctl(&["wait", "--all"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    for name in ["File1", "File3"] {
        assert_eq!(d.job(name).exitcode, Some(0));
    }
    let log = d.ctl_ok(&["logs", "File1", "-n", "1"]);
    assert_eq!(log.trim(), "File1: download complete");
}
