//! The OS edge: the one `unsafe` block (pre-exec), signals, process groups, reaping
//! orphans, resource limits. Everything else calls these safe functions.

use nix::errno::Errno;
use nix::sys::signal::{self, Signal as NixSignal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use protocol::Signal;
use std::collections::HashSet;
use std::os::fd::AsFd;

fn nix_signal(sig: Signal) -> Option<NixSignal> {
    NixSignal::try_from(sig.number()).ok()
}

fn pid_t(pid: u32) -> Option<Pid> {
    i32::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .map(Pid::from_raw)
}

/// Send `sig` to a job's process, or to its whole process group when `group` is set.
/// The caller guarantees `pid` has not been reaped (so the number is still ours).
pub fn send_signal(pid: u32, group: bool, sig: Signal) {
    let (Some(p), Some(s)) = (pid_t(pid), nix_signal(sig)) else {
        return;
    };
    let result = if group {
        signal::killpg(p, s)
    } else {
        signal::kill(p, s)
    };
    match result {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pid, signal = %sig, error = %e, "sending a signal failed"),
    }
}

/// SIGKILL whatever is left of a process group. Safe after the leader was reaped: a
/// process-group id cannot be reused as a pid while any member of the group exists.
pub fn kill_group(pgid: u32) {
    send_signal(pgid, true, Signal::Kill);
}

/// Whether any process (a zombie included) is still in the process group.
pub fn group_exists(pgid: u32) -> bool {
    let Some(p) = pid_t(pgid) else { return false };
    !matches!(signal::killpg(p, None), Err(Errno::ESRCH))
}

/// Arrange for the child to get SIGKILL if supervisord dies, and close the race where
/// supervisord died before the child asked.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits; supervisord
/// forks only from its runtime's single thread, the main thread, which lives as long as
/// the process does.
pub fn die_with_parent(cmd: &mut tokio::process::Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed. `prctl`, `getppid` and `_exit` are plain
    // system calls; the closure allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(NixSignal::SIGKILL)?;
            if nix::unistd::getppid() != parent {
                nix::libc::_exit(137);
            }
            Ok(())
        });
    }
}

/// Grow a pipe to 1 MiB so a chatty job makes fewer round trips through the runtime.
/// Best effort: the default size works too.
pub fn enlarge_pipe<T: AsFd>(pipe: T) -> T {
    let _ = nix::fcntl::fcntl(pipe.as_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
    pipe
}

/// Make supervisord the reaper of its jobs' orphans (double-forked daemons), so they can
/// be reaped instead of lingering as zombies under init.
pub fn become_subreaper() {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(error = %e, "cannot become a child subreaper; orphans of jobs go to init");
    }
}

/// Raise the soft open-files limit to the hard limit: each job costs a few descriptors
/// and each client one. Returns the limit in force.
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 1024,
    }
}

/// Reap children that are not runs (orphans adopted as subreaper). `ours` are the pids
/// the runtime waits for; they are left alone. Reads `/proc/self/task/*/children`, which
/// the kernel serves from memory. Returns how many were reaped.
pub fn reap_orphans(ours: &HashSet<u32>) -> usize {
    let mut reaped = 0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    for task in tasks.flatten() {
        let Ok(children) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        for pid in children
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            if ours.contains(&pid) {
                continue;
            }
            let Some(p) = pid_t(pid) else { continue };
            if let Ok(status) = waitpid(p, Some(WaitPidFlag::WNOHANG)) {
                if status.pid().is_some() {
                    reaped += 1;
                }
            }
        }
    }
    reaped
}
