//! The guard: a tiny helper process that kills every job's process group if supervisord
//! dies without stopping them (SIGKILL, OOM kill, a crash).
//!
//! `PR_SET_PDEATHSIG` would cover a job's leader but not the leader's children, which
//! live on in the job's process group, and setting it makes every spawn a full fork. So
//! supervisord starts this helper (its own binary, re-run
//! with a hidden argument) and tells it over a pipe which process groups are live
//! (`+pgid` / `-pgid` lines). When the pipe reaches end of file — supervisord has exited,
//! however it exited — the helper SIGKILLs every group still listed and exits. After a
//! clean shutdown the list is empty and it simply exits.
//!
//! The helper ignores SIGINT, SIGTERM, SIGHUP and SIGQUIT and leads its own process
//! group, so a ^C or a signal to supervisord's group cannot take it out first. If it dies
//! anyway, supervisord notices (SIGCHLD, or a broken pipe), starts a new one and tells it
//! every live group; only if none can be started do jobs get `PR_SET_PDEATHSIG`.

use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};

/// The hidden first argument that turns the binary into the guard.
pub const GUARD_ARG: &str = "__guard";

/// supervisord's end of the guard.
pub struct Guard {
    stdin: Option<ChildStdin>,
    /// What the pipe could not take yet (the guard fell behind a burst of spawns); it
    /// goes out, in order, before anything said later.
    pending: Vec<u8>,
    child: Child,
}

impl Guard {
    /// Start the guard from this very binary.
    pub fn spawn() -> io::Result<Guard> {
        // `ps` shows what this is and whose it is; `kill $(pgrep supervisord)` does not
        // take it out along with the daemon it guards.
        let mut child = Command::new("/proc/self/exe")
            .arg0(format!("supervisord: guard for pid {}", std::process::id()))
            .arg(GUARD_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()?;
        let stdin = child.stdin.take().map(crate::os::enlarge_pipe);
        if let Some(s) = &stdin {
            // A full pipe must never stall the runtime; the guard reads constantly.
            let flags = nix::fcntl::fcntl(s.as_fd(), nix::fcntl::FcntlArg::F_GETFL)?;
            let flags =
                nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
            nix::fcntl::fcntl(s.as_fd(), nix::fcntl::FcntlArg::F_SETFL(flags))?;
        }
        Ok(Guard {
            stdin,
            pending: Vec::new(),
            child,
        })
    }

    /// The guard's pid (it is a child of supervisord, not a job).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A process group to kill if supervisord dies.
    pub fn watch(&mut self, pgid: u32) {
        self.say(&format!("+{pgid}\n"));
    }

    /// supervisord's cgroup subtree: killed whole if supervisord dies.
    pub fn watch_tree(&mut self, dir: &std::path::Path) {
        self.say(&format!("c{}\n", dir.display()));
    }

    /// A process group that is gone.
    pub fn forget(&mut self, pgid: u32) {
        self.say(&format!("-{pgid}\n"));
    }

    fn say(&mut self, line: &str) {
        if self.stdin.is_none() {
            return;
        }
        self.pending.extend_from_slice(line.as_bytes());
        self.flush();
    }

    /// Send what the pipe will take now of what is pending. Never waits.
    pub fn flush(&mut self) {
        let Some(stdin) = self.stdin.as_mut() else {
            return;
        };
        if self.pending.is_empty() {
            return;
        }
        if let Err(e) = write_some(stdin, &mut self.pending) {
            tracing::warn!(error = %e, "the guard process is not listening; jobs may outlive a crash of supervisord");
            self.stdin = None;
            self.pending = Vec::new();
        }
    }

    /// Whether everything said has gone into the pipe.
    pub fn is_flushed(&self) -> bool {
        self.pending.is_empty()
    }

    /// Whether the guard can still do its job: its pipe works and it has not exited.
    /// Reaps it if it has exited.
    pub fn is_alive(&mut self) -> bool {
        self.stdin.is_some() && matches!(self.child.try_wait(), Ok(None))
    }

    /// Get rid of a guard that can no longer be told anything: SIGKILL it first, so that
    /// closing its pipe cannot make it kill the jobs it knew, then reap it.
    pub fn discard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Close the pipe (the guard exits) and reap the guard.
    pub fn finish(mut self) {
        self.stdin = None;
        let _ = self.child.wait();
    }
}

/// Write as much of `buf` as a non-blocking `w` takes now and keep the rest in `buf`.
/// A full pipe is not an error: the rest goes with the next write.
fn write_some(w: &mut impl Write, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match w.write(&buf[done..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.drain(..done);
    Ok(())
}

/// The guard's main: never returns.
pub fn run() -> ! {
    use nix::sys::signal::{signal, SigHandler, Signal};
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGALRM,
    ] {
        // SAFETY: setting a signal to SIG_IGN installs no handler code; nothing can run
        // concurrently with it in this single-threaded helper.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
    crate::os::set_process_name(&format!("guard {}", nix::unistd::getppid()));
    // One pidfd per job: raise the open-files limit like supervisord does.
    crate::os::raise_fd_limit();
    shed_program_text();
    // Each group's leader, held through a pidfd opened while supervisord still holds the
    // leader unreaped: at the end it tells whether the leader is still unreaped (so the
    // group's id is still the job's), and reaches a leader that left its group.
    let mut groups: HashMap<i32, Option<OwnedFd>> = HashMap::new();
    let mut tree: Option<std::path::PathBuf> = None;
    let stdin = io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if let Some(dir) = line.strip_prefix('c') {
            tree = Some(dir.into());
            continue;
        }
        let (op, num) = line.split_at(line.len().min(1));
        let Ok(pgid) = num.parse::<i32>() else {
            continue;
        };
        match op {
            "+" => {
                let fd = u32::try_from(pgid).ok().and_then(crate::os::pidfd_open);
                groups.insert(pgid, fd);
            }
            "-" => {
                groups.remove(&pgid);
            }
            _ => {}
        }
    }
    // Every run's cgroup at once, whatever it forked; then the groups for what is not in
    // one (a run spawned before the subtree existed, or with containment off).
    if let Some(dir) = tree.filter(|d| d.exists()) {
        crate::cgroup::destroy(&dir, std::time::Duration::from_secs(2));
    }
    for (pgid, fd) in groups {
        if pgid <= 1 {
            continue;
        }
        let pg = nix::unistd::Pid::from_raw(pgid);
        match fd {
            Some(fd) => {
                // Reaped already (by init, after supervisord died): the id may be
                // someone else's now, so it is left alone.
                if crate::os::pidfd_signal(fd.as_fd(), None).is_err() {
                    continue;
                }
                let _ = nix::sys::signal::killpg(pg, Signal::SIGKILL);
                let _ = crate::os::pidfd_signal(fd.as_fd(), Some(protocol::Signal::Kill));
            }
            None => {
                let _ = nix::sys::signal::killpg(pg, Signal::SIGKILL);
            }
        }
    }
    std::process::exit(0)
}

/// Unmap the program text and read-only data this process has touched so far (start-up:
/// the dynamic loader, std's runtime, `main`), so that what stays resident is what the
/// loop below runs.
///
/// The guard is supervisord's own binary: starting it maps pages all over that binary's
/// 8 MiB of code and libc's (the kernel maps 64 KiB around each page faulted in), about
/// 3 MiB that then sat in the guard's resident set for the daemon's life. Those pages stay
/// in the page cache (supervisord maps the same ones); dropping this process's mappings
/// of them is what memory pressure does anyway to clean file pages. Only read-only file
/// mappings that this process never wrote are dropped, so they read back the same;
/// relocated data (RELRO) would not, and is left alone.
fn shed_program_text() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    // (start, end, whether it may be dropped) of the mapping being read.
    let mut mapping: Option<(usize, usize, bool)> = None;
    for line in smaps.lines() {
        if let Some((start, end, droppable)) = mapping_header(line) {
            mapping = Some((start, end, droppable));
            continue;
        }
        // Checked per mapping: a page this process wrote (relocated data) is its own copy
        // and would be lost; only mappings with none are dropped.
        let Some(anon) = line.strip_prefix("Anonymous:") else {
            continue;
        };
        let Some((start, end, true)) = mapping.take() else {
            continue;
        };
        if anon.trim() != "0 kB" {
            continue;
        }
        // SAFETY: the range is a whole private, read-only mapping of a file, taken from
        // /proc/self/smaps, with no page of its own (Anonymous: 0 kB): `MADV_DONTNEED`
        // only drops this process's page table entries for it, and the next access maps
        // the same file pages again.
        unsafe {
            let (addr, len) = (start as *mut nix::libc::c_void, end.saturating_sub(start));
            nix::libc::madvise(addr, len, nix::libc::MADV_DONTNEED);
        }
    }
}

/// A mapping's first line in /proc/self/smaps: its range, and whether it is a private,
/// read-only mapping of a file (the only kind [`shed_program_text`] drops).
fn mapping_header(line: &str) -> Option<(usize, usize, bool)> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    let path = fields.nth(3).unwrap_or("");
    let droppable = matches!(perms, "r-xp" | "r--p") && path.starts_with('/');
    Some((start, end, droppable))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipe that takes `room` bytes, then is full until `room` is raised again.
    struct Pipe {
        got: Vec<u8>,
        room: usize,
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room).min(3);
            self.got.extend_from_slice(&buf[..n]);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_pipe_keeps_the_rest_in_order() {
        let mut pipe = Pipe {
            got: Vec::new(),
            room: 5,
        };
        let mut pending = b"+1234\n-1234\n".to_vec();
        write_some(&mut pipe, &mut pending).expect("a full pipe is no error");
        assert_eq!(pipe.got, b"+1234");
        assert_eq!(pending, b"\n-1234\n");
        pending.extend_from_slice(b"+99\n");
        pipe.room = 100;
        write_some(&mut pipe, &mut pending).expect("write");
        assert_eq!(pipe.got, b"+1234\n-1234\n+99\n");
        assert!(pending.is_empty());
    }

