//! Unit tests of the small pieces the other modules' tests leave out: the exact error
//! codes, the names on the wire, the one-line messages, the selection helpers.

use crate::*;
use serde_json::json;

#[test]
fn error_codes_are_the_documented_numbers() {
    assert_eq!(
        [
            code::PARSE_ERROR,
            code::INVALID_REQUEST,
            code::METHOD_NOT_FOUND,
            code::INVALID_PARAMS,
            code::INTERNAL_ERROR,
        ],
        [-32700, -32600, -32601, -32602, -32603]
    );
    assert_eq!(
        [
            code::NO_SUCH_JOB,
            code::TIMED_OUT,
            code::INVALID_JOB_FILE,
            code::SHUTTING_DOWN,
            code::PERMISSION_DENIED,
            code::CONFLICT,
            code::BUSY,
        ],
        [1001, 1002, 1003, 1004, 1005, 1006, 1007]
    );
    assert_eq!(MAX_LINE_BYTES, 1_048_576);
}

#[test]
fn an_rpc_error_reads_as_its_message_and_code() {
    let e = RpcError::new(code::NO_SUCH_JOB, "no such job: x");
    assert_eq!(e.to_string(), "no such job: x (code 1001)");
}

#[test]
fn states_and_streams_have_their_wire_names() {
    let states = [
        (JobState::Stopped, "stopped"),
        (JobState::Starting, "starting"),
        (JobState::Running, "running"),
        (JobState::Backoff, "backoff"),
        (JobState::Stopping, "stopping"),
        (JobState::Exited, "exited"),
        (JobState::Fatal, "fatal"),
    ];
    for (state, name) in states {
        assert_eq!(state.as_str(), name);
        assert_eq!(state.to_string(), name);
        assert_eq!(serde_json::to_value(state).expect("serialize"), json!(name));
    }
    assert_eq!(Stream::Stdout.as_str(), "stdout");
    assert_eq!(Stream::Stderr.as_str(), "stderr");
}

#[test]
fn selection_helpers_select_what_they_say() {
    let names = Selection::names(vec!["a".into()]);
    assert_eq!(names.names, Some(vec!["a".to_owned()]));
    assert_eq!((names.group.as_deref(), names.all), (None, None));
    let group = Selection::group("g");
    assert_eq!(
        (group.names, group.group.as_deref(), group.all),
        (None, Some("g"), None)
    );
    let all = Selection::all();
    assert_eq!((all.names, all.group, all.all), (None, None, Some(true)));
}

#[test]
fn a_selection_is_empty_only_with_nothing_chosen() {
    assert!(Selection::default().is_empty());
    assert!(Selection::names(vec![]).is_empty());
    let not_all = Selection {
        all: Some(false),
        ..Selection::default()
    };
    assert!(not_all.is_empty());
    assert!(!Selection::names(vec!["a".into()]).is_empty());
    assert!(!Selection::group("g").is_empty());
    assert!(!Selection::all().is_empty());
}

#[test]
fn unknown_params_are_named_in_the_error() {
    let e = Request::from_method("ping", json!({ "x": 1 })).expect_err("ping takes none");
    assert_eq!(e.code, code::INVALID_PARAMS);
    assert_eq!(e.message, "ping takes no params, got \"x\"");
    let e = Request::from_method("shutdown", json!({ "now": true })).expect_err("unknown");
    assert_eq!(e.code, code::INVALID_PARAMS);
    assert_eq!(
        e.message,
        "shutdown: unknown param \"now\" (expected one of: drain)"
    );
}

#[test]
fn signals_read_as_their_names_and_say_what_they_expect() {
    assert_eq!(Signal::Term.to_string(), "SIGTERM");
    assert_eq!(Signal::Kill.to_string(), "SIGKILL");
    let e = "NOPE".parse::<Signal>().expect_err("unknown");
    assert_eq!(
        e.to_string(),
        "unknown signal \"NOPE\" (expected a name such as \"TERM\", \"SIGINT\", \"KILL\", or a number)"
    );
    let e = serde_json::from_value::<Signal>(json!(true)).expect_err("not a signal");
    assert!(
        e.to_string()
            .contains("expected a signal name such as \"TERM\" or \"SIGKILL\""),
        "{e}"
    );
}

#[test]
fn causes_print_as_their_wire_word() {
    for cause in [
        Cause::Exit,
        Cause::Signal,
        Cause::Stopped,
        Cause::StopTimeout,
        Cause::SpawnError,
        Cause::NotReady,
        Cause::Unhealthy,
        Cause::Watchdog,
        Cause::Dependency,
        Cause::Oom,
        Cause::DaemonLost,
    ] {
        let wire = serde_json::to_value(cause).expect("serialize");
        assert_eq!(wire, json!(cause.as_str()));
        assert_eq!(cause.to_string(), cause.as_str());
    }
    assert_eq!(Cause::StopTimeout.to_string(), "stop_timeout");
}
