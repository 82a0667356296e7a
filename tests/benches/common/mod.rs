//! Helpers the bench binaries share.

// Each bench uses some of them.
#![allow(dead_code, unused_imports)]

pub mod http;
mod stats;

pub use stats::{micros, percentile, ratio};
