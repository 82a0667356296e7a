//! What an execution is and reports: its status, its steps' statuses, and
//! one typed event per step, attempt and decision. The engine produces
//! them, the journal keeps them, every interface shows them; they live
//! below all of these, so that persistence does not depend on the
//! scheduler.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use orchestr8_types::records::{AgentEvent, AgentLogLine};

use crate::error::ErrorBody;
use crate::resilience::ResilienceEvent;

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

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    /// Not started.
    Pending,
    /// Running.
    Running,
    /// Finished with an output.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Not run: its condition was false, a dependency did not complete, or
    /// the execution ended first.
    Skipped,
    /// Stopped by cancellation or by another step's failure.
    Cancelled,
}

/// One thing that happened in an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum ExecutionEvent {
    /// The execution started.
    ExecutionStarted {
        /// The workflow's metadata id.
        workflow_id: String,
        /// The workflow's name.
        workflow_name: String,
        /// Number of steps.
        steps: usize,
    },
    /// The execution goes on after its process died, in another process,
    /// from what its journal recorded.
    ExecutionResumed {
        /// Steps that had ended: not run again.
        restored: Vec<String>,
        /// Steps that were running: run again, as new attempts.
        rerun: Vec<String>,
        /// How long it had run before (counted against its timeouts).
        ran_ms: u64,
        /// How long it was down (not counted).
        down_ms: u64,
        /// The process that goes on with it.
        owner_pid: u32,
    },
    /// A step's dependencies are done and it is about to run.
    StepStarted {
        /// The step.
        step_id: String,
        /// The agent it calls.
        agent_id: String,
        /// The input built for it.
        input: Value,
    },
    /// A step did not run.
    StepSkipped {
        /// The step.
        step_id: String,
        /// Why: `condition-not-met`, `dependency-not-completed`,
        /// `fallback-not-needed`, `execution-ended`.
        reason: String,
    },
    /// A step produced its output.
    StepSucceeded {
        /// The step.
        step_id: String,
        /// Its output.
        output: Value,
        /// Attempts it took.
        attempts: u32,
        /// How long it took, in milliseconds (to the microsecond).
        duration_ms: f64,
        /// When a fallback produced the output: the fallback's step id.
        #[serde(skip_serializing_if = "Option::is_none")]
        via_fallback: Option<String>,
    },
    /// A step failed.
    StepFailed {
        /// The step.
        step_id: String,
        /// Why.
        error: ErrorBody,
        /// Attempts it took.
        attempts: u32,
        /// How long it took, in milliseconds (to the microsecond).
        duration_ms: f64,
        /// Whether the execution goes on (`onError: continue`).
        continued: bool,
    },
    /// A running step was stopped.
    StepCancelled {
        /// The step.
        step_id: String,
        /// Why.
        reason: String,
    },
    /// A decision of the resilience chain for a step.
    Resilience {
        /// The step.
        step_id: String,
        /// The decision.
        event: ResilienceEvent,
    },
    /// A log line of the step's agent.
    AgentLog {
        /// The step.
        step_id: String,
        /// The attempt that logged it.
        attempt: u32,
        /// The line.
        line: AgentLogLine,
    },
    /// A progress event of the step's agent.
    AgentEvent {
        /// The step.
        step_id: String,
        /// The attempt that emitted it.
        attempt: u32,
        /// The event.
        event: AgentEvent,
    },
    /// An outbound HTTP exchange of the step's agent, recorded so the step
    /// can be replayed without the network.
    HttpRecorded {
        /// The step.
        step_id: String,
        /// The attempt that made it.
        attempt: u32,
        /// The request (method, URL) and the response (status, headers,
        /// body as text), in the shape of a test fixture.
        exchange: Value,
        /// False when the body is not all there (too large, not text, or
        /// not read to its end): the step cannot be replayed exactly.
        complete: bool,
    },
    /// The clock readings and random numbers an attempt received
    /// (`record = "all"`), for replay.
    InputsRecorded {
        /// The step.
        step_id: String,
        /// The attempt.
        attempt: u32,
        /// Wall and monotonic readings, random bytes, the insecure seed,
        /// and whether the tape is complete.
        inputs: Value,
    },
    /// Cancellation was requested.
    CancellationRequested {
        /// How long running steps may take to stop.
        grace_period_ms: u64,
    },
    /// The execution ended.
    ExecutionFinished {
        /// How.
        status: ExecutionStatus,
        /// How long it took.
        duration_ms: u64,
        /// Why it failed, when it did.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<ErrorBody>,
    },
}

impl ExecutionEvent {
    /// The event's kind, as journaled (`step-started`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            ExecutionEvent::ExecutionStarted { .. } => "execution-started",
            ExecutionEvent::ExecutionResumed { .. } => "execution-resumed",
            ExecutionEvent::StepStarted { .. } => "step-started",
            ExecutionEvent::StepSkipped { .. } => "step-skipped",
            ExecutionEvent::StepSucceeded { .. } => "step-succeeded",
            ExecutionEvent::StepFailed { .. } => "step-failed",
            ExecutionEvent::StepCancelled { .. } => "step-cancelled",
            ExecutionEvent::Resilience { event, .. } => match event {
                ResilienceEvent::AttemptStarted { .. } => "attempt-started",
                ResilienceEvent::AttemptSucceeded { .. } => "attempt-succeeded",
                ResilienceEvent::AttemptFailed { .. } => "attempt-failed",
                ResilienceEvent::RetryScheduled { .. } => "retry-scheduled",
                ResilienceEvent::BreakerStateChanged { .. } => "breaker-state-changed",
                ResilienceEvent::CallRejected { .. } => "call-rejected",
                ResilienceEvent::BudgetExhausted { .. } => "budget-exhausted",
            },
            ExecutionEvent::AgentLog { .. } => "agent-log",
            ExecutionEvent::AgentEvent { .. } => "agent-event",
            ExecutionEvent::HttpRecorded { .. } => "http-recorded",
            ExecutionEvent::InputsRecorded { .. } => "inputs-recorded",
            ExecutionEvent::CancellationRequested { .. } => "cancellation-requested",
            ExecutionEvent::ExecutionFinished { .. } => "execution-finished",
        }
    }

    /// The step the event is about, if any.
    pub fn step_id(&self) -> Option<&str> {
        match self {
            ExecutionEvent::StepStarted { step_id, .. }
            | ExecutionEvent::StepSkipped { step_id, .. }
            | ExecutionEvent::StepSucceeded { step_id, .. }
            | ExecutionEvent::StepFailed { step_id, .. }
            | ExecutionEvent::StepCancelled { step_id, .. }
            | ExecutionEvent::Resilience { step_id, .. }
            | ExecutionEvent::AgentLog { step_id, .. }
            | ExecutionEvent::AgentEvent { step_id, .. }
            | ExecutionEvent::HttpRecorded { step_id, .. }
            | ExecutionEvent::InputsRecorded { step_id, .. } => Some(step_id),
            _ => None,
        }
    }
}
