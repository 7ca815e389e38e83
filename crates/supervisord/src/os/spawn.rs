//! Starting a job's process without `fork`: `clone3` with `CLONE_VM | CLONE_VFORK`, which
//! is what `posix_spawn` does (no page tables copied, no copy-on-write faults in the
//! daemon afterwards), plus two things `posix_spawn` cannot do:
//!
//! - `CLONE_INTO_CGROUP`: the child is born inside its run's cgroup. Writing a pid to
//!   `cgroup.procs` instead (from the child, before `exec`) needs a `fork`-style spawn and
//!   takes the kernel's cgroup-wide write lock on every spawn, which made spawning with a
//!   cgroup per run several times slower; and there is no moment when the child, or
//!   anything it forks, is outside the cgroup.
//! - `CLONE_PIDFD`: the pidfd that watches the run comes with the spawn.
//! - `CLONE_CLEAR_SIGHAND`: the kernel puts every signal the daemon handles back to its
//!   default in the child, so the child resets only the few the daemon ignores (SIGPIPE)
//!   instead of making 62 `rt_sigaction` calls while the daemon waits for it.
//!
//! The child shares the daemon's memory until it calls `execve` (the daemon's thread is
//! suspended meanwhile, `CLONE_VFORK`), so it runs on a stack of its own and does only
//! what is safe there: plain system calls on data prepared before the clone, no
//! allocation, no lock, no panic. It reports a failure through the shared memory (which
//! step, and `errno`) and exits with 127.
//!
//! Where `clone3` is not available (Linux before 5.7, a seccomp filter that refuses it, an
//! architecture other than x86-64) [`spawn`] says [`Outcome::Unsupported`] once and for
//! all, and the caller spawns through std's `Command` as before.

use nix::libc;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering};

/// A step of the child's set-up, named in an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `setpgid`: becoming a process-group leader.
    ProcessGroup,
    /// `dup2` of stdin, stdout or stderr.
    Stdio,
    /// `chdir` to the job's `cwd`.
    Cwd,
    /// `setrlimit` of the job's `limits`.
    Limits,
    /// `setgroups`, `setgid`, `setuid` of the job's `user`.
    Identity,
    /// `execve` of the program.
    Exec,
    /// `close_range(CLOSE_RANGE_UNSHARE)`: taking a descriptor table of its own.
    Unshare,
}

impl Step {
    fn from_u8(n: u8) -> Step {
        match n {
            1 => Step::ProcessGroup,
            2 => Step::Stdio,
            3 => Step::Cwd,
            4 => Step::Limits,
            5 => Step::Identity,
            7 => Step::Unshare,
            _ => Step::Exec,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Step::ProcessGroup => 1,
            Step::Stdio => 2,
            Step::Cwd => 3,
            Step::Limits => 4,
            Step::Identity => 5,
            Step::Exec => 6,
            Step::Unshare => 7,
        }
    }
}

/// Everything the child needs, prepared (and allocated) before the clone.
pub struct Plan {
    /// The paths `execve` tries in turn: the program itself when it names a path, else
    /// the program in each folder of `PATH` (as `execvp` does).
    programs: Vec<CString>,
    /// What `argv` points into.
    #[allow(dead_code)]
    argv_owned: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    /// What `envp` points into.
    #[allow(dead_code)]
    envp_owned: Vec<CString>,
    envp: Vec<*const libc::c_char>,
    cwd: CString,
    process_group: bool,
    limits: Vec<(libc::__rlimit_resource_t, libc::rlim_t)>,
    umask: Option<libc::mode_t>,
    identity: Option<(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
    parent_death: Option<libc::pid_t>,
}

// SAFETY: the raw pointers point into the `CString`s the plan owns (their heap buffers do
// not move when the plan does), and are only read.
unsafe impl Send for Plan {}

fn cstring(bytes: &[u8], what: &str) -> std::io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{what} holds a NUL byte"),
        )
    })
}

