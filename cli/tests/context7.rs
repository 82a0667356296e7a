//! The Context7 research agent, the same `.wasm` in its three places: a
//! workflow step (`orchestr8 run`), a microservice (`orchestr8 agent
//! serve`, `POST /process`) and a Claude Code tool (`orchestr8 mcp`, a real
//! MCP stdio session), all real processes against a fake Context7 on
//! loopback serving the recorded response shapes of `fixtures/context7.json`.
//! Nothing here touches the internet.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use support::fake::FakeServer;
use support::{Server, orchestr8};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, Request, ResponseTemplate};

const QUESTION: &str = "How do I add middleware that logs every request?";
const KEY: &str = "ctx7sk-test-0123456789";

/// The research agent's id and built component: the Rust agent, or its
/// TypeScript twin.
#[derive(Clone, Copy)]
enum Twin {
    Rust,
    TypeScript,
}

impl Twin {
    fn id(self) -> &'static str {
        match self {
            Twin::Rust => "@orchestr8/context7",
            Twin::TypeScript => "@orchestr8/ts-context7",
        }
    }

    fn component(self) -> PathBuf {
        let file = match self {
            Twin::Rust => "wasm32-wasip2/release/context7.wasm",
            Twin::TypeScript => "guests/ts_context7.wasm",
        };
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../agents/target")
            .join(file);
        assert!(path.is_file(), "build the agents first: scripts/test");
        path
    }
}

fn component() -> PathBuf {
    Twin::Rust.component()
}

/// A recorded response body from `fixtures/context7.json`.
fn recorded(url_part: &str) -> Value {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/context7.json"),
    )
    .unwrap();
    let fixtures: Vec<Value> = serde_json::from_str(&text).unwrap();
    fixtures
        .into_iter()
        .find(|f| f["request"]["url"].as_str().unwrap().contains(url_part))
        .unwrap_or_else(|| panic!("no fixture for {url_part}"))["response"]["body"]
        .clone()
}

/// A fake Context7 (and, when asked, a fake model) on loopback.
struct Fake(FakeServer);

impl Fake {
    fn start() -> Fake {
        Fake(FakeServer::start())
    }

    fn mount(&self, mock: Mock) {
        self.0.mount(mock);
    }

    /// Search for `name` answers the recorded axum results; the docs of
    /// `/tokio-rs/axum` answer the recorded snippets.
    fn with_axum(self) -> Fake {
        self.mount(
            Mock::given(method("GET"))
                .and(path("/api/v2/libs/search"))
                .and(query_param("libraryName", "axum"))
                .respond_with(
                    ResponseTemplate::new(200).set_body_json(recorded("libraryName=axum")),
                ),
        );
        self.mount(
            Mock::given(method("GET"))
                .and(path("/api/v2/context"))
                .and(query_param("libraryId", "/tokio-rs/axum"))
                .respond_with(
                    ResponseTemplate::new(200)
                        .set_body_json(recorded("libraryId=%2Ftokio-rs%2Faxum")),
                ),
        );
        self
    }

    /// An Anthropic Messages API that answers `text` to every request.
    fn with_model(self, text: &str) -> Fake {
        self.mount(
            Mock::given(method("POST"))
                .and(path("/v1/messages"))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn", "usage": {"input_tokens": 900, "output_tokens": 12}
            }))),
        );
        self
    }

    /// The research agent's config: this fake as Context7 and as the model.
    fn config_with_model(&self) -> Value {
        json!({
            "baseUrl": self.base_url(),
            "llm": {"provider": "anthropic", "model": "claude-sonnet-4-5", "baseUrl": self.0.uri(), "apiKeySecret": "context7-api-key"}
        })
    }

    fn requests(&self) -> Vec<Request> {
        self.0.requests()
    }

    fn hits(&self, path_suffix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.url.path().ends_with(path_suffix))
            .count()
    }

    fn port(&self) -> u16 {
        self.0.port()
    }

    fn base_url(&self) -> String {
        format!("{}/api", self.0.uri())
    }
}

