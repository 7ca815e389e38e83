//! Output capture: one writer thread owns every log file and supervisord's stdout.
//!
//! # Theory of operation
//!
//! Each captured stream of a running job has a reader task on the runtime that reads the
//! pipe and hands chunks to the writer thread over a bounded channel ([`LogHub`]). When
//! the disk is slower than the job, the channel fills, the reader stops reading, the pipe
//! fills and the job blocks in `write(2)`: back-pressure, never truncation. File writes
//! and renames happen only on the writer thread, so nothing blocks the runtime.
//!
//! A sink is a (job, stream) pair and outlives a single run: restarts append to the same
//! file. Rotation happens between lines, so no line is ever split across two files (a line
//! longer than [`MAX_LINE`] is cut into pieces of that size first). `inherit` output is
//! written to supervisord's stdout one whole line at a time with the `name | ` prefix, so
//! lines of several jobs never interleave mid-line.
//!
//! Log files are held open only while there is something to write, and at most
//! [`OPEN_FILES`] at once (fewer under a low open-files limit): past that the file written
//! least recently is closed, and opened again (appending, at its path) when its job next
//! writes. A job that merely runs costs
//! its pipes and nothing else, which is what lets thousands of jobs fit under the
//! open-files limit, and what keeps each spawn cheap: a new child gets a copy of the
//! daemon's whole descriptor table and closes it again at `exec`.
//!
//! Tail and follow are answered on the writer thread too, so a `logs -f` snapshot and the
//! start of its stream are taken at the same point: no line is missed or repeated.

use protocol::Stream;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use tokio::io::AsyncReadExt;
use tokio::sync::{broadcast, mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// The longest piece written without a newline: longer lines are cut at this size.
pub const MAX_LINE: usize = 64 * 1024;
/// How many chunks of output (and lines to print) may wait for the writer thread before
/// readers are held back. Other messages (a sink opened or closed, a tail) never wait for
/// room: they are small, and a burst of starts must not queue behind one another.
const QUEUE: usize = 64;
/// The most a reader takes from a pipe at once.
const READ_CHUNK: usize = 128 * 1024;
/// The most a `logs` answer reads from the files, across rotated ones.
const MAX_TAIL_BYTES: usize = 16 * 1024 * 1024;
/// The first read's buffer. A reader takes its buffer only once the pipe is readable
/// (a quiet job's reader holds none); the buffer doubles after each read that fills it,
/// up to [`READ_CHUNK`], so a chatty job still moves its output in large chunks.
const FIRST_READ: usize = 512;
/// How many follow chunks a slow follower may fall behind before it skips.
const FOLLOW_BACKLOG: usize = 1024;
/// The most log files the writer holds open at once (and at most an eighth of the
/// open-files limit, so that closed files can always be opened again).
pub const OPEN_FILES: usize = 128;

/// How many log files the writer may hold open: [`OPEN_FILES`], or fewer under a low
/// open-files limit.
fn open_files_cap() -> usize {
    static CAP: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CAP.get_or_init(|| {
        let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(soft, _)| soft);
        usize::try_from(soft / 8)
            .unwrap_or(OPEN_FILES)
            .clamp(4, OPEN_FILES)
    })
}

/// A captured stream: which job, which stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SinkKey {
    /// The job.
    pub name: String,
    /// The stream.
    pub stream: Stream,
}

/// Where a sink's bytes go.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A rotated log file.
    File {
        /// The current file; rotated files are `path.1` … `path.N`.
        path: PathBuf,
        /// Rotate past this size (0: never).
        max_bytes: u64,
        /// Rotated files to keep.
        backups: u32,
    },
    /// supervisord's own stdout, each line prefixed with `name | `.
    Stdout,
}

/// A chunk of followed output: whole lines, lossily decoded.
pub type FollowChunk = Arc<str>;

/// Why output capture or a `logs` read failed. Capture failures leave the job running
/// with that output discarded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LogError {
    /// The writer thread is gone (only during shutdown).
    #[error("the log writer has stopped")]
    Stopped,
    /// The log file could not be opened.
    #[error("cannot open log file {path}: {reason}")]
    Open {
        /// The file.
        path: String,
        /// The OS's words.
        reason: String,
    },
    /// The same sink failed to open for an earlier run and is still unusable.
    #[error("log file could not be opened earlier; output is discarded")]
    OpenedEarlier,
    /// Writing the log file fails (a full disk).
    #[error(
        "writing log file {path} failed at {at}: {reason}; output is discarded while it fails"
    )]
    Write {
        /// The file.
        path: String,
        /// When it started failing.
        at: String,
        /// The OS's words.
        reason: String,
    },
    /// Reading the log for `logs` failed.
    #[error("{path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The OS's words.
        reason: String,
    },
}

/// The answer to a tail request.
pub struct Tail {
    /// The last lines, oldest first, without their newlines.
    pub lines: Vec<String>,
    /// New output from the moment the lines were read, when asked to follow.
    pub follow: Option<broadcast::Receiver<FollowChunk>>,
}

enum Msg {
    Open {
        key: SinkKey,
        target: Target,
        timestamps: bool,
        reply: oneshot::Sender<Result<(), LogError>>,
    },
    Data {
        key: SinkKey,
        bytes: Vec<u8>,
        /// Its place among the [`QUEUE`] chunks in flight, given back once written.
        room: Option<OwnedSemaphorePermit>,
    },
    Close {
        key: SinkKey,
        ack: oneshot::Sender<()>,
    },
    /// Where to tell about a sink's write failures (the latest run's capture).
    Watch {
        key: SinkKey,
        problems: Weak<Problems>,
    },
    Tail {
        key: SinkKey,
        path: PathBuf,
        lines: usize,
        follow: bool,
        reply: oneshot::Sender<Result<Tail, LogError>>,
    },
    Print(String, Option<OwnedSemaphorePermit>),
    /// Close and reopen every captured log file (SIGUSR2, after an outside rotation).
    Reopen {
        reply: oneshot::Sender<usize>,
    },
}

