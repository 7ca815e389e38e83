//! Containment: a cgroup v2 per run, so nothing a job forks — `setsid`, a double fork —
//! can outlive a stop.
//!
//! At start supervisord finds the cgroup v2 hierarchy where it is mounted (from
//! `/proc/self/mountinfo`: on hybrid hosts it is not `/sys/fs/cgroup`), its own cgroup in
//! it (`/proc/self/cgroup`'s `0::` line), and tries to create `supervisord-<pid>` below
//! its own cgroup. That works as root, or in a service systemd delegated (`Delegate=yes`).
//! If it works, every run gets `<that>/<job>@<run>`, which the child enters between fork
//! and exec (it writes `0` to the cgroup's `cgroup.procs`), so the program and all it
//! forks are inside before any of it runs. If it does not, supervisord uses process
//! groups as before and says why ([`Containment`]).
//!
//! A cgroup ends in three ways: its run stopped (`cgroup.kill`, then the run has ended
//! once `cgroup.events` says `populated 0`, seen through inotify, no polling); its leader
//! exited on its own and left processes (kept until they end, killed at the next stop of
//! the job or at shutdown); supervisord died (the guard writes `cgroup.kill` on the whole
//! `supervisord-<pid>` subtree; if the guard died too, the next supervisord to start below
//! the same cgroup kills and removes subtrees whose daemon is gone).

use crate::os;
use nix::sys::inotify::{AddWatchFlags, WatchDescriptor};
use protocol::Signal;
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `[supervisor] cgroup`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Setting {
    /// A cgroup per run where supervisord may create them; process groups otherwise.
    #[default]
    Auto,
    /// Process groups only.
    Off,
}

/// Which containment is in force, and why.
#[derive(Debug, Clone)]
pub enum Containment {
    /// A cgroup per run, below this subtree.
    Cgroups(Tree),
    /// Process groups only.
    Groups {
        /// Why not cgroups, in words for the log and `ping`.
        why: String,
    },
}

impl Containment {
    /// One line for the log, `--check` and `ping`.
    pub fn describe(&self) -> String {
        match self {
            Containment::Cgroups(t) => format!("a cgroup per run below {}", t.dir.display()),
            Containment::Groups { why } => format!("process groups only: {why}"),
        }
    }

    /// The subtree, when there is one.
    pub fn tree(&self) -> Option<&Tree> {
        match self {
            Containment::Cgroups(t) => Some(t),
            Containment::Groups { .. } => None,
        }
    }
}

