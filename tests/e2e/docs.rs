//! The docs' examples, exercised: every job file in docs/examples/ passes `--check` and is
//! quoted verbatim by a doc; the protocol session replays against a real daemon with the
//! documented answers; the batch example runs as the doc shows.

use crate::support::{bin, wait_until, Conn, Daemon, DEADLINE};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn lines(rel: &str) -> Vec<String> {
    read(rel).lines().map(str::to_owned).collect()
}

/// Values that differ from run to run; only their type (and null-ness) must match.
const VOLATILE: [&str; 7] = [
    "containment",
    "pid",
    "uptime_ms",
    "started_at",
    "ended_at",
    "at",
    "version",
];

/// Whether `actual` has the documented shape and values, `VOLATILE` fields aside.
fn matches(expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let (ek, ak): (Vec<_>, Vec<_>) = (e.keys().collect(), a.keys().collect());
            if ek != ak {
                return Err(format!("{path}: keys {ak:?}, documented {ek:?}"));
            }
            for (k, ev) in e {
                let av = &a[k];
                let here = format!("{path}.{k}");
                if VOLATILE.contains(&k.as_str()) {
                    let kind = |v: &Value| std::mem::discriminant(v);
                    if kind(ev) != kind(av) {
                        return Err(format!("{here}: {av}, documented like {ev}"));
                    }
                } else {
                    matches(ev, av, &here)?;
                }
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => e
            .iter()
            .zip(a)
            .enumerate()
            .try_for_each(|(i, (ev, av))| matches(ev, av, &format!("{path}[{i}]"))),
        _ if expected == actual => Ok(()),
        _ => Err(format!("{path}: {actual}, documented {expected}")),
    }
}

fn session_daemon() -> Daemon {
    Daemon::start(&read("docs/examples/session.toml"))
}

#[test]
fn the_protocol_session_replays_with_the_documented_answers() {
    let d = session_daemon();
    let requests = lines("docs/examples/session.jsonl");
    let expected = lines("docs/examples/session.expected.jsonl");
    assert_eq!(requests.len(), expected.len(), "one answer per request");
    let mut conn = d.conn();
    for (req, exp) in requests.iter().zip(&expected) {
        let exp: Value = serde_json::from_str(exp).expect("expected line is JSON");
        let method = serde_json::from_str::<Value>(req)
            .ok()
            .and_then(|v| v["method"].as_str().map(str::to_owned));
        // Reads may be retried until the daemon has caught up (the captured output of a
        // job that just ended may still be on its way to disk); everything else runs once.
        let retry = matches!(method.as_deref(), Some("logs"));
        let got = wait_until(&format!("the documented answer to {req}"), DEADLINE, || {
            conn.send_raw(format!("{req}\n").as_bytes());
            let got = conn.recv().expect("an answer");
            match matches(&exp, &got, "") {
                Ok(()) => Some(Ok(got)),
                Err(e) if !retry => Some(Err(e)),
                Err(_) => None,
            }
        });
        if let Err(e) = got {
            panic!("{req}\n  differs from docs/examples/session.expected.jsonl: {e}");
        }
    }
}

#[test]
fn the_subscribe_example_streams_the_documented_events() {
    let d = session_daemon();
    d.wait_job("hello", "running", |j| {
        j.state == protocol::JobState::Running
    });
    let request = lines("docs/examples/subscribe.jsonl");
    let expected = lines("docs/examples/subscribe.expected.jsonl");
    let mut events = d.conn();
    events.send_raw(format!("{}\n", request[0]).as_bytes());
    let mut other = Conn::open(&d.socket);
    for (i, exp) in expected.iter().enumerate() {
        let got = events.recv().expect("a line");
        let exp: Value = serde_json::from_str(exp).expect("JSON");
        if let Err(e) = matches(&exp, &got, "") {
            panic!(
                "line {} of docs/examples/subscribe.expected.jsonl: {e}",
                i + 1
            );
        }
        if i == 0 {
            other.call("start", serde_json::json!({ "names": ["once"] }));
        }
    }
}

#[test]
fn the_protocol_doc_quotes_the_session() {
    let doc = read("docs/protocol.md");
    let pairs = [
        (
            "docs/examples/session.jsonl",
            "docs/examples/session.expected.jsonl",
        ),
        (
            "docs/examples/subscribe.jsonl",
            "docs/examples/subscribe.expected.jsonl",
        ),
    ];
    for (requests, answers) in pairs {
        for line in lines(requests) {
            assert!(
                doc.contains(&format!("→ {line}\n")),
                "protocol.md lacks → {line}"
            );
        }
        for line in lines(answers) {
            assert!(
                doc.contains(&format!("← {line}\n")),
                "protocol.md lacks ← {line}"
            );
        }
    }
}

