//! The control socket: bind it safely, accept, check the peer, frame lines, and dispatch
//! each request to the supervisor.
//!
//! Each connection has a reader (framing, at most [`MAX_LINE_BYTES`] a line), a writer
//! task fed by a bounded queue, and one task per request in flight, so a long `wait`
//! never holds back a `status` sent after it. A client that stops reading fills its own
//! queue and then its own in-flight limit; it costs nobody else anything.

use crate::config;
use crate::logs::{LogHub, SinkKey};
use crate::metrics;
use crate::notify::Notifier;
use crate::supervisor::{encode, Answer, Call, Published, Route, SupervisorHandle};
use protocol::{
    code, note, JobList, Lagged, LogData, LogsParams, LogsResult, MetricsResult, Notification,
    Request, Response, RpcError, MAX_LINE_BYTES,
};
use serde_json::value::RawValue;
use serde_json::Value;
use std::io::{self, IoSlice};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Interest};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The read buffer of one connection. Requests are small; a longer line is gathered in
/// its own buffer, up to [`MAX_LINE_BYTES`]. Kept small so idle connections are cheap.
const READ_BUFFER: usize = 8 * 1024;
/// How often a connection whose client stopped sending checks whether it hung up.
const HANGUP_CHECK: Duration = Duration::from_millis(250);

/// The limits one connection, and all of them together, can reach.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; one more gets error 1007 and is closed.
    pub connections: usize,
    /// Requests in flight on one connection; past it the connection is not read.
    pub in_flight: usize,
    /// Lines queued for one connection's writer.
    pub out_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 2048,
            in_flight: 64,
            out_queue: 256,
        }
    }
}

/// A bound control socket, removed on drop if it is still ours.
pub struct Socket {
    listener: UnixListener,
    path: PathBuf,
    inode: u64,
}

/// Why the socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The path is over the kernel's limit for socket addresses.
    #[error("socket path {} is {len} bytes; Unix sockets allow at most 107", path.display())]
    TooLong {
        /// The path.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// Something that is not a socket is in the way; it is left alone.
    #[error("socket path {} exists and is not a socket; not touching it", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The folder could let another user put an impostor socket in its place.
    #[error("socket {}: {why}; refusing to serve from it", path.display())]
    UnsafeFolder {
        /// The path.
        path: PathBuf,
        /// What is wrong with the folder.
        why: String,
    },
    /// It could not be told whether another daemon serves the socket.
    #[error("socket {}: cannot tell whether another supervisord serves it ({source}); not replacing it", path.display())]
    Unsure {
        /// The path.
        path: PathBuf,
        /// Why connecting failed.
        source: io::Error,
    },
    /// Another supervisord answers on it.
    #[error("socket {} is already served by supervisord pid {pid}", path.display())]
    InUse {
        /// The path.
        path: PathBuf,
        /// The pid that answered `ping`.
        pid: String,
    },
    /// Some OS call failed.
    #[error("socket {}: {what}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The OS's reason.
        source: io::Error,
    },
}

/// Why a socket folder is unsafe to serve from, if it is: another user owns it, or users
/// other than its owner may write to it (and so put their own socket at the path).
fn unsafe_folder(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) => return Some(format!("cannot inspect its folder {}: {e}", dir.display())),
    };
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Some(format!(
            "its folder {} is owned by uid {}, not by supervisord's uid {me}",
            dir.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "its folder {} is writable by other users (mode {:o})",
            dir.display(),
            meta.mode() & 0o7777
        ));
    }
    None
}

