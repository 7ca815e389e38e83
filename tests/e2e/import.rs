//! `supervisord import`: a Supervisor INI file becomes a job file that `--check` accepts,
//! and one that runs.

use crate::support::{bin, Daemon};
use std::path::Path;
use std::process::Command;

fn sample(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/import")
        .join(name)
}

#[test]
fn imported_sample_passes_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (file, jobs) in [("supervisord.conf", 4), ("conf.d-queue.conf", 3)] {
        let out = Command::new(bin("supervisord"))
            .arg("import")
            .arg(sample(file))
            .env("APP_ROOT", "/var/www/shop")
            .output()
            .expect("run import");
        assert!(out.status.success(), "{file}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if file == "supervisord.conf" {
            assert!(!stderr.contains("user = www-data"), "{stderr}");
            let toml = String::from_utf8_lossy(&out.stdout);
            assert!(toml.contains("user = \"www-data\""), "{toml}");
        }
        let toml = dir.path().join(format!("{file}.toml"));
        std::fs::write(&toml, &out.stdout).expect("write job file");
        // %(ENV_APP_ROOT)s became ${APP_ROOT}: supervisord needs it when it loads the file.
        let check = Command::new(bin("supervisord"))
            .arg("--check")
            .arg(&toml)
            .env("APP_ROOT", "/var/www/shop")
            .output()
            .expect("run --check");
        let text = String::from_utf8_lossy(&check.stdout);
        assert!(check.status.success(), "{file}: {check:?}");
        assert!(text.contains(&format!("ok, {jobs} jobs")), "{text}");
    }
}

#[test]
fn imported_programs_run_under_supervisord() {
    let d = Daemon::prepare("");
    let ini = d.dir.path().join("supervisord.conf");
    std::fs::write(
        &ini,
        "[program:tick]\ncommand=sh -c 'echo tick %(process_num)s; exec sleep 60'\nnumprocs=2\nstartsecs=0\nstopsignal=TERM\n",
    )
    .expect("write ini");
    let out = Command::new(bin("supervisord"))
        .arg("import")
        .arg(&ini)
        .output()
        .expect("run import");
    assert!(out.status.success(), "{out:?}");
    std::fs::write(&d.config, &out.stdout).expect("write job file");
    let d = d.launch(&[]);
    for (name, line) in [("tick_00", "tick 0"), ("tick_01", "tick 1")] {
        d.wait_job(name, "running", |j| j.state == protocol::JobState::Running);
        crate::support::wait_until("its output", crate::support::DEADLINE, || {
            d.ctl_ok(&["logs", name]).contains(line).then_some(())
        });
    }
    assert_eq!(d.job("tick_01").group, "tick");
}

#[test]
fn import_of_a_missing_file_exits_2() {
    let out = Command::new(bin("supervisord"))
        .args(["import", "/nonexistent/supervisord.conf"])
        .output()
        .expect("run import");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/supervisord.conf"), "{stderr}");
}

/// A Procfile with a `.env` beside it imports to a job file that runs like foreman: each
/// line a job, the `.env` read, `PORT` given, output on supervisord's stdout as `name | `.
#[test]
fn a_procfile_imports_and_runs_like_foreman() {
    let d = Daemon::prepare("");
    let procfile = d.dir.path().join("Procfile");
    std::fs::write(
        &procfile,
        "# the app\nweb: echo \"web on $PORT says ${GREETING}\"; exec sleep 60\n\
         worker: echo \"worker on $PORT\"; exec sleep 60\n",
    )
    .expect("write Procfile");
    std::fs::write(d.dir.path().join(".env"), "GREETING=hello from .env\n").expect(".env");
    let out = Command::new(bin("supervisord"))
        .arg("import")
        .arg(&procfile)
        .output()
        .expect("run import");
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = String::from_utf8_lossy(&out.stdout);
    assert!(toml.contains("env_file = \".env\""), "{toml}");
    std::fs::write(&d.config, toml.as_bytes()).expect("write job file");
    let d = d.launch(&[]);
    for line in [
        "web | web on 5000 says hello from .env",
        "worker | worker on 5100",
    ] {
        crate::support::wait_until(line, crate::support::DEADLINE, || {
            d.stdout().contains(line).then_some(())
        });
    }
}
