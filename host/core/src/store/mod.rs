//! Where executions and their journals are kept.
//!
//! The [`Store`] trait is the seam: the embedded default is a SQLite file
//! ([`SqliteStore`], WAL mode) in the project's `.orchestr8/` folder; an
//! in-memory store ([`MemoryStore`]) serves tests; several nodes share a
//! PostgreSQL database ([`PostgresStore`]), which holds each execution
//! under one node's lease. Journal entries are append-only and
//! numbered per execution from 1; an entry is acknowledged once `append`
//! returns, and from then on survives a crash of the process.

mod memory;
mod postgresql;
mod sqlite;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use memory::MemoryStore;
pub use postgresql::{PostgresOptions, PostgresStore, migrate_database};
pub use sqlite::{SqliteStore, WAL_BOUND};

use crate::error::{Coded, ErrorCode};
use crate::execution::ExecutionStatus;
pub use crate::record::{JournalEntry, NewEntry};
use crate::record::{Note, Record};
use orchestr8_types::ExecutionId;

/// One execution, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRecord {
    /// The execution id.
    pub id: ExecutionId,
    /// The workflow's metadata id.
    pub workflow_id: String,
    /// The workflow's name.
    pub workflow_name: String,
    /// Where it is.
    pub status: ExecutionStatus,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The variables it ran with.
    pub input: Value,
    /// The execution result, once finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The process running it, to tell a live execution from one whose
    /// process died.
    pub owner_pid: u32,
    /// The workflow document it runs, as accepted: what a resume runs again.
    /// (`None` for executions recorded before documents were kept.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<Value>,
    /// The idempotency key it was started with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// A digest of the request that started it (workflow and input), to
    /// tell a repeated request from another one reusing its key.
    #[serde(skip)]
    pub request_hash: Option<String>,
}

/// Which executions [`Store::list_executions`] returns, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecutionQuery {
    /// Only executions with this status.
    pub status: Option<ExecutionStatus>,
    /// Only executions of this workflow: its metadata id or its name.
    pub workflow: Option<String>,
    /// Only executions started at or after this instant (as [`now`] writes
    /// it: RFC 3339, UTC, milliseconds).
    pub since: Option<String>,
    /// Only executions started before this instant (same form).
    pub until: Option<String>,
    /// Only executions older than this cursor (a page's `next`).
    pub before: Option<u64>,
    /// At most this many.
    pub limit: usize,
}

/// One execution in a list: what it is and where it is, without its input,
/// result or journal.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionSummary {
    /// The execution id.
    pub execution_id: ExecutionId,
    /// The workflow's metadata id.
    pub workflow_id: String,
    /// The workflow's name.
    pub workflow_name: String,
    /// Where it is.
    pub status: ExecutionStatus,
    /// When it was accepted (RFC 3339).
    pub started_at: String,
    /// When it ended (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// How long it ran, once finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// A page of executions, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionPage {
    /// The executions.
    pub executions: Vec<ExecutionSummary>,
    /// Pass as `before` for the next (older) page; `None` on the last.
    pub next: Option<u64>,
}

impl ExecutionQuery {
    /// Whether `record`, created `created`-th, is one this query selects
    /// (what the SQLite store's `WHERE` says, for stores that filter in
    /// memory).
    pub fn matches(&self, record: &ExecutionRecord, created: u64) -> bool {
        self.status.is_none_or(|s| s == record.status)
            && self
                .workflow
                .as_ref()
                .is_none_or(|w| *w == record.workflow_id || *w == record.workflow_name)
            && self.since.as_ref().is_none_or(|t| record.started_at >= *t)
            && self.until.as_ref().is_none_or(|t| record.started_at < *t)
            && self.before.is_none_or(|c| created < c)
    }
}

