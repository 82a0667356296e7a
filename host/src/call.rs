//! The one way an agent is called, whatever calls it: a workflow step
//! ([`crate::runner`]), `orchestr8 agent call`, an agent microservice
//! (`POST /process`), a Claude Code tool (MCP), a test case.
//!
//! An agent is registered once with what does not change between calls
//! ([`RegisteredAgent`]: the compiled component, its limits and grants, its
//! default config). Each call ([`AgentCall`]) says what does: the input,
//! config overrides (merged key by key over the defaults), ids, resilience
//! policy, cancellation, who watches its logs. [`Invoker::call`] then runs
//! it the same way every time: the resilience chain
//! `retry(circuitBreaker(timeout(attempt)))`, each attempt a fresh sandbox
//! whose deadline is the attempt's timeout, and an outcome with every
//! attempt's logs, denials and measurements.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::error::Coded;
use crate::resilience::{Call, EventSink, Resilience, ResilienceError, ResiliencePolicy};
use crate::sandbox::{
    AgentObserver, DEFAULT_CANCEL_GRACE, DEFAULT_QUEUE_TIMEOUT, InvocationOutcome,
    InvocationRequest, InvokeError, LoadedAgent, Sandbox, SandboxPolicy, redact,
};
use orchestr8_types::{ExecutionId, StepId};

/// A loaded agent, the policy it runs under and its default config.
#[derive(Clone)]
pub struct RegisteredAgent {
    /// The compiled agent.
    pub agent: LoadedAgent,
    /// Its limits and grants.
    pub policy: SandboxPolicy,
    /// Its configuration wherever it runs (an object, from the project);
    /// a workflow step's `config` overrides it key by key.
    pub config: Value,
}

impl RegisteredAgent {
    /// `agent` under `policy`, with an empty default config.
    pub fn new(agent: LoadedAgent, policy: SandboxPolicy) -> Self {
        RegisteredAgent {
            agent,
            policy,
            config: Value::Object(Map::new()),
        }
    }

    /// The config of one call: the defaults, with `overrides`' keys on top.
    pub fn config_with(&self, overrides: &Value) -> Value {
        merge(&self.config, overrides)
    }
}

/// `defaults` with the top-level keys of `overrides` on top (whole values
/// replaced, not merged deeper: a step states a key completely).
fn merge(defaults: &Value, overrides: &Value) -> Value {
    let mut config = match defaults {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    if let Value::Object(over) = overrides {
        config.extend(over.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Value::Object(config)
}

/// One call of a registered agent: what changes from call to call.
#[derive(Debug, Clone)]
pub struct AgentCall {
    /// The input.
    pub input: Value,
    /// Config keys over the agent's defaults (an object; others are ignored).
    pub config: Value,
    /// The execution the call belongs to (a fresh id outside a workflow).
    pub execution_id: ExecutionId,
    /// The workflow step (none outside a workflow).
    pub step_id: StepId,
    /// Retries, breaker, per-attempt timeout and budget.
    pub resilience: ResiliencePolicy,
    /// Cancels the call.
    pub cancel: CancellationToken,
    /// How long a cancelled agent may keep running before it is stopped.
    pub cancel_grace: Duration,
    /// How long each attempt may wait for a sandbox slot and room in the
    /// memory budget before it fails with `OVERLOADED`.
    pub queue_timeout: Duration,
    /// Told of each log line and event as the agent records it.
    pub observer: Option<AgentObserver>,
    /// Attempts made before a resume (see [`Call::attempts_before`]).
    pub attempts_before: u32,
    /// Stop an attempt whose agent records nothing for this long.
    pub idle_timeout: Option<Duration>,
}

impl AgentCall {
    /// A call of `agent` with `input` outside any workflow: a fresh
    /// execution id, no config overrides, one attempt whose timeout is the
    /// agent's own deadline, no cancellation.
    pub fn new(agent: &RegisteredAgent, input: Value) -> Self {
        let mut resilience = ResiliencePolicy {
            timeout_ms: agent.policy.limits.timeout_ms,
            ..ResiliencePolicy::default()
        };
        resilience.retry.max_attempts = 1;
        AgentCall {
            input,
            config: Value::Object(Map::new()),
            execution_id: ExecutionId::new(),
            step_id: StepId::none(),
            resilience,
            cancel: CancellationToken::new(),
            cancel_grace: DEFAULT_CANCEL_GRACE,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
            observer: None,
            attempts_before: 0,
            idle_timeout: None,
        }
    }

    /// Up to `attempts` attempts (retryable failures retried with backoff).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.resilience.retry.max_attempts = attempts;
        self
    }
}

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

    /// Calls `agent`: its config merged with the call's, through the
    /// resilience chain, each attempt in a fresh sandbox. `events` hears the
    /// chain's decisions (attempts, retries, breaker changes).
    pub async fn call(
        &self,
        agent: &RegisteredAgent,
        call: AgentCall,
        events: &dyn EventSink,
    ) -> ResilientOutcome {
        let request = InvocationRequest {
            execution_id: call.execution_id,
            step_id: call.step_id,
            attempt: 1,
            config: agent.config_with(&call.config),
            input: call.input,
            cancel_grace: call.cancel_grace,
            queue_timeout: call.queue_timeout,
            observer: call.observer,
            idle_timeout: call.idle_timeout,
        };
        let (sandbox_policy, policy, cancel) = (&agent.policy, &call.resilience, &call.cancel);
        let agent = &agent.agent;
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
        let digest = format!("sha256:{}", agent.digest());
        let call = Call {
            key: &key,
            cancel,
            cancel_grace: request.cancel_grace,
            timeout_grace: SANDBOX_TIMEOUT_GRACE,
            events,
            agent_digest: Some(&digest),
            attempts_before: call.attempts_before,
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_step_config_overrides_the_agent_defaults_key_by_key() {
        let defaults = json!({"baseUrl": "https://a", "tokens": 5, "nested": {"x": 1}});
        let merged = merge(&defaults, &json!({"tokens": 9, "nested": {"y": 2}}));
        assert_eq!(
            merged,
            json!({"baseUrl": "https://a", "tokens": 9, "nested": {"y": 2}})
        );
        assert_eq!(merge(&defaults, &Value::Null), defaults);
        assert_eq!(merge(&Value::Null, &json!({"a": 1})), json!({"a": 1}));
    }
}
