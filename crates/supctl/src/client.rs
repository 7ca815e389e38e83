//! A blocking client for the control socket: one request at a time, notifications
//! handed to the caller. No async runtime: supctl starts in about a millisecond.

use protocol::{Notification, Request, RpcError};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Why a request got no answer from the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached (exit code 3).
    #[error("{}", unreachable(path, source))]
    Unreachable {
        /// The path tried.
        path: PathBuf,
        /// The OS's reason.
        source: io::Error,
    },
    /// The socket is served by a process of another user (not root): an impostor could
    /// have put it there, so nothing is sent to it (exit code 3).
    #[error("socket {} is served by uid {uid}, neither you nor root; not trusting it (see --socket)", path.display())]
    Untrusted {
        /// The path tried.
        path: PathBuf,
        /// The uid serving it.
        uid: u32,
    },
    /// The daemon closed the connection before answering (exit code 1).
    #[error("connection to supervisord broke: the daemon closed the connection")]
    Closed,
    /// Reading or writing the socket failed (exit code 1).
    #[error("connection to supervisord broke: {0}")]
    Io(#[source] io::Error),
    /// The daemon said something that is not the protocol (exit code 1).
    #[error("connection to supervisord broke: unreadable answer: {0}")]
    Unreadable(#[source] serde_json::Error),
    /// The daemon answered with an error (exit code 1).
    #[error("{}", .0.message)]
    Rpc(RpcError),
}

/// Why the socket could not be used. A permission error says whose the socket is, not
/// "is it running?".
fn unreachable(path: &Path, source: &io::Error) -> String {
    if source.kind() != io::ErrorKind::PermissionDenied {
        return format!(
            "cannot reach supervisord at {}: {source} (is it running?)",
            path.display()
        );
    }
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => format!(
            "cannot use {}: permission denied: the socket belongs to uid {} and supctl runs as uid {}",
            path.display(),
            m.uid(),
            nix::unistd::geteuid()
        ),
        Err(_) => format!("cannot use {}: permission denied", path.display()),
    }
}

/// A connection to supervisord.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl Client {
    /// Connect to the socket at `path`.
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Unreachable {
            path: path.to_path_buf(),
            source,
        })?;
        // Only a server run by this user or by root is believed.
        let uid = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
            .map_err(|e| ClientError::Unreachable {
                path: path.to_path_buf(),
                source: e.into(),
            })?
            .uid();
        if uid != 0 && uid != nix::unistd::geteuid().as_raw() {
            return Err(ClientError::Untrusted {
                path: path.to_path_buf(),
                uid,
            });
        }
        let writer = stream.try_clone().map_err(ClientError::Io)?;
        Ok(Client {
            // Reads of 64 KiB: a `status` of 10,000 jobs is a 4 MB line.
            reader: BufReader::with_capacity(64 * 1024, stream),
            writer,
            next_id: 1,
        })
    }

    /// Write `request` with the next id; returns the id its answer will carry.
    fn send(&mut self, request: &Request) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = request.to_line(id);
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(ClientError::Io)?;
        Ok(id)
    }

    /// Send a request and wait for its answer. Notifications that arrive first go to
    /// `on_note`.
    pub fn call_with(
        &mut self,
        request: &Request,
        mut on_note: impl FnMut(Notification),
    ) -> Result<Reply, ClientError> {
        let id = self.send(request)?;
        loop {
            match self.read()? {
                Message::Response {
                    id: got,
                    result,
                    error,
                } => {
                    if got == id || got.is_null() {
                        return match (result, error) {
                            (_, Some(e)) => Err(ClientError::Rpc(e)),
                            (raw, None) => Ok(Reply(raw)),
                        };
                    }
                }
                Message::Note(note) => on_note(note),
            }
        }
    }

    /// Send a request and wait for its answer.
    pub fn call(&mut self, request: &Request) -> Result<Reply, ClientError> {
        self.call_with(request, |_| {})
    }

    /// Send a request and decode its result straight into `T`: one pass over the line,
    /// with no copy of the result kept as text and no second parse (for `status` of
    /// thousands of jobs, that scan was as costly as decoding the jobs). Notifications
    /// that arrive first are skipped.
    pub fn call_decoded<T: DeserializeOwned>(
        &mut self,
        request: &Request,
    ) -> Result<T, ClientError> {
        self.call_then(request, |line, id| answer::<T>(line, id))
    }

    /// Send a request and hand each line that comes back to `take` with the request's
    /// id, until it returns something: [`answer`] sorts out the line that answers it, and
    /// what `take` makes of the result may borrow from the line as long as it does not
    /// return it (`supctl status` decodes rows that borrow their strings and renders
    /// them before the line goes).
    pub fn call_then<R>(
        &mut self,
        request: &Request,
        mut take: impl FnMut(&str, u64) -> Option<Result<R, ClientError>>,
    ) -> Result<R, ClientError> {
        let id = self.send(request)?;
        let mut line = Vec::new();
        loop {
            line.clear();
            if !read_line(&mut self.reader, &mut line).map_err(ClientError::Io)? {
                return Err(ClientError::Closed);
            }
            // One UTF-8 check of the whole line (4 MB for 10,000 jobs), after which
            // serde_json reads its strings without checking each again: checked one by
            // one, the 30 strings of every job cost more than the line at once.
            let text = std::str::from_utf8(&line)
                .map_err(|e| ClientError::Io(io::Error::new(io::ErrorKind::InvalidData, e)))?;
            if let Some(result) = take(text, id) {
                return result;
            }
        }
    }

    /// The next notification; `None` when the daemon closed the connection.
    pub fn next_notification(&mut self) -> Result<Option<Notification>, ClientError> {
        loop {
            match self.read() {
                Ok(Message::Note(note)) => return Ok(Some(note)),
                Ok(Message::Response { .. }) => {}
                Err(ClientError::Closed) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Another handle on the socket, to shut it down from another thread (which ends a
    /// stream this client is reading).
    pub fn stream(&self) -> io::Result<UnixStream> {
        self.writer.try_clone()
    }

    /// Block until the daemon closes the connection (it does once it has shut down).
    pub fn wait_closed(&mut self) {
        let mut sink = Vec::new();
        while matches!(self.reader.read_until(b'\n', &mut sink), Ok(n) if n > 0) {
            sink.clear();
        }
    }

    /// Read one line and sort it: a response (its result kept as raw JSON, parsed only
    /// into what the caller needs) or a notification.
    fn read(&mut self) -> Result<Message, ClientError> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => return Err(ClientError::Closed),
            Ok(_) => {}
            Err(e) => return Err(ClientError::Io(e)),
        }
        let env: Envelope = serde_json::from_str(&line).map_err(ClientError::Unreadable)?;
        Ok(match env.method {
            Some(method) => Message::Note(Notification {
                jsonrpc: env.jsonrpc,
                method,
                params: env.params.unwrap_or(Value::Null),
            }),
            None => Message::Response {
                id: env.id.unwrap_or(Value::Null),
                result: env.result,
                error: env.error,
            },
        })
    }
}

/// One line from the daemon, before it is sorted.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    jsonrpc: String,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    result: Option<Box<RawValue>>,
    #[serde(default)]
    error: Option<RpcError>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<Value>,
}

