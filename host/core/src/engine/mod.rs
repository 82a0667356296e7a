//! The engine: runs one execution of a validated workflow.
//!
//! A ready-queue scheduler over the dependency DAG: a step starts as soon as
//! all its dependencies have finished, never before, with at most
//! `maxConcurrentSteps` running at once; among ready steps, fewer
//! dependencies first, then document order. For each step: dependency rule
//! → condition → input mapping → input schema → the agent through the
//! resilience chain ([`StepRunner`]) → output schema → capture. `onError`
//! decides what a failure does; cancellation and the global timeout reach
//! running steps through their cancellation tokens, which the sandbox
//! honours after the grace period.
//!
//! The engine reports every decision as an [`ExecutionEvent`] through a
//! non-blocking sink; it never waits for an observer.

mod resume;
mod run;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use crate::execution::{ExecutionEvent, ExecutionStatus, StepStatus};
pub use resume::{Progress, ResumeError};

use crate::error::ErrorBody;
use crate::resilience::ResiliencePolicy;
use orchestr8_types::{AgentId, ExecutionId, StepId};

/// Where execution events go. Must not block.
pub type EventSink = Arc<dyn Fn(ExecutionEvent) + Send + Sync>;

/// One step's agent call, as the engine asks for it.
pub struct StepCall {
    /// The execution.
    pub execution_id: ExecutionId,
    /// The step (for a fallback run: the fallback step's id).
    pub step_id: StepId,
    /// The agent to call.
    pub agent_id: AgentId,
    /// The agent's configuration.
    pub config: Value,
    /// The input built by the mapping.
    pub input: Value,
    /// Retries, breaker, per-attempt timeout and budget.
    pub resilience: ResiliencePolicy,
    /// Cancelled when the step must stop.
    pub cancel: CancellationToken,
    /// How long a cancelled step may take to stop.
    pub cancel_grace: Duration,
    /// How long each attempt may wait for room to run
    /// (`resilienceBudget.queueTimeoutMs`).
    pub queue_timeout: Duration,
    /// Stop an attempt whose agent records nothing for this long
    /// (`policies.idleTimeoutMs`).
    pub idle_timeout: Option<Duration>,
    /// Attempts this step made before its execution was resumed: the next
    /// is numbered after them, and they count against `maxAttempts`.
    pub attempts_before: u32,
    /// Where the step reports resilience decisions and agent logs.
    pub events: EventSink,
}

/// How a step's agent call ended.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    /// The output, or the error in the shared shape.
    pub result: Result<Value, ErrorBody>,
    /// Attempts made.
    pub attempts: u32,
}

/// Runs the agent of one step. The real one goes through the sandbox and
/// the resilience chain; tests plug in fakes to check scheduling.
pub trait StepRunner: Send + Sync + 'static {
    /// Whether an agent with this id can be run (for validation).
    fn has_agent(&self, agent_id: &str) -> bool;

    /// Runs the call.
    fn run(&self, call: StepCall) -> Pin<Box<dyn Future<Output = StepOutcome> + Send + '_>>;

    /// Secret values the agents may see, to redact from the journal.
    fn secret_values(&self) -> Vec<String> {
        Vec::new()
    }

    /// The circuits its calls go through, when it has any: a resumed
    /// execution carries over the circuits its journal saw open.
    fn breakers(&self) -> Option<&crate::resilience::BreakerRegistry> {
        None
    }
}

/// One step's result.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    /// Where it ended.
    pub status: StepStatus,
    /// Its output (also when a fallback produced it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// Attempts made.
    pub attempts: u32,
    /// How long it ran.
    pub duration_ms: u64,
    /// Why it was skipped or cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Values kept by `output.capture`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub captured: BTreeMap<String, Value>,
    /// The fallback step that produced the output, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via_fallback: Option<String>,
}

impl StepResult {
    fn pending() -> Self {
        StepResult {
            status: StepStatus::Pending,
            output: None,
            error: None,
            attempts: 0,
            duration_ms: 0,
            reason: None,
            captured: BTreeMap::new(),
            via_fallback: None,
        }
    }
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionResult {
    /// The execution.
    pub execution_id: ExecutionId,
    /// How it ended.
    pub status: ExecutionStatus,
    /// Every step, by id.
    pub steps: BTreeMap<String, StepResult>,
    /// How long it took.
    pub duration_ms: u64,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// Runs executions. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    runner: Arc<dyn StepRunner>,
}

impl Engine {
    /// An engine running steps with `runner`.
    pub fn new(runner: Arc<dyn StepRunner>) -> Self {
        Engine { runner }
    }

    /// The step runner (to check agents during validation).
    pub fn runner(&self) -> &dyn StepRunner {
        self.runner.as_ref()
    }
}

#[cfg(test)]
mod tests;
