//! The workflow document: serde types, field names as in the original
//! orchestr8 format, so a workflow written for it reads the same here.
//!
//! Unknown fields are rejected (with their JSON path, see
//! [`super::parse`]); the JSON Schema published by `orchestr8 schema` is
//! generated from these types.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The major version of the workflow format this host reads.
pub const SCHEMA_MAJOR: u64 = 1;

/// A workflow: a DAG of agent steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Workflow {
    /// Semantic version of this workflow (`1.2.0`).
    pub version: String,
    /// Version of the workflow format; its major must be 1.
    pub schema_version: String,
    /// SHA-256 of the format's schema, as 64 hex digits. Checked when
    /// present, not required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_hash: Option<String>,
    /// Who the workflow is.
    pub metadata: Metadata,
    /// Variables, environment and secret references.
    #[serde(default)]
    pub context: WorkflowContext,
    /// The steps; at least one.
    pub steps: Vec<Step>,
    /// Workflow-wide policies; each step may override them field by field.
    #[serde(default)]
    pub policies: GlobalPolicies,
}

/// Identity and description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// A UUID.
    pub id: String,
    /// 1–255 characters.
    pub name: String,
    /// At most 1000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// RFC 3339 timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// RFC 3339 timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// Data the steps can refer to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkflowContext {
    /// Values for `${variables.<name>}`; `orchestr8 run --input` adds to them.
    #[serde(default)]
    pub variables: BTreeMap<String, Value>,
    /// Values for `${env.<name>}`: only what is listed here is visible.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// `secret://path` references; values never appear in the document.
    #[serde(default)]
    pub secret_refs: Vec<String>,
}

/// What to do when a step fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// The execution fails; running steps are cancelled, pending ones never start.
    #[default]
    Fail,
    /// The step is recorded failed and the execution goes on.
    Continue,
    /// Retry with the step's retry policy (3 attempts when it has none), then fail.
    Retry,
    /// Run `fallbackStepId` with this step's input; its output stands for this step's.
    Fallback,
}

/// One agent call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Step {
    /// Unique id: letters, digits, `_` and `-`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What the step is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The agent to call.
    pub agent: AgentRef,
    /// How the agent's input is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<StepInput>,
    /// What is checked and kept of the output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<StepOutput>,
    /// Steps that must finish first.
    #[serde(default)]
    pub dependencies: Vec<String>,
    /// Run only if / unless a JMESPath expression holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    /// Overrides of the global policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<StepPolicies>,
    /// What a failure does.
    #[serde(default)]
    pub on_error: OnError,
    /// The step run when this one fails and `onError` is `fallback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_step_id: Option<String>,
}

/// Which agent a step calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentRef {
    /// `@scope/name`.
    pub id: String,
    /// `1.2.3`, `^1.2.3`, `~1.2.3` or `latest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Configuration passed to the agent with every invocation (an object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
}

/// How a step's input is built.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepInput {
    /// Input field → value. Strings may hold `${…}` expressions; a string
    /// that is exactly one expression takes the referenced value with its
    /// JSON type. Objects and arrays are mapped recursively.
    #[serde(default)]
    pub mapping: BTreeMap<String, Value>,
    /// JSON Schema the built input must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
}

/// What is checked and kept of a step's output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepOutput {
    /// JSON Schema the output must match; a mismatch fails the step with
    /// `INVALID_OUTPUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Name → path into the output, kept as the step's captured values.
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
}

/// A JMESPath condition over `{steps, variables}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Run only if this is truthy.
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub if_: Option<String>,
    /// Skip if this is truthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unless: Option<String>,
}

