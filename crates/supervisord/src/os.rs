//! The OS edge: every `unsafe` block of the daemon but the guard's (the two pre-exec hooks,
//! the pidfd calls std and nix do not wrap), signals, process groups, reaping orphans,
//! resource limits. Everything else calls these safe functions.

use nix::errno::Errno;
use nix::sys::signal::{self, Signal as NixSignal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use protocol::Signal;
use std::collections::HashSet;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

pub mod spawn;

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
///
/// The caller guarantees `pid` has not been reaped — it is alive or a zombie — so the
/// number is still ours, and so is the process group it leads (a pgid cannot be reused
/// while its leader's pid is taken). A leader that moved itself into another group with
/// `setpgid` is signalled directly as well: otherwise it could never be stopped.
pub fn send_signal(pid: u32, group: bool, sig: Signal) {
    let (Some(p), Some(s)) = (pid_t(pid), nix_signal(sig)) else {
        return;
    };
    let result = if group {
        let in_group = signal::killpg(p, s);
        match nix::unistd::getpgid(Some(p)) {
            // Still leading its group: the group signal reached it.
            Ok(g) if g == p => in_group,
            _ => signal::kill(p, s).and(in_group.or_else(ignore_esrch)),
        }
    } else {
        signal::kill(p, s)
    };
    match result {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pid, signal = %sig, error = %e, "sending a signal failed"),
    }
}

fn ignore_esrch(e: Errno) -> nix::Result<()> {
    if e == Errno::ESRCH {
        Ok(())
    } else {
        Err(e)
    }
}

/// SIGKILL a process group and its leader. The caller holds the leader unreaped (a
/// zombie at worst), which is what makes the pgid still ours.
pub fn kill_group(pgid: u32) {
    send_signal(pgid, true, Signal::Kill);
}

/// An open pidfd for a child that has not been reaped, or `None` where the kernel has
/// no pidfds (before Linux 5.3).
pub fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let p = pid_t(pid)?;
    // SAFETY: pidfd_open takes a pid and a flags word and returns a new descriptor (or
    // -1); no memory is shared with the kernel.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, p.as_raw(), 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: the kernel just handed us this descriptor; nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Send `sig` through a pidfd: it reaches that very process or nobody (`Err(ESRCH)` once
