//! A blocking client for the control socket: one request at a time, notifications
//! handed to the caller. No async runtime: supctl starts in about a millisecond.

use protocol::{Notification, Request, Response, RpcError};
use serde_json::Value;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Why a request got no answer from the daemon.
#[derive(Debug)]
pub enum ClientError {
    /// The socket could not be reached (exit code 3).
    Unreachable {
        /// The path tried.
        path: PathBuf,
        /// The OS's reason.
        source: io::Error,
    },
    /// The connection broke or the daemon said something unreadable (exit code 1).
    Broken(String),
    /// The daemon answered with an error (exit code 1).
    Rpc(RpcError),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Unreachable { path, source } => write!(
                f,
                "cannot reach supervisord at {}: {source} (is it running? see --socket)",
                path.display()
            ),
            ClientError::Broken(why) => write!(f, "connection to supervisord broke: {why}"),
            ClientError::Rpc(e) => write!(f, "{}", e.message),
        }
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
        let writer = stream
            .try_clone()
            .map_err(|e| ClientError::Broken(e.to_string()))?;
        Ok(Client {
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
        })
    }

    /// Send a request and wait for its answer. Notifications that arrive first go to
    /// `on_note`.
    pub fn call_with(
        &mut self,
        request: &Request,
        mut on_note: impl FnMut(Notification),
    ) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = request.to_line(id);
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| ClientError::Broken(e.to_string()))?;
        loop {
            let msg = self.read()?;
            if msg.get("id").is_some() {
                let resp: Response = serde_json::from_value(msg)
                    .map_err(|e| ClientError::Broken(format!("bad response: {e}")))?;
                if resp.id == id || resp.id.is_null() {
                    return resp.into_result().map_err(ClientError::Rpc);
                }
            } else if let Ok(note) = serde_json::from_value::<Notification>(msg) {
                on_note(note);
            }
        }
    }

    /// Send a request and wait for its answer.
    pub fn call(&mut self, request: &Request) -> Result<Value, ClientError> {
        self.call_with(request, |_| {})
    }

    /// The next notification; `None` when the daemon closed the connection.
    pub fn next_notification(&mut self) -> Result<Option<Notification>, ClientError> {
        loop {
            let msg = match self.read() {
                Ok(m) => m,
                Err(ClientError::Broken(ref why)) if why == EOF => return Ok(None),
                Err(e) => return Err(e),
            };
            if msg.get("id").is_none() {
                if let Ok(note) = serde_json::from_value::<Notification>(msg) {
                    return Ok(Some(note));
                }
            }
        }
    }

    /// Block until the daemon closes the connection (it does once it has shut down).
    pub fn wait_closed(&mut self) {
        let mut sink = Vec::new();
        while matches!(self.reader.read_until(b'\n', &mut sink), Ok(n) if n > 0) {
            sink.clear();
        }
    }

    fn read(&mut self) -> Result<Value, ClientError> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err(ClientError::Broken(EOF.into())),
            Ok(_) => serde_json::from_str(&line)
                .map_err(|e| ClientError::Broken(format!("unreadable answer: {e}"))),
            Err(e) => Err(ClientError::Broken(e.to_string())),
        }
    }
}

const EOF: &str = "the daemon closed the connection";
