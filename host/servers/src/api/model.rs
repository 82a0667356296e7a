//! What the HTTP interfaces take and answer: the request and response
//! types, from which the OpenAPI documents are generated. Below the
//! handlers and the document alike, so neither imports the other.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use orchestr8_host::engine::ExecutionStatus;
use orchestr8_host::ids::ExecutionId;
use orchestr8_host::store::{ExecutionSummary, JournalEntry};

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