impl Socket {
    /// Bind `path` with mode 0600, creating its folder (0700) if missing. A live daemon on
    /// the path is an error naming its pid; a stale socket file is replaced.
    pub async fn bind(path: &Path) -> Result<Socket, BindError> {
        let io_err = |what| {
            move |source| BindError::Io {
                path: path.to_path_buf(),
                what,
                source,
            }
        };
        let len = path.as_os_str().len();
        if len > 107 {
            return Err(BindError::TooLong {
                path: path.to_path_buf(),
                len,
            });
        }
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(io_err("cannot create its folder"))?;
            }
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Some(why) = unsafe_folder(dir) {
                return Err(BindError::UnsafeFolder {
                    path: path.to_path_buf(),
                    why,
                });
            }
        }
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(BindError::NotASocket {
                    path: path.to_path_buf(),
                });
            }
            match UnixStream::connect(path).await {
                Ok(stream) => {
                    let pid = ping_pid(stream).await.unwrap_or_else(|| "unknown".into());
                    return Err(BindError::InUse {
                        path: path.to_path_buf(),
                        pid,
                    });
                }
                // Only "nobody listens" or "gone already" means stale. Anything else
                // (EAGAIN: a live daemon's accept queue is full) could be a daemon at work.
                Err(e)
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
                    ) =>
                {
                    return Err(BindError::Unsure {
                        path: path.to_path_buf(),
                        source: e,
                    });
                }
                Err(_) => {
                    tracing::info!(path = %path.display(), "replacing a stale socket");
                    std::fs::remove_file(path).map_err(io_err("cannot remove the stale socket"))?;
                }
            }
        }
        // Bind under a temporary name, restrict it, then move it into place: the socket
        // is never reachable with looser permissions.
        let tmp = path.with_file_name(format!(
            ".{}.{}.tmp",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("supervisord.sock"),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        let tmp_for_bind = if tmp.as_os_str().len() > 107 {
            path
        } else {
            &tmp
        };
        let listener = UnixListener::bind(tmp_for_bind).map_err(io_err("cannot bind"))?;
        std::fs::set_permissions(tmp_for_bind, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err("cannot set its mode to 0600"))?;
        if tmp_for_bind != path {
            std::fs::rename(tmp_for_bind, path).map_err(io_err("cannot move it into place"))?;
        }
        let inode = std::fs::metadata(path)
            .map_err(io_err("cannot stat it"))?
            .ino();
        Ok(Socket {
            listener,
            path: path.to_path_buf(),
            inode,
        })
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // Only remove the file if it is still the one we bound.
        if std::fs::metadata(&self.path).is_ok_and(|m| m.ino() == self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

async fn ping_pid(stream: UnixStream) -> Option<String> {
    let (rd, mut wr) = stream.into_split();
    let ask = async {
        wr.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"ping\"}\n")
            .await
            .ok()?;
        let mut line = String::new();
        BufReader::new(rd).read_line(&mut line).await.ok()?;
        let v: Value = serde_json::from_str(&line).ok()?;
        Some(v["result"]["pid"].to_string())
    };
    tokio::time::timeout(Duration::from_secs(2), ask)
        .await
        .ok()
        .flatten()
}

/// What every connection needs.
#[derive(Clone)]
pub struct Context {
    /// The supervisor.
    pub supervisor: SupervisorHandle,
    /// The log writer.
    pub logs: LogHub,
    /// The job file, for `reload`.
    pub config_path: PathBuf,
    /// Limits.
    pub limits: Limits,
    /// The service manager, told about reloads and shutdown.
    pub notify: crate::notify::Notifier,
}

/// Accept connections until `shutdown` fires. Connection tasks go on `tracker`.
pub async fn serve(
    socket: &Socket,
    ctx: Context,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let permits = Arc::new(Semaphore::new(ctx.limits.connections));
    let me = nix::unistd::geteuid().as_raw();
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            a = socket.listener.accept() => a,
            () = shutdown.cancelled() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                backoff = Duration::from_millis(10);
                stream
            }
            Err(e) => {
                // Out of descriptors, most likely: say so, give connections a moment to
                // close, and go on. The daemon does not fall over.
                tracing::error!(error = %e, "accept failed");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let uid = stream.peer_cred().map(|c| c.uid());
        match uid {
            Ok(uid) if uid == me || uid == 0 => {}
            Ok(uid) => {
                tracing::warn!(peer_uid = uid, "refused a connection from another user");
                tracker.spawn(refuse(
                    stream,
                    RpcError::new(
                        code::PERMISSION_DENIED,
                        format!("permission denied: uid {uid} may not use this socket (only uid {me} and root)"),
                    ),
                ));
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read peer credentials; refusing");
                continue;
            }
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(limit = ctx.limits.connections, "connection limit reached");
            tracker.spawn(refuse(
                stream,
                RpcError::new(
                    code::BUSY,
                    format!(
                        "too many connections (limit {}); try again later",
                        ctx.limits.connections
                    ),
                ),
            ));
            continue;
        };
        let (ctx, token, inner) = (ctx.clone(), shutdown.child_token(), tracker.clone());
        tracker.spawn(async move {
            connection(stream, ctx, token, inner).await;
            drop(permit);
        });
    }
}

async fn refuse(stream: UnixStream, error: RpcError) {
    let line = to_line(&Response::err(Value::Null, error));
    let (rd, mut wr) = stream.into_split();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        wr.write_all(line.as_bytes()).await?;
        // Take the client's first request (and drop it) before closing: a client that
        // writes right after connecting would otherwise meet a broken pipe instead of
        // the reason it was refused.
        let mut sink = Vec::new();
        BufReader::new(rd.take(64 * 1024))
            .read_until(b'\n', &mut sink)
            .await?;
        io::Result::Ok(())
    })
    .await;
}

