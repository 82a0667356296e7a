//! Echo: returns its input and its step config unchanged. Useful as a
//! stand-in (a cache a fallback step reads from, a stub in a workflow under
//! construction) and in tests.

use orchestr8_agent_sdk::{Agent, AgentError, Context, JsonSchema, export_agent};
use serde::Serialize;
use serde_json::Value;

#[derive(Serialize, JsonSchema)]
pub struct Output {
    /// The input, as given.
    pub input: Value,
    /// The step's config, as given (`null` when there is none).
    pub config: Value,
}

pub struct Echo;

impl Agent for Echo {
    const ID: &'static str = "@orchestr8/echo";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Returns its input and its config unchanged.";
    type Input = Value;
    type Output = Output;

    fn process(input: Value, ctx: &Context) -> Result<Output, AgentError> {
        Ok(Output {
            input,
            config: ctx.config_value().clone(),
        })
    }
}

export_agent!(Echo);
