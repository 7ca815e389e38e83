//! The floor: the same OS work the benchmark asks of a supervisor, with nothing around it.
//! Built by bench/run.py with plain `rustc -O` (not a workspace member, so CI never builds it).
//!
//!   floor spawn N        spawn N `/bin/true` with std::process, then reap them all;
//!                        prints the wall time in microseconds
//!   floor spawn-sleep N  spawn N `/bin/sleep 100000` (stdio on /dev/null) and print the
//!                        microseconds until the last one is running; then kill and reap
//!                        them (the start of the scale workload, with nothing around it)
//!   floor stamp FILE     open (create) FILE, then read CLOCK_REALTIME and write it in
//!                        nanoseconds to FILE and exit at once (the job of the
//!                        exit-detection workload). The clock is read after the open, right
//!                        before the write and the exit, so the figure does not include
//!                        creating the file (~200 µs on this machine's ext4).
//!   floor spawn-cgroup N DIR
//!                        the same as `spawn N`, each child born in a cgroup of its own
//!                        made below DIR (a cgroup v2 folder): mkdir, clone3 with
//!                        CLONE_INTO_CGROUP | CLONE_VFORK, exec; then reap them all and
//!                        remove the cgroups. The OS work of a cgroup per run, which
//!                        supervisord with `cgroup = "auto"` asks for; prints microseconds
//!   floor answer SOCK FILE  listen on the Unix socket SOCK, take one connection and
//!                        answer each line read from it with the bytes of FILE (one
//!                        line): the status RPC's floor, the same client and answer
//!                        size with no work behind the answer

use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

extern "C" {
    fn syscall(num: i64, ...) -> i64;
    fn execve(path: *const i8, argv: *const *const i8, envp: *const *const i8) -> i32;
    fn dup2(old: i32, new: i32) -> i32;
    fn _exit(code: i32) -> !;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
}

/// `struct clone_args` of clone3(2), up to `cgroup`.
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

const SYS_CLONE3: i64 = 435; // x86-64
const CLONE_VFORK: u64 = 0x4000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
const SIGCHLD: u64 = 17;
const O_PATH: i32 = 0o10000000;
const O_DIRECTORY: i32 = 0o200000;

