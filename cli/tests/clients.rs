//! Clients nobody here wrote: Schemathesis (pinned in
//! `tests/clients/requirements.txt`, installed by `scripts/test`) checks
//! that `orchestr8 serve` and `orchestr8 agent serve` answer what their own
//! OpenAPI documents say: no server errors, only documented statuses and
//! content types, bodies that match the response schemas. It runs against
//! real executions too: the document it reads is the server's own with
//! examples added (a valid workflow, the ids of a finished and a running
//! execution), so 200 and 202 answers are checked, not only 400 and 404.
//! And openapi-spec-validator checks every document against the OpenAPI
//! 3.0 specification: the orchestrator's with and without a token, and
//! every first-party agent's, whatever its schemas hold.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::api::agents_dir;
use support::{Server, clients_python, orchestr8};

/// The four checks the outside run used.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

fn client(token: Option<&str>) -> (ureq::Agent, Option<String>) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    (agent, token.map(|t| format!("Bearer {t}")))
}

fn get(base: &str, path: &str, token: Option<&str>) -> Value {
    let (agent, auth) = client(token);
    let mut request = agent.get(&format!("{base}{path}"));
    if let Some(auth) = &auth {
        request = request.header("authorization", auth);
    }
    let mut response = request.call().unwrap();
    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
}

fn post(base: &str, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
    let (agent, auth) = client(token);
    let mut request = agent
        .post(&format!("{base}{path}"))
        .header("content-type", "application/json");
    if let Some(auth) = &auth {
        request = request.header("authorization", auth);
    }
    let mut response = request.send(body.to_string()).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Runs Schemathesis on `document` (saved to a file) against `base`; its
/// whole report is shown when it finds anything.
fn schemathesis(document: &Value, base: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_string_pretty(document).unwrap()).unwrap();
    let out = Command::new(clients_python().with_file_name("schemathesis"))
        .arg("run")
        .arg(&file)
        .args(["--url", base, "--checks", CHECKS])
        .args(["--max-examples", "40", "--seed", "1"])
        .args(extra)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    if std::env::var_os("SHOW_REPORT").is_some() {
        eprintln!("{report}");
    }
    assert!(
        out.status.success(),
        "Schemathesis found the server untrue to its document:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("passed"), "{report}");
}

fn workflow(steps: Value) -> Value {
    json!({
        "version": "1.0.0", "schemaVersion": "1.0.0",
        "metadata": { "id": "0f8e4c52-6d1b-4e0a-9a3f-5b7c2d1e8f90", "name": "schemathesis" },
        "policies": { "resilience": { "retry": { "maxAttempts": 1 } } },
        "steps": steps
    })
}

/// Sets `example` on the JSON object at `pointer`.
fn example(document: &mut Value, pointer: &str, value: Value) {
    let target = document
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer} is not in the document"));
    target["example"] = value;
}

