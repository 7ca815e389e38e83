//! Containment: a cgroup v2 per run, so nothing a job forks — `setsid`, a double fork —
//! can outlive a stop.
//!
//! At start supervisord finds the cgroup v2 hierarchy where it is mounted (from
//! `/proc/self/mountinfo`: on hybrid hosts it is not `/sys/fs/cgroup`), its own cgroup in
//! it (`/proc/self/cgroup`'s `0::` line), and tries to create `supervisord-<pid>` below
//! its own cgroup. That works as root, or in a service systemd delegated (`Delegate=yes`).
//! If it works, every run is in a cgroup of its own, `<that>/<job>@<n>`, which the child
//! is born in (`clone3` with `CLONE_INTO_CGROUP`; the fork-and-exec fallback writes `0`
//! to its `cgroup.procs` before exec), so the program and all it forks are inside before
//! any of it runs. If it does not, supervisord uses process groups as before and says why
//! ([`Containment`]).
//!
//! A run that ends with its cgroup empty leaves it to the job's next run (never to two
//! runs at once): making and removing a cgroup is most of what a cgroup costs a spawn.
//! Its counters are cumulative, so each run reads them against a [`Baseline`] taken at
//! its start. A cgroup is not used again once it was killed (`cgroup.kill`), nor by a run
//! with other limits.
//!
//! A cgroup ends in four ways: its run stopped (`cgroup.kill` when processes are left,
//! then the run has ended once `cgroup.events` says `populated 0`, seen through inotify,
//! no polling); its leader exited on its own and left processes (kept until they end,
//! killed at the next stop of the job or at shutdown); its job was removed or supervisord
//! stopped (an empty one kept between runs is removed then); supervisord died (the guard
//! writes `cgroup.kill` on the whole `supervisord-<pid>` subtree; if the guard died too,
//! the next supervisord to start below the same cgroup kills and removes subtrees whose
//! daemon is gone).

use crate::os;
use nix::sys::inotify::{AddWatchFlags, WatchDescriptor};
use protocol::Signal;
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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

    /// Which controllers runs' cgroups can have.
    pub fn offer(&self) -> Offer {
        match self {
            Containment::Cgroups(t) => t.offer.clone(),
            Containment::Groups { .. } => Offer::none(&self.describe()),
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

/// The cgroup below `supervisord-<pid>` that supervisord and its guard move into when its
/// own cgroup must hold no process to give runs the memory controller (cgroup v2's "no
/// internal processes" rule). Never a run's name: those have an `@`.
pub const DAEMON_LEAF: &str = "daemon";

/// A cgroup v2 controller a job's limits need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Controller {
    /// `memory.max` (`limits.memory`).
    Memory,
    /// `cpu.max` (`limits.cpu`).
    Cpu,
    /// `pids.max` (`limits.tasks`).
    Pids,
}

impl Controller {
    /// Every controller a limit can need.
    pub const ALL: [Controller; 3] = [Controller::Memory, Controller::Cpu, Controller::Pids];

    /// Its name in `cgroup.controllers`.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Pids => "pids",
        }
    }

    /// A threaded controller may be enabled for the children of a cgroup that holds
    /// processes; a domain one (memory) only below a cgroup without any, or the root.
    fn threaded(self) -> bool {
        !matches!(self, Controller::Memory)
    }
}

/// A cgroup limit's value: a number, or `None` for `max` (no limit).
pub type Max = Option<u64>;

/// `cpu.max`'s period, in microseconds: a quota of `cpu × CPU_PERIOD` per period.
pub const CPU_PERIOD: u64 = 100_000;

/// A job's cgroup limits, written into each run's cgroup before its process enters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// `memory.max`, in bytes.
    pub memory: Option<Max>,
    /// `cpu.max`'s quota, in microseconds per [`CPU_PERIOD`].
    pub cpu: Option<Max>,
    /// `pids.max`.
    pub tasks: Option<Max>,
}

impl Limits {
    /// The controllers these limits need.
    pub fn controllers(&self) -> Vec<Controller> {
        let mut out = Vec::new();
        if self.memory.is_some() {
            out.push(Controller::Memory);
        }
        if self.cpu.is_some() {
            out.push(Controller::Cpu);
        }
        if self.tasks.is_some() {
            out.push(Controller::Pids);
        }
        out
    }

    /// Each file to write in a run's cgroup, and its exact text.
    pub fn files(&self) -> Vec<(&'static str, String)> {
        let max = |v: Max| v.map_or_else(|| "max".to_owned(), |n| n.to_string());
        let mut out = Vec::new();
        if let Some(v) = self.memory {
            out.push(("memory.max", max(v)));
        }
        if let Some(v) = self.cpu {
            out.push(("cpu.max", format!("{} {CPU_PERIOD}", max(v))));
        }
        if let Some(v) = self.tasks {
            out.push(("pids.max", max(v)));
        }
        out
    }
}

/// `limits.cpu`, in CPUs, as `cpu.max`'s quota per [`CPU_PERIOD`] (rounded to the
/// nearest microsecond).
pub fn cpu_quota(cpus: f64) -> Result<u64, String> {
    if !cpus.is_finite() || cpus <= 0.0 {
        return Err(format!(
            "cpu must be a number of CPUs more than 0, such as 0.5 or 2, not {cpus}"
        ));
    }
    let quota = (cpus * CPU_PERIOD as f64).round();
    if quota < 1000.0 {
        return Err(format!(
            "cpu {cpus} is less than 0.01 CPU, the least the kernel takes (1 ms per 100 ms)"
        ));
    }
    if quota > 1e11 {
        return Err(format!("cpu {cpus} is more CPUs than a machine has"));
    }
    // In range: between 1000 and 1e11, a whole number.
    Ok(quota as u64)
}

/// Write `limits` into the cgroup `dir`. An error names the file and the value.
fn write_limits(dir: &Path, limits: &Limits) -> io::Result<()> {
    for (file, value) in limits.files() {
        let path = dir.join(file);
        // Never created: a cgroup's files are the kernel's, and one that is not there
        // (no such controller) is an error, not a new plain file.
        let written = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, value.as_bytes()));
        written.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot write {value:?} to {}: {e}", path.display()),
            )
        })?;
    }
    Ok(())
}

