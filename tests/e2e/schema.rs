//! `supervisord schema`: every job file in config/ and docs/examples/ passes a real JSON
//! Schema validator (Python's `jsonschema` over the parsed TOML), and an unknown key or a
//! wrong type fails it.

use crate::support::{bin, skip};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Validate each TOML file against the schema; one line per file: `ok` or the error.
const VALIDATE: &str = r#"
import json, sys, tomllib
import jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema)
for path in sys.argv[2:]:
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    errors = sorted(v.iter_errors(doc), key=lambda e: list(e.path))
    print(path, "ok" if not errors else "FAIL " + "; ".join(
        "/".join(map(str, e.path)) + ": " + e.message for e in errors))
"#;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tomls(folder: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(folder))
        .expect("folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_job_file_passes_the_schema_and_mistakes_fail_it() {
    let has_validator = Command::new("python3")
        .args(["-c", "import jsonschema, tomllib"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_validator {
        return skip(
            "schema::every_job_file_passes_the_schema_and_mistakes_fail_it",
            "needs python3 (3.11+) with jsonschema (pip install jsonschema)",
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(bin("supervisord"))
        .arg("schema")
        .output()
        .expect("run schema");
    assert!(out.status.success(), "{out:?}");
    let schema = dir.path().join("schema.json");
    std::fs::write(&schema, &out.stdout).expect("write schema");

    let mut files = tomls("config");
    files.extend(tomls("docs/examples"));
    assert!(files.len() >= 8, "{files:?}");
    let bad = [
        (
            "unknown-key.toml",
            "[job.a]\ncommand = [\"x\"]\nstop_timout = \"1s\"\n",
        ),
        (
            "wrong-type.toml",
            "[job.a]\ncommand = [\"x\"]\ndaemon = \"yes\"\n",
        ),
        (
            "bad-restart.toml",
            "[job.a]\ncommand = [\"x\"]\nrestart = \"sometimes\"\n",
        ),
        ("bad-table.toml", "[jobs.a]\ncommand = [\"x\"]\n"),
        (
            "ready-two-kinds.toml",
            "[job.a]\ncommand = [\"x\"]\n[job.a.ready]\ntcp = \"h:1\"\nhttp = \"http://h:1/\"\n",
        ),
        (
            "ready-no-kind.toml",
            "[job.a]\ncommand = [\"x\"]\n[job.a.ready]\ninterval = \"1s\"\n",
        ),
        (
            "ready-bad-tcp.toml",
            "[job.a]\ncommand = [\"x\"]\n[job.a.ready]\ntcp = \"localhost\"\n",
        ),
        (
            "ready-watchdog-without-notify.toml",
            "[job.a]\ncommand = [\"x\"]\n[job.a.ready]\ntcp = \"h:1\"\nwatchdog = \"1s\"\n",
        ),
        (
            "health-notify.toml",
            "[job.a]\ncommand = [\"x\"]\n[job.a.health]\nnotify = true\n",
        ),
        (
            "health-bad-on-unhealthy.toml",
            "[job.a]\ncommand = [\"x\"]\n[job.a.health]\ntcp = \"h:1\"\non_unhealthy = \"panic\"\n",
        ),
        (
            "health-typo.toml",
            "[job.a]\ncommand = [\"x\"]\n[job.a.health]\ntcp = \"h:1\"\nretry = 3\n",
        ),
        (
            "depends-bad-condition.toml",
            "[job.a]\ncommand = [\"x\"]\ndepends_on = { b = \"ready\" }\n[job.b]\ncommand = [\"x\"]\n",
        ),
        (
            "depends-bad-edge-key.toml",
            "[job.a]\ncommand = [\"x\"]\ndepends_on = { b = { condition = \"running\", restrat = true } }\n[job.b]\ncommand = [\"x\"]\n",
        ),
        (
            "depends-not-names.toml",
            "[job.a]\ncommand = [\"x\"]\ndepends_on = [1, 2]\n",
        ),
    ];
    // Every form the parser accepts passes too (beside the example files).
    let good = [(
        "checks-every-form.toml",
        r#"
[job.db]
command = ["x"]
[job.db.ready]
notify = true
watchdog = "30s"
timeout = 10
[job.db.health]
exec = "pg_isready -q"
interval = "10s"
retries = 5
start_period = "1s"
on_unhealthy = "none"

[job.api]
command = ["x"]
depends_on = { db = { condition = "healthy", restart = true }, web = "running", once = { condition = "succeeded" } }
[job.api.ready]
log = "^listening on [0-9]+$"

[job.web]
command = ["x"]
replicas = 2
depends_on = ["db"]
[job.web.ready]
http = "http://127.0.0.1:8000/health"
[job.web.health]
tcp = "[::1]:8000"

[job.once]
command = ["x"]
[job.once.ready]
exec = ["test", "-e", "ready"]
"#,
    )];
    for (name, text) in good {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        files.push(path);
    }
    for (name, text) in bad {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        files.push(path);
    }
    let out = Command::new("python3")
        .args(["-c", VALIDATE])
        .arg(&schema)
        .args(&files)
        .output()
        .expect("run python3");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), files.len(), "{report}");
    for (file, line) in files.iter().zip(&lines) {
        let is_bad = file.starts_with(dir.path())
            && file
                .file_name()
                .is_none_or(|n| n != "checks-every-form.toml");
        assert_eq!(line.ends_with(" ok"), !is_bad, "{}: {line}", file.display());
    }
    assert!(report.contains("stop_timout"), "{report}");
    assert!(
        report.contains("'yes' is not of type 'boolean'"),
        "{report}"
    );
}
