//! `orchestr8 serve` and `orchestr8 agent serve` as real processes on
//! ephemeral loopback ports, driven by a real HTTP client, with real agents
//! and a real SQLite file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::api::{agent, agents_dir, call, get, poll_until_final, post, read_events, workflow};
use support::{Server, orchestr8};

fn start(args: &[&str], state: &Path) -> Server {
    let mut command = orchestr8();
    command
        .args(args)
        .env("ORCHESTR8_STATE_DIR", state)
        .stderr(Stdio::inherit());
    Server::start(command)
}

fn serve(extra: &[&str], state: &Path) -> Server {
    let agents = agents_dir();
    let mut args = vec![
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--agents-dir",
        agents.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    start(&args, state)
}

fn stats_workflow() -> Value {
    workflow(json!([
        { "id": "a", "name": "a", "agent": { "id": "@orchestr8/text-stats" }, "input": { "mapping": { "text": "one two three" } } },
        { "id": "b", "name": "b", "agent": { "id": "@orchestr8/text-stats" }, "dependencies": ["a"],
          "input": { "mapping": { "text": "${steps.a.output.words} words" } } }
    ]))
}

fn sleep_workflow(seconds: u64) -> Value {
    workflow(json!([
        { "id": "nap", "name": "nap", "agent": { "id": "@hostile/sleep" }, "input": { "mapping": { "seconds": seconds } } }
    ]))
}

#[test]
fn execute_poll_and_read_the_journal_page_by_page() {
    let state = tempfile::tempdir().unwrap();
    let server = serve(&[], state.path());
    let base = &server.base;

    let body = json!({ "workflow": stats_workflow() }).to_string();
    let (status, accepted) = post(&format!("{base}/workflows/execute"), &body);
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["executionId"].as_str().unwrap().to_string();
    assert_eq!(accepted["location"], format!("/executions/{id}"));

    let view = poll_until_final(base, &id);
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(view["steps"]["b"]["output"]["words"], 2);
    assert!(view["finishedAt"].is_string());

    // Pages of 3 entries, following nextAfter, add up to the whole journal.
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let (status, page) = get(&format!(
            "{base}/executions/{id}/journal?after={after}&limit=3"
        ));
        assert_eq!(status, 200, "{page}");
        let entries = page["entries"].as_array().unwrap();
        assert!(entries.len() <= 3);
        seen.extend(entries.iter().map(|e| e["seq"].as_u64().unwrap()));
        match page["nextAfter"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    let expected: Vec<u64> = (1..=seen.len() as u64).collect();
    assert_eq!(seen, expected);
    assert!(seen.len() > 6);

    // ?wait=true answers with the result itself.
    let (status, result) = post(&format!("{base}/workflows/execute?wait=true"), &body);
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], "succeeded");
    assert_eq!(result["steps"]["a"]["output"]["words"], 3);

    // Both executions are listed, newest first, a page at a time.
    let second = result["executionId"].as_str().unwrap();
    let (status, page) = get(&format!("{base}/executions?limit=1"));
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["executions"][0]["executionId"], second);
    assert_eq!(page["executions"][0]["status"], "succeeded");
    let cursor = page["nextCursor"].as_str().unwrap();
    let (status, page) = get(&format!("{base}/executions?limit=1&cursor={cursor}"));
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["executions"][0]["executionId"], id.as_str());
    assert!(page.get("nextCursor").is_none(), "{page}");
    let (_, page) = get(&format!("{base}/executions?status=failed"));
    assert_eq!(page["executions"], json!([]));
    for bad in [
        "status=done",
        "since=yesterday",
        "cursor=abc",
        "limit=0",
        "colour=red",
    ] {
        let (status, body) = get(&format!("{base}/executions?{bad}"));
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("INVALID_INPUT")),
            "{bad}: {body}"
        );
    }

    let (status, health) = get(&format!("{base}/health"));
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (status, metrics) = get(&format!("{base}/metrics"));
    assert_eq!(status, 200);
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("orchestr8_executions_total{status=\"succeeded\"}"),
        "{metrics}"
    );
    let (status, doc) = get(&format!("{base}/openapi.json"));
    assert_eq!(status, 200);
    for path in [
        "/workflows/execute",
        "/executions",
        "/executions/{id}",
        "/executions/{id}/journal",
        "/executions/{id}/cancel",
        "/health",
        "/metrics",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    let body = &doc["paths"]["/workflows/execute"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"];
    assert_eq!(
        body["oneOf"],
        json!([{"required": ["workflow"]}, {"required": ["workflowFile"]}]),
        "{body}"
    );
    assert!(
        doc.get("security").is_none(),
        "no token, no security requirement"
    );
}

/// The event stream sends every journal entry as it commits, in order,
/// and ends with `execution-finished`; a client that drops the connection
/// in the middle of a burst of log lines and reconnects with
/// `Last-Event-ID` gets the rest with nothing lost and nothing twice.
/// Unknown executions are 404 and a bad `Last-Event-ID` is 400.
#[test]
fn the_event_stream_resumes_from_last_event_id_losing_and_repeating_nothing() {
    let state = tempfile::tempdir().unwrap();
    let server = serve(&[], state.path());
    let base = &server.base;
    let flood = workflow(json!([
        { "id": "nap", "name": "nap", "agent": { "id": "@hostile/sleep" }, "input": { "mapping": { "seconds": 1 } } },
        { "id": "flood", "name": "flood", "agent": { "id": "@hostile/logs" }, "dependencies": ["nap"],
          "input": { "mapping": { "lines": 400 } } }
    ]));
    let (status, accepted) = post(
        &format!("{base}/workflows/execute"),
        &json!({ "workflow": flood }).to_string(),
    );
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["executionId"].as_str().unwrap();

    // Live from the start; dropped in the middle of the log lines.
    let first = read_events(base, id, None, 60);
    assert_eq!(first.len(), 60);
    assert!(first.iter().any(|e| e.kind == "agent-log"));
    let last = first.last().unwrap().id;
    let rest = read_events(base, id, Some(last), usize::MAX);
    assert_eq!(rest.last().unwrap().kind, "execution-finished");

    let ids: Vec<u64> = first.iter().chain(&rest).map(|e| e.id).collect();
    let expected: Vec<u64> = (1..=ids.len() as u64).collect();
    assert_eq!(ids, expected, "every entry once, in order");
    // The events are the journal's entries, as the journal endpoint has them.
    let (status, page) = get(&format!("{base}/executions/{id}/journal?limit=1000"));
    assert_eq!(status, 200);
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), ids.len());
    for (event, entry) in first.iter().chain(&rest).zip(entries) {
        assert_eq!(&event.data, entry);
        assert_eq!(event.kind, entry["kind"]);
    }
    assert!(rest.iter().filter(|e| e.kind == "agent-log").count() > 100);

    // A finished execution's stream is its journal, then the end.
    let again = read_events(base, id, Some(ids.len() as u64 - 1), usize::MAX);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].kind, "execution-finished");
    // Past its end: nothing, and the stream ends at once.
    assert!(read_events(base, id, Some(ids.len() as u64 + 5), usize::MAX).is_empty());

    let (status, body) = get(&format!("{base}/executions/nope/events"));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("NOT_FOUND"))
    );
    let (status, body, _) = call(
        "GET",
        &format!("{base}/executions/{id}/events"),
        None,
        &[("last-event-id", "soon")],
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_INPUT")),
        "{body}"
    );
}

