//! Every first-party agent's outputs match the output schema it publishes
//! (checked here by an independent validator, not only by the host), and
//! an agent whose output breaks its own schema is refused with
//! INVALID_OUTPUT naming the path.

use std::path::PathBuf;

use orchestr8_host::sandbox::{HttpFixtures, InvocationRequest, SandboxPolicy, SecretValue};
use orchestr8_host::{Coded, ErrorCode};
use rstest::rstest;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{load, sandbox};

/// A policy that answers the agent's outbound requests from `fixtures`
/// (files in `fixtures/`), granting `hosts` and `secrets` (with dummy values).
pub fn recorded(fixtures: &[&str], hosts: &[&str], secrets: &[&str]) -> SandboxPolicy {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let mut recorded = Vec::new();
    for file in fixtures {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let mut some: Vec<_> = serde_json::from_str(&text).unwrap();
        recorded.append(&mut some);
    }
    let mut policy = SandboxPolicy::default();
    policy.grants.allowed_hosts = hosts.iter().map(|h| h.parse().unwrap()).collect();
    policy.grants.secrets = secrets.iter().map(ToString::to_string).collect();
    policy.secret_values = secrets
        .iter()
        .map(|s| (s.to_string(), SecretValue::new("test-key")))
        .collect();
    policy.http_fixtures = Some(HttpFixtures::new(recorded));
    policy
}

#[rstest]
#[case::text_stats("text-stats", json!({"text": "One two. Three!"}), json!({}), SandboxPolicy::default())]
#[case::echo_object("echo", json!({"any": [1, {"thing": null}]}), json!({}), SandboxPolicy::default())]
#[case::echo_text("echo", json!("just text"), json!({}), SandboxPolicy::default())]
#[case::flaky("flaky", json!({"failures": 0}), json!({}), SandboxPolicy::default())]
#[case::state_probe("state-probe", json!({"tag": 7}), json!({}), SandboxPolicy::default())]
#[case::github_repo("github-repo", json!({"repo": "rust-lang/rust"}), json!({}),
    recorded(&["github.json"], &["api.github.com"], &[]))]
#[case::summarize_openai("summarize", json!({"text": "A text to summarize."}),
    json!({"provider": "openai", "model": "gpt-4o-mini"}),
    recorded(&["openai.json"], &["api.openai.com"], &["openai-api-key"]))]
#[case::summarize_anthropic("summarize", json!({"text": "A text to summarize."}),
    json!({"provider": "anthropic", "model": "claude-sonnet-4-5"}),
    recorded(&["anthropic.json"], &["api.anthropic.com"], &["anthropic-api-key"]))]
#[case::context7_by_name("context7",
    json!({"query": "How do I add middleware that logs every request?", "library": "axum", "topic": "middleware"}), json!({}),
    recorded(&["context7.json"], &["context7.com"], &["context7-api-key"]))]
// Given as a Context7 id, the library is not searched, so it has no known
// versions: the brief leaves `versions` out, and its schema must allow that.
#[case::context7_by_id("context7",
    json!({"query": "How do I add middleware that logs every request?", "library": "/tokio-rs/axum", "topic": "middleware"}),
    json!({}), recorded(&["context7.json"], &["context7.com"], &["context7-api-key"]))]
#[case::ts_context7_by_name("ts-context7",
    json!({"query": "How do I add middleware that logs every request?", "library": "axum", "topic": "middleware"}), json!({}),
    recorded(&["context7.json"], &["context7.com"], &["context7-api-key"]))]
#[case::ts_context7_by_id("ts-context7",
    json!({"query": "How do I add middleware that logs every request?", "library": "/tokio-rs/axum", "topic": "middleware"}),
    json!({}), recorded(&["context7.json"], &["context7.com"], &["context7-api-key"]))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_party_outputs_match_their_published_schema(
    #[case] agent: &str,
    #[case] input: Value,
    #[case] config: Value,
    #[case] policy: SandboxPolicy,
) {
    let loaded = load(agent).await;
    let mut request = InvocationRequest::new(input);
    request.config = config;
    let outcome = sandbox()
        .invoke(&loaded, &policy, request, &CancellationToken::new())
        .await;
    let output = outcome
        .result
        .unwrap_or_else(|e| panic!("{agent} failed: {e}"));
    let schema = &loaded.info().output_schema;
    let validator = jsonschema::validator_for(schema).unwrap();
    let problems: Vec<String> = validator
        .iter_errors(&output)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(problems.is_empty(), "{agent}: {problems:?}\n{output}");
}

#[tokio::test]
async fn an_output_that_breaks_the_agents_own_schema_is_invalid_output() {
    let liar = load("hostile-liar").await;
    let run = |input: Value| {
        let liar = liar.clone();
        async move {
            sandbox()
                .invoke(
                    &liar,
                    &SandboxPolicy::default(),
                    InvocationRequest::new(input),
                    &CancellationToken::new(),
                )
                .await
                .result
        }
    };
    assert_eq!(run(json!({"count": 3})).await.unwrap(), json!({"count": 3}));
    let error = run(json!({"count": "three"})).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::InvalidOutput);
    assert!(error.to_string().contains("/count"), "{error}");
}
