//! @orchestr8/context7: researches a library's current documentation on
//! Context7 and returns a focused brief; with a language model configured,
//! also a synthesized answer that cites the snippets.
//!
//! The same component runs as a workflow step, as a `/process`
//! microservice and as a Claude Code tool (`orchestr8 mcp`). It may reach
//! only the hosts its grants allow: the Context7 API (and the model's API
//! when one is configured). The Context7 key is the optional
//! `context7-api-key` secret (without it, the anonymous tier).

mod api;
mod prompt;
mod rank;
mod snippets;

use orchestr8_agent_sdk::llm::{Completion, Llm, LlmConfig, Provider};
use orchestr8_agent_sdk::{Agent, AgentError, Context, JsonSchema, SecretError, export_agent, log};
use serde::{Deserialize, Serialize};
use serde_json::json;

use api::{Client, Failure, Library};
use rank::Alternative;
use snippets::{Budget, Snippet};

/// The default token budget of the snippets.
const DEFAULT_TOKENS: u64 = 5_000;
const MIN_TOKENS: u64 = 100;
const MAX_TOKENS: u64 = 100_000;
/// The longest question accepted, in characters.
const MAX_QUERY_CHARS: usize = 2_000;
/// Alternatives listed in the brief.
const MAX_ALTERNATIVES: usize = 4;
/// The default secret holding the Context7 key.
const KEY_SECRET: &str = "context7-api-key";

/// What to research.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The question or task, such as "how do I add middleware to a router".
    pub query: String,
    /// The library: a name ("axum") or a Context7 id ("/tokio-rs/axum",
    /// optionally with a version: "/vercel/next.js/v14.3.0"). Without it,
    /// the library is searched for with the question itself.
    #[serde(default)]
    pub library: Option<String>,
    /// Narrows the documentation to a topic, such as "routing".
    #[serde(default)]
    pub topic: Option<String>,
    /// Most tokens of documentation in the brief, 100 to 100000 [default 5000].
    #[serde(default)]
    pub tokens: Option<u64>,
}

/// Where Context7 and the optional model are: the agent's `config`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Config {
    /// Context7's API base [default https://context7.com/api].
    #[serde(default)]
    base_url: Option<String>,
    /// The granted secret holding the Context7 key [default
    /// `context7-api-key`; optional unless named here].
    #[serde(default)]
    api_key_secret: Option<String>,
    /// A language model to synthesize an answer from the snippets.
    #[serde(default)]
    llm: Option<LlmConfig>,
    /// The task template the model is asked with [default `research`].
    #[serde(default)]
    prompt: prompt::Template,
}

/// The chosen library.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Chosen {
    /// Its Context7 id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The version researched, when the id names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The versions Context7 knows of.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
    /// What it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Context7's trust score, 0 to 10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_score: Option<f64>,
    /// High, Medium, Low or Unknown.
    pub trust: String,
    /// Snippets Context7 holds for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_snippets: Option<u64>,
}

/// A synthesized answer.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    /// The model's answer, citing snippets as [n].
    pub text: String,
    /// Which API answered.
    pub provider: Provider,
    /// The model's reply with token counts.
    pub completion: Completion,
}

/// The research brief.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Brief {
    /// The question, as asked.
    pub query: String,
    /// The topic, when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The library researched.
    pub library: Chosen,
    /// Why that library.
    pub reason: String,
    /// Libraries considered and not chosen.
    pub alternatives: Vec<Alternative>,
    /// The relevant documentation, within the token budget.
    pub snippets: Vec<Snippet>,
    /// How the token budget was spent.
    pub budget: Budget,
    /// Where the snippets come from.
    pub sources: Vec<String>,
    /// A language model's answer, when one is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
}

pub struct Context7;

impl Agent for Context7 {
    const ID: &'static str = "@orchestr8/context7";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Researches a library's current documentation on Context7 and returns a focused brief: the library chosen and why, the relevant snippets within a token budget, and their sources (plus a cited answer when a language model is configured).";
    type Input = Input;
    type Output = Brief;

