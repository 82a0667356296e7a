//! What the HTTP interfaces take and answer: the request and response
//! types, from which the OpenAPI documents are generated. Below the
//! handlers and the document alike, so neither imports the other.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use orchestr8_host::engine::ExecutionStatus;
use orchestr8_host::ids::ExecutionId;
use orchestr8_host::resilience::BreakerState;
use orchestr8_host::store::{ExecutionSummary, JournalEntry};
use orchestr8_host::workflow::Issue;

/// `POST /workflows/execute` body: exactly one of `workflow` and
/// `workflowFile`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("oneOf" = [{"required": ["workflow"]}, {"required": ["workflowFile"]}]))]
pub struct ExecuteRequest {
    /// A workflow document (see the workflow JSON Schema); or
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, Value>>")]
    pub workflow: Option<Value>,
    /// a workflow file of the server's project, such as `workflows/hello.json`.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub workflow_file: Option<String>,
    /// Variables merged over the workflow's own.
    #[serde(default)]
    pub input: BTreeMap<String, Value>,
}

/// `?wait=true&timeoutMs=N` on execute.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecuteQuery {
    /// Wait for the execution to finish (bounded by the server's maximum).
    #[serde(default)]
    pub wait: bool,
    /// How long to wait, in milliseconds [default and maximum: the server's].
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// The answer to an accepted execution that is not finished.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    /// The execution id.
    pub execution_id: ExecutionId,
    /// `pending` or `running`; for a request repeating an idempotency key,
    /// the status of the execution the first one started.
    pub status: ExecutionStatus,
    /// Where to read its status.
    pub location: String,
}

/// The answer to a cancel request.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cancelling {
    /// The execution id.
    pub execution_id: ExecutionId,
    /// Always `cancelling`: the execution records the cancellation as it
    /// stops.
    pub status: String,
    /// Where to read its status.
    pub location: String,
}

/// `GET /executions/{id}`: what a list shows of it, and its input, steps
/// and error.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionView {
    /// Id, workflow, status and timings, as `GET /executions` lists them.
    #[serde(flatten)]
    pub summary: ExecutionSummary,
    /// The variables it ran with.
    pub input: Value,
    /// Each step that has started: status, output or error, attempts, duration.
    pub steps: BTreeMap<String, Value>,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// The workflow document it runs (its steps and their dependencies);
    /// absent for an execution recorded before documents were kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<Value>,
}

/// `GET /executions?status=…&workflow=…&since=…&until=…&limit=…&cursor=…`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only executions with this status.
    pub status: Option<ExecutionStatus>,
    /// Only executions of this workflow: its `metadata.id` or its name.
    pub workflow: Option<String>,
    /// Only executions started at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only executions started before this time (RFC 3339).
    pub until: Option<String>,
    /// At most this many, 1 to 1000 [default 50].
    #[serde(default = "default_list_limit")]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: usize,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

fn default_list_limit() -> usize {
    50
}

/// `GET /executions`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionList {
    /// The executions, newest first.
    pub executions: Vec<ExecutionSummary>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `?after=N&limit=M` on the journal.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JournalQuery {
    /// Entries after this sequence number [default 0].
    #[serde(default)]
    pub after: u64,
    /// At most this many entries, 1 to 1000 [default 100].
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: usize,
}

/// `?after=N` on the event stream.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Entries after this sequence number [default 0]; the
    /// `Last-Event-ID` header, when sent, takes its place.
    #[serde(default)]
    pub after: u64,
}

fn default_limit() -> usize {
    100
}

/// `GET /executions/{id}/journal`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JournalPage {
    /// The execution id.
    pub execution_id: ExecutionId,
    /// The entries, in order.
    #[schemars(with = "Vec<Value>")]
    pub entries: Vec<JournalEntry>,
    /// Pass as `after` for the next page; absent when this page is the end
    /// of what is recorded so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<u64>,
}

/// `GET /health`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok`, or `shutting-down`.
    pub status: String,
    /// The server's version.
    pub version: String,
    /// Executions running now.
    pub running: usize,
    /// Executions waiting to start.
    pub queued: usize,
    /// Agents this server can run.
    pub agents: usize,
}

