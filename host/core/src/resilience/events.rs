//! What the chain decided, one typed event per decision. The engine turns
//! them into journal entries.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::breaker::{BreakerState, Transition};
use crate::error::ErrorCode;

/// One decision of the resilience chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum ResilienceEvent {
    /// An attempt was admitted and started.
    AttemptStarted {
        /// Attempt number, from 1.
        attempt: u32,
        /// Its timeout.
        timeout_ms: u64,
        /// Whether it is a half-open circuit's probe.
        probe: bool,
        /// The digest of the agent component it runs (`sha256:…`), which
        /// tells which build ran when a server reloads agents.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent_digest: Option<String>,
    },
    /// An attempt succeeded.
    AttemptSucceeded {
        /// Attempt number.
        attempt: u32,
        /// How long it took, in milliseconds (to the microsecond).
        duration_ms: f64,
    },
    /// An attempt failed.
    AttemptFailed {
        /// Attempt number.
        attempt: u32,
        /// The failure's code.
        code: ErrorCode,
        /// The failure's message.
        message: String,
        /// Whether the circuit breaker counted it.
        counted: bool,
        /// How long it took, in milliseconds (to the microsecond).
        duration_ms: f64,
    },
    /// Another attempt will follow after a delay.
    RetryScheduled {
        /// The number of the coming attempt.
        attempt: u32,
        /// The delay before it.
        delay_ms: u64,
        /// The failure that caused the retry.
        reason: ErrorCode,
    },
    /// A circuit changed state.
    BreakerStateChanged {
        /// The circuit.
        key: String,
        /// State before.
        from: BreakerState,
        /// State after.
        to: BreakerState,
    },
    /// An open circuit refused a call.
    CallRejected {
        /// The circuit.
        key: String,
        /// When it lets a probe through, if known.
        retry_in_ms: Option<u64>,
    },
    /// The call's time budget ran out.
    BudgetExhausted {
        /// The budget.
        budget_ms: u64,
        /// Attempts made.
        attempts: u32,
    },
}

impl ResilienceEvent {
    pub(crate) fn breaker(key: &str, t: Transition) -> Self {
        ResilienceEvent::BreakerStateChanged {
            key: key.to_string(),
            from: t.from,
            to: t.to,
        }
    }
}

/// A duration in milliseconds, to the microsecond: how durations are
/// journaled, so a sub-millisecond attempt does not count as zero.
pub fn millis(duration: Duration) -> f64 {
    duration.as_micros() as f64 / 1000.0
}