fn to_line<T: serde::Serialize>(msg: &T) -> String {
    let mut s = serde_json::to_string(msg).unwrap_or_else(|e| {
        format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{{\"code\":-32603,\"message\":\"cannot encode the answer: {e}\"}}}}"
        )
    });
    s.push('\n');
    s
}

/// One line from the client.
enum Frame {
    Line(Vec<u8>),
    TooLong,
    Eof,
}

/// Read one `\n`-terminated line of at most `max` bytes. A last line without a newline
/// still counts.
async fn read_frame(rd: &mut BufReader<OwnedReadHalf>, max: usize) -> io::Result<Frame> {
    let mut line = Vec::new();
    loop {
        let buf = rd.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if line.is_empty() {
                Frame::Eof
            } else {
                Frame::Line(line)
            });
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let fits = line.len() + i <= max;
                if fits {
                    line.extend_from_slice(&buf[..i]);
                }
                rd.consume(i + 1);
                return Ok(if fits {
                    Frame::Line(line)
                } else {
                    Frame::TooLong
                });
            }
            None => {
                let n = buf.len();
                if line.len() + n > max {
                    return Ok(Frame::TooLong);
                }
                line.extend_from_slice(buf);
                rd.consume(n);
            }
        }
    }
}

async fn connection(
    stream: UnixStream,
    ctx: Context,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(READ_BUFFER, rd);
    let (out, out_rx) = mpsc::channel::<Line>(ctx.limits.out_queue);
    // Fired by the writer when the client has gone; fired by the daemon on shutdown.
    let gone = CancellationToken::new();
    let token = gone.clone();
    let writer = tracker.spawn(write_lines(wr, out_rx, gone.clone()));
    let stop = async {
        tokio::select! {
            () = gone.cancelled() => {}
            () = shutdown.cancelled() => {}
        }
    };
    tokio::pin!(stop);
    let in_flight = Arc::new(Semaphore::new(ctx.limits.in_flight));
    let mut answers: JoinSet<()> = JoinSet::new();
    let mut streams: JoinSet<()> = JoinSet::new();
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut rd, MAX_LINE_BYTES) => f,
            () = &mut stop => break,
            Some(_) = answers.join_next(), if !answers.is_empty() => continue,
            Some(_) = streams.join_next(), if !streams.is_empty() => continue,
        };
        let line = match frame {
            Ok(Frame::Line(line)) => line,
            Ok(Frame::Eof) | Err(_) => break,
            Ok(Frame::TooLong) => {
                let e = RpcError::new(
                    code::INVALID_REQUEST,
                    format!(
                        "request line longer than {MAX_LINE_BYTES} bytes; closing the connection"
                    ),
                );
                let _ = out
                    .send(to_line(&Response::err(Value::Null, e)).into())
                    .await;
                answers.abort_all();
                streams.abort_all();
                drop(out);
                let _ = writer.await;
                return;
            }
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (id, request) = match Request::decode(&line) {
            Ok((id, request)) => (id.map(|id| exact_id(&line, id)), request),
            Err((id, e)) => {
                let id = exact_id(&line, id);
                if out
                    .send(to_line(&ErrorLine::new(&id, &e)).into())
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
        };
        let permit = tokio::select! {
            p = in_flight.clone().acquire_owned() => p,
            () = &mut stop => break,
        };
        let Ok(permit) = permit else { break };
        let streaming = matches!(&request, Request::Subscribe)
            || matches!(&request, Request::Logs(p) if p.follow == Some(true));
        let (ctx, out) = (ctx.clone(), out.clone());
        let task = async move {
            handle(request, id, ctx, out).await;
            drop(permit);
        };
        if streaming {
            streams.spawn(task);
        } else {
            answers.spawn(task);
        }
    }
    // The client is done sending, or the daemon is shutting down: finish the answers it
    // is owed (a `shutdown` answer among them), end the streams. Only a client that has
    // gone gets nothing more — one whose writes failed, or one that closed its socket
    // altogether (not just half-closed it): nobody is left to read, and a pending `wait`
    // must not hold the connection open until its jobs settle.
    streams.abort_all();
    tokio::select! {
        _ = async { while answers.join_next().await.is_some() {} } => {}
        () = token.cancelled() => answers.abort_all(),
        () = hung_up(rd.get_ref()) => answers.abort_all(),
    }
    drop(out);
    let _ = writer.await;
}

