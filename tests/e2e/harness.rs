//! The harness tests what the source says: the binaries it runs are never older than
//! the source they are built from.

use crate::support::{bin, workspace_root};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The newest modification time of `path` (a file, or a folder's files recursively),
/// with the file it belongs to.
fn newest(path: &Path, best: &mut Option<(SystemTime, PathBuf)>) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if meta.is_dir() {
        for e in std::fs::read_dir(path).into_iter().flatten().flatten() {
            newest(&e.path(), best);
        }
    } else if let Ok(t) = meta.modified() {
        if best.as_ref().is_none_or(|(b, _)| t > *b) {
            *best = Some((t, path.to_path_buf()));
        }
    }
}

/// Touch a source (`touch crates/supctl/src/main.rs`) and run this test alone: it passes
/// because `bin` rebuilds; a harness that took whatever was in the target folder fails it.
#[test]
fn the_binaries_are_newer_than_every_source_they_are_built_from() {
    let root = workspace_root();
    for name in ["supervisord", "supctl"] {
        let exe = bin(name);
        let built = std::fs::metadata(&exe)
            .and_then(|m| m.modified())
            .expect("binary mtime");
        // The sources cargo built it from: its dep-info file (`target/debug/NAME.d`),
        // the workspace's files only. Test-only files are not in it, rightly.
        let dep_info = std::fs::read_to_string(exe.with_extension("d")).expect("dep-info");
        let deps = dep_info
            .split_once(": ")
            .map(|(_, d)| d.replace("\\ ", "\u{0}"))
            .unwrap_or_default();
        let mut src = None;
        for dep in deps.split_whitespace() {
            let dep = Path::new(&dep.replace('\u{0}', " ")).to_path_buf();
            if dep.starts_with(&root) && !dep.starts_with(root.join("target")) {
                newest(&dep, &mut src);
            }
        }
        let (t, path) = src.expect("some source files");
        assert!(
            built >= t,
            "{} is older than {}: the e2e tests would run a stale build",
            exe.display(),
            path.display()
        );
    }
}
