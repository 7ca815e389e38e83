//! `supervisord schema`: the job file's JSON Schema, generated from the types the parser
//! reads (`RawFile` and its leaves), so it cannot drift from them. The leaf types that
//! validate themselves while they are read describe their accepted forms here.

use super::{
    Backups, CommandLine, Dur, EnvFiles, OnExit, OutputKey, RawFile, RestartPolicy, Size,
    MAX_LOG_BACKUPS,
};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use std::borrow::Cow;

/// The job file's JSON Schema, pretty-printed.
pub fn schema() -> String {
    let schema = schemars::schema_for!(RawFile);
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

/// `stop_signal`: the names supervisord knows.
pub(super) struct SignalName;

impl JsonSchema for SignalName {
    fn schema_name() -> Cow<'static, str> {
        "Signal".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "a signal name: TERM, INT, HUP, QUIT, KILL, USR1, USR2 (also SIGTERM, ...) or its number",
            "type": ["string", "integer"]
        })
    }
}

/// `replicas`: 0 to 1000.
pub(super) struct Replicas;

impl JsonSchema for Replicas {
    fn schema_name() -> Cow<'static, str> {
        "Replicas".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "integer", "minimum": 0, "maximum": 1000 })
    }
}

impl JsonSchema for Backups {
    fn schema_name() -> Cow<'static, str> {
        "Backups".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "integer", "minimum": 0, "maximum": MAX_LOG_BACKUPS })
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "a duration such as \"250ms\", \"10s\", \"2m\", \"1m30s\", or a number of seconds; at most 30 days",
            "anyOf": [
                { "type": "string" },
                { "type": "number", "minimum": 0 }
            ]
        })
    }
}

impl JsonSchema for Size {
    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "a size: a number of bytes, or a string such as \"50MiB\", \"10KB\", \"1G\"",
            "anyOf": [
                { "type": "string", "pattern": "^\\s*[0-9]+\\s*([KMG](i?B)?|B)?\\s*$" },
                { "type": "integer", "minimum": 0 }
            ]
        })
    }
}

impl JsonSchema for CommandLine {
    fn schema_name() -> Cow<'static, str> {
        "Command".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "argv as a list of strings, or a string split into words like a shell would",
            "anyOf": [
                { "type": "string", "minLength": 1 },
                { "type": "array", "items": { "type": "string" }, "minItems": 1 }
            ]
        })
    }
}

impl JsonSchema for OutputKey {
    fn schema_name() -> Cow<'static, str> {
        "Output".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "\"log\" (captured and rotated), \"inherit\" (supervisord's stdout, as `name | line`), \"null\", \"stdout\" (stderr only: merged into stdout), or a file path containing a '/'",
            "anyOf": [
                { "enum": ["log", "inherit", "null", "stdout"] },
                { "type": "string", "pattern": "/" }
            ]
        })
    }
}

impl JsonSchema for RestartPolicy {
    fn schema_name() -> Cow<'static, str> {
        "Restart".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "\"never\", \"on-failure\" (exit status not in exit_codes, or killed by a signal) or \"always\"",
            "enum": ["never", "on-failure", "always"]
        })
    }
}

impl JsonSchema for OnExit {
    fn schema_name() -> Cow<'static, str> {
        "OnExit".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "enum": ["nothing", "shutdown"] })
    }
}

impl JsonSchema for EnvFiles {
    fn schema_name() -> Cow<'static, str> {
        "EnvFiles".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "an env file path or a list of them; \"?\" in front: may be missing",
            "anyOf": [
                { "type": "string" },
                { "type": "array", "items": { "type": "string" } }
            ]
        })
    }
}