    fn process(input: Input, ctx: &Context) -> Result<Brief, AgentError> {
        let query = input.query.trim().to_string();
        if query.is_empty() {
            return Err(AgentError::invalid_input("`query` must not be empty"));
        }
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(AgentError::invalid_input(format!(
                "`query` is longer than {MAX_QUERY_CHARS} characters"
            )));
        }
        let tokens = input.tokens.unwrap_or(DEFAULT_TOKENS);
        if !(MIN_TOKENS..=MAX_TOKENS).contains(&tokens) {
            return Err(AgentError::invalid_input(format!(
                "`tokens` must be between {MIN_TOKENS} and {MAX_TOKENS}, not {tokens}"
            )));
        }
        let topic = input
            .topic
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let library = input
            .library
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty());
        let config: Config = ctx.config()?;
        let client = client(&config, ctx)?;
        let (chosen, reason, alternatives) = choose(&client, library.as_deref(), &query)?;
        let docs_query = match &topic {
            Some(topic) => format!("{topic}: {query}"),
            None => query.clone(),
        };
        let (library, docs) = fetch(&client, chosen, &docs_query)?;
        let (snippets, budget) = snippets::within_budget(docs, tokens);
        if snippets.is_empty() {
            return Err(AgentError::invalid_input(format!(
                "Context7 has no documentation on this for {}: try another wording, a topic, or another library",
                library.id
            ))
            .with_details(json!({"library": library.id, "alternatives": alternatives})));
        }
        log::info(&format!(
            "{} snippets of {} ({} of {} tokens)",
            snippets.len(),
            library.id,
            budget.used,
            budget.limit
        ));
        let answer = match &config.llm {
            Some(llm) => Some(synthesize(
                llm,
                config.prompt,
                ctx,
                &query,
                topic.as_deref(),
                &library,
                &snippets,
            )?),
            None => None,
        };
        Ok(Brief {
            sources: snippets::sources(&snippets),
            query,
            topic,
            library,
            reason,
            alternatives,
            snippets,
            budget,
            answer,
        })
    }
}

fn client(config: &Config, ctx: &Context) -> Result<Client, AgentError> {
    let secret = config.api_key_secret.as_deref().unwrap_or(KEY_SECRET);
    let key = match ctx.secret(secret) {
        Ok(key) => Some(key),
        // The key is optional unless the config names a secret.
        Err(SecretError::NotGranted | SecretError::NotSet) if config.api_key_secret.is_none() => {
            log::debug("no Context7 API key: using the anonymous tier");
            None
        }
        Err(e) => {
            return Err(AgentError::fatal(format!("the `{secret}` secret: {e}")));
        }
    };
    let base = config.base_url.as_deref().unwrap_or(api::DEFAULT_BASE_URL);
    Ok(Client::new(base, key, secret))
}

/// Picks the library: the id as given, or the best search result.
fn choose(
    client: &Client,
    library: Option<&str>,
    query: &str,
) -> Result<(Library, String, Vec<Alternative>), AgentError> {
    if let Some(id) = library.filter(|l| api::is_library_id(l)) {
        let given = Library {
            id: id.to_string(),
            ..Library::default()
        };
        return Ok((
            given,
            "the Context7 library id was given".into(),
            Vec::new(),
        ));
    }
    let name = library.unwrap_or(query);
    let found = client.search(name, query).map_err(|f| match f {
        Failure::NotFound(message) => not_found(name, &message, &[]),
        Failure::Redirected(_) => {
            AgentError::retryable("Context7's search answered with a redirect")
        }
        Failure::Error(e) => e,
    })?;
    let (mut ranked, skipped) = rank::rank(name, found);
    if ranked.is_empty() {
        return Err(not_found(name, "no usable library matched", &skipped));
    }
    let best = ranked.remove(0);
    let alternatives = ranked
        .iter()
        .map(rank::Scored::as_alternative)
        .chain(skipped)
        .take(MAX_ALTERNATIVES)
        .collect();
    Ok((best.library.clone(), best.because(), alternatives))
}

