//! A fuzzer for the two parsers that take untrusted input — the job file
//! (`config::parse`) and a protocol request line (`Request::decode`) — without libFuzzer
//! (which needs a nightly compiler): a mutation fuzzer over a committed corpus, with the
//! outcome (which error, which result shape) as its feedback signal in place of code
//! coverage. An input that reaches an outcome not seen before joins the working corpus.
//!
//! What it checks on every input, besides "never panics":
//! - job file: an error is one line with a position inside the text; a job file that
//!   parses holds no duration a timer cannot take and no more than 1000 log backups;
//! - request: a request that decodes encodes back to a line that decodes to the same
//!   request; an error is one of the protocol's codes.
//!
//! `cargo test -p supervisord --test fuzz_parsers` runs each parser for a few seconds.
//! The long run, by hand (release, single thread):
//!
//! ```sh
//! FUZZ_SECONDS=3600 cargo test --release -p supervisord --test fuzz_parsers -- --ignored --nocapture
//! ```
//!
//! `FUZZ_SAVE=1` writes inputs that reached new outcomes into the corpus folders
//! (`tests/fuzz/corpus/{jobfile,request}`); a failing input is written to
//! `target/fuzz-findings/` and fails the test.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use supervisord::config;

/// A small, fast, seedable generator (xorshift64*); no dependency needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const JOBFILE_TOKENS: &[&str] = &[
    "[job.a]\n",
    "[job.\"x y\"]\n",
    "[defaults]\n",
    "[supervisor]\n",
    "command = [\"sh\", \"-c\", \"true\"]\n",
    "command = \"a 'b c' \\\\d\"\n",
    "stop_timeout = \"1000days\"\n",
    "start_secs = 68000000\n",
    "backoff = 1e300\n",
    "backoff = -1\n",
    "stop_timeout = 0.0000000001\n",
    "log_backups = 4294967295\n",
    "log_backups = 1001\n",
    "log_max_bytes = \"18446744073709551616\"\n",
    "log_max_bytes = \"1EiB\"\n",
    "exit_codes = [-1, 256, 2147483648]\n",
    "stop_signal = \"SIGRTMIN+3\"\n",
    "env = { A = \"\\u0000\" }\n",
    "stdout = \"/dev/full\"\n",
    "cwd = \"../../..\"\n",
    "\"\"\"",
    "'''",
    "\u{feff}",
    "\r\n",
    "#",
    "=",
    "[[job]]\n",
    "{",
    "}",
    "\\u00e9",
    "é",
];

const REQUEST_TOKENS: &[&str] = &[
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}",
    "\"id\":18446744073709551617",
    "\"id\":1e400",
    "\"id\":-0",
    "\"id\":[1]",
    "\"params\":{\"names\":[\"a\"]}",
    "\"params\":{\"all\":true}",
    "\"params\":{\"timeout_ms\":18446744073709551615}",
    "\"params\":{\"lines\":18446744073709551615}",
    "\"params\":{\"signal\":\"KILL\"}",
    "\"params\":{\"signal\":99999999999}",
    "\"params\":{\"name\":\"x\",\"job\":{\"command\":\"true\"}}",
    "\"method\":\"terminate\"",
    "\"method\":\"add\"",
    "\"method\":\"logs\"",
    "\"method\":\"wait\"",
    "\"jsonrpc\":\"1.0\"",
    "\\ud800",
    "\\u0000",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "null",
    "\"",
];

/// Apply 1 to 8 random edits to `input`.
fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>], tokens: &[&str]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => out.insert(at, rng.next() as u8),
            2 if !out.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            3 if !out.is_empty() => {
                let start = rng.below(out.len());
                let end = (start + 1 + rng.below(32)).min(out.len());
                let piece = out[start..end].to_vec();
                out.splice(at..at, piece);
            }
            4 | 5 => {
                let t = tokens[rng.below(tokens.len())].as_bytes();
                out.splice(at..at, t.iter().copied());
            }
            _ => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
        }
        if out.len() > 64 * 1024 {
            out.truncate(64 * 1024);
        }
    }
    out
}

/// What a job file gives, as a short class for the feedback signal; `Err` is a broken
/// rule (the finding).
fn check_jobfile(input: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(input);
    match config::parse(Path::new("/fuzz/jobs.toml"), &text) {
        Ok(c) => {
            for j in &c.jobs {
                for (key, d) in [
                    ("start_secs", j.start_secs),
                    ("backoff", j.backoff),
                    ("stop_timeout", j.stop_timeout),
                ] {
                    if d > config::MAX_DURATION {
                        return Err(format!("job {}: {key} {d:?} accepted", j.name));
                    }
                }
                if j.log_backups > config::MAX_LOG_BACKUPS {
                    return Err(format!("job {}: log_backups {}", j.name, j.log_backups));
                }
            }
            Ok(format!("ok:{}", c.jobs.len().min(4)))
        }
        Err(e) => {
            let shown = e.to_string();
            if shown.contains('\n') {
                return Err(format!("a multi-line error: {shown:?}"));
            }
            if let config::ConfigError::Invalid { line, column, .. } = &e {
                let lines = text.split('\n').count();
                if *line == 0 || *line > lines || *column == 0 {
                    return Err(format!(
                        "position {line}:{column} outside the text: {shown}"
                    ));
                }
            }
            Ok(class(e.reason()))
        }
    }
}

