//! {{id}}: greets whoever it is given.
//!
//! Every call runs in a fresh sandbox: keep no state between calls. The
//! input and output types below are also the JSON Schemas the host shows
//! (`orchestr8 agent info`).

use orchestr8_agent_sdk::{Agent, AgentError, Context, JsonSchema, export_agent, log};
use serde::{Deserialize, Serialize};

/// What the agent is given.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Who to greet.
    pub name: String,
}

/// What the agent returns.
#[derive(Serialize, JsonSchema)]
pub struct Output {
    /// The greeting.
    pub greeting: String,
}

pub struct {{type}};

impl Agent for {{type}} {
    const ID: &'static str = "{{id}}";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Greets whoever it is given.";
    type Input = Input;
    type Output = Output;

    fn process(input: Input, _ctx: &Context) -> Result<Output, AgentError> {
        let name = input.name.trim();
        if name.is_empty() {
            return Err(AgentError::invalid_input("`name` must not be empty"));
        }
        log::info(&format!("greeting {name}"));
        Ok(Output {
            greeting: format!("Hello, {name}!"),
        })
    }
}

export_agent!({{type}});
