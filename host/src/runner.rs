//! The real step runner: a workflow step's agent in the sandbox, through
//! the resilience chain. The engine knows only the [`StepRunner`] trait;
//! this is where steps meet the sandbox.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use orchestr8_core::engine::{ExecutionEvent, StepCall, StepOutcome, StepRunner};

use crate::call::{AgentCall, Invoker, RegisteredAgent};
use crate::error::Coded;
use crate::registry::AgentRegistry;
use crate::resilience::ResilienceEvent;
use crate::sandbox::{AgentObserver, AgentRecord};
use crate::workflow::AgentCatalog;

/// Runs steps' agents with an [`Invoker`], looking agents up by id in the
/// registry as it is when each step starts (a step keeps that version to
/// its end, retries included).
pub struct AgentStepRunner {
    invoker: Invoker,
    agents: Arc<AgentRegistry>,
}

impl AgentStepRunner {
    /// A runner for these agents, keyed by agent id.
    pub fn new(invoker: Invoker, agents: HashMap<String, RegisteredAgent>) -> Self {
        Self::over(invoker, Arc::new(AgentRegistry::fixed(agents)))
    }

    /// A runner for the agents of `registry`, as they change.
    pub fn over(invoker: Invoker, agents: Arc<AgentRegistry>) -> Self {
        AgentStepRunner { invoker, agents }
    }
}

impl StepRunner for AgentStepRunner {
    fn has_agent(&self, agent_id: &str) -> bool {
        self.agents.current().contains_key(agent_id)
    }

    fn breakers(&self) -> Option<&crate::resilience::BreakerRegistry> {
        Some(self.invoker.resilience().breakers())
    }

    fn secret_values(&self) -> Vec<String> {
        self.agents
            .current()
            .values()
            .flat_map(|a| a.policy.secret_values.values())
            .map(|v| v.expose().to_string())
            .collect()
    }

    fn run(&self, call: StepCall) -> Pin<Box<dyn Future<Output = StepOutcome> + Send + '_>> {
        Box::pin(async move {
            let agents = self.agents.current();
            let Some(registered) = agents.get(call.agent_id.as_str()) else {
                let hint = agents
                    .unknown_hint(call.agent_id.as_str())
                    .map(|h| format!(": {h}"))
                    .unwrap_or_default();
                return StepOutcome {
                    result: Err(crate::error::ErrorBody {
                        code: crate::error::ErrorCode::InvalidAgent,
                        message: format!("agent `{}` is not registered{hint}", call.agent_id),
                        details: None,
                    }),
                    attempts: 0,
                };
            };
            // Logs and events reach the journal as the agent records them,
            // attributed to their attempt, between that attempt's start and
            // end entries.
            let observer = {
                let step_id = call.step_id.clone();
                let events = call.events.clone();
                AgentObserver::new(move |attempt, record| {
                    events(match record {
                        AgentRecord::Log(line) => ExecutionEvent::AgentLog {
                            step_id: step_id.to_string(),
                            attempt,
                            line,
                        },
                        AgentRecord::Event(event) => ExecutionEvent::AgentEvent {
                            step_id: step_id.to_string(),
                            attempt,
                            event,
                        },
                        AgentRecord::Exchange(recorded) => ExecutionEvent::HttpRecorded {
                            step_id: step_id.to_string(),
                            attempt,
                            exchange: serde_json::to_value(&recorded.exchange)
                                .unwrap_or(serde_json::Value::Null),
                            complete: recorded.complete,
                        },
                        AgentRecord::Inputs(inputs) => ExecutionEvent::InputsRecorded {
                            step_id: step_id.to_string(),
                            attempt,
                            inputs: serde_json::to_value(&inputs)
                                .unwrap_or(serde_json::Value::Null),
                        },
                    });
                })
            };
            let agent_call = AgentCall {
                input: call.input,
                config: call.config,
                execution_id: call.execution_id,
                step_id: call.step_id.clone(),
                resilience: call.resilience,
                cancel: call.cancel,
                cancel_grace: call.cancel_grace,
                queue_timeout: call.queue_timeout,
                observer: Some(observer),
                attempts_before: call.attempts_before,
                idle_timeout: call.idle_timeout,
            };
            let step_id = call.step_id;
            let events = call.events.clone();
            let sink = move |event: ResilienceEvent| {
                events(ExecutionEvent::Resilience {
                    step_id: step_id.to_string(),
                    event,
                });
            };
            let before = agent_call.attempts_before;
            let outcome = self.invoker.call(registered, agent_call, &sink).await;
            let attempts = before + outcome.attempts.len() as u32;
            StepOutcome {
                result: outcome.result.map_err(|e| e.to_body()),
                attempts,
            }
        })
    }
}