fn toml_examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("docs/examples"))
        .expect("docs/examples")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    files
}

#[test]
fn every_job_file_example_passes_check_and_is_quoted_in_the_docs() {
    let docs: String = ["docs/jobfile.md", "docs/protocol.md"]
        .iter()
        .map(|f| read(f))
        .collect();
    for file in toml_examples() {
        let out = Command::new(bin("supervisord"))
            .arg("--check")
            .arg(&file)
            .output()
            .expect("run --check");
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&file).expect("example");
        assert!(
            docs.contains(&format!("```toml\n{text}```")),
            "{} is not quoted verbatim in docs/jobfile.md or docs/protocol.md",
            file.display()
        );
    }
}

#[test]
fn the_invalid_example_fails_as_documented() {
    let file = root().join("docs/examples/invalid/bad-duration.toml");
    let out = Command::new(bin("supervisord"))
        .arg("--check")
        .arg(&file)
        .output()
        .expect("run --check");
    assert_eq!(out.status.code(), Some(2));
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&root().display().to_string(), "/path/to");
    let doc = read("docs/jobfile.md");
    assert!(
        doc.contains(&format!(
            "```console\n$ cat docs/examples/invalid/bad-duration.toml\n{}",
            read("docs/examples/invalid/bad-duration.toml")
        )),
        "jobfile.md quotes the invalid file"
    );
    assert!(
        doc.contains(stderr.trim_end()),
        "jobfile.md lacks {stderr:?}"
    );
}

#[test]
fn the_batch_example_runs_as_documented() {
    let d = Daemon::prepare(&read("docs/examples/batch.toml"));
    let status = d.command(&[]).status().expect("run supervisord");
    assert_eq!(status.code(), Some(0), "{}", d.stderr());
    let mut got: Vec<String> = d.stdout().lines().map(str::to_owned).collect();
    let doc = read("docs/jobfile.md");
    let start = doc
        .find("$ supervisord --config docs/examples/batch.toml\n")
        .expect("the batch transcript");
    let block = &doc[start..];
    let mut documented: Vec<String> = block
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with('$'))
        .map(str::to_owned)
        .collect();
    // The three jobs end in whatever order they finish.
    got.sort();
    documented.sort();
    assert_eq!(got, documented);
}

#[test]
fn the_systemd_doc_quotes_the_unit() {
    let unit = read("config/supervisord.service");
    assert!(read("docs/systemd.md").contains(&format!("```ini\n{unit}```")));
}

#[test]
fn the_readme_links_every_doc() {
    let readme = read("README.md");
    for doc in [
        "docs/jobfile.md",
        "docs/protocol.md",
        "docs/systemd.md",
        "docs/container.md",
        "docs/ARCHITECTURE.md",
    ] {
        assert!(
            readme.contains(&format!("]({doc})")),
            "README lacks a link to {doc}"
        );
        assert!(root().join(doc).is_file(), "{doc} exists");
    }
}

/// The lines of the README's console block that starts with `$ {command}`, up to the next
/// prompt.
fn readme_output(command: &str) -> Vec<String> {
    let readme = read("README.md");
    let start = readme
        .find(&format!("$ {command}\n"))
        .unwrap_or_else(|| panic!("README has no `$ {command}`"));
    readme[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with('$') && !l.starts_with("```"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readme_import_transcript_is_what_import_prints() {
    let out = Command::new(bin("supervisord"))
        .args(["import", "config/import/supervisord.conf"])
        .current_dir(root())
        .output()
        .expect("run import");
    assert!(out.status.success());
    let stderr: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        stderr,
        readme_output("supervisord import config/import/supervisord.conf > jobs.toml")
    );
}

#[test]
fn the_readme_man_page_listing_is_what_man_dir_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    for binary in ["supctl", "supervisord"] {
        let ok = Command::new(bin(binary))
            .args(["man", "--dir"])
            .arg(dir.path())
            .status()
            .expect("run man --dir");
        assert!(ok.success(), "{binary} man --dir");
    }
    let mut written: Vec<String> = std::fs::read_dir(dir.path())
        .expect("man dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    let mut documented: Vec<String> = readme_output("ls $PREFIX/share/man/man1")
        .iter()
        .flat_map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    documented.sort();
    assert_eq!(written, documented);
}