/// Starts `orchestr8 run` of `workflow` in another process on the
/// server's `state`, and returns it with its execution id once the server
/// lists it.
// The lint misses a child handed back to the caller, who waits for it.
#[allow(clippy::zombie_processes)]
fn run_beside(base: &str, state: &Path, workflow: &Value) -> (std::process::Child, String) {
    let file = state.join("beside.json");
    std::fs::write(&file, workflow.to_string()).unwrap();
    let mut run = orchestr8()
        .args(["run", file.to_str().unwrap(), "--quiet", "--agents-dir"])
        .arg(agents_dir())
        .env("ORCHESTR8_STATE_DIR", state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, page) = get(&format!("{base}/executions?status=running"));
        if let Some(id) = page["executions"][0]["executionId"].as_str() {
            return (run, id.to_string());
        }
        if Instant::now() > deadline {
            let _ = run.kill();
            let _ = run.wait();
            panic!("the run never started");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An execution that another process (`orchestr8 run`) runs on the same
/// state directory streams too: its entries reach the server's stream
/// from the store, in order, to the end.
#[test]
fn the_event_stream_follows_an_execution_another_process_runs() {
    let state = tempfile::tempdir().unwrap();
    let server = serve(&[], state.path());
    let base = &server.base;
    let flood = workflow(json!([
        { "id": "nap", "name": "nap", "agent": { "id": "@hostile/sleep" }, "input": { "mapping": { "seconds": 1 } } },
        { "id": "flood", "name": "flood", "agent": { "id": "@hostile/logs" }, "dependencies": ["nap"],
          "input": { "mapping": { "lines": 50 } } }
    ]));
    let (mut run, id) = run_beside(base, state.path(), &flood);
    let events = read_events(base, &id, None, usize::MAX);
    assert!(run.wait().unwrap().success());
    let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    assert_eq!(events.last().unwrap().kind, "execution-finished");
    assert!(events.iter().filter(|e| e.kind == "agent-log").count() >= 50);
}

#[test]
fn bad_requests_get_the_error_shape_and_the_right_status() {
    let state = tempfile::tempdir().unwrap();
    let server = serve(&["--max-body-bytes", "4096"], state.path());
    let base = &server.base;
    let execute = format!("{base}/workflows/execute");

    let (status, body) = post(&execute, "{\"workflow\": ");
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "INVALID_INPUT");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{body}"
    );

    let mut bad = stats_workflow();
    bad["steps"][1]["dependencies"] = json!(["nope"]);
    bad["steps"][0]["agent"]["id"] = json!("@orchestr8/missing");
    let (status, body) = post(&execute, &json!({ "workflow": bad }).to_string());
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "VALIDATION");
    let text = body["error"]["details"].to_string();
    assert!(text.contains("$.steps[1].dependencies[0]"), "{text}");
    assert!(text.contains("$.steps[0].agent.id"), "{text}");

    // A mapping its agent's input schema refuses is refused before it runs.
    let mut mistyped = stats_workflow();
    mistyped["steps"][0]["input"]["mapping"] = json!({ "text": 42 });
    let (status, body) = post(&execute, &json!({ "workflow": mistyped }).to_string());
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("VALIDATION")),
        "{body}"
    );
    let text = body["error"]["details"].to_string();
    assert!(text.contains("$.steps[0].input.mapping.text"), "{text}");

    let huge = json!({ "workflow": stats_workflow(), "input": { "pad": "x".repeat(8192) } });
    let (status, body) = post(&execute, &huge.to_string());
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE");

    let (status, body) = post(&execute, "{\"workflowFile\": \"../etc/passwd\"}");
    assert_eq!(status, 400, "{body}");

    let unknown = "00000000-0000-0000-0000-000000000000";
    for (method, path) in [
        ("GET", format!("/executions/{unknown}")),
        ("GET", format!("/executions/{unknown}/journal")),
        ("POST", format!("/executions/{unknown}/cancel")),
        ("GET", "/no/such/route".to_string()),
    ] {
        let (status, body, _) = call(method, &format!("{base}{path}"), Some("{}"), &[]);
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "NOT_FOUND");
    }
    let (status, body) = get(&format!("{base}/executions/{unknown}/journal?limit=0"));
    assert_eq!(status, 400, "{body}");
    let (status, body) = get(&format!("{base}/executions/x/journal?after=minus"));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_INPUT"))
    );
    let (status, body) = get(&execute);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("INVALID_INPUT"))
    );
}

