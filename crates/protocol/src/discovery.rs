//! Where a job file and the socket are found when none is named: the one list both
//! binaries use, so `supctl` with no arguments talks to the daemon `supervisord` with no
//! arguments started (the default socket is [`crate::default_socket_path`]). It reads
//! environment variables and returns paths; checking which exist is the caller's business.

use std::path::{Path, PathBuf};

/// The job files looked for, in order: `./supervisord.toml`, then
/// `$XDG_CONFIG_HOME/supervisord/supervisord.toml` (`~/.config` when unset), then
/// `/etc/supervisord.toml`.
pub fn job_file_candidates() -> Vec<PathBuf> {
    let mut candidates = vec![PathBuf::from("supervisord.toml")];
    let xdg = non_empty_var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty_var("HOME").map(|h| Path::new(&h).join(".config")));
    if let Some(x) = xdg {
        candidates.push(x.join("supervisord/supervisord.toml"));
    }
    candidates.push(PathBuf::from("/etc/supervisord.toml"));
    candidates
}

fn non_empty_var(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}
