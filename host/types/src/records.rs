//! What an agent says while it runs, as the host keeps it: log lines and
//! progress events, with secret values redacted. The sandbox records them,
//! the engine journals them, every interface shows them.

use serde::{Deserialize, Serialize};

/// Replacement text for a redacted secret.
pub const REDACTED: &str = "[REDACTED]";

/// Severity of an agent's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected but handled.
    Warn,
    /// A failure.
    Error,
}

/// One structured log line from an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentLogLine {
    /// Severity.
    pub level: LogLevel,
    /// The message.
    pub message: String,
    /// Key/value fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(String, String)>,
    /// Milliseconds since the invocation started.
    pub at_ms: u64,
}

/// A progress event emitted by an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentEvent {
    /// The event kind, such as `progress`.
    pub kind: String,
    /// The payload (JSON; a string when the agent sent text that is not JSON).
    pub payload: serde_json::Value,
    /// Milliseconds since the invocation started.
    pub at_ms: u64,
}

/// Replaces every occurrence of each secret in `text` with [`REDACTED`].
pub fn redact(mut text: String, secrets: &[String]) -> String {
    for secret in secrets {
        if !secret.is_empty() && text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), REDACTED);
        }
    }
    text
}