/// `GET /health` of an agent service.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentHealth {
    /// `ok`, or `degraded` while the circuit is open.
    pub status: String,
    /// The agent's id.
    pub agent_id: String,
    /// The agent's version.
    pub version: String,
    /// `closed`, `open` or `half-open`.
    pub breaker: String,
}

/// `POST /workflows/validate` body: exactly one of `workflow` and
/// `workflowFile`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("oneOf" = [{"required": ["workflow"]}, {"required": ["workflowFile"]}]))]
pub struct ValidateRequest {
    /// The workflow document.
    pub workflow: Option<Value>,
    /// Or a workflow file of the server's project, relative to its root.
    pub workflow_file: Option<String>,
}

/// Whether a workflow can run here, checked against the agents this
/// server runs.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    /// True when it has no problem.
    pub valid: bool,
    /// Every problem, with its JSON path; empty when valid.
    pub issues: Vec<Issue>,
}

/// `GET /workflows`: the workflow files of the server's project.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowList {
    /// By file name; empty when the server has no project.
    pub workflows: Vec<ProjectWorkflow>,
}

/// One workflow file of the project.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectWorkflow {
    /// Its path, relative to the project's root: what `workflowFile` takes.
    pub file: String,
    /// Its `metadata.id`, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its `metadata.name`, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its `metadata.description`, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether it can run here, and why not.
    #[serde(flatten)]
    pub validation: Validation,
    /// A JSON Schema of its input: one property per variable of
    /// `context.variables`, typed by and defaulting to its value there.
    pub input_schema: Value,
}

/// `GET /agents`: the agents this server runs.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentList {
    /// By id.
    pub agents: Vec<AgentView>,
    /// Agents the project names that could not be loaded, with why.
    pub unavailable: Vec<UnavailableAgent>,
}

/// An agent the project names that could not be loaded.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnavailableAgent {
    /// Its id.
    pub id: String,
    /// Why it could not be loaded.
    pub error: String,
}

/// One agent: what it is, what bounds it, how its circuits are.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    /// Its id.
    pub id: String,
    /// Its version.
    pub version: String,
    /// What it does.
    pub description: String,
    /// The SHA-256 of its component, in hex.
    pub digest: String,
    /// Its limits per invocation.
    pub limits: AgentLimits,
    /// What it may reach (deny by default).
    pub grants: AgentGrants,
    /// Its circuit: the worst of its circuits' states (`closed` when none
    /// was used).
    pub breaker: BreakerState,
    /// Each circuit used so far (one per target when a step's breaker
    /// policy includes the target).
    pub circuits: Vec<CircuitView>,
    /// The JSON Schema of its input.
    pub input_schema: Value,
    /// The JSON Schema of its output.
    pub output_schema: Value,
}

/// An agent's limits per invocation.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentLimits {
    /// Wall-clock deadline, in milliseconds.
    pub timeout_ms: u64,
    /// Fuel: an upper bound on the instructions executed.
    pub fuel: u64,
    /// Largest linear memory, in bytes.
    pub memory_bytes: u64,
    /// Largest output, in bytes.
    pub output_bytes: u64,
    /// Most log and event bytes.
    pub log_bytes: u64,
    /// Invocations at once, when bounded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
}

/// What an agent may reach.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentGrants {
    /// Hosts it may send HTTP requests to.
    pub allowed_hosts: Vec<String>,
    /// Directories it sees.
    pub dirs: Vec<DirView>,
    /// Environment variables it may read, by name.
    pub env: Vec<String>,
    /// Secrets it may read, by name.
    pub secrets: Vec<String>,
}

/// A directory an agent sees.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirView {
    /// Where the agent sees it.
    pub guest_path: String,
    /// Whether it may change it.
    pub writable: bool,
}

/// One circuit breaker.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CircuitView {
    /// Its key: `cb:<agent>` or `cb:<agent>:<target>`.
    pub key: String,
    /// Its state.
    pub state: BreakerState,
}
