//! An agent invocation through the resilience chain.
//!
//! This is where the two halves meet: the chain decides about attempts,
//! the sandbox runs each one. The attempt's timeout becomes the sandbox's
//! deadline, so a CPU-bound agent is stopped by the sandbox itself, and the
//! attempt's cancellation token reaches the running agent.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::error::Coded;
use crate::resilience::{Call, EventSink, Resilience, ResilienceError, ResiliencePolicy};
use crate::sandbox::{
    InvocationOutcome, InvocationRequest, InvokeError, LoadedAgent, Sandbox, SandboxPolicy, redact,
};

/// How long past an attempt's timeout the chain waits for the sandbox to
/// report the timeout itself, with the agent's logs up to then.
const SANDBOX_TIMEOUT_GRACE: Duration = Duration::from_millis(250);

/// Runs agents through the resilience chain. Cheap to clone.
#[derive(Clone)]
pub struct Invoker {
    sandbox: Sandbox,
    resilience: Resilience,
}

/// Everything a resilient invocation produced.
#[derive(Debug)]
pub struct ResilientOutcome {
    /// The output, or why there is none after every attempt.
    pub result: Result<Value, ResilienceError<InvokeError>>,
    /// Each attempt that reached the sandbox, in order, with its logs,
    /// denials and measurements.
    pub attempts: Vec<InvocationOutcome>,
}

impl Invoker {
    /// Combines a sandbox and a chain (whose circuits it shares with every
    /// other clone).
    pub fn new(sandbox: Sandbox, resilience: Resilience) -> Self {
        Invoker {
            sandbox,
            resilience,
        }
    }

    /// The sandbox.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The chain.
    pub fn resilience(&self) -> &Resilience {
        &self.resilience
    }

    /// Invokes `agent` with retries, its circuit breaker and timeouts.
    /// `request.attempt` is set for each attempt.
    pub async fn invoke(
        &self,
        agent: &LoadedAgent,
        sandbox_policy: &SandboxPolicy,
        policy: &ResiliencePolicy,
        request: InvocationRequest,
        cancel: &CancellationToken,
        events: &dyn EventSink,
    ) -> ResilientOutcome {
        // The target of an agent's calls is what it may reach.
        let target = sandbox_policy
            .grants
            .allowed_hosts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let key = policy.circuit_breaker.key(&agent.info().id, Some(&target));
        let attempts: Arc<Mutex<Vec<InvocationOutcome>>> = Arc::default();
        let call = Call {
            key: &key,
            cancel,
            cancel_grace: request.cancel_grace,
            timeout_grace: SANDBOX_TIMEOUT_GRACE,
            events,
        };
        let result = self
            .resilience
            .run(policy, call, |attempt| {
                let mut limited = sandbox_policy.clone();
                limited.limits.timeout_ms = limited
                    .limits
                    .timeout_ms
                    .min(attempt.timeout.as_millis() as u64)
                    .max(1);
                let mut request = request.clone();
                request.attempt = attempt.number;
                let attempts = attempts.clone();
                let span = tracing::info_span!(
                    "attempt",
                    execution_id = %request.execution_id,
                    step_id = %request.step_id,
                    agent_id = %agent.info().id,
                    attempt = attempt.number,
                );
                let run = async move {
                    let outcome = self
                        .sandbox
                        .invoke(agent, &limited, request, &attempt.cancel)
                        .await;
                    if let Err(e) = &outcome.result {
                        let secrets: Vec<String> = limited
                            .secret_values
                            .values()
                            .map(|s| s.expose().to_string())
                            .collect();
                        orchestr8_core::trace::mark_failed(
                            &tracing::Span::current(),
                            e.code().as_str(),
                            &redact(e.to_string(), &secrets),
                        );
                    }
                    let result = outcome.result.clone();
                    attempts
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(outcome);
                    result
                };
                tracing::Instrument::instrument(run, span)
            })
            .await;
        let attempts =
            std::mem::take(&mut *attempts.lock().unwrap_or_else(PoisonError::into_inner));
        ResilientOutcome { result, attempts }
    }
}