/// `value` written as TOML (JSON strings and numbers are valid TOML;
/// objects become inline tables).
fn toml_value(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k} = {}", toml_value(v)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml_value).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// A project holding the prebuilt research agent, allowed to reach the
/// fake only, with `config` as its project config.
struct Project {
    dir: tempfile::TempDir,
    id: &'static str,
}

impl Project {
    fn new(fake: &Fake, config: Value) -> Project {
        Project::of(Twin::Rust, fake, config)
    }

    fn of(twin: Twin, fake: &Fake, config: Value) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let config_toml: String = config
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k} = {}\n", toml_value(v)))
            .collect();
        let id = twin.id();
        let manifest = format!(
            r#"[project]
name = "research"

[agents."{id}"]
component = "{}"
limits = {{ timeout_ms = 20000 }}
grants = {{ allowed_hosts = ["127.0.0.1:{}"], secrets = ["context7-api-key"] }}

[agents."{id}".config]
{config_toml}"#,
            twin.component().display(),
            fake.port()
        );
        std::fs::write(dir.path().join("orchestr8.toml"), manifest).unwrap();
        Project { dir, id }
    }

    fn with_base_url(fake: &Fake) -> Project {
        Project::new(fake, json!({"baseUrl": fake.base_url()}))
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = orchestr8();
        command
            .arg("-C")
            .arg(self.path())
            .args(args)
            .env("ORCHESTR8_STATE_DIR", self.path().join("state"))
            .env("ORCHESTR8_SECRET_CONTEXT7_API_KEY", KEY);
        command
    }

    /// Runs a one-step workflow of the agent with `policies`; the result.
    fn run_workflow(&self, input: Value, policies: Value) -> (Output, Value) {
        let workflow = json!({
            "version": "1.0.0", "schemaVersion": "1.0.0",
            "metadata": {"id": "5e2d1c0b-9a8f-4e7d-8c6b-5a4f3e2d1c0b", "name": "research"},
            "steps": [{
                "id": "research", "name": "research",
                "agent": {"id": self.id},
                "input": {"mapping": input},
                "policies": policies
            }]
        });
        let file = self.path().join("workflow.json");
        std::fs::write(&file, workflow.to_string()).unwrap();
        let out = self
            .command(&["run", "workflow.json", "--json", "--quiet"])
            .output()
            .unwrap();
        let result = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "no result ({e}); stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out, result)
    }

    /// `orchestr8 agent serve` on an ephemeral port.
    fn serve(&self) -> Server {
        let mut command = self.command(&["agent", "serve", self.id, "--bind", "127.0.0.1:0"]);
        command.stderr(Stdio::inherit());
        Server::start(command)
    }

    fn mcp(&self) -> Mcp {
        let mut command = self.command(&["mcp"]);
        command.stderr(Stdio::inherit());
        Mcp::spawn(command)
    }
}

/// `POST /process` with `input`: the status and the JSON body.
fn process(server: &Server, input: &Value) -> (u16, Value) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent();
    let mut response = agent
        .post(&format!("{}/process", server.base))
        .send_json(input)
        .unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_json().unwrap())
}

/// A client's end of an MCP stdio session, as Claude Code drives it.
struct Mcp {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
}

