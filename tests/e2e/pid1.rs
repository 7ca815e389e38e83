//! supervisord as PID 1 of a PID namespace (a container's entrypoint), under
//! `unshare --pid --fork --mount-proc`: it reaps every orphan the namespace hands it (also
//! those of processes that are not its jobs, such as an exec probe), takes SIGTERM as a
//! graceful shutdown, and exits with batch mode's status. Skips visibly where `unshare`
//! cannot make a PID namespace (not root, or no such tool).

use crate::support::{alive, bin, jobs, marker, pids_with_arg, skip, wait_until, Daemon, DEADLINE};
use std::process::{Child, Command, Stdio};

/// Start supervisord as PID 1 of a new PID namespace for `d`'s folder; `None` (said why)
/// where that cannot be done here.
fn start_as_pid1(d: &Daemon, args: &[&str], test: &str) -> Option<(Unshare, u32)> {
    let probe = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            skip(
                test,
                &format!(
                    "unshare --pid fails here: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            );
            return None;
        }
        Err(e) => {
            skip(test, &format!("no unshare: {e}"));
            return None;
        }
    }
    let child = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(bin("supervisord"))
        .arg("--config")
        .arg(&d.config)
        .arg("--socket")
        .arg(&d.socket)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(d.dir.path().join("daemon.out")).expect("out file"))
        .stderr(std::fs::File::create(d.dir.path().join("daemon.err")).expect("err file"))
        .spawn()
        .expect("spawn unshare");
    let child = Unshare(child);
    let unshare = child.0.id();
    // supervisord is unshare's one child; in the namespace it is PID 1.
    let pid = wait_until("supervisord under unshare", DEADLINE, || {
        let c = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children")).ok()?;
        c.split_whitespace().next()?.parse::<u32>().ok()
    });
    wait_until("supervisord to be PID 1 of its namespace", DEADLINE, || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let nspid = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
        (nspid.split_whitespace().last() == Some("1")).then_some(())
    });
    Some((child, pid))
}

/// `unshare`, SIGKILLed if a test ends early (its `--kill-child` then takes supervisord
/// and, with it as PID 1, the whole namespace).
struct Unshare(Child);

impl Unshare {
    fn wait(&mut self) -> std::process::ExitStatus {
        self.0.wait().expect("unshare ends")
    }
}

impl Drop for Unshare {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Zombie children of `pid`.
fn zombies_of(pid: u32) -> Vec<u32> {
    let Ok(c) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) else {
        return Vec::new();
    };
    c.split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().next())
                    == Some("Z")
            })
        })
        .collect()
}

#[test]
fn as_pid1_it_reaps_orphans_and_stops_gracefully_on_sigterm() {
    let test = "as_pid1_it_reaps_orphans_and_stops_gracefully_on_sigterm";
    let mark = marker("pid1");
    let d = Daemon::prepare(&jobs(
        r#"
[job.app]
command = ["sh", "-c", "trap 'echo stopped > stopped.txt; exit 0' TERM; for i in 1 2 3; do (sh -c 'sleep 0.3' &); done; while :; do sleep 0.05; done"]
"#,
    ));
    let Some((mut unshare, pid)) = start_as_pid1(&d, &[], test) else {
        return;
    };
    wait_until("the daemon to answer", DEADLINE, || {
        d.ctl(&["ping"]).status.success().then_some(())
    });
    // A process that is not a job, entered into the namespace the way `kubectl exec` or
    // an exec probe is, leaves an orphan: the namespace's PID 1 adopts it.
    let out = Command::new("nsenter")
        .args(["--target", &pid.to_string(), "--pid", "--", "sh", "-c"])
        .arg(format!("(sh -c 'sleep 1; : {mark}' &); exit 0"))
        // Not piped: the orphan would hold the pipes, and reading them wait for it.
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("nsenter");
    assert!(out.success(), "{out:?}");
    let orphan = wait_until("the exec'd orphan", DEADLINE, || {
        pids_with_arg(&mark).first().copied()
    });
    let parent = std::fs::read_to_string(format!("/proc/{orphan}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse::<u32>()
                .ok()
        });
    assert_eq!(parent, Some(pid), "adopted by the namespace's PID 1");
    wait_until("every orphan to end and be reaped", DEADLINE, || {
        let gone = !std::path::Path::new(&format!("/proc/{orphan}")).exists();
        (gone && zombies_of(pid).is_empty()).then_some(())
    });
    assert!(alive(pid));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let status = unshare.wait();
    assert_eq!(status.code(), Some(0), "{}", d.stderr());
    let stopped = std::fs::read_to_string(d.dir.path().join("stopped.txt")).unwrap_or_default();
    assert_eq!(
        stopped.trim(),
        "stopped",
        "the job got its stop signal: {}",
        d.stderr()
    );
}

