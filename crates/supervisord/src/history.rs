//! The run history: `<state_dir>/history.jsonl`, one JSON line when a run starts and one
//! when it ends, read back when supervisord starts.
//!
//! # Theory of operation
//!
//! [`open`] runs once, before the supervisor starts (on a blocking thread): it locks the
//! state folder (one supervisord per history), reads the file, cuts off a torn last line
//! (a write a crash cut short) and skips garbled ones, each with a warning in the log,
//! ends the runs that had started but never ended — supervisord died while they ran —
//! with cause `daemon_lost` (their end lines written and fsync'd at once), compacts the
//! file if it is too large, and starts the writer thread. What it read comes back as
//! [`Recovered`]: each job's last run, for `status` and for `catch_up`.
//!
//! The supervisor hands records to the writer over an unbounded channel
//! ([`HistoryLog`]): handing them over never waits, whatever the disk does. The records
//! of one turn of the supervisor's loop go over as one message at the end of the turn
//! ([`HistoryLog::flush`]), so a burst of starts or exits wakes the thread once. The
//! thread takes whatever has queued up as one batch, serializes it into one reused
//! buffer, writes it with one `write`, and — if the batch holds an end record —
//! `fdatasync`s it (group commit: one fsync per batch). It then publishes the batch's
//! last sequence number in [`Durable`], which the supervisor reads without a message.
//! The supervisor holds back any `wait` (or `terminate`, `remove`) answer that reports a
//! run as ended until that run's end record is durable, so what `wait` reports is on
//! disk; while an answer is held back it says which sequence number it waits for, and
//! only then does the writer wake the supervisor's loop (a [`Note::Durable`]) once that
//! number is durable — a run nobody waits for costs the loop no turn. A slow disk delays
//! those answers, never the supervisor's loop, and a burst of exits shares one fsync.
//! Start records are written at once but synced only with the next end record.
//!
//! Failures never stop supervision: a state folder that cannot be created or written, or
//! a write that fails later (a full disk), is reported once (a [`Note::Failed`], which
//! the log, `ping` and `supctl status` show) and the history is off from then on; the
//! writer keeps acknowledging records so no answer waits for a disk that will not come.
//!
//! Past `max_bytes` the writer compacts the file (see [`records::compact`]): it keeps the
//! newest runs within half of `max_bytes` and every run still alive, writes them to a
//! temporary file, fsyncs it and renames it over the history, all on its own thread.
//!
//! `history` requests go through the same channel, so an answer includes every record
//! handed over before it; the writer answers from the file.

pub mod records;

use crate::supervisor::{encode, rfc3339, Reply};
use nix::fcntl::{Flock, FlockArg};
use protocol::{code, HistoryParams, HistoryResult, JobState, RpcError, Run};
use records::{Book, Line};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::SystemTime;
use tokio::sync::mpsc as async_mpsc;

/// The history's file name inside `state_dir`.
pub const FILE: &str = "history.jsonl";

/// How many records the writer takes into one batch at most.
const BATCH: usize = 4096;
/// The most of the batch buffer kept between batches (a usual batch is a few lines).
const KEEP_BUF: usize = 64 * 1024;

/// How many garbled lines are named one by one in the log at start.
const NAMED_BAD_LINES: usize = 5;

/// What the writer tells the supervisor.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// Every record up to this sequence number is done with: on disk (an end record
    /// fsync'd), or dropped because the history failed. Sent only when the supervisor
    /// holds an answer back for a record this far (see [`Durable`]).
    Durable(u64),
    /// The history stopped working (sent once); the message says why and where.
    Failed(String),
}

/// How far the writer got, shared by the writer (which moves it) and the supervisor
/// (which reads it to know whether a run's end is on disk).
///
/// No wake-up is lost: the supervisor publishes what it waits for before it looks at how
/// far the writer got ([`Durable::covers`]), and the writer publishes how far it got
/// before it looks at what is waited for ([`Durable::reached`]), both sequentially
/// consistent — so either the supervisor sees the record durable, or the writer sees it
/// waited for and sends a [`Note::Durable`].
#[derive(Debug, Default)]
pub struct Durable {
    /// Every record up to this sequence number is done with.
    done: AtomicU64,
    /// The highest sequence number the supervisor holds an answer back for.
    wanted: AtomicU64,
}