impl ExecutionRecord {
    /// The record as a list shows it.
    pub fn summary(&self) -> ExecutionSummary {
        ExecutionSummary {
            execution_id: self.id.clone(),
            workflow_id: self.workflow_id.clone(),
            workflow_name: self.workflow_name.clone(),
            status: self.status,
            started_at: self.started_at.clone(),
            finished_at: self.finished_at.clone(),
            duration_ms: self
                .result
                .as_ref()
                .and_then(|r| r.get("durationMs"))
                .and_then(Value::as_u64),
        }
    }
}

/// A value bound to a listing query's placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bound {
    Text(String),
    Int(i64),
}

/// The `WHERE` clause of a page of executions (empty without filters) with
/// numbered placeholders (`?1` or `$1`: `mark`), and the values they take,
/// the last being the `LIMIT` (one more than asked: the extra row only says
/// another page follows). Only the filters given are named, so that the
/// database seeks the cursor and the status in their indexes (`?1 IS NULL
/// OR …` made SQLite walk the creation index from the newest row: a page
/// deep down read every row above it).
pub(crate) fn listing_filters(query: &ExecutionQuery, mark: char) -> (String, Vec<Bound>) {
    let mut values: Vec<Bound> = Vec::new();
    let mut clauses: Vec<String> = Vec::new();
    let mut filter = |clause: &str, value: Bound| {
        values.push(value);
        clauses.push(clause.replace('#', &format!("{mark}{}", values.len())));
    };
    if let Some(status) = query.status {
        filter("status = #", Bound::Text(status.as_str().to_string()));
    }
    if let Some(workflow) = &query.workflow {
        filter(
            "(workflow_id = # OR workflow_name = #)",
            Bound::Text(workflow.clone()),
        );
    }
    if let Some(since) = &query.since {
        filter("started_at >= #", Bound::Text(since.clone()));
    }
    if let Some(until) = &query.until {
        filter("started_at < #", Bound::Text(until.clone()));
    }
    if let Some(before) = query.before {
        filter("created < #", Bound::Int(before as i64));
    }
    values.push(Bound::Int(query.limit as i64 + 1));
    let filters = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (filters, values)
}

/// A page from up to `limit + 1` executions, newest first, each with its
/// creation number: the extra one only says another page follows.
pub(crate) fn page(mut found: Vec<(ExecutionSummary, u64)>, limit: usize) -> ExecutionPage {
    let more = found.len() > limit;
    found.truncate(limit);
    let next = more
        .then(|| found.last().map(|(_, created)| *created))
        .flatten();
    ExecutionPage {
        executions: found.into_iter().map(|(summary, _)| summary).collect(),
        next,
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("storage error: {0}")]
    Database(String),
    /// No such execution.
    #[error("unknown execution `{0}`")]
    UnknownExecution(String),
    /// Another execution has this idempotency key.
    #[error("an execution with idempotency key `{0}` exists")]
    DuplicateKey(String),
    /// The execution is not interrupted, so it cannot be taken over.
    #[error(
        "execution `{id}` is {status}, not interrupted: only an execution whose process died can be resumed"
    )]
    NotResumable {
        /// The execution.
        id: String,
        /// Where it is.
        status: String,
    },
    /// This node no longer holds the execution (its lease expired, and
    /// another node may have taken it over): the write was refused.
    #[error(
        "this node no longer holds execution `{0}` (its lease expired; another node takes it over): the write was refused"
    )]
    LeaseLost(String),
}

impl Coded for StoreError {
    fn code(&self) -> ErrorCode {
        match self {
            StoreError::Database(_) => ErrorCode::Internal,
            StoreError::UnknownExecution(_) => ErrorCode::NotFound,
            StoreError::NotResumable { .. }
            | StoreError::DuplicateKey(_)
            | StoreError::LeaseLost(_) => ErrorCode::Conflict,
        }
    }
}