    #[test]
    fn only_private_read_only_file_mappings_may_be_dropped() {
        let text = "5581d0a00000-5581d1200000 r-xp 00400000 fd:01 1234 /usr/sbin/supervisord";
        assert_eq!(
            mapping_header(text),
            Some((0x5581d0a00000, 0x5581d1200000, true))
        );
        let relro = "7f00a0000000-7f00a0001000 r--p 00000000 fd:01 99 /usr/lib/libc.so.6";
        assert_eq!(mapping_header(relro).map(|m| m.2), Some(true));
        for other in [
            "7f00a0000000-7f00a0001000 rw-p 00000000 fd:01 99 /usr/lib/libc.so.6",
            "7ffd1c5f0000-7ffd1c5f2000 r-xp 00000000 00:00 0 [vdso]",
            "7f00a0000000-7f00a0001000 r--s 00000000 fd:01 99 /dev/shm/x",
            "7f00a0000000-7f00a0021000 rw-p 00000000 00:00 0",
        ] {
            assert_eq!(mapping_header(other).map(|m| m.2), Some(false), "{other}");
        }
        assert_eq!(mapping_header("Rss:                 120 kB"), None);
        assert_eq!(mapping_header("Anonymous:             0 kB"), None);
    }

    #[test]
    fn a_closed_pipe_is_an_error() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut pending = b"+1\n".to_vec();
        assert!(write_some(&mut Closed, &mut pending).is_err());
    }
}
