//! Requests: the typed form of every method, decoded once at the edge.

use crate::envelope::{code, RpcError};
use crate::job::Stream;
use crate::run::HistoryParams;
use crate::signal::Signal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Which jobs a request is about: `names`, a `group`, or `all`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// These jobs, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    /// Every job of this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Every job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
}

impl Selection {
    /// These names.
    pub fn names(names: Vec<String>) -> Self {
        Selection {
            names: Some(names),
            ..Selection::default()
        }
    }

    /// This group.
    pub fn group(group: impl Into<String>) -> Self {
        Selection {
            group: Some(group.into()),
            ..Selection::default()
        }
    }

    /// Every job.
    pub fn all() -> Self {
        Selection {
            all: Some(true),
            ..Selection::default()
        }
    }

    /// True when nothing is selected: no names, no group, not `all`.
    pub fn is_empty(&self) -> bool {
        self.names.as_ref().is_none_or(|n| n.is_empty())
            && self.group.is_none()
            && self.all != Some(true)
    }
}

/// Params of `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusParams {
    /// Which jobs (none: every job).
    #[serde(flatten)]
    pub selection: Selection,
    /// Also measure each job's CPU time and resident memory (`cpu_ms`, `memory_bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<bool>,
}

impl From<Selection> for StatusParams {
    fn from(selection: Selection) -> Self {
        StatusParams {
            selection,
            usage: None,
        }
    }
}

/// Params of `terminate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TerminateParams {
    /// Which jobs.
    #[serde(flatten)]
    pub selection: Selection,
    /// The signal to send instead of each job's `stop_signal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<Signal>,
    /// Answer once the processes ended (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<bool>,
}

/// Params of `kill`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KillParams {
    /// Which jobs.
    pub names: Vec<String>,
    /// The signal to send.
    pub signal: Signal,
}

/// Params of `wait`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WaitParams {
    /// Which jobs; empty means every non-daemon job.
    #[serde(flatten)]
    pub selection: Selection,
    /// Give up after this long, with error 1002.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Wait until each job is `running` (and healthy, if it has a health check) instead
    /// of settled; `success` is whether all got there before settling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
}

/// Params of `start`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StartParams {
    /// Which jobs.
    #[serde(flatten)]
    pub selection: Selection,
    /// Do not also start their dependencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_deps: Option<bool>,
}

impl From<Selection> for StartParams {
    fn from(selection: Selection) -> StartParams {
        StartParams {
            selection,
            no_deps: None,
        }
    }
}

/// Params of `logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogsParams {
    /// The job.
    pub name: String,
    /// Which stream (default stdout).
    #[serde(default)]
    pub stream: Stream,
    /// How many of the last lines (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<usize>,
    /// Then stream new output as `log` notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow: Option<bool>,
}

/// Params of `add`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddParams {
    /// The new job's name.
    pub name: String,
    /// The job keys of the job file, as JSON.
    pub job: Value,
}

/// Params of `scale`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleParams {
    /// The job with `replicas` in the job file (`web`, not `web-0`).
    pub name: String,
    /// How many replicas to run from now on.
    pub replicas: u32,
}

/// Params of `remove` (and any request that takes only names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamesParams {
    /// Which jobs.
    pub names: Vec<String>,
}

/// Params of `shutdown`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShutdownParams {
    /// Let non-daemon jobs finish on their own first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<bool>,
}

/// Every method of the protocol, with its params.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `ping`
    Ping,
    /// `status`
    Status(StatusParams),
    /// `start`
    Start(StartParams),
    /// `terminate`
    Terminate(TerminateParams),
    /// `restart`
    Restart(Selection),
    /// `kill`
    Kill(KillParams),
    /// `wait`
    Wait(WaitParams),
    /// `logs`
    Logs(LogsParams),
    /// `subscribe`
    Subscribe,
    /// `add`
    Add(AddParams),
    /// `remove`
    Remove(NamesParams),
    /// `scale`
    Scale(ScaleParams),
    /// `reload`
    Reload,
    /// `shutdown`
    Shutdown(ShutdownParams),
    /// `metrics`
    Metrics,
    /// `history`
    History(HistoryParams),
}