/// Where cgroup v2 is mounted and the mount's root, from `/proc/self/mountinfo`'s text.
pub fn v2_mount(mountinfo: &str) -> Option<(PathBuf, String)> {
    mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        if after.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mut fields = before.split_whitespace();
        let root = fields.nth(3)?;
        let point = fields.next()?;
        Some((PathBuf::from(unescape(point)), unescape(root)))
    })
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push(d.iter().fold(0u8, |n, c| n.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This process's cgroup in the v2 hierarchy, from `/proc/self/cgroup`'s text.
pub fn own_path(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup.lines().find_map(|l| l.strip_prefix("0::"))
}

/// Whether `cgroup.events`' text says processes are left (`populated 1`). Unreadable or
/// missing: assumed populated, so nothing is taken for ended that may not have.
pub fn is_populated(events: &str) -> bool {
    events
        .lines()
        .find_map(|l| l.strip_prefix("populated "))
        .is_none_or(|v| v.trim() != "0")
}

/// A counter from a flat-keyed cgroup file (`cpu.stat`, `memory.events`).
pub fn counter(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Work out the containment for `setting`: create this daemon's subtree, and clear
/// subtrees left by daemons that died with their guard.
pub fn setup(setting: Setting) -> Containment {
    let parent = match probe(setting) {
        Ok(p) => p,
        Err(why) => return Containment::Groups { why },
    };
    clean_stale(&parent);
    let base = format!("supervisord-{}", std::process::id());
    // Another supervisord with our pid (in another PID namespace) may hold the name.
    for n in 0..64 {
        let dir = match n {
            0 => parent.join(&base),
            n => parent.join(format!("{base}-{n}")),
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return refused(&dir, &e),
        }
        if !dir.join("cgroup.events").exists() {
            let _ = std::fs::remove_dir(&dir);
            return Containment::Groups {
                why: format!("{} has no cgroup.events (Linux before 5.2)", dir.display()),
            };
        }
        match lock(&dir) {
            Ok(Some(lock)) => {
                return Containment::Cgroups(Tree {
                    dir,
                    _lock: Some(std::sync::Arc::new(lock)),
                })
            }
            // Removed (a starting daemon took it, still unlocked and empty, for a stale
            // one) or locked by another: try the next name.
            Ok(None) | Err(_) => continue,
        }
    }
    Containment::Groups {
        why: format!("no free name for a cgroup below {}", parent.display()),
    }
}

/// The lock on a subtree that tells a live supervisord's subtree from a dead one's: held
/// for the daemon's life (a `flock` on the folder, released however the daemon ends, in
/// whatever PID namespace it runs). `Ok(None)`: another process holds it.
fn lock(dir: &Path) -> io::Result<Option<nix::fcntl::Flock<std::fs::File>>> {
    use nix::fcntl::{Flock, FlockArg};
    use std::os::unix::fs::MetadataExt;
    let file = std::fs::File::open(dir)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            // Still the folder at that path (not removed and made again meanwhile).
            let same = std::fs::metadata(dir)?.ino() == lock.metadata()?.ino();
            Ok(same.then_some(lock))
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(e.into()),
    }
}

fn refused(dir: &Path, e: &io::Error) -> Containment {
    let hint = if e.kind() == io::ErrorKind::PermissionDenied {
        " (run as root, or as a systemd service with Delegate=yes)"
    } else {
        ""
    };
    Containment::Groups {
        why: format!("cannot create the cgroup {}: {e}{hint}", dir.display()),
    }
}

/// The run cgroup job `job`'s process `pid` is in, if it is in one (with containment off,
/// or for a run spawned before, it is not). Blocking: reads `/proc`.
pub fn run_cgroup_of(pid: u32, job: &str) -> Option<RunCgroup> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let (mount, root) = v2_mount(&mountinfo)?;
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = own_path(&text)?;
    let path = path
        .strip_prefix(root.trim_end_matches('/'))
        .unwrap_or(path);
    let name = path.rsplit('/').next()?;
    let parent = path.rsplit('/').nth(1)?;
    if !name.starts_with(&format!("{job}@")) || !parent.starts_with("supervisord-") {
        return None;
    }
    Some(RunCgroup {
        dir: mount.join(path.trim_start_matches('/')),
    })
}

/// Where this daemon's subtree would go, or why there is none. Creates nothing: this is
/// also what `--check` reports.
pub fn probe(setting: Setting) -> Result<PathBuf, String> {
    if setting == Setting::Off {
        return Err("[supervisor] cgroup = \"off\"".into());
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let (mount, root) = v2_mount(&mountinfo).ok_or("no cgroup v2 hierarchy is mounted")?;
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let own = own_path(&cgroup).ok_or("supervisord is in no cgroup v2 (/proc/self/cgroup)")?;
    let own = own
        .strip_prefix(root.trim_end_matches('/'))
        .unwrap_or(own)
        .trim_start_matches('/');
    let dir = mount.join(own);
    if !dir.join("cgroup.procs").exists() {
        return Err(format!(
            "supervisord's cgroup {} is not visible where cgroup v2 is mounted ({})",
            dir.display(),
            mount.display()
        ));
    }
    Ok(dir)
}

/// Kill and remove the `supervisord-<pid>` subtrees below `parent` whose daemon is gone
/// (it and its guard were killed at once). A live supervisord's subtree is left alone.
fn clean_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| n.starts_with("supervisord-")) {
            continue;
        }
        let dir = entry.path();
        // Held: a live supervisord's, in this PID namespace or another.
        let Ok(Some(_held)) = lock(&dir) else {
            continue;
        };
        if children(&dir).is_empty() && std::fs::remove_dir(&dir).is_ok() {
            // Empty: a dead daemon's that ran nothing, or one a starting daemon has just
            // made and not locked yet (it sees it gone and makes another).
            continue;
        }
        let left = procs(&dir).len() + children(&dir).iter().map(|c| procs(c).len()).sum::<usize>();
        destroy(&dir, Duration::from_secs(2));
        tracing::warn!(
            cgroup = %dir.display(),
            processes = left,
            "killed and removed the cgroups of a supervisord that died with its guard"
        );
    }
}

