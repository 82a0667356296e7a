//! End-to-end tests of orchestr8 live in `e2e/`; this crate has no library code.