/// The handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct LogHub {
    tx: mpsc::UnboundedSender<Msg>,
    /// Room for chunks of output in flight ([`QUEUE`]).
    room: Arc<Semaphore>,
}

/// Owns the writer thread; dropping every [`LogHub`] and then calling [`LogWriter::join`]
/// flushes and stops it.
pub struct LogWriter {
    thread: Option<JoinHandle<()>>,
}

impl LogWriter {
    /// Wait for the writer thread to write everything queued and end. Every [`LogHub`]
    /// must be dropped first.
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Start the writer thread.
pub fn start() -> io::Result<(LogHub, LogWriter)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || Writer::default().run(rx))?;
    Ok((
        LogHub {
            tx,
            room: Arc::new(Semaphore::new(QUEUE)),
        },
        LogWriter {
            thread: Some(thread),
        },
    ))
}

impl LogHub {
    /// Open a sink (or take another reference to it); an `Err` says why output will be
    /// discarded.
    pub async fn open(
        &self,
        key: SinkKey,
        target: Target,
        timestamps: bool,
    ) -> Result<(), LogError> {
        self.open_sent(key, target, timestamps)
            .await
            .await
            .unwrap_or(Err(LogError::Stopped))
    }

    /// [`open`](Self::open), without waiting for the answer: once this returns, the
    /// writer has the request ahead of anything sent for the sink after it.
    pub async fn open_sent(
        &self,
        key: SinkKey,
        target: Target,
        timestamps: bool,
    ) -> oneshot::Receiver<Result<(), LogError>> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Open {
            key,
            target,
            timestamps,
            reply,
        });
        rx
    }

    /// Copy a pipe into a sink until end of file, then close the sink once everything read
    /// is written. Returns once the bytes are in the file (at once when there were none).
    /// `on_problem` hears, once per episode, that writing the file fails (a full disk): the
    /// output is then discarded and the job runs on.
    /// `watch`, while its check is pending, looks for its line in what passes by.
    pub async fn capture(
        &self,
        key: SinkKey,
        mut pipe: impl OutputPipe,
        mut watch: Option<LineWatch>,
        mut on_problem: impl FnMut(LogError),
    ) {
        let heard = Arc::new(Problems::default());
        self.send(Msg::Watch {
            key: key.clone(),
            problems: Arc::downgrade(&heard),
        });
        let mut want = FIRST_READ;
        let mut sent = false;
        loop {
            // Write failures only happen while data flows, so checking here is enough.
            heard.take().into_iter().for_each(&mut on_problem);
            // Waited for without a buffer: a quiet job's reader holds none. (An error
            // here is met again by the read.)
            let _ = std::future::poll_fn(|cx| pipe.poll_read_ready(cx)).await;
            let mut buf = Vec::with_capacity(want);
            match pipe.read_buf(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    want = if n >= want {
                        (want * 2).min(READ_CHUNK)
                    } else {
                        FIRST_READ.max(n.next_power_of_two()).min(READ_CHUNK)
                    };
                    sent = true;
                    if let Some(w) = watch.as_mut() {
                        if !w.feed(&buf) {
                            watch = None;
                        }
                    }
                    let room = self.room().await;
                    self.send(Msg::Data {
                        key: key.clone(),
                        bytes: buf,
                        room,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(job = %key.name, stream = key.stream.as_str(), error = %e, "reading job output failed");
                    break;
                }
            }
        }
        let (ack, done) = oneshot::channel();
        self.send(Msg::Close { key, ack });
        // A stream that carried nothing has nothing to wait for; skipping the round trip
        // through the writer thread lets a silent job's exit be known at once.
        if sent {
            let _ = done.await;
        }
        heard.take().into_iter().for_each(&mut on_problem);
    }

    /// The last `lines` lines of a log file (across rotated files), and, when `follow`,
    /// a stream of what is written after them.
    pub async fn tail(
        &self,
        key: SinkKey,
        path: PathBuf,
        lines: usize,
        follow: bool,
    ) -> Result<Tail, LogError> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Tail {
            key,
            path,
            lines,
            follow,
            reply,
        });
        rx.await.unwrap_or(Err(LogError::Stopped))
    }

    /// Close and reopen every captured log file at its path, so a file moved away by
    /// logrotate stops growing. Returns how many were reopened.
    pub async fn reopen(&self) -> usize {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Reopen { reply });
        rx.await.unwrap_or(0)
    }

    /// Print one line on supervisord's stdout, never inside another job's line.
    pub async fn print(&self, line: String) {
        let room = self.room().await;
        self.send(Msg::Print(line, room));
    }

    fn send(&self, msg: Msg) {
        // The writer thread only stops once every hub is dropped, so this cannot fail
        // while `self` exists; if it somehow did, the message has nowhere to go.
        let _ = self.tx.send(msg);
    }

    /// Wait for room for one more chunk in flight. `None` only if the room was closed,
    /// which it never is.
    ///
    /// Room is nearly always there at once; only a wait for it is a future of its own,
    /// boxed: inline, the semaphore's wait (~0.1 KiB) would be part of every reader
    /// task's state for as long as its job runs.
    async fn room(&self) -> Option<OwnedSemaphorePermit> {
        match Arc::clone(&self.room).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(tokio::sync::TryAcquireError::Closed) => None,
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                Box::pin(Arc::clone(&self.room).acquire_owned()).await.ok()
            }
        }
    }
}

/// A job's output pipe as a capture reads it: read, and also waited on until readable,
/// so that a reader takes its buffer only once there is something to read.
pub trait OutputPipe: tokio::io::AsyncRead + Unpin + Send {
    /// Ready once a read would not wait: bytes, end of file or an error are there.
    fn poll_read_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>>;
}

impl<P: OutputPipe + ?Sized> OutputPipe for Box<P> {
    fn poll_read_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        (**self).poll_read_ready(cx)
    }
}

/// The write failures the writer thread has told one run's capture about, which the
/// capture looks at between reads. A shared list, not a channel: a tokio channel
/// allocates a block of 32 slots up front (about 2.8 KiB for a [`LogError`]) for each
/// captured stream, while a failure is rare and told once per episode. The writer holds
/// it weakly, so what it tells a capture that has ended goes nowhere.
#[derive(Debug, Default)]
struct Problems(std::sync::Mutex<Vec<LogError>>);