/// Which controllers runs' cgroups can have, and why not the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offer {
    refused: Vec<(Controller, String)>,
}

impl Offer {
    /// Every controller refused: runs get no cgroup (`containment` says why, as
    /// [`Containment::describe`] does).
    pub fn none(containment: &str) -> Offer {
        Offer {
            refused: Controller::ALL
                .iter()
                .map(|c| {
                    (
                        *c,
                        format!("supervisord gives runs no cgroup here ({containment})"),
                    )
                })
                .collect(),
        }
    }

    /// Why runs' cgroups cannot have `c`; `None` when they can.
    pub fn why_not(&self, c: Controller) -> Option<&str> {
        self.refused
            .iter()
            .find(|(r, _)| *r == c)
            .map(|(_, why)| why.as_str())
    }

    /// The controllers runs' cgroups can have.
    pub fn available(&self) -> Vec<Controller> {
        Controller::ALL
            .into_iter()
            .filter(|c| self.why_not(*c).is_none())
            .collect()
    }
}

/// The whitespace-separated words of a cgroup file (`cgroup.controllers`,
/// `cgroup.subtree_control`); none if it cannot be read.
fn words(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| t.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The cgroup supervisord's subtree is made in, as far as giving controllers goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parent {
    dir: PathBuf,
    /// `cgroup.controllers`: what it may give its children.
    controllers: Vec<String>,
    /// `cgroup.subtree_control`: what it gives them now.
    enabled: Vec<String>,
    /// The hierarchy's root, where the "no internal processes" rule does not hold.
    root: bool,
    /// `cgroup.procs`, with whether each is supervisord's (itself or a child of it: the
    /// guard) and so may be moved out of the way.
    procs: Vec<(u32, bool)>,
}

impl Parent {
    fn read(dir: &Path, root: bool) -> Parent {
        let me = std::process::id();
        let ours = |pid: u32| {
            pid == me
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|s| parent_pid(&s))
                    == Some(me)
        };
        Parent {
            dir: dir.to_path_buf(),
            controllers: words(&dir.join("cgroup.controllers")),
            enabled: words(&dir.join("cgroup.subtree_control")),
            root,
            // The root's processes do not matter (it may enable anything), and on a host
            // that is every process not in a service: not read.
            procs: match root {
                true => Vec::new(),
                false => procs(dir).into_iter().map(|p| (p, ours(p))).collect(),
            },
        }
    }

    /// What it takes to give runs `c`, or why it cannot be done. Creates nothing: this
    /// is `--check`'s verdict too.
    fn plan(&self, c: Controller) -> Result<Step, String> {
        self.plan_named(c.name(), c.threaded())
    }

    /// [`Parent::plan`] for the controller `name`, threaded or not.
    fn plan_named(&self, name: &str, threaded: bool) -> Result<Step, String> {
        if !self.controllers.iter().any(|w| w == name) {
            let lists = if self.controllers.is_empty() {
                "none".to_owned()
            } else {
                self.controllers.join(" ")
            };
            return Err(format!(
                "{} does not offer it (its cgroup.controllers lists {lists})",
                self.dir.display()
            ));
        }
        if self.enabled.iter().any(|w| w == name) {
            return Ok(Step::Ready);
        }
        if threaded || self.root || self.procs.is_empty() {
            return Ok(Step::Enable);
        }
        let strangers: Vec<String> = self
            .procs
            .iter()
            .filter(|(_, ours)| !ours)
            .map(|(p, _)| p.to_string())
            .collect();
        if strangers.is_empty() {
            return Ok(Step::MoveThenEnable);
        }
        Err(format!(
            "{} also holds other processes (pid {}), and cgroup v2 gives the {name} \
             controller only to the children of a cgroup that holds no process; run \
             supervisord in a cgroup of its own (a systemd service with Delegate=yes)",
            self.dir.display(),
            strangers.join(", ")
        ))
    }
}

/// The parent pid in a `/proc/PID/stat` line (the field after the state, which follows
/// the command name's closing parenthesis).
fn parent_pid(stat: &str) -> Option<u32> {
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// What giving runs a controller takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The parent gives it already.
    Ready,
    /// Write `+name` to the parent's `cgroup.subtree_control`.
    Enable,
    /// Move supervisord and its guard into [`DAEMON_LEAF`] first.
    MoveThenEnable,
}

/// Enable controller `name` for the children of cgroup `dir`.
fn enable_in(dir: &Path, name: &str) -> io::Result<()> {
    std::fs::write(dir.join("cgroup.subtree_control"), format!("+{name}"))
}

/// Move every process in `from` (supervisord and its guard, checked by the caller) into
/// `<tree>/daemon`.
fn move_in(from: &Path, tree: &Path) -> io::Result<()> {
    let leaf = tree.join(DAEMON_LEAF);
    match std::fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for pid in procs(from) {
        std::fs::write(leaf.join("cgroup.procs"), pid.to_string())?;
    }
    Ok(())
}

/// Give runs' cgroups in the subtree `tree` (below `parent`) the controller `c`: enable
/// it in `parent` (moving supervisord and its guard into [`DAEMON_LEAF`] first if the
/// plan says so), then in `tree`. An error says what failed, naming the file.
fn give(parent: &Path, tree: &Path, c: Controller) -> Result<(), String> {
    give_named(parent, tree, c.name(), c.threaded())
}

/// [`give`] for the controller `name`, threaded or not.
fn give_named(parent: &Path, tree: &Path, name: &str, threaded: bool) -> Result<(), String> {
    let step = Parent::read(parent, is_root(parent)).plan_named(name, threaded)?;
    if step == Step::MoveThenEnable {
        move_in(parent, tree).map_err(|e| {
            format!(
                "cannot move supervisord into {}: {e}",
                tree.join(DAEMON_LEAF).display()
            )
        })?;
    }
    if step != Step::Ready {
        enable_in(parent, name).map_err(|e| {
            format!(
                "cannot enable it in {}: {e}",
                parent.join("cgroup.subtree_control").display()
            )
        })?;
    }
    if !words(&tree.join("cgroup.controllers"))
        .iter()
        .any(|w| w == name)
    {
        return Err(format!(
            "{} does not list it in its cgroup.controllers",
            tree.display()
        ));
    }
    enable_in(tree, name).map_err(|e| {
        format!(
            "cannot enable it in {}: {e}",
            tree.join("cgroup.subtree_control").display()
        )
    })
}

