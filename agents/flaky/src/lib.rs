//! Flaky: fails its first `failures` attempts with a retryable error (as a
//! rate-limited or briefly unavailable service would), then succeeds. It
//! keeps no state: it reads the attempt number the host passes in, so retries
//! of the same call see it recover. With a large `failures` it always fails.

use std::time::Duration;

use orchestr8_agent_sdk::{Agent, AgentError, Context, JsonSchema, export_agent, log};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    /// How many attempts fail before one succeeds.
    pub failures: u32,
    /// A retry hint to attach to each failure, in milliseconds.
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
}

#[derive(Serialize, JsonSchema)]
pub struct Output {
    /// The attempt that succeeded.
    pub attempt: u32,
}

pub struct Flaky;

impl Agent for Flaky {
    const ID: &'static str = "@orchestr8/flaky";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Fails its first N attempts with a retryable error, then succeeds.";
    type Input = Input;
    type Output = Output;

    fn process(input: Input, ctx: &Context) -> Result<Output, AgentError> {
        if ctx.attempt() <= input.failures {
            log::warn(&format!("attempt {} fails on purpose", ctx.attempt()));
            let error = AgentError::retryable("service temporarily unavailable (simulated)");
            return Err(match input.retry_after_ms {
                Some(ms) => error.retry_after(Duration::from_millis(ms)),
                None => error,
            });
        }
        Ok(Output {
            attempt: ctx.attempt(),
        })
    }
}

export_agent!(Flaky);
