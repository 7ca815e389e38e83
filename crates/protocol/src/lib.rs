//! The wire of the supervisord control socket.
//!
//! # Theory of operation
//!
//! The socket carries JSON-RPC 2.0, one JSON object per `\n`-terminated line. This crate
//! holds the types on both sides of it and nothing else: no I/O, no runtime. The daemon
//! turns each incoming line into a typed [`Request`] exactly once, at the edge
//! ([`Request::parse`]); every answer is a [`Response`] carrying either a result or an
//! [`RpcError`], and unsolicited messages are [`Notification`]s (`event`, `log`).
//!
//! Every error code in the contract has one constant here ([`code`]); the daemon builds
//! [`RpcError`] values from its typed errors in one place.
#![warn(missing_docs, clippy::unwrap_used)]
#![forbid(unsafe_code)]

pub mod discovery;
mod envelope;
mod job;
mod request;
mod result;
mod run;
mod signal;
#[cfg(test)]
mod wire_tests;

pub use envelope::{
    code, FilePosition, JobNamed, NoSuchJob, Notification, Response, RpcError, MAX_LINE_BYTES,
};
pub use job::{
    describe_exit, signal_name, Cause, Event, Health, HealthChange, Job, JobState, LogData, Stream,
};
pub use request::{
    AddParams, KillParams, LogsParams, NamesParams, Request, ScaleParams, Selection,
    ShutdownParams, StartParams, StatusParams, TerminateParams, WaitParams,
};
pub use result::{
    note, JobList, Lagged, LogsResult, MetricsResult, PingResult, ReloadResult, ShutdownResult,
};
pub use run::{HistoryParams, HistoryResult, Run};
pub use signal::{Signal, UnknownSignal};

/// The JSON-RPC version string every message carries.
pub const JSONRPC: &str = "2.0";

/// The socket both binaries use when neither the command line nor a job file names one:
/// `$XDG_RUNTIME_DIR/supervisord.sock`, else `/tmp/supervisord-<uid>/supervisord.sock`.
/// The caller passes `$XDG_RUNTIME_DIR` (an empty value counts as unset) and its euid,
/// so this stays free of I/O.
pub fn default_socket_path(runtime_dir: Option<&std::ffi::OsStr>, uid: u32) -> std::path::PathBuf {
    match runtime_dir.filter(|d| !d.is_empty()) {
        Some(dir) => std::path::Path::new(dir).join(SOCKET_FILE),
        None => std::path::PathBuf::from(format!("/tmp/supervisord-{uid}")).join(SOCKET_FILE),
    }
}

/// The default socket's file name.
pub const SOCKET_FILE: &str = "supervisord.sock";

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::path::Path;

    #[test]
    fn default_socket_path_prefers_the_runtime_dir() {
        assert_eq!(
            default_socket_path(Some(OsStr::new("/run/user/1000")), 1000),
            Path::new("/run/user/1000/supervisord.sock")
        );
        assert_eq!(
            default_socket_path(Some(OsStr::new("")), 1000),
            Path::new("/tmp/supervisord-1000/supervisord.sock")
        );
        assert_eq!(
            default_socket_path(None, 0),
            Path::new("/tmp/supervisord-0/supervisord.sock")
        );
    }
}
