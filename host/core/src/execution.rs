//! An execution's status: what the engine reports, the store keeps and
//! every interface shows. Below both the engine and the store, so that
//! persistence does not depend on the scheduler.

use serde::{Deserialize, Serialize};

/// How an execution ended (or where it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutionStatus {
    /// Accepted, not started.
    Pending,
    /// Running.
    Running,
    /// Every step succeeded, was skipped, or failed under `continue`.
    Succeeded,
    /// A step failed under `fail`.
    Failed,
    /// Cancelled on request.
    Cancelled,
    /// The global timeout passed.
    TimedOut,
    /// The process running it died; found at the next start.
    Interrupted,
}

impl ExecutionStatus {
    /// Whether the execution has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, ExecutionStatus::Pending | ExecutionStatus::Running)
    }

    /// The status as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Pending => "pending",
            ExecutionStatus::Running => "running",
            ExecutionStatus::Succeeded => "succeeded",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Cancelled => "cancelled",
            ExecutionStatus::TimedOut => "timed-out",
            ExecutionStatus::Interrupted => "interrupted",
        }
    }

    /// Parses what [`ExecutionStatus::as_str`] printed.
    pub fn parse(text: &str) -> Option<Self> {
        [
            ExecutionStatus::Pending,
            ExecutionStatus::Running,
            ExecutionStatus::Succeeded,
            ExecutionStatus::Failed,
            ExecutionStatus::Cancelled,
            ExecutionStatus::TimedOut,
            ExecutionStatus::Interrupted,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}