/// Which controllers supervisord could give runs' cgroups below `parent`, from the files
/// alone: the verdict of [`setup`] and of `--check` alike.
fn offer_of(parent: &Path) -> Offer {
    let state = Parent::read(parent, is_root(parent));
    Offer {
        refused: Controller::ALL
            .into_iter()
            .filter_map(|c| state.plan(c).err().map(|why| (c, why)))
            .collect(),
    }
}

/// Whether `dir` is the hierarchy's root cgroup: the one cgroup without `cgroup.events`.
fn is_root(dir: &Path) -> bool {
    !dir.join("cgroup.events").exists()
}

/// The controllers runs would get, as [`setup`] would find them, creating nothing: what
/// `--check` reports, and so refuses a job file on.
pub fn predict(setting: Setting) -> (Result<PathBuf, String>, Offer) {
    match probe(setting) {
        Ok(parent) => {
            let offer = offer_of(&parent);
            (Ok(parent), offer)
        }
        Err(why) => {
            let offer = Offer::none(&format!("process groups only: {why}"));
            (Err(why), offer)
        }
    }
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
                    offer: offer_of(&parent),
                    parent: parent.clone(),
                    memory: false,
                    _lock: Some(std::sync::Arc::new(lock)),
                });
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
    // The root: the mount itself (joining "" would add a trailing slash).
    let dir = match own {
        "" => mount.clone(),
        own => mount.join(own),
    };
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
    let leaf = dir.join(DAEMON_LEAF);
    let subtree = dir
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("supervisord-"));
    if subtree && leaf.exists() {
        // The daemon (and so its guard, which may be the caller) moved into the subtree:
        // the runs are killed one by one, never the leaf, which holds no job.
        let runs: Vec<PathBuf> = children(dir).into_iter().filter(|c| *c != leaf).collect();
        for run in &runs {
            kill(run);
        }
        for run in &runs {
            destroy(run, patience);
        }
        let _ = std::fs::remove_dir(&leaf);
        let _ = std::fs::remove_dir(dir);
        return;
    }
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
    /// The controllers its runs can have.
    offer: Offer,
    /// The cgroup it is in (supervisord's own).
    parent: PathBuf,
    /// Whether runs' cgroups have the memory controller (so count OOM kills).
    memory: bool,
    /// Held while the daemon lives: tells other daemons the subtree is not a dead one's.
    _lock: Option<std::sync::Arc<nix::fcntl::Flock<std::fs::File>>>,
}

impl Tree {
    /// A tree at `dir` (made by [`setup`], or a temp folder in tests).
    pub fn at(dir: PathBuf) -> Tree {
        Tree {
            parent: dir.parent().map(Path::to_path_buf).unwrap_or_default(),
            dir,
            offer: Offer::default(),
            memory: false,
            _lock: None,
        }
    }

    /// The subtree's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The controllers its runs can have.
    pub fn offer(&self) -> &Offer {
        &self.offer
    }

    /// Give runs' cgroups the controllers `wanted` (by jobs' limits) that they do not
    /// have yet: enabled in supervisord's cgroup and then in the subtree, each once and
    /// until shutdown, so a file without limits costs runs no controller. One that cannot
    /// be given after all is refused from then on ([`Tree::offer`]) and logged.
    pub fn enable(&mut self, wanted: &[Controller]) {
        for &c in wanted {
            if self.offer.why_not(c).is_some()
                || words(&self.dir.join("cgroup.subtree_control"))
                    .iter()
                    .any(|w| w == c.name())
            {
                continue;
            }
            match give(&self.parent, &self.dir, c) {
                Ok(()) => {
                    tracing::info!(controller = c.name(), cgroup = %self.dir.display(), "runs' cgroups have the controller")
                }
                Err(why) => {
                    tracing::warn!(
                        controller = c.name(),
                        "cannot give runs the controller: {why}"
                    );
                    self.offer.refused.push((c, why));
                }
            }
        }
        self.memory = words(&self.dir.join("cgroup.subtree_control"))
            .iter()
            .any(|w| w == Controller::Memory.name());
    }

    /// The cgroup for run `run` of `job`, with `limits` written into it, and its folder
    /// opened for the child to be born in (`CLONE_INTO_CGROUP`, or a fork-and-exec
    /// spawn entering through its `cgroup.procs`). `spare` is the job's cgroup from an
    /// earlier run, found empty when that run ended: it is used again when it has the
    /// same limits (no `mkdir`/`rmdir` for the kernel to do on every run), else removed.
    /// A new one is `<job>@<run>`. An error names the file.
    ///
    /// `measure`: usage has been asked for, so a cgroup used again has its CPU counter
    /// read now, for this run's to count from. Not otherwise: reading `cpu.stat` makes
    /// the kernel flush every CPU's pending counts (tens of microseconds a run), and
    /// nothing is measured unless asked.
    pub fn create(
        &self,
        job: &str,
        run: u64,
        limits: &Limits,
        spare: Option<RunCgroup>,
        measure: bool,
    ) -> io::Result<(RunCgroup, OwnedFd)> {
        if let Some(spare) = spare {
            if spare.at.limits == *limits && spare.reusable() {
                match spare.again(measure) {
                    Ok(again) => return Ok(again),
                    Err(e) => {
                        tracing::debug!(cgroup = %spare.dir().display(), error = %e, "cannot use a job's cgroup again; making another")
                    }
                }
            }
            spare.remove();
        }
        let dir = self.dir.join(format!("{job}@{run}"));
        std::fs::create_dir(&dir)?;
        let cg = RunCgroup::new(dir, self.memory, *limits);
        // The folder itself: what a spawn born in the cgroup (`CLONE_INTO_CGROUP`) needs
        // (a path descriptor is enough, and spares the kernel opening the folder), and
        // where a fork-and-exec spawn finds `cgroup.procs` to write itself to.
        match write_limits(cg.dir(), limits).and_then(|()| open_path(cg.dir())) {
            Ok(fd) => Ok((cg, fd)),
            Err(e) => {
                cg.remove();
                Err(e)
            }
        }
    }