impl Mcp {
    /// Starts `command` (an `orchestr8 mcp`) with piped stdin and stdout;
    /// every stdout line must be a JSON-RPC message.
    fn spawn(mut command: Command) -> Mcp {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let message: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout carried a non-JSON line ({e}): {line}"));
                if tx.send(message).is_err() {
                    break;
                }
            }
        });
        Mcp {
            child,
            stdin: Some(stdin),
            lines,
        }
    }

    fn send(&mut self, message: &Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    }

    /// Sends a request; returns the reply with the same id (replies may
    /// come out of order; notifications in between are skipped).
    fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let message = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("no reply to {method}: {e}"));
            if message["id"] == json!(id) {
                return message;
            }
        }
    }

    fn open(&mut self) -> Value {
        let init = self.request(
            1,
            "initialize",
            json!({
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "claude-code", "version": "2.0.0"}
            }),
        );
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        init
    }

    fn call(&mut self, id: u64, tool: &str, arguments: Value) -> Value {
        self.request(
            id,
            "tools/call",
            json!({"name": tool, "arguments": arguments}),
        )
    }

    /// Closes stdin, as a client leaving does; the exit code.
    fn close(mut self) -> Option<i32> {
        drop(self.stdin.take());
        self.child.wait().unwrap().code()
    }
}

fn axum_input() -> Value {
    json!({"query": QUESTION, "library": "axum", "topic": "middleware", "tokens": 2000})
}

/// What the three places answered for `axum_input()`: the brief from a
/// workflow step, from `/process` and from an MCP tool call; the MCP
/// `initialize` reply, the tool listed, and the tool call's reply.
struct ThreePlaces {
    briefs: [Value; 3],
    init: Value,
    tool: Value,
    called: Value,
}

impl Project {
    fn three_places(&self) -> ThreePlaces {
        let (out, result) = self.run_workflow(axum_input(), json!({}));
        assert_eq!(out.status.code(), Some(0), "{result}");
        let from_workflow = result["steps"]["research"]["output"].clone();

        let served = self.serve();
        let (status, from_process) = process(&served, &axum_input());
        assert_eq!(status, 200, "{from_process}");

        let mut mcp = self.mcp();
        let init = mcp.open();
        let tools = mcp.request(2, "tools/list", json!({}));
        let tool = tools["result"]["tools"][0].clone();
        let name = tool["name"].as_str().unwrap_or_default().to_string();
        let called = mcp.call(3, &name, axum_input());
        assert_eq!(called["result"]["isError"], false, "{called}");
        let from_mcp = called["result"]["structuredContent"].clone();
        assert_eq!(mcp.close(), Some(0), "the server ends when stdin closes");
        ThreePlaces {
            briefs: [from_workflow, from_process, from_mcp],
            init,
            tool,
            called,
        }
    }
}

#[test]
fn the_same_brief_comes_from_a_workflow_step_a_microservice_and_claude_code() {
    let fake = Fake::start().with_axum();
    let project = Project::with_base_url(&fake);
    let ThreePlaces {
        briefs: [from_workflow, from_process, from_mcp],
        init,
        tool,
        called,
    } = project.three_places();
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");
    assert_eq!(init["result"]["serverInfo"]["name"], "orchestr8");
    assert_eq!(tool["name"], "orchestr8_context7", "{tool}");
    assert!(tool["description"].as_str().unwrap().contains("Context7"));
    assert_eq!(tool["inputSchema"]["required"], json!(["query"]), "{tool}");
    let text = called["result"]["content"][0]["text"].as_str().unwrap();
    assert_eq!(serde_json::from_str::<Value>(text).unwrap(), from_mcp);

    assert_eq!(from_workflow, from_process);
    assert_eq!(from_workflow, from_mcp);
    let brief = from_workflow;
    assert_eq!(brief["library"]["id"], "/tokio-rs/axum");
    assert_eq!(brief["library"]["trust"], "High");
    assert!(
        brief["reason"]
            .as_str()
            .unwrap()
            .contains("matches \"axum\" exactly"),
        "{brief}"
    );
    let alternatives: Vec<&str> = brief["alternatives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        alternatives,
        [
            "/websites/docs_rs-axum",
            "/maxcountryman/axum-login",
            "/tokio-rs/axum-next"
        ]
    );
    assert_eq!(brief["snippets"].as_array().unwrap().len(), 3);
    assert!(
        brief["sources"][0]
            .as_str()
            .unwrap()
            .starts_with("https://github.com/tokio-rs/axum")
    );
    assert!(
        brief.get("answer").is_none(),
        "no model configured: the brief alone"
    );

    // Every call sent the granted key and asked in Context7's current shape.
    let requests = fake.requests();
    assert_eq!(requests.len(), 6, "search and docs, three times");
    for r in &requests {
        assert_eq!(
            r.headers.get("authorization").unwrap().to_str().unwrap(),
            format!("Bearer {KEY}")
        );
    }
    let docs = requests
        .iter()
        .find(|r| r.url.path() == "/api/v2/context")
        .unwrap();
    let query: Vec<(String, String)> = docs.url.query_pairs().into_owned().collect();
    assert!(query.contains(&("type".into(), "json".into())), "{query:?}");
    assert!(
        query.contains(&("query".into(), format!("middleware: {QUESTION}"))),
        "{query:?}"
    );
}