/// Resolves once the peer has closed its end entirely. A half-close (the client shut down
/// only its writing side) does not count: it still reads its answers. The kernel reports
/// the full close as a hang-up, which tokio keeps as `write_closed` readiness; write
/// readiness itself is nearly always set, so this checks again every
/// [`HANGUP_CHECK`] rather than spinning.
async fn hung_up(rd: &OwnedReadHalf) {
    loop {
        match rd.as_ref().ready(Interest::WRITABLE).await {
            Ok(r) if r.is_write_closed() => return,
            Err(_) => return,
            Ok(_) => tokio::time::sleep(HANGUP_CHECK).await,
        }
    }
}

/// One line for a connection's writer.
enum Line {
    /// A whole line.
    Text(String),
    /// A success response: the envelope's head (`{"jsonrpc":"2.0","id":ID,"result":`), then
    /// the result as the supervisor encoded it, then [`ANSWER_END`]. Written with one
    /// `writev`: the result (80 KiB for a `status` of 200 jobs) is not copied into a line.
    Answer(String, Answer),
}

/// What closes a success response.
const ANSWER_END: &[u8] = b"}\n";

impl From<String> for Line {
    fn from(text: String) -> Line {
        Line::Text(text)
    }
}

impl Line {
    /// A success response around a result that is already encoded (see [`Answer`]): not
    /// parsed again, not copied.
    fn answer(id: &RawValue, result: Answer) -> Line {
        let id = id.get();
        let mut head = String::with_capacity(id.len() + 32);
        head.push_str("{\"jsonrpc\":\"");
        head.push_str(protocol::JSONRPC);
        head.push_str("\",\"id\":");
        head.push_str(id);
        head.push_str(",\"result\":");
        Line::Answer(head, result)
    }

    /// The line's bytes, in order.
    fn parts(&self) -> [&[u8]; 3] {
        match self {
            Line::Text(text) => [text.as_bytes(), &[], &[]],
            Line::Answer(head, result) => [head.as_bytes(), result.get().as_bytes(), ANSWER_END],
        }
    }
}

/// Write every byte of `parts`, in order (`writev`, again for what a short write left).
async fn write_parts(wr: &mut OwnedWriteHalf, mut parts: [&[u8]; 3]) -> io::Result<()> {
    while parts.iter().any(|p| !p.is_empty()) {
        let slices = parts.map(IoSlice::new);
        let mut n = wr.write_vectored(&slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        for part in &mut parts {
            let done = n.min(part.len());
            *part = &part[done..];
            n -= done;
        }
    }
    Ok(())
}

async fn write_lines(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Line>,
    token: CancellationToken,
) {
    loop {
        let line = tokio::select! {
            l = rx.recv() => l,
            () = token.cancelled() => None,
        };
        let Some(line) = line else { break };
        if write_parts(&mut wr, line.parts()).await.is_err() {
            // The client is gone: stop the whole connection.
            token.cancel();
            break;
        }
    }
    let _ = wr.shutdown().await;
}

/// An error response with the request's id as sent.
#[derive(serde::Serialize)]
struct ErrorLine<'a> {
    jsonrpc: &'a str,
    id: &'a RawValue,
    error: &'a RpcError,
}

impl<'a> ErrorLine<'a> {
    fn new(id: &'a RawValue, error: &'a RpcError) -> Self {
        ErrorLine {
            jsonrpc: protocol::JSONRPC,
            id,
            error,
        }
    }
}

