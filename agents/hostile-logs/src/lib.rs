//! Hostile: floods the host with `lines` log lines of 1 KiB each (100,000 by
//! default, about 100 MiB), then returns how many it sent.

use orchestr8_agent_sdk::{Agent, AgentError, Context, JsonSchema, export_agent, log};
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
pub struct Input {
    #[serde(default = "default_lines")]
    pub lines: u64,
}

fn default_lines() -> u64 {
    100_000
}

pub struct LogFlood;

impl Agent for LogFlood {
    const ID: &'static str = "@hostile/logs";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Floods the host with log lines.";
    type Input = Input;
    type Output = u64;

    fn process(input: Input, _: &Context) -> Result<u64, AgentError> {
        let line = "spam ".repeat(205);
        for i in 0..input.lines {
            log::info_with(&line, &[("n", &i.to_string())]);
        }
        Ok(input.lines)
    }
}

export_agent!(LogFlood);