const SELECTION: &[&str] = &["names", "group", "all"];

impl Request {
    /// The method name on the wire.
    pub fn method(&self) -> &'static str {
        match self {
            Request::Ping => "ping",
            Request::Status(_) => "status",
            Request::Start(_) => "start",
            Request::Terminate(_) => "terminate",
            Request::Restart(_) => "restart",
            Request::Kill(_) => "kill",
            Request::Wait(_) => "wait",
            Request::Logs(_) => "logs",
            Request::Subscribe => "subscribe",
            Request::Add(_) => "add",
            Request::Remove(_) => "remove",
            Request::Scale(_) => "scale",
            Request::Reload => "reload",
            Request::Shutdown(_) => "shutdown",
            Request::Metrics => "metrics",
            Request::History(_) => "history",
        }
    }

    /// The params object on the wire (`null` for methods without params).
    pub fn params(&self) -> Value {
        fn to<T: Serialize>(t: &T) -> Value {
            serde_json::to_value(t).unwrap_or(Value::Null)
        }
        match self {
            Request::Ping | Request::Subscribe | Request::Reload | Request::Metrics => Value::Null,
            Request::Status(p) => to(p),
            Request::Restart(s) => to(s),
            Request::Start(p) => to(p),
            Request::Terminate(p) => to(p),
            Request::Kill(p) => to(p),
            Request::Wait(p) => to(p),
            Request::Logs(p) => to(p),
            Request::Add(p) => to(p),
            Request::Remove(p) => to(p),
            Request::Scale(p) => to(p),
            Request::Shutdown(p) => to(p),
            Request::History(p) => to(p),
        }
    }

    /// The request as one line (no newline) with this id.
    pub fn to_line(&self, id: u64) -> String {
        let mut obj = Map::new();
        obj.insert("jsonrpc".into(), Value::from(crate::JSONRPC));
        obj.insert("id".into(), Value::from(id));
        obj.insert("method".into(), Value::from(self.method()));
        let params = self.params();
        if !params.is_null() {
            obj.insert("params".into(), params);
        }
        Value::Object(obj).to_string()
    }

    /// Decode one line. On success: the id (`None` for a notification) and the request.
    /// On failure: the id to answer with (`null` when it could not be read) and the error.
    pub fn decode(line: &[u8]) -> Result<(Option<Value>, Request), (Value, RpcError)> {
        let value: Value = serde_json::from_slice(line).map_err(|e| {
            (
                Value::Null,
                RpcError::new(code::PARSE_ERROR, format!("parse error: {e}")),
            )
        })?;
        let Value::Object(mut obj) = value else {
            return Err((
                Value::Null,
                invalid_request("a request must be a JSON object"),
            ));
        };
        let id = obj.remove("id");
        let reply_id = match &id {
            Some(v @ (Value::Null | Value::Number(_) | Value::String(_))) => v.clone(),
            Some(_) => {
                return Err((
                    Value::Null,
                    invalid_request("\"id\" must be a number, a string or null"),
                ))
            }
            None => Value::Null,
        };
        let fail = |e: RpcError| (reply_id.clone(), e);
        match obj.remove("jsonrpc") {
            Some(Value::String(v)) if v == crate::JSONRPC => {}
            _ => return Err(fail(invalid_request("\"jsonrpc\" must be \"2.0\""))),
        }
        let method = match obj.remove("method") {
            Some(Value::String(m)) => m,
            Some(_) => return Err(fail(invalid_request("\"method\" must be a string"))),
            None => return Err(fail(invalid_request("missing \"method\""))),
        };
        let params = obj.remove("params").unwrap_or(Value::Null);
        if let Some(key) = obj.keys().next() {
            return Err(fail(invalid_request(format!(
                "unexpected member {key:?} in request"
            ))));
        }
        let request = Request::from_method(&method, params).map_err(fail)?;
        Ok((id, request))
    }

    /// Build a request from a method name and its params.
    pub fn from_method(method: &str, params: Value) -> Result<Request, RpcError> {
        let params = match params {
            Value::Null => Map::new(),
            Value::Object(m) => m,
            _ => {
                return Err(RpcError::invalid_params(
                    "params must be an object (by-name params)",
                ))
            }
        };
        let req = match method {
            "ping" => {
                only(method, &params, &[])?;
                Request::Ping
            }
            "subscribe" => {
                only(method, &params, &[])?;
                Request::Subscribe
            }
            "reload" => {
                only(method, &params, &[])?;
                Request::Reload
            }
            "metrics" => {
                only(method, &params, &[])?;
                Request::Metrics
            }
            "status" => {
                Request::Status(parse(method, params, &["names", "group", "all", "usage"])?)
            }
            "start" => Request::Start(parse(
                method,
                params,
                &["names", "group", "all", "no_deps"],
            )?),
            "restart" => Request::Restart(parse(method, params, SELECTION)?),
            "terminate" => Request::Terminate(parse(
                method,
                params,
                &["names", "group", "all", "signal", "wait"],
            )?),
            "kill" => Request::Kill(parse(method, params, &["names", "signal"])?),
            "wait" => Request::Wait(parse(
                method,
                params,
                &["names", "group", "all", "timeout_ms", "ready"],
            )?),
            "logs" => Request::Logs(parse(
                method,
                params,
                &["name", "stream", "lines", "follow"],
            )?),
            "add" => Request::Add(parse(method, params, &["name", "job"])?),
            "remove" => Request::Remove(parse(method, params, &["names"])?),
            "scale" => Request::Scale(parse(method, params, &["name", "replicas"])?),
            "shutdown" => Request::Shutdown(parse(method, params, &["drain"])?),
            "history" => Request::History(parse(method, params, &["names", "limit"])?),
            other => {
                return Err(RpcError::new(
                    code::METHOD_NOT_FOUND,
                    format!("no such method: {other:?}"),
                ))
            }
        };
        Ok(req)
    }
}