/// A request's id to echo: exactly as the client wrote it. A number goes back with every
/// digit (18446744073709551617 is not `1.8446744073709552e19`), which a parsed
/// `Value` cannot promise.
fn exact_id(line: &[u8], parsed: Value) -> Box<RawValue> {
    #[derive(serde::Deserialize)]
    struct Peek {
        #[serde(default)]
        id: Option<Box<RawValue>>,
    }
    // Integers that fit 64 bits come back exact anyway; only the rest needs a second look.
    if parsed.is_f64() {
        if let Some(raw) = serde_json::from_slice::<Peek>(line).ok().and_then(|p| p.id) {
            return raw;
        }
    }
    serde_json::value::to_raw_value(&parsed).unwrap_or_else(|_| null_id())
}

fn null_id() -> Box<RawValue> {
    // "null" is valid JSON: this cannot fail.
    RawValue::from_string("null".to_owned()).unwrap_or_else(|_| unreachable!())
}

/// Answer one request (and, for a stream, keep sending until the client goes).
async fn handle(
    request: Request,
    id: Option<Box<RawValue>>,
    ctx: Context,
    out: mpsc::Sender<Line>,
) {
    let reply = Replier { id, out: &out };
    match Route::from(request) {
        Route::Subscribe => {
            let (jobs, events) = match ctx.supervisor.subscribe().await {
                Ok(pair) => pair,
                Err(e) => {
                    reply.send(Err(e)).await;
                    return;
                }
            };
            if reply.send(encode(&JobList::new(jobs))).await {
                forward(
                    events,
                    &out,
                    |published| match published {
                        Published::State(event) => Notification::new(note::EVENT, &event),
                        Published::Health(change) => Notification::new(note::HEALTH, &change),
                    },
                    |missed| Lagged {
                        name: None,
                        stream: None,
                        missed,
                    },
                )
                .await;
            }
        }
        Route::Logs(p) => logs(p, &ctx, reply).await,
        Route::Reload => {
            let result = reload_from_disk(&ctx.supervisor, &ctx.config_path, &ctx.notify).await;
            reply.send(result).await;
        }
        Route::Usage(selection) => {
            let list = metrics::jobs_with_usage(&ctx.supervisor, selection).await;
            reply.send(list.and_then(|l| encode(&l))).await;
        }
        Route::Metrics => {
            let text = metrics::collect(&ctx.supervisor).await;
            reply
                .send(text.and_then(|text| encode(&MetricsResult { text })))
                .await;
        }
        Route::Call(call) => {
            let timeout = match &call {
                Call::Wait(p) => p.timeout_ms.map(Duration::from_millis),
                Call::Shutdown(_) => {
                    ctx.notify.stopping();
                    None
                }
                _ => None,
            };
            let answer = ctx.supervisor.call(call);
            let result = match timeout {
                None => answer.await,
                Some(t) => tokio::time::timeout(t, answer).await.unwrap_or_else(|_| {
                    Err(RpcError::new(
                        code::TIMED_OUT,
                        format!("timed out after {}", humantime::format_duration(t)),
                    ))
                }),
            };
            reply.send(result).await;
        }
    }
}

/// `logs`: the tail, then (with `follow`) `log` notifications.
async fn logs(p: LogsParams, ctx: &Context, reply: Replier<'_>) {
    let path = match ctx.supervisor.log_source(p.name.clone(), p.stream).await {
        Ok(path) => path,
        Err(e) => {
            reply.send(Err(e)).await;
            return;
        }
    };
    let key = SinkKey {
        name: p.name.clone(),
        stream: p.stream,
    };
    let follow = p.follow.unwrap_or(false);
    let tail = match ctx
        .logs
        .tail(key, path, p.lines.unwrap_or(10), follow)
        .await
    {
        Ok(t) => t,
        Err(e) => {
            let e = RpcError::new(code::INTERNAL_ERROR, format!("cannot read log: {e}"));
            reply.send(Err(e)).await;
            return;
        }
    };
    if !reply.send(encode(&LogsResult { lines: tail.lines })).await {
        return;
    }
    let Some(rx) = tail.follow else { return };
    let (name, stream) = (p.name, p.stream);
    forward(
        rx,
        reply.out,
        |data| {
            Notification::new(
                note::LOG,
                &LogData {
                    name: name.clone(),
                    stream,
                    data: data.to_string(),
                },
            )
        },
        |missed| Lagged {
            name: Some(name.clone()),
            stream: Some(stream),
            missed,
        },
    )
    .await;
}