/// it has been reaped). `None` checks without sending anything.
pub fn pidfd_signal(fd: BorrowedFd<'_>, sig: Option<Signal>) -> nix::Result<()> {
    let num = match sig {
        Some(s) => s.number(),
        None => 0,
    };
    // SAFETY: pidfd_send_signal takes a descriptor, a signal number, a null siginfo and a
    // flags word; no memory is passed.
    let r = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            num,
            std::ptr::null::<nix::libc::siginfo_t>(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// Give this process a name in `ps` and `top` (its `comm`, at most 15 bytes).
pub fn set_process_name(name: &str) {
    if let Ok(c) = std::ffi::CString::new(name) {
        let _ = nix::sys::prctl::set_name(&c);
    }
}

/// [`pidfd_open`], registered with the runtime: readable once the child has ended.
pub fn pidfd_watch(pid: u32) -> Option<tokio::io::unix::AsyncFd<OwnedFd>> {
    pidfd_register(pidfd_open(pid)?)
}

/// A pidfd registered with the runtime: readable once the child has ended.
pub fn pidfd_register(fd: OwnedFd) -> Option<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` stays open and keeps its number until the `AsyncFd` holding
    // it is dropped, which is what registration asks for.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.ok()
}

/// The exit of child `pid` if it has ended, without reaping it: the zombie keeps the pid
/// (and the process group it led) reserved until [`reap`].
pub fn exited(pid: u32, pidfd: Option<BorrowedFd<'_>>) -> Option<i32> {
    use nix::sys::wait::{waitid, Id, WaitStatus};
    let id = match pidfd {
        Some(fd) => Id::PIDFd(fd),
        None => Id::Pid(pid_t(pid)?),
    };
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT | WaitPidFlag::WNOHANG;
    match waitid(id, flags) {
        Ok(WaitStatus::Exited(_, code)) => Some(code),
        Ok(WaitStatus::Signaled(_, sig, _)) => Some(-(sig as i32)),
        Ok(_) => None,
        Err(e) => {
            tracing::error!(pid, error = %e, "waiting for a job failed");
            Some(-1)
        }
    }
}

/// Reap a child that [`exited`] reported. After this its pid and process group are no
/// longer ours: nothing may signal them again.
pub fn reap(pid: u32) {
    if let Some(p) = pid_t(pid) {
        let _ = waitpid(p, Some(WaitPidFlag::WNOHANG));
    }
}

/// Of the process groups `pgids` (each led by one of our unreaped zombies), those that
/// still have a member besides their leader. One pass over `/proc`, whatever the number
/// of groups asked about.
pub fn groups_with_members(pgids: &HashSet<u32>) -> HashSet<u32> {
    let mut found = HashSet::new();
    if pgids.is_empty() {
        return found;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        // Cannot tell: assume every group is still in use (it stays reserved).
        return pgids.clone();
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold anything, so split after the
        // last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let Some(pgrp) = rest
            .split_whitespace()
            .nth(2)
            .and_then(|g| g.parse::<u32>().ok())
        else {
            continue;
        };
        if pgrp != pid && pgids.contains(&pgrp) {
            found.insert(pgrp);
        }
    }
    found
}

/// Arrange for the child to get SIGKILL if supervisord dies, and close the race where
/// supervisord died before the child asked.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits; supervisord
/// forks only from its runtime's single thread, the main thread, which lives as long as
/// the process does.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
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

/// Put every signal back to its default disposition in the child (the `clone3` spawn
/// does the same): what supervisord ignores is not the job's to ignore. std already
/// empties the child's signal mask.
pub fn reset_signals(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: `rt_sigaction` system calls on a structure
    // built on the stack; nothing is allocated and no lock taken.
    unsafe {
        cmd.pre_exec(|| {
            spawn::default_signal_dispositions();
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

/// Reap children that are not runs (orphans adopted as subreaper). `expected` is how many
/// children are ours (runs, held leaders, the guard): when no more than that are listed,
/// there is no orphan and `ours` (the pids the runtime waits for, left alone) is never
/// built — on every SIGCHLD of a burst of exits that set was most of the work. Reads
/// `/proc/self/task/*/children`, which the kernel serves from memory. Returns how many
/// were reaped, and whether any child besides `expected` was listed at all (`false`:
/// supervisord has no child but its own, so no process outlives a job's leader — any
/// such process would have been reparented to supervisord, its subreaper).
pub fn reap_orphans(expected: usize, ours: impl FnOnce() -> HashSet<u32>) -> (usize, bool) {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (0, true);
    };
    let listed: Vec<u32> = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|children| {
            children
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    if listed.len() <= expected {
        return (0, false);
    }
    let ours = ours();
    let mut reaped = 0;
    for pid in listed {
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
    (reaped, true)
}

/// A job's `limits` as `setrlimit` takes them: resource, and the value for both the soft
/// and the hard limit (`RLIM_INFINITY` for "unlimited").
pub fn rlimits(
    limits: &[(crate::config::Resource, crate::config::Rlim)],
) -> Vec<(nix::libc::__rlimit_resource_t, nix::libc::rlim_t)> {
    use crate::config::Resource;
    use nix::libc;
    limits
        .iter()
        .map(|&(r, v)| {
            let r = match r {
                Resource::Nofile => libc::RLIMIT_NOFILE,
                Resource::Nproc => libc::RLIMIT_NPROC,
                Resource::Core => libc::RLIMIT_CORE,
                Resource::Stack => libc::RLIMIT_STACK,
                Resource::Memlock => libc::RLIMIT_MEMLOCK,
            };
            (r, v.unwrap_or(libc::RLIM_INFINITY))
        })
        .collect()
}

/// Set the job's rlimits, umask and identity in the child, in that order: rlimits first,
/// while the child may still raise a hard limit; the identity last, since dropping root
/// is what takes the right away. Does nothing (and so keeps std's `posix_spawn` path)
/// when the job sets none of them.
///
/// Identity is switched only when supervisord runs as root; otherwise the job file was
/// accepted only because `user` names supervisord's own user, and there is nothing to do.
pub fn set_credentials(
    cmd: &mut std::process::Command,
    user: Option<&crate::config::RunAs>,
    umask: Option<u32>,
    limits: &[(crate::config::Resource, crate::config::Rlim)],
) {
    use nix::libc;
    use std::os::unix::process::CommandExt;
    if user.is_none() && umask.is_none() && limits.is_empty() {
        return;
    }
    let limits = rlimits(limits);
    let identity = user
        .filter(|_| nix::unistd::geteuid().is_root())
        .map(|u| (u.uid, u.gid, u.groups.clone()));
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed. It calls `setrlimit`, `umask`, `setgroups`,
    // `setgid` and `setuid` (plain system calls) on data it owns, prepared before the
    // fork; it allocates nothing and takes no locks (`last_os_error` reads errno).
    unsafe {
        cmd.pre_exec(move || {
            for &(resource, value) in &limits {
                let lim = libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                };
                if libc::setrlimit(resource, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(mask) = umask {
                libc::umask(mask as libc::mode_t);
            }
            if let Some((uid, gid, groups)) = &identity {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(*gid) != 0
                    || libc::setuid(*uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Make the child enter a cgroup before anything else runs in it: it writes `0` (itself)
/// to `procs`, the cgroup's `cgroup.procs`, opened by supervisord before the fork. Run
/// before [`set_credentials`], while the child is still supervisord's user. So the
/// program, and anything it forks, starts inside the cgroup: there is no moment when a
/// fork could land outside.
pub fn enter_cgroup(cmd: &mut std::process::Command, procs: OwnedFd) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed. It calls `write` (a plain system call) on a
    // descriptor it owns, with a static buffer; it allocates nothing and takes no locks
    // (`last_os_error` reads errno).
    unsafe {
        cmd.pre_exec(move || {
            let n = nix::libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1);
            if n == 1 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// An inotify instance that the runtime can wait on.
pub struct InotifyFd(pub nix::sys::inotify::Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// A non-blocking inotify instance, registered with the runtime.
pub fn async_inotify() -> std::io::Result<tokio::io::unix::AsyncFd<InotifyFd>> {
    use nix::sys::inotify::{InitFlags, Inotify};
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
    // SAFETY: the `Inotify` owns its descriptor, which stays open and keeps its number
    // until the `AsyncFd` holding it is dropped, which is what registration asks for.
    unsafe { tokio::io::unix::AsyncFd::register(InotifyFd(inotify)) }.map_err(std::io::Error::from)
}

/// Keep the allocator from holding on to the memory of large, short-lived buffers (an
/// answer listing thousands of jobs, the job file being parsed).
///
/// glibc serves a block of 128 KiB or more with its own `mmap`, given back when freed, but
/// by default each such free raises that threshold to the block's size (and the heap's
/// trim threshold to twice that): after one `status` of 10,000 jobs (a few MiB of JSON)
/// every later answer came from the heap and its top stayed resident, 15-20 MiB that
/// `VmRSS` kept for good. Setting the threshold fixes it at glibc's own starting value.
pub fn tune_malloc() {
    #[cfg(target_env = "gnu")]
    // SAFETY: `mallopt` only sets a parameter of glibc's allocator; it is called before
    // any other thread exists (first thing in `main`).
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
