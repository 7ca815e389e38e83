//! The one test helper: start a real supervisord on a temp folder and socket, drive it
//! with the real supctl or raw JSON lines, and clean up on drop.

use protocol::Job;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Every field docs/protocol.md lists for a Job, always present.
pub const JOB_FIELDS: [&str; 16] = [
    "name",
    "group",
    "state",
    "alive",
    "pid",
    "exitcode",
    "signal",
    "success",
    "daemon",
    "restarts",
    "started_at",
    "ended_at",
    "uptime_ms",
    "spawn_error",
    "cause",
    "reason",
];

/// The default deadline for anything a test waits for.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A binary of this workspace (`supervisord`, `supctl`), built from the current source.
///
/// The test package does not own these binaries, so nothing makes cargo rebuild them
/// before the tests run (`cargo test -p supervisor-tests` would test a leftover build).
/// The first call builds them, once per test run, with the cargo that runs the tests,
/// into the same target folder and profile as this test binary: a no-op when they are
/// current, a rebuild when any source changed.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let dir = match BUILT.get_or_init(build_binaries) {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    };
    let path = dir.join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// The workspace root (where `Cargo.lock` is).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `cargo build` of the two binaries, like the build of this test binary; the folder
/// they are in.
fn build_binaries() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    // TARGET[/TRIPLE]/PROFILE/deps/e2e-HASH
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{}: not in a cargo target folder", exe.display()))?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => return Err(format!("{}: no profile folder", exe.display())),
    };
    let mut target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("{}: no target folder", exe.display()))?;
    let mut triple = None;
    // Cargo marks the root of a target folder; one level more means `--target TRIPLE`.
    if !target_dir.join("CACHEDIR.TAG").exists() {
        if let Some(up) = target_dir
            .parent()
            .filter(|up| up.join("CACHEDIR.TAG").exists())
        {
            triple = target_dir.file_name().map(|t| t.to_os_string());
            target_dir = up;
        }
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "supervisord",
        "-p",
        "supctl",
        "--bins",
    ])
    .arg("--profile")
    .arg(profile)
    .arg("--target-dir")
    .arg(target_dir)
    .arg("--manifest-path")
    .arg(workspace_root().join("Cargo.toml"));
    if let Some(t) = &triple {
        cmd.arg("--target").arg(t);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", Path::new(&cargo).display()))?;
    if !out.status.success() {
        return Err(format!(
            "building supervisord and supctl failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(profile_dir.to_path_buf())
}

/// Print why a test does not run its checks, where it is seen even when the test
/// harness captures output; with `SUPERVISOR_TESTS_NO_SKIP` set (CI sets it), a skip is
/// a failure instead.
pub fn skip(test: &str, why: &str) {
    if std::env::var_os("SUPERVISOR_TESTS_NO_SKIP").is_some_and(|v| !v.is_empty()) {
        panic!("{test} would be skipped ({why}), and SUPERVISOR_TESTS_NO_SKIP is set");
    }
    // Straight to the stream: `eprintln!` is captured (hidden) for a passing test.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// Whether this process runs as root (for tests that need to act as another user).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Poll `f` until it returns `Some`, or panic naming `what` after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            !matches!(state, Some("Z" | "X"))
        }
        Err(_) => false,
    }
}

/// Pids of every process whose command line contains `needle` (for finding grandchildren).
pub fn pids_with_arg(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) && alive(pid) {
                out.push(pid);
            }
        }
    }
    out
}

/// A running supervisord on a temp folder.
pub struct Daemon {
    /// The temp folder: the job file, the socket, the logs.
    pub dir: tempfile::TempDir,
    /// The job file.
    pub config: PathBuf,
    /// The socket.
    pub socket: PathBuf,
    /// The daemon process.
    pub child: Option<Child>,
    /// Extra environment for supervisord (and so its jobs).
    pub env: Vec<(String, String)>,
}