#[test]
fn schemathesis_finds_serve_true_to_its_document() {
    let state = tempfile::tempdir().unwrap();
    let token = "schemathesis-token";
    let mut command = orchestr8();
    command
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--token",
            token,
            "--agents-dir",
        ])
        .arg(agents_dir())
        .env("ORCHESTR8_STATE_DIR", state.path());
    let server = Server::start(command);
    let base = &server.base;

    // Real executions for the examples: a finished one and a running one
    // (briefly: its event stream, which Schemathesis follows too, stays
    // open until it ends).
    let counting = workflow(json!([
        { "id": "count", "name": "count", "agent": { "id": "@orchestr8/text-stats" },
          "input": { "mapping": { "text": "one two three" } }, "output": { "capture": { "words": "words" } } },
        { "id": "again", "name": "again", "agent": { "id": "@orchestr8/text-stats" }, "dependencies": ["count"],
          "input": { "mapping": { "text": "${steps.count.output.words} words" } } }
    ]));
    let (status, finished) = post(
        base,
        "/workflows/execute?wait=true",
        &json!({ "workflow": counting }),
        Some(token),
    );
    assert_eq!(status, 200, "{finished}");
    let sleeping = workflow(json!([
        { "id": "nap", "name": "nap", "agent": { "id": "@hostile/sleep" },
          "input": { "mapping": { "seconds": 4 } } }
    ]));
    let (status, running) = post(
        base,
        "/workflows/execute",
        &json!({ "workflow": sleeping }),
        Some(token),
    );
    assert_eq!(status, 202, "{running}");

    let mut document = get(base, "/openapi.json", Some(token));
    let execute = "/paths/~1workflows~1execute/post/requestBody/content/application~1json/schema";
    example(&mut document, execute, json!({ "workflow": counting }));
    let validate = "/paths/~1workflows~1validate/post/requestBody/content/application~1json/schema";
    example(&mut document, validate, json!({ "workflow": counting }));
    let finished_id = finished["executionId"].clone();
    let running_id = running["executionId"].clone();
    for (path, id) in [
        ("/paths/~1executions~1{id}/get/parameters/0", &finished_id),
        (
            "/paths/~1executions~1{id}~1journal/get/parameters/0",
            &finished_id,
        ),
        (
            "/paths/~1executions~1{id}~1events/get/parameters/0",
            &finished_id,
        ),
        (
            "/paths/~1executions~1{id}~1cancel/post/parameters/0",
            &running_id,
        ),
    ] {
        example(&mut document, path, id.clone());
    }
    schemathesis(
        &document,
        base,
        &["--header", &format!("Authorization: Bearer {token}")],
    );

    // The examples really reached the executions (not only 404s).
    let journal = get(
        base,
        &format!("/executions/{}/journal", finished_id.as_str().unwrap()),
        Some(token),
    );
    assert!(
        journal["entries"].as_array().unwrap().len() > 4,
        "{journal}"
    );
}

#[test]
fn schemathesis_finds_agent_serve_true_to_its_document() {
    for (agent, input) in [
        (
            "text_stats.wasm",
            json!({ "text": "Hello there. General Kenobi!" }),
        ),
        ("echo.wasm", json!({ "any": ["thing", 1, null] })),
        (
            "context7.wasm",
            json!({ "query": "routing", "library": "/tokio-rs/axum" }),
        ),
    ] {
        let mut command = orchestr8();
        command
            .args(["agent", "serve"])
            .arg(agents_dir().join(agent))
            .args(["--bind", "127.0.0.1:0"]);
        let server = Server::start(command);
        let mut document = get(&server.base, "/openapi.json", None);
        example(&mut document, "/components/schemas/AgentInput", input);
        let base = server.base.clone();
        // Context7 is not reachable (nothing is granted): its calls fail
        // with CAPABILITY_DENIED, a documented 500, which the first check
        // would count; the other three still hold it to its document.
        let exclude: &[&str] = if agent == "context7.wasm" {
            &["--exclude-checks", "not_a_server_error"]
        } else {
            &[]
        };
        schemathesis(&document, &base, exclude);
        drop(server);
    }
}

/// Validates `documents` (name, document) with openapi-spec-validator.
fn valid_openapi(documents: &[(String, Value)]) {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, document) in documents {
        let file = dir.path().join(format!("{name}.json"));
        std::fs::write(&file, serde_json::to_string_pretty(document).unwrap()).unwrap();
        files.push(file);
    }
    let out = Command::new(clients_python().with_file_name("openapi-spec-validator"))
        .args(["--schema", "3.0"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "not valid OpenAPI 3.0:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_document_is_valid_openapi_3_0() {
    let mut documents = Vec::new();
    let state = tempfile::tempdir().unwrap();
    for token in [None, Some("t0ken")] {
        let mut command = orchestr8();
        command
            .args(["serve", "--bind", "127.0.0.1:0", "--agents-dir"])
            .arg(agents_dir())
            .env("ORCHESTR8_STATE_DIR", state.path());
        if let Some(token) = token {
            command.args(["--token", token]);
        }
        let server = Server::start(command);
        let name = format!("serve-{}", if token.is_some() { "token" } else { "open" });
        documents.push((name, get(&server.base, "/openapi.json", token)));
    }
    let mut components: Vec<PathBuf> = std::fs::read_dir(agents_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    components.sort();
    assert!(components.len() > 10, "{components:?}");
    for component in components {
        let mut command = orchestr8();
        command
            .args(["agent", "serve"])
            .arg(&component)
            .args(["--bind", "127.0.0.1:0"]);
        let server = Server::start(command);
        let name = component
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        documents.push((name, get(&server.base, "/openapi.json", None)));
    }
    valid_openapi(&documents);
}
