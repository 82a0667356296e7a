//! The resilience chain every agent invocation goes through:
//! `retry(circuitBreaker(timeout(op)))`.
//!
//! - **retry** (outermost) decides whether a failed attempt is tried again,
//!   and waits an exponentially growing, fully jittered delay in between;
//! - the **circuit breaker** sees every attempt: an open circuit refuses the
//!   attempt without running it (`CIRCUIT_OPEN`, never retried), and each
//!   attempt's outcome counts (three failed attempts are three failures),
//!   except failures one caller's input brought on
//!   ([`Coded::caller_induced`]): the circuit is shared by every caller;
//! - the **timeout** bounds each attempt. The operation is told its timeout
//!   so the sandbox can enforce it with its own deadline (a CPU-bound agent is
//!   really stopped, not abandoned); the chain enforces it too.
//!
//! Around all of it, a **budget** bounds the whole call, retries and delays
//! included, and **cancellation** cuts through every layer: it ends a backoff
//! wait at once and interrupts the running attempt after a grace period.
//!
//! The chain is generic over the operation and its error, and reads time
//! only through tokio, so tests run it under paused time. Every decision is
//! reported as a [`ResilienceEvent`].

mod breaker;
mod error;
mod events;
mod retry;

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use breaker::{
    Admission, BreakerRegistry, BreakerState, Circuit, CircuitBreakerPolicy,
    DEFAULT_FAILURE_THRESHOLD, DEFAULT_RESET_TIMEOUT_MS, MAX_CIRCUITS, Outcome, Rejection,
    Transition,
};
pub use error::{AttemptError, ResilienceError, StopReason};
pub use events::{ResilienceEvent, millis};
pub use retry::{DEFAULT_BASE_DELAY_MS, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_DELAY_MS, RetryPolicy};

use crate::error::{Coded, ErrorCode};

/// Default per-attempt timeout.
pub const DEFAULT_ATTEMPT_TIMEOUT_MS: u64 = 30_000;
/// Default budget for a whole call, retries included.
pub const DEFAULT_BUDGET_MS: u64 = 90_000;
/// Longest timeout, budget or delay accepted: a day.
pub const MAX_DURATION_MS: u64 = 24 * 3600 * 1000;

/// The policies of one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ResiliencePolicy {
    /// Retries.
    pub retry: RetryPolicy,
    /// The circuit breaker.
    pub circuit_breaker: CircuitBreakerPolicy,
    /// Timeout of each attempt, in milliseconds.
    pub timeout_ms: u64,
    /// Time budget of the whole call, retries and delays included.
    pub budget_ms: u64,
}

impl Default for ResiliencePolicy {
    fn default() -> Self {
        ResiliencePolicy {
            retry: RetryPolicy::default(),
            circuit_breaker: CircuitBreakerPolicy::default(),
            timeout_ms: DEFAULT_ATTEMPT_TIMEOUT_MS,
            budget_ms: DEFAULT_BUDGET_MS,
        }
    }
}

impl ResiliencePolicy {
    /// Checks every part; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        self.retry.validate()?;
        self.circuit_breaker.validate()?;
        for (name, value) in [("timeoutMs", self.timeout_ms), ("budgetMs", self.budget_ms)] {
            if !(1..=MAX_DURATION_MS).contains(&value) {
                return Err(format!(
                    "{name} must be between 1 and {MAX_DURATION_MS}, got {value}"
                ));
            }
        }
        Ok(())
    }
}

/// What one attempt is given.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Attempt number, from 1.
    pub number: u32,
    /// How long this attempt may take: the per-attempt timeout, or less when
    /// the budget has less left.
    pub timeout: Duration,
    /// Cancelled when the call is cancelled; the attempt should stop.
    pub cancel: CancellationToken,
}

/// Where a call's events go.
pub trait EventSink: Send + Sync {
    /// Receives one event. Must not block.
    fn emit(&self, event: ResilienceEvent);
}

impl<F: Fn(ResilienceEvent) + Send + Sync> EventSink for F {
    fn emit(&self, event: ResilienceEvent) {
        self(event)
    }
}

/// Discards events.
pub fn ignore_events(_: ResilienceEvent) {}