impl Plan {
    /// Plan the run of `command` (program and arguments) in `cwd` with exactly the
    /// environment `env` (later entries win over earlier ones with the same name).
    pub fn new<'a>(
        command: &[String],
        cwd: &Path,
        env: impl IntoIterator<Item = (&'a OsStr, &'a OsStr)>,
    ) -> std::io::Result<Plan> {
        let Some(program) = command.first() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "empty command",
            ));
        };
        let mut vars: Vec<(&OsStr, &OsStr)> = Vec::new();
        for (k, v) in env {
            match vars.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => vars.push((k, v)),
            }
        }
        let path = vars
            .iter()
            .find(|(k, _)| k.as_bytes() == b"PATH")
            .map(|(_, v)| v.as_bytes().to_vec());
        let programs = if program.contains('/') {
            vec![cstring(program.as_bytes(), "the program")?]
        } else {
            // What execvp searches when PATH is not set at all.
            let path = path.unwrap_or_else(|| b"/bin:/usr/bin".to_vec());
            let mut found = Vec::new();
            for dir in path.split(|b| *b == b':') {
                let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
                let mut full = OsString::from_vec(dir.to_vec());
                full.push("/");
                full.push(program);
                found.push(cstring(full.as_bytes(), "the program")?);
            }
            found
        };
        let argv_owned = command
            .iter()
            .map(|a| cstring(a.as_bytes(), "an argument"))
            .collect::<std::io::Result<Vec<_>>>()?;
        let envp_owned = vars
            .iter()
            .map(|(k, v)| {
                let mut kv = Vec::with_capacity(k.len() + v.len() + 1);
                kv.extend_from_slice(k.as_bytes());
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                cstring(&kv, "an environment variable")
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let argv = null_terminated(&argv_owned);
        let envp = null_terminated(&envp_owned);
        Ok(Plan {
            programs,
            argv_owned,
            argv,
            envp_owned,
            envp,
            cwd: cstring(cwd.as_os_str().as_bytes(), "the working folder")?,
            process_group: false,
            limits: Vec::new(),
            umask: None,
            identity: None,
            parent_death: None,
        })
    }

    /// Make the child a process-group leader (`setpgid(0, 0)`).
    pub fn process_group(&mut self) -> &mut Plan {
        self.process_group = true;
        self
    }

    /// Set these rlimits (soft = hard) in the child.
    pub fn limits(
        &mut self,
        limits: &[(crate::config::Resource, crate::config::Rlim)],
    ) -> &mut Plan {
        self.limits = super::rlimits(limits);
        self
    }

    /// Set the child's umask.
    pub fn umask(&mut self, mask: Option<u32>) -> &mut Plan {
        self.umask = mask;
        self
    }

    /// Switch the child to this uid, gid and supplementary groups.
    pub fn identity(&mut self, uid: u32, gid: u32, groups: Vec<u32>) -> &mut Plan {
        self.identity = Some((uid, gid, groups));
        self
    }

    /// Give the child `PR_SET_PDEATHSIG` = SIGKILL, and make it exit at once if `parent`
    /// is already gone.
    pub fn die_with(&mut self, parent: u32) -> &mut Plan {
        self.parent_death = libc::pid_t::try_from(parent).ok();
        self
    }
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// What a spawn came to.
#[derive(Debug)]
pub enum Outcome {
    /// The program runs: its pid, and its pidfd if one was asked for.
    Running {
        /// The child's pid.
        pid: u32,
        /// Readable once the child has ended.
        pidfd: Option<OwnedFd>,
    },
    /// The child could not set itself up or run the program (it has been reaped).
    Failed {
        /// Which step failed.
        step: Step,
        /// The OS's error.
        error: std::io::Error,
    },
    /// `clone3` itself failed: no child was made.
    CloneFailed(std::io::Error),
    /// This kernel (or its seccomp filter, or this architecture) has no usable `clone3`:
    /// spawn another way. Once said, always said.
    Unsupported,
}

/// Whether `clone3` is known to be missing, and whether that was probed yet.
static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
static PROBED: AtomicBool = AtomicBool::new(false);

/// Whether [`spawn`] may work here: x86-64, and a kernel (and seccomp filter) that has
/// `clone3`. Probed once, with arguments the kernel refuses as invalid (EINVAL) when it
/// knows the call, so no process is made.
pub fn available() -> bool {
    if !cfg!(target_arch = "x86_64") {
        return false;
    }
    if !PROBED.swap(true, Ordering::Relaxed) {
        // For tests of the fallback, and a way out should a kernel misbehave.
        if std::env::var_os("SUPERVISORD_NO_CLONE3").is_some() {
            unsupported(libc::ENOSYS);
            return false;
        }
        // The same for `CLONE_CLEAR_SIGHAND` alone (the child then resets every signal).
        if std::env::var_os("SUPERVISORD_NO_CLEAR_SIGHAND").is_some() {
            NO_CLEAR_SIGHAND.store(true, Ordering::Relaxed);
        }
        // SAFETY: a null `clone_args` of size 0 is refused before anything is read.
        let r = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<CloneArgs>(), 0usize) };
        let errno = std::io::Error::last_os_error().raw_os_error();
        if r != -1 || errno != Some(libc::EINVAL) {
            unsupported(errno.unwrap_or(libc::ENOSYS));
        }
    }
    !UNSUPPORTED.load(Ordering::Relaxed)
}

