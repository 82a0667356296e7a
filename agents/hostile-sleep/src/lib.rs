//! Hostile: blocks in a host call (a sleep) far past its deadline, the case
//! an epoch deadline alone cannot interrupt.

use orchestr8_agent_sdk::{Agent, AgentError, Context, JsonSchema, export_agent};
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
pub struct Input {
    #[serde(default = "default_seconds")]
    pub seconds: u64,
}

fn default_seconds() -> u64 {
    3600
}

pub struct Sleep;

impl Agent for Sleep {
    const ID: &'static str = "@hostile/sleep";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Sleeps far past its deadline.";
    type Input = Input;
    type Output = u64;

    fn process(input: Input, _: &Context) -> Result<u64, AgentError> {
        std::thread::sleep(std::time::Duration::from_secs(input.seconds));
        Ok(input.seconds)
    }
}

export_agent!(Sleep);