/// One write. [`Store::commit`] applies several in one transaction, which
/// is how the journal writer group-commits the changes of every running
/// execution.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Records a new execution.
    Create(Box<ExecutionRecord>),
    /// Moves a `pending` execution to `running` (it left the queue).
    Running(ExecutionId),
    /// Takes over an `interrupted` execution to go on with it: `running`
    /// again, owned by `owner_pid`. Fails with
    /// [`StoreError::NotResumable`] when it is not interrupted (another
    /// process took it first, or it is still running).
    Resume {
        /// The execution.
        execution_id: ExecutionId,
        /// The process that goes on with it.
        owner_pid: u32,
    },
    /// Appends entries, in order, to an execution's journal.
    Append {
        /// The execution.
        execution_id: ExecutionId,
        /// The entries.
        entries: Vec<NewEntry>,
    },
    /// Records how an execution ended.
    Finish {
        /// The execution.
        execution_id: ExecutionId,
        /// How it ended.
        status: ExecutionStatus,
        /// When (RFC 3339).
        finished_at: String,
        /// The execution result.
        result: Value,
    },
}

impl Change {
    /// The execution the change is about.
    pub fn execution_id(&self) -> &str {
        match self {
            Change::Create(record) => &record.id,
            Change::Running(id) => id,
            Change::Resume { execution_id, .. } => execution_id,
            Change::Append { execution_id, .. } | Change::Finish { execution_id, .. } => {
                execution_id
            }
        }
    }
}

/// How one change of a commit went: for an append, the sequence numbers of
/// its entries; empty for the others.
pub type Applied = Result<Vec<u64>, StoreError>;

/// Persistence of executions and journals.
pub trait Store: Send + Sync {
    /// Applies `changes` in order in one transaction, durable once it
    /// returns. Each change succeeds or fails on its own (a failed one
    /// leaves no trace and does not undo the others); the outer error means
    /// nothing was applied.
    fn commit(&self, changes: &[Change]) -> Result<Vec<Applied>, StoreError>;

    /// Records a new execution.
    fn create_execution(&self, record: &ExecutionRecord) -> Result<(), StoreError> {
        commit_one(self, Change::Create(Box::new(record.clone()))).map(drop)
    }

    /// Appends entries in order; returns their sequence numbers. Durable
    /// once it returns.
    fn append(&self, execution_id: &str, entries: &[NewEntry]) -> Result<Vec<u64>, StoreError> {
        commit_one(
            self,
            Change::Append {
                execution_id: execution_id.into(),
                entries: entries.to_vec(),
            },
        )
    }

    /// Moves a `pending` execution to `running` (it left the queue).
    fn mark_running(&self, id: &str) -> Result<(), StoreError> {
        commit_one(self, Change::Running(id.into())).map(drop)
    }

    /// Records how an execution ended.
    fn finish_execution(
        &self,
        id: &str,
        status: ExecutionStatus,
        finished_at: &str,
        result: &Value,
    ) -> Result<(), StoreError> {
        commit_one(
            self,
            Change::Finish {
                execution_id: id.into(),
                status,
                finished_at: finished_at.to_string(),
                result: result.clone(),
            },
        )
        .map(drop)
    }

