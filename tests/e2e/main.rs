//! End-to-end tests: the real `supervisord` and `supctl` binaries, real processes, a real
//! socket in a temp folder per test. One binary (one compile), shared helpers in
//! `support.rs`, one module per area of the contract.

mod support;

mod batch;
mod causes;
mod checks;
mod containment;
mod ctl_output;
mod daemon;
mod daemon_log;
mod defaults;
mod deps;
mod docs;
mod envfiles;
mod events;
mod faults;
mod first_hour;
mod harness;
mod history;
mod hostile;
mod import;
mod lifecycle;
mod logs;
mod metrics;
mod pid1;
mod protocol;
mod reliability;
mod schema;
mod seeds;
mod soak;
mod spawn;
mod supctl;
mod systemd;
mod top;
mod users;
