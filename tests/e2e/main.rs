//! End-to-end tests: real agents, built to `wasm32-wasip2`, in the real
//! sandbox; real HTTP servers on 127.0.0.1.
//!
//! The agents must be built first (`scripts/test` does it):
//! `cargo build --manifest-path agents/Cargo.toml --target wasm32-wasip2 --release`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod capabilities;
mod conformance;
mod hostile;
mod isolation;
mod journal;
mod languages;
mod loading;
mod outputs;
mod resilience;
mod support;