#[rstest::rstest]
#[case::rust(Twin::Rust)]
#[case::typescript(Twin::TypeScript)]
fn with_a_model_configured_the_brief_carries_a_cited_answer_from_an_xml_prompt(#[case] twin: Twin) {
    let fake = Fake::start()
        .with_axum()
        .with_model("Add TraceLayer with Router::layer [1].");
    let project = Project::of(twin, &fake, fake.config_with_model());
    let served = project.serve();
    let (status, brief) = process(&served, &axum_input());
    assert_eq!(status, 200, "{brief}");
    assert_eq!(
        brief["answer"]["text"],
        "Add TraceLayer with Router::layer [1]."
    );
    assert_eq!(brief["answer"]["provider"], "anthropic");
    assert_eq!(brief["answer"]["completion"]["inputTokens"], 900);
    let prompt: Value = fake
        .requests()
        .iter()
        .find(|r| r.url.path() == "/v1/messages")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .unwrap();
    assert!(
        prompt["system"].as_str().unwrap().starts_with("<role>"),
        "{prompt}"
    );
    let user = prompt["messages"][0]["content"].as_str().unwrap();
    assert!(
        user.contains(&format!("<question>{QUESTION}</question>")),
        "{user}"
    );
    assert!(user.contains("<snippet n=\"1\""), "{user}");
    assert!(
        user.contains("<library id=\"/tokio-rs/axum\" title=\"axum\""),
        "{user}"
    );
}

/// The user message the fake model was sent last.
fn last_prompt(fake: &Fake) -> String {
    let sent: Value = fake
        .requests()
        .iter()
        .rev()
        .find(|r| r.url.path() == "/v1/messages")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .unwrap();
    sent["messages"][0]["content"].as_str().unwrap().to_string()
}

#[rstest::rstest]
#[case::rust(Twin::Rust)]
#[case::typescript(Twin::TypeScript)]
fn the_config_chooses_the_prompt_template_and_refuses_an_unknown_one(#[case] twin: Twin) {
    let fake = Fake::start().with_axum().with_model("Use TraceLayer [1].");
    let template = |name: &str| {
        let mut config = fake.config_with_model();
        config["prompt"] = json!(name);
        config
    };
    let cited = Project::of(twin, &fake, template("cited")).serve();
    let (status, brief) = process(&cited, &axum_input());
    assert_eq!(status, 200, "{brief}");
    let user = last_prompt(&fake);
    assert!(user.contains("<rules>"), "{user}");
    assert!(
        user.contains("Every sentence that states something"),
        "{user}"
    );
    assert!(user.contains(&format!("<question>{QUESTION}</question>")));
    drop(cited);

    let plain = Project::of(twin, &fake, template("research")).serve();
    assert_eq!(process(&plain, &axum_input()).0, 200);
    let user = last_prompt(&fake);
    assert!(!user.contains("<rules>"), "{user}");
    assert!(user.contains("A direct answer first"), "{user}");
    drop(plain);

    let unknown = Project::of(twin, &fake, template("shouty")).serve();
    let (status, error) = process(&unknown, &axum_input());
    assert_ne!(status, 200, "{error}");
    assert_eq!(error["error"]["code"], "INVALID_INPUT", "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("config") && message.contains("cited"),
        "{message}"
    );
}

