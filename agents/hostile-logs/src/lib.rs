//! Hostile: floods the host with 1 KiB log lines: `lines` of them, then
//! returns how many it sent, or without end when `lines` is not given (only
//! fuel or the deadline stop it then). The host keeps at most its log budget.

use orchestr8_agent_sdk::{Agent, AgentError, Context, JsonSchema, export_agent, log};
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
pub struct Input {
    #[serde(default)]
    pub lines: Option<u64>,
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
        let mut sent = 0;
        while input.lines.is_none_or(|n| sent < n) {
            log::info_with(&line, &[("n", &sent.to_string())]);
            sent += 1;
        }
        Ok(sent)
    }
}

export_agent!(LogFlood);
