//! Hostile: recurses without bound until the call stack is exhausted.

use orchestr8_agent_sdk::{Agent, AgentError, Context, export_agent};

pub struct Recursion;

fn depth(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    std::hint::black_box(depth(std::hint::black_box(n - 1))) + 1
}

impl Agent for Recursion {
    const ID: &'static str = "@hostile/recursion";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Recurses until the stack runs out.";
    type Input = serde_json::Value;
    type Output = u64;

    fn process(_: serde_json::Value, _: &Context) -> Result<u64, AgentError> {
        Ok(depth(u64::MAX))
    }
}

export_agent!(Recursion);