#[test]
fn an_unknown_library_is_invalid_input_with_suggestions() {
    let fake = Fake::start().with_axum();
    fake.mount(
        Mock::given(method("GET"))
            .and(path("/api/v2/libs/search"))
            .and(query_param("libraryName", "no-such-library"))
            .respond_with(ResponseTemplate::new(404).set_body_json(json!({
                "error": "no_libraries_found", "message": "No libraries found matching the provided name."
            }))),
    );
    fake.mount(
        Mock::given(method("GET"))
            .and(path("/api/v2/context"))
            .and(query_param("libraryId", "/tokio/axum"))
            .respond_with(ResponseTemplate::new(404).set_body_json(json!({
                "error": "library_not_found", "message": "Library /tokio/axum not found."
            }))),
    );
    let project = Project::with_base_url(&fake);
    let served = project.serve();

    let (status, body) = process(
        &served,
        &json!({"query": QUESTION, "library": "no-such-library"}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "INVALID_INPUT");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("library not found on Context7: `no-such-library`"),
        "{message}"
    );

    // A wrong id: the agent searches by its name and suggests the real one.
    let (status, body) = process(
        &served,
        &json!({"query": QUESTION, "library": "/tokio/axum"}),
    );
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("did you mean /tokio-rs/axum (axum)"),
        "{message}"
    );
    // The agent's own details, under the resilience chain's cause.
    assert_eq!(
        body["error"]["details"]["cause"]["details"]["suggestions"][0]["id"], "/tokio-rs/axum",
        "{body}"
    );
}

#[test]
fn a_rejected_key_is_fatal_names_the_secret_and_never_echoes_the_key() {
    let fake = Fake::start();
    fake.mount(
        Mock::given(method("GET"))
            .and(path("/api/v2/libs/search"))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({
                "error": "invalid_api_key", "message": format!("Invalid API key: {KEY}")
            }))),
    );
    let project = Project::with_base_url(&fake);
    let (out, result) = project.run_workflow(axum_input(), json!({"retry": {"maxAttempts": 3}}));
    assert_eq!(out.status.code(), Some(1));
    let step = &result["steps"]["research"];
    assert_eq!(step["error"]["code"], "FATAL", "{result}");
    assert_eq!(step["attempts"], 1, "a fatal failure is never retried");
    let message = step["error"]["message"].as_str().unwrap();
    assert!(message.contains("`context7-api-key` secret"), "{message}");
    let everything = format!(
        "{result}{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(
            &project
                .command(&["inspect", "--last", "--json"])
                .output()
                .unwrap()
                .stdout
        )
    );
    assert!(!everything.contains(KEY), "the key leaked: {everything}");
}