/// Who is calling and how to reach them.
pub struct Call<'a> {
    /// The circuit key (see [`CircuitBreakerPolicy::key`]).
    pub key: &'a str,
    /// Cancels the whole call.
    pub cancel: &'a CancellationToken,
    /// How long a cancelled attempt may keep running before it is dropped.
    pub cancel_grace: Duration,
    /// Extra time past its timeout before the chain drops an attempt. Zero
    /// for plain operations; an operation that enforces the timeout itself
    /// (the sandbox does, and reports what the agent did until then) gets a
    /// little so its own report wins the race.
    pub timeout_grace: Duration,
    /// Receives every decision.
    pub events: &'a dyn EventSink,
    /// What each attempt runs, recorded with its start: an agent
    /// component's digest (`sha256:…`).
    pub agent_digest: Option<&'a str>,
    /// Attempts made before (by a process that died, for a resumed
    /// execution): the first attempt here is numbered after them, and they
    /// count against `maxAttempts`. At least one attempt is always made.
    pub attempts_before: u32,
}

/// The chain: the process-wide breaker registry and the jitter source.
/// Cheap to clone; clones share the circuits.
#[derive(Clone)]
pub struct Resilience {
    breakers: Arc<BreakerRegistry>,
    rng: Arc<Mutex<fastrand::Rng>>,
}

impl Default for Resilience {
    fn default() -> Self {
        Resilience::new(fastrand::Rng::new())
    }
}

enum Ended<T, E> {
    Done(Result<T, E>),
    TimedOut,
    Cancelled,
}

impl Resilience {
    /// A chain with its own circuits and the given jitter source (seed it in
    /// tests for repeatable delays).
    pub fn new(rng: fastrand::Rng) -> Self {
        Resilience {
            breakers: Arc::new(BreakerRegistry::new()),
            rng: Arc::new(Mutex::new(rng)),
        }
    }

    /// The circuits, for reporting their states.
    pub fn breakers(&self) -> &BreakerRegistry {
        &self.breakers
    }

    fn jittered_delay(&self, retry: &RetryPolicy, failures: u32) -> Duration {
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        retry.delay(failures, &mut rng)
    }