fn check_request(input: &[u8]) -> Result<String, String> {
    use protocol::Request;
    match Request::decode(input) {
        Ok((_, request)) => {
            let line = request.to_line(7);
            match Request::decode(line.as_bytes()) {
                Ok((_, again)) if again == request => {}
                Ok((_, again)) => {
                    return Err(format!("re-encoded {request:?} decodes as {again:?}"))
                }
                Err((_, e)) => {
                    return Err(format!("re-encoded {request:?} is refused: {}", e.message))
                }
            }
            let method = line
                .split("\"method\":\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("?")
                .to_owned();
            Ok(format!("ok:{method}"))
        }
        Err((_, e)) => {
            let known = [-32700, -32600, -32601, -32602, -32603];
            if !known.contains(&e.code) && !(1000..1100).contains(&e.code) {
                return Err(format!("unknown error code {}: {}", e.code, e.message));
            }
            Ok(format!("{}:{}", e.code, class(&e.message)))
        }
    }
}

/// An error message with its specifics removed: the words (ASCII letters) of its first
/// line, up to the first quote, colon or digit, at most six of them. Coarse on purpose:
/// a message that quotes the input must not make every input a new class.
fn class(message: &str) -> String {
    message
        .lines()
        .next()
        .unwrap_or("")
        .split([
            '"', '`', '\'', ':', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9',
        ])
        .next()
        .unwrap_or("")
        .split_whitespace()
        .filter(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
        .take(6)
        .collect::<Vec<_>>()
        .join(" ")
}

/// At most this many inputs join the working corpus (and at most this many are saved).
const MAX_NEW: usize = 500;

fn corpus_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(name)
}

fn load(name: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(name))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let corpus: Vec<Vec<u8>> = files.iter().filter_map(|f| std::fs::read(f).ok()).collect();
    assert!(
        !corpus.is_empty(),
        "no corpus in {}",
        corpus_dir(name).display()
    );
    corpus
}

/// Fuzz one parser for `budget`; panics with the findings, if any.
fn fuzz(name: &str, check: fn(&[u8]) -> Result<String, String>, tokens: &[&str], budget: Duration) {
    let mut corpus = load(name);
    let mut seen: HashSet<String> = HashSet::new();
    let (mut runs, mut findings) = (0u64, Vec::new());
    // The seeds include what earlier runs found (`regression-*`): each must hold too.
    for c in &corpus {
        match catch_unwind(|| check(c)) {
            Ok(Ok(class)) => {
                seen.insert(class);
            }
            Ok(Err(broken)) => findings.push((c.clone(), broken)),
            Err(_) => findings.push((c.clone(), "panicked".to_owned())),
        }
    }
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f00d_u64);
    let mut rng = Rng(seed | 1);
    let save = std::env::var_os("FUZZ_SAVE").is_some();
    let started = Instant::now();
    // Panics are findings, not noise on stderr.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    while started.elapsed() < budget && findings.len() < 10 {
        let base = &corpus[rng.below(corpus.len())];
        let input = mutate(&mut rng, base, &corpus, tokens);
        runs += 1;
        match catch_unwind(AssertUnwindSafe(|| check(&input))) {
            Ok(Ok(class)) => {
                if seen.len() < MAX_NEW + corpus.len() && seen.insert(class) {
                    if save {
                        let file = corpus_dir(name).join(format!("new-{:016x}", rng.next()));
                        let _ = std::fs::write(file, &input);
                    }
                    corpus.push(input);
                }
            }
            Ok(Err(broken)) => findings.push((input, broken)),
            Err(_) => findings.push((input, "panicked".to_owned())),
        }
    }
    std::panic::set_hook(hook);
    eprintln!(
        "fuzz {name}: {runs} inputs in {:.1?}, {} outcome classes, working corpus {}, {} findings",
        started.elapsed(),
        seen.len(),
        corpus.len(),
        findings.len()
    );
    if findings.is_empty() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-findings");
    let _ = std::fs::create_dir_all(&dir);
    let mut report = String::new();
    for (i, (input, broken)) in findings.iter().enumerate() {
        let file = dir.join(format!("{name}-{i}"));
        let _ = std::fs::write(&file, input);
        report.push_str(&format!("{}: {broken}\n", file.display()));
    }
    panic!("fuzz {name} found:\n{report}");
}

fn budget(default: u64) -> Duration {
    Duration::from_secs(
        std::env::var("FUZZ_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default),
    )
}

#[test]
fn fuzz_the_job_file_parser_briefly() {
    fuzz(
        "jobfile",
        check_jobfile,
        JOBFILE_TOKENS,
        Duration::from_secs(3),
    );
}

#[test]
fn fuzz_the_request_decoder_briefly() {
    fuzz(
        "request",
        check_request,
        REQUEST_TOKENS,
        Duration::from_secs(3),
    );
}

/// The long run (by hand): `FUZZ_SECONDS` per parser, default an hour.
#[test]
#[ignore]
fn fuzz_both_parsers_long() {
    fuzz("jobfile", check_jobfile, JOBFILE_TOKENS, budget(3600));
    fuzz("request", check_request, REQUEST_TOKENS, budget(3600));
}
