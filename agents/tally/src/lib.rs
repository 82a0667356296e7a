//! Tally: leaves one marker file per attempt in its granted `/marks`
//! directory (named by its idempotency key and attempt), so a test can count
//! how often each step really ran, a thing only the sandbox can do. Then it
//! pauses `ms` and answers its `parts` joined (and `pad` bytes of padding,
//! for a large output), or fails its first `failures` attempts with a
//! retryable error, or, when its step's config says `"fail": true`, every
//! attempt with a fatal one (config, not input: a fallback gets the failed
//! step's input but its own config).

use std::time::Duration;

use orchestr8_agent_sdk::{Agent, AgentError, Context, JsonSchema, export_agent, log};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, JsonSchema)]
pub struct Input {
    /// Joined with `+` into the answer.
    pub parts: Vec<String>,
    /// How long to pause before answering, in milliseconds.
    #[serde(default)]
    pub ms: u64,
    /// During the pause, a progress event every this many milliseconds (a
    /// heartbeat); 0: silent.
    #[serde(default)]
    pub beat_ms: u64,
    /// Also answer the time and a random number (what a replay can only
    /// reproduce from a recording).
    #[serde(default)]
    pub stamp: bool,
    /// Attempts that fail (retryably) before one succeeds.
    #[serde(default)]
    pub failures: u32,
    /// Also answer this many bytes of padding (a large output).
    #[serde(default)]
    pub pad: usize,
}

#[derive(Serialize, JsonSchema)]
pub struct Output {
    pub value: String,
    /// With `stamp`: nanoseconds since the Unix epoch, and a random number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stamp: Option<(u128, u64)>,
    /// With `pad`: that many dots.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pad: String,
}

pub struct Tally;

impl Agent for Tally {
    const ID: &'static str = "@test/tally";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Leaves a marker per attempt, pauses, answers its parts joined.";
    type Input = Input;
    type Output = Output;

    fn process(input: Input, ctx: &Context) -> Result<Output, AgentError> {
        let marker = format!("/marks/{}.{}", ctx.idempotency_key(), ctx.attempt());
        std::fs::write(&marker, b"ran")
            .map_err(|e| AgentError::fatal(format!("cannot leave {marker}: {e}")))?;
        pause(input.ms, input.beat_ms);
        if ctx.config_value()["fail"] == true {
            return Err(AgentError::fatal("fails on purpose"));
        }
        if ctx.attempt() <= input.failures {
            return Err(AgentError::retryable("fails this attempt on purpose"));
        }
        let stamp = input.stamp.then(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            // std seeds its hash keys from the host's random source.
            let random = std::hash::BuildHasher::hash_one(
                &std::collections::hash_map::RandomState::new(),
                input.parts.len(),
            );
            (now, random)
        });
        Ok(Output {
            value: input.parts.join("+"),
            stamp,
            pad: ".".repeat(input.pad),
        })
    }
}

/// Sleeps `ms`, emitting a progress event every `beat_ms` when it is set.
fn pause(ms: u64, beat_ms: u64) {
    if beat_ms == 0 {
        std::thread::sleep(Duration::from_millis(ms));
        return;
    }
    let mut slept = 0;
    while slept < ms {
        let step = beat_ms.min(ms - slept);
        std::thread::sleep(Duration::from_millis(step));
        slept += step;
        log::emit("progress", &serde_json::json!({ "slept_ms": slept }));
    }
}

export_agent!(Tally);