/// Fetches the documentation, following one redirect to a moved library.
fn fetch(
    client: &Client,
    library: Library,
    query: &str,
) -> Result<(Chosen, api::Docs), AgentError> {
    let mut library = library;
    let mut redirected = false;
    loop {
        match client.context(&library.id, query) {
            Ok(docs) => return Ok((chosen(library), docs)),
            Err(Failure::Redirected(id)) if !redirected => {
                log::info(&format!("{} moved to {id}", library.id));
                redirected = true;
                library = Library { id, ..library };
            }
            Err(Failure::Redirected(id)) => {
                return Err(AgentError::fatal(format!(
                    "{} redirects again, to {id}: giving up after one redirect",
                    library.id
                )));
            }
            Err(Failure::NotFound(message)) => {
                let name = library_name(&library.id);
                let suggestions = client
                    .search(&name, query)
                    .map(|found| rank::rank(&name, found).0)
                    .unwrap_or_default()
                    .iter()
                    .take(MAX_ALTERNATIVES)
                    .map(rank::Scored::as_alternative)
                    .collect::<Vec<_>>();
                return Err(not_found(&library.id, &message, &suggestions));
            }
            Err(Failure::Error(e)) => return Err(e),
        }
    }
}

/// The project part of an id: `/tokio-rs/axum@1` → `axum`.
fn library_name(id: &str) -> String {
    let repo = id.trim_start_matches('/').split('/').nth(1).unwrap_or(id);
    repo.split('@').next().unwrap_or(repo).to_string()
}

fn chosen(library: Library) -> Chosen {
    Chosen {
        version: api::id_version(&library.id),
        title: library
            .title
            .clone()
            .unwrap_or_else(|| library_name(&library.id)),
        versions: library.versions.unwrap_or_default(),
        description: library.description,
        trust: rank::trust_label(library.trust_score).to_string(),
        trust_score: library.trust_score,
        total_snippets: library.total_snippets.map(|n| n.max(0.0) as u64),
        id: library.id,
    }
}

fn not_found(what: &str, message: &str, suggestions: &[Alternative]) -> AgentError {
    let hint = if suggestions.is_empty() {
        ": check the name, or give a Context7 id such as /tokio-rs/axum".to_string()
    } else {
        let names: Vec<String> = suggestions
            .iter()
            .map(|s| match s.title.as_str() {
                "" => s.id.clone(),
                title => format!("{} ({title})", s.id),
            })
            .collect();
        format!("; did you mean {}?", names.join(", "))
    };
    AgentError::invalid_input(format!(
        "library not found on Context7: `{what}` ({message}){hint}"
    ))
    .with_details(json!({"library": what, "suggestions": suggestions}))
}

fn synthesize(
    config: &LlmConfig,
    template: prompt::Template,
    ctx: &Context,
    query: &str,
    topic: Option<&str>,
    library: &Chosen,
    snippets: &[Snippet],
) -> Result<Answer, AgentError> {
    let llm = Llm::new(config, ctx)?;
    let (system, user) = prompt::render(
        template,
        &prompt::Research {
            question: query,
            topic,
            library_id: &library.id,
            library_title: &library.title,
            library_version: library.version.as_deref(),
            snippets,
        },
    )?;
    log::info(&format!(
        "asking {} ({}) for an answer from {} snippets",
        config.provider.name(),
        config.model,
        snippets.len()
    ));
    let completion = llm.complete(&system, &user)?;
    Ok(Answer {
        text: completion.text.trim().to_string(),
        provider: config.provider,
        completion,
    })
}

export_agent!(Context7);
