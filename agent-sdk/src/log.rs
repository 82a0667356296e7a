//! Structured logging and progress events, recorded by the host.
//!
//! Lines go to the host's bounded log for this invocation (and from there to
//! the execution journal), tagged with the execution, step and attempt.
//! Granted secret values are redacted by the host, but do not log them.

use crate::bindings::orchestr8::agent::host::{self, LogLevel};

fn write(level: LogLevel, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    host::log(level, message, &fields);
}

/// Logs at debug level.
pub fn debug(message: &str) {
    write(LogLevel::Debug, message, &[]);
}

/// Logs at info level.
pub fn info(message: &str) {
    write(LogLevel::Info, message, &[]);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    write(LogLevel::Warn, message, &[]);
}

/// Logs at error level.
pub fn error(message: &str) {
    write(LogLevel::Error, message, &[]);
}

/// Logs at info level with key/value fields.
pub fn info_with(message: &str, fields: &[(&str, &str)]) {
    write(LogLevel::Info, message, fields);
}

/// Emits a progress event (`kind`, JSON payload) to observers of the
/// execution, for example `emit("progress", &json!({"percent": 40}))`.
pub fn emit(kind: &str, payload: &impl serde::Serialize) {
    let payload = serde_json::to_string(payload).unwrap_or_else(|_| "null".into());
    host::emit_event(kind, &payload);
}