impl Durable {
    /// Whether every record up to `seq` is done with; if not, the writer is asked to
    /// wake the supervisor once it is.
    pub fn covers(&self, seq: u64) -> bool {
        if self.done.load(Ordering::SeqCst) >= seq {
            return true;
        }
        self.wanted.fetch_max(seq, Ordering::SeqCst);
        self.done.load(Ordering::SeqCst) >= seq
    }

    /// Every record up to `seq` is done with (also when a note says so).
    pub fn advance(&self, seq: u64) {
        self.done.fetch_max(seq, Ordering::SeqCst);
    }

    /// The writer made records up to `seq` durable: whether to wake the supervisor,
    /// because it holds an answer back for one of them. `woken` is the writer's memory
    /// of what it already woke the supervisor for.
    fn reached(&self, seq: u64, woken: &mut u64) -> bool {
        self.advance(seq);
        let wanted = self.wanted.load(Ordering::SeqCst);
        if wanted > *woken && wanted <= seq {
            *woken = wanted;
            true
        } else {
            false
        }
    }
}

/// A record handed to the writer.
pub(crate) struct Record {
    /// The line; serialized on the writer thread.
    pub(crate) line: Line,
    /// Its sequence number.
    pub(crate) seq: u64,
    /// An end record: fsync before it counts as durable.
    pub(crate) end: bool,
}

/// What the supervisor hands the writer.
pub(crate) enum Msg {
    /// The records of one turn of the supervisor's loop, in order.
    Records(Vec<Record>),
    /// A `history` request.
    Query {
        /// Its params.
        params: HistoryParams,
        /// Where the answer goes.
        reply: Reply,
    },
}

/// The supervisor's end of the history: hands records to the writer thread, never waits.
pub struct HistoryLog {
    tx: mpsc::Sender<Msg>,
    seq: u64,
    /// Records of this turn, handed over at [`HistoryLog::flush`].
    pending: Vec<Record>,
}

impl HistoryLog {
    /// Record that a run was spawned.
    pub fn started(&mut self, run: Run) {
        self.send(Line::start(run), false);
    }

    /// Record that a run ended, the job entering `state`. Returns the record's sequence
    /// number: the run's end is on disk once a [`Note::Durable`] at or past it arrives.
    pub fn ended(&mut self, state: JobState, run: Run) -> u64 {
        self.send(Line::end(state, run), true)
    }

    fn send(&mut self, line: Line, end: bool) -> u64 {
        self.seq += 1;
        self.pending.push(Record {
            line,
            seq: self.seq,
            end,
        });
        self.seq
    }

    /// Hand this turn's records to the writer (one message, one wake-up of its thread).
    pub fn flush(&mut self) {
        if !self.pending.is_empty() {
            let _ = self
                .tx
                .send(Msg::Records(std::mem::take(&mut self.pending)));
        }
    }

    /// Answer a `history` request from the file, after every record made so far.
    pub fn query(&mut self, params: HistoryParams, reply: Reply) {
        self.flush();
        if let Err(mpsc::SendError(Msg::Query { reply, .. })) =
            self.tx.send(Msg::Query { params, reply })
        {
            let _ = reply.send(Err(RpcError::shutting_down()));
        }
    }

    /// A log whose records go to `tx` (for tests that play the writer).
    #[cfg(test)]
    pub(crate) fn to_channel(tx: mpsc::Sender<Msg>) -> HistoryLog {
        HistoryLog {
            tx,
            seq: 0,
            pending: Vec::new(),
        }
    }
}

impl Drop for HistoryLog {
    /// The records of a last turn (shutdown) still go to the writer.
    fn drop(&mut self) {
        self.flush();
    }
}

/// What the history said at start.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recovered {
    /// Each job's last ended run (runs lost with a dead supervisord included), with the
    /// settled state it left the job in.
    pub last: HashMap<String, (JobState, Run)>,
    /// The first run id this supervisord may use (past every id in the file).
    pub next_run_id: u64,
    /// Why the history is not being written, when it is not.
    pub error: Option<String>,
}

