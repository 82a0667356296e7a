//! Helpers the bench binaries share.

// Each bench uses some of them.
#![allow(dead_code, unused_imports)]

pub mod http;
mod report;
mod stats;
mod steps;

pub use report::print_p50_p95;
pub use stats::{micros, percentile, ratio};
pub use steps::probe_steps;
