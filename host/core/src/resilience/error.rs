//! How a call through the chain ends when it does not succeed. The error
//! always says which limit ended the attempts and how many were made.

use std::fmt;
use std::time::Duration;

use crate::error::{Coded, ErrorCode};

/// How one attempt failed.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptError<E> {
    /// The operation failed.
    Failed(E),
    /// The chain's attempt timeout fired first.
    TimedOut {
        /// The attempt's timeout.
        timeout_ms: u64,
    },
}

impl<E: fmt::Display> fmt::Display for AttemptError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptError::Failed(e) => e.fmt(f),
            AttemptError::TimedOut { timeout_ms } => {
                write!(
                    f,
                    "attempt did not finish within its {timeout_ms} ms timeout"
                )
            }
        }
    }
}

/// Why retrying stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The last failure is not one the retry policy retries.
    NotRetryable,
    /// `maxAttempts` attempts were made.
    AttemptsExhausted,
}

/// A call that did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub enum ResilienceError<E> {
    /// The last attempt failed and no other follows.
    Failed {
        /// The last attempt's failure.
        last: AttemptError<E>,
        /// Attempts made.
        attempts: u32,
        /// Why no further attempt was made.
        reason: StopReason,
    },
    /// The circuit breaker refused the attempt.
    CircuitOpen {
        /// The circuit.
        key: String,
        /// When it lets a probe through, if known.
        retry_in: Option<Duration>,
        /// Attempts made before the refusal.
        attempts: u32,
        /// The failure before the refusal, if any.
        last: Option<AttemptError<E>>,
    },
    /// The call's time budget ran out.
    BudgetExhausted {
        /// The budget.
        budget_ms: u64,
        /// Attempts made.
        attempts: u32,
        /// The last failure, if any.
        last: Option<AttemptError<E>>,
    },
    /// The call was cancelled.
    Cancelled {
        /// Attempts made (the last one possibly interrupted).
        attempts: u32,
    },
}

impl<E> ResilienceError<E> {
    /// Attempts made.
    pub fn attempts(&self) -> u32 {
        match self {
            ResilienceError::Failed { attempts, .. }
            | ResilienceError::CircuitOpen { attempts, .. }
            | ResilienceError::BudgetExhausted { attempts, .. }
            | ResilienceError::Cancelled { attempts } => *attempts,
        }
    }

    /// The last attempt's failure, if there was one.
    pub fn last(&self) -> Option<&AttemptError<E>> {
        match self {
            ResilienceError::Failed { last, .. } => Some(last),
            ResilienceError::CircuitOpen { last, .. }
            | ResilienceError::BudgetExhausted { last, .. } => last.as_ref(),
            ResilienceError::Cancelled { .. } => None,
        }
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl<E: fmt::Display> fmt::Display for ResilienceError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // A single attempt needs no story about retries.
            ResilienceError::Failed {
                last, attempts: 1, ..
            } => last.fmt(f),
            ResilienceError::Failed {
                last,
                attempts,
                reason: StopReason::NotRetryable,
            } => write!(
                f,
                "{last} (not retried; {attempts} attempt{})",
                plural(*attempts)
            ),
            ResilienceError::Failed {
                last,
                attempts,
                reason: StopReason::AttemptsExhausted,
            } => write!(
                f,
                "{last} (gave up after {attempts} attempt{}: maxAttempts reached)",
                plural(*attempts)
            ),
            ResilienceError::CircuitOpen {
                key,
                retry_in,
                attempts,
                last,
            } => {
                write!(f, "circuit `{key}` is open")?;
                if let Some(d) = retry_in {
                    write!(f, " (next probe in {} ms)", d.as_millis())?;
                }
                write!(
                    f,
                    "; call refused after {attempts} attempt{}",
                    plural(*attempts)
                )?;
                if let Some(last) = last {
                    write!(f, "; last error: {last}")?;
                }
                Ok(())
            }
            ResilienceError::BudgetExhausted {
                budget_ms,
                attempts,
                last,
            } => {
                write!(
                    f,
                    "time budget of {budget_ms} ms exhausted after {attempts} attempt{}",
                    plural(*attempts)
                )?;
                if let Some(last) = last {
                    write!(f, "; last error: {last}")?;
                }
                Ok(())
            }
            ResilienceError::Cancelled { attempts } => {
                write!(f, "cancelled after {attempts} attempt{}", plural(*attempts))
            }
        }
    }
}

impl<E: Coded> Coded for ResilienceError<E> {
    fn code(&self) -> ErrorCode {
        match self {
            ResilienceError::Failed {
                last: AttemptError::Failed(e),
                ..
            } => e.code(),
            ResilienceError::Failed {
                last: AttemptError::TimedOut { .. },
                ..
            } => ErrorCode::Timeout,
            ResilienceError::CircuitOpen { .. } => ErrorCode::CircuitOpen,
            ResilienceError::BudgetExhausted { .. } => ErrorCode::BudgetExhausted,
            ResilienceError::Cancelled { .. } => ErrorCode::Cancelled,
        }
    }

    /// The last failure's own hint (an agent's retry-after, a busy host's
    /// second), or when an open circuit lets a probe through.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            ResilienceError::Failed {
                last: AttemptError::Failed(e),
                ..
            } => e.retry_after(),
            ResilienceError::CircuitOpen { retry_in, .. } => *retry_in,
            _ => None,
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        let mut details = serde_json::json!({ "attempts": self.attempts() });
        if let Some(AttemptError::Failed(e)) = self.last() {
            details["cause"] = serde_json::to_value(e.to_body()).unwrap_or_default();
        }
        Some(details)
    }
}
