//! The orchestr8 host: runs AI agents as sandboxed WebAssembly components.
//!
//! Modules, one concern each, data flowing one way:
//!
//! - [`sandbox`]: loads agent components and runs each invocation in a fresh,
//!   tightly limited sandbox (deadline, fuel, memory, deny-by-default
//!   capabilities).
//! - [`resilience`]: the chain every invocation goes through,
//!   `retry(circuitBreaker(timeout(op)))`, with a time budget.
//! - [`call`]: the one way an agent is called, through that chain.
//! - [`workflow`]: the workflow document, its validation, mapping
//!   expressions and conditions.
//! - [`engine`]: runs an execution of a workflow over the DAG.
//! - [`journal`], [`bus`]: every event made durable in order, then
//!   published to observers that may never slow the engine down.
//! - [`store`]: executions and journals (SQLite by default).
//! - [`orchestrator`]: ties engine, journal and store into one execution.
//! - [`project`]: `orchestr8.toml`: the agents, their limits and grants, secrets.
//! - [`api`]: the REST API and the agent microservice (axum).
//! - [`telemetry`]: log output and OpenTelemetry trace export.
//! - [`error`]: the error taxonomy and stable codes shared by everything.

pub mod call;
pub mod claude;
pub mod package;
pub mod project;
pub mod telemetry;

pub mod runner;
pub mod runtime;

pub use orchestr8_core::{bus, journal, orchestrator, record, resilience, store, workflow};
pub use orchestr8_sandbox as sandbox;

/// The engine, with the step runner that runs agents in the sandbox.
pub mod engine {
    pub use crate::call::RegisteredAgent;
    pub use crate::runner::AgentStepRunner;
    pub use orchestr8_core::engine::*;
}
pub use orchestr8_types::error;
pub use orchestr8_types::ids;
pub use orchestr8_types::{Coded, ErrorCode};
