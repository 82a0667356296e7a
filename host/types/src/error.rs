//! The error taxonomy every part of orchestr8 shares.
//!
//! Each failure, whichever module it comes from, carries one stable
//! [`ErrorCode`]. The CLI prints it, the REST API returns it and the journal
//! records it, always spelled the same way (`TIMEOUT`, `FUEL_EXHAUSTED`, …), so
//! scripts and dashboards can match on it without parsing messages.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A stable, machine-readable failure code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The invocation passed its wall-clock deadline.
    #[serde(alias = "TimeoutError")]
    Timeout,
    /// The invocation used up its fuel (CPU) budget.
    FuelExhausted,
    /// The agent tried to grow its memory or tables past the cap.
    MemoryLimit,
    /// The agent trapped: a panic, a stack overflow, an out-of-bounds access.
    Trap,
    /// The agent used a capability it was not granted (a host not on its
    /// allowlist, a secret it was not given).
    CapabilityDenied,
    /// The agent rejected its input (or the host rejected it before the call).
    InvalidInput,
    /// The agent's output is not valid JSON or does not match its schema.
    InvalidOutput,
    /// The agent's output is larger than the output limit.
    OutputTooLarge,
    /// The agent reported a transient failure; a retry may succeed.
    #[serde(alias = "RetryableError", alias = "NetworkError")]
    Retryable,
    /// The agent reported a permanent failure.
    Fatal,
    /// The invocation was cancelled.
    Cancelled,
    /// The circuit breaker for this agent (and target) is open: the call was
    /// refused without running.
    CircuitOpen,
    /// The overall time budget for the call, retries included, ran out.
    BudgetExhausted,
    /// The agent file does not exist or cannot be read.
    AgentNotFound,
    /// The file is not a WebAssembly component, or does not implement the
    /// `orchestr8:agent` contract.
    InvalidAgent,
    /// A configuration value is out of range or inconsistent.
    InvalidConfig,
    /// No such execution (or other named thing).
    NotFound,
    /// A workflow document (or a condition in it) is invalid.
    #[serde(alias = "ValidationError")]
    Validation,
    /// Something failed inside the host itself; not the agent's fault.
    Internal,
    /// A request to the REST API lacks the right bearer token.
    Unauthorized,
    /// The server's execution queue is full; try again after `Retry-After`.
    Overloaded,
    /// The request conflicts with the current state (cancelling a finished
    /// execution).
    Conflict,
    /// The request body is larger than the server accepts.
    PayloadTooLarge,
}

impl ErrorCode {
    /// The code as printed everywhere, for example `FUEL_EXHAUSTED`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::FuelExhausted => "FUEL_EXHAUSTED",
            ErrorCode::MemoryLimit => "MEMORY_LIMIT",
            ErrorCode::Trap => "TRAP",
            ErrorCode::CapabilityDenied => "CAPABILITY_DENIED",
            ErrorCode::InvalidInput => "INVALID_INPUT",
            ErrorCode::InvalidOutput => "INVALID_OUTPUT",
            ErrorCode::OutputTooLarge => "OUTPUT_TOO_LARGE",
            ErrorCode::Retryable => "RETRYABLE",
            ErrorCode::Fatal => "FATAL",
            ErrorCode::Cancelled => "CANCELLED",
            ErrorCode::CircuitOpen => "CIRCUIT_OPEN",
            ErrorCode::BudgetExhausted => "BUDGET_EXHAUSTED",
            ErrorCode::AgentNotFound => "AGENT_NOT_FOUND",
            ErrorCode::InvalidAgent => "INVALID_AGENT",
            ErrorCode::InvalidConfig => "INVALID_CONFIG",
            ErrorCode::Validation => "VALIDATION",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Overloaded => "OVERLOADED",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
        }
    }

    /// Whether a failure with this code may succeed when tried again with the
    /// same input. The resilience chain starts from this default.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorCode::Timeout | ErrorCode::Retryable)
    }

    /// Every code, in a stable order (for documentation and tests).
    pub const ALL: [ErrorCode; 23] = [
        ErrorCode::Timeout,
        ErrorCode::FuelExhausted,
        ErrorCode::MemoryLimit,
        ErrorCode::Trap,
        ErrorCode::CapabilityDenied,
        ErrorCode::InvalidInput,
        ErrorCode::InvalidOutput,
        ErrorCode::OutputTooLarge,
        ErrorCode::Retryable,
        ErrorCode::Fatal,
        ErrorCode::Cancelled,
        ErrorCode::CircuitOpen,
        ErrorCode::BudgetExhausted,
        ErrorCode::AgentNotFound,
        ErrorCode::InvalidAgent,
        ErrorCode::InvalidConfig,
        ErrorCode::Validation,
        ErrorCode::NotFound,
        ErrorCode::Internal,
        ErrorCode::Unauthorized,
        ErrorCode::Overloaded,
        ErrorCode::Conflict,
        ErrorCode::PayloadTooLarge,
    ];
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure with a stable code.
pub trait Coded: fmt::Display {
    /// The failure's code.
    fn code(&self) -> ErrorCode;

    /// Structured details, if the failure has any.
    fn details(&self) -> Option<serde_json::Value> {
        None
    }

    /// How long to wait before a retry makes sense, when the failure says.
    fn retry_after(&self) -> Option<std::time::Duration> {
        None
    }

    /// Whether the failure came from what this one caller asked (an input
    /// that keeps the agent computing past its deadline) rather than from
    /// the agent's health or its upstream. A circuit breaker, shared by
    /// every caller, does not count such failures.
    fn caller_induced(&self) -> bool {
        false
    }

    /// The failure in the one JSON shape every interface prints.
    fn to_body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code(),
            message: self.to_string(),
            details: self.details(),
        }
    }
}

/// The one JSON shape of an error, wherever it is shown:
/// `{"code": "TIMEOUT", "message": "…", "details": {…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorBody {
    /// The stable code.
    pub code: ErrorCode,
    /// A human-readable message (never containing secret values).
    pub message: String,
    /// Structured details, when there are any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_they_print() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, code);
        }
    }

    #[test]
    fn only_timeouts_and_retryable_failures_are_retryable_by_default() {
        let retryable: Vec<_> = ErrorCode::ALL
            .into_iter()
            .filter(|c| c.is_retryable())
            .collect();
        assert_eq!(retryable, vec![ErrorCode::Timeout, ErrorCode::Retryable]);
    }
}