/// The keys every check table may have, then `ready`'s and `health`'s own.
fn check_table(
    generator: &mut SchemaGenerator,
    kinds: &[&str],
    description: &str,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Schema {
    let duration = generator.subschema_for::<Dur>().to_value();
    let command = generator.subschema_for::<CommandLine>().to_value();
    let all_kinds = serde_json::json!({
        "tcp": {
            "description": "a TCP connection to host:port is accepted",
            "type": "string",
            "pattern": "^\\S+:[0-9]{1,5}$"
        },
        "http": {
            "description": "a GET of this http:// URL is answered 2xx or 3xx",
            "type": "string",
            "pattern": "^http://[^/\\s]+"
        },
        "exec": {
            "description": "this command exits 0 within the timeout (run as the job's user, in its cwd, with its env)",
            "allOf": [command]
        },
        "log": {
            "description": "a regex a whole line of the job's captured output (stdout or stderr) matches",
            "type": "string"
        },
        "notify": {
            "description": "the job sends READY=1 on its own NOTIFY_SOCKET (systemd's protocol)",
            "const": true
        }
    });
    let mut properties = serde_json::Map::new();
    for kind in kinds {
        properties.insert((*kind).to_owned(), all_kinds[*kind].clone());
    }
    properties.insert(
        "interval".into(),
        serde_json::json!({ "description": "between attempts", "allOf": [duration] }),
    );
    properties.insert(
        "timeout".into(),
        serde_json::json!({ "description": "the time allowed", "allOf": [duration] }),
    );
    properties.extend(extra);
    let one_of: Vec<serde_json::Value> = kinds
        .iter()
        .map(|k| serde_json::json!({ "required": [k] }))
        .collect();
    Schema::try_from(serde_json::json!({
        "description": description,
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
        "oneOf": one_of
    }))
    .unwrap_or_default()
}

/// `[job.X.ready]`.
pub(super) struct ReadyTable;

impl JsonSchema for ReadyTable {
    fn schema_name() -> Cow<'static, str> {
        "Ready".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let duration = generator.subschema_for::<Dur>().to_value();
        let mut extra = serde_json::Map::new();
        extra.insert(
            "watchdog".into(),
            serde_json::json!({
                "description": "with notify = true: the longest gap allowed between two WATCHDOG=1",
                "allOf": [duration]
            }),
        );
        let mut schema = check_table(
            generator,
            &["tcp", "http", "exec", "log", "notify"],
            "when a start counts as `running`: exactly one of tcp, http, exec, log, notify; \
             interval (default 250ms), timeout (default 60s: not ready by then is a failed start)",
            extra,
        );
        schema.insert(
            "dependentRequired".into(),
            serde_json::json!({ "watchdog": ["notify"] }),
        );
        schema
    }
}

/// `[job.X.health]`.
pub(super) struct HealthTable;

impl JsonSchema for HealthTable {
    fn schema_name() -> Cow<'static, str> {
        "Health".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let duration = generator.subschema_for::<Dur>().to_value();
        let mut extra = serde_json::Map::new();
        extra.insert(
            "retries".into(),
            serde_json::json!({
                "description": "failures in a row before `unhealthy`",
                "type": "integer",
                "minimum": 0,
                "default": 3
            }),
        );
        extra.insert(
            "start_period".into(),
            serde_json::json!({
                "description": "failures this soon after `running` do not count",
                "allOf": [duration],
                "default": "0s"
            }),
        );
        extra.insert(
            "on_unhealthy".into(),
            serde_json::json!({
                "description": "what `unhealthy` does",
                "enum": ["restart", "stop", "none"],
                "default": "restart"
            }),
        );
        check_table(
            generator,
            &["tcp", "http", "exec"],
            "checked while `running`: exactly one of tcp, http, exec; interval (default 10s), \
             timeout for one check (default 5s)",
            extra,
        )
    }
}

/// `depends_on`.
pub(super) struct DependsOn;

impl JsonSchema for DependsOn {
    fn schema_name() -> Cow<'static, str> {
        "DependsOn".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let condition = serde_json::json!({
            "description": "running (reached running: ready), healthy (running and its last health check passed; it needs a health table), exited (ended on its own), succeeded (ended on its own with success)",
            "enum": ["running", "healthy", "exited", "succeeded"]
        });
        json_schema!({
            "description": "jobs this one waits for: a list of names (each must be `running`), or a table of name = condition or name = { condition, restart }; a replicated job's name stands for all its replicas",
            "anyOf": [
                { "type": "array", "items": { "type": "string" } },
                {
                    "type": "object",
                    "additionalProperties": {
                        "anyOf": [
                            condition,
                            {
                                "type": "object",
                                "properties": {
                                    "condition": condition,
                                    "restart": {
                                        "description": "restart this job when the dependency starts a new run",
                                        "type": "boolean",
                                        "default": false
                                    }
                                },
                                "additionalProperties": false
                            }
                        ]
                    }
                }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_schema_names_every_job_key_with_its_default() {
        let schema: serde_json::Value =
            serde_json::from_str(&super::schema()).expect("the schema is JSON");
        assert_eq!(schema["additionalProperties"], false);
        let job = &schema["$defs"]["Job"];
        assert_eq!(job["additionalProperties"], false, "{job}");
        let props = job["properties"].as_object().expect("job keys");
        for key in [
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
            "env_file",
            "replicas",
            "on_exit",
            "user",
            "umask",
            "limits",
            "ready",
            "health",
            "depends_on",
            "schedule",
            "timezone",
            "overlap",
            "catch_up",
            "retries",
        ] {
            let p = &props[key];
            assert!(p["description"].is_string(), "{key}: {p}");
        }
        assert_eq!(props.len(), 33);
        let group = &schema["$defs"]["Group"];
        assert!(
            group["properties"]["max_parallel"]["description"].is_string(),
            "{group}"
        );
        assert_eq!(props["stop_timeout"]["default"], "10s");
        assert_eq!(props["restart"]["default"], "never");
    }
}