    /// Runs `op` under `policy`: at most `retry.maxAttempts` attempts, each
    /// admitted by the circuit breaker and bounded by the attempt timeout,
    /// all within the budget.
    pub async fn run<T, E, F, Fut>(
        &self,
        policy: &ResiliencePolicy,
        call: Call<'_>,
        mut op: F,
    ) -> Result<T, ResilienceError<E>>
    where
        E: Coded,
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let budget_end = deadline_after(Duration::from_millis(policy.budget_ms));
        let per_attempt = Duration::from_millis(policy.timeout_ms);
        let breaker = &policy.circuit_breaker;
        let mut last: Option<AttemptError<E>> = None;
        let mut attempts = call.attempts_before;
        loop {
            if call.cancel.is_cancelled() {
                return Err(ResilienceError::Cancelled { attempts });
            }
            let left = budget_end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.budget_exhausted(policy, &call, attempts, last));
            }
            let (admission, transition) = self.breakers.acquire(call.key);
            if let Some(t) = transition {
                call.events.emit(ResilienceEvent::breaker(call.key, t));
            }
            let admission = match admission {
                Ok(a) => a,
                Err(rejection) => {
                    call.events.emit(ResilienceEvent::CallRejected {
                        key: call.key.to_string(),
                        retry_in_ms: rejection.retry_in.map(|d| d.as_millis() as u64),
                    });
                    return Err(ResilienceError::CircuitOpen {
                        key: call.key.to_string(),
                        retry_in: rejection.retry_in,
                        attempts,
                        last,
                    });
                }
            };

            attempts += 1;
            let timeout = per_attempt.min(left);
            call.events.emit(ResilienceEvent::AttemptStarted {
                attempt: attempts,
                timeout_ms: timeout.as_millis() as u64,
                probe: admission.probe,
                agent_digest: call.agent_digest.map(str::to_string),
            });
            let started = Instant::now();
            let attempt = Attempt {
                number: attempts,
                timeout,
                cancel: call.cancel.child_token(),
            };
            let ended = tokio::select! {
                result = op(attempt) => Ended::Done(result),
                _ = tokio::time::sleep(timeout + call.timeout_grace) => Ended::TimedOut,
                _ = cancelled_after(call.cancel, call.cancel_grace) => Ended::Cancelled,
            };
            let error = match ended {
                Ended::Done(Ok(value)) => {
                    self.finish(policy, &call, admission, Outcome::Success);
                    call.events.emit(ResilienceEvent::AttemptSucceeded {
                        attempt: attempts,
                        duration_ms: millis(started.elapsed()),
                    });
                    return Ok(value);
                }
                Ended::Cancelled => {
                    self.finish(policy, &call, admission, Outcome::Neutral);
                    return Err(ResilienceError::Cancelled { attempts });
                }
                Ended::Done(Err(e)) => AttemptError::Failed(e),
                Ended::TimedOut => AttemptError::TimedOut {
                    timeout_ms: timeout.as_millis() as u64,
                },
            };
            let code = error.code();
            let counted = breaker.counted_errors.contains(&code) && !error.caller_induced();
            self.finish(
                policy,
                &call,
                admission,
                if counted {
                    Outcome::Failure
                } else {
                    Outcome::Neutral
                },
            );
            call.events.emit(ResilienceEvent::AttemptFailed {
                attempt: attempts,
                code,
                message: error.to_string(),
                counted,
                duration_ms: millis(started.elapsed()),
            });
            if call.cancel.is_cancelled() {
                return Err(ResilienceError::Cancelled { attempts });
            }
            if !policy.retry.retries(code) {
                return Err(ResilienceError::Failed {
                    last: error,
                    attempts,
                    reason: StopReason::NotRetryable,
                });
            }
            if attempts >= policy.retry.max_attempts {
                return Err(ResilienceError::Failed {
                    last: error,
                    attempts,
                    reason: StopReason::AttemptsExhausted,
                });
            }
            let mut delay = self.jittered_delay(&policy.retry, attempts);
            if let Some(hint) = error.retry_after() {
                delay = delay.max(hint.min(Duration::from_millis(policy.retry.max_delay_ms)));
            }
            if deadline_after(delay) >= budget_end {
                return Err(self.budget_exhausted(policy, &call, attempts, Some(error)));
            }
            call.events.emit(ResilienceEvent::RetryScheduled {
                attempt: attempts + 1,
                delay_ms: delay.as_millis() as u64,
                reason: code,
            });
            last = Some(error);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = call.cancel.cancelled() => return Err(ResilienceError::Cancelled { attempts }),
            }
        }
    }

    fn finish(
        &self,
        policy: &ResiliencePolicy,
        call: &Call<'_>,
        admission: Admission,
        outcome: Outcome,
    ) {
        if let Some(t) = self
            .breakers
            .record(call.key, &policy.circuit_breaker, admission, outcome)
        {
            call.events.emit(ResilienceEvent::breaker(call.key, t));
        }
    }

    fn budget_exhausted<E>(
        &self,
        policy: &ResiliencePolicy,
        call: &Call<'_>,
        attempts: u32,
        last: Option<AttemptError<E>>,
    ) -> ResilienceError<E> {
        call.events.emit(ResilienceEvent::BudgetExhausted {
            budget_ms: policy.budget_ms,
            attempts,
        });
        ResilienceError::BudgetExhausted {
            budget_ms: policy.budget_ms,
            attempts,
            last,
        }
    }
}

/// Now plus `d`, saturating far in the future instead of overflowing.
fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

async fn cancelled_after(cancel: &CancellationToken, grace: Duration) {
    cancel.cancelled().await;
    tokio::time::sleep(grace).await;
}

impl<E: Coded> AttemptError<E> {
    fn code(&self) -> ErrorCode {
        match self {
            AttemptError::Failed(e) => e.code(),
            AttemptError::TimedOut { .. } => ErrorCode::Timeout,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            AttemptError::Failed(e) => e.retry_after(),
            AttemptError::TimedOut { .. } => None,
        }
    }

    fn caller_induced(&self) -> bool {
        match self {
            AttemptError::Failed(e) => e.caller_induced(),
            AttemptError::TimedOut { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests;