impl Recovered {
    /// The last run of each job, by job name — what `catch_up` needs to know whether a
    /// scheduled time passed while supervisord was down (compare with the run's
    /// `started_at`). Empty when the history is off or unreadable.
    pub fn last_runs(&self) -> impl Iterator<Item = (&str, &Run)> {
        self.last
            .iter()
            .map(|(name, (_, run))| (name.as_str(), run))
    }
}

/// The writer thread, to join at exit (after the [`HistoryLog`] is dropped).
pub struct HistoryWriter {
    thread: Option<JoinHandle<()>>,
}

impl HistoryWriter {
    /// Wait for the thread to write (and fsync) what is queued and end.
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An opened history.
pub struct Opened {
    /// What the supervisor holds.
    pub attached: Attached,
    /// The thread.
    pub writer: HistoryWriter,
}

/// The supervisor's part of an opened history.
pub struct Attached {
    /// Where the supervisor sends records.
    pub log: HistoryLog,
    /// Where the writer's wake-ups and failure arrive.
    pub notes: async_mpsc::UnboundedReceiver<Note>,
    /// How far the writer got.
    pub durable: Arc<Durable>,
    /// What the file said.
    pub recovered: Recovered,
}

/// Open the history in `dir` (blocking I/O: call it off the runtime). Never fails: what
/// cannot be done is logged and returned in [`Recovered::error`], and the writer then
/// only acknowledges.
pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Opened> {
    let path = dir.join(FILE);
    let (file, mut recovered) = match prepare(dir, &path, max_bytes) {
        Ok((file, recovered)) => (Some(file), recovered),
        Err(Unavailable { error, recovered }) => {
            tracing::error!(path = %path.display(), "run history off: {error}");
            (
                None,
                Recovered {
                    error: Some(error),
                    ..recovered
                },
            )
        }
    };
    recovered.next_run_id = recovered.next_run_id.max(1);
    let (tx, rx) = mpsc::channel();
    let (notes_tx, notes) = async_mpsc::unbounded_channel();
    let durable = Arc::new(Durable::default());
    let mut writer = Writer {
        durable: Arc::clone(&durable),
        woken: 0,
        buf: Vec::new(),
        path,
        size: file
            .as_ref()
            .and_then(|f| f.file.metadata().ok())
            .map_or(0, |m| m.len()),
        file,
        max_bytes,
        notes: notes_tx,
    };
    let thread = std::thread::Builder::new()
        .name("history-writer".into())
        .spawn(move || writer.run(&rx))?;
    Ok(Opened {
        attached: Attached {
            log: HistoryLog {
                tx,
                seq: 0,
                pending: Vec::new(),
            },
            notes,
            durable,
            recovered,
        },
        writer: HistoryWriter {
            thread: Some(thread),
        },
    })
}

/// The open history file and the lock on its folder.
struct Held {
    file: File,
    _lock: Flock<File>,
}

struct Unavailable {
    error: String,
    recovered: Recovered,
}

/// Lock the folder, read and repair the file, end lost runs, compact if too large.
fn prepare(dir: &Path, path: &Path, max_bytes: u64) -> Result<(Held, Recovered), Unavailable> {
    let fail = |error: String| Unavailable {
        error,
        recovered: Recovered::default(),
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| fail(format!("cannot create state_dir {}: {e}", dir.display())))?;
    let folder = File::open(dir)
        .map_err(|e| fail(format!("cannot open state_dir {}: {e}", dir.display())))?;
    let lock = Flock::lock(folder, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        fail(format!(
            "state_dir {} is locked: another supervisord keeps its history there ({e})",
            dir.display()
        ))
    })?;
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(fail(format!("cannot read {}: {e}", path.display()))),
    };
    let mut book = read_logged(&bytes, path);
    let recovered_so_far = |book: &Book| Recovered {
        last: book.last_per_job(),
        next_run_id: book.max_run_id() + 1,
        error: None,
    };
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| Unavailable {
            error: format!("cannot open {}: {e}", path.display()),
            recovered: recovered_so_far(&book),
        })?;
    if bytes.is_empty() {
        // The file may be new: make its name durable too.
        let _ = lock.sync_all();
    }
    let mut held = Held { file, _lock: lock };
    let write_error = |what: &str, e: io::Error, book: &Book| Unavailable {
        error: format!("cannot {what} {}: {e}", path.display()),
        recovered: recovered_so_far(book),
    };
    if let Some(at) = records::torn_tail(&bytes) {
        held.file
            .set_len(at as u64)
            .map_err(|e| write_error("cut the torn line off", e, &book))?;
    }
    let lost = book.end_lost(&rfc3339(SystemTime::now()));
    if !lost.is_empty() {
        let names: Vec<&str> = lost.iter().map(|l| l.run.name.as_str()).collect();
        tracing::warn!(
            runs = lost.len(),
            "runs that were alive when supervisord died are ended as daemon_lost: {}",
            names.join(", ")
        );
        let text: String = lost.iter().map(Line::to_text).collect();
        held.file
            .write_all(text.as_bytes())
            .and_then(|()| held.file.sync_data())
            .map_err(|e| write_error("write to", e, &book))?;
    }
    let size = held.file.metadata().map_or(0, |m| m.len());
    if max_bytes > 0 && size > max_bytes {
        held.file = compact(path, max_bytes).map_err(|e| write_error("compact", e, &book))?;
    }
    Ok((held, recovered_so_far(&book)))
}

