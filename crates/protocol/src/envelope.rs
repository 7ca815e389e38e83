//! The JSON-RPC 2.0 envelope: responses, notifications and errors.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest request line the daemon accepts, newline excluded.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Error codes: JSON-RPC's own and the contract's application codes.
pub mod code {
    /// The line is not valid JSON (or not UTF-8).
    pub const PARSE_ERROR: i64 = -32700;
    /// Valid JSON that is not a JSON-RPC 2.0 request, or a line over the size limit.
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The params do not fit the method.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The daemon failed inside (a bug or an OS failure it could not recover from).
    pub const INTERNAL_ERROR: i64 = -32603;
    /// A named job does not exist; `data.names` lists the unknown names; nothing was done.
    pub const NO_SUCH_JOB: i64 = 1001;
    /// A `wait` (or another bounded request) ran out of time.
    pub const TIMED_OUT: i64 = 1002;
    /// The job file (or an added job) is invalid; `data` has file, line and column.
    pub const INVALID_JOB_FILE: i64 = 1003;
    /// The daemon is shutting down and takes no new work.
    pub const SHUTTING_DOWN: i64 = 1004;
    /// The peer's uid may not use this socket (extension: see docs/protocol.md).
    pub const PERMISSION_DENIED: i64 = 1005;
    /// A request conflicts with the current state (a name that already exists, a job
    /// whose output is not captured asked for its log). Extension: see docs/protocol.md.
    pub const CONFLICT: i64 = 1006;
    /// The daemon is at its connection limit (extension: see docs/protocol.md).
    pub const BUSY: i64 = 1007;
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    /// One of [`code`].
    pub code: i64,
    /// One line, for people.
    pub message: String,
    /// Structured detail, where the code defines some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with no data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// The same error with `data` attached.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// -32602 with a message.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        RpcError::new(code::INVALID_PARAMS, message)
    }

    /// The same error with typed `data` attached.
    fn with(self, data: &impl Serialize) -> Self {
        match serde_json::to_value(data) {
            Ok(v) => self.with_data(v),
            Err(_) => self,
        }
    }

    /// 1001 for these names.
    pub fn no_such_job(names: Vec<String>) -> Self {
        let message = if names.len() == 1 {
            format!("no such job: {}", names[0])
        } else {
            format!("no such jobs: {}", names.join(", "))
        };
        RpcError::new(code::NO_SUCH_JOB, message).with(&NoSuchJob { names, group: None })
    }

    /// 1001 for a group no job belongs to.
    pub fn no_such_group(group: &str) -> Self {
        RpcError::new(code::NO_SUCH_JOB, format!("no such group: {group}")).with(&NoSuchJob {
            names: Vec::new(),
            group: Some(group.to_owned()),
        })
    }

    /// -32602 about the job named `name` (a bad `add`).
    pub fn invalid_job(name: &str, message: impl Into<String>) -> Self {
        RpcError::invalid_params(message).with(&JobNamed {
            name: name.to_owned(),
        })
    }

    /// 1003: the job file was refused, at this place.
    pub fn invalid_job_file(message: impl Into<String>, at: &FilePosition) -> Self {
        RpcError::new(code::INVALID_JOB_FILE, message).with(at)
    }

    /// 1004.
    pub fn shutting_down() -> Self {
        RpcError::new(code::SHUTTING_DOWN, "supervisord is shutting down")
    }
}

/// `data` of error 1001: the unknown names (and the group, when a group was unknown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoSuchJob {
    /// Unknown job names.
    pub names: Vec<String>,
    /// The unknown group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// `data` of an `invalid params` error about one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobNamed {
    /// The job.
    pub name: String,
}

/// `data` of error 1003: where the job file is wrong (`line` and `column` are `null`
/// when the file could not be read at all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    /// The job file.
    pub file: String,
    /// 1-based line.
    pub line: Option<usize>,
    /// 1-based column.
    pub column: Option<usize>,
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}

/// A response line: the request's `id` and either `result` or `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Always "2.0".
    pub jsonrpc: String,
    /// The request's id; `null` when the request's id could not be read.
    pub id: Value,
    /// The method's result, on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error, on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
}

impl Response {
    /// A success.
    pub fn ok(id: Value, result: Value) -> Self {
        Response {
            jsonrpc: crate::JSONRPC.to_owned(),
            id,
            result: Some(result),
            error: None,
        }
    }

    /// A failure.
    pub fn err(id: Value, error: RpcError) -> Self {
        Response {
            jsonrpc: crate::JSONRPC.to_owned(),
            id,
            result: None,
            error: Some(error),
        }
    }
}

/// A message without an id: `event` and `log`, sent after a `subscribe` or a `logs` with
/// `follow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Always "2.0".
    pub jsonrpc: String,
    /// `event` or `log` (or `lagged`, see docs/protocol.md).
    pub method: String,
    /// The payload.
    pub params: Value,
}

impl Notification {
    /// A notification for `method` carrying `params`.
    pub fn new(method: &str, params: impl Serialize) -> Self {
        Notification {
            jsonrpc: crate::JSONRPC.to_owned(),
            method: method.to_owned(),
            params: serde_json::to_value(params).unwrap_or(Value::Null),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_round_trip() {
        let r = Response::err(
            serde_json::json!(7),
            RpcError::no_such_job(vec!["x".into()]),
        );
        let line = serde_json::to_string(&r).expect("serialize");
        assert_eq!(
            line,
            r#"{"jsonrpc":"2.0","id":7,"error":{"code":1001,"message":"no such job: x","data":{"names":["x"]}}}"#
        );
        let back: Response = serde_json::from_str(&line).expect("parse");
        assert_eq!(back, r);
    }

    #[test]
    fn ok_round_trip() {
        let r = Response::ok(serde_json::json!("a"), serde_json::json!({}));
        let line = serde_json::to_string(&r).expect("serialize");
        assert_eq!(line, r#"{"jsonrpc":"2.0","id":"a","result":{}}"#);
        assert_eq!(serde_json::from_str::<Response>(&line).expect("parse"), r);
    }
}
