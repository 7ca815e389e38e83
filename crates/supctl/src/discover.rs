//! Which socket supctl talks to, and the trail of places it looked, so that "cannot
//! reach supervisord" can say where it searched.
//!
//! The order: `--socket`, `$SUPERVISORD_SOCKET`, the `--config` file's `socket`; then the
//! same job files supervisord itself looks for (`./supervisord.toml`,
//! `$XDG_CONFIG_HOME/supervisord/supervisord.toml`, `/etc/supervisord.toml`: the first
//! that exists, and its `socket`); then the default socket.

use std::path::{Path, PathBuf};

/// The socket to use, and where it was looked for.
pub struct Found {
    /// The socket.
    pub socket: PathBuf,
    /// Every place consulted, in order, each with what was found there.
    pub trail: Vec<String>,
}

/// Find the socket. `Err` is a bad `--config` file (a usage error).
pub fn socket(flag: Option<&Path>, config: Option<&Path>) -> Result<Found, String> {
    let mut trail = Vec::new();
    let found = |socket: PathBuf, trail: Vec<String>| Ok(Found { socket, trail });
    if let Some(s) = flag {
        trail.push("--socket".into());
        return found(s.to_path_buf(), trail);
    }
    match std::env::var_os("SUPERVISORD_SOCKET").filter(|s| !s.is_empty()) {
        Some(s) => {
            trail.push("$SUPERVISORD_SOCKET".into());
            return found(PathBuf::from(s), trail);
        }
        None => trail.push("$SUPERVISORD_SOCKET (not set)".into()),
    }
    if let Some(file) = config {
        match socket_from_job_file(file)? {
            Some(s) => {
                trail.push(format!("--config {}", file.display()));
                return found(s, trail);
            }
            None => trail.push(format!("--config {} (no socket key)", file.display())),
        }
    } else {
        for candidate in protocol::discovery::job_file_candidates() {
            if !candidate.is_file() {
                trail.push(format!("{} (no such file)", candidate.display()));
                continue;
            }
            match socket_from_job_file(&candidate) {
                Ok(Some(s)) => {
                    trail.push(candidate.display().to_string());
                    return found(s, trail);
                }
                Ok(None) => trail.push(format!("{} (no socket key)", candidate.display())),
                Err(e) => trail.push(format!("{e} (skipped)")),
            }
            // supervisord uses the first job file it finds, so supctl stops there too.
            break;
        }
    }
    trail.push("the default socket".into());
    found(
        protocol::default_socket_path(
            std::env::var_os("XDG_RUNTIME_DIR").as_deref(),
            nix::unistd::geteuid().as_raw(),
        ),
        trail,
    )
}

/// A job file's `[supervisor] socket`, resolved against the file's folder.
fn socket_from_job_file(file: &Path) -> Result<Option<PathBuf>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let doc: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{}: {}", file.display(), e.message().trim()))?;
    let socket = doc
        .get("supervisor")
        .and_then(|s| s.get("socket"))
        .and_then(|s| s.as_str());
    let base = std::path::absolute(file)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    Ok(socket.map(|s| base.join(s)))
}
