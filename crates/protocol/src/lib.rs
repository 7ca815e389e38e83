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

mod envelope;
mod job;
mod request;
mod signal;

pub use envelope::{code, Notification, Response, RpcError, MAX_LINE_BYTES};
pub use job::{describe_exit, signal_name, Event, Job, JobState, LogData, Stream};
pub use request::{
    AddParams, KillParams, LogsParams, NamesParams, Request, Selection, ShutdownParams,
    TerminateParams, WaitParams,
};
pub use signal::{Signal, UnknownSignal};

/// The JSON-RPC version string every message carries.
pub const JSONRPC: &str = "2.0";