/// Read the file's bytes into runs, with a warning for a torn last line and for each
/// garbled line.
fn read_logged(bytes: &[u8], path: &Path) -> Book {
    let whole = match records::torn_tail(bytes) {
        Some(at) => {
            tracing::warn!(
                path = %path.display(),
                bytes = bytes.len() - at,
                "the history's last line is torn (a write cut short); it is skipped"
            );
            &bytes[..at]
        }
        None => bytes,
    };
    let book = records::read(&String::from_utf8_lossy(whole));
    for bad in book.bad.iter().take(NAMED_BAD_LINES) {
        tracing::warn!(
            "{}:{}: garbled history line skipped: {}",
            path.display(),
            bad.number,
            bad.error
        );
    }
    if book.bad.len() > NAMED_BAD_LINES {
        tracing::warn!(
            path = %path.display(),
            "{} more garbled history lines skipped",
            book.bad.len() - NAMED_BAD_LINES
        );
    }
    book
}

/// Rewrite the history keeping the newest runs within half of `max_bytes` (and every
/// run still alive): a temporary file, fsync'd, renamed over it. Returns the new file,
/// open for appending.
fn compact(path: &Path, max_bytes: u64) -> io::Result<File> {
    let bytes = std::fs::read(path)?;
    let kept = records::compact(&String::from_utf8_lossy(&bytes), max_bytes / 2);
    let tmp = temp_path(path);
    let mut out = File::create(&tmp)?;
    out.write_all(kept.as_bytes())?;
    out.sync_all()?;
    drop(out);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    tracing::info!(
        path = %path.display(),
        from = bytes.len(),
        to = kept.len(),
        "history compacted"
    );
    OpenOptions::new().append(true).open(path)
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

struct Writer {
    /// How far records are durable, and what the supervisor waits for.
    durable: Arc<Durable>,
    /// The highest sequence number the supervisor was woken for.
    woken: u64,
    /// The batch's lines, serialized (reused from batch to batch).
    buf: Vec<u8>,
    path: PathBuf,
    file: Option<Held>,
    size: u64,
    max_bytes: u64,
    notes: async_mpsc::UnboundedSender<Note>,
}

impl Writer {
    fn run(&mut self, rx: &mpsc::Receiver<Msg>) {
        while let Ok(first) = rx.recv() {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            let mut last_seq = None;
            let mut sync = false;
            let mut queries = Vec::new();
            let mut take = |m: Msg| match m {
                Msg::Records(records) => {
                    for r in records {
                        r.line.write_to(&mut buf);
                        last_seq = Some(r.seq);
                        sync |= r.end;
                    }
                }
                Msg::Query { params, reply } => queries.push((params, reply)),
            };
            take(first);
            for m in rx.try_iter().take(BATCH) {
                take(m);
            }
            if !buf.is_empty() {
                self.append(&buf, sync);
            }
            // A burst (10,000 jobs starting in one turn) grows the buffer to megabytes;
            // kept at that size it would stay resident for the daemon's life.
            buf.clear();
            buf.shrink_to(KEEP_BUF);
            self.buf = buf;
            // Compacted before anyone hears that the batch is written: an answer that
            // waited for it never finds the file past `history_max_bytes`.
            if self.max_bytes > 0 && self.size > self.max_bytes && self.file.is_some() {
                match compact(&self.path, self.max_bytes) {
                    Ok(f) => {
                        self.size = f.metadata().map_or(0, |m| m.len());
                        if let Some(held) = self.file.as_mut() {
                            held.file = f;
                        }
                    }
                    Err(e) => self.fail(format!("cannot compact {}: {e}", self.path.display())),
                }
            }
            // Only end records are waited for, and only when an answer is held back for
            // one does the supervisor's loop take a turn for it.
            if let Some(seq) = last_seq {
                if self.durable.reached(seq, &mut self.woken) {
                    let _ = self.notes.send(Note::Durable(seq));
                }
            }
            for (params, reply) in queries {
                let _ = reply.send(self.answer(&params));
            }
        }
    }

    fn append(&mut self, bytes: &[u8], sync: bool) {
        let Some(held) = self.file.as_mut() else {
            return;
        };
        let written =
            held.file
                .write_all(bytes)
                .and_then(|()| if sync { held.file.sync_data() } else { Ok(()) });
        match written {
            Ok(()) => self.size += bytes.len() as u64,
            Err(e) => self.fail(format!("cannot write to {}: {e}", self.path.display())),
        }
    }

    /// Stop writing, and say so once.
    fn fail(&mut self, error: String) {
        tracing::error!("run history off: {error}");
        self.file = None;
        let _ = self.notes.send(Note::Failed(error));
    }

    fn answer(&self, params: &HistoryParams) -> Result<crate::supervisor::Answer, RpcError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(RpcError::new(
                    code::INTERNAL_ERROR,
                    format!("cannot read {}: {e}", self.path.display()),
                ))
            }
        };
        let whole = records::torn_tail(&bytes).map_or(&bytes[..], |at| &bytes[..at]);
        let book = records::read(&String::from_utf8_lossy(whole));
        let limit = params.limit.unwrap_or(HistoryParams::DEFAULT_LIMIT);
        encode(&HistoryResult {
            runs: book.newest(params.names.as_deref(), limit),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::Cause;

    fn run(id: u64, name: &str) -> Run {
        Run {
            run_id: id,
            name: name.into(),
            group: name.into(),
            pid: Some(100),
            started_at: "2026-11-25T10:00:00.000Z".into(),
            ended_at: None,
            exitcode: None,
            signal: None,
            success: None,
            cause: None,
            reason: None,
        }
    }

    fn done(id: u64, name: &str) -> Run {
        Run {
            ended_at: Some("2026-11-25T10:00:01.000Z".into()),
            exitcode: Some(0),
            success: Some(true),
            cause: Some(Cause::Exit),
            reason: Some("exit 0".into()),
            ..run(id, name)
        }
    }

    /// Hand the records over and wait, as the supervisor does, until `seq` is durable.
    async fn durable(h: &mut Attached, seq: u64) {
        h.log.flush();
        while !h.durable.covers(seq) {
            match h.notes.recv().await {
                Some(_) => {}
                None => panic!("the writer ended before acknowledging {seq}"),
            }
        }
    }

    #[test]
    fn the_writer_wakes_the_supervisor_only_for_what_it_waits_for() {
        let d = Durable::default();
        let mut woken = 0;
        assert!(!d.reached(3, &mut woken), "nobody waits: no wake-up");
        assert!(d.covers(3));
        assert!(!d.covers(5), "not durable yet");
        assert!(
            !d.reached(4, &mut woken),
            "5 is waited for; 4 is not enough"
        );
        assert!(d.reached(6, &mut woken), "5 is durable now: wake");
        assert!(!d.reached(7, &mut woken), "once");
        assert!(d.covers(5) && d.covers(7));
        assert!(!d.covers(9));
        d.advance(9);
        assert!(d.covers(9), "a note moves it too");
    }

    #[tokio::test]
    async fn records_reach_the_file_and_a_restart_ends_the_open_ones_as_lost() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut h = open(dir.path(), 0).expect("open");
        assert_eq!(
            h.attached.recovered,
            Recovered {
                next_run_id: 1,
                ..Recovered::default()
            }
        );
        h.attached.log.started(run(1, "a"));
        let seq = h.attached.log.ended(JobState::Exited, done(1, "a"));
        h.attached.log.started(run(2, "a"));
        durable(&mut h.attached, seq).await;
        let text = std::fs::read_to_string(dir.path().join(FILE)).expect("read");
        assert!(
            text.lines()
                .nth(1)
                .is_some_and(|l| l.contains("\"record\":\"end\"")),
            "the end is on disk once acknowledged: {text}"
        );
        drop(h.attached.log);
        h.writer.join();

        let h = open(dir.path(), 0).expect("reopen");
        assert_eq!(h.attached.recovered.next_run_id, 3);
        let (state, last) = &h.attached.recovered.last["a"];
        assert_eq!(*state, JobState::Exited);
        assert_eq!(last.run_id, 2);
        assert_eq!(last.cause, Some(Cause::DaemonLost));
        assert_eq!(h.attached.recovered.last_runs().count(), 1);
        let text = std::fs::read_to_string(dir.path().join(FILE)).expect("read");
        assert!(
            text.lines()
                .last()
                .is_some_and(|l| l.contains("daemon_lost")),
            "{text}"
        );
        drop(h.attached.log);
        h.writer.join();
    }

    #[tokio::test]
    async fn a_second_opener_of_the_same_folder_is_refused_and_only_acknowledges() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = open(dir.path(), 0).expect("open");
        let mut second = open(dir.path(), 0).expect("open");
        let error = second.attached.recovered.error.clone().expect("locked");
        assert!(error.contains("another supervisord"), "{error}");
        let seq = second.attached.log.ended(JobState::Exited, done(1, "a"));
        durable(&mut second.attached, seq).await;
        drop((first.attached.log, second.attached.log));
        first.writer.join();
        second.writer.join();
        assert!(
            !dir.path().join(FILE).exists()
                || std::fs::read(dir.path().join(FILE))
                    .expect("read")
                    .is_empty()
        );
    }

    #[tokio::test]
    async fn a_folder_under_a_file_is_reported_and_records_are_still_acknowledged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("blocker");
        std::fs::write(&blocker, "").expect("write");
        let mut h = open(&blocker.join("state"), 0).expect("open");
        let error = h.attached.recovered.error.clone().expect("an error");
        assert!(error.contains("blocker/state"), "{error}");
        let seq = h.attached.log.ended(JobState::Exited, done(1, "a"));
        durable(&mut h.attached, seq).await;
        drop(h.attached.log);
        h.writer.join();
    }

    #[tokio::test]
    async fn the_writer_compacts_past_max_bytes_keeping_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let max = 4096;
        let mut h = open(dir.path(), max).expect("open");
        let mut seq = 0;
        for id in 1..=60 {
            h.attached.log.started(run(id, "a"));
            seq = h.attached.log.ended(JobState::Exited, done(id, "a"));
        }
        durable(&mut h.attached, seq).await;
        drop(h.attached.log);
        h.writer.join();
        let text = std::fs::read_to_string(dir.path().join(FILE)).expect("read");
        assert!(text.len() as u64 <= max, "{} bytes", text.len());
        let book = records::read(&text);
        assert!(book.bad.is_empty());
        assert_eq!(book.max_run_id(), 60, "the newest run is kept");
        assert!(!book.runs.contains_key(&1), "the oldest went");
        assert!(!dir.path().join("history.jsonl.tmp").exists());
    }
}
