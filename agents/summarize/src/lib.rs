//! Summarize: asks a language model (Anthropic or OpenAI, chosen in the
//! step's `config`) for a short summary of a text.
//!
//! The API key is a granted secret (`anthropic-api-key` or `openai-api-key`
//! unless the config names another) and the API host must be on the agent's
//! allowlist; nothing else is reachable.

use orchestr8_agent_sdk::llm::{Completion, Llm, LlmConfig, Provider};
use orchestr8_agent_sdk::{Agent, AgentError, Context, JsonSchema, export_agent, log};
use serde::{Deserialize, Serialize};

/// The longest text accepted, in characters.
const MAX_TEXT_CHARS: usize = 100_000;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// The text to summarize.
    pub text: String,
    /// At most this many words [default: 60].
    #[serde(default)]
    pub max_words: Option<u32>,
    /// Who the summary is for, such as "a new contributor".
    #[serde(default)]
    pub audience: Option<String>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    /// The summary.
    pub summary: String,
    /// Which API answered.
    pub provider: Provider,
    /// The model's answer with token counts.
    pub completion: Completion,
}

pub struct Summarize;

impl Agent for Summarize {
    const ID: &'static str = "@orchestr8/summarize";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Summarizes a text with a language model (Anthropic Messages or OpenAI Chat Completions).";
    type Input = Input;
    type Output = Output;

    fn process(input: Input, ctx: &Context) -> Result<Output, AgentError> {
        let text = input.text.trim();
        if text.is_empty() {
            return Err(AgentError::invalid_input("`text` must not be empty"));
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(AgentError::invalid_input(format!(
                "`text` is longer than {MAX_TEXT_CHARS} characters"
            )));
        }
        let config: LlmConfig = ctx.config()?;
        let llm = Llm::new(&config, ctx)?;
        let words = input.max_words.unwrap_or(60);
        let audience = input.audience.as_deref().unwrap_or("a busy engineer");
        let system = format!(
            "You summarize texts for {audience}. Answer with the summary only, at most {words} words, no preamble."
        );
        log::info(&format!(
            "asking {} ({}) for a summary of {} characters",
            config.provider.name(),
            config.model,
            text.len()
        ));
        let completion = llm.complete(&system, text)?;
        Ok(Output {
            summary: completion.text.trim().to_string(),
            provider: config.provider,
            completion,
        })
    }
}

export_agent!(Summarize);
