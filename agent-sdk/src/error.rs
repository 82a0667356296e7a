//! How an agent fails: the three kinds the host's resilience chain tells
//! apart without parsing messages.

use std::fmt;
use std::time::Duration;

use crate::bindings::orchestr8::agent::types as wit;

/// An agent failure.
///
/// - [`AgentError::invalid_input`]: the input or config is wrong; retrying
///   cannot help.
/// - [`AgentError::retryable`]: a transient failure (rate limit, upstream
///   down); a retry may succeed. Add [`AgentError::retry_after`] when you
///   know how long to wait.
/// - [`AgentError::fatal`]: anything else; do not retry.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentError {
    kind: Kind,
    message: String,
    details: Option<serde_json::Value>,
    retry_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    InvalidInput,
    Retryable,
    Fatal,
}

impl AgentError {
    fn new(kind: Kind, message: impl Into<String>) -> Self {
        AgentError {
            kind,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// The input (or config) is wrong.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(Kind::InvalidInput, message)
    }

    /// A transient failure: a retry may succeed.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::new(Kind::Retryable, message)
    }

    /// A permanent failure.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self::new(Kind::Fatal, message)
    }

    /// Attaches structured details (shown in the journal and API errors).
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Says how long to wait before a retry makes sense.
    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether this failure may succeed on retry.
    pub fn is_retryable(&self) -> bool {
        self.kind == Kind::Retryable
    }

    /// Whether the input was at fault.
    pub fn is_invalid_input(&self) -> bool {
        self.kind == Kind::InvalidInput
    }
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AgentError {}

impl From<AgentError> for wit::AgentError {
    fn from(e: AgentError) -> Self {
        let info = wit::ErrorInfo {
            message: e.message,
            details: e.details.map(|d| d.to_string()),
            retry_after_ms: e.retry_after.map(|d| d.as_millis() as u64),
        };
        match e.kind {
            Kind::InvalidInput => wit::AgentError::InvalidInput(info),
            Kind::Retryable => wit::AgentError::Retryable(info),
            Kind::Fatal => wit::AgentError::Fatal(info),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_onto_the_wit_variants() {
        let e = AgentError::retryable("busy")
            .retry_after(Duration::from_secs(2))
            .with_details(serde_json::json!({"status": 429}));
        assert!(e.is_retryable());
        match wit::AgentError::from(e) {
            wit::AgentError::Retryable(info) => {
                assert_eq!(info.message, "busy");
                assert_eq!(info.retry_after_ms, Some(2000));
                assert_eq!(info.details.as_deref(), Some("{\"status\":429}"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            wit::AgentError::from(AgentError::invalid_input("x")),
            wit::AgentError::InvalidInput(_)
        ));
        assert!(matches!(
            wit::AgentError::from(AgentError::fatal("x")),
            wit::AgentError::Fatal(_)
        ));
    }
}