/// One line from the daemon with its result decoded as `T` on the way (see
/// [`Client::call_decoded`]).
#[derive(Deserialize)]
struct Typed<T> {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default = "Option::default")]
    result: Option<T>,
    #[serde(default)]
    error: Option<RpcError>,
    #[serde(default)]
    method: Option<serde::de::IgnoredAny>,
}

/// Append the next line (with its `\n`) to `line`; false at the end of the stream with
/// nothing read. `BufRead::read_until`, with the newline looked for by `memchr` (SIMD):
/// std's own search was a tenth of `supctl status`'s work on a 4 MB answer.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<bool> {
    let start = line.len();
    loop {
        let (done, used) = match reader.fill_buf() {
            Ok([]) => return Ok(line.len() > start),
            Ok(buf) => match memchr::memchr(b'\n', buf) {
                Some(at) => {
                    line.extend_from_slice(&buf[..=at]);
                    (true, at + 1)
                }
                None => {
                    line.extend_from_slice(buf);
                    (false, buf.len())
                }
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        reader.consume(used);
        if done {
            return Ok(true);
        }
    }
}

/// The result in `line` as `T` if `line` answers request `id`; `None` for a
/// notification or the answer to another request. An error answer is
/// [`ClientError::Rpc`].
pub fn answer<'a, T: Deserialize<'a>>(line: &'a str, id: u64) -> Option<Result<T, ClientError>> {
    let env: Typed<T> = match serde_json::from_str(line) {
        Ok(env) => env,
        Err(e) => return Some(Err(ClientError::Unreadable(e))),
    };
    if env.method.is_some() {
        return None;
    }
    let got = env.id.unwrap_or(Value::Null);
    if got != id && !got.is_null() {
        return None;
    }
    Some(match (env.result, env.error) {
        (_, Some(e)) => Err(ClientError::Rpc(e)),
        (Some(result), None) => Ok(result),
        (None, None) => serde_json::from_str("null").map_err(ClientError::Unreadable),
    })
}

enum Message {
    Response {
        id: Value,
        result: Option<Box<RawValue>>,
        error: Option<RpcError>,
    },
    Note(Notification),
}

/// A method's result, kept as the JSON text the daemon sent: printed as is for `--json`,
/// decoded straight into the protocol's result type otherwise (no intermediate `Value`
/// tree for 200 jobs). (`None`: the result was `null` or absent.)
pub struct Reply(Option<Box<RawValue>>);

impl Reply {
    /// The result's JSON text.
    pub fn raw(&self) -> &str {
        self.0.as_deref().map_or("null", RawValue::get)
    }

    /// The result as the method's result type.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_str(self.raw()).map_err(ClientError::Unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `read_line` reads what `read_until(b'\n')` reads: lines longer than the buffer,
    /// a last line without its newline, then the end.
    #[test]
    fn lines_are_read_as_read_until_reads_them() {
        let text = b"{\"a\":1}\nthe second line is longer than the buffer\n\nlast";
        for capacity in [1, 3, 8, 64] {
            let mut ours = BufReader::with_capacity(capacity, &text[..]);
            let mut std = BufReader::with_capacity(capacity, &text[..]);
            loop {
                let (mut a, mut b) = (b"kept".to_vec(), b"kept".to_vec());
                let more = read_line(&mut ours, &mut a).expect("read from memory");
                let n = std.read_until(b'\n', &mut b).expect("read from memory");
                assert_eq!(a, b, "capacity {capacity}");
                assert_eq!(more, n > 0);
                if !more {
                    break;
                }
            }
        }
    }
}