/// A unique marker tests put in commands to find their processes in /proc.
pub fn marker(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Daemon {
    /// Write `jobs` as the job file and start supervisord on it.
    pub fn start(jobs: &str) -> Daemon {
        Daemon::start_with(jobs, &[])
    }

    /// Like [`start`](Self::start), with extra arguments for supervisord.
    pub fn start_with(jobs: &str, args: &[&str]) -> Daemon {
        let d = Daemon::prepare(jobs);
        d.launch(args)
    }

    /// Copy one of the example job files from `config/` (with `config/workers/`) into a
    /// temp folder and start supervisord on it with extra environment variables.
    pub fn example(file: &str, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let d = Daemon::prepare("");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        std::fs::copy(root.join(file), &d.config).expect("copy example");
        let workers = d.dir.path().join("workers");
        std::fs::create_dir(&workers).expect("mkdir workers");
        for w in std::fs::read_dir(root.join("workers"))
            .expect("workers")
            .flatten()
        {
            std::fs::copy(w.path(), workers.join(w.file_name())).expect("copy worker");
        }
        let mut d = d;
        d.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        d.launch(args)
    }

    /// Write the job file without starting anything.
    pub fn prepare(jobs: &str) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("sv")
            .tempdir()
            .expect("tempdir");
        let config = dir.path().join("jobs.toml");
        std::fs::write(&config, jobs).expect("write job file");
        let socket = dir.path().join("sock");
        Daemon {
            dir,
            config,
            socket,
            child: None,
            env: Vec::new(),
        }
    }

    /// The command that starts supervisord for this folder.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_via(&[], args)
    }

    /// [`command`](Self::command) run through `wrapper` (a program and its first
    /// arguments, which must `exec` the rest), so the daemon keeps the wrapper's pid.
    pub fn command_via(&self, wrapper: &[&str], args: &[&str]) -> Command {
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin("supervisord"));
                c
            }
            None => Command::new(bin("supervisord")),
        };
        cmd.arg("--config")
            .arg(&self.config)
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .env("RUST_LOG", "debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(self.dir.path().join("daemon.out")).expect("out file"))
            .stderr(std::fs::File::create(self.dir.path().join("daemon.err")).expect("err file"));
        cmd
    }

    /// Run supervisord for this folder to completion (it is expected to refuse to start),
    /// with its default log level, capturing stdout and stderr.
    pub fn run_once(&self) -> Output {
        self.command(&[])
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("run supervisord")
    }

    /// Start supervisord and wait until it answers `ping`.
    pub fn launch(self, args: &[&str]) -> Daemon {
        self.launch_via(&[], args)
    }

    /// [`launch`](Self::launch) through a wrapper, as [`command_via`](Self::command_via).
    pub fn launch_via(mut self, wrapper: &[&str], args: &[&str]) -> Daemon {
        let child = self
            .command_via(wrapper, args)
            .spawn()
            .expect("spawn supervisord");
        self.child = Some(child);
        let socket = self.socket.clone();
        wait_until("supervisord to answer ping", DEADLINE, || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "supervisord exited early ({status}); stderr:\n{}",
                    self.stderr()
                );
            }
            let mut c = Conn::try_open(&socket)?;
            c.call("ping", Value::Null).get("result").map(|_| ())
        });
        self
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("started").id()
    }

    /// What the daemon wrote on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.err")).unwrap_or_default()
    }

    /// What the daemon wrote on stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.out")).unwrap_or_default()
    }

    /// Run supctl against this daemon.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(bin("supctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .env_remove("SUPERVISORD_SOCKET")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run supctl")
    }

    /// Start a long-running supctl (`events`, `logs -f`) and stream its stdout lines
    /// through a channel, so a test can read them with a deadline.
    pub fn ctl_lines(&self, args: &[&str]) -> (Child, std::sync::mpsc::Receiver<String>) {
        let mut child = Command::new(bin("supctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .env_remove("SUPERVISORD_SOCKET")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run supctl");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        (child, rx)
    }

    /// Run supctl, assert it exits 0, return its stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "supctl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A raw connection.
    pub fn conn(&self) -> Conn {
        Conn::open(&self.socket)
    }

    /// One request on a fresh connection; the whole response object.
    pub fn rpc(&self, method: &str, params: Value) -> Value {
        self.conn().call(method, params)
    }

    /// One request that must succeed; its result.
    pub fn ok(&self, method: &str, params: Value) -> Value {
        let resp = self.rpc(method, params.clone());
        assert!(
            resp.get("error").is_none(),
            "{method} {params} failed: {resp}"
        );
        resp["result"].clone()
    }

    /// Every job's status.
    pub fn jobs(&self) -> Vec<Job> {
        serde_json::from_value(self.ok("status", Value::Null)["jobs"].clone()).expect("jobs")
    }

    /// One job's status.
    pub fn job(&self, name: &str) -> Job {
        let r = self.ok("status", json!({ "names": [name] }));
        serde_json::from_value(r["jobs"][0].clone()).expect("job")
    }

    /// Wait until a job is `running`; returns its pid.
    pub fn running_pid(&self, name: &str) -> u32 {
        self.wait_job(name, "is running", |j| j.state.as_str() == "running")
            .pid
            .expect("a running job has a pid")
    }

    /// Wait until a job satisfies `pred`; returns it.
    pub fn wait_job(&self, name: &str, what: &str, pred: impl Fn(&Job) -> bool) -> Job {
        wait_until(&format!("{name} {what}"), DEADLINE, || {
            let j = self.job(name);
            pred(&j).then_some(j)
        })
    }

    /// Wait until the daemon process has exited; its exit code.
    pub fn wait_exit(&mut self) -> i32 {
        let child = self.child.as_mut().expect("started");
        let status = wait_until("supervisord to exit", DEADLINE, || {
            child.try_wait().ok().flatten()
        });
        self.child = None;
        status.code().unwrap_or(-1)
    }

    /// Send a signal to the daemon.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), sig)
            .expect("signal daemon");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A raw JSON-lines connection.
pub struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl Conn {
    /// Connect, or panic.
    pub fn open(socket: &Path) -> Conn {
        Conn::try_open(socket).unwrap_or_else(|| panic!("cannot connect to {}", socket.display()))
    }

    /// Connect, if possible.
    pub fn try_open(socket: &Path) -> Option<Conn> {
        let s = UnixStream::connect(socket).ok()?;
        s.set_read_timeout(Some(DEADLINE)).ok()?;
        let writer = s.try_clone().ok()?;
        Some(Conn {
            reader: BufReader::new(s),
            writer,
            next_id: 1,
        })
    }

    /// Send raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send");
    }

    /// Send one request (no newline needed) and return its id.
    pub fn send(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut req = json!({ "jsonrpc": "2.0", "id": id, "method": method });
        if !params.is_null() {
            req["params"] = params;
        }
        self.send_raw(format!("{req}\n").as_bytes());
        id
    }

    /// The next line from the daemon, parsed; `None` at end of file.
    pub fn recv(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}")),
            ),
            Err(e) => panic!("reading from the daemon: {e}"),
        }
    }

    /// Read lines until the response with this id (notifications are skipped).
    pub fn response(&mut self, id: u64) -> Value {
        loop {
            let v = self.recv().expect("connection closed before the response");
            if v.get("id") == Some(&json!(id)) {
                return v;
            }
        }
    }

    /// Send a request and read its response.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params);
        self.response(id)
    }

    /// The next line if one arrives within `t`; `None` on timeout or end of file.
    pub fn recv_within(&mut self, t: Duration) -> Option<Value> {
        self.set_timeout(t);
        let mut line = String::new();
        let got = self.reader.read_line(&mut line);
        self.set_timeout(DEADLINE);
        match got {
            Ok(n) if n > 0 => serde_json::from_str(&line).ok(),
            _ => None,
        }
    }

    /// Set how long `recv` waits.
    pub fn set_timeout(&self, t: Duration) {
        let _ = self.writer.set_read_timeout(Some(t));
    }
}