fn unsupported(errno: i32) {
    UNSUPPORTED.store(true, Ordering::Relaxed);
    tracing::info!(
        error = %std::io::Error::from_raw_os_error(errno),
        "clone3 is not available; jobs are spawned through fork and exec"
    );
}

/// What the child reads (the plan, the descriptors) and writes (how it failed), in the
/// memory it shares with the daemon.
struct Shared<'a> {
    plan: &'a Plan,
    /// Where the child finds its stdin, stdout and stderr: the reserved slots.
    stdio: [RawFd; 3],
    /// The child shares the daemon's descriptor table and must first take a small copy
    /// of its own: every descriptor below this one (the slots are below it).
    unshare_below: Option<RawFd>,
    /// Signals to put back to their default disposition in the child: the ones the
    /// daemon ignores where the kernel reset the handled ones (`CLONE_CLEAR_SIGHAND`),
    /// else every one.
    defaults: &'a [libc::c_int],
    step: AtomicU8,
    errno: AtomicI32,
}

/// `struct clone_args`, as far as `cgroup` (version 2, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_VM: u64 = 0x100;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_FILES: u64 = 0x400;
const CLOSE_RANGE_UNSHARE: libc::c_uint = 0x2;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;

/// Whether the kernel refused `CLONE_CLEAR_SIGHAND` (Linux 5.3 and 5.4 have `clone3`
/// without it): the child then resets every signal itself.
static NO_CLEAR_SIGHAND: AtomicBool = AtomicBool::new(false);

/// Every signal but SIGKILL and SIGSTOP, the ones a child may have to reset (a constant:
/// the fork-and-exec fallback reads it between fork and exec, where nothing may be
/// allocated).
const ALL_SIGNALS: [libc::c_int; 62] = {
    let mut out = [0; 62];
    let (mut sig, mut i) = (1, 0);
    while sig <= 64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            out[i] = sig;
            i += 1;
        }
        sig += 1;
    }
    out
};

fn all_signals() -> &'static [libc::c_int] {
    &ALL_SIGNALS
}

/// The signals the daemon ignores (`SIG_IGN` survives `CLONE_CLEAR_SIGHAND` and `exec`):
/// SIGPIPE, which the Rust runtime ignores, and whatever the daemon's own parent left
/// ignored. Read once, at the first spawn: the daemon never ignores a signal later (it
/// installs handlers, which the kernel clears).
fn ignored_signals() -> &'static [libc::c_int] {
    static IGNORED: std::sync::OnceLock<Vec<libc::c_int>> = std::sync::OnceLock::new();
    IGNORED.get_or_init(|| {
        all_signals()
            .iter()
            .copied()
            .filter(|&sig| {
                let mut old = KernelSigaction {
                    handler: 0,
                    flags: 0,
                    restorer: 0,
                    mask: 0,
                };
                // SAFETY: a query (null new action); the kernel writes the current one
                // into `old`, 8 bytes of mask.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_rt_sigaction,
                        sig,
                        std::ptr::null::<KernelSigaction>(),
                        std::ptr::from_mut(&mut old),
                        8usize,
                    )
                };
                r == 0 && old.handler == libc::SIG_IGN
            })
            // SIGPIPE always: it is what std ignores, and resetting a default is harmless.
            .chain(std::iter::once(libc::SIGPIPE))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    })
}

/// The child's stack: mapped once per thread that spawns, with a guard page below it, and
/// reused (a `CLONE_VFORK` child is done with it before the spawn returns).
struct Stack {
    base: *mut libc::c_void,
    len: usize,
}

const STACK_LEN: usize = 128 * 1024;
const GUARD_LEN: usize = 4096;

