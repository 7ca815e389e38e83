//! Property tests for request decoding, the parser every client line goes through: it
//! never panics, whatever the bytes; every error is one line with a contract code; every
//! request the client side can build decodes back to itself.
//!
//! Longer runs by hand: `PROPTEST_CASES=200000 cargo test -p supervisor-protocol --test
//! decode_props --release`.

use proptest::prelude::*;
use protocol::{
    code, AddParams, HistoryParams, KillParams, LogsParams, NamesParams, Request, Selection,
    ShutdownParams, Signal, StatusParams, Stream, TerminateParams, WaitParams,
};
use serde_json::{json, Value};

const CODES: &[i64] = &[
    code::PARSE_ERROR,
    code::INVALID_REQUEST,
    code::METHOD_NOT_FOUND,
    code::INVALID_PARAMS,
];

const METHODS: &[&str] = &[
    "ping",
    "status",
    "start",
    "terminate",
    "restart",
    "kill",
    "wait",
    "logs",
    "subscribe",
    "add",
    "remove",
    "reload",
    "shutdown",
    "nope",
    "",
];

const KEYS: &[&str] = &[
    "names",
    "group",
    "all",
    "signal",
    "wait",
    "timeout_ms",
    "name",
    "stream",
    "lines",
    "follow",
    "job",
    "drain",
    "x",
];

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
        prop::sample::select(METHODS).prop_map(Value::from),
        prop::sample::select(&["TERM", "KILL", "SIGUSR1", "stdout", "stderr", "9"][..])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// Something shaped like a request, with any method, id and params.
fn request_like() -> impl Strategy<Value = Value> {
    (
        prop::option::of(any_json()),
        prop::option::of(prop_oneof![Just(json!("2.0")), any_json()]),
        prop::option::of(prop_oneof![
            prop::sample::select(METHODS).prop_map(Value::from),
            any_json()
        ]),
        prop::option::of(any_json()),
    )
        .prop_map(|(id, jsonrpc, method, params)| {
            let mut obj = serde_json::Map::new();
            for (k, v) in [
                ("id", id),
                ("jsonrpc", jsonrpc),
                ("method", method),
                ("params", params),
            ] {
                if let Some(v) = v {
                    obj.insert(k.into(), v);
                }
            }
            Value::Object(obj)
        })
}

fn names() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[A-Za-z0-9_.-]{1,16}", 0..4)
}

fn selection() -> impl Strategy<Value = Selection> {
    (
        prop::option::of(names()),
        prop::option::of("[a-z]{1,8}"),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(names, group, all)| Selection { names, group, all })
}

fn signal() -> impl Strategy<Value = Signal> {
    prop::sample::select(
        &[
            Signal::Term,
            Signal::Kill,
            Signal::Int,
            Signal::Hup,
            Signal::Quit,
            Signal::Usr1,
            Signal::Usr2,
        ][..],
    )
}

/// Every request the client side can build.
fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::Ping),
        Just(Request::Subscribe),
        Just(Request::Reload),
        Just(Request::Metrics),
        (selection(), prop::option::of(any::<bool>()))
            .prop_map(|(selection, usage)| Request::Status(StatusParams { selection, usage })),
        selection().prop_map(|s| Request::Start(s.into())),
        selection().prop_map(Request::Restart),
        (
            selection(),
            prop::option::of(signal()),
            prop::option::of(any::<bool>())
        )
            .prop_map(
                |(selection, signal, wait)| Request::Terminate(TerminateParams {
                    selection,
                    signal,
                    wait
                })
            ),
        (names(), signal()).prop_map(|(names, signal)| Request::Kill(KillParams { names, signal })),
        (selection(), prop::option::of(any::<u64>())).prop_map(|(selection, timeout_ms)| {
            Request::Wait(WaitParams {
                selection,
                timeout_ms,
                ready: None,
            })
        }),
        (
            ".{0,20}",
            any::<bool>(),
            prop::option::of(any::<usize>()),
            prop::option::of(any::<bool>())
        )
            .prop_map(|(name, err, lines, follow)| Request::Logs(LogsParams {
                name,
                stream: if err { Stream::Stderr } else { Stream::Stdout },
                lines,
                follow
            })),
        (".{0,20}", any_json()).prop_map(|(name, job)| Request::Add(AddParams { name, job })),
        (prop::option::of(names()), prop::option::of(any::<usize>()))
            .prop_map(|(names, limit)| Request::History(HistoryParams { names, limit })),
        names().prop_map(|names| Request::Remove(NamesParams { names })),
        prop::option::of(any::<bool>())
            .prop_map(|drain| Request::Shutdown(ShutdownParams { drain })),
    ]
}

fn check_error(id: &Value, e: &protocol::RpcError) {
    assert!(CODES.contains(&e.code), "unexpected code {}", e.code);
    assert!(
        !e.message.is_empty() && !e.message.contains('\n'),
        "{:?}",
        e.message
    );
    assert!(matches!(
        id,
        Value::Null | Value::Number(_) | Value::String(_)
    ));
}

/// Whatever decoded must survive a trip back through the wire form.
fn check_decoded(line: &[u8]) {
    match Request::decode(line) {
        Ok((_, req)) => {
            let again = req.to_line(1);
            let (_, back) = Request::decode(again.as_bytes()).expect("re-encoded line decodes");
            assert_eq!(back, req, "{again}");
        }
        Err((id, e)) => check_error(&id, &e),
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
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_decoded(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(v in any_json()) {
        check_decoded(v.to_string().as_bytes());
    }

    #[test]
    fn request_shaped_json_never_panics(v in request_like()) {
        check_decoded(v.to_string().as_bytes());
    }

    #[test]
    fn every_request_round_trips(req in request(), id in any::<u64>()) {
        let line = req.to_line(id);
        let (got_id, back) = Request::decode(line.as_bytes()).expect("decodes");
        prop_assert_eq!(got_id, Some(json!(id)));
        prop_assert_eq!(back, req);
    }

    #[test]
    fn mutated_requests_never_panic(
        req in request(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..8),
    ) {
        let mut line = req.to_line(1).into_bytes();
        for (at, byte, op) in edits {
            let i = at.index(line.len() + 1);
            match op {
                0 => line.insert(i, byte),
                1 if i < line.len() => { line.remove(i); }
                _ if i < line.len() => line[i] = byte,
                _ => line.push(byte),
            }
        }
        check_decoded(&line);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = "[".repeat(1_000_000);
    let (_, e) = Request::decode(deep.as_bytes()).expect_err("too deep");
    assert_eq!(e.code, code::PARSE_ERROR);
    let deep = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"add\",\"params\":{{\"name\":\"x\",\"job\":{}1{}}}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (_, e) = Request::decode(deep.as_bytes()).expect_err("too deep");
    assert_eq!(e.code, code::PARSE_ERROR);
}