fn invalid_request(message: impl Into<String>) -> RpcError {
    RpcError::new(code::INVALID_REQUEST, message)
}

fn only(method: &str, params: &Map<String, Value>, allowed: &[&str]) -> Result<(), RpcError> {
    match params.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) if allowed.is_empty() => Err(RpcError::invalid_params(format!(
            "{method} takes no params, got {k:?}"
        ))),
        Some(k) => Err(RpcError::invalid_params(format!(
            "{method}: unknown param {k:?} (expected one of: {})",
            allowed.join(", ")
        ))),
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    method: &str,
    params: Map<String, Value>,
    allowed: &[&str],
) -> Result<T, RpcError> {
    only(method, &params, allowed)?;
    serde_json::from_value(Value::Object(params))
        .map_err(|e| RpcError::invalid_params(format!("{method}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(req: Request) {
        let line = req.to_line(42);
        let (id, back) = Request::decode(line.as_bytes()).expect("decode");
        assert_eq!(id, Some(json!(42)));
        assert_eq!(back, req, "{line}");
    }

    #[test]
    fn every_method_round_trips() {
        round_trip(Request::Ping);
        round_trip(Request::Subscribe);
        round_trip(Request::Reload);
        round_trip(Request::Metrics);
        round_trip(Request::Status(StatusParams::default()));
        round_trip(Request::Status(Selection::group("g").into()));
        round_trip(Request::Status(StatusParams {
            selection: Selection::all(),
            usage: Some(true),
        }));
        round_trip(Request::Start(Selection::all().into()));
        round_trip(Request::Start(StartParams {
            selection: Selection::names(vec!["api".into()]),
            no_deps: Some(true),
        }));
        round_trip(Request::Restart(Selection::names(vec!["a".into()])));
        round_trip(Request::Terminate(TerminateParams {
            selection: Selection::names(vec!["File2".into()]),
            signal: Some(Signal::Int),
            wait: Some(false),
        }));
        round_trip(Request::Kill(KillParams {
            names: vec!["a".into()],
            signal: Signal::Usr1,
        }));
        round_trip(Request::Wait(WaitParams {
            selection: Selection::all(),
            timeout_ms: Some(10),
            ready: Some(true),
        }));
        round_trip(Request::Logs(LogsParams {
            name: "a".into(),
            stream: Stream::Stderr,
            lines: Some(5),
            follow: Some(true),
        }));
        round_trip(Request::Add(AddParams {
            name: "a".into(),
            job: json!({"command": ["true"]}),
        }));
        round_trip(Request::Remove(NamesParams {
            names: vec!["a".into()],
        }));
        round_trip(Request::Scale(ScaleParams {
            name: "web".into(),
            replicas: 3,
        }));
        round_trip(Request::Shutdown(ShutdownParams { drain: Some(true) }));
        round_trip(Request::History(HistoryParams::default()));
        round_trip(Request::History(HistoryParams {
            names: Some(vec!["a".into()]),
            limit: Some(3),
        }));
    }

    fn code_of(line: &str) -> i64 {
        Request::decode(line.as_bytes()).expect_err(line).1.code
    }

    #[test]
    fn bad_requests_get_their_codes() {
        assert_eq!(code_of("{"), code::PARSE_ERROR);
        assert_eq!(code_of("[1]"), code::INVALID_REQUEST);
        assert_eq!(code_of("3"), code::INVALID_REQUEST);
        assert_eq!(
            code_of(r#"{"jsonrpc":"2.0","id":1}"#),
            code::INVALID_REQUEST
        );
        assert_eq!(
            code_of(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#),
            code::INVALID_REQUEST
        );
        assert_eq!(
            code_of(r#"{"jsonrpc":"2.0","id":1,"method":"nope"}"#),
            code::METHOD_NOT_FOUND
        );
        assert_eq!(
            code_of(r#"{"jsonrpc":"2.0","id":1,"method":"status","params":{"names":"x"}}"#),
            code::INVALID_PARAMS
        );
        assert_eq!(
            code_of(r#"{"jsonrpc":"2.0","id":1,"method":"status","params":{"nme":["x"]}}"#),
            code::INVALID_PARAMS
        );
        assert_eq!(
            code_of(
                r#"{"jsonrpc":"2.0","id":1,"method":"kill","params":{"names":["x"],"signal":"FOO"}}"#
            ),
            code::INVALID_PARAMS
        );
        assert_eq!(
            code_of(r#"{"jsonrpc":"2.0","id":1,"method":"start","params":{"usage":true}}"#),
            code::INVALID_PARAMS,
            "usage is a status param only"
        );
        assert_eq!(
            code_of(r#"{"jsonrpc":"2.0","id":1,"method":"history","params":{"n":1}}"#),
            code::INVALID_PARAMS
        );
        assert_eq!(
            code_of(r#"{"jsonrpc":"2.0","id":1,"method":"history","params":{"limit":-1}}"#),
            code::INVALID_PARAMS
        );
        assert_eq!(
            code_of(r#"{"jsonrpc":"2.0","id":1,"method":"metrics","params":{"x":1}}"#),
            code::INVALID_PARAMS
        );
        assert_eq!(
            code_of(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}"#),
            code::INVALID_PARAMS
        );
    }

    #[test]
    fn error_keeps_the_id_when_readable() {
        let (id, _) = Request::decode(br#"{"jsonrpc":"2.0","id":"x","method":"nope"}"#)
            .expect_err("unknown method");
        assert_eq!(id, json!("x"));
    }

    #[test]
    fn invalid_utf8_is_a_parse_error() {
        let (_, e) =
            Request::decode(b"{\"jsonrpc\":\"2.0\",\"method\":\"\xff\"}").expect_err("utf8");
        assert_eq!(e.code, code::PARSE_ERROR);
    }
}
