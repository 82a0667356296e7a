//! Agents written in Python (`agent-sdk/python`, componentize-py) and in
//! TypeScript (`agent-sdk/typescript`, ComponentizeJS), from `agents/python/`
//! and `agents/typescript/` (built by `scripts/build-agents`): each SDK's
//! contract as the host sees it, and the sandbox's limits holding for an
//! interpreter inside the component as they do for Rust. One suite, run for
//! both languages.

use orchestr8_host::sandbox::{
    InvocationOutcome, InvocationRequest, InvokeError, LoadedAgent, SandboxPolicy, SecretValue,
};
use orchestr8_host::{Coded, ErrorCode};
use rstest::rstest;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::hostile::limits;
use crate::support::{TestServer, agent_path, sandbox};

/// A guest language: its greeter and hostile agents.
#[derive(Clone, Copy, Debug)]
enum Lang {
    Python,
    TypeScript,
}

impl Lang {
    fn prefix(self) -> &'static str {
        match self {
            Lang::Python => "py",
            Lang::TypeScript => "ts",
        }
    }

    fn greeter(self) -> &'static str {
        match self {
            Lang::Python => "py-greeter",
            Lang::TypeScript => "ts-greeter",
        }
    }

    fn hostile(self) -> &'static str {
        match self {
            Lang::Python => "py-hostile",
            Lang::TypeScript => "ts-hostile",
        }
    }
}

/// Each component is 19 MB: compile it once for the whole process.
async fn load(name: &'static str) -> LoadedAgent {
    static CELLS: [OnceCell<LoadedAgent>; 4] = [const { OnceCell::const_new() }; 4];
    let index = match name {
        "py-greeter" => 0,
        "py-hostile" => 1,
        "ts-greeter" => 2,
        "ts-hostile" => 3,
        other => panic!("no guest-language agent {other}"),
    };
    CELLS[index]
        .get_or_init(|| async { sandbox().load(agent_path(name)).await.unwrap() })
        .await
        .clone()
}

async fn invoke(
    name: &'static str,
    request: InvocationRequest,
    policy: &SandboxPolicy,
) -> InvocationOutcome {
    let agent = load(name).await;
    sandbox()
        .invoke(&agent, policy, request, &CancellationToken::new())
        .await
}

async fn greet(lang: Lang, input: Value) -> Result<Value, InvokeError> {
    invoke(
        lang.greeter(),
        InvocationRequest::new(input),
        &SandboxPolicy::default(),
    )
    .await
    .result
}

#[rstest]
#[tokio::test]
async fn the_sdk_publishes_schemas_derived_from_the_types(
    #[values(Lang::Python, Lang::TypeScript)] lang: Lang,
) {
    let agent = load(lang.greeter()).await;
    let info = agent.info();
    assert_eq!(info.id, format!("@orchestr8/{}-greeter", lang.prefix()));
    assert_eq!(info.version, "0.1.0");
    let input = &info.input_schema;
    assert_eq!(input["type"], "object");
    assert_eq!(
        input["required"],
        json!(["name"]),
        "a field with a default is optional to read"
    );
    assert_eq!(input["properties"]["name"]["description"], "Who to greet.");
    assert_eq!(input["properties"]["shout"]["type"], "boolean");
    let output = &info.output_schema;
    assert_eq!(
        output["required"],
        json!(["greeting", "attempt"]),
        "every field is written"
    );
    assert_eq!(output["properties"]["attempt"]["type"], "integer");
}

#[rstest]
#[tokio::test]
async fn an_agent_answers_with_typed_output_and_sees_its_attempt(
    #[values(Lang::Python, Lang::TypeScript)] lang: Lang,
) {
    let mut request = InvocationRequest::new(json!({"name": "Ada", "shout": true}));
    request.attempt = 3;
    let outcome = invoke(lang.greeter(), request, &SandboxPolicy::default()).await;
    assert_eq!(
        outcome.result.unwrap(),
        json!({"greeting": "HELLO, ADA!", "attempt": 3})
    );
    let logged = outcome.logs.iter().any(|l| l.message == "greeting someone");
    assert!(logged, "structured logs reach the host: {:?}", outcome.logs);
}

