//! Ask a language model: Anthropic's Messages API or OpenAI's Chat
//! Completions API, over the host's allowlisted outbound HTTP.
//!
//! The API key is a granted secret (never in config or input); the API host
//! must be on the agent's allowlist. Failures map onto the error taxonomy:
//! a rejected key is fatal, rate limits and overload are retryable with the
//! server's `Retry-After` hint.
//!
//! ```no_run
//! # use orchestr8_agent_sdk::{Context, AgentError, llm::{LlmConfig, Llm}};
//! # fn f(config: &LlmConfig, ctx: &Context) -> Result<(), AgentError> {
//! let llm = Llm::new(config, ctx)?;
//! let answer = llm.complete("You write one-line summaries.", "Summarize: …")?;
//! println!("{}", answer.text);
//! # Ok(()) }
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{AgentError, Context, JsonSchema, http};

/// Which API to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Anthropic Messages API (`POST /v1/messages`).
    Anthropic,
    /// OpenAI Chat Completions API (`POST /v1/chat/completions`).
    Openai,
}

impl Provider {
    /// The provider's name as people write it.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Anthropic => "Anthropic",
            Provider::Openai => "OpenAI",
        }
    }

    fn default_base_url(self) -> &'static str {
        match self {
            Provider::Anthropic => "https://api.anthropic.com",
            Provider::Openai => "https://api.openai.com",
        }
    }

    fn default_secret(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic-api-key",
            Provider::Openai => "openai-api-key",
        }
    }
}

/// How to reach the model: usually the agent's step `config`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LlmConfig {
    /// `anthropic` or `openai`.
    pub provider: Provider,
    /// The model, such as `claude-sonnet-4-5` or `gpt-4o-mini`.
    pub model: String,
    /// The API's base URL [default: the provider's public API].
    #[serde(default)]
    pub base_url: Option<String>,
    /// The granted secret holding the API key [default: `anthropic-api-key`
    /// or `openai-api-key`].
    #[serde(default)]
    pub api_key_secret: Option<String>,
    /// Most tokens to generate [default: 1024].
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Completion {
    /// The generated text.
    pub text: String,
    /// The model that answered, as the API reports it.
    pub model: String,
    /// Tokens read.
    pub input_tokens: u64,
    /// Tokens written.
    pub output_tokens: u64,
}

/// A configured client.
pub struct Llm {
    provider: Provider,
    base_url: String,
    api_key: String,
    model: String,
    max_tokens: u32,
}

impl Llm {
    /// Reads the API key from the granted secret named in `config`.
    pub fn new(config: &LlmConfig, ctx: &Context) -> Result<Llm, AgentError> {
        let secret = config
            .api_key_secret
            .as_deref()
            .unwrap_or(config.provider.default_secret());
        let api_key = ctx.secret(secret)?;
        Ok(Llm {
            provider: config.provider,
            base_url: config
                .base_url
                .clone()
                .unwrap_or_else(|| config.provider.default_base_url().to_string())
                .trim_end_matches('/')
                .to_string(),
            api_key,
            model: config.model.clone(),
            max_tokens: config.max_tokens.unwrap_or(1024),
        })
    }

    /// Sends one system prompt and one user message; returns the answer.
    pub fn complete(&self, system: &str, user: &str) -> Result<Completion, AgentError> {
        let request = match self.provider {
            Provider::Anthropic => http::post(format!("{}/v1/messages", self.base_url))
                .header("x-api-key", &self.api_key)
                .header("anthropic-version", "2023-06-01")
                .json(&json!({
                    "model": self.model,
                    "max_tokens": self.max_tokens,
                    "system": system,
                    "messages": [{ "role": "user", "content": user }],
                })),
            Provider::Openai => http::post(format!("{}/v1/chat/completions", self.base_url))
                .header("authorization", &format!("Bearer {}", self.api_key))
                .json(&json!({
                    "model": self.model,
                    "max_tokens": self.max_tokens,
                    "messages": [
                        { "role": "system", "content": system },
                        { "role": "user", "content": user },
                    ],
                })),
        };
        let response = request.send()?;
        if response.status == 401 || response.status == 403 {
            return Err(AgentError::fatal(format!(
                "the {} API refused the key ({}): check the secret holding it",
                self.provider.name(),
                api_message(&response.text())
            )));
        }
        // 529 is Anthropic's "overloaded": retryable, like 429 and other 5xx.
        let body: Value = response.error_for_status()?.json()?;
        parse(self.provider, &body).ok_or_else(|| {
            AgentError::fatal(format!(
                "the {} API answered in an unexpected shape",
                self.provider.name()
            ))
        })
    }
}

/// The error message inside an API's error body, or the body's start.
fn api_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

fn parse(provider: Provider, body: &Value) -> Option<Completion> {
    match provider {
        Provider::Anthropic => Some(Completion {
            text: body["content"]
                .as_array()?
                .iter()
                .filter(|block| block["type"] == "text")
                .filter_map(|block| block["text"].as_str())
                .collect::<Vec<_>>()
                .join(""),
            model: body["model"].as_str()?.to_string(),
            input_tokens: body["usage"]["input_tokens"].as_u64().unwrap_or(0),
            output_tokens: body["usage"]["output_tokens"].as_u64().unwrap_or(0),
        }),
        Provider::Openai => Some(Completion {
            text: body["choices"][0]["message"]["content"]
                .as_str()?
                .to_string(),
            model: body["model"].as_str()?.to_string(),
            input_tokens: body["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
            output_tokens: body["usage"]["completion_tokens"].as_u64().unwrap_or(0),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_response_shapes_parse() {
        let anthropic = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "!"}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 5, "output_tokens": 2}
        });
        let c = parse(Provider::Anthropic, &anthropic).unwrap();
        assert_eq!((c.text.as_str(), c.input_tokens), ("Hi!", 5));
        let openai = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-x",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Yo"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        });
        let c = parse(Provider::Openai, &openai).unwrap();
        assert_eq!((c.text.as_str(), c.output_tokens), ("Yo", 1));
        assert!(parse(Provider::Openai, &json!({"nope": 1})).is_none());
    }

    #[test]
    fn api_error_messages_are_extracted() {
        assert_eq!(
            api_message(
                r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#
            ),
            "invalid x-api-key"
        );
        assert_eq!(api_message("plain"), "plain");
    }
}
