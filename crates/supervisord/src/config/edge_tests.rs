//! Unit tests for the corners mutation testing found unchecked: the spelling of every
//! unit and keyword, the messages for a value of the wrong type, the error position.

use super::*;

fn parse_str(text: &str) -> Result<Config, ConfigError> {
    parse(Path::new("/srv/jobs/supervisord.toml"), text)
}

fn message(text: &str) -> String {
    match parse_str(text).expect_err("should be rejected") {
        ConfigError::Invalid { message, .. } => message,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn every_size_unit_has_its_own_multiplier() {
    for (text, bytes) in [
        ("7", 7),
        ("7B", 7),
        ("1K", 1 << 10),
        ("1KiB", 1 << 10),
        ("1kb", 1_000),
        ("1M", 1 << 20),
        ("2MiB", 2 << 20),
        ("1MB", 1_000_000),
        ("1G", 1 << 30),
        ("1GiB", 1 << 30),
        ("3GB", 3_000_000_000),
    ] {
        assert_eq!(parse_size(text), Ok(bytes), "{text}");
    }
    assert!(parse_size("1TB").is_err());
    assert!(parse_size("99999999999GB")
        .expect_err("overflow")
        .contains("too large"));
}

#[test]
fn output_keywords_and_paths() {
    let c = parse_str(
        r#"
[job.a]
command = ["x"]
stdout = "log"
stderr = "null"

[job.b]
command = ["x"]
stdout = "inherit"
stderr = "./b.err"
"#,
    )
    .expect("valid");
    assert_eq!(
        c.jobs[0].stdout,
        Output::Log("/srv/jobs/logs/a.stdout.log".into())
    );
    assert_eq!(c.jobs[0].stderr, Output::Null);
    assert_eq!(c.jobs[1].stdout, Output::Inherit);
    assert_eq!(c.jobs[1].stderr, Output::File("/srv/jobs/b.err".into()));
    let msg = message("[job.a]\ncommand = [\"x\"]\nstdout = \"\"\n");
    assert!(
        msg.contains("unknown output \"\": expected \"log\", \"inherit\", \"null\""),
        "{msg}"
    );
}

#[test]
fn outputs_and_policies_print_as_written() {
    assert_eq!(Output::Log("/l/a.log".into()).to_string(), "log /l/a.log");
    assert_eq!(Output::Inherit.to_string(), "inherit");
    assert_eq!(Output::Null.to_string(), "null");
    assert_eq!(Output::File("/f".into()).to_string(), "file /f");
    assert_eq!(RestartPolicy::Never.as_str(), "never");
    assert_eq!(RestartPolicy::OnFailure.as_str(), "on-failure");
    assert_eq!(RestartPolicy::Always.as_str(), "always");
}

#[test]
fn a_value_of_the_wrong_type_says_what_was_expected() {
    for (key, expected) in [
        (
            "stop_timeout",
            "a duration such as \"250ms\", \"10s\", \"2m\", or a number of seconds",
        ),
        (
            "log_max_bytes",
            "a size: a number of bytes or a string such as \"50MiB\"",
        ),
        ("command", "a command: a list of strings, or a string"),
    ] {
        let command = if key == "command" {
            ""
        } else {
            "command = [\"x\"]\n"
        };
        let msg = message(&format!("[job.a]\n{command}{key} = true\n"));
        assert!(msg.contains(expected), "{key}: {msg}");
    }
}

#[test]
fn an_error_position_is_file_line_and_column() {
    let e = parse_str("[job.a]\ncommand = [\"x\"]\n  colour = 1\n").expect_err("bad key");
    assert_eq!(
        serde_json::to_value(e.position()).expect("JSON"),
        serde_json::json!({ "file": "/srv/jobs/supervisord.toml", "line": 3, "column": 3 })
    );
    let read = ConfigError::Read {
        path: "/nowhere.toml".into(),
        message: "cannot read job file: gone".into(),
    };
    assert_eq!(
        serde_json::to_value(read.position()).expect("JSON"),
        serde_json::json!({ "file": "/nowhere.toml", "line": null, "column": null })
    );
    assert_eq!(read.reason(), "cannot read job file: gone");
}

#[test]
fn positions_inside_a_character_move_back_to_its_start() {
    // "aé": `é` is bytes 1..3.
    assert_eq!(floor_char_boundary("aé", 2), 1);
    assert_eq!(floor_char_boundary("aé", 1), 1);
    assert_eq!(floor_char_boundary("aé", 3), 3);
    assert_eq!(floor_char_boundary("é", 1), 0);
    let src = Source {
        path: Path::new("/f.toml"),
        text: "é = 1\n",
    };
    assert_eq!(
        src.error(Some(1..2), "x"),
        ConfigError::Invalid {
            file: "/f.toml".into(),
            line: 1,
            column: 1,
            message: "x".into(),
        }
    );
}
