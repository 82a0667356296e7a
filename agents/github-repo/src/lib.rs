//! @orchestr8/github-repo: looks up a GitHub repository, an agent that calls an HTTP API.
//!
//! The host lets it reach only what orchestr8.toml grants it
//! (`allowed_hosts = ["api.github.com"]`). `orchestr8 test` answers its
//! requests from the recorded fixtures in tests/fixtures/, so tests never
//! touch the network.

use orchestr8_agent_sdk::{Agent, AgentError, Context, JsonSchema, export_agent, http, log};
use serde::{Deserialize, Serialize};

/// What the agent is given.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The repository, `owner/name`, such as `rust-lang/rust`.
    pub repo: String,
}

/// What the agent returns.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    pub full_name: String,
    pub description: Option<String>,
    pub stars: u64,
    pub language: Option<String>,
    pub url: String,
}

/// The part of GitHub's answer this agent reads.
#[derive(Deserialize)]
struct Repository {
    full_name: String,
    description: Option<String>,
    stargazers_count: u64,
    language: Option<String>,
    html_url: String,
}

pub struct GithubRepo;

impl Agent for GithubRepo {
    const ID: &'static str = "@orchestr8/github-repo";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Looks up a GitHub repository: description, stars, language.";
    type Input = Input;
    type Output = Output;

    fn process(input: Input, _ctx: &Context) -> Result<Output, AgentError> {
        let repo = input.repo.trim();
        let valid = repo.split('/').count() == 2
            && repo
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
        if !valid {
            return Err(AgentError::invalid_input(format!(
                "`{repo}` is not a repository like `owner/name`"
            )));
        }
        log::info(&format!("looking up {repo}"));
        let response = http::get(format!("https://api.github.com/repos/{repo}"))
            .header("accept", "application/vnd.github+json")
            .header("user-agent", "orchestr8-agent")
            .send()?;
        if response.status == 404 {
            return Err(AgentError::invalid_input(format!(
                "repository `{repo}` does not exist"
            )));
        }
        // 429 and 5xx become retryable errors, other failures fatal ones.
        let found: Repository = response.error_for_status()?.json()?;
        Ok(Output {
            full_name: found.full_name,
            description: found.description,
            stars: found.stargazers_count,
            language: found.language,
            url: found.html_url,
        })
    }
}

export_agent!(GithubRepo);
