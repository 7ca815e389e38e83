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
//! ([`HistoryLog`]): handing one over never waits, whatever the disk does. The thread
//! takes whatever has queued up as one batch, writes it with one `write`, and — if the
//! batch holds an end record — `fdatasync`s before it acknowledges the batch's last
//! sequence number with a [`Note::Durable`]. The supervisor holds back any `wait` (or
//! `terminate`, `remove`) answer that reports a run as ended until that run's end record
//! is acknowledged, so what `wait` reports is on disk; a slow disk delays those answers,
//! never the supervisor's loop, and a burst of exits shares one fsync. Start records are
//! written at once but synced only with the next end record.
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
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::SystemTime;
use tokio::sync::mpsc as async_mpsc;

/// The history's file name inside `state_dir`.
pub const FILE: &str = "history.jsonl";

/// How many records the writer takes into one batch at most.
const BATCH: usize = 4096;

/// How many garbled lines are named one by one in the log at start.
const NAMED_BAD_LINES: usize = 5;

/// What the writer tells the supervisor.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// Every record up to this sequence number is done with: on disk (an end record
    /// fsync'd), or dropped because the history failed. Sent for batches that hold an
    /// end record.
    Durable(u64),
    /// The history stopped working (sent once); the message says why and where.
    Failed(String),
}

/// What the supervisor hands the writer.
pub(crate) enum Msg {
    /// A record (one line) to append; serialized on the writer thread.
    Append {
        /// The record.
        line: Box<Line>,
        /// Its sequence number.
        seq: u64,
        /// An end record: fsync before acknowledging.
        end: bool,
    },
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
        let _ = self.tx.send(Msg::Append {
            line: Box::new(line),
            seq: self.seq,
            end,
        });
        self.seq
    }

    /// Answer a `history` request from the file, after every record handed over so far.
    pub fn query(&self, params: HistoryParams, reply: Reply) {
        if let Err(mpsc::SendError(Msg::Query { reply, .. })) =
            self.tx.send(Msg::Query { params, reply })
        {
            let _ = reply.send(Err(RpcError::shutting_down()));
        }
    }

    /// A log whose records go to `tx` (for tests that play the writer).
    #[cfg(test)]
    pub(crate) fn to_channel(tx: mpsc::Sender<Msg>) -> HistoryLog {
        HistoryLog { tx, seq: 0 }
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
    /// Where the writer's acknowledgements and failure arrive.
    pub notes: async_mpsc::UnboundedReceiver<Note>,
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
    let mut writer = Writer {
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
            log: HistoryLog { tx, seq: 0 },
            notes,
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
    path: PathBuf,
    file: Option<Held>,
    size: u64,
    max_bytes: u64,
    notes: async_mpsc::UnboundedSender<Note>,
}

impl Writer {
    fn run(&mut self, rx: &mpsc::Receiver<Msg>) {
        while let Ok(first) = rx.recv() {
            let mut text = String::new();
            let mut last_seq = None;
            let mut sync = false;
            let mut queries = Vec::new();
            let mut take = |m: Msg| match m {
                Msg::Append { line, seq, end } => {
                    text.push_str(&line.to_text());
                    last_seq = Some(seq);
                    sync |= end;
                }
                Msg::Query { params, reply } => queries.push((params, reply)),
            };
            take(first);
            for m in rx.try_iter().take(BATCH) {
                take(m);
            }
            if !text.is_empty() {
                self.append(text.as_bytes(), sync);
            }
            // Only end records are waited for: a batch of starts needs no acknowledgement
            // (and the supervisor's loop no extra turn).
            if let Some(seq) = last_seq.filter(|_| sync) {
                let _ = self.notes.send(Note::Durable(seq));
            }
            for (params, reply) in queries {
                let _ = reply.send(self.answer(&params));
            }
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

    async fn durable(notes: &mut async_mpsc::UnboundedReceiver<Note>, seq: u64) {
        loop {
            match notes.recv().await {
                Some(Note::Durable(s)) if s >= seq => return,
                Some(_) => {}
                None => panic!("the writer ended before acknowledging {seq}"),
            }
        }
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
        durable(&mut h.attached.notes, seq).await;
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
        durable(&mut second.attached.notes, seq).await;
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
        durable(&mut h.attached.notes, seq).await;
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
        durable(&mut h.attached.notes, seq).await;
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