    /// Remove the subtree at shutdown (every run's cgroup is gone by then; whatever is
    /// not is killed by the guard, or the next daemon). Not if the daemon moved itself
    /// into [`DAEMON_LEAF`]: it cannot remove the cgroup it is in; the next supervisord
    /// started there, or systemd when the service stops, removes both.
    pub fn remove(&self) {
        if self.dir.join(DAEMON_LEAF).exists() {
            tracing::debug!(cgroup = %self.dir.display(), "supervisord is in its own subtree and leaves it in place");
            return;
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(cgroup = %self.dir.display(), error = %e, "cannot remove supervisord's cgroup");
            }
        }
    }
}

/// The folder `dir` opened as a path (what `CLONE_INTO_CGROUP` takes).
fn open_path(dir: &Path) -> io::Result<OwnedFd> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_PATH | nix::libc::O_DIRECTORY)
        .open(dir)
        .map(OwnedFd::from)
}

/// One run's cgroup. A job's next run uses it again once it is empty (never two runs at
/// once), so the counters that are the run's own are read against where they stood when
/// the run began. Small (the folder is shared: the supervisor, the run's task and the
/// watcher each hold a copy, and a job's entry holds one between runs).
#[derive(Debug, Clone)]
pub struct RunCgroup {
    at: Arc<CgroupAt>,
    /// Its counters when this run began (zero in a new cgroup).
    base: Baseline,
}

/// What every run in a cgroup shares.
#[derive(Debug)]
struct CgroupAt {
    dir: PathBuf,
    /// Whether it has the memory controller (`memory.events` counts OOM kills).
    memory: bool,
    /// The limits written into it.
    limits: Limits,
    /// Set once `cgroup.kill` was written (by any copy): such a cgroup is never used
    /// again. Linux 6.18 (at least) SIGKILLs every child later born into a cgroup whose
    /// `cgroup.kill` was ever written (`clone3` with `CLONE_INTO_CGROUP` compares the
    /// target's kill count with the parent cgroup's), so its next run would die at once.
    killed: AtomicBool,
}

impl RunCgroup {
    /// The cgroup at `dir`, new (nothing counted yet).
    fn new(dir: PathBuf, memory: bool, limits: Limits) -> RunCgroup {
        RunCgroup {
            at: Arc::new(CgroupAt {
                dir,
                memory,
                limits,
                killed: AtomicBool::new(false),
            }),
            base: Baseline::default(),
        }
    }
}

/// A cgroup's cumulative counters as they stood when a run began in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Baseline {
    /// `cpu.stat` `usage_usec`; `None` when not read (see [`Tree::create`]'s `measure`).
    pub cpu_usec: Option<u64>,
    /// `memory.events` `oom_kill`.
    pub oom_kills: u64,
}

impl Default for Baseline {
    /// A new cgroup's: nothing counted yet.
    fn default() -> Self {
        Baseline {
            cpu_usec: Some(0),
            oom_kills: 0,
        }
    }
}

// A cgroup is its folder: the same one whatever run it is counted for.
impl PartialEq for RunCgroup {
    fn eq(&self, other: &Self) -> bool {
        self.at.dir == other.at.dir
    }
}

impl Eq for RunCgroup {}

impl std::hash::Hash for RunCgroup {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.at.dir.hash(state);
    }
}

impl RunCgroup {
    /// The cgroup's folder.
    pub fn dir(&self) -> &Path {
        &self.at.dir
    }

    /// Send `sig` to every process of the run. `leader` is the run's leader, still
    /// unreaped, so it is signalled by its pid; the others through pidfds. SIGKILL is
    /// `cgroup.kill`, which also reaches a process forked while the list was read.
    pub fn signal(&self, leader: u32, sig: Signal) {
        if sig == Signal::Kill {
            self.at.killed.store(true, Ordering::Relaxed);
            if std::fs::write(self.at.dir.join("cgroup.kill"), b"1").is_ok() {
                return;
            }
        }
        os::send_signal(leader, false, sig);
        signal_listed(&self.at.dir, sig, Some(leader));
    }

    /// SIGKILL everything left in the cgroup.
    pub fn kill(&self) {
        self.at.killed.store(true, Ordering::Relaxed);
        kill(&self.at.dir);
    }

    /// Whether a later run may use the cgroup again: never once it was killed.
    pub fn reusable(&self) -> bool {
        !self.at.killed.load(Ordering::Relaxed)
    }

    /// Whether processes are left (`cgroup.events`).
    pub fn populated(&self) -> bool {
        populated(&self.at.dir)
    }

    /// Remove the cgroup (it must be empty). True once it is gone.
    pub fn remove(&self) -> bool {
        match self.remove_if_empty() {
            Ok(gone) => gone,
            Err(e) => {
                tracing::debug!(cgroup = %self.at.dir.display(), error = %e, "cannot remove a run's cgroup yet");
                false
            }
        }
    }