#[test]
fn cancelling_a_slow_step_interrupts_its_sandbox_and_is_journaled() {
    let state = tempfile::tempdir().unwrap();
    let server = serve(&[], state.path());
    let base = &server.base;
    let (status, accepted) = post(
        &format!("{base}/workflows/execute"),
        &json!({ "workflow": sleep_workflow(60) }).to_string(),
    );
    assert_eq!(status, 202);
    let id = accepted["executionId"].as_str().unwrap().to_string();
    // Wait until the step is running in its sandbox.
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&format!("{base}/executions/{id}")).1["steps"]["nap"]["status"] != "running" {
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    let cancel = format!("{base}/executions/{id}/cancel");
    let (status, body) = post(&cancel, "");
    assert_eq!(status, 202, "{body}");
    let (status, _) = post(&cancel, "");
    assert!(
        status == 202 || status == 409,
        "cancel is idempotent: {status}"
    );

    let view = poll_until_final(base, &id);
    assert_eq!(view["status"], "cancelled", "{view}");
    // The 60-second sleep was interrupted, not waited out.
    assert!(started.elapsed() < Duration::from_secs(30));
    let (_, page) = get(&format!("{base}/executions/{id}/journal?limit=1000"));
    let kinds: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"step-cancelled"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"execution-finished"));

    let (status, body) = post(&cancel, "");
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "CONFLICT");

    // An execution that another process (`orchestr8 run`) runs on the same
    // state is cancelled through the server too.
    let (mut run, other) = run_beside(base, state.path(), &sleep_workflow(60));
    let (status, body) = post(&format!("{base}/executions/{other}/cancel"), "");
    assert_eq!(status, 202, "{body}");
    assert_eq!(run.wait().unwrap().code(), Some(1));
    let (_, view) = get(&format!("{base}/executions/{other}"));
    assert_eq!(view["status"], "cancelled", "{view}");
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let state = tempfile::tempdir().unwrap();
    let server = serve(&["--max-running", "1", "--queue", "0"], state.path());
    let base = &server.base;
    let execute = format!("{base}/workflows/execute");
    let slow = json!({ "workflow": sleep_workflow(60) }).to_string();
    let (status, accepted) = post(&execute, &slow);
    assert_eq!(status, 202);
    let (status, body, retry_after) = call("POST", &execute, Some(&slow), &[]);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "OVERLOADED");
    assert_eq!(retry_after.as_deref(), Some("1"));
    let id = accepted["executionId"].as_str().unwrap();
    assert_eq!(post(&format!("{base}/executions/{id}/cancel"), "").0, 202);
    poll_until_final(base, id);
    // Room again.
    let (status, _) = post(
        &execute,
        &json!({ "workflow": stats_workflow() }).to_string(),
    );
    assert_eq!(status, 202);
}

