//! Hostile: spins forever without calling the host. Only fuel or the
//! deadline can stop it.

use orchestr8_agent_sdk::{Agent, AgentError, Context, export_agent};

pub struct Loop;

impl Agent for Loop {
    const ID: &'static str = "@hostile/loop";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Spins forever.";
    type Input = serde_json::Value;
    type Output = u64;

    fn process(_: serde_json::Value, _: &Context) -> Result<u64, AgentError> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

export_agent!(Loop);