/// Per-step overrides. `retry` and `circuitBreaker` override the global
/// policy field by field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StepPolicies {
    /// Per-attempt timeout in milliseconds (at least 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Retry fields to override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::resilience::RetryPolicy>")]
    pub retry: Option<serde_json::Map<String, Value>>,
    /// Circuit-breaker fields to override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::resilience::CircuitBreakerPolicy>")]
    pub circuit_breaker: Option<serde_json::Map<String, Value>>,
    /// Template of the idempotency key (recorded, not yet used for caching).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// A heartbeat: an attempt whose agent records no log line or progress
    /// event for this many milliseconds is stopped with `TIMEOUT` (activity
    /// keeps it going up to its per-attempt timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100))]
    pub idle_timeout_ms: Option<u64>,
}

/// Workflow-wide policies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct GlobalPolicies {
    /// Timeouts.
    pub timeout: TimeoutPolicy,
    /// Retry and circuit breaker defaults.
    pub resilience: ResilienceSection,
    /// Parallelism.
    pub concurrency: ConcurrencyPolicy,
    /// Time budgets.
    pub resilience_budget: BudgetPolicy,
    /// Cancellation.
    pub cancellation: CancellationPolicy,
    /// Makes executions of the workflow idempotent: a template rendered
    /// with the request's variables (`order-${variables.orderId}`). A
    /// `POST /workflows/execute` whose key an execution of the last 24 hours
    /// has answers that execution instead of starting another.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub idempotency_key: Option<String>,
}

/// Timeouts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct TimeoutPolicy {
    /// The whole execution, in milliseconds.
    pub global: u64,
    /// Each attempt of each step, in milliseconds.
    pub per_step: u64,
}

impl Default for TimeoutPolicy {
    fn default() -> Self {
        TimeoutPolicy {
            global: 300_000,
            per_step: 30_000,
        }
    }
}

/// The only composition this host runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CompositionOrder {
    /// `retry(circuitBreaker(timeout(op)))`.
    #[default]
    RetryCbTimeout,
}

/// Retry and circuit-breaker defaults for every step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ResilienceSection {
    /// Retry policy.
    pub retry: crate::resilience::RetryPolicy,
    /// Circuit breaker policy.
    pub circuit_breaker: crate::resilience::CircuitBreakerPolicy,
    /// Must be `retry-cb-timeout`.
    pub composition_order: CompositionOrder,
}

/// Parallelism.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ConcurrencyPolicy {
    /// Steps running at once (1–10).
    pub max_concurrent_steps: u32,
    /// Whether cancelling the execution stops running steps (always true here).
    pub abort_on_signal: bool,
    /// Time allowed for cleanup after the execution ends, in milliseconds.
    pub cleanup_timeout_ms: u64,
}

impl Default for ConcurrencyPolicy {
    fn default() -> Self {
        ConcurrencyPolicy {
            max_concurrent_steps: 10,
            abort_on_signal: true,
            cleanup_timeout_ms: 5_000,
        }
    }
}

/// Time budgets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct BudgetPolicy {
    /// Budget of one step call, attempts and backoff included, in milliseconds.
    pub per_execution_ms: u64,
    /// Longest wait of each attempt for room to run (a turn in its agent's
    /// bulkhead, a sandbox slot, room in the host's memory budget), in
    /// milliseconds; past it the attempt fails with OVERLOADED.
    pub queue_timeout_ms: u64,
    /// Longest time from the request that started the execution to its end,
    /// time spent queued included, in milliseconds; past it the execution
    /// ends with BUDGET_EXHAUSTED. The execution ends at whichever of this
    /// and `timeout.global` comes first.
    pub total_system_budget_ms: u64,
}

impl Default for BudgetPolicy {
    fn default() -> Self {
        BudgetPolicy {
            per_execution_ms: 90_000,
            queue_timeout_ms: 30_000,
            total_system_budget_ms: 120_000,
        }
    }
}

/// Cancellation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CancellationPolicy {
    /// How long running steps may take to stop after a cancel, in milliseconds.
    pub grace_period: u64,
    /// Whether the cancel reaches running agents (always true here).
    pub propagate: bool,
}

impl Default for CancellationPolicy {
    fn default() -> Self {
        CancellationPolicy {
            grace_period: 5_000,
            propagate: true,
        }
    }
}
