//! State probe: tries to carry state from one invocation to the next in a global
//! counter. Every invocation runs in a fresh sandbox, so it always sees 1.

use std::sync::atomic::{AtomicU64, Ordering};

use orchestr8_agent_sdk::{Agent, AgentError, Context, JsonSchema, export_agent};
use serde::{Deserialize, Serialize};

static CALLS: AtomicU64 = AtomicU64::new(0);

#[derive(Deserialize, JsonSchema)]
pub struct Input {
    /// Echoed back, so concurrent callers can match answers to questions.
    pub tag: u64,
}

#[derive(Serialize, JsonSchema)]
pub struct Output {
    pub tag: u64,
    /// How many invocations this instance has seen, this one included.
    pub calls_seen: u64,
}

pub struct State;

impl Agent for State {
    const ID: &'static str = "@test/state-probe";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Counts invocations in a global it hopes will survive.";
    type Input = Input;
    type Output = Output;

    fn process(input: Input, _: &Context) -> Result<Output, AgentError> {
        let calls_seen = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Output {
            tag: input.tag,
            calls_seen,
        })
    }
}

export_agent!(State);
