//! The orchestr8 host library: the front door every interface stands on.
//!
//! The CLI, `serve`, `agent serve` and the MCP server all open a
//! [`runtime::Runtime`] (a project's agents with their limits, grants,
//! secrets and config, and where its state is kept) and go through it:
//!
//! - [`call`]: the one way an agent is called (`Invoker::call`), whatever
//!   calls it, through the resilience chain into a fresh sandbox;
//! - [`runner`]: the engine's step runner, which is that call path;
//! - [`registry`]: the agents a runtime runs, fixed or reloaded on change;
//! - [`project`]: `orchestr8.toml`, its agents, secrets, and edits to it;
//! - [`package`]: packages, installing and restoring them, `orchestr8.lock`;
//! - [`claude`]: the Claude Code integration (sub-agents, `.mcp.json`);
//! - [`telemetry`]: log output and OpenTelemetry trace export.
//!
//! It exists apart from the crates below it so that each of those keeps to
//! one layer: [`sandbox`] (`orchestr8-sandbox`, the only crate with
//! wasmtime), the core (`orchestr8-core`: workflows, engine, resilience,
//! journal, stores) and the shared types (`orchestr8-types`). This crate is
//! where they meet; it re-exports them under their module names so an
//! interface needs one dependency. The servers (`orchestr8-servers`) sit
//! above it.

pub mod call;
pub mod claude;
pub mod package;
pub mod project;
pub mod registry;
pub mod telemetry;

pub mod runner;
pub mod runtime;

pub use orchestr8_core::{bus, eval, journal, orchestrator, record, resilience, store, workflow};
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
