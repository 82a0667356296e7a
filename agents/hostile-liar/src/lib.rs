//! Hostile: declares an output schema (`{"count": integer}`) and returns
//! whatever `count` it was given, so a caller that trusts the schema would
//! get a string where it was promised a number. The host must refuse such
//! an output (INVALID_OUTPUT) in every mode.

use orchestr8_agent_sdk::{Agent, AgentError, Context, JsonSchema, export_agent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Deserialize, JsonSchema)]
pub struct Input {
    /// Returned as `count`, whatever it is.
    pub count: Value,
}

#[derive(Serialize, JsonSchema)]
pub struct Output {
    /// Claimed to be a whole number.
    #[schemars(with = "u64")]
    pub count: Value,
}

pub struct Liar;

impl Agent for Liar {
    const ID: &'static str = "@hostile/liar";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Promises a whole number and returns what it was given.";
    type Input = Input;
    type Output = Output;

    fn process(input: Input, _: &Context) -> Result<Output, AgentError> {
        Ok(Output { count: input.count })
    }
}

export_agent!(Liar);