impl Problems {
    fn list(&self) -> std::sync::MutexGuard<'_, Vec<LogError>> {
        // Nothing panics while holding it; if something did, the list is still valid.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Tell the capture, if it still listens.
    fn tell(to: Option<&Weak<Problems>>, problem: LogError) {
        if let Some(problems) = to.and_then(Weak::upgrade) {
            problems.list().push(problem);
        }
    }

    /// What was told since the last look, oldest first.
    fn take(&self) -> Vec<LogError> {
        std::mem::take(&mut *self.list())
    }
}

/// A `log` ready check on one run's output: each captured line is matched against
/// `regex` in the reader, on its way to the writer (a line is not held back for it),
/// and only while the check is pending. Both streams of a run share `found` and
/// `pending`, so the first match ends the scanning of both.
#[derive(Debug, Clone)]
pub struct LineWatch {
    regex: regex::bytes::Regex,
    /// Cancelled at the first matching line.
    found: tokio_util::sync::CancellationToken,
    /// Cancelled when the check is no longer pending (the run left `starting`).
    pending: tokio_util::sync::CancellationToken,
    /// The start of a line whose end has not come yet (at most [`MAX_LINE`] bytes).
    partial: Vec<u8>,
}

impl LineWatch {
    /// A watch for `regex`; `found` is cancelled at the first match, and scanning stops
    /// once `pending` is cancelled.
    pub fn new(
        regex: regex::bytes::Regex,
        found: tokio_util::sync::CancellationToken,
        pending: tokio_util::sync::CancellationToken,
    ) -> LineWatch {
        LineWatch {
            regex,
            found,
            pending,
            partial: Vec::new(),
        }
    }

    /// Scan a chunk; `false` once there is nothing more to look for (matched, or the
    /// check is over), so the caller can drop the watch.
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        if self.found.is_cancelled() || self.pending.is_cancelled() {
            return false;
        }
        let mut rest = bytes;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(i);
            rest = &after[1..];
            let hit = if self.partial.is_empty() {
                self.matches(line)
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.matches(&whole)
            };
            if hit {
                self.found.cancel();
                return false;
            }
        }
        // A line longer than MAX_LINE is cut into pieces of that size, as in the files.
        self.partial.extend_from_slice(rest);
        while self.partial.len() >= MAX_LINE {
            let piece: Vec<u8> = self.partial.drain(..MAX_LINE).collect();
            if self.matches(&piece) {
                self.found.cancel();
                return false;
            }
        }
        true
    }

    fn matches(&self, line: &[u8]) -> bool {
        self.regex
            .is_match(line.strip_suffix(b"\r").unwrap_or(line))
    }
}

#[derive(Default)]
struct Writer {
    sinks: HashMap<SinkKey, Sink>,
    followers: HashMap<SinkKey, broadcast::Sender<FollowChunk>>,
    /// The open files, oldest opening first, with the tick each was queued at; entries
    /// whose sink was since closed, evicted or queued again are skipped when met.
    open_files: VecDeque<(SinkKey, u64)>,
    /// How many sinks hold their file open.
    open_count: usize,
    /// Counts writes, to tell which open file was used since it was queued.
    tick: u64,
    /// Log files this writer created or opened without a problem (a hash of each path):
    /// a sink for one of them is not opened again just to check it, so a job that runs
    /// again and again costs the writer nothing until it writes. Forgotten when the file
    /// cannot be opened, and at a reopen (an outside rotation moved files away).
    checked: HashSet<u64>,
}

/// The key of `path` in [`Writer::checked`]: 8 bytes a file however long its path. Two
/// paths with the same hash would only spare one of them its check at start.
fn path_key(path: &Path) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
        .hash_one(path.as_os_str())
}

struct Sink {
    refs: usize,
    target: Target,
    timestamps: bool,
    /// The open file, while it is in the writer's cache of open files.
    file: Option<File>,
    /// The file could not be opened when the sink was: output is discarded.
    broken: bool,
    /// The writer's tick at the last write, and when the file was last queued.
    used: u64,
    queued: u64,
    size: u64,
    /// Bytes after the last newline, held back in line mode.
    partial: Vec<u8>,
    /// Bytes after the last newline, held back for followers.
    follow_partial: Vec<u8>,
    /// Bytes lost since writing started failing (disk full, I/O error); `None` while
    /// writes succeed. The failure is logged once, and once more when it ends.
    failing: Option<u64>,
    /// Who hears about write failures: the capture of the latest run.
    problems: Option<Weak<Problems>>,
}

impl Sink {
    /// Whether bytes must be cut into lines before writing.
    fn line_mode(&self) -> bool {
        match &self.target {
            Target::Stdout => true,
            Target::File { max_bytes, .. } => self.timestamps || *max_bytes > 0,
        }
    }
}