#[test]
fn as_pid1_batch_mode_exits_with_its_status() {
    let test = "as_pid1_batch_mode_exits_with_its_status";
    for (code, want) in [(0, 0), (3, 1)] {
        let d = Daemon::prepare(&jobs(&format!(
            r#"
[job.work]
command = ["sh", "-c", "(sleep 0.1 &); exit {code}"]
start_secs = 0
"#
        )));
        let Some((mut unshare, _)) = start_as_pid1(&d, &["--exit-when-done"], test) else {
            return;
        };
        let status = unshare.wait();
        assert_eq!(status.code(), Some(want), "job exit {code}: {}", d.stderr());
        let out = d.stdout();
        assert!(out.contains("work"), "batch line: {out}");
    }
}

/// The container example's job file is valid, and its probes are real supctl commands.
#[test]
fn the_container_example_job_file_passes_check() {
    let root = crate::support::workspace_root().join("config/container");
    let out = Command::new(bin("supervisord"))
        .arg("--check")
        .arg(root.join("supervisord.toml"))
        .output()
        .expect("run --check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for probe in [
        vec!["wait", "--ready", "--timeout", "4s", "web", "worker"],
        vec!["is-alive", "web"],
    ] {
        let needle = format!("[\"supctl\", \"{}\"", probe[0]);
        let pod = std::fs::read_to_string(root.join("pod.yaml")).expect("pod.yaml");
        assert!(pod.contains(&needle), "pod.yaml probes with {probe:?}");
        // supctl accepts the arguments (it fails only for want of a daemon: exit 3).
        let out = Command::new(bin("supctl"))
            .arg("--socket")
            .arg("/nonexistent/supervisord.sock")
            .args(&probe)
            .output()
            .expect("run supctl");
        assert_eq!(out.status.code(), Some(3), "{probe:?}: {out:?}");
    }
}

/// supervisord as the entrypoint of a real OCI container, run by `runc` from a bundle
/// folder: a rootfs of a static busybox, supervisord and the C libraries it links. Batch
/// mode's status is the container's. Skips visibly without root, runc or busybox.
#[test]
fn under_runc_supervisord_is_pid1_and_its_batch_status_is_the_containers() {
    let test = "under_runc_supervisord_is_pid1_and_its_batch_status_is_the_containers";
    if !crate::support::is_root() {
        return skip(test, "runc needs root");
    }
    if Command::new("runc").arg("--version").output().is_err() {
        return skip(test, "no runc (Debian: apt-get install runc)");
    }
    if !std::path::Path::new("/bin/busybox").exists() {
        return skip(
            test,
            "no /bin/busybox (Debian: apt-get install busybox-static)",
        );
    }
    for (code, want) in [(0, 0), (3, 1)] {
        let bundle = tempfile::tempdir().expect("bundle");
        let rootfs = bundle.path().join("rootfs");
        for d in ["bin", "proc", "dev", "sys", "tmp", "run", "etc"] {
            std::fs::create_dir_all(rootfs.join(d)).expect("mkdir");
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox");
        for tool in ["sh", "sleep", "echo"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(tool)).expect("link");
        }
        std::fs::copy(bin("supervisord"), rootfs.join("bin/supervisord")).expect("copy");
        // The C libraries supervisord links, where the host has them.
        let ldd = Command::new("ldd")
            .arg(bin("supervisord"))
            .output()
            .expect("ldd");
        for lib in String::from_utf8_lossy(&ldd.stdout)
            .split_whitespace()
            .filter(|w| w.starts_with('/'))
        {
            let to = rootfs.join(lib.trim_start_matches('/'));
            std::fs::create_dir_all(to.parent().expect("lib folder")).expect("mkdir");
            std::fs::copy(lib, &to).expect("copy lib");
        }
        std::fs::write(
            rootfs.join("jobs.toml"),
            format!(
                "[job.work]\ncommand = [\"sh\", \"-c\", \"(sh -c 'sleep 0.2' &); echo in-container; exit {code}\"]\nstart_secs = 0\n"
            ),
        )
        .expect("job file");
        let spec = Command::new("runc")
            .arg("spec")
            .current_dir(bundle.path())
            .output()
            .expect("runc spec");
        assert!(spec.status.success(), "{spec:?}");
        let path = bundle.path().join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("config.json"))
                .expect("json");
        config["process"]["terminal"] = false.into();
        config["process"]["args"] = serde_json::json!([
            "/bin/supervisord",
            "--config",
            "/jobs.toml",
            "--socket",
            "/run/supervisord.sock",
            "--exit-when-done"
        ]);
        config["root"]["readonly"] = false.into();
        std::fs::write(&path, config.to_string()).expect("write config.json");
        let id = crate::support::marker("sv");
        let out = Command::new("runc")
            .args(["run", &id])
            .current_dir(bundle.path())
            .stdin(Stdio::null())
            .output()
            .expect("runc run");
        let err = String::from_utf8_lossy(&out.stderr);
        if code == 0 && !err.contains("pid=1") {
            let _ = Command::new("runc")
                .args(["delete", "--force", &id])
                .output();
            return skip(
                test,
                &format!("runc cannot run a container here: {}", err.trim()),
            );
        }
        assert_eq!(out.status.code(), Some(want), "job exit {code}: {err}");
        assert!(
            err.contains("supervisord started") && err.contains("pid=1"),
            "{err}"
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("work"), "batch line: {stdout}");
    }
}