/// Spawn `/bin/true` with stdin, stdout and stderr on /dev/null, born in the cgroup whose
/// folder `cgroup` is open. Without CLONE_VM the child is a copy of this small process, so
/// it may call what it likes before exec; CLONE_VFORK returns once it has exec'd.
fn spawn_into(cgroup: i32, null: i32) -> i32 {
    let path = CString::new("/bin/true").expect("no NUL");
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    let mut args = CloneArgs {
        flags: CLONE_VFORK | CLONE_INTO_CGROUP,
        exit_signal: SIGCHLD,
        cgroup: cgroup as u64,
        ..CloneArgs::default()
    };
    let pid = unsafe {
        syscall(
            SYS_CLONE3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid == 0 {
        unsafe {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
            execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            _exit(127);
        }
    }
    assert!(pid > 0, "clone3: {}", std::io::Error::last_os_error());
    pid as i32
}

/// Spawn `n` of `program` with `args`, stdin, stdout and stderr on /dev/null (std's
/// `Command`: posix_spawn), one after the other.
fn spawn_all(n: usize, program: &str, args: &[&str]) -> Vec<std::process::Child> {
    (0..n)
        .map(|_| {
            Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {program}: {e}"))
        })
        .collect()
}

/// `N DIR` of `spawn-cgroup` and `spawn-cgroup-kept`, and /dev/null for the children.
fn cgroup_args(args: &[String]) -> (usize, &str, std::fs::File) {
    let (Some(n), Some(parent)) = (
        args.get(2).and_then(|s| s.parse::<usize>().ok()),
        args.get(3),
    ) else {
        panic!("usage: floor {} N DIR", args.get(1).map_or("", String::as_str));
    };
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .expect("open /dev/null");
    (n, parent, null)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("spawn") => {
            let n: usize = args
                .get(2)
                .and_then(|s| s.parse().ok())
                .expect("usage: floor spawn N");
            let t = Instant::now();
            let children = spawn_all(n, "/bin/true", &[]);
            for mut c in children {
                c.wait().expect("wait");
            }
            println!("{}", t.elapsed().as_micros());
        }
        Some("spawn-sleep") => {
            let n: usize = args
                .get(2)
                .and_then(|s| s.parse().ok())
                .expect("usage: floor spawn-sleep N");
            let t = Instant::now();
            let mut children = spawn_all(n, "/bin/sleep", &["100000"]);
            println!("{}", t.elapsed().as_micros());
            for c in &mut children {
                let _ = c.kill();
            }
            for mut c in children {
                let _ = c.wait();
            }
        }
        Some("spawn-cgroup") => {
            let (n, parent, null) = cgroup_args(&args);
            let t = Instant::now();
            let mut children = Vec::with_capacity(n);
            for i in 0..n {
                let dir = std::path::Path::new(parent).join(format!("j{i}"));
                std::fs::create_dir(&dir).expect("mkdir a cgroup");
                let cg = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(O_PATH | O_DIRECTORY)
                    .open(&dir)
                    .expect("open the cgroup");
                let pid = spawn_into(cg.as_raw_fd(), null.as_raw_fd());
                children.push((pid, dir));
            }
            for (pid, dir) in children {
                let mut status = 0;
                unsafe { waitpid(pid, &mut status, 0) };
                std::fs::remove_dir(&dir).expect("rmdir the emptied cgroup");
            }
            println!("{}", t.elapsed().as_micros());
        }
        Some("spawn-cgroup-kept") => {
            // The same, each child born into a cgroup kept from an earlier round (made
            // here, untimed, when missing; never removed): what a cgroup per job that its
            // runs use again costs the kernel.
            let (n, parent, null) = cgroup_args(&args);
            let dirs: Vec<std::path::PathBuf> = (0..n)
                .map(|i| std::path::Path::new(parent).join(format!("j{i}")))
                .collect();
            for dir in &dirs {
                if !dir.exists() {
                    std::fs::create_dir(dir).expect("mkdir a cgroup");
                }
            }
            let t = Instant::now();
            let mut children = Vec::with_capacity(n);
            for dir in &dirs {
                let cg = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(O_PATH | O_DIRECTORY)
                    .open(dir)
                    .expect("open the cgroup");
                children.push(spawn_into(cg.as_raw_fd(), null.as_raw_fd()));
            }
            for pid in children {
                let mut status = 0;
                unsafe { waitpid(pid, &mut status, 0) };
            }
            println!("{}", t.elapsed().as_micros());
        }
        Some("stamp") => {
            let path = args.get(2).expect("usage: floor stamp FILE");
            let mut f = std::fs::File::create(path).expect("create stamp file");
            let ns = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock after 1970")
                .as_nanos()
                .to_string();
            f.write_all(ns.as_bytes()).expect("write stamp");
        }
        Some("answer") => {
            let usage = "usage: floor answer SOCK FILE";
            let sock = args.get(2).expect(usage);
            let answer = std::fs::read(args.get(3).expect(usage)).expect("read the answer");
            let listener = UnixListener::bind(sock).expect("bind the socket");
            let (stream, _) = listener.accept().expect("accept");
            let mut rd = BufReader::new(stream.try_clone().expect("clone the stream"));
            let mut wr = stream;
            let mut request = Vec::new();
            loop {
                request.clear();
                if rd.read_until(b'\n', &mut request).expect("read") == 0 {
                    break;
                }
                wr.write_all(&answer).expect("write the answer");
            }
        }
        _ => {
            eprintln!("usage: floor spawn N | floor spawn-sleep N | floor spawn-cgroup N DIR | floor spawn-cgroup-kept N DIR | floor stamp FILE | floor answer SOCK FILE");
            std::process::exit(2);
        }
    }
}
