//! How a failed command ends: one line on stderr for people, or with `--json` one JSON
//! object on stderr for scripts, and the exit code (1 failed, 2 usage, 3 unreachable).
//!
//! The JSON object is `{"error":{"code","message","data"},"exit":N}`: a daemon's error is
//! its JSON-RPC error unchanged; supctl's own errors have `code` null.

use crate::client::ClientError;
use crate::Failure;
use serde_json::{json, Value};
use std::process::ExitCode;

/// Print `failure` and give the exit code; `trail` lists where the socket was looked for.
pub fn failure(failure: Failure, json_out: bool, trail: &[String]) -> ExitCode {
    let (exit, message, rpc) = match failure {
        Failure::Failed(None) => return ExitCode::from(1),
        Failure::Failed(Some(m)) => (1, m, None),
        Failure::Usage(m) => (2, m, None),
        Failure::Client(e @ ClientError::Unreachable { .. }) => {
            (3, format!("{e}; looked at {}", trail.join(", ")), None)
        }
        Failure::Client(e @ ClientError::Untrusted { .. }) => (3, e.to_string(), None),
        Failure::Client(ClientError::Rpc(e)) => (1, e.message.clone(), Some(e)),
        Failure::Client(e) => (1, e.to_string(), None),
    };
    if json_out {
        let error = match rpc {
            Some(e) => json!({ "code": e.code, "message": e.message, "data": e.data }),
            None => json!({ "code": Value::Null, "message": message, "data": Value::Null }),
        };
        eprintln!("{}", json!({ "error": error, "exit": exit }));
    } else {
        eprintln!("supctl: {message}");
    }
    ExitCode::from(exit)
}