impl Stack {
    fn map() -> Option<Stack> {
        // SAFETY: a fresh anonymous private mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                STACK_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: the lowest page of the mapping just made; an overflow faults there
        // instead of writing over the daemon's memory.
        unsafe { libc::mprotect(base, GUARD_LEN, libc::PROT_NONE) };
        Some(Stack {
            base,
            len: STACK_LEN,
        })
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, no longer used by any child.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

thread_local! {
    static STACK: Option<Stack> = Stack::map();
}

/// `/dev/null`, opened once: every job's stdin, and its stdout or stderr where `null`.
pub fn dev_null() -> Option<BorrowedFd<'static>> {
    static NULL: std::sync::OnceLock<Option<OwnedFd>> = std::sync::OnceLock::new();
    NULL.get_or_init(|| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .ok()
            .map(OwnedFd::from)
    })
    .as_ref()
    .map(|fd| fd.as_fd())
}

/// Two descriptors reserved for spawning, low in the table: the child's stdout and
/// stderr are put there (`dup3`) just before each spawn and `/dev/null` again after (its
/// stdin is [`dev_null`] itself).
///
/// Why: a child made without `CLONE_FILES` gets a copy of the daemon's whole descriptor
/// table (one entry per pipe of every running job), and closes nearly all of it again at
/// `execve` (close-on-exec): O(descriptors) of kernel work per spawn, so starting N
/// captured jobs cost O(N²). Instead the child shares the table for a moment and takes a
/// copy of only the descriptors below the slots (`close_range` with
/// `CLOSE_RANGE_UNSHARE`), before it touches anything.
struct Slots {
    null: BorrowedFd<'static>,
    fds: [OwnedFd; 2],
}

impl Slots {
    fn open() -> std::io::Result<Slots> {
        let null = dev_null().ok_or_else(|| std::io::Error::other("cannot open /dev/null"))?;
        let copy = || null.try_clone_to_owned();
        Ok(Slots {
            null,
            fds: [copy()?, copy()?],
        })
    }

