//! The real step runner: a workflow step's agent in the sandbox, through
//! the resilience chain. The engine knows only the [`StepRunner`] trait;
//! this is where steps meet the sandbox.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value};

use crate::error::Coded;
use crate::invoker::Invoker;
use crate::resilience::ResilienceEvent;
use crate::sandbox::{AgentObserver, AgentRecord, InvocationRequest, LoadedAgent, SandboxPolicy};
use orchestr8_core::engine::{ExecutionEvent, StepCall, StepOutcome, StepRunner};

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

/// Runs steps' agents with an [`Invoker`], looking agents up by id.
pub struct AgentStepRunner {
    invoker: Invoker,
    agents: HashMap<String, RegisteredAgent>,
}

impl AgentStepRunner {
    /// A runner for these agents, keyed by agent id.
    pub fn new(invoker: Invoker, agents: HashMap<String, RegisteredAgent>) -> Self {
        AgentStepRunner { invoker, agents }
    }
}

impl StepRunner for AgentStepRunner {
    fn has_agent(&self, agent_id: &str) -> bool {
        self.agents.contains_key(agent_id)
    }

    fn secret_values(&self) -> Vec<String> {
        self.agents
            .values()
            .flat_map(|a| a.policy.secret_values.values())
            .map(|v| v.expose().to_string())
            .collect()
    }

    fn run(&self, call: StepCall) -> Pin<Box<dyn Future<Output = StepOutcome> + Send + '_>> {
        Box::pin(async move {
            let Some(registered) = self.agents.get(&call.agent_id) else {
                return StepOutcome {
                    result: Err(crate::error::ErrorBody {
                        code: crate::error::ErrorCode::InvalidAgent,
                        message: format!("agent `{}` is not registered", call.agent_id),
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
                            step_id: step_id.clone(),
                            attempt,
                            line,
                        },
                        AgentRecord::Event(event) => ExecutionEvent::AgentEvent {
                            step_id: step_id.clone(),
                            attempt,
                            event,
                        },
                    });
                })
            };
            let request = InvocationRequest {
                execution_id: call.execution_id.clone(),
                step_id: call.step_id.clone(),
                attempt: 1,
                config: registered.config_with(&call.config),
                input: call.input.clone(),
                cancel_grace: call.cancel_grace,
                observer: Some(observer),
            };
            let step_id = call.step_id.clone();
            let events = call.events.clone();
            let sink = move |event: ResilienceEvent| {
                events(ExecutionEvent::Resilience {
                    step_id: step_id.clone(),
                    event,
                });
            };
            let outcome = self
                .invoker
                .invoke(
                    &registered.agent,
                    &registered.policy,
                    &call.resilience,
                    request,
                    &call.cancel,
                    &sink,
                )
                .await;
            let attempts = outcome.attempts.len() as u32;
            StepOutcome {
                result: outcome.result.map_err(|e| e.to_body()),
                attempts,
            }
        })
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
