//! Where executions and their journals are kept.
//!
//! The [`Store`] trait is the seam: the embedded default is a SQLite file
//! ([`SqliteStore`], WAL mode) in the project's `.orchestr8/` folder; an
//! in-memory store ([`MemoryStore`]) serves tests; a shared database can
//! implement the same trait later. Journal entries are append-only and
//! numbered per execution from 1; an entry is acknowledged once `append`
//! returns, and from then on survives a crash of the process.

mod memory;
mod sqlite;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use memory::MemoryStore;
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
}

impl Coded for StoreError {
    fn code(&self) -> ErrorCode {
        match self {
            StoreError::Database(_) => ErrorCode::Internal,
            StoreError::UnknownExecution(_) => ErrorCode::NotFound,
        }
    }
}

/// One write. [`Store::commit`] applies several in one transaction, which
/// is how the journal writer group-commits the changes of every running
/// execution.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Records a new execution.
    Create(ExecutionRecord),
    /// Moves a `pending` execution to `running` (it left the queue).
    Running(ExecutionId),
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
        commit_one(self, Change::Create(record.clone())).map(drop)
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
    /// Marks executions left `running` by a process that is no longer
    /// alive (`alive` says) as `interrupted`, with a journal entry saying
    /// so; returns their ids.
    fn mark_interrupted(
        &self,
        at: &str,
        alive: &dyn Fn(u32) -> bool,
    ) -> Result<Vec<String>, StoreError>;
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
        std::path::Path::new(&format!("/proc/{pid}")).exists()
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

/// Now, as RFC 3339 with milliseconds.
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests;
