//! What an agent says while it runs: log lines and progress events.
//!
//! Both share one byte budget per invocation ([`Limits::log_bytes`]). Past the
//! budget, lines are dropped and counted rather than failing the agent: a
//! chatty agent should not lose its result, and a hostile one must not grow
//! host memory. Granted secret values are redacted before anything is kept.
//!
//! [`Limits::log_bytes`]: super::Limits::log_bytes

use std::time::Instant;

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

/// The bounded record of one invocation's logs and events.
#[derive(Debug)]
pub(crate) struct AgentRecorder {
    started: Instant,
    budget: u64,
    used: u64,
    redact: Vec<String>,
    pub(crate) lines: Vec<AgentLogLine>,
    pub(crate) events: Vec<AgentEvent>,
    pub(crate) dropped: u64,
}

impl AgentRecorder {
    pub(crate) fn new(budget: u64, redact: Vec<String>) -> Self {
        AgentRecorder {
            started: Instant::now(),
            budget,
            used: 0,
            redact: redact.into_iter().filter(|s| !s.is_empty()).collect(),
            lines: Vec::new(),
            events: Vec::new(),
            dropped: 0,
        }
    }

    fn admit(&mut self, size: usize) -> bool {
        let size = size as u64;
        if self.used.saturating_add(size) > self.budget {
            self.dropped += 1;
            return false;
        }
        self.used += size;
        true
    }

    fn at_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub(crate) fn log(&mut self, level: LogLevel, message: String, fields: Vec<(String, String)>) {
        let size = message.len() + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if !self.admit(size) {
            return;
        }
        let line = AgentLogLine {
            level,
            message: self.redacted(message),
            fields: fields
                .into_iter()
                .map(|(k, v)| (k, self.redacted(v)))
                .collect(),
            at_ms: self.at_ms(),
        };
        self.lines.push(line);
    }

    pub(crate) fn event(&mut self, kind: String, payload: String) {
        if !self.admit(kind.len() + payload.len()) {
            return;
        }
        let payload = self.redacted(payload);
        let payload = serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload));
        let at_ms = self.at_ms();
        self.events.push(AgentEvent {
            kind,
            payload,
            at_ms,
        });
    }

    /// Replaces every granted secret value in `text`.
    pub(crate) fn redacted(&self, text: String) -> String {
        redact(text, &self.redact)
    }
}

/// Replaces every occurrence of each secret in `text` with [`REDACTED`].
pub(crate) fn redact(mut text: String, secrets: &[String]) -> String {
    for secret in secrets {
        if !secret.is_empty() && text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), REDACTED);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_budget_are_dropped_and_counted() {
        let mut r = AgentRecorder::new(10, vec![]);
        r.log(LogLevel::Info, "12345".into(), vec![]);
        r.log(LogLevel::Info, "12345".into(), vec![]);
        r.log(LogLevel::Info, "1".into(), vec![]);
        r.event("p".into(), "{}".into());
        assert_eq!(r.lines.len(), 2);
        assert_eq!(r.dropped, 2);
    }

    #[test]
    fn secret_values_are_redacted_from_lines_fields_and_events() {
        let mut r = AgentRecorder::new(1000, vec!["s3cr3t".into()]);
        r.log(
            LogLevel::Warn,
            "key is s3cr3t".into(),
            vec![("k".into(), "xs3cr3tx".into())],
        );
        r.event("e".into(), "{\"v\":\"s3cr3t\"}".into());
        assert_eq!(r.lines[0].message, "key is [REDACTED]");
        assert_eq!(r.lines[0].fields[0].1, "x[REDACTED]x");
        assert_eq!(r.events[0].payload, serde_json::json!({"v": "[REDACTED]"}));
    }

    #[test]
    fn event_payload_that_is_not_json_is_kept_as_text() {
        let mut r = AgentRecorder::new(1000, vec![]);
        r.event("note".into(), "plain words".into());
        assert_eq!(r.events[0].payload, serde_json::json!("plain words"));
    }
}