impl Writer {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                Msg::Open {
                    key,
                    target,
                    timestamps,
                    reply,
                } => {
                    let _ = reply.send(self.open(key, target, timestamps));
                }
                Msg::Data { key, bytes, room } => {
                    self.data(&key, &bytes);
                    drop(room);
                }
                Msg::Close { key, ack } => {
                    self.close(&key);
                    let _ = ack.send(());
                }
                Msg::Watch { key, problems } => {
                    if let Some(sink) = self.sinks.get_mut(&key) {
                        sink.problems = Some(problems);
                    }
                }
                Msg::Tail {
                    key,
                    path,
                    lines,
                    follow,
                    reply,
                } => {
                    let result = tail_files(&path, lines).map(|lines| Tail {
                        lines,
                        follow: follow.then(|| {
                            self.followers
                                .entry(key)
                                .or_insert_with(|| broadcast::channel(FOLLOW_BACKLOG).0)
                                .subscribe()
                        }),
                    });
                    let _ = reply.send(result.map_err(|e| LogError::Read {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    }));
                }
                Msg::Reopen { reply } => {
                    let _ = reply.send(self.reopen());
                }
                Msg::Print(line, _room) => {
                    let mut out = io::stdout().lock();
                    let _ = out.write_all(line.as_bytes());
                    let _ = out.write_all(b"\n");
                    let _ = out.flush();
                }
            }
        }
        let keys: Vec<SinkKey> = self.sinks.keys().cloned().collect();
        for key in keys {
            self.flush_partial(&key);
        }
    }

    fn reopen(&mut self) -> usize {
        self.checked.clear();
        let mut n = 0;
        for (key, sink) in &mut self.sinks {
            // A file not held open is opened at its path when next written anyway.
            let (Target::File { path, .. }, Some(_)) = (&sink.target, &sink.file) else {
                continue;
            };
            match open_log(path) {
                Ok((file, size)) => {
                    sink.file = Some(file);
                    sink.size = size;
                    n += 1;
                }
                Err(e) => {
                    tracing::error!(job = %key.name, path = %path.display(), error = %e, "cannot reopen log file; writing on to the old one");
                }
            }
        }
        n
    }

    fn open(&mut self, key: SinkKey, target: Target, timestamps: bool) -> Result<(), LogError> {
        if let Some(sink) = self.sinks.get_mut(&key) {
            if sink.target == target {
                sink.refs += 1;
                sink.timestamps = timestamps;
                return if sink.broken {
                    Err(LogError::OpenedEarlier)
                } else {
                    Ok(())
                };
            }
            // The job's spec changed (reload): the old run's readers write on to the
            // old target; this run starts a fresh sink.
            self.flush_partial(&key);
            if self.sinks.get(&key).is_some_and(|s| s.file.is_some()) {
                self.open_count -= 1;
            }
        }
        // Opened here to create it and to say at once when it cannot be, then closed: a
        // job holds no log descriptor until it writes. Once per file: its size is read
        // again when it is opened to write.
        let (size, result) = match &target {
            Target::Stdout => (0, Ok(())),
            Target::File { path, .. } if self.checked.contains(&path_key(path)) => (0, Ok(())),
            Target::File { path, .. } => match self.open_log_with_room(path) {
                Ok((_, size)) => {
                    self.checked.insert(path_key(path));
                    (size, Ok(()))
                }
                // Out of descriptors even after closing half of the open log files: a
                // shortage of the moment, not a problem of the file. Left unchecked; the
                // first write opens it (and reports if that fails).
                Err(e) if is_out_of_descriptors(&e) => {
                    tracing::debug!(job = %key.name, path = %path.display(), error = %e, "log file not checked at start");
                    (0, Ok(()))
                }
                Err(e) => {
                    let err = LogError::Open {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    };
                    tracing::error!(job = %key.name, stream = key.stream.as_str(), error = %err, "output capture failed; discarding output");
                    (0, Err(err))
                }
            },
        };
        let refs = self.sinks.get(&key).map_or(0, |s| s.refs) + 1;
        let broken = result.is_err();
        self.tick += 1;
        self.sinks.insert(
            key,
            Sink {
                refs,
                target,
                timestamps,
                file: None,
                broken,
                used: self.tick,
                queued: self.tick,
                size,
                partial: Vec::new(),
                follow_partial: Vec::new(),
                failing: None,
                problems: None,
            },
        );
        result
    }

    fn close(&mut self, key: &SinkKey) {
        let Some(sink) = self.sinks.get_mut(key) else {
            return;
        };
        sink.refs = sink.refs.saturating_sub(1);
        if sink.refs == 0 {
            self.flush_partial(key);
            if self.sinks.remove(key).is_some_and(|s| s.file.is_some()) {
                self.open_count -= 1;
            }
        }
    }

    /// Close open files until one more fits under the cap: the oldest opened that
    /// was not written since it was queued (one written since gets a second chance).
    fn make_room(&mut self) {
        while self.open_count >= open_files_cap() {
            let Some((key, queued)) = self.open_files.pop_front() else {
                return;
            };
            let Some(sink) = self.sinks.get_mut(&key) else {
                continue;
            };
            if sink.file.is_none() || sink.queued != queued {
                continue;
            }
            if sink.used > queued {
                self.tick += 1;
                sink.queued = self.tick;
                self.open_files.push_back((key, self.tick));
                continue;
            }
            sink.file = None;
            self.open_count -= 1;
        }
    }

    /// [`open_log`], and when the daemon is out of descriptors (its limit is shared with
    /// pipes, pidfds and clients), once more after closing half of the open log files,
    /// rather than drop a job's output.
    fn open_log_with_room(&mut self, path: &Path) -> io::Result<(File, u64)> {
        match open_log(path) {
            Err(e) if is_out_of_descriptors(&e) && self.shed() => open_log(path),
            opened => opened,
        }
    }

    /// Close the older half of the open log files (at least one); false if none was open.
    fn shed(&mut self) -> bool {
        let target = self.open_count / 2;
        let before = self.open_count;
        while self.open_count > target {
            let Some((key, queued)) = self.open_files.pop_front() else {
                break;
            };
            if let Some(sink) = self.sinks.get_mut(&key) {
                if sink.file.is_some() && sink.queued == queued {
                    sink.file = None;
                    self.open_count -= 1;
                }
            }
        }
        self.open_count < before
    }

    /// Make sure a file sink has its file open before writing (it may have been closed to
    /// make room). False when there is nowhere to write: the sink is broken, or the file
    /// cannot be opened again (reported like a failing write, once per episode).
    fn ensure_file(&mut self, key: &SinkKey) -> bool {
        self.tick += 1;
        let tick = self.tick;
        let Some(sink) = self.sinks.get_mut(key) else {
            return false;
        };
        sink.used = tick;
        let path = match (&sink.target, &sink.file) {
            (Target::Stdout, _) | (_, Some(_)) => return true,
            _ if sink.broken => return false,
            (Target::File { path, .. }, None) => path.clone(),
        };
        self.make_room();
        let opened = self.open_log_with_room(&path);
        let Some(sink) = self.sinks.get_mut(key) else {
            return false;
        };
        match opened {
            Ok((file, size)) => {
                sink.file = Some(file);
                sink.size = size;
                sink.queued = tick;
                self.open_count += 1;
                self.open_files.push_back((key.clone(), tick));
                true
            }
            Err(e) => {
                self.checked.remove(&path_key(&path));
                if sink.failing.is_none() {
                    tracing::error!(job = %key.name, stream = key.stream.as_str(), path = %path.display(), error = %e, "cannot open log file again; discarding output until it can be");
                    sink.failing = Some(0);
                    Problems::tell(
                        sink.problems.as_ref(),
                        LogError::Open {
                            path: path.display().to_string(),
                            reason: e.to_string(),
                        },
                    );
                }
                false
            }
        }
    }

    /// Write out a held-back partial line (the stream ended without a newline).
    fn flush_partial(&mut self, key: &SinkKey) {
        if self.sinks.get(key).is_some_and(|s| !s.partial.is_empty()) {
            // Where it cannot be opened, the write below does nothing (and is reported).
            self.ensure_file(key);
        }
        let Some(sink) = self.sinks.get_mut(key) else {
            return;
        };
        let follower = self.followers.get(key);
        let partial = std::mem::take(&mut sink.partial);
        if !partial.is_empty() {
            let shown = write_lines(key, sink, &[&partial], follower.is_some());
            if let (Some(tx), Some(shown)) = (follower, shown) {
                let _ = tx.send(Arc::from(String::from_utf8_lossy(&shown).as_ref()));
            }
        }
        let rest = std::mem::take(&mut sink.follow_partial);
        if let (Some(tx), false) = (follower, rest.is_empty()) {
            let _ = tx.send(Arc::from(String::from_utf8_lossy(&rest).as_ref()));
        }
    }

    fn data(&mut self, key: &SinkKey, bytes: &[u8]) {
        let writable = self.ensure_file(key);
        let Some(sink) = self.sinks.get_mut(key) else {
            return;
        };
        if !writable && !sink.broken {
            // The file cannot be opened again: counted as lost, like a failing write.
            sink.failing = sink.failing.map(|n| n + bytes.len() as u64);
        }
        if self
            .followers
            .get(key)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            self.followers.remove(key);
        }
        let follower = self.followers.get(key);
        if !sink.line_mode() {
            if let Some(tx) = follower {
                if let Some(text) = take_lines(&mut sink.follow_partial, bytes) {
                    let _ = tx.send(Arc::from(String::from_utf8_lossy(&text).as_ref()));
                }
            }
            let ends: Vec<usize> = bytes
                .split_inclusive(|&b| b == b'\n')
                .scan(0, |at, piece| {
                    *at += piece.len();
                    Some(*at)
                })
                .collect();
            write_raw(key, sink, bytes, &ends);
            return;
        }
        let Some(complete) = take_lines(&mut sink.partial, bytes) else {
            return;
        };
        let lines: Vec<&[u8]> = split_lines(&complete).collect();
        // Followers get the lines as the file has them (with their timestamps).
        let shown = write_lines(key, sink, &lines, follower.is_some());
        if let (Some(tx), Some(shown)) = (follower, shown) {
            let _ = tx.send(Arc::from(String::from_utf8_lossy(&shown).as_ref()));
        }
    }
}