#[rstest]
#[case::rejected_by_the_agent(json!({"name": "  "}), ["name must not be empty"; 2])]
#[case::missing_field(json!({"shout": true}), ["missing field `name`", "$.name: Invalid input: expected string, received undefined"])]
#[case::wrong_type_names_the_path(json!({"name": 7}), ["$.name: expected a string, got a number", "$.name: Invalid input: expected string, received number"])]
#[tokio::test]
async fn bad_input_is_invalid_input_with_the_reason(
    #[values(Lang::Python, Lang::TypeScript)] lang: Lang,
    #[case] input: Value,
    #[case] reasons: [&str; 2],
) {
    let error = greet(lang, input).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::InvalidInput, "{error}");
    let reason = reasons[lang as usize];
    assert!(error.to_string().contains(reason), "{error}");
}

#[rstest]
#[case::memory_bomb_hits_the_memory_cap("allocate", limits(|l| l.memory_bytes = 64 << 20), ErrorCode::MemoryLimit)]
#[case::endless_loop_runs_out_of_fuel("spin", limits(|l| l.fuel = 2_000_000_000), ErrorCode::FuelExhausted)]
#[case::endless_loop_is_stopped_by_its_deadline("spin", limits(|l| { l.fuel = u64::MAX; l.timeout_ms = 500 }), ErrorCode::Timeout)]
#[case::unhandled_exception_is_fatal("raise", SandboxPolicy::default(), ErrorCode::Fatal)]
#[case::ungranted_secret_is_denied("secret", SandboxPolicy::default(), ErrorCode::CapabilityDenied)]
#[case::retryable_is_retryable("retry", SandboxPolicy::default(), ErrorCode::Retryable)]
#[tokio::test]
async fn every_language_meets_the_same_limits_and_codes(
    #[values(Lang::Python, Lang::TypeScript)] lang: Lang,
    #[case] what: &str,
    #[case] policy: SandboxPolicy,
    #[case] expected: ErrorCode,
) {
    let outcome = invoke(
        lang.hostile(),
        InvocationRequest::new(json!({"do": what})),
        &policy,
    )
    .await;
    let error = outcome.result.expect_err("the hostile agent must fail");
    assert_eq!(error.code(), expected, "{lang:?} {what}: {error}");
    let after = greet(lang, json!({"name": "still standing"}))
        .await
        .unwrap();
    assert_eq!(after["greeting"], "Hello, still standing!");
}

#[rstest]
#[case::python(Lang::Python, "unhandled KeyError")]
#[case::typescript(
    Lang::TypeScript,
    "unhandled TypeError: can't access property \"field\""
)]
#[tokio::test]
async fn unhandled_exceptions_name_the_exception(#[case] lang: Lang, #[case] expected: &str) {
    let outcome = invoke(
        lang.hostile(),
        InvocationRequest::new(json!({"do": "raise"})),
        &SandboxPolicy::default(),
    )
    .await;
    let error = outcome.result.unwrap_err();
    assert!(error.to_string().contains(expected), "{error}");
}

#[rstest]
#[tokio::test]
async fn retry_after_and_granted_secrets_cross_the_contract(
    #[values(Lang::Python, Lang::TypeScript)] lang: Lang,
) {
    let outcome = invoke(
        lang.hostile(),
        InvocationRequest::new(json!({"do": "retry"})),
        &SandboxPolicy::default(),
    )
    .await;
    match outcome.result.unwrap_err() {
        InvokeError::Retryable(failure) => assert_eq!(failure.retry_after_ms, Some(1500)),
        other => panic!("expected a retryable failure, got {other:?}"),
    }

    let mut policy = SandboxPolicy::default();
    policy.grants.secrets = vec!["API_KEY".into()];
    policy
        .secret_values
        .insert("API_KEY".into(), SecretValue::new("s3cr3t"));
    let outcome = invoke(
        lang.hostile(),
        InvocationRequest::new(json!({"do": "secret"})),
        &policy,
    )
    .await;
    assert_eq!(outcome.result.unwrap(), json!({"value": "read"}));
}