/// Forward a broadcast stream to the client as notifications until either side ends;
/// falling behind becomes one `lagged` notification with the count, then it goes on.
async fn forward<T: Clone>(
    mut rx: broadcast::Receiver<T>,
    out: &mpsc::Sender<Line>,
    note: impl Fn(T) -> Notification,
    lagged: impl Fn(u64) -> Lagged,
) {
    loop {
        let msg = match rx.recv().await {
            Ok(item) => note(item),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                Notification::new(protocol::note::LAGGED, lagged(missed))
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if out.send(to_line(&msg).into()).await.is_err() {
            return;
        }
    }
}

/// Read the job file off the runtime and hand it to the supervisor; answers once the
/// reload is applied. The one way to reload, for `reload` requests and SIGHUP alike.
pub async fn reload_from_disk(
    supervisor: &SupervisorHandle,
    path: &Path,
    notify: &Notifier,
) -> Result<Answer, RpcError> {
    notify.reloading();
    let path = path.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || config::load(&path)).await;
    let result = match loaded {
        Ok(config) => supervisor.reload(config).await,
        Err(e) => Err(RpcError::new(
            code::INTERNAL_ERROR,
            format!("reading the job file failed: {e}"),
        )),
    };
    notify.reloaded();
    result
}

/// Sends a request's one answer (nothing for a notification, which has no id).
struct Replier<'a> {
    id: Option<Box<RawValue>>,
    out: &'a mpsc::Sender<Line>,
}

impl Replier<'_> {
    /// Send the answer; false when the client has gone.
    async fn send(&self, result: Result<Answer, RpcError>) -> bool {
        let Some(id) = &self.id else { return true };
        let line = match result {
            Ok(v) => Line::answer(id, v),
            Err(e) => to_line(&ErrorLine::new(id, &e)).into(),
        };
        self.out.send(line).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8], max: usize) -> Vec<String> {
        frames_with(input, max, 16).await
    }

    /// What `read_frame` makes of `input` read through a buffer of `capacity` bytes.
    async fn frames_with(input: &[u8], max: usize, capacity: usize) -> Vec<String> {
        let (a, mut b) = UnixStream::pair().expect("pair");
        b.write_all(input).await.expect("write");
        drop(b);
        let (rd, _wr) = a.into_split();
        let mut rd = BufReader::with_capacity(capacity, rd);
        let mut out = Vec::new();
        loop {
            match read_frame(&mut rd, max).await.expect("read") {
                Frame::Line(l) => out.push(String::from_utf8_lossy(&l).into_owned()),
                Frame::TooLong => {
                    out.push("<too long>".into());
                    break;
                }
                Frame::Eof => break,
            }
        }
        out
    }

    #[tokio::test]
    async fn frames_split_on_newlines_across_reads() {
        let got = frames(b"{\"a\":1}\n\n0123456789012345678901234567890\nlast", 100).await;
        assert_eq!(
            got,
            ["{\"a\":1}", "", "0123456789012345678901234567890", "last"]
        );
    }

    /// What `read_frame` must produce: the lines, in order, until the first one over
    /// `max` (then "<too long>" and nothing more); a last line without a newline counts.
    fn model(input: &[u8], max: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut parts: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        if parts.last().is_some_and(|l| l.is_empty()) {
            parts.pop();
        }
        for p in parts {
            if p.len() > max {
                out.push("<too long>".into());
                break;
            }
            out.push(String::from_utf8_lossy(p).into_owned());
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            // Longer runs by hand: PROPTEST_CASES=N.
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(1000),
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Framing agrees with the model for any bytes, buffer size and limit.
        #[test]
        fn framing_matches_the_model(
            input in proptest::collection::vec(
                proptest::prop_oneof![3 => proptest::prelude::any::<u8>(), 1 => proptest::strategy::Just(b'\n')],
                0..4096,
            ),
            capacity in 1usize..64,
            max in 0usize..200,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let got = rt.block_on(async {
                frames_with(&input, max, capacity).await
            });
            proptest::prop_assert_eq!(got, model(&input, max));
        }
    }

    #[tokio::test]
    async fn frames_over_the_limit_are_refused() {
        let got = frames(b"short\n0123456789abcdef-too-long\nnext\n", 10).await;
        assert_eq!(got, ["short", "<too long>"]);
        let got = frames(b"0123456789\n", 10).await;
        assert_eq!(got, ["0123456789"], "exactly the limit fits");
    }
}
