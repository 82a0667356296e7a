//! Shared helpers live in the e2e test target.
