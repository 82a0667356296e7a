//! Hostile: allocates (and touches) 1 MiB blocks until something stops it.

use orchestr8_agent_sdk::{Agent, AgentError, Context, export_agent};

pub struct MemoryBomb;

impl Agent for MemoryBomb {
    const ID: &'static str = "@hostile/memory";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Allocates memory until it is stopped.";
    type Input = serde_json::Value;
    type Output = usize;

    fn process(_: serde_json::Value, _: &Context) -> Result<usize, AgentError> {
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        loop {
            blocks.push(vec![0xAB; 1 << 20]);
            std::hint::black_box(&blocks);
        }
    }
}

export_agent!(MemoryBomb);
