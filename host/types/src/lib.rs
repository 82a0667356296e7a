//! orchestr8's shared vocabulary, below every other crate of the host: the
//! stable error codes every failure carries ([`error`]), and what an agent
//! records while it runs ([`records`]). It exists so that the sandbox (the
//! only crate with wasmtime) and the core (workflows, engine, journal) speak
//! the same types without depending on each other.

pub mod error;
pub mod records;

pub use error::{Coded, ErrorBody, ErrorCode};
