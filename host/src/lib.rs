//! The orchestr8 host: runs AI agents as sandboxed WebAssembly components.
//!
//! Modules, one concern each, data flowing one way:
//!
//! - [`sandbox`]: loads agent components and runs each invocation in a fresh,
//!   tightly limited sandbox (deadline, fuel, memory, deny-by-default
//!   capabilities).
//! - [`resilience`]: the chain every invocation goes through,
//!   `retry(circuitBreaker(timeout(op)))`, with a time budget.
//! - [`invoker`]: an agent invocation through that chain.
//! - [`workflow`]: the workflow document, its validation, mapping
//!   expressions and conditions.
//! - [`engine`]: runs an execution of a workflow over the DAG.
//! - [`error`]: the error taxonomy and stable codes shared by everything.

pub mod engine;
pub mod error;
pub mod invoker;
pub mod resilience;
pub mod sandbox;
pub mod workflow;

pub use error::{Coded, ErrorCode};