    /// Remove the cgroup if it is empty: `Ok(true)` once it is gone, `Ok(false)` while
    /// processes are left in it (the kernel refuses with `EBUSY`). One system call, and
    /// the quickest way to learn that a run's cgroup emptied when it almost always has.
    pub fn remove_if_empty(&self) -> io::Result<bool> {
        match std::fs::remove_dir(&self.at.dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The cgroup for another run of the same job, found empty when the last one ended:
    /// its counters read as they stand now (this run's start; the CPU counter only if
    /// `measure`), its folder opened.
    fn again(&self, measure: bool) -> io::Result<(RunCgroup, OwnedFd)> {
        let fd = open_path(&self.at.dir)?;
        let cpu_usec = if measure {
            Some(read_counter(&self.at.dir.join("cpu.stat"), "usage_usec")?)
        } else {
            None
        };
        let oom_kills = if self.at.memory {
            read_counter(&self.at.dir.join("memory.events"), "oom_kill")?
        } else {
            0
        };
        let cg = RunCgroup {
            base: Baseline {
                cpu_usec,
                oom_kills,
            },
            ..self.clone()
        };
        Ok((cg, fd))
    }

    /// Where this run's counters started.
    pub fn baseline(&self) -> Baseline {
        self.base
    }

    /// CPU time of every process the run had (`cpu.stat` `usage_usec`, kept by the kernel
    /// even without the cpu controller, less what earlier runs in the cgroup used), in
    /// milliseconds. `None` when that is not known (the counter was not read when the run
    /// began in a cgroup used again).
    pub fn cpu_ms(&self) -> Option<u64> {
        let base = self.base.cpu_usec?;
        let text = std::fs::read_to_string(self.at.dir.join("cpu.stat")).ok()?;
        counter(&text, "usage_usec").map(|us| us.saturating_sub(base) / 1000)
    }

    /// Memory charged to the cgroup (`memory.current`), where the memory controller is on.
    pub fn memory_bytes(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.at.dir.join("memory.current")).ok()?;
        text.trim().parse().ok()
    }

    /// The processes in the cgroup now.
    pub fn pids(&self) -> Vec<u32> {
        procs(&self.at.dir)
    }

    /// Whether the OOM killer killed a process of this run (`memory.events` `oom_kill`
    /// above where it stood when the run began), where the memory controller is on.
    pub fn oom_killed(&self) -> bool {
        self.at.memory
            && std::fs::read_to_string(self.at.dir.join("memory.events"))
                .ok()
                .and_then(|t| counter(&t, "oom_kill"))
                .is_some_and(|n| n > self.base.oom_kills)
    }
}

/// A counter of a flat-keyed cgroup file; a file without it reads as 0 (a kernel that
/// does not keep it).
fn read_counter(file: &Path, key: &str) -> io::Result<u64> {
    Ok(counter(&std::fs::read_to_string(file)?, key).unwrap_or(0))
}

/// Removes emptied runs' cgroups on a thread of its own: `rmdir` of a cgroup is the
/// costliest step of a run's end (the kernel takes down its files and its controllers'
/// state), and nothing waits for it — the run's end is known once the cgroup is found
/// empty. Dropping the janitor lets it finish what it was given; [`Janitor::finish`]
/// waits for that.
pub struct Janitor {
    tx: Option<std::sync::mpsc::Sender<RunCgroup>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Janitor {
    /// Start the thread.
    pub fn start() -> io::Result<Janitor> {
        let (tx, rx) = std::sync::mpsc::channel::<RunCgroup>();
        let thread = std::thread::Builder::new()
            .name("cgroup-janitor".into())
            .spawn(move || {
                for cg in rx {
                    match cg.remove_if_empty() {
                        Ok(true) => {}
                        // Found empty by the supervisor: only something outside can have
                        // moved a process in since. It stays, and is killed with the
                        // subtree at shutdown.
                        Ok(false) => tracing::warn!(cgroup = %cg.dir().display(), "an emptied run's cgroup has processes again; left until shutdown"),
                        Err(e) => tracing::warn!(cgroup = %cg.dir().display(), error = %e, "cannot remove an emptied run's cgroup"),
                    }
                }
            })?;
        Ok(Janitor {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Remove `cg`, which was found empty, soon. False if the thread is gone (the caller
    /// removes it then).
    pub fn remove(&self, cg: RunCgroup) -> Result<(), RunCgroup> {
        match &self.tx {
            Some(tx) => tx.send(cg).map_err(|e| e.0),
            None => Err(cg),
        }
    }

    /// Let the thread remove what it was given, and wait until it has. Blocking: call it
    /// off the runtime.
    pub fn finish(mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
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
            .add_watch(&cg.dir().join("cgroup.events"), AddWatchFlags::IN_MODIFY)?;
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
        let cg = RunCgroup::new(dir.path().to_path_buf(), true, Limits::default());
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
        let without = RunCgroup::new(dir.path().to_path_buf(), false, Limits::default());
        assert!(
            !without.oom_killed(),
            "a cgroup without the memory controller is not asked"
        );
    }

    #[test]
    fn a_jobs_next_run_uses_its_empty_cgroup_again_counting_from_its_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = Tree {
            memory: true,
            ..Tree::at(dir.path().to_path_buf())
        };
        let (first, _fd) = tree
            .create("j", 1, &Limits::default(), None, true)
            .expect("made");
        assert_eq!(first.dir(), dir.path().join("j@1"));
        assert_eq!(first.baseline(), Baseline::default());
        // What the kernel keeps in a cgroup across runs: the first run used 5 ms of CPU
        // and had a process killed by the OOM killer.
        let stat = first.dir().join("cpu.stat");
        let events = first.dir().join("memory.events");
        std::fs::write(&stat, "usage_usec 5000\nuser_usec 4000\n").expect("write");
        std::fs::write(&events, "oom 1\noom_kill 1\n").expect("write");
        assert_eq!(first.cpu_ms(), Some(5));
        assert!(first.oom_killed());

        // Used again before anyone asked for usage: the CPU counter is not read (its
        // usage is not known from the cgroup), the OOM count is.
        let (unmeasured, _fd) = tree
            .create("j", 2, &Limits::default(), Some(first.clone()), false)
            .expect("used again");
        assert_eq!(unmeasured, first, "the same cgroup");
        assert_eq!(
            unmeasured.baseline(),
            Baseline {
                cpu_usec: None,
                oom_kills: 1
            }
        );
        assert_eq!(unmeasured.cpu_ms(), None);
        assert!(!unmeasured.oom_killed());

        let (second, _fd) = tree
            .create("j", 2, &Limits::default(), Some(first.clone()), true)
            .expect("used again");
        assert_eq!(second, first, "the same cgroup");
        assert!(!dir.path().join("j@2").exists(), "no new one made");
        assert_eq!(
            second.baseline(),
            Baseline {
                cpu_usec: Some(5000),
                oom_kills: 1
            }
        );
        assert_eq!(
            second.cpu_ms(),
            Some(0),
            "the first run's CPU is not this run's"
        );
        assert!(!second.oom_killed(), "nor its OOM kill");
        std::fs::write(&stat, "usage_usec 7600\n").expect("write");
        std::fs::write(&events, "oom 2\noom_kill 2\n").expect("write");
        assert_eq!(second.cpu_ms(), Some(2));
        assert!(second.oom_killed());

        // Killed (`cgroup.kill` written, as a stop that found processes left does): never
        // used again.
        let (killed, _fd) = tree
            .create("j", 5, &Limits::default(), Some(second.clone()), true)
            .expect("used again");
        assert_eq!(killed, second);
        assert!(killed.reusable());
        killed.kill();
        assert!(!second.reusable(), "every copy knows");
        let (other, _fd) = tree
            .create("j", 6, &Limits::default(), Some(second.clone()), true)
            .expect("made");
        assert_eq!(other.dir(), dir.path().join("j@6"));
        assert!(other.remove());
        std::fs::remove_file(second.dir().join("cgroup.kill")).expect("rm");

        // Other limits (a reload changed them): the old cgroup goes, a new one is made
        // (with the new limits written, which a plain folder here cannot show).
        std::fs::remove_file(&stat).expect("rm");
        std::fs::remove_file(&events).expect("rm");
        let limited = RunCgroup::new(
            second.dir().to_path_buf(),
            true,
            Limits {
                tasks: Some(Some(7)),
                ..Limits::default()
            },
        );
        assert!(limited.reusable(), "only its limits differ");
        let (third, _fd) = tree
            .create("j", 3, &Limits::default(), Some(limited), true)
            .expect("made");
        assert_eq!(third.dir(), dir.path().join("j@3"));
        assert!(!dir.path().join("j@1").exists(), "the old one is removed");
        assert_eq!(third.baseline(), Baseline::default());

        // A spare that is gone (removed from outside): a new one is made.
        assert!(third.remove());
        let (fourth, _fd) = tree
            .create("j", 4, &Limits::default(), Some(third), true)
            .expect("made");
        assert_eq!(fourth.dir(), dir.path().join("j@4"));
    }

    #[test]
    fn a_runs_cgroup_handle_stays_small() {
        // Every job's entry holds one inline (its run's, or its cgroup kept between
        // runs): what the folder and limits take is behind one shared pointer.
        assert!(std::mem::size_of::<RunCgroup>() <= 32);
        assert!(std::mem::size_of::<Option<RunCgroup>>() <= 32);
    }

    #[test]
    fn off_probes_nothing() {
        assert_eq!(
            probe(Setting::Off),
            Err("[supervisor] cgroup = \"off\"".into())
        );
    }

    #[test]
    fn limits_are_written_as_the_exact_text_of_each_file() {
        let l = Limits {
            memory: Some(Some(512 << 20)),
            cpu: Some(Some(cpu_quota(1.5).expect("1.5 CPUs"))),
            tasks: Some(Some(64)),
        };
        assert_eq!(
            l.files(),
            vec![
                ("memory.max", "536870912".to_owned()),
                ("cpu.max", "150000 100000".to_owned()),
                ("pids.max", "64".to_owned()),
            ]
        );
        assert_eq!(
            l.controllers(),
            vec![Controller::Memory, Controller::Cpu, Controller::Pids]
        );
        let unlimited = Limits {
            memory: Some(None),
            cpu: Some(None),
            tasks: None,
        };
        assert_eq!(
            unlimited.files(),
            vec![
                ("memory.max", "max".to_owned()),
                ("cpu.max", "max 100000".to_owned()),
            ]
        );
        assert!(Limits::default().files().is_empty());
        assert!(Limits::default().controllers().is_empty());

        // A folder laid out like a cgroup with the three controllers: the files exist.
        let dir = tempfile::tempdir().expect("tempdir");
        for file in ["memory.max", "cpu.max", "pids.max"] {
            std::fs::write(dir.path().join(file), "max\n").expect("controller file");
        }
        write_limits(dir.path(), &l).expect("write");
        for (file, text) in [
            ("memory.max", "536870912"),
            ("cpu.max", "150000 100000"),
            ("pids.max", "64"),
        ] {
            assert_eq!(
                std::fs::read(dir.path().join(file)).expect("read"),
                text.as_bytes(),
                "{file}"
            );
        }
    }

    #[test]
    fn cpu_is_a_quota_per_100ms_rounded_to_the_microsecond() {
        assert_eq!(cpu_quota(1.0), Ok(100_000));
        assert_eq!(cpu_quota(0.5), Ok(50_000));
        assert_eq!(cpu_quota(2.0), Ok(200_000));
        assert_eq!(cpu_quota(0.333_337), Ok(33_334), "rounded up");
        assert_eq!(cpu_quota(0.333_332), Ok(33_333), "rounded down");
        assert_eq!(cpu_quota(0.01), Ok(1000), "the kernel's least quota");
        for bad in [0.0, -1.0, 0.009, f64::NAN, f64::INFINITY, 1e7] {
            assert!(cpu_quota(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_limit_that_cannot_be_written_names_the_file_and_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A folder where the file should be: the write fails as a missing controller's
        // file would (the kernel has no such file), and the error says which.
        std::fs::create_dir(dir.path().join("pids.max")).expect("mkdir");
        let l = Limits {
            tasks: Some(Some(5)),
            ..Limits::default()
        };
        let e = write_limits(dir.path(), &l)
            .expect_err("refused")
            .to_string();
        assert!(
            e.starts_with("cannot write \"5\" to ") && e.contains("pids.max"),
            "{e}"
        );
        // Tree::create removes the run's cgroup again when it cannot be made whole (a
        // plain folder has no pids.max to write).
        let tree = Tree::at(dir.path().to_path_buf());
        let e = tree
            .create("j", 2, &l, None, false)
            .expect_err("no pids.max here");
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        assert!(
            !dir.path().join("j@2").exists(),
            "removed after the failure"
        );
    }

    fn parent(controllers: &str, enabled: &str, root: bool, procs: &[(u32, bool)]) -> Parent {
        let w = |t: &str| t.split_whitespace().map(str::to_owned).collect();
        Parent {
            dir: PathBuf::from("/cg/app.service"),
            controllers: w(controllers),
            enabled: w(enabled),
            root,
            procs: procs.to_vec(),
        }
    }

    #[test]
    fn the_plan_follows_the_no_internal_processes_rule() {
        use Controller::*;
        // Not offered by the parent: refused, naming what it offers.
        let p = parent("hugetlb", "", false, &[]);
        let e = p.plan(Memory).expect_err("not offered");
        assert!(
            e.contains("/cg/app.service does not offer it") && e.contains("lists hugetlb"),
            "{e}"
        );
        let e = parent("", "", false, &[]).plan(Pids).expect_err("none");
        assert!(e.contains("lists none"), "{e}");
        // Given already.
        let mine = [(10, true), (11, true)];
        let p = parent("cpu memory pids", "memory", false, &mine);
        assert_eq!(p.plan(Memory), Ok(Step::Ready));
        // Threaded controllers may be given by a cgroup that holds processes.
        assert_eq!(p.plan(Cpu), Ok(Step::Enable));
        assert_eq!(p.plan(Pids), Ok(Step::Enable));
        // memory, below a cgroup with only supervisord and its guard: they move first.
        let p = parent("cpu memory pids", "", false, &mine);
        assert_eq!(p.plan(Memory), Ok(Step::MoveThenEnable));
        // ... with nobody in it, or at the root: at once.
        assert_eq!(
            parent("memory", "", false, &[]).plan(Memory),
            Ok(Step::Enable)
        );
        assert_eq!(
            parent("memory", "", true, &[(1, false), (10, true)]).plan(Memory),
            Ok(Step::Enable)
        );
        // ... with a stranger in it: refused, naming it.
        let p = parent("memory pids", "", false, &[(10, true), (77, false)]);
        let e = p.plan(Memory).expect_err("stranger");
        assert!(
            e.contains("pid 77") && !e.contains("pid 10") && e.contains("memory controller"),
            "{e}"
        );
        assert_eq!(p.plan(Pids), Ok(Step::Enable));
    }

    #[test]
    fn the_parent_is_read_from_its_files_and_own_processes_are_told_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("cgroup.controllers"),
            "cpu io memory pids\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("cgroup.subtree_control"), "cpu\n").expect("write");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let me = std::process::id();
        std::fs::write(
            dir.path().join("cgroup.procs"),
            format!("1\n{me}\n{}\n", child.id()),
        )
        .expect("write");
        let p = Parent::read(dir.path(), false);
        assert!(
            Parent::read(dir.path(), true).procs.is_empty(),
            "the root's processes are not read"
        );
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(p.controllers, ["cpu", "io", "memory", "pids"]);
        assert_eq!(p.enabled, ["cpu"]);
        assert_eq!(
            p.procs,
            vec![(1, false), (me, true), (child.id(), true)],
            "init is not ours; this process and its child are"
        );
        assert_eq!(parent_pid("5 (a) b) S 42 5 5 0"), Some(42));
    }

    #[test]
    fn controllers_are_given_on_demand_down_to_the_subtree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let parent = dir.path().join("p");
        let tree = parent.join("supervisord-1");
        std::fs::create_dir_all(&tree).expect("mkdir");
        // A non-root parent (it has cgroup.events) holding no process.
        std::fs::write(parent.join("cgroup.events"), "populated 0\n").expect("write");
        std::fs::write(parent.join("cgroup.controllers"), "cpu\n").expect("write");
        std::fs::write(parent.join("cgroup.subtree_control"), "").expect("write");
        std::fs::write(parent.join("cgroup.procs"), "").expect("write");
        std::fs::write(tree.join("cgroup.subtree_control"), "").expect("write");
        let offer = offer_of(&parent);
        assert_eq!(offer.available(), [Controller::Cpu]);
        for c in [Controller::Memory, Controller::Pids] {
            let why = offer.why_not(c).expect("refused");
            assert!(why.contains("does not offer it"), "{why}");
        }
        let mut t = Tree {
            dir: tree.clone(),
            parent: parent.clone(),
            offer,
            memory: false,
            _lock: None,
        };
        // Nothing wanted: nothing written.
        t.enable(&[]);
        let read =
            |p: &Path| std::fs::read_to_string(p.join("cgroup.subtree_control")).expect("read");
        assert_eq!((read(&parent), read(&tree)), (String::new(), String::new()));
        // The kernel would list it in the subtree once the parent gives it.
        std::fs::write(tree.join("cgroup.controllers"), "cpu\n").expect("write");
        t.enable(&[Controller::Cpu, Controller::Memory]);
        assert_eq!(read(&parent), "+cpu", "given by the parent");
        assert_eq!(read(&tree), "+cpu", "and by the subtree");
        assert_eq!(t.offer().available(), [Controller::Cpu]);
        // On already: not written again.
        std::fs::write(tree.join("cgroup.subtree_control"), "cpu\n").expect("write");
        std::fs::write(parent.join("cgroup.subtree_control"), "cpu\n").expect("write");
        t.enable(&[Controller::Cpu]);
        assert_eq!(read(&tree), "cpu\n");
        assert!(
            !t.memory,
            "no memory controller: OOM kills are not looked for"
        );
        std::fs::write(tree.join("cgroup.subtree_control"), "cpu memory\n").expect("write");
        t.enable(&[]);
        assert!(
            t.memory,
            "runs have the memory controller: OOM kills are counted"
        );
        std::fs::write(tree.join("cgroup.subtree_control"), "cpu\n").expect("write");
        // Offered, but the subtree does not get it after all: refused from then on.
        std::fs::write(parent.join("cgroup.controllers"), "cpu pids\n").expect("write");
        let mut t = Tree {
            offer: offer_of(&parent),
            ..t
        };
        assert_eq!(t.offer().available(), [Controller::Cpu, Controller::Pids]);
        t.enable(&[Controller::Pids]);
        let why = t.offer().why_not(Controller::Pids).expect("refused now");
        assert!(
            why.contains("does not list it in its cgroup.controllers"),
            "{why}"
        );
    }

    #[test]
    fn destroying_a_subtree_the_daemon_moved_into_kills_the_runs_not_the_daemon() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = dir.path().join("supervisord-7");
        for d in [DAEMON_LEAF, "web@1", "web@1/daemon"] {
            std::fs::create_dir_all(tree.join(d)).expect("mkdir");
        }
        destroy(&tree, Duration::ZERO);
        let killed = |d: &str| std::fs::read_to_string(tree.join(d).join("cgroup.kill")).ok();
        assert_eq!(
            killed("web@1"),
            Some("1".to_owned()),
            "the run is killed whole"
        );
        assert_eq!(
            killed(DAEMON_LEAF),
            None,
            "never the daemon's (and guard's) leaf"
        );
        assert_eq!(killed(""), None, "nor the subtree, which holds the leaf");
        // Without the leaf, the subtree is killed whole, as before.
        let plain = dir.path().join("supervisord-8");
        std::fs::create_dir_all(plain.join("web@1")).expect("mkdir");
        destroy(&plain, Duration::ZERO);
        assert!(plain.join("cgroup.kill").exists());
    }

    #[test]
    fn without_cgroups_every_limit_is_refused_saying_why() {
        let c = Containment::Groups {
            why: "[supervisor] cgroup = \"off\"".into(),
        };
        let offer = c.offer();
        assert!(offer.available().is_empty());
        let why = offer.why_not(Controller::Cpu).expect("refused");
        assert!(
            why.contains("no cgroup") && why.contains("cgroup = \"off\""),
            "{why}"
        );
        let (dir, offer) = predict(Setting::Off);
        assert!(dir.is_err());
        assert!(offer.why_not(Controller::Memory).is_some());
    }

    /// The enabling path on the real kernel, with the controller this host's cgroup v2
    /// has (hugetlb, a domain controller like memory): given down a chain of cgroups it
    /// shows in a run's `cgroup.controllers`; below a cgroup that holds a stranger the
    /// kernel refuses it as the plan says; below one that holds only a child of ours,
    /// moving the child into the leaf first makes it work.
    #[test]
    fn a_domain_controller_reaches_a_run_through_the_real_hierarchy() {
        const TEST: &str =
            "cgroup::tests::a_domain_controller_reaches_a_run_through_the_real_hierarchy";
        let skip = |why: &str| eprintln!("SKIPPED {TEST}: {why}");
        if !nix::unistd::geteuid().is_root() {
            return skip("needs root to create cgroups");
        }
        let own = match probe(Setting::Auto) {
            Ok(d) => d,
            Err(why) => return skip(&why),
        };
        if !words(&own.join("cgroup.controllers"))
            .iter()
            .any(|w| w == "hugetlb")
        {
            return skip("this cgroup does not offer hugetlb");
        }
        // Left on afterwards, as supervisord leaves what it enabled in its own cgroup:
        // turning it off could pull it from under this same test run concurrently (the
        // machine is shared), and hugetlb on costs the other cgroups nothing.
        let was_on = words(&own.join("cgroup.subtree_control"))
            .iter()
            .any(|w| w == "hugetlb");
        if !was_on {
            if let Err(e) = enable_in(&own, "hugetlb") {
                return skip(&format!("cannot enable hugetlb in {}: {e}", own.display()));
            }
        }
        let base = own.join(format!("sdtest-hugetlb-{}", std::process::id()));
        let mut sleeper: Option<std::process::Child> = None;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            std::fs::create_dir(&base).expect("mkdir base");
            assert!(words(&base.join("cgroup.controllers")).contains(&"hugetlb".to_owned()));
            // An empty non-root parent: enabled at once.
            let state = Parent::read(&base, is_root(&base));
            assert!(!state.root);
            assert_eq!(state.plan_named("hugetlb", false), Ok(Step::Enable));
            let tree_dir = base.join("supervisord-1");
            std::fs::create_dir(&tree_dir).expect("mkdir tree");
            give_named(&base, &tree_dir, "hugetlb", false).expect("given");
            assert!(words(&base.join("cgroup.subtree_control")).contains(&"hugetlb".to_owned()));
            assert!(words(&tree_dir.join("cgroup.subtree_control")).contains(&"hugetlb".to_owned()));
            let tree = Tree::at(tree_dir.clone());
            let (run, _procs) = tree
                .create("job", 1, &Limits::default(), None, false)
                .expect("run cgroup");
            assert!(
                words(&run.dir().join("cgroup.controllers")).contains(&"hugetlb".to_owned()),
                "the run's cgroup has the controller"
            );
            assert!(run.remove());

            // A parent holding a process that is not ours (pid 1 cannot be moved in
            // here, so a child of a child stands for it: its parent is not us).
            let holder = base.join("holder");
            std::fs::create_dir(&holder).expect("mkdir holder");
            let child = std::process::Command::new("sleep")
                .arg("60")
                .spawn()
                .expect("sleep");
            std::fs::write(holder.join("cgroup.procs"), child.id().to_string())
                .expect("move the sleeper");
            sleeper = Some(child);
            let leaf_tree = holder.join("supervisord-2");
            std::fs::create_dir(&leaf_tree).expect("mkdir");
            let state = Parent::read(&holder, false);
            assert_eq!(
                state.plan_named("hugetlb", false),
                Ok(Step::MoveThenEnable),
                "only our child is there"
            );
            let busy = enable_in(&holder, "hugetlb").expect_err("no internal processes");
            assert_eq!(busy.raw_os_error(), Some(nix::libc::EBUSY), "{busy}");
            let stranger = Parent {
                procs: vec![(1, false)],
                ..state.clone()
            };
            assert!(stranger.plan_named("hugetlb", false).is_err());
            give_named(&holder, &leaf_tree, "hugetlb", false).expect("moved, then given");
            assert_eq!(procs(&holder), Vec::<u32>::new(), "the parent is empty");
            assert_eq!(
                procs(&leaf_tree.join(DAEMON_LEAF)),
                [sleeper.as_ref().map_or(0, |c| c.id())],
                "the process is in the leaf"
            );
            assert!(
                words(&leaf_tree.join("cgroup.subtree_control")).contains(&"hugetlb".to_owned())
            );
            let (run, _procs) = Tree::at(leaf_tree.clone())
                .create("job", 2, &Limits::default(), None, false)
                .expect("run cgroup");
            assert!(words(&run.dir().join("cgroup.controllers")).contains(&"hugetlb".to_owned()));
            assert!(run.remove());
        }));
        if let Some(mut c) = sleeper {
            let _ = c.kill();
            let _ = c.wait();
        }
        for d in [
            "holder/supervisord-2/job@2",
            "holder/supervisord-2/daemon",
            "holder/supervisord-2",
            "holder",
            "supervisord-1/job@1",
            "supervisord-1",
            "",
        ] {
            let dir = base.join(d);
            let deadline = Instant::now() + Duration::from_secs(2);
            while dir.exists() && std::fs::remove_dir(&dir).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if let Err(p) = result {
            std::panic::resume_unwind(p);
        }
    }
}
