//! The Context7 HTTP API (the shape current since 2025-12-29): library
//! search and documentation context, with its failures mapped onto the
//! error taxonomy.
//!
//! Responses are untrusted: parsed leniently (unknown fields ignored,
//! missing ones defaulted), bodies capped, and error messages cut short and
//! scrubbed of the API key before they go anywhere.

use std::time::Duration;

use orchestr8_agent_sdk::http::{self, Response};
use orchestr8_agent_sdk::{AgentError, log};
use serde::Deserialize;
use serde_json::Value;

/// The public API.
pub const DEFAULT_BASE_URL: &str = "https://context7.com/api";
/// The longest body read from Context7.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// The longest text Context7 accepts for `libraryName` and `query`.
pub const MAX_PARAM_CHARS: usize = 500;
/// The longest server message repeated in an error.
const MAX_MESSAGE_CHARS: usize = 300;

/// One search result.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Library {
    pub id: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub state: Option<String>,
    pub total_snippets: Option<f64>,
    pub trust_score: Option<f64>,
    pub versions: Option<Vec<String>>,
}

impl Library {
    /// Whether Context7 has finished indexing it (a missing state counts).
    pub fn usable(&self) -> bool {
        self.state.as_deref().is_none_or(|s| s == "finalized")
    }
}

#[derive(Deserialize)]
struct SearchResponse {
    #[serde(default)]
    results: Vec<Library>,
}

/// `GET /v2/context?type=json`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Docs {
    pub code_snippets: Vec<CodeSnippet>,
    pub info_snippets: Vec<InfoSnippet>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CodeSnippet {
    pub code_title: Option<String>,
    pub code_description: Option<String>,
    pub code_language: Option<String>,
    pub code_tokens: Option<f64>,
    pub code_id: Option<String>,
    pub page_title: Option<String>,
    pub code_list: Vec<Code>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Code {
    pub language: Option<String>,
    pub code: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct InfoSnippet {
    pub page_id: Option<String>,
    pub breadcrumb: Option<String>,
    pub content: String,
    pub content_tokens: Option<f64>,
}

/// A failure the caller treats specially; everything else is an
/// [`AgentError`] already.
#[derive(Debug)]
pub enum Failure {
    /// 404: no such library or nothing found (the server's message).
    NotFound(String),
    /// 301 `library_redirected`: the library moved to this id.
    Redirected(String),
    /// Anything else, classified.
    Error(AgentError),
}

impl From<AgentError> for Failure {
    fn from(e: AgentError) -> Self {
        Failure::Error(e)
    }
}

impl From<http::HttpError> for Failure {
    fn from(e: http::HttpError) -> Self {
        Failure::Error(e.into())
    }
}

/// A Context7 client.
pub struct Client {
    base_url: String,
    api_key: Option<String>,
    /// The secret the key came from, to name in errors.
    key_secret: String,
}

impl Client {
    pub fn new(base_url: &str, api_key: Option<String>, key_secret: &str) -> Client {
        Client {
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
            key_secret: key_secret.to_string(),
        }
    }

    /// Libraries matching `name`, ranked by Context7 for `query`.
    pub fn search(&self, name: &str, query: &str) -> Result<Vec<Library>, Failure> {
        let request = http::get(format!("{}/v2/libs/search", self.base_url))
            .query("libraryName", &clip(name, MAX_PARAM_CHARS))
            .query("query", &clip(query, MAX_PARAM_CHARS));
        let response = self.send(request)?;
        let found: SearchResponse = response.json().map_err(|e| {
            AgentError::retryable(format!("Context7's search answer is not readable: {e}"))
        })?;
        Ok(found
            .results
            .into_iter()
            .filter(|l| !l.id.is_empty())
            .collect())
    }

    /// The documentation snippets of `library_id` relevant to `query`.
    pub fn context(&self, library_id: &str, query: &str) -> Result<Docs, Failure> {
        let request = http::get(format!("{}/v2/context", self.base_url))
            .query("libraryId", library_id)
            .query("query", &clip(query, MAX_PARAM_CHARS))
            .query("type", "json");
        let response = self.send(request)?;
        if response.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Docs::default());
        }
        Ok(response.json().map_err(|e| {
            AgentError::retryable(format!(
                "Context7's documentation answer is not readable: {e}"
            ))
        })?)
    }

    fn send(&self, mut request: http::Request) -> Result<Response, Failure> {
        request = request
            .header("accept", "application/json")
            .header("x-context7-source", "orchestr8")
            .max_response_bytes(MAX_BODY_BYTES);
        if let Some(key) = &self.api_key {
            request = request.header("authorization", &format!("Bearer {key}"));
        }
        let response = request.send()?;
        self.check(response)
    }

    /// The response when it is a usable 2xx, else the failure it means.
    fn check(&self, response: Response) -> Result<Response, Failure> {
        let status = response.status;
        if (200..300).contains(&status) && status != 202 {
            return Ok(response);
        }
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        let code = body["error"].as_str().unwrap_or("").to_string();
        let message = self.scrub(body["message"].as_str().unwrap_or(""));
        let said = if code.is_empty() && message.is_empty() {
            format!("Context7 answered {status}")
        } else {
            format!("Context7 answered {status} ({code}): {message}")
        };
        let retry_after = response
            .header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let retryable = |text: String| {
            let error = AgentError::retryable(text);
            match retry_after {
                Some(wait) => error.retry_after(wait),
                None => error,
            }
        };
        let failure = match status {
            202 => Failure::Error(retryable(format!(
                "{said}: Context7 is still indexing this library; try again later"
            ))),
            301 => match body["redirectUrl"].as_str() {
                Some(id) if is_library_id(id) => Failure::Redirected(id.to_string()),
                _ => Failure::Error(AgentError::fatal(format!(
                    "{said}: the library moved, but the answer names no valid new id"
                ))),
            },
            400 | 422 => Failure::Error(AgentError::invalid_input(said)),
            401 => Failure::Error(AgentError::fatal(match self.api_key {
                Some(_) => format!(
                    "Context7 rejected the API key ({code}): check the value of the `{}` secret",
                    self.key_secret
                ),
                None => format!(
                    "Context7 wants an API key ({code}): grant the `{}` secret and set it",
                    self.key_secret
                ),
            })),
            402 | 403 => Failure::Error(AgentError::fatal(format!(
                "{said}: the account behind the API key cannot use this (spending limit or access)"
            ))),
            404 => Failure::NotFound(if message.is_empty() { said } else { message }),
            408 | 429 | 500..=599 => {
                log::warn(&said);
                Failure::Error(retryable(said))
            }
            _ => Failure::Error(AgentError::fatal(said)),
        };
        Err(failure)
    }

    /// Server text fit to repeat: short, and never holding the key.
    fn scrub(&self, text: &str) -> String {
        let mut text = clip(text, MAX_MESSAGE_CHARS);
        if let Some(key) = self.api_key.as_deref().filter(|k| !k.is_empty()) {
            text = text.replace(key, "[REDACTED]");
        }
        text
    }
}

