//! Hostile: panics with a recognisable message.

use orchestr8_agent_sdk::{Agent, AgentError, Context, export_agent};

pub struct Panic;

impl Agent for Panic {
    const ID: &'static str = "@hostile/panic";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Panics.";
    type Input = serde_json::Value;
    type Output = ();

    fn process(_: serde_json::Value, _: &Context) -> Result<(), AgentError> {
        panic!("hostile agent gave up on purpose");
    }
}

export_agent!(Panic);
