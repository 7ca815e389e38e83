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
        ] {
            let p = &props[key];
            assert!(p["description"].is_string(), "{key}: {p}");
        }
        assert_eq!(props.len(), 28);
        assert_eq!(props["stop_timeout"]["default"], "10s");
        assert_eq!(props["restart"]["default"], "never");
    }
}