#[test]
fn a_rate_limit_is_retried_after_the_servers_retry_after_then_succeeds() {
    let fake = Fake::start().with_axum();
    fake.mount(
        Mock::given(method("GET"))
            .and(path("/api/v2/libs/search"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "1")
                    .set_body_json(
                        json!({"error": "rate_limit_exceeded", "message": "Rate limit exceeded"}),
                    ),
            )
            .up_to_n_times(1)
            .with_priority(1),
    );
    let project = Project::with_base_url(&fake);
    let (out, result) = project.run_workflow(
        axum_input(),
        json!({"retry": {"maxAttempts": 3, "baseDelayMs": 10}}),
    );
    assert_eq!(out.status.code(), Some(0), "{result}");
    let step = &result["steps"]["research"];
    assert_eq!(step["attempts"], 2, "{result}");
    assert_eq!(step["output"]["library"]["id"], "/tokio-rs/axum");
    let journal: Value = serde_json::from_slice(
        &project
            .command(&["inspect", "--last", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let retry = journal["journal"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "retry-scheduled")
        .unwrap_or_else(|| panic!("no retry in {journal}"));
    assert!(
        retry["data"]["event"]["delayMs"].as_u64().unwrap() >= 1000,
        "{retry}"
    );
    assert_eq!(fake.hits("/libs/search"), 2);
}

#[test]
fn server_errors_open_the_circuit_breaker() {
    let fake = Fake::start();
    fake.mount(
        Mock::given(method("GET"))
            .and(path("/api/v2/libs/search"))
            .respond_with(
                ResponseTemplate::new(503)
                    .set_body_json(json!({"error": "search_failed", "message": "Search failed"})),
            ),
    );
    let project = Project::with_base_url(&fake);
    let (out, result) = project.run_workflow(
        axum_input(),
        json!({
            "retry": {"maxAttempts": 5, "baseDelayMs": 10, "maxDelayMs": 20},
            "circuitBreaker": {"failureThreshold": 2, "resetTimeoutMs": 60000}
        }),
    );
    assert_eq!(out.status.code(), Some(1));
    let step = &result["steps"]["research"];
    assert_eq!(step["error"]["code"], "CIRCUIT_OPEN", "{result}");
    assert_eq!(step["attempts"], 2, "two failures, then refused: {result}");
    let message = step["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("call refused after 2 attempts"),
        "{message}"
    );
    assert_eq!(fake.hits("/libs/search"), 2, "an open circuit calls nobody");
}

#[test]
fn a_huge_lying_answer_is_cut_to_the_token_budget() {
    let fake = Fake::start();
    fake.mount(
        Mock::given(method("GET"))
            .and(path("/api/v2/libs/search"))
            .respond_with(ResponseTemplate::new(200).set_body_json(recorded("libraryName=axum"))),
    );
    let huge: Vec<Value> = (0..40)
        .map(|i| {
            json!({
                "codeTitle": format!("snippet {i}"), "codeTokens": 1,
                "codeId": format!("https://example.com/{i}"),
                "codeList": [{"language": "rust", "code": "x".repeat(100_000)}]
            })
        })
        .collect();
    fake.mount(
        Mock::given(method("GET"))
            .and(path("/api/v2/context"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"codeSnippets": huge, "infoSnippets": []})),
            ),
    );
    let project = Project::with_base_url(&fake);
    let served = project.serve();
    let (status, brief) = process(
        &served,
        &json!({"query": QUESTION, "library": "axum", "tokens": 500}),
    );
    assert_eq!(status, 200, "{brief}");
    assert!(
        brief["budget"]["used"].as_u64().unwrap() <= 500,
        "{}",
        brief["budget"]
    );
    assert_eq!(brief["budget"]["returned"], 40);
    assert_eq!(brief["budget"]["omitted"], 39);
    let content = brief["snippets"][0]["content"].as_str().unwrap();
    assert!(content.chars().count() <= 2000);
    assert!(content.ends_with("[… cut to the token budget]"));
}

#[test]
fn a_host_outside_the_grants_is_refused() {
    let fake = Fake::start().with_axum();
    let elsewhere = Fake::start().with_axum();
    // Allowed to reach `fake`, configured to call `elsewhere`.
    let project = Project::new(&fake, json!({"baseUrl": elsewhere.base_url()}));
    let served = project.serve();
    let (status, body) = process(&served, &axum_input());
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "CAPABILITY_DENIED", "{body}");
    assert!(
        elsewhere.requests().is_empty(),
        "the request never left the sandbox"
    );
    assert!(fake.requests().is_empty());
}