/// The child cgroups of `dir`.
fn children(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// The processes of a cgroup (its `cgroup.procs`).
fn procs(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

fn populated(dir: &Path) -> bool {
    match std::fs::read_to_string(dir.join("cgroup.events")) {
        Ok(t) => is_populated(&t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(_) => true,
    }
}

/// SIGKILL everything in `dir` and below (`cgroup.kill`, else each process, round after
/// round), wait up to `patience` for it to empty, and remove it and its children. Blocking:
/// for the guard and for start-up, never on the runtime.
pub fn destroy(dir: &Path, patience: Duration) {
    let deadline = Instant::now() + patience;
    loop {
        kill(dir);
        if !populated(dir) || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for child in children(dir) {
        let _ = std::fs::remove_dir(child);
    }
    let _ = std::fs::remove_dir(dir);
}

/// SIGKILL every process in `dir` and its descendants: `cgroup.kill` (Linux 5.14), else
/// each process listed (a process forked meanwhile is caught by the next call).
fn kill(dir: &Path) {
    if std::fs::write(dir.join("cgroup.kill"), b"1").is_ok() {
        return;
    }
    for d in std::iter::once(dir.to_path_buf()).chain(children(dir)) {
        signal_listed(&d, Signal::Kill, None);
    }
}

/// Send `sig` to each process listed in `dir`'s `cgroup.procs` except `skip`, each
/// through a pidfd opened first and used only if the pid is still listed after it was
/// opened: then the pidfd is that member (a live pid is one process), and a member that
/// ends meanwhile makes the signal fail harmlessly, never reach a stranger.
fn signal_listed(dir: &Path, sig: Signal, skip: Option<u32>) {
    let fds: Vec<(u32, OwnedFd)> = procs(dir)
        .into_iter()
        .filter(|p| Some(*p) != skip)
        .filter_map(|p| os::pidfd_open(p).map(|fd| (p, fd)))
        .collect();
    if fds.is_empty() {
        return;
    }
    let still: HashSet<u32> = procs(dir).into_iter().collect();
    for (pid, fd) in fds {
        if still.contains(&pid) {
            let _ = os::pidfd_signal(fd.as_fd(), Some(sig));
        }
    }
}

/// This daemon's subtree, `<its cgroup>/supervisord-<pid>`.
#[derive(Debug, Clone)]
pub struct Tree {
    dir: PathBuf,
    /// Held while the daemon lives: tells other daemons the subtree is not a dead one's.
    _lock: Option<std::sync::Arc<nix::fcntl::Flock<std::fs::File>>>,
}

impl Tree {
    /// A tree at `dir` (made by [`setup`], or a temp folder in tests).
    pub fn at(dir: PathBuf) -> Tree {
        Tree { dir, _lock: None }
    }

    /// The subtree's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Make the cgroup of a run, and open its `cgroup.procs` for the child to enter by.
    pub fn create(&self, job: &str, run: u64) -> io::Result<(RunCgroup, OwnedFd)> {
        let dir = self.dir.join(format!("{job}@{run}"));
        std::fs::create_dir(&dir)?;
        let cg = RunCgroup { dir };
        match std::fs::OpenOptions::new()
            .write(true)
            .open(cg.dir.join("cgroup.procs"))
        {
            Ok(f) => Ok((cg, OwnedFd::from(f))),
            Err(e) => {
                cg.remove();
                Err(e)
            }
        }
    }

    /// Remove the subtree at shutdown (every run's cgroup is gone by then; whatever is
    /// not is killed by the guard, or the next daemon).
    pub fn remove(&self) {
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(cgroup = %self.dir.display(), error = %e, "cannot remove supervisord's cgroup");
            }
        }
    }
}

/// One run's cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunCgroup {
    dir: PathBuf,
}

impl RunCgroup {
    /// The cgroup's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Send `sig` to every process of the run. `leader` is the run's leader, still
    /// unreaped, so it is signalled by its pid; the others through pidfds. SIGKILL is
    /// `cgroup.kill`, which also reaches a process forked while the list was read.
    pub fn signal(&self, leader: u32, sig: Signal) {
        if sig == Signal::Kill && std::fs::write(self.dir.join("cgroup.kill"), b"1").is_ok() {
            return;
        }
        os::send_signal(leader, false, sig);
        signal_listed(&self.dir, sig, Some(leader));
    }

    /// SIGKILL everything left in the cgroup.
    pub fn kill(&self) {
        kill(&self.dir);
    }

    /// Whether processes are left (`cgroup.events`).
    pub fn populated(&self) -> bool {
        populated(&self.dir)
    }

    /// Remove the cgroup (it must be empty). True once it is gone.
    pub fn remove(&self) -> bool {
        match std::fs::remove_dir(&self.dir) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => {
                tracing::debug!(cgroup = %self.dir.display(), error = %e, "cannot remove a run's cgroup yet");
                false
            }
        }
    }

    /// CPU time of every process the run had (`cpu.stat` `usage_usec`, kept by the kernel
    /// even without the cpu controller), in milliseconds.
    pub fn cpu_ms(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.dir.join("cpu.stat")).ok()?;
        counter(&text, "usage_usec").map(|us| us / 1000)
    }

    /// Memory charged to the cgroup (`memory.current`), where the memory controller is on.
    pub fn memory_bytes(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.dir.join("memory.current")).ok()?;
        text.trim().parse().ok()
    }

    /// The processes in the cgroup now.
    pub fn pids(&self) -> Vec<u32> {
        procs(&self.dir)
    }

    /// Whether the OOM killer killed a process of the run (`memory.events` `oom_kill`),
    /// where the memory controller is on.
    pub fn oom_killed(&self) -> bool {
        std::fs::read_to_string(self.dir.join("memory.events"))
            .ok()
            .and_then(|t| counter(&t, "oom_kill"))
            .is_some_and(|n| n > 0)
    }
}