    /// One execution.
    fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError>;
    /// Journal entries after `after`, at most `limit`.
    fn journal(&self, id: &str, after: u64, limit: usize) -> Result<Vec<JournalEntry>, StoreError>;
    /// The most recently started execution.
    fn last_execution(&self) -> Result<Option<String>, StoreError>;
    /// The executions `query` selects, newest first, a page at a time.
    fn list_executions(&self, query: &ExecutionQuery) -> Result<ExecutionPage, StoreError>;
    /// The execution started with idempotency key `key`, if any.
    fn execution_by_key(&self, key: &str) -> Result<Option<ExecutionRecord>, StoreError>;
    /// Frees the idempotency key of execution `id` (past its retention), so
    /// a new execution can take it.
    fn release_key(&self, id: &str) -> Result<(), StoreError>;
    /// Asks the process that runs execution `id` to cancel it: the
    /// request is recorded when the execution is still pending or running,
    /// and that process finds it through [`Store::cancel_requests`].
    /// Returns the execution as it is (`None`: no such execution).
    fn request_cancel(&self, id: &str, at: &str) -> Result<Option<ExecutionRecord>, StoreError>;
    /// The executions of process `owner_pid`, pending or running, whose
    /// cancellation was requested.
    fn cancel_requests(&self, owner_pid: u32) -> Result<Vec<String>, StoreError>;
    /// Marks executions left `running` by a process that is no longer
    /// alive (`alive` says) as `interrupted`, with a journal entry saying
    /// so; returns their ids.
    fn mark_interrupted(
        &self,
        at: &str,
        alive: &dyn Fn(u32) -> bool,
    ) -> Result<Vec<String>, StoreError>;

    /// Whether other nodes share this store: executions are then
    /// interrupted whenever a node dies, not only found so at start, and a
    /// server takes them over as they come.
    fn shared(&self) -> bool {
        false
    }

    /// Calls `committed` with the id of each execution whose journal
    /// another node sharing this store appended to, once that commit has
    /// landed (live event streams on this node wake up on it). Nothing on
    /// a store of its own: this process's journal writer is its only
    /// writer, and its bus says so.
    fn watch_commits(&self, committed: Box<dyn Fn(&str) + Send + Sync>) -> Result<(), StoreError> {
        drop(committed);
        Ok(())
    }

    /// This process stops using the store for good: a shared store's node
    /// gives its lease up, so other nodes take over what it leaves at once
    /// rather than when the lease would have expired.
    fn leave(&self) {}

    /// Executions this process was running that it no longer holds (a
    /// shared store's lease expired), each returned once: stop them, their
    /// writes are refused.
    fn lost(&self) -> Vec<String> {
        Vec::new()
    }
}

fn commit_one<S: Store + ?Sized>(store: &S, change: Change) -> Result<Vec<u64>, StoreError> {
    store
        .commit(std::slice::from_ref(&change))?
        .pop()
        .unwrap_or(Ok(Vec::new()))
}

/// Whether a process is running. On Linux it looks in `/proc`; elsewhere it
/// answers yes, so nothing is ever marked interrupted by mistake.
pub fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if cfg!(target_os = "linux") {
        // A killed process whose parent has not reaped it yet (common in
        // containers without an init) is a zombie: still in /proc, but dead.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
                .is_none_or(|state| !matches!(state, 'Z' | 'X')),
            Err(_) => false,
        }
    } else {
        true
    }
}

/// The journal entry that marks an interrupted execution.
pub(crate) fn interrupted_entry(at: &str) -> NewEntry {
    NewEntry {
        at: at.to_string(),
        record: Record::Note(Note::ExecutionInterrupted {
            reason: "the process running this execution stopped before it finished".into(),
        }),
    }
}

/// `text` (RFC 3339, a date and time with or without a zone or fraction,
/// read as UTC when it has none) in the form the stores keep, so it
/// compares as text: `None` when it is not a time.
pub fn stored_time(text: &str) -> Option<String> {
    let text = text.trim();
    let parsed = humantime::parse_rfc3339_weak(text)
        .or_else(|_| humantime::parse_rfc3339(text))
        .ok()?;
    Some(humantime::format_rfc3339_millis(parsed).to_string())
}

/// Whether the time `at` (as the store keeps times) is less than `age`
/// ago. A time that does not parse counts as long ago.
pub fn within(at: &str, age: std::time::Duration) -> bool {
    humantime::parse_rfc3339_weak(at).is_ok_and(|t| {
        // A time ahead of this clock (another machine's) is recent.
        std::time::SystemTime::now()
            .duration_since(t)
            .map_or(true, |ago| ago < age)
    })
}

/// Now, as RFC 3339 with milliseconds.
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests;
