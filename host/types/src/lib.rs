//! orchestr8's shared vocabulary, below every other crate of the host: the
//! stable error codes every failure carries ([`error`]), the ids of
//! executions, steps and agents ([`ids`]), and what an agent records while
//! it runs ([`records`]). It exists so that the sandbox (the
//! only crate with wasmtime) and the core (workflows, engine, journal) speak
//! the same types without depending on each other.

pub mod error;
pub mod ids;
pub mod records;

pub use error::{Coded, ErrorBody, ErrorCode};
pub use ids::{AgentId, ExecutionId, StepId};
