//! orchestr8's core: workflows and how they run, with no WebAssembly in
//! it. The workflow document and its validation ([`workflow`]), the
//! resilience chain ([`resilience`]), the DAG scheduler ([`engine`]), the
//! journal writer and its bus ([`journal`], [`bus`]), the stores
//! ([`store`]) and the orchestrator that ties them into one execution
//! ([`orchestrator`]).
//!
//! It exists apart from the sandbox so that the scheduling, durability and
//! API logic compile and test without wasmtime (and rebuild without it),
//! and so that what runs a step stays behind one small trait
//! ([`engine::StepRunner`]): the real runner lives with the sandbox in
//! `orchestr8-host`, tests plug in fakes.

pub mod bus;
pub mod engine;
pub mod eval;
pub mod execution;
pub mod journal;
pub mod orchestrator;
pub mod record;
pub mod resilience;
pub mod store;
pub mod trace;
pub mod workflow;

pub use orchestr8_types::error;
pub use orchestr8_types::ids;
pub use orchestr8_types::{Coded, ErrorCode};