/// Append `bytes` to `partial` and take everything up to its last newline (or all of it,
/// once it is longer than [`MAX_LINE`] without one).
fn take_lines(partial: &mut Vec<u8>, bytes: &[u8]) -> Option<Vec<u8>> {
    partial.extend_from_slice(bytes);
    match partial.iter().rposition(|&b| b == b'\n') {
        Some(i) => {
            let rest = partial.split_off(i + 1);
            Some(std::mem::replace(partial, rest))
        }
        None if partial.len() >= MAX_LINE => Some(std::mem::take(partial)),
        None => None,
    }
}

/// Lines with their newlines; lines longer than [`MAX_LINE`] cut into pieces.
fn split_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .flat_map(|line| line.chunks(MAX_LINE))
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EMFILE | nix::libc::ENFILE)
    )
}

fn open_log(path: &Path) -> io::Result<(File, u64)> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Non-blocking, so a FIFO at the path cannot hold up the writer thread (and every
    // job's output) in `open`; a FIFO is refused, it cannot be rotated or tailed.
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(nix::libc::ENXIO) => io::Error::other("it is a FIFO, not a file"),
            _ => e,
        })?;
    let meta = file.metadata()?;
    if meta.file_type().is_fifo() || meta.file_type().is_socket() {
        return Err(io::Error::other(
            "it is a FIFO or a socket, not a file; a path as stdout/stderr writes to one",
        ));
    }
    let flags = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) - nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    Ok((file, meta.len()))
}

