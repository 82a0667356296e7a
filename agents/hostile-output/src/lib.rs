//! Hostile: returns a huge output (a JSON string of `bytes` bytes, 100 MiB
//! by default).

use orchestr8_agent_sdk::{Agent, AgentError, Context, JsonSchema, export_agent};
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
pub struct Input {
    #[serde(default = "default_bytes")]
    pub bytes: usize,
}

fn default_bytes() -> usize {
    100 * 1024 * 1024
}

pub struct HugeOutput;

impl Agent for HugeOutput {
    const ID: &'static str = "@hostile/output";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Returns a huge output.";
    type Input = Input;
    type Output = String;

    fn process(input: Input, _: &Context) -> Result<String, AgentError> {
        Ok("x".repeat(input.bytes))
    }
}

export_agent!(HugeOutput);