    fn put(&self, slot: usize, fd: RawFd) -> std::io::Result<()> {
        let Some(target) = self.fds.get(slot) else {
            return Err(std::io::Error::from_raw_os_error(libc::EBADF));
        };
        // SAFETY: `dup3` on two open descriptors; the target is a slot this module owns
        // and nothing else uses, so replacing what it refers to closes nothing of anyone
        // else's.
        if unsafe { libc::dup3(fd, target.as_raw_fd(), libc::O_CLOEXEC) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Back to `/dev/null`, so the daemon holds no end of the job's pipes.
    fn clear(&self) {
        for slot in 0..self.fds.len() {
            let _ = self.put(slot, self.null.as_raw_fd());
        }
    }

    /// The child's descriptors 0, 1 and 2 as they are in the slots.
    fn stdio(&self) -> [RawFd; 3] {
        [
            self.null.as_raw_fd(),
            self.fds[0].as_raw_fd(),
            self.fds[1].as_raw_fd(),
        ]
    }

    /// The first descriptor a child sharing the table may leave behind.
    fn above(&self) -> RawFd {
        self.stdio().into_iter().max().unwrap_or(2) + 1
    }
}

static SLOTS: std::sync::Mutex<Option<Slots>> = std::sync::Mutex::new(None);

/// Whether children may share the descriptor table until they take their own copy
/// (`close_range` with `CLOSE_RANGE_UNSHARE`, Linux 5.9). Cleared once a child says the
/// kernel refused it.
static SHARE_FILES: AtomicBool = AtomicBool::new(true);

/// Spawn the plan with stdin on `/dev/null` and `stdout`, `stderr` as its descriptors 1
/// and 2, inside the cgroup whose folder `cgroup` is open, when given, with a pidfd if
/// `pidfd` (a descriptor not asked for is never made, not even for a moment).
pub fn spawn(
    plan: &Plan,
    stdout: BorrowedFd<'_>,
    stderr: BorrowedFd<'_>,
    cgroup: Option<BorrowedFd<'_>>,
    pidfd: bool,
) -> Outcome {
    if !available() {
        return Outcome::Unsupported;
    }
    let mut slots = SLOTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if slots.is_none() {
        match Slots::open() {
            Ok(s) => *slots = Some(s),
            Err(e) => return Outcome::CloneFailed(e),
        }
    }
    let Some(slots) = slots.as_ref() else {
        return Outcome::CloneFailed(std::io::Error::other("no descriptor slots"));
    };
    for (slot, fd) in [stdout, stderr].iter().enumerate() {
        if let Err(e) = slots.put(slot, fd.as_raw_fd()) {
            slots.clear();
            return Outcome::CloneFailed(e);
        }
    }
    let stdio = slots.stdio();
    let outcome = STACK.with(|stack| match stack {
        Some(stack) => {
            let share = SHARE_FILES.load(Ordering::Relaxed);
            let first = spawn_on(stack, plan, stdio, share.then(|| slots.above()), cgroup, pidfd);
            match first {
                Outcome::Failed {
                    step: Step::Unshare,
                    error,
                } => {
                    SHARE_FILES.store(false, Ordering::Relaxed);
                    tracing::info!(%error, "close_range cannot unshare descriptor tables here; each spawn copies the whole table");
                    spawn_on(stack, plan, stdio, None, cgroup, pidfd)
                }
                other => other,
            }
        }
        None => Outcome::CloneFailed(std::io::Error::other("cannot map a stack for the child")),
    });
    slots.clear();
    outcome
}

fn spawn_on(
    stack: &Stack,
    plan: &Plan,
    stdio: [RawFd; 3],
    unshare_below: Option<RawFd>,
    cgroup: Option<BorrowedFd<'_>>,
    want_pidfd: bool,
) -> Outcome {
    let clear = !NO_CLEAR_SIGHAND.load(Ordering::Relaxed);
    let shared = Shared {
        plan,
        stdio,
        unshare_below,
        defaults: if clear {
            ignored_signals()
        } else {
            all_signals()
        },
        step: AtomicU8::new(0),
        errno: AtomicI32::new(0),
    };
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: CLONE_VM | CLONE_VFORK | if clear { CLONE_CLEAR_SIGHAND } else { 0 },
        exit_signal: libc::SIGCHLD as u64,
        stack: stack.base as u64,
        stack_size: stack.len as u64,
        ..CloneArgs::default()
    };
    if want_pidfd {
        args.flags |= CLONE_PIDFD;
        args.pidfd = std::ptr::addr_of_mut!(pidfd) as u64;
    }
    if unshare_below.is_some() {
        args.flags |= CLONE_FILES;
    }
    if let Some(cg) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = cg.as_raw_fd() as u64;
    }
    // Every signal blocked while the child shares this thread's memory: a handler of the
    // daemon must not run in the child. The child puts each disposition back to the
    // default and then unblocks them.
    let mut old = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    let mut all = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `sigfillset` initialises `all`; `pthread_sigmask` writes the previous mask
    // into `old`.
    let masked = unsafe {
        libc::sigfillset(all.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr()) == 0
    };
    // SAFETY: `args` describes a vfork-style child on a stack of its own that nothing else
    // uses; `child` runs there with `shared`, which outlives it (this thread is
    // suspended until the child has called `execve` or exited).
    let ret = unsafe {
        clone3(
            &mut args,
            child,
            std::ptr::addr_of!(shared).cast_mut().cast(),
        )
    };
    if masked {
        // SAFETY: `old` was filled by the successful call above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), std::ptr::null_mut()) };
    }
    if ret < 0 {
        let errno = i32::try_from(-ret).unwrap_or(libc::EINVAL);
        // A kernel that does not know `CLONE_CLEAR_SIGHAND` refuses the flag: again
        // without it, the child resetting every signal (and so from now on).
        if errno == libc::EINVAL && clear {
            NO_CLEAR_SIGHAND.store(true, Ordering::Relaxed);
            tracing::debug!("clone3 refused CLONE_CLEAR_SIGHAND; children reset every signal");
            return spawn_on(stack, plan, stdio, unshare_below, cgroup, want_pidfd);
        }
        // E2BIG: a kernel with clone3 but without its `cgroup` field (before 5.7).
        if errno == libc::E2BIG {
            unsupported(errno);
            return Outcome::Unsupported;
        }
        return Outcome::CloneFailed(std::io::Error::from_raw_os_error(errno));
    }
    let Ok(pid) = libc::pid_t::try_from(ret) else {
        return Outcome::CloneFailed(std::io::Error::other("clone3 returned no pid"));
    };
    // SAFETY: asked for, the kernel wrote a new descriptor there (CLONE_PIDFD), owned by
    // nobody else.
    let pidfd = (want_pidfd && pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    let step = shared.step.load(Ordering::Acquire);
    if step == 0 {
        return Outcome::Running {
            pid: pid.unsigned_abs(),
            pidfd,
        };
    }
    // The child has called `_exit` (that is what resumed this thread): reaping it waits
    // for no more than the rest of its exit.
    let mut status = 0;
    // SAFETY: `pid` is this process's child, not reaped by anyone else (its end is not
    // watched yet).
    unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    Outcome::Failed {
        step: Step::from_u8(step),
        error: std::io::Error::from_raw_os_error(shared.errno.load(Ordering::Acquire)),
    }
}

/// `clone3(args)`; in the child, call `entry(arg)` on the new stack (it never returns).
/// Returns the child's pid, or `-errno`.
///
/// # Safety
/// `args` must ask for a child with a stack of its own (`stack`, `stack_size`) that
/// nothing else uses while the child runs, and `entry` must be safe to run there.
#[cfg(target_arch = "x86_64")]
unsafe fn clone3(
    args: &mut CloneArgs,
    entry: extern "C" fn(*mut libc::c_void) -> !,
    arg: *mut libc::c_void,
) -> i64 {
    let ret: i64;
    // SAFETY: the caller's promise; the parent's path leaves the asm with only rax, rcx
    // and r11 changed, which the operands declare.
    // The kernel starts the child with the stack pointer at `stack + stack_size` and
    // every other register as the parent had it, so `entry` and `arg` travel in
    // callee-saved registers. The top of the stack is 16-byte aligned, as `call` wants.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") std::ptr::from_mut(args),
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") arg,
            in("r13") entry,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn clone3(
    _args: &mut CloneArgs,
    _entry: extern "C" fn(*mut libc::c_void) -> !,
    _arg: *mut libc::c_void,
) -> i64 {
    -i64::from(libc::ENOSYS)
}

/// The kernel's `struct sigaction` (x86-64 and the generic layout alike).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Put every signal (1–64, but SIGKILL and SIGSTOP) back to its default disposition.
/// Raw `rt_sigaction` calls: glibc's `sigaction` refuses its two internal signals (32 and
/// 33), which a process can still have inherited as ignored. Async-signal-safe: only
/// system calls, on a structure on the stack.
pub fn default_signal_dispositions() {
    set_default(all_signals());
}

/// Put each of `signals` back to its default disposition. Async-signal-safe, as
/// [`default_signal_dispositions`].
fn set_default(signals: &[libc::c_int]) {
    let dfl = KernelSigaction {
        handler: 0, // SIG_DFL
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for &sig in signals {
        // SAFETY: rt_sigaction reads the structure (8 bytes of mask) and writes nothing
        // back (null old action).
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                std::ptr::from_ref(&dfl),
                std::ptr::null::<KernelSigaction>(),
                8usize,
            )
        };
    }
}

/// Record the failed step and `errno`, and exit.
fn fail(shared: &Shared<'_>, step: Step) -> ! {
    let errno = std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL);
    fail_with(shared, step, errno)
}