/// Append to the log file: whole lines or nothing. `ends` are where each line of `bytes`
/// ends. When the disk fills in the middle of a write, the file is cut back to the last
/// whole line written, so no line is torn and no later line is glued onto half of one;
/// what was lost is counted exactly. A failing disk is reported once when it starts
/// failing and once when it works again (with how much was lost), not once per chunk: a
/// job flooding a full disk must not flood the daemon's own log too.
fn write_raw(key: &SinkKey, sink: &mut Sink, bytes: &[u8], ends: &[usize]) {
    let Some(file) = sink.file.as_mut() else {
        return;
    };
    let mut done = 0;
    let mut error = None;
    while done < bytes.len() {
        match file.write(&bytes[done..]) {
            Ok(0) => {
                error = Some(io::Error::from(io::ErrorKind::WriteZero));
                break;
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let kept = match error {
        None => done,
        Some(_) => {
            // Keep only whole lines: cut what was written of the torn one.
            let whole = ends
                .iter()
                .copied()
                .filter(|e| *e <= done)
                .max()
                .unwrap_or(0);
            if whole < done && file.set_len(sink.size + whole as u64).is_err() {
                // Cannot cut it: the torn part stays, and counts as written.
                done
            } else {
                whole
            }
        }
    };
    sink.size += kept as u64;
    let lost = (bytes.len() - kept) as u64;
    match error {
        None => {
            if let Some(lost) = sink.failing.take() {
                tracing::warn!(job = %key.name, stream = key.stream.as_str(), lost_bytes = lost, "writing log works again");
            }
        }
        Some(e) => match sink.failing.as_mut() {
            Some(total) => *total += lost,
            None => {
                tracing::error!(job = %key.name, stream = key.stream.as_str(), error = %e, "writing log failed; discarding output until it works again");
                sink.failing = Some(lost);
                if let Target::File { path, .. } = &sink.target {
                    let at = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
                    Problems::tell(
                        sink.problems.as_ref(),
                        LogError::Write {
                            path: path.display().to_string(),
                            at: at.to_string(),
                            reason: e.to_string(),
                        },
                    );
                }
            }
        },
    }
}

/// Write whole lines, rotating between them so no line spans two files. With `keep`,
/// returns the bytes as written (for followers).
fn write_lines(key: &SinkKey, sink: &mut Sink, lines: &[&[u8]], keep: bool) -> Option<Vec<u8>> {
    let stamp = sink.timestamps.then(|| {
        format!(
            "{} ",
            humantime::format_rfc3339_millis(std::time::SystemTime::now())
        )
    });
    let prefix: Vec<u8> = match (&sink.target, &stamp) {
        (Target::Stdout, Some(s)) => format!("{} | {s}", key.name).into_bytes(),
        (Target::Stdout, None) => format!("{} | ", key.name).into_bytes(),
        (Target::File { .. }, Some(s)) => s.clone().into_bytes(),
        (Target::File { .. }, None) => Vec::new(),
    };
    let mut batch: Vec<u8> = Vec::new();
    let mut kept = keep.then(Vec::new);
    let mut ends: Vec<usize> = Vec::new();
    for line in lines {
        let mut rendered = Vec::with_capacity(prefix.len() + line.len() + 1);
        rendered.extend_from_slice(&prefix);
        rendered.extend_from_slice(line);
        if matches!(sink.target, Target::Stdout) && !line.ends_with(b"\n") {
            rendered.push(b'\n');
        }
        if let Target::File {
            path,
            max_bytes,
            backups,
        } = &sink.target
        {
            let pending = sink.size + batch.len() as u64;
            if *max_bytes > 0 && pending > 0 && pending + rendered.len() as u64 > *max_bytes {
                let (path, backups) = (path.clone(), *backups);
                write_raw(key, sink, &batch, &ends);
                batch.clear();
                ends.clear();
                rotate(key, sink, &path, backups);
            }
        }
        if let Some(k) = kept.as_mut() {
            k.extend_from_slice(&rendered);
        }
        batch.extend_from_slice(&rendered);
        ends.push(batch.len());
    }
    match sink.target {
        Target::Stdout => {
            let mut out = io::stdout().lock();
            let _ = out.write_all(&batch);
            let _ = out.flush();
        }
        Target::File { .. } => write_raw(key, sink, &batch, &ends),
    }
    kept
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn rotate(key: &SinkKey, sink: &mut Sink, path: &Path, backups: u32) {
    let result = (|| -> io::Result<()> {
        if backups == 0 {
            std::fs::remove_file(path)?;
        } else {
            // Shift only the backups that exist (`path.1` up to the first missing one),
            // so the cost follows the files present, not the setting.
            let top = (1..backups)
                .find(|n| !rotated(path, *n).exists())
                .unwrap_or(backups);
            for n in (1..top).rev() {
                std::fs::rename(rotated(path, n), rotated(path, n + 1))?;
            }
            std::fs::rename(path, rotated(path, 1))?;
        }
        let (file, size) = open_log(path)?;
        sink.file = Some(file);
        sink.size = size;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::error!(job = %key.name, path = %path.display(), error = %e, "log rotation failed; writing on to the current file");
    }
}

/// The last `n` lines across `path`, `path.1`, `path.2`, … oldest first, at most
/// [`MAX_TAIL_BYTES`] of them: a request for a billion lines gets the newest that fit,
/// not a daemon reading every backup into memory (on the writer thread, holding up every
/// job's output meanwhile).
fn tail_files(path: &Path, n: usize) -> io::Result<Vec<String>> {
    let mut lines: Vec<String> = Vec::new();
    let mut budget = MAX_TAIL_BYTES;
    let mut k = 0;
    while lines.len() < n && budget > 0 {
        let p = if k == 0 {
            path.to_path_buf()
        } else {
            rotated(path, k)
        };
        let (mut older, used) = match tail_file(&p, n - lines.len(), budget) {
            Ok(found) => found,
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(e),
        };
        budget = budget.saturating_sub(used);
        older.append(&mut lines);
        lines = older;
        k += 1;
    }
    Ok(lines)
}

/// The last `n` lines of one file, reading backwards from its end, and how many bytes
/// were read. Stops early, with fewer lines, once `budget` bytes are read (whole lines
/// only).
fn tail_file(path: &Path, n: usize, budget: usize) -> io::Result<(Vec<String>, usize)> {
    let mut file = File::open(path)?;
    if n == 0 {
        return Ok((Vec::new(), 0));
    }
    let len = file.metadata()?.len();
    let mut pos = len;
    let mut buf: Vec<u8> = Vec::new();
    const BLOCK: u64 = 64 * 1024;
    loop {
        // Lines end at newlines; a trailing newline does not start another line.
        let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let newlines = body.iter().filter(|&&b| b == b'\n').count();
        if newlines >= n || pos == 0 || buf.len() >= budget {
            break;
        }
        let step = BLOCK.min(pos).min((budget - buf.len()) as u64);
        pos -= step;
        file.seek(SeekFrom::Start(pos))?;
        let mut block = vec![0; step as usize];
        file.read_exact(&mut block)?;
        block.extend_from_slice(&buf);
        buf = block;
    }
    let used = buf.len();
    let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
    if body.is_empty() && buf.is_empty() {
        return Ok((Vec::new(), used));
    }
    let all: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    // Unless the file was read from its start, the first piece may be a line's tail.
    let whole = if pos > 0 { &all[1..] } else { &all[..] };
    let skip = whole.len().saturating_sub(n);
    let lines = whole[skip..]
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    Ok((lines, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SinkKey {
        SinkKey {
            name: "j".into(),
            stream: Stream::Stdout,
        }
    }

    fn file_sink(path: &Path, max_bytes: u64, backups: u32) -> Writer {
        let mut w = Writer::default();
        w.open(
            key(),
            Target::File {
                path: path.to_path_buf(),
                max_bytes,
                backups,
            },
            false,
        )
        .expect("open");
        w
    }

    #[test]
    fn raw_mode_is_byte_exact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.stdout.log");
        let mut w = file_sink(&path, 0, 5);
        let data: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
        for chunk in data.chunks(7777) {
            w.data(&key(), chunk);
        }
        w.close(&key());
        assert_eq!(std::fs::read(&path).expect("read"), data);
    }

    #[test]
    fn rotation_keeps_whole_lines_and_backups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.stdout.log");
        let mut w = file_sink(&path, 100, 2);
        let mut all = String::new();
        for i in 0..60 {
            let line = format!("line {i:03}\n");
            all.push_str(&line);
            // Feed in awkward pieces so lines arrive split.
            let (a, b) = line.split_at(3);
            w.data(&key(), a.as_bytes());
            w.data(&key(), b.as_bytes());
        }
        w.close(&key());
        let cur = std::fs::read_to_string(&path).expect("current");
        let one = std::fs::read_to_string(rotated(&path, 1)).expect(".1");
        let two = std::fs::read_to_string(rotated(&path, 2)).expect(".2");
        assert!(!rotated(&path, 3).exists(), "only 2 backups");
        for f in [&cur, &one, &two] {
            assert!(f.len() <= 100, "{} bytes", f.len());
            assert!(f.ends_with('\n'));
            assert!(f.lines().all(|l| l.len() == 8), "{f}");
        }
        let kept = format!("{two}{one}{cur}");
        assert!(all.ends_with(&kept), "the newest lines, in order");
    }

    #[test]
    fn tail_reads_across_rotated_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.stdout.log");
        let mut w = file_sink(&path, 50, 3);
        for i in 0..20 {
            w.data(&key(), format!("l{i:02}\n").as_bytes());
        }
        let got = tail_files(&path, 15).expect("tail");
        let want: Vec<String> = (5..20).map(|i| format!("l{i:02}")).collect();
        assert_eq!(got, want);
        assert_eq!(tail_files(&path, 0).expect("tail"), Vec::<String>::new());
        assert_eq!(tail_files(&path, 2).expect("tail"), vec!["l18", "l19"]);
    }

    #[test]
    fn tail_counts_a_last_line_without_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, "a\nb\nc").expect("write");
        assert_eq!(
            tail_file(&path, 2, 1 << 20).expect("tail").0,
            vec!["b", "c"]
        );
        std::fs::write(&path, "").expect("write");
        assert!(tail_file(&path, 2, 1 << 20).expect("tail").0.is_empty());
        let big: String = (0..50_000).map(|i| format!("{i}\n")).collect();
        std::fs::write(&path, &big).expect("write");
        assert_eq!(
            tail_file(&path, 3, 1 << 20).expect("tail").0,
            vec!["49997", "49998", "49999"]
        );
    }

    #[test]
    fn tail_stops_at_its_byte_budget_with_whole_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let text: String = (0..1000).map(|i| format!("line{i:04}\n")).collect();
        std::fs::write(&path, &text).expect("write");
        // Each line is 9 bytes: 95 bytes hold 10 whole lines and a piece of another.
        let (lines, used) = tail_file(&path, 500, 95).expect("tail");
        assert_eq!(used, 95);
        let want: Vec<String> = (990..1000).map(|i| format!("line{i:04}")).collect();
        assert_eq!(lines, want);
        // Asked for everything: the whole file, when it fits.
        assert_eq!(
            tail_file(&path, usize::MAX, 1 << 20).expect("tail").0.len(),
            1000
        );
    }

    #[test]
    fn long_lines_are_cut_not_lost() {
        let mut partial = Vec::new();
        let big = vec![b'x'; MAX_LINE + 10];
        let taken = take_lines(&mut partial, &big).expect("cut");
        assert_eq!(taken.len(), MAX_LINE + 10);
        assert!(partial.is_empty());
        assert_eq!(take_lines(&mut partial, b"ab"), None);
        assert_eq!(take_lines(&mut partial, b"c\nd"), Some(b"abc\n".to_vec()));
        assert_eq!(partial, b"d");
    }

    /// More sinks than the cache of open files holds: never more than its cap
    /// files open, and every byte still lands in its own file, in order.
    #[test]
    fn open_files_are_bounded_and_closed_files_are_appended_to_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = Writer::default();
        let n = open_files_cap() * 2 + 7;
        let keys: Vec<SinkKey> = (0..n)
            .map(|i| SinkKey {
                name: format!("j{i}"),
                stream: Stream::Stdout,
            })
            .collect();
        for (i, k) in keys.iter().enumerate() {
            let target = Target::File {
                path: dir.path().join(format!("j{i}.log")),
                max_bytes: if i % 2 == 0 { 0 } else { 1 << 20 },
                backups: 1,
            };
            w.open(k.clone(), target, false).expect("open");
            assert!(w.open_count <= open_files_cap(), "{} open", w.open_count);
        }
        for round in 0..3 {
            for k in &keys {
                w.data(k, format!("{} {round}\n", k.name).as_bytes());
                assert!(w.open_count <= open_files_cap(), "{} open", w.open_count);
            }
        }
        let open = w.sinks.values().filter(|s| s.file.is_some()).count();
        assert_eq!(open, w.open_count);
        for k in &keys {
            w.close(k);
        }
        assert_eq!(w.open_count, 0);
        for (i, k) in keys.iter().enumerate() {
            let got = std::fs::read_to_string(dir.path().join(format!("j{i}.log"))).expect("read");
            assert_eq!(got, format!("{0} 0\n{0} 1\n{0} 2\n", k.name));
        }
    }

    /// A run of a job whose log file was created by an earlier run costs the writer no
    /// open until the job writes; rotation sees the file's real size all the same; a file
    /// that cannot be opened is checked (and refused) every time.
    #[test]
    fn a_log_file_is_checked_once_and_its_size_read_when_it_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.stdout.log");
        let target = || Target::File {
            path: path.clone(),
            max_bytes: 20,
            backups: 1,
        };
        let mut w = Writer::default();
        w.open(key(), target(), false).expect("first run");
        assert!(path.exists(), "the first run creates its log file");
        w.data(&key(), b"0123456789abcde\n");
        w.close(&key());
        std::fs::rename(&path, dir.path().join("moved")).expect("move it away");
        w.open(key(), target(), false).expect("second run");
        assert!(!path.exists(), "checked before: not opened again");
        std::fs::rename(dir.path().join("moved"), &path).expect("put it back");
        w.data(&key(), b"fghij\n");
        w.close(&key());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("j.stdout.log.1")).expect("rotated"),
            "0123456789abcde\n",
            "the 16 bytes already there counted: the next line rotated the file"
        );
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "fghij\n");
        // A reopen (after an outside rotation) forgets what was checked.
        w.reopen();
        std::fs::remove_file(&path).expect("remove");
        w.open(key(), target(), false).expect("after a reopen");
        assert!(path.exists(), "checked again, so created again");
        w.close(&key());
        // A folder where the file should be: refused at every open.
        let folder = dir.path().join("folder.log");
        std::fs::create_dir(&folder).expect("a folder in the way");
        for _ in 0..2 {
            let t = Target::File {
                path: folder.clone(),
                max_bytes: 0,
                backups: 1,
            };
            w.open(key(), t, false).expect_err("not a file");
            w.close(&key());
        }
    }

    /// Output waiting for the writer holds back readers, never a sink being opened or
    /// closed: a burst of starts does not queue behind a chatty job's chunks.
    #[tokio::test]
    async fn opens_and_closes_never_wait_for_room_that_output_took() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (hub, writer) = start().expect("writer");
        let taken = Arc::clone(&hub.room)
            .acquire_many_owned(u32::try_from(QUEUE).expect("small"))
            .await
            .expect("all the room");
        let target = Target::File {
            path: dir.path().join("j.stdout.log"),
            max_bytes: 0,
            backups: 1,
        };
        let opened = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            hub.open(key(), target, false),
        )
        .await
        .expect("an open does not wait for room");
        assert!(opened.is_ok(), "{opened:?}");
        assert!(dir.path().join("j.stdout.log").exists());
        let printed = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            hub.print("held".into()),
        )
        .await;
        assert!(
            printed.is_err(),
            "a line to print waits for room like output"
        );
        drop(taken);
        drop(hub);
        writer.join();
    }

    #[test]
    fn unwritable_folder_reports_and_discards() {
        let mut w = Writer::default();
        let e = w
            .open(
                key(),
                Target::File {
                    path: "/proc/definitely/not/here.log".into(),
                    max_bytes: 0,
                    backups: 1,
                },
                false,
            )
            .expect_err("cannot open");
        assert!(
            e.to_string().contains("/proc/definitely/not/here.log"),
            "{e}"
        );
        w.data(&key(), b"dropped\n");
        w.close(&key());
    }

    fn watch(re: &str) -> (LineWatch, tokio_util::sync::CancellationToken) {
        let found = tokio_util::sync::CancellationToken::new();
        let w = LineWatch::new(
            regex::bytes::Regex::new(re).expect("test regex"),
            found.clone(),
            tokio_util::sync::CancellationToken::new(),
        );
        (w, found)
    }

    #[test]
    fn a_line_watch_matches_whole_lines_across_chunks() {
        let (mut w, found) = watch("^listening on [0-9]+$");
        assert!(w.feed(b"starting\nlisten"));
        assert!(!found.is_cancelled());
        assert!(w.feed(b"ing on 80"));
        assert!(!found.is_cancelled(), "no match before the line ends");
        assert!(!w.feed(b"80\r\nmore\n"));
        assert!(found.is_cancelled());
    }

    #[test]
    fn a_line_watch_stops_when_its_check_is_over() {
        let found = tokio_util::sync::CancellationToken::new();
        let pending = tokio_util::sync::CancellationToken::new();
        let mut w = LineWatch::new(
            regex::bytes::Regex::new("ready").expect("test regex"),
            found.clone(),
            pending.clone(),
        );
        assert!(w.feed(b"not yet\n"));
        pending.cancel();
        assert!(!w.feed(b"ready\n"));
        assert!(!found.is_cancelled());
    }

    #[test]
    fn a_line_watch_holds_at_most_one_long_line() {
        let (mut w, found) = watch("^x$");
        for _ in 0..10 {
            assert!(w.feed(&vec![b'a'; MAX_LINE / 2 + 1]));
        }
        assert!(w.partial.len() < MAX_LINE);
        assert!(w.feed(b"\nnope\n"));
        assert!(!w.feed(b"x\n"));
        assert!(found.is_cancelled());
    }

    #[test]
    fn a_capture_hears_a_write_failure_once_and_nothing_after_it_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.stdout.log");
        std::os::unix::fs::symlink("/dev/full", &path).expect("symlink");
        let mut w = file_sink(&path, 0, 0);
        let heard = Arc::new(Problems::default());
        w.sinks.get_mut(&key()).expect("sink").problems = Some(Arc::downgrade(&heard));
        w.data(&key(), b"lost\n");
        w.data(&key(), b"lost too\n");
        let told = heard.take();
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(
            matches!(&told[0], LogError::Write { path: p, .. } if p == &path.display().to_string()),
            "{told:?}"
        );
        assert!(heard.take().is_empty());
        // The capture has ended: what the writer would tell goes nowhere.
        drop(heard);
        Problems::tell(
            w.sinks.get(&key()).and_then(|s| s.problems.as_ref()),
            LogError::Stopped,
        );
    }
}