/// A job file with `[defaults]` that keep tests fast: short start_secs and stop_timeout.
pub fn jobs(body: &str) -> String {
    format!("[defaults]\nstart_secs = \"100ms\"\nstop_timeout = \"5s\"\n\n{body}")
}

/// A copy of one of the binaries that the `nobody` user can run: the target folder may
/// sit under a home folder nobody cannot enter, so tests that drop to nobody run this
/// copy (in a world-readable temp folder) instead. Checked by running `--version` as
/// nobody, so a test knows its precondition holds before it tests anything.
pub struct NobodyCopy {
    _dir: tempfile::TempDir,
    /// The copy.
    pub path: PathBuf,
}

/// Make a [`NobodyCopy`] of `name`, or say why it cannot run as nobody here.
pub fn copy_for_nobody(name: &str) -> Result<NobodyCopy, String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("svbin")
        .tempdir()
        .map_err(|e| format!("tempdir: {e}"))?;
    let open = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(dir.path(), open.clone()).map_err(|e| format!("chmod: {e}"))?;
    let path = dir.path().join(name);
    std::fs::copy(bin(name), &path).map_err(|e| format!("copy {name}: {e}"))?;
    std::fs::set_permissions(&path, open).map_err(|e| format!("chmod: {e}"))?;
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(&path)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run setpriv: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "nobody cannot run {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(NobodyCopy { _dir: dir, path })
}

/// The error code of a response that must be an error.
pub fn error_code(resp: &Value) -> i64 {
    resp["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("expected an error, got {resp}"))
}

/// How many descriptors a process holds.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}