fn fail_with(shared: &Shared<'_>, step: Step, errno: i32) -> ! {
    shared.errno.store(errno, Ordering::Release);
    shared.step.store(step.as_u8(), Ordering::Release);
    // SAFETY: `_exit` ends the child without running anything of the daemon's.
    unsafe { libc::_exit(127) }
}

/// The child, between the clone and the program: runs on its own stack in the daemon's
/// memory, so it only makes system calls on what the plan prepared.
extern "C" fn child(arg: *mut libc::c_void) -> ! {
    // SAFETY: `arg` is the `Shared` the parent passed, alive until this child execs or
    // exits (the parent is suspended until then).
    let shared = unsafe { &*arg.cast::<Shared<'_>>() };
    let plan = shared.plan;
    // SAFETY: every call below is a plain system call (or glibc's thin wrapper of one)
    // on memory the plan owns; none allocates or takes a lock.
    unsafe {
        // First a descriptor table of its own (a copy of the few below the slots): until
        // then nothing here may open, close or replace a descriptor.
        if let Some(first) = shared.unshare_below {
            if libc::syscall(
                libc::SYS_close_range,
                first,
                libc::c_uint::MAX,
                CLOSE_RANGE_UNSHARE,
            ) != 0
            {
                fail(shared, Step::Unshare);
            }
        }
        // Every signal back to its default disposition, as systemd does for a service:
        // the daemon's handlers must not run here (the kernel cleared them, or this
        // does), and what the daemon ignores (SIGPIPE) is not the job's to ignore.
        set_default(shared.defaults);
        if plan.process_group && libc::setpgid(0, 0) != 0 {
            fail(shared, Step::ProcessGroup);
        }
        for (target, &fd) in (0..).zip(shared.stdio.iter()) {
            let ok = if fd == target {
                libc::fcntl(fd, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(fd, target) == target
            };
            if !ok {
                fail(shared, Step::Stdio);
            }
        }
        if libc::chdir(plan.cwd.as_ptr()) != 0 {
            fail(shared, Step::Cwd);
        }
        // rlimits first, while the child may still raise a hard limit; the identity last,
        // since dropping root is what takes that right away.
        for &(resource, value) in &plan.limits {
            let lim = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            if libc::setrlimit(resource, &lim) != 0 {
                fail(shared, Step::Limits);
            }
        }
        if let Some(mask) = plan.umask {
            libc::umask(mask);
        }
        if let Some((uid, gid, groups)) = &plan.identity {
            // Raw system calls: glibc's wrappers would tell every thread of the daemon to
            // switch too (they share this memory's thread list).
            if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0
                || libc::syscall(libc::SYS_setgid, *gid) != 0
                || libc::syscall(libc::SYS_setuid, *uid) != 0
            {
                fail(shared, Step::Identity);
            }
        }
        if let Some(parent) = plan.parent_death {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                libc::_exit(137);
            }
        }
        let mut empty = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(empty.as_mut_ptr());
        libc::sigprocmask(libc::SIG_SETMASK, empty.as_ptr(), std::ptr::null_mut());
        // As execvp: the first program that runs; where none does, EACCES if one was
        // there but not runnable, else the last error (ENOENT for a name not found).
        let mut errno = libc::ENOENT;
        let mut denied = false;
        for program in &plan.programs {
            libc::execve(program.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr());
            errno = std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::ENOENT);
            match errno {
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                _ => fail_with(shared, Step::Exec, errno),
            }
        }
        if denied {
            errno = libc::EACCES;
        }
        fail_with(shared, Step::Exec, errno)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> Vec<(&'a OsStr, &'a OsStr)> {
        pairs
            .iter()
            .map(|(k, v)| (OsStr::new(*k), OsStr::new(*v)))
            .collect()
    }

    #[test]
    fn a_bare_program_is_looked_for_in_each_folder_of_path_in_order() {
        let plan = Plan::new(
            &["true".into()],
            Path::new("/"),
            env(&[("PATH", "/usr/local/bin::/bin")]),
        )
        .expect("plan");
        let programs: Vec<_> = plan
            .programs
            .iter()
            .map(|p| p.to_str().unwrap_or("?"))
            .collect();
        assert_eq!(programs, ["/usr/local/bin/true", "./true", "/bin/true"]);
    }

    #[test]
    fn a_program_with_a_slash_is_run_as_named_and_without_path_execvp_default_applies() {
        let plan = Plan::new(&["./x".into()], Path::new("/"), env(&[])).expect("plan");
        assert_eq!(plan.programs.len(), 1);
        let plan = Plan::new(&["x".into()], Path::new("/"), env(&[])).expect("plan");
        let programs: Vec<_> = plan
            .programs
            .iter()
            .map(|p| p.to_str().unwrap_or("?"))
            .collect();
        assert_eq!(programs, ["/bin/x", "/usr/bin/x"]);
    }

    #[test]
    fn later_variables_replace_earlier_ones_in_place() {
        let plan = Plan::new(
            &["x".into()],
            Path::new("/"),
            env(&[("A", "1"), ("B", "2"), ("A", "3")]),
        )
        .expect("plan");
        let envp: Vec<_> = plan
            .envp_owned
            .iter()
            .map(|p| p.to_str().unwrap_or("?"))
            .collect();
        assert_eq!(envp, ["A=3", "B=2"]);
        assert_eq!(plan.envp.len(), 3, "null-terminated");
        assert!(plan.envp.last().is_some_and(|p| p.is_null()));
        assert_eq!(plan.argv_owned.len() + 1, plan.argv.len());
    }

    #[test]
    fn a_nul_byte_is_an_error_naming_where_it_is() {
        let e = Plan::new(&["x".into(), "a\0b".into()], Path::new("/"), env(&[]))
            .err()
            .map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("an argument holds a NUL byte"));
    }
}
