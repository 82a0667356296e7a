//! What an execution's journal says was done, so a resumed execution goes
//! on from there instead of starting over.
//!
//! A step recorded `step-succeeded` is done: its output comes from the
//! journal and it never runs again. A step recorded `step-failed` or
//! `step-skipped` is done too (a failure that stopped the execution stops
//! the resumed one the same way). A step that had started but not ended
//! when the process died runs again, as a new attempt numbered after those
//! recorded; its attempts count against its `maxAttempts`. Time counts as
//! the execution ran: from its first entry to its last before the crash,
//! then again from the resume; the time the process was down is not
//! counted against its timeouts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use crate::engine::{ExecutionEvent, StepResult, StepStatus};
use crate::error::{Coded, ErrorCode};
use crate::record::{JournalEntry, Record};
use crate::resilience::{BreakerState, ResilienceEvent};
use crate::store::StoreError;
use crate::workflow::WorkflowError;

/// Why an execution cannot be resumed.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// No such execution.
    #[error("unknown execution `{0}` (orchestr8 executions lists them)")]
    Unknown(String),
    /// It is not interrupted: it runs in a live process, or it ended.
    #[error(
        "execution `{id}` is {status}: only an execution whose process died (interrupted) can be resumed"
    )]
    NotInterrupted {
        /// The execution.
        id: String,
        /// Where it is.
        status: String,
    },
    /// It ended (its journal has `execution-finished`).
    #[error("execution `{id}` already ended: {status}")]
    Finished {
        /// The execution.
        id: String,
        /// How.
        status: String,
    },
    /// It was recorded by a version that did not keep workflow documents.
    #[error(
        "execution `{0}` was recorded without its workflow document (by an older orchestr8): it cannot be resumed; run the workflow again"
    )]
    NoDocument(String),
    /// Its workflow no longer checks out here (an agent is missing).
    #[error("execution `{id}` cannot go on here: {source}")]
    Workflow {
        /// The execution.
        id: String,
        /// Why.
        source: WorkflowError,
    },
    /// Its journal has no beginning to go on from.
    #[error("execution `{0}` has no journal to resume from")]
    NoJournal(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for ResumeError {
    fn code(&self) -> ErrorCode {
        match self {
            ResumeError::Unknown(_) => ErrorCode::NotFound,
            ResumeError::NotInterrupted { .. } | ResumeError::Finished { .. } => {
                ErrorCode::Conflict
            }
            ResumeError::NoDocument(_) | ResumeError::NoJournal(_) => ErrorCode::Conflict,
            ResumeError::Workflow { source, .. } => source.code(),
            ResumeError::Store(e) => e.code(),
        }
    }
}

/// An execution's progress, read back from its journal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Steps that ended, by id, as they ended.
    pub done: BTreeMap<String, StepResult>,
    /// Attempts already started by steps that had not ended, by id.
    pub attempts: BTreeMap<String, u32>,
    /// How long the execution had run when its last entry was written.
    pub elapsed: Duration,
    /// How long ago that last entry was written (the time it was down).
    pub down: Duration,
    /// Whether its cancellation had been requested: the resumed execution
    /// ends cancelled.
    pub cancelling: bool,
    /// Steps among `done` whose failure the execution went on from
    /// (`onError: continue`, or a fallback that had not ended yet).
    pub continued: BTreeSet<String>,
    /// Circuits the journal last saw open: by key, the step whose call
    /// opened it and how long ago.
    pub open_circuits: BTreeMap<String, (String, Duration)>,
}

fn time(at: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(at).ok()
}

impl Progress {
    /// Reads the journal of execution `id`, in order.
    pub fn from_journal(id: &str, entries: &[JournalEntry]) -> Result<Progress, ResumeError> {
        // The journal's own notes (the interruption, marked when it was
        // found) say nothing of how long the execution ran.
        let mut events = entries
            .iter()
            .filter(|e| matches!(e.record, Record::Event(_)));
        let (Some(first), Some(last)) = (events.clone().next(), events.next_back()) else {
            return Err(ResumeError::NoJournal(id.to_string()));
        };
        let mut progress = Progress::default();
        if let (Some(start), Some(end)) = (time(&first.at), time(&last.at)) {
            progress.elapsed = end.duration_since(start).unwrap_or_default();
            progress.down = SystemTime::now().duration_since(end).unwrap_or_default();
        }
        for entry in entries {
            let Record::Event(event) = &entry.record else {
                continue;
            };
            progress.apply(id, event)?;
            if let ExecutionEvent::Resilience {
                step_id,
                event: ResilienceEvent::BreakerStateChanged { key, to, .. },
            } = event
            {
                match (to, time(&entry.at)) {
                    (BreakerState::Open, Some(at)) => {
                        let ago = SystemTime::now().duration_since(at).unwrap_or_default();
                        progress
                            .open_circuits
                            .insert(key.clone(), (step_id.clone(), ago));
                    }
                    _ => {
                        progress.open_circuits.remove(key);
                    }
                }
            }
        }
        Ok(progress)
    }

    fn apply(&mut self, id: &str, event: &ExecutionEvent) -> Result<(), ResumeError> {
        match event {
            ExecutionEvent::ExecutionFinished { status, .. } => {
                return Err(ResumeError::Finished {
                    id: id.to_string(),
                    status: status.as_str().to_string(),
                });
            }
            ExecutionEvent::CancellationRequested { .. } => self.cancelling = true,
            // Started (again, as a fallback's original is not): whatever
            // it had ended as no longer holds.
            ExecutionEvent::StepStarted { step_id, .. } => {
                self.done.remove(step_id);
                self.continued.remove(step_id);
            }
            ExecutionEvent::Resilience {
                step_id,
                event: ResilienceEvent::AttemptStarted { attempt, .. },
            } => {
                let made = self.attempts.entry(step_id.clone()).or_default();
                *made = (*made).max(*attempt);
            }
            ExecutionEvent::StepSucceeded {
                step_id,
                output,
                attempts,
                duration_ms,
                via_fallback,
            } => {
                let mut result = ended(StepStatus::Succeeded, *attempts, *duration_ms);
                result.output = Some(output.clone());
                result.via_fallback = via_fallback.clone();
                self.finish(step_id, result);
            }
            ExecutionEvent::StepFailed {
                step_id,
                error,
                attempts,
                duration_ms,
                continued,
            } => {
                let mut result = ended(StepStatus::Failed, *attempts, *duration_ms);
                result.error = Some(error.clone());
                self.finish(step_id, result);
                if *continued {
                    self.continued.insert(step_id.clone());
                }
            }
            // Skipped because the execution was ending: it had not decided
            // anything about the step, so the resumed execution will.
            ExecutionEvent::StepSkipped { step_id, reason } if reason != "execution-ended" => {
                let mut result = ended(StepStatus::Skipped, 0, 0.0);
                result.reason = Some(reason.clone());
                self.finish(step_id, result);
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self, step_id: &str, result: StepResult) {
        self.attempts.remove(step_id);
        self.continued.remove(step_id);
        self.done.insert(step_id.to_string(), result);
    }
}

fn ended(status: StepStatus, attempts: u32, duration_ms: f64) -> StepResult {
    StepResult {
        status,
        attempts,
        duration_ms: duration_ms as u64,
        ..StepResult::pending()
    }
}