#[test]
fn a_token_guards_every_route_but_health_and_public_binds_need_one() {
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_orchestr8"))
        .args([
            "serve",
            "--bind",
            "0.0.0.0:0",
            "--agents-dir",
            agents_dir().to_str().unwrap(),
        ])
        .env_remove("ORCHESTR8_TOKEN")
        .env("ORCHESTR8_STATE_DIR", state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token"));

    let server = serve(&["--token", "s3cret"], state.path());
    let base = &server.base;
    let (status, body, _) = call("GET", &format!("{base}/metrics"), None, &[]);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    let (status, _, _) = call(
        "GET",
        &format!("{base}/metrics"),
        None,
        &[("authorization", "Bearer wrong")],
    );
    assert_eq!(status, 401);
    let (status, _, _) = call(
        "GET",
        &format!("{base}/metrics"),
        None,
        &[("authorization", "Bearer s3cret")],
    );
    assert_eq!(status, 200);
    let (status, _, _) = call(
        "POST",
        &format!("{base}/workflows/execute"),
        Some("{}"),
        &[],
    );
    assert_eq!(status, 401);
    assert_eq!(get(&format!("{base}/health")).0, 200);
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    let lower = agent()
        .get(&format!("{base}/metrics"))
        .header("authorization", "bearer s3cret")
        .call()
        .unwrap();
    assert_eq!(lower.status().as_u16(), 200);
    // The document says what the server does: bearer security and 401s.
    let (status, doc, _) = call(
        "GET",
        &format!("{base}/openapi.json"),
        None,
        &[("authorization", "Bearer s3cret")],
    );
    assert_eq!(status, 200);
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    for (path, method) in [
        ("/workflows/execute", "post"),
        ("/executions/{id}", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            doc["paths"][path][method]["responses"]["401"].is_object(),
            "{path}"
        );
    }
    assert!(doc["paths"]["/health"]["get"]["responses"]["401"].is_null());
}

#[test]
fn an_empty_token_is_refused_at_startup() {
    let state = tempfile::tempdir().unwrap();
    let agents = agents_dir();
    let component = agents.join("text_stats.wasm");
    let commands = [
        vec!["serve", "--agents-dir", agents.to_str().unwrap()],
        vec!["agent", "serve", component.to_str().unwrap()],
    ];
    for (how, args, env) in [
        ("flag", vec!["--token", ""], None),
        ("environment", vec![], Some("")),
        ("blank", vec!["--token", "  "], None),
    ] {
        for command in &commands {
            let mut cmd = orchestr8();
            cmd.args(command)
                .args(["--bind", "127.0.0.1:0"])
                .args(&args)
                .env("ORCHESTR8_STATE_DIR", state.path());
            if let Some(value) = env {
                cmd.env("ORCHESTR8_TOKEN", value);
            }
            let out = cmd.output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{how} {command:?}: {stderr}");
            assert!(stderr.contains("the token is empty"), "{stderr}");
        }
    }
}

#[test]
fn a_port_in_use_is_named_with_the_flag_that_changes_it() {
    let state = tempfile::tempdir().unwrap();
    let agents = agents_dir();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let bind = format!("127.0.0.1:{port}");
    let component = agents.join("text_stats.wasm");
    for command in [
        vec!["serve", "--agents-dir", agents.to_str().unwrap()],
        vec!["agent", "serve", component.to_str().unwrap()],
    ] {
        let out = orchestr8()
            .args(&command)
            .args(["--bind", &bind])
            .env("ORCHESTR8_STATE_DIR", state.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {stderr}");
        assert!(
            stderr.contains(&format!("port {port} is already in use"))
                && stderr.contains("--bind 127.0.0.1:PORT"),
            "{stderr}"
        );
    }
}

#[test]
fn graceful_shutdown_cancels_what_outlives_the_grace_period() {
    let state = tempfile::tempdir().unwrap();
    let mut server = serve(&["--grace-ms", "300"], state.path());
    let base = server.base.clone();
    let (status, accepted) = post(
        &format!("{base}/workflows/execute"),
        &json!({ "workflow": sleep_workflow(60) }).to_string(),
    );
    assert_eq!(status, 202);
    let id = accepted["executionId"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(300));
    let code = server.terminate(Duration::from_secs(20));
    assert_eq!(code, Some(0));
    let out = Command::new(env!("CARGO_BIN_EXE_orchestr8"))
        .args(["inspect", &id, "--json"])
        .env("ORCHESTR8_STATE_DIR", state.path())
        .output()
        .unwrap();
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["execution"]["status"], "cancelled", "{record}");
}

#[test]
fn an_agent_serves_process_and_health() {
    let state = tempfile::tempdir().unwrap();
    let agents = agents_dir();
    let server = start(
        &[
            "agent",
            "serve",
            agents.join("text_stats.wasm").to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
        ],
        state.path(),
    );
    let base = &server.base;
    let (status, output) = post(
        &format!("{base}/process"),
        r#"{"text": "Hello there. General Kenobi."}"#,
    );
    assert_eq!(status, 200, "{output}");
    assert_eq!(output["sentences"], 2);
    let (status, body) = post(&format!("{base}/process"), r#"{"txt": 1}"#);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_INPUT")),
        "{body}"
    );
    let (status, body) = post(&format!("{base}/process"), "not json");
    assert_eq!(status, 400, "{body}");
    let (status, health) = get(&format!("{base}/health"));
    assert_eq!(status, 200);
    assert_eq!(health["agentId"], "@orchestr8/text-stats");
    assert_eq!(health["breaker"], "closed");
    let (status, doc) = get(&format!("{base}/openapi.json"));
    assert_eq!(status, 200);
    assert_eq!(
        doc["paths"]["/process"]["post"]["requestBody"]["content"]["application/json"]["schema"],
        json!({"$ref": "#/components/schemas/AgentInput"})
    );
    let input = doc["components"]["schemas"]["AgentInput"].to_string();
    assert!(
        input.contains("text") && !input.contains("$schema"),
        "{input}"
    );

    // An output that breaks the agent's own schema never reaches the client.
    let liar = start(
        &[
            "agent",
            "serve",
            agents.join("hostile_liar.wasm").to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
        ],
        state.path(),
    );
    let (status, body) = post(&format!("{}/process", liar.base), r#"{"count": "three"}"#);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (500, Some("INVALID_OUTPUT")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/count")
    );
    let (status, body) = post(&format!("{}/process", liar.base), r#"{"count": 3}"#);
    assert_eq!((status, body), (200, json!({"count": 3})));

    // A crashing agent is a 500 in the error shape; the service keeps serving.
    let crash = start(
        &[
            "agent",
            "serve",
            agents.join("hostile_panic.wasm").to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
        ],
        state.path(),
    );
    let (status, body) = post(&format!("{}/process", crash.base), "{}");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (500, Some("TRAP")),
        "{body}"
    );
    assert_eq!(get(&format!("{}/health", crash.base)).0, 200);
}

#[test]
fn a_busy_agent_service_answers_503_overloaded_with_retry_after() {
    let state = tempfile::tempdir().unwrap();
    let agents = agents_dir();
    let server = start(
        &[
            "agent",
            "serve",
            agents.join("hostile_tenant.wasm").to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
            "--max-concurrency",
            "1",
            "--queue-timeout-ms",
            "200",
        ],
        state.path(),
    );
    let url = format!("{}/process", server.base);
    let holder = {
        let url = url.clone();
        std::thread::spawn(move || post(&url, r#"{"attack": "fill", "mib": 1, "hold_ms": 3000}"#))
    };
    // Wait until the holder runs: then the next call finds no turn.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body, retry_after) = call(
            "POST",
            &url,
            Some(r#"{"attack": "fill", "mib": 1, "hold_ms": 0}"#),
            &[],
        );
        if status == 503 {
            assert_eq!(body["error"]["code"], "OVERLOADED", "{body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains("maxConcurrency of 1"), "{message}");
            assert_eq!(retry_after.as_deref(), Some("1"));
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(Instant::now() < deadline, "the holder never took the turn");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = holder.join().unwrap();
    assert_eq!((status, &body["filled"]), (200, &json!(1)), "{body}");
    let (status, _) = post(&url, r#"{"attack": "fill", "mib": 1, "hold_ms": 0}"#);
    assert_eq!(status, 200);
}

/// 1,000 generated malformed bodies at every route: never a 5xx, never a
/// crash, and the server still answers afterwards.
#[test]
fn malformed_bodies_never_break_the_servers() {
    let state = tempfile::tempdir().unwrap();
    let server = serve(&[], state.path());
    let agents = agents_dir();
    let agent = start(
        &[
            "agent",
            "serve",
            agents.join("text_stats.wasm").to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
        ],
        state.path(),
    );
    let routes = [
        ("POST", format!("{}/workflows/execute", server.base)),
        ("POST", format!("{}/executions/abc/cancel", server.base)),
        ("GET", format!("{}/executions/abc", server.base)),
        ("POST", format!("{}/process", agent.base)),
        ("POST", format!("{}/health", agent.base)),
    ];
    let mut rng = fastrand::Rng::with_seed(8);
    let seeds = [
        json!({ "workflow": stats_workflow() }).to_string(),
        r#"{"text": "hello"}"#.to_string(),
        r#"{"workflowFile": "x.json", "input": {}}"#.to_string(),
    ];
    for (method, url) in &routes {
        for _ in 0..1000 {
            let body = malformed(&mut rng, &seeds);
            let (status, response, _) = call(method, url, Some(&body), &[]);
            assert!(
                status < 500,
                "{method} {url} with {body:?} answered {status}: {response}"
            );
        }
    }
    assert_eq!(get(&format!("{}/health", server.base)).0, 200);
    assert_eq!(get(&format!("{}/health", agent.base)).0, 200);
}

/// A body broken in one of several ways.
fn malformed(rng: &mut fastrand::Rng, seeds: &[String]) -> String {
    let seed = &seeds[rng.usize(..seeds.len())];
    let bytes = seed.as_bytes();
    match rng.u8(..6) {
        0 => seed[..rng.usize(..seed.len())].to_string(),
        1 => {
            let mut b = bytes.to_vec();
            for _ in 0..rng.usize(1..8) {
                let i = rng.usize(..b.len());
                b[i] = rng.u8(32..127);
            }
            String::from_utf8_lossy(&b).into_owned()
        }
        2 => (0..rng.usize(..200))
            .map(|_| rng.char('\u{20}'..'\u{2FF}'))
            .collect(),
        3 => format!("{}{}", "[".repeat(rng.usize(1..300)), "{\"a\":"),
        4 => json!({ "workflow": rng.i64(..), "input": [rng.bool()], "text": null }).to_string(),
        _ => format!("{seed}{}", ",}]".repeat(rng.usize(1..4))),
    }
}

/// The WAL stays bounded under sustained load through the real server: a
/// few thousand one-step executions from eight clients, the WAL file's size
/// sampled all along. Before the bound, every execution left about 17 KB in
/// it for good (50 MB here); now it never passes the checkpoint threshold
/// (16 MiB) by more than one group commit, and it shrinks once the load ends.
#[test]
fn the_wal_stays_bounded_while_thousands_of_executions_run() {
    const CLIENTS: usize = 8;
    const EACH: usize = 400;
    let state = tempfile::tempdir().unwrap();
    let server = serve(&[], state.path());
    let body = json!({ "workflow": workflow(json!([
        { "id": "a", "name": "a", "agent": { "id": "@orchestr8/text-stats" },
          "input": { "mapping": { "text": "one two three" } } }
    ])) })
    .to_string();
    let wal = state.path().join("orchestr8.db-wal");
    let size = move || std::fs::metadata(&wal).map_or(0, |m| m.len());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        let size = size.clone();
        std::thread::spawn(move || {
            let mut largest = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                largest = largest.max(size());
                std::thread::sleep(Duration::from_millis(5));
            }
            largest
        })
    };
    let url = format!("{}/workflows/execute?wait=true", server.base);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            std::thread::spawn(move || {
                for _ in 0..EACH {
                    let (status, result) = post(&url, &body);
                    assert_eq!(status, 200, "{result}");
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let largest = sampler.join().unwrap();
    let threshold = 16 * 1024 * 1024;
    assert!(
        largest <= threshold + 8 * 1024 * 1024,
        "the WAL grew to {largest} bytes"
    );
    // Once the load ends, the background checkpoint empties it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while size() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(size(), 0, "the WAL is truncated after the load");
    let (status, health) = get(&format!("{}/health", server.base));
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
}

/// The digests of the components each `attempt-started` entry of an
/// execution's journal says it ran, in order.
fn attempt_digests(base: &str, id: &str) -> Vec<String> {
    let (status, page) = get(&format!("{base}/executions/{id}/journal?limit=1000"));
    assert_eq!(status, 200, "{page}");
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["event"]["type"] == "attempt-started")
        .map(|e| {
            e["data"]["event"]["agentDigest"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(std::fs::read(path).unwrap());
    format!(
        "sha256:{}",
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// Replaces `file` at once (as a build's copy does) with `bytes`.
fn replace(file: &Path, bytes: &[u8]) {
    let next = file.with_extension("next");
    std::fs::write(&next, bytes).unwrap();
    std::fs::rename(&next, file).unwrap();
}

/// `serve` picks up what changes under it without a restart: a rebuilt
/// component is served to the next execution while one already running
/// finishes on the build it started with (the journal names each attempt's
/// digest); a new agent in orchestr8.toml runs at once; a broken one fails
/// only the workflows that use it; a typo saved in orchestr8.toml is the
/// answer until it is fixed, and nothing already recorded is lost.
#[test]
fn serve_swaps_in_changed_agents_while_running_calls_keep_their_build() {
    let project = tempfile::tempdir().unwrap();
    let root = project.path();
    let sleep = root.join("sleep.wasm");
    std::fs::copy(agents_dir().join("hostile_sleep.wasm"), &sleep).unwrap();
    let manifest = root.join("orchestr8.toml");
    let toml =
        "[project]\nname = \"reload\"\n\n[agents.\"@hostile/sleep\"]\ncomponent = \"sleep.wasm\"\n";
    std::fs::write(&manifest, toml).unwrap();
    let mut command = orchestr8();
    command
        .args(["serve", "--bind", "127.0.0.1:0"])
        .current_dir(root)
        .env_remove("ORCHESTR8_STATE_DIR")
        .stderr(Stdio::inherit());
    let server = Server::start(command);
    let base = server.base.as_str();
    let first = sha256(&sleep);

    // A slow execution starts on the first build…
    let (status, accepted) = post(
        &format!("{base}/workflows/execute"),
        &json!({ "workflow": sleep_workflow(1) }).to_string(),
    );
    assert_eq!(status, 202, "{accepted}");
    let slow = accepted["executionId"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while attempt_digests(base, &slow).is_empty() {
        assert!(Instant::now() < deadline, "the slow step never started");
        std::thread::sleep(Duration::from_millis(20));
    }

    // …then the component is rebuilt (here: a custom section appended,
    // which changes its digest and nothing else).
    let mut bytes = std::fs::read(&sleep).unwrap();
    bytes.extend_from_slice(&[0x00, 0x03, 0x01, b'x', b'1']);
    replace(&sleep, &bytes);
    let second = sha256(&sleep);
    assert_ne!(first, second);
    let (status, result) = post(
        &format!("{base}/workflows/execute?wait=true"),
        &json!({ "workflow": sleep_workflow(0) }).to_string(),
    );
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], "succeeded", "{result}");
    let fresh = result["executionId"].as_str().unwrap();
    assert_eq!(attempt_digests(base, fresh), [second]);
    let view = poll_until_final(base, &slow);
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(attempt_digests(base, &slow), [first]);

    // A new agent runs without a restart; an unknown one is named with
    // the agents there are.
    let stats = agents_dir().join("text_stats.wasm");
    let toml = format!(
        "{toml}\n[agents.\"@orchestr8/text-stats\"]\ncomponent = \"{}\"\n",
        stats.display()
    );
    std::fs::write(&manifest, &toml).unwrap();
    let (status, result) = post(
        &format!("{base}/workflows/execute?wait=true"),
        &json!({ "workflow": stats_workflow() }).to_string(),
    );
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["steps"]["b"]["output"]["words"], 2, "{result}");
    let unknown = workflow(json!([
        { "id": "a", "name": "a", "agent": { "id": "@orchestr8/nope" }, "input": { "mapping": {} } }
    ]));
    let (status, error) = post(
        &format!("{base}/workflows/execute"),
        &json!({ "workflow": unknown }).to_string(),
    );
    assert_eq!(status, 400, "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("unknown agent `@orchestr8/nope`: the agents here are @hostile/sleep, @orchestr8/text-stats"),
        "{message}"
    );

    // An agent whose component is missing fails only its workflows.
    let broken = format!("{toml}\n[agents.\"@reload/gone\"]\ncomponent = \"gone.wasm\"\n");
    std::fs::write(&manifest, &broken).unwrap();
    let (status, result) = post(
        &format!("{base}/workflows/execute?wait=true"),
        &json!({ "workflow": stats_workflow() }).to_string(),
    );
    assert_eq!(status, 200, "{result}");
    let gone = workflow(json!([
        { "id": "a", "name": "a", "agent": { "id": "@reload/gone" }, "input": { "mapping": {} } }
    ]));
    let (status, error) = post(
        &format!("{base}/workflows/execute"),
        &json!({ "workflow": gone }).to_string(),
    );
    assert_eq!(status, 400, "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message
            .contains("`@reload/gone`: it cannot be loaded: the component of agent `@reload/gone`")
            && message.contains("does not exist"),
        "{message}"
    );

    // A typo in orchestr8.toml is the answer (naming the file) until it is
    // fixed; what was recorded stays.
    std::fs::write(
        &manifest,
        format!("{toml}\n[agents.\"@reload/typo\"\ncrate = 1\n"),
    )
    .unwrap();
    let (status, error) = post(
        &format!("{base}/workflows/execute"),
        &json!({ "workflow": stats_workflow() }).to_string(),
    );
    assert_eq!(status, 500, "{error}");
    assert_eq!(error["error"]["code"], "INVALID_CONFIG", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("orchestr8.toml"),
        "{error}"
    );
    std::fs::write(&manifest, &toml).unwrap();
    let (status, result) = post(
        &format!("{base}/workflows/execute?wait=true"),
        &json!({ "workflow": stats_workflow() }).to_string(),
    );
    assert_eq!(status, 200, "{result}");
    let (status, view) = get(&format!("{base}/executions/{slow}"));
    assert_eq!((status, &view["status"]), (200, &json!("succeeded")));
}

/// Lines a process writes on stderr, read as they come.
struct Lines(std::sync::mpsc::Receiver<String>, Vec<String>);

impl Lines {
    fn of(child: &mut std::process::Child) -> Lines {
        use std::io::BufRead;
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                eprintln!("dev: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines(rx, Vec::new())
    }

    /// Waits (up to a minute: a build may run) for a line containing `needle`.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.0.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => self.1.push(line),
                Err(_) => panic!("no line with `{needle}`; seen:\n{}", self.1.join("\n")),
            }
        }
    }
}

/// `orchestr8 dev`: builds the project's agents, serves them, and rebuilds
/// and swaps in an agent as soon as its sources change; a build that fails
/// keeps the last good build serving; an agent created meanwhile is built
/// and served without a restart.
#[test]
fn dev_rebuilds_and_serves_an_agent_as_soon_as_it_is_saved() {
    let tmp = tempfile::tempdir().unwrap();
    let out = orchestr8()
        .args(["init", "demo"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    support::ok(&out);
    let project = tmp.path().join("demo");
    let mut command = orchestr8();
    command
        .args(["dev", "--bind", "127.0.0.1:0", "--poll-ms", "100"])
        .current_dir(&project)
        .env_remove("ORCHESTR8_STATE_DIR")
        .stderr(Stdio::piped());
    let mut server = Server::start(command);
    let mut stderr = Lines::of(&mut server.child);
    let base = server.base.clone();
    let hello = |name: &str| {
        let body = json!({ "workflowFile": "workflows/hello.json", "input": { "name": name } });
        let (status, result) = post(
            &format!("{base}/workflows/execute?wait=true"),
            &body.to_string(),
        );
        assert_eq!(status, 200, "{result}");
        result["steps"]["greet"]["output"]["greeting"].clone()
    };
    assert_eq!(hello("Ada"), "Hello, Ada!");

    let source = project.join("agents/hello/src/lib.rs");
    let original = std::fs::read_to_string(&source).unwrap();
    std::fs::write(
        &source,
        original.replace("Hello, {name}!", "Howdy, {name}!"),
    )
    .unwrap();
    stderr.wait_for("serving @demo/hello");
    assert_eq!(hello("Ada"), "Howdy, Ada!");

    std::fs::write(
        &source,
        original.replace("format!(\"Hello", "formatx!(\"Hello"),
    )
    .unwrap();
    stderr.wait_for("the last good build of @demo/hello keeps serving");
    assert_eq!(hello("Ada"), "Howdy, Ada!");

    let out = orchestr8()
        .args(["create", "second"])
        .current_dir(&project)
        .output()
        .unwrap();
    support::ok(&out);
    stderr.wait_for("serving @demo/second");
    let second = workflow(json!([
        { "id": "a", "name": "a", "agent": { "id": "@demo/second" }, "input": { "mapping": { "name": "Bo" } } }
    ]));
    let (status, result) = post(
        &format!("{base}/workflows/execute?wait=true"),
        &json!({ "workflow": second }).to_string(),
    );
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], "succeeded", "{result}");
}

/// `serve` killed (SIGKILL) with executions in flight: started again on
/// the same port and state, it resumes them (each read as running from the
/// first request on, even one waiting for its turn), and a client polling
/// the API sees them finish through the new process, in one journal.
#[test]
fn a_server_killed_mid_execution_resumes_it_when_it_starts_again() {
    let state = tempfile::tempdir().unwrap();
    let mut first = serve(&[], state.path());
    let base = first.base.clone();
    let steps = json!([
        { "id": "stats", "name": "stats", "agent": { "id": "@orchestr8/text-stats" }, "input": { "mapping": { "text": "one two" } } },
        { "id": "nap", "name": "nap", "agent": { "id": "@hostile/sleep" }, "dependencies": ["stats"], "input": { "mapping": { "seconds": 1 } } },
        { "id": "after", "name": "after", "agent": { "id": "@orchestr8/text-stats" }, "dependencies": ["nap"],
          "input": { "mapping": { "text": "${steps.stats.output.words} words" } } }
    ]);
    let (status, accepted) = post(
        &format!("{base}/workflows/execute"),
        &json!({ "workflow": workflow(steps) }).to_string(),
    );
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["executionId"].as_str().unwrap().to_string();
    let (status, accepted) = post(
        &format!("{base}/workflows/execute"),
        &json!({ "workflow": sleep_workflow(1) }).to_string(),
    );
    assert_eq!(status, 202, "{accepted}");
    let napping = accepted["executionId"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in [&id, &napping] {
        while get(&format!("{base}/executions/{id}")).1["steps"]["nap"]["status"] != "running" {
            assert!(Instant::now() < deadline, "the nap never started");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let address = base.trim_start_matches("http://");
    let agents = agents_dir();
    // One at a time: the other resumed execution waits for its turn.
    let _second = start(
        &[
            "serve",
            "--bind",
            address,
            "--agents-dir",
            agents.to_str().unwrap(),
            "--max-running",
            "1",
        ],
        state.path(),
    );
    for id in [&id, &napping] {
        let (_, view) = get(&format!("{base}/executions/{id}"));
        assert_eq!(view["status"], "running", "{view}");
    }
    assert_eq!(poll_until_final(&base, &napping)["status"], "succeeded");
    let view = poll_until_final(&base, &id);
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(view["steps"]["after"]["output"]["words"], 2, "{view}");
    let (_, page) = get(&format!("{base}/executions/{id}/journal?limit=1000"));
    let kinds: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    let at = |kind: &str| kinds.iter().position(|k| *k == kind).unwrap();
    assert!(
        at("execution-interrupted") < at("execution-resumed"),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "execution-started").count(),
        1
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "step-succeeded").count(),
        3,
        "stats ran once: {kinds:?}"
    );
}

/// `POST /workflows/execute` with an `Idempotency-Key` header.
fn execute_keyed(base: &str, key: &str, body: &Value, wait: bool) -> (u16, Value, bool) {
    let mut response = agent()
        .post(&format!("{base}/workflows/execute?wait={wait}"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .send(body.to_string())
        .unwrap();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap(), replayed)
}

/// A request repeated with its idempotency key (the header, or the
/// workflow's `policies.idempotencyKey`) answers the execution the first
/// one started, also when the repeats race; the key with another request is
/// 409; a malformed key is 400.
#[test]
fn an_idempotency_key_starts_one_execution_however_often_it_is_sent() {
    let state = tempfile::tempdir().unwrap();
    let server = serve(&[], state.path());
    let base = server.base.as_str();
    let body = json!({ "workflow": stats_workflow() });
    let (status, first, replayed) = execute_keyed(base, "order-7", &body, true);
    assert_eq!((status, replayed), (200, false), "{first}");
    let id = first["executionId"].as_str().unwrap();
    let (status, again, replayed) = execute_keyed(base, "order-7", &body, true);
    assert_eq!((status, replayed), (200, true), "{again}");
    assert_eq!(again["executionId"], id);
    assert_eq!(again["steps"], first["steps"]);
    let (status, accepted, _) = execute_keyed(base, "order-7", &body, false);
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(
        (&accepted["executionId"], &accepted["status"]),
        (&json!(id), &json!("succeeded"))
    );

    let other = json!({ "workflow": stats_workflow(), "input": { "extra": 1 } });
    let (status, error, _) = execute_keyed(base, "order-7", &other, false);
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["error"]["details"]["executionId"], id);
    let (status, error, _) = execute_keyed(base, "not a key!", &body, false);
    assert_eq!(status, 400, "{error}");

    // Racing repeats start one execution.
    let ids: Vec<String> = std::thread::scope(|s| {
        let racers: Vec<_> = (0..8)
            .map(|_| s.spawn(|| execute_keyed(base, "race-1", &body, false)))
            .collect();
        racers
            .into_iter()
            .map(|r| {
                let (status, v, _) = r.join().unwrap();
                assert_eq!(status, 202, "{v}");
                v["executionId"].as_str().unwrap().to_string()
            })
            .collect()
    });
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");

    // The workflow's own key, from the request's variables.
    let mut keyed = stats_workflow();
    keyed["policies"]["idempotencyKey"] = json!("order-${variables.order}");
    let run = |order: u32| {
        let (status, result) = post(
            &format!("{base}/workflows/execute?wait=true"),
            &json!({ "workflow": keyed, "input": { "order": order } }).to_string(),
        );
        assert_eq!(status, 200, "{result}");
        result["executionId"].as_str().unwrap().to_string()
    };
    assert_eq!(run(8), run(8));
    assert_ne!(run(8), run(9));
    let (_, page) = get(&format!("{base}/executions?limit=100"));
    assert_eq!(page["executions"].as_array().unwrap().len(), 4, "{page}");
}
