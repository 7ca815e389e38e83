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

// ---- the import corpus ---------------------------------------------------------------------

/// The Supervisor files of tests/fixtures/import: the shapes real projects use.
fn corpus() -> Vec<std::path::PathBuf> {
    let dir = crate::support::workspace_root().join("tests/fixtures/import");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("read tests/fixtures/import")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    files.sort();
    files
}

/// The `%(ENV_X)s` names the corpus reads, as a container would set them.
const CORPUS_ENV: [(&str, &str); 4] = [
    ("WORKER_COUNT", "3"),
    ("SCREEN_WIDTH", "1280"),
    ("SCREEN_HEIGHT", "800"),
    ("API_PORT", "8080"),
];

#[test]
fn every_corpus_file_imports_passes_check_and_names_what_it_cannot_map() {
    let files = corpus();
    assert!(files.len() >= 20, "the corpus has {} files", files.len());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut jobs_total = 0;
    for file in &files {
        let out = Command::new(bin("supervisord"))
            .arg("import")
            .arg(file)
            .envs(CORPUS_ENV)
            .output()
            .expect("run import");
        let shown = file.display().to_string();
        assert_eq!(out.status.code(), Some(0), "{shown}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in stderr.lines() {
            // Every note names the file; a key it could not map, the line too.
            let rest = line
                .strip_prefix(&format!("{shown}:"))
                .unwrap_or_else(|| panic!("{shown}: a note without the file: {line}"));
            if line.contains("not mapped") {
                let number = rest.split(':').next().unwrap_or("");
                assert!(
                    !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()),
                    "{shown}: a key not mapped without its line: {line}"
                );
            }
        }
        let toml = dir.path().join(format!(
            "{}.toml",
            file.file_stem().and_then(|s| s.to_str()).unwrap_or("x")
        ));
        std::fs::write(&toml, &out.stdout).expect("write job file");
        let check = Command::new(bin("supervisord"))
            .arg("--check")
            .arg(&toml)
            .envs(CORPUS_ENV)
            .output()
            .expect("run --check");
        let text = String::from_utf8_lossy(&check.stdout);
        let uses_user = String::from_utf8_lossy(&out.stdout).contains("\nuser = ");
        if uses_user && !crate::support::is_root() {
            crate::support::skip(
                "every_corpus_file_imports_passes_check",
                &format!("{shown} sets `user`, which --check accepts only as root"),
            );
            continue;
        }
        assert!(check.status.success(), "{shown}: {check:?}");
        let jobs: usize = text
            .split("ok, ")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{shown}: {text}"));
        jobs_total += jobs;
    }
    // numprocs (from the environment too) and every program: a job lost fails here.
    if crate::support::is_root() {
        assert_eq!(jobs_total, 46, "jobs from the corpus");
    }
}

/// Python Supervisor's own parser reads each corpus file, and every process it would run
/// must be a job with the same argv, cwd, user, umask, environment, restart policy, start
/// and stop settings and output (tests/oracle/compare_import.py).
#[test]
fn the_corpus_imports_as_python_supervisor_reads_it() {
    let script = crate::support::workspace_root().join("tests/oracle/compare_import.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(bin("supervisord"))
        .args(corpus())
        .envs(CORPUS_ENV)
        .output()
        .expect("run python3");
    let text = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(77) {
        crate::support::skip("the_corpus_imports_as_python_supervisor_reads_it", &text);
        return;
    }
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("{n} of {n} files", n = corpus().len())),
        "{text}"
    );
}
