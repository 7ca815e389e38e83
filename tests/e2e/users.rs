//! `user`, `umask` and `[job.X.limits]`: what the kernel shows of a job's process.

use crate::support::{copy_for_nobody, is_root, jobs, skip, Daemon};
use std::process::Command;

/// The value of `key:` in /proc/PID/status, whitespace-normalised.
fn status_field(pid: u32, key: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

fn environ(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    raw.split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// A job with `user = "nobody"` runs with nobody's uid, gid and groups, its passwd
/// entry's HOME/USER/LOGNAME/SHELL (the job's env overriding one), and its umask.
#[test]
fn a_job_runs_as_its_user_with_its_groups_env_and_umask() {
    const TEST: &str = "users::a_job_runs_as_its_user_with_its_groups_env_and_umask";
    if !is_root() {
        return skip(TEST, "needs root to run a job as nobody");
    }
    let d = Daemon::start(&jobs(
        "[job.n]\ncommand = \"sleep 60\"\nuser = \"nobody\"\numask = \"027\"\nenv = { SHELL = \"/bin/sh\" }\n\
         [job.mine]\ncommand = \"sleep 60\"\n",
    ));
    let pid = d.running_pid("n");
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("passwd")
        .expect("nobody exists");
    let (uid, gid) = (nobody.uid.as_raw(), nobody.gid.as_raw());
    assert_eq!(status_field(pid, "Uid"), format!("{uid} {uid} {uid} {uid}"));
    assert_eq!(status_field(pid, "Gid"), format!("{gid} {gid} {gid} {gid}"));
    // nobody's groups, not root's: initgroups gives its primary group only here.
    let name = std::ffi::CString::new("nobody").expect("name");
    let mut want: Vec<u32> = nix::unistd::getgrouplist(&name, nobody.gid)
        .expect("grouplist")
        .iter()
        .map(|g| g.as_raw())
        .collect();
    want.sort_unstable();
    want.dedup();
    let mut groups: Vec<u32> = status_field(pid, "Groups")
        .split(' ')
        .filter(|g| !g.is_empty())
        .map(|g| g.parse().expect("gid"))
        .collect();
    groups.sort_unstable();
    assert_eq!(groups, want);
    assert_eq!(status_field(pid, "Umask"), "0027");
    let env = environ(pid);
    for var in [
        format!("HOME={}", nobody.dir.display()),
        "USER=nobody".to_owned(),
        "LOGNAME=nobody".to_owned(),
        "SHELL=/bin/sh".to_owned(),
    ] {
        assert!(env.contains(&var), "{var} not in {env:?}");
    }
    // Without `user`, the daemon's uid and umask.
    let mine = d.running_pid("mine");
    assert_eq!(status_field(mine, "Uid"), "0 0 0 0");
    assert!(!environ(mine).contains(&"USER=nobody".to_owned()));
}

/// rlimits are set soft = hard, "unlimited" included, before the program runs.
#[test]
fn limits_are_visible_in_proc_limits() {
    let d = Daemon::start(&jobs(
        "[job.l]\ncommand = \"sleep 60\"\n[job.l.limits]\nnofile = 1234\ncore = \"unlimited\"\nstack = \"4MiB\"\n",
    ));
    let pid = d.running_pid("l");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let row = |name: &str| -> String {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| {
                l[name.len()..]
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_else(|| panic!("no {name} in {limits}"))
    };
    assert_eq!(row("Max open files"), "1234 1234 files");
    assert_eq!(row("Max core file size"), "unlimited unlimited bytes");
    assert_eq!(row("Max stack size"), "4194304 4194304 bytes");
}

/// A daemon that is not root, asked to run a job as another user, refuses the file at
/// load with the job's name and the reason.
#[test]
fn a_non_root_daemon_refuses_another_user_at_load() {
    const TEST: &str = "users::a_non_root_daemon_refuses_another_user_at_load";
    if !is_root() {
        return skip(TEST, "needs root to run supervisord as nobody");
    }
    let supervisord = match copy_for_nobody("supervisord") {
        Ok(copy) => copy,
        Err(why) => return skip(TEST, &why),
    };
    let dir = tempfile::Builder::new()
        .prefix("svuser")
        .tempdir()
        .expect("tempdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let config = dir.path().join("jobs.toml");
    std::fs::write(&config, "[job.web]\ncommand = \"true\"\nuser = \"root\"\n").expect("write");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(&supervisord.path)
        .arg("--check")
        .arg(&config)
        .output()
        .expect("run setpriv supervisord");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        err.contains("jobs.toml:3:")
            && err.contains("job \"web\"")
            && err.contains("needs supervisord to run as root"),
        "{err}"
    );
}

/// A limit the kernel refuses (more open files than fs.nr_open allows, even to root) is
/// a spawn error that names the limits, not "not executable".
#[test]
fn a_limit_the_kernel_refuses_is_a_spawn_error_naming_limits() {
    let d = Daemon::start(&jobs(
        "[job.l]\ncommand = \"sleep 60\"\n[job.l.limits]\nnofile = 1099511627776\n",
    ));
    let job = d.wait_job("l", "fails to spawn", |j| j.spawn_error.is_some());
    let err = job.spawn_error.unwrap_or_default();
    assert!(
        err.contains("`limits`") && err.contains("not permitted"),
        "{err}"
    );
}

/// Ready and health checks of the `exec` kind run as the job's user, in its cwd, with
/// its env (the passwd entry's variables under it) and umask.
#[test]
fn exec_checks_run_as_the_jobs_user_in_its_cwd_with_its_env() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    const TEST: &str = "users::exec_checks_run_as_the_jobs_user_in_its_cwd_with_its_env";
    if !is_root() {
        return skip(TEST, "needs root to run a job and its checks as nobody");
    }
    let shared = tempfile::Builder::new()
        .prefix("svchk")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let d = Daemon::start(&jobs(&format!(
        r#"
[job.n]
command = "sleep 60"
user = "nobody"
umask = "077"
cwd = "{dir}"
env = {{ MARK = "from-the-job" }}
[job.n.ready]
exec = ["sh", "-c", "id -u > ready.uid"]
interval = "100ms"
[job.n.health]
exec = ["sh", "-c", "echo $(id -u) $USER $MARK $(pwd) > health.txt"]
interval = "200ms"
"#,
        dir = shared.path().display()
    )));
    d.wait_job("n", "healthy", |j| {
        j.health == Some(protocol::Health::Healthy)
    });
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("passwd")
        .expect("nobody exists");
    let uid = nobody.uid.as_raw();
    let ready = std::fs::read_to_string(shared.path().join("ready.uid")).expect("ready.uid");
    assert_eq!(ready.trim(), uid.to_string(), "the ready check's uid");
    let health = shared.path().join("health.txt");
    let text = std::fs::read_to_string(&health).expect("health.txt");
    assert_eq!(
        text.trim(),
        format!("{uid} nobody from-the-job {}", shared.path().display()),
        "the health check's uid, USER, env and cwd"
    );
    let meta = std::fs::metadata(&health).expect("stat");
    assert_eq!(meta.uid(), uid, "written by nobody");
    assert_eq!(meta.mode() & 0o077, 0, "with the job's umask");
}