/// Watches run cgroups' `cgroup.events` (one inotify descriptor for all of them) and says
/// which ones emptied.
pub struct Watcher {
    fd: tokio::io::unix::AsyncFd<os::InotifyFd>,
    watches: HashMap<WatchDescriptor, RunCgroup>,
}

impl Watcher {
    /// A watcher on the current runtime.
    pub fn new() -> io::Result<Watcher> {
        Ok(Watcher {
            fd: os::async_inotify()?,
            watches: HashMap::new(),
        })
    }

    /// Watch `cg` until it empties. Returns false if it is empty already (nothing is
    /// watched then); the check comes after the watch is set, so no change is missed.
    pub fn watch(&mut self, cg: &RunCgroup) -> io::Result<bool> {
        let wd = self
            .fd
            .get_ref()
            .0
            .add_watch(&cg.dir.join("cgroup.events"), AddWatchFlags::IN_MODIFY)?;
        if !cg.populated() {
            let _ = self.fd.get_ref().0.rm_watch(wd);
            return Ok(false);
        }
        self.watches.insert(wd, cg.clone());
        Ok(true)
    }

    /// How many cgroups are watched.
    pub fn len(&self) -> usize {
        self.watches.len()
    }

    /// Whether nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.watches.is_empty()
    }

    /// The watched cgroups that have emptied since the last call; waits for at least one
    /// event. Each is no longer watched.
    pub async fn emptied(&mut self) -> Vec<RunCgroup> {
        loop {
            let Ok(mut ready) = self.fd.readable().await else {
                return std::future::pending().await;
            };
            let events = match ready.get_inner().0.read_events() {
                Ok(ev) => ev,
                Err(nix::errno::Errno::EAGAIN) => {
                    ready.clear_ready();
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading cgroup events failed");
                    ready.clear_ready();
                    continue;
                }
            };
            drop(ready);
            let touched: HashSet<WatchDescriptor> = events.iter().map(|e| e.wd).collect();
            let mut out = Vec::new();
            for wd in touched {
                let Some(cg) = self.watches.get(&wd) else {
                    continue;
                };
                if !cg.populated() {
                    let _ = self.fd.get_ref().0.rm_watch(wd);
                    if let Some(cg) = self.watches.remove(&wd) {
                        out.push(cg);
                    }
                }
            }
            if !out.is_empty() {
                return out;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn the_v2_mount_is_found_where_it_is_not_the_usual_place() {
        assert_eq!(
            v2_mount(HYBRID),
            Some((PathBuf::from("/sys/fs/cgroup/unified"), "/".to_owned()))
        );
        assert_eq!(
            v2_mount("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"),
            None
        );
        let unified =
            "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            v2_mount(unified).map(|m| m.0),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        let odd = "50 23 0:40 /sub /mnt/my\\040cgroups rw - cgroup2 none rw\n";
        assert_eq!(
            v2_mount(odd),
            Some((PathBuf::from("/mnt/my cgroups"), "/sub".to_owned()))
        );
    }

    #[test]
    fn own_cgroup_is_the_zero_line() {
        let text = "9:name=systemd:/\n4:memory:/process_api/52e1\n0::/system.slice/x.service\n";
        assert_eq!(own_path(text), Some("/system.slice/x.service"));
        assert_eq!(own_path("0::/\n"), Some("/"));
        assert_eq!(own_path("4:memory:/a\n"), None);
    }

    #[test]
    fn populated_and_counters_are_read_from_flat_files() {
        assert!(is_populated("populated 1\nfrozen 0\n"));
        assert!(!is_populated("populated 0\nfrozen 0\n"));
        assert!(is_populated(""), "unreadable counts as populated");
        let stat = "usage_usec 12345678\nuser_usec 10\nsystem_usec 5\n";
        assert_eq!(counter(stat, "usage_usec"), Some(12_345_678));
        assert_eq!(counter(stat, "usage"), None);
        let events = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(counter(events, "oom_kill"), Some(1));
        assert_eq!(counter(events, "oom"), Some(1));
    }

    #[test]
    fn usage_and_oom_come_from_the_cgroup_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cg = RunCgroup {
            dir: dir.path().to_path_buf(),
        };
        assert_eq!(cg.cpu_ms(), None);
        assert_eq!(cg.memory_bytes(), None);
        assert!(!cg.oom_killed(), "no memory controller: no OOM cause");
        std::fs::write(
            dir.path().join("cpu.stat"),
            "usage_usec 2500000\nuser_usec 1\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("memory.current"), "1048576\n").expect("write");
        std::fs::write(
            dir.path().join("memory.events"),
            "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
        )
        .expect("write");
        assert_eq!(cg.cpu_ms(), Some(2500));
        assert_eq!(cg.memory_bytes(), Some(1_048_576));
        assert!(!cg.oom_killed());
        std::fs::write(
            dir.path().join("memory.events"),
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
        )
        .expect("write");
        assert!(cg.oom_killed());
    }

    #[test]
    fn off_probes_nothing() {
        assert_eq!(
            probe(Setting::Off),
            Err("[supervisor] cgroup = \"off\"".into())
        );
    }
}