/// The Python SDK's own unit tests (schemas, JSON conversion, errors) run
/// in the machine's CPython: they need no component.
#[test]
fn the_python_sdk_unit_tests_pass() {
    let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent-sdk/python");
    let out = std::process::Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "tests"])
        .current_dir(&sdk)
        .env("PYTHONPATH", sdk.join("src"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 is needed for the Python SDK's tests");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("OK"), "{report}");
}

/// The SDK's client (`fetch` mode) and, for TypeScript, the global `fetch`
/// (`fetch-global`): both under the allowlist.
#[rstest]
#[case::python_client(Lang::Python, "fetch")]
#[case::typescript_client(Lang::TypeScript, "fetch")]
#[case::typescript_global_fetch(Lang::TypeScript, "fetch-global")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_reaches_an_allowlisted_host_and_is_denied_elsewhere(
    #[case] lang: Lang,
    #[case] mode: &str,
) {
    let server = TestServer::start("hello from loopback").await;
    let url = format!("http://127.0.0.1:{}/greeting?x=1", server.port);
    let fetch = || InvocationRequest::new(json!({"do": mode, "url": url}));

    let mut allowed = SandboxPolicy::default();
    allowed.grants.allowed_hosts = vec![format!("127.0.0.1:{}", server.port).parse().unwrap()];
    let outcome = invoke(lang.hostile(), fetch(), &allowed).await;
    assert_eq!(
        outcome.result.unwrap(),
        json!({"value": "200 hello from loopback"})
    );
    assert_eq!(server.connections(), 1);

    let outcome = invoke(lang.hostile(), fetch(), &SandboxPolicy::default()).await;
    let error = outcome.result.unwrap_err();
    assert_eq!(error.code(), ErrorCode::CapabilityDenied, "{error}");
    assert!(
        error.to_string().contains("not on the agent's allowlist"),
        "{error}"
    );
    assert_eq!(server.connections(), 1, "a denied request never connects");
}

/// Numbers compared by value: serde writes `5.0` where JavaScript writes `5`.
fn by_value(value: Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(items) => Value::Array(items.into_iter().map(by_value).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, by_value(v))).collect())
        }
        other => other,
    }
}

/// The TypeScript twin of the Context7 research agent returns the same
/// brief as the Rust agent on the same recorded Context7 answers, and fails
/// the same way where it fails.
#[rstest]
#[case::by_name_with_a_topic(json!({"query": "How do I add middleware that logs every request?", "library": "axum", "topic": "middleware"}))]
#[case::by_id(json!({"query": "How do I add middleware that logs every request?", "library": "/tokio-rs/axum", "topic": "middleware"}))]
#[case::cut_to_a_small_budget(json!({"query": "How do I add middleware that logs every request?", "library": "axum", "topic": "middleware", "tokens": 100}))]
#[case::another_library(json!({"query": "How do I add middleware that logs every request?", "library": "actix-web", "topic": "middleware"}))]
#[case::empty_query(json!({"query": "  ", "library": "axum"}))]
#[case::budget_out_of_range(json!({"query": "q", "library": "axum", "tokens": 5}))]
#[case::unknown_field(json!({"query": "q", "libary": "axum"}))]
#[case::no_recorded_answer(json!({"query": "How do I add middleware that logs every request?", "library": "tower"}))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_research_agent_returns_the_rust_agents_brief(#[case] input: Value) {
    let policy =
        || crate::outputs::recorded(&["context7.json"], &["context7.com"], &["context7-api-key"]);
    let rust = crate::support::load("context7").await;
    let ts = crate::support::load("ts-context7").await;
    let run = |agent: LoadedAgent| {
        let input = input.clone();
        async move {
            sandbox()
                .invoke(
                    &agent,
                    &policy(),
                    InvocationRequest::new(input),
                    &CancellationToken::new(),
                )
                .await
                .result
        }
    };
    match (run(rust).await, run(ts).await) {
        (Ok(rust), Ok(ts)) => {
            assert!(rust["snippets"].as_array().is_some_and(|s| !s.is_empty()));
            assert_eq!(by_value(ts), by_value(rust));
        }
        (Err(rust), Err(ts)) => {
            assert_eq!(ts.code(), rust.code(), "rust: {rust}\nts: {ts}");
            // The agents' own refusals read the same; input the SDKs'
            // schema checks reject, and transport failures, are worded by
            // each SDK.
            let own = !rust.to_string().contains("unknown field");
            if rust.code() == ErrorCode::InvalidInput && own {
                assert_eq!(ts.to_string(), rust.to_string());
            }
        }
        (rust, ts) => panic!("the twins disagree:\nrust: {rust:?}\nts: {ts:?}"),
    }
}
