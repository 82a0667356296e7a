//! Hostile: blocks in a host call (a sleep) far past its deadline, the case
//! an epoch deadline alone cannot interrupt. It says so first (a log line
//! and a progress event), which lets tests watch progress arrive while a
//! step is still running.

use orchestr8_agent_sdk::{Agent, AgentError, Context, JsonSchema, export_agent, log};
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
        log::info(&format!("sleeping for {} s", input.seconds));
        log::emit(
            "progress",
            &serde_json::json!({ "sleeping": input.seconds }),
        );
        std::thread::sleep(std::time::Duration::from_secs(input.seconds));
        Ok(input.seconds)
    }
}

export_agent!(Sleep);
