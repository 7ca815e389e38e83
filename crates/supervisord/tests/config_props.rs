//! Property tests for the job file parser, the other parser that takes untrusted input:
//! whatever the text, `parse` returns a `Config` or one error line with a position inside
//! the file — never a panic; and a job file built from valid pieces parses to those jobs.
//!
//! Longer runs by hand: `PROPTEST_CASES=100000 cargo test -p supervisord --test
//! config_props --release`.

use proptest::prelude::*;
use std::path::Path;
use supervisord::config;

const KEYS: &[&str] = &[
    "command",
    "group",
    "daemon",
    "autostart",
    "restart",
    "exit_codes",
    "start_secs",
    "max_restarts",
    "backoff",
    "stop_signal",
    "stop_timeout",
    "kill_group",
    "cwd",
    "env",
    "stdout",
    "stderr",
    "log_timestamps",
    "log_max_bytes",
    "log_backups",
    "bogus",
];

/// TOML values, valid or not for the key they land on.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("true".to_owned()),
        Just("[\"sh\", \"-c\", \"true\"]".to_owned()),
        Just("[]".to_owned()),
        Just("[0, 1, 256, -1]".to_owned()),
        Just("{ A = \"1\", B = \"x y\" }".to_owned()),
        prop::sample::select(
            &[
                "\"1s\"",
                "\"250ms\"",
                "\"2m\"",
                "\"10 years\"",
                "\"-1s\"",
                "\"\"",
                "\"TERM\"",
                "\"SIGKILL\"",
                "\"NOPE\"",
                "\"always\"",
                "\"on-failure\"",
                "\"log\"",
                "\"inherit\"",
                "\"null\"",
                "\"out.txt\"",
                "\"50MiB\"",
                "\"1.5GB\"",
                "\"9999999TiB\"",
                "\"sh -c 'echo hi'\"",
                "\"unterminated 'quote\"",
            ][..],
        )
        .prop_map(str::to_owned),
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        "\"[^\"\\\\\\n]{0,12}\"",
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9_.-]{1,12}",
        1 => ".{0,70}".prop_map(|s| format!("{s:?}")),
    ]
}

/// A job file made of plausible pieces.
fn job_file() -> impl Strategy<Value = String> {
    let job = (
        name(),
        prop::collection::vec((prop::sample::select(KEYS), value()), 0..6),
    );
    (
        prop::collection::vec(
            (
                prop::sample::select(&["socket", "log_dir", "exit_when_done", "nope"][..]),
                value(),
            ),
            0..3,
        ),
        prop::collection::vec((prop::sample::select(KEYS), value()), 0..3),
        prop::collection::vec(job, 0..4),
    )
        .prop_map(|(sup, defaults, jobs)| {
            let mut s = String::from("[supervisor]\n");
            for (k, v) in sup {
                s.push_str(&format!("{k} = {v}\n"));
            }
            s.push_str("[defaults]\n");
            for (k, v) in defaults {
                s.push_str(&format!("{k} = {v}\n"));
            }
            for (n, keys) in jobs {
                let n = if n.starts_with('"') {
                    n
                } else {
                    format!("\"{n}\"")
                };
                s.push_str(&format!("[job.{n}]\n"));
                for (k, v) in keys {
                    s.push_str(&format!("{k} = {v}\n"));
                }
            }
            s
        })
}

fn check(text: &str) {
    let path = Path::new("/srv/jobs/supervisord.toml");
    if let Err(e) = config::parse(path, text) {
        let line = e.to_string();
        assert!(!line.contains('\n'), "one line: {line:?}");
        assert!(line.starts_with("/srv/jobs/supervisord.toml:"), "{line}");
        if let config::ConfigError::Invalid {
            line: l, column, ..
        } = &e
        {
            let lines = text.split('\n').count().max(1);
            assert!(*l >= 1 && *l <= lines, "line {l} of {lines}: {line}");
            assert!(*column >= 1);
        }
    }
}

/// `default` cases, unless `PROPTEST_CASES` asks for another number (longer runs by hand).
fn cases(default: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default;
    }
    config
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn any_text_is_a_config_or_one_error_line(text in ".{0,400}") {
        check(&text);
    }

    #[test]
    fn any_bytes_as_text_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn plausible_job_files_never_panic(text in job_file()) {
        check(&text);
    }

    #[test]
    fn valid_jobs_parse_to_themselves(
        jobs in prop::collection::btree_map(
            "[A-Za-z0-9_.-]{1,20}",
            prop::collection::vec("[a-zA-Z0-9/_.=-]{1,10}", 1..4),
            1..6,
        )
    ) {
        let mut text = String::new();
        for (n, argv) in &jobs {
            let argv: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
            text.push_str(&format!("[job.\"{n}\"]\ncommand = [{}]\n", argv.join(", ")));
        }
        let c = config::parse(Path::new("/srv/jobs/supervisord.toml"), &text)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let got: Vec<(String, Vec<String>)> =
            c.jobs.iter().map(|j| (j.name.clone(), j.command.clone())).collect();
        let want: Vec<(String, Vec<String>)> = jobs.into_iter().collect();
        prop_assert_eq!(got, want);
    }
}