#[test]
fn mcp_reports_agent_failures_as_tool_errors_and_unknown_tools_as_protocol_errors() {
    let fake = Fake::start().with_axum();
    let project = Project::with_base_url(&fake);
    let mut mcp = project.mcp();
    mcp.open();
    let failed = mcp.call(2, "orchestr8_context7", json!({"query": ""}));
    assert_eq!(failed["result"]["isError"], true, "{failed}");
    let text = failed["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("INVALID_INPUT: "), "{text}");
    let wrong = mcp.call(3, "orchestr8_context7", json!({"query": "q", "nope": 1}));
    assert_eq!(wrong["result"]["isError"], true, "{wrong}");
    let unknown = mcp.call(4, "no_such_tool", json!({}));
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    // The session is still good after all that.
    let tools = mcp.request(5, "tools/list", json!({}));
    assert_eq!(tools["result"]["tools"].as_array().unwrap().len(), 1);
    let prompts = mcp.request(6, "prompts/list", json!({}));
    assert_eq!(prompts["result"]["prompts"], json!([]), "{prompts}");
    assert_eq!(mcp.close(), Some(0));
}

#[test]
fn claude_install_writes_the_mcp_entry_and_the_researcher_sub_agent() {
    let fake = Fake::start();
    let project = Project::with_base_url(&fake);
    let root = project.path();
    std::fs::write(
        root.join(".mcp.json"),
        r#"{"mcpServers": {"other": {"type": "stdio", "command": "other-server"}}}"#,
    )
    .unwrap();
    let out = project.command(&["claude", "install"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mcp: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join(".mcp.json")).unwrap()).unwrap();
    assert_eq!(
        mcp["mcpServers"]["other"]["command"], "other-server",
        "kept"
    );
    assert_eq!(
        mcp["mcpServers"]["orchestr8"],
        json!({"type": "stdio", "command": "orchestr8", "args": ["mcp", "-C", "${CLAUDE_PROJECT_DIR:-.}"]})
    );
    let agent_file = root.join(".claude/agents/context7-researcher.md");
    let text = std::fs::read_to_string(&agent_file).unwrap();
    assert!(
        text.starts_with("---\nname: context7-researcher\ndescription: "),
        "{text}"
    );
    assert!(
        text.contains("\ntools: mcp__orchestr8__orchestr8_context7\n---\n"),
        "{text}"
    );
    assert!(!text.contains("{{"), "{text}");

    // Run again: the sub-agent someone edited is kept unless --force.
    std::fs::write(&agent_file, "edited").unwrap();
    let out = project.command(&["claude", "install"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("kept"));
    assert_eq!(std::fs::read_to_string(&agent_file).unwrap(), "edited");
    let out = project
        .command(&["claude", "install", "--force"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_ne!(std::fs::read_to_string(&agent_file).unwrap(), "edited");

    // A broken .mcp.json is reported, and nothing is written.
    std::fs::write(root.join(".mcp.json"), "{not json").unwrap();
    std::fs::remove_file(&agent_file).unwrap();
    let out = project.command(&["claude", "install"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(".mcp.json` is not valid JSON"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(root.join(".mcp.json")).unwrap(),
        "{not json"
    );
    assert!(!agent_file.exists());

    let out = project
        .command(&["claude", "install", "--agent", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no agent `nope`"));
}

#[test]
fn an_mcp_cancellation_stops_the_sandboxed_call() {
    let agents = component().parent().unwrap().to_path_buf();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut command = orchestr8();
    command
        .args([
            "mcp",
            "--agent",
            "@hostile/sleep",
            "--log-level",
            "info",
            "--agents-dir",
        ])
        .arg(&agents)
        .stderr(log.reopen().unwrap());
    let mut mcp = Mcp::spawn(command);
    mcp.open();
    // A call that would block for a minute, then its cancellation.
    mcp.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "hostile_sleep", "arguments": {"seconds": 60}}}));
    std::thread::sleep(Duration::from_millis(300));
    mcp.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 2, "reason": "the user pressed Esc"}}),
    );
    let started = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(log.path()).unwrap();
        if text.contains("code=CANCELLED") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the sandboxed call was not stopped:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let tools = mcp.request(3, "tools/list", json!({}));
    assert_eq!(
        tools["result"]["tools"][0]["name"], "hostile_sleep",
        "{tools}"
    );
    assert_eq!(mcp.close(), Some(0));
}

