//! The guard: a tiny helper process that kills every job's process group if supervisord
//! dies without stopping them (SIGKILL, OOM kill, a crash).
//!
//! `PR_SET_PDEATHSIG` covers a job's leader but not the leader's children, which live on
//! in the job's process group. So supervisord starts this helper (its own binary, re-run
//! with a hidden argument) and tells it over a pipe which process groups are live
//! (`+pgid` / `-pgid` lines). When the pipe reaches end of file — supervisord has exited,
//! however it exited — the helper SIGKILLs every group still listed and exits. After a
//! clean shutdown the list is empty and it simply exits.
//!
//! The helper ignores SIGINT, SIGTERM, SIGHUP and SIGQUIT and leads its own process
//! group, so a ^C or a signal to supervisord's group cannot take it out first.

use std::collections::HashSet;
use std::io::{self, BufRead, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};

/// The hidden first argument that turns the binary into the guard.
pub const GUARD_ARG: &str = "__guard";

/// supervisord's end of the guard.
pub struct Guard {
    stdin: Option<ChildStdin>,
    child: Child,
}

impl Guard {
    /// Start the guard from this very binary.
    pub fn spawn() -> io::Result<Guard> {
        let mut child = Command::new("/proc/self/exe")
            .arg(GUARD_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()?;
        let stdin = child.stdin.take();
        if let Some(s) = &stdin {
            // A full pipe must never stall the runtime; the guard reads constantly.
            let flags = nix::fcntl::fcntl(s.as_fd(), nix::fcntl::FcntlArg::F_GETFL)?;
            let flags =
                nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
            nix::fcntl::fcntl(s.as_fd(), nix::fcntl::FcntlArg::F_SETFL(flags))?;
        }
        Ok(Guard { stdin, child })
    }

    /// The guard's pid (it is a child of supervisord, not a job).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A process group to kill if supervisord dies.
    pub fn watch(&mut self, pgid: u32) {
        self.say(&format!("+{pgid}\n"));
    }

    /// A process group that is gone.
    pub fn forget(&mut self, pgid: u32) {
        self.say(&format!("-{pgid}\n"));
    }

    fn say(&mut self, line: &str) {
        let Some(stdin) = self.stdin.as_mut() else {
            return;
        };
        if let Err(e) = stdin.write_all(line.as_bytes()) {
            tracing::warn!(error = %e, "the guard process is not listening; jobs may outlive a crash of supervisord");
            self.stdin = None;
        }
    }

    /// Close the pipe (the guard exits) and reap the guard.
    pub fn finish(mut self) {
        self.stdin = None;
        let _ = self.child.wait();
    }
}

/// The guard's main: never returns.
pub fn run() -> ! {
    use nix::sys::signal::{signal, SigHandler, Signal};
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        // SAFETY: setting a signal to SIG_IGN installs no handler code; nothing can run
        // concurrently with it in this single-threaded helper.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
    let mut groups: HashSet<i32> = HashSet::new();
    let stdin = io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let (op, num) = line.split_at(line.len().min(1));
        let Ok(pgid) = num.parse::<i32>() else {
            continue;
        };
        match op {
            "+" => {
                groups.insert(pgid);
            }
            "-" => {
                groups.remove(&pgid);
            }
            _ => {}
        }
    }
    for pgid in groups {
        if pgid > 1 {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
    std::process::exit(0)
}
