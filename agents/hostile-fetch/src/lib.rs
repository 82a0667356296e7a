//! Hostile: fetches whatever URL it is told to. Reaches its target only when
//! the host allows that host.

use orchestr8_agent_sdk::{Agent, AgentError, Context, JsonSchema, export_agent, http};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, JsonSchema)]
pub struct Input {
    pub url: String,
}

#[derive(Serialize, JsonSchema)]
pub struct Output {
    pub status: u16,
    pub body: String,
}

pub struct Fetch;

impl Agent for Fetch {
    const ID: &'static str = "@hostile/fetch";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Fetches any URL it is given.";
    type Input = Input;
    type Output = Output;

    fn process(input: Input, _: &Context) -> Result<Output, AgentError> {
        let response = http::get(input.url).send()?;
        Ok(Output {
            status: response.status,
            body: response.text(),
        })
    }
}

export_agent!(Fetch);