/// The official MCP Python SDK (a client nobody here wrote) drives
/// `orchestr8 mcp` over the research project: the Context7 agent against
/// the fake, and the echo agent whose input may be anything. The script
/// asserts what the SDK accepted; here, that the cancelled call was stopped.
#[test]
fn the_official_mcp_python_sdk_accepts_the_research_tools() {
    let python = support::clients_python();
    let fake = Fake::start().with_axum();
    fake.mount(
        Mock::given(method("GET"))
            .and(path("/api/v2/libs/search"))
            .and(query_param("libraryName", "slow-lib"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_delay(Duration::from_secs(60))
                    .set_body_json(recorded("libraryName=axum")),
            ),
    );
    let project = Project::with_base_url(&fake);
    let echo = component().with_file_name("echo.wasm");
    let manifest = project.path().join("orchestr8.toml");
    let mut toml = std::fs::read_to_string(&manifest).unwrap();
    toml.push_str(&format!(
        "\n[agents.\"@orchestr8/echo\"]\ncomponent = \"{}\"\n",
        echo.display()
    ));
    std::fs::write(&manifest, toml).unwrap();
    let out = Command::new(python)
        .arg(support::client_script("mcp_session.py"))
        .arg(env!("CARGO_BIN_EXE_orchestr8"))
        .arg(project.path())
        .arg("slow-lib")
        .env("ORCHESTR8_STATE_DIR", project.path().join("state"))
        .env("ORCHESTR8_SECRET_CONTEXT7_API_KEY", KEY)
        .env(
            "ORCHESTR8_CACHE_DIR",
            std::env::temp_dir().join("orchestr8-cli-tests-cache"),
        )
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the MCP SDK session failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("the session goes on after a cancellation"),
        "{stdout}"
    );
    assert!(
        stderr.contains("code=CANCELLED"),
        "the cancelled call reached the sandbox:\n{stderr}"
    );
    assert!(
        fake.hits("/libs/search") >= 2,
        "the slow search reached the fake"
    );
}

/// Numbers compared by value: serde writes `0.0` where JavaScript writes `0`.
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

/// The briefs of `twin` from the three places, with a model configured.
fn briefs(twin: Twin, fake: &Fake) -> [Value; 3] {
    Project::of(twin, fake, fake.config_with_model())
        .three_places()
        .briefs
        .map(by_value)
}

/// The TypeScript twin, side by side with the Rust agent on the same fake
/// Context7 and model: the same brief (with the model's answer) in each of
/// the three places, from the same prompt.
#[test]
fn the_typescript_twin_gives_the_rust_agents_brief_in_all_three_places() {
    let fake = Fake::start()
        .with_axum()
        .with_model(" Add TraceLayer with Router::layer [1]. ");
    let rust = briefs(Twin::Rust, &fake);
    let ts = briefs(Twin::TypeScript, &fake);
    assert!(
        rust[0]["snippets"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    );
    assert_eq!(
        rust[0]["answer"]["text"],
        "Add TraceLayer with Router::layer [1]."
    );
    let prompts: Vec<Value> = fake
        .requests()
        .iter()
        .filter(|r| r.url.path() == "/v1/messages")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(prompts.len(), 6, "three calls of each twin");
    assert!(prompts.iter().all(|p| *p == prompts[0]), "{prompts:?}");
    for (place, (r, t)) in ["workflow step", "/process", "MCP tool"]
        .iter()
        .zip(rust.iter().zip(ts.iter()))
    {
        assert_eq!(t, r, "{place}");
    }
    assert_eq!(rust[0], rust[1]);
    assert_eq!(rust[1], rust[2]);
}