/// Whether `text` is a Context7 library id: `/owner/repo`, optionally with
/// a version as `/owner/repo/<ver>` or `/owner/repo@<ver>`.
pub fn is_library_id(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('/') else {
        return false;
    };
    let part = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c == '/');
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [owner, repo] => {
            part(owner)
                && match repo.split_once('@') {
                    Some((r, v)) => part(r) && part(v),
                    None => part(repo),
                }
        }
        [owner, repo, version] => part(owner) && part(repo) && !repo.contains('@') && part(version),
        _ => false,
    }
}

/// The version part of a library id, if it has one.
pub fn id_version(id: &str) -> Option<String> {
    let rest = id.strip_prefix('/')?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [_, repo] => repo.split_once('@').map(|(_, v)| v.to_string()),
        [_, _, version] => Some(version.to_string()),
        _ => None,
    }
}

/// At most `max` characters of `text`.
pub fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_ids_follow_context7s_pattern() {
        for id in [
            "/tokio-rs/axum",
            "/vercel/next.js/v14.3.0",
            "/org/p@1.2",
            "/websites/react_dev",
        ] {
            assert!(is_library_id(id), "{id}");
        }
        for id in ["axum", "/axum", "/a/b/c/d", "//b", "/a/b@", "/a b/c", ""] {
            assert!(!is_library_id(id), "{id}");
        }
        assert_eq!(id_version("/vercel/next.js/v14").as_deref(), Some("v14"));
        assert_eq!(id_version("/org/p@1.2").as_deref(), Some("1.2"));
        assert_eq!(id_version("/tokio-rs/axum"), None);
    }

    #[test]
    fn lenient_parsing_ignores_unknown_and_null_fields() {
        let found: SearchResponse = serde_json::from_str(
            r#"{"results": [{"id": "/a/b", "title": null, "stars": -1, "vip": true,
                "trustScore": 7.5, "totalSnippets": 12}], "searchFilterApplied": false}"#,
        )
        .unwrap();
        assert_eq!(found.results[0].trust_score, Some(7.5));
        assert!(found.results[0].usable());
        let docs: Docs =
            serde_json::from_str(r#"{"codeSnippets": [{"codeList": [{"code": "x"}]}]}"#).unwrap();
        assert_eq!(docs.code_snippets[0].code_list[0].code, "x");
    }
}
