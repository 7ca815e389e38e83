//! supervisord: a process supervisor that runs named jobs from a TOML job file and takes
//! orders over a Unix socket.
//!
//! # Theory of operation
//!
//! * [`config`] turns the job file into validated [`config::JobSpec`]s.
//! * [`supervisor`] is the single owner of the process table: an actor task that feeds
//!   requests, exits and timers through each job's [`lifecycle`] state machine and
//!   publishes one event per state change.
//! * [`process`] spawns each run as a process-group leader and watches it in a task of its
//!   own; [`os`] holds the system calls (and the one `unsafe` pre-exec hook); [`guard`]
//!   kills every job's group if supervisord itself dies.
//! * [`logs`] owns captured output on a writer thread; [`server`] owns the socket.
//! * [`history`] keeps every run's start and end in `history.jsonl` on a writer thread of
//!   its own, and reads it back at start (restart memory).
//! * [`metrics`] writes the Prometheus exposition (and serves it over HTTP when asked);
//!   [`usage`] measures jobs' and supervisord's CPU and memory from `/proc`.
//! * [`notify`] speaks systemd's notify protocol (READY, RELOADING, STOPPING, STATUS,
//!   WATCHDOG); [`import`] turns a Supervisor INI file into a job file.
//!
//! [`daemon::run`] wires them together and is what `main` calls; it runs on a
//! current-thread runtime, so every child is spawned from the main thread (which is what
//! `PR_SET_PDEATHSIG`, the fallback when no guard runs, needs to be reliable).
#![warn(clippy::unwrap_used)]

pub mod cgroup;
pub mod checks;
pub mod config;
pub mod daemon;
pub mod envfile;
pub mod guard;
pub mod history;
pub mod import;
pub mod interpolate;
pub mod lifecycle;
pub mod logs;
pub mod metrics;
pub mod notify;
pub mod os;
pub mod process;
pub mod schedule;
pub mod server;
pub mod suggest;
pub mod supervisor;
pub mod usage;
