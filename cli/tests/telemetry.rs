//! Traces reach an OTLP collector: `orchestr8 serve` with the standard
//! `OTEL_EXPORTER_OTLP_*` variables exports its spans over OTLP/HTTP to a
//! tiny collector started by the test on loopback, continuing the trace of
//! an incoming `traceparent`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Server, orchestr8};

/// Accepts OTLP/HTTP posts and keeps their bodies.
fn collector() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let keep = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                keep.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}");
        }
    });
    (url, bodies)
}

#[test]
fn an_executions_spans_reach_the_collector_in_the_callers_trace() {
    let (endpoint, bodies) = collector();
    let state = tempfile::tempdir().unwrap();
    let agents =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../agents/target/wasm32-wasip2/release");
    let mut command = orchestr8();
    command
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--agents-dir",
            agents.to_str().unwrap(),
        ])
        .env("ORCHESTR8_STATE_DIR", state.path())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_SERVICE_NAME", "orchestr8-under-test");
    let server = Server::start(command);
    let base = server.base.clone();

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let workflow = json!({
        "version": "1.0.0", "schemaVersion": "1.0.0",
        "metadata": { "id": "0f8e4c52-6d1b-4e0a-9a3f-5b7c2d1e8f90", "name": "traced" },
        "steps": [{ "id": "count", "name": "count", "agent": { "id": "@orchestr8/text-stats" },
                    "input": { "mapping": { "text": "traced words" } } }]
    });
    let client: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = client
        .post(&format!("{base}/workflows/execute?wait=true"))
        .header("traceparent", &format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send(json!({ "workflow": workflow }).to_string())
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let result: Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    let execution_id = result["executionId"].as_str().unwrap().to_string();

    let deadline = Instant::now() + Duration::from_secs(20);
    let wanted = ["\"request\"", "\"execution\"", "\"step\"", "\"attempt\""];
    loop {
        let all = bodies.lock().unwrap().join("\n");
        let names_seen = wanted.iter().all(|name| all.contains(name));
        if names_seen && all.contains(&execution_id) {
            assert!(
                all.contains(trace_id),
                "the caller's trace id is carried on"
            );
            assert!(all.contains("orchestr8-under-test"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "spans never arrived; got:\n{all}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);
}

fn agents() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../agents/target/wasm32-wasip2/release")
}

/// Every span of every OTLP/JSON body received.
fn spans(bodies: &[String]) -> Vec<Value> {
    bodies
        .iter()
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .flat_map(|b| {
            b["resourceSpans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
                .flat_map(|s| s["spans"].as_array().cloned().unwrap_or_default())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

fn is_error(span: &Value) -> bool {
    let code = &span["status"]["code"];
    code == 2 || code == "STATUS_CODE_ERROR"
}

/// Count text, then nap past the step's one-second timeout.
fn failing_workflow(dir: &std::path::Path) -> PathBuf {
    let workflow = json!({
        "version": "1.0.0", "schemaVersion": "1.0.0",
        "metadata": { "id": "0f8e4c52-6d1b-4e0a-9a3f-5b7c2d1e8f90", "name": "traced run" },
        "policies": { "resilience": { "retry": { "maxAttempts": 1 } } },
        "steps": [
            { "id": "count", "name": "count", "agent": { "id": "@orchestr8/text-stats" },
              "input": { "mapping": { "text": "traced words" } } },
            { "id": "nap", "name": "nap", "agent": { "id": "@hostile/sleep" }, "dependencies": ["count"],
              "policies": { "timeout": 1000 }, "input": { "mapping": { "seconds": 60 } } }
        ]
    });
    let path = dir.join("workflow.json");
    std::fs::write(&path, workflow.to_string()).unwrap();
    path
}

#[test]
fn a_run_is_one_trace_with_failures_marked_as_errors() {
    let (endpoint, bodies) = collector();
    let dir = tempfile::tempdir().unwrap();
    let workflow = failing_workflow(dir.path());
    let out = orchestr8()
        .args(["run", workflow.to_str().unwrap(), "--quiet", "--agents-dir"])
        .arg(agents())
        .env("ORCHESTR8_STATE_DIR", dir.path().join("state"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The exporter flushes before the process exits.
    let spans = spans(&bodies.lock().unwrap());
    let named =
        |name: &str| -> Vec<&Value> { spans.iter().filter(|s| s["name"] == name).collect() };
    let executions = named("execution");
    assert_eq!(executions.len(), 1, "one execution span: {spans:#?}");
    let execution = executions[0];
    let trace = &execution["traceId"];
    assert!(
        spans.iter().all(|s| &s["traceId"] == trace),
        "every span of the run is in one trace"
    );
    assert!(
        execution["parentSpanId"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    );
    let steps = named("step");
    assert_eq!(steps.len(), 2);
    assert!(
        steps
            .iter()
            .all(|s| s["parentSpanId"] == execution["spanId"])
    );
    let attempts = named("attempt");
    assert_eq!(attempts.len(), 2);
    assert!(
        attempts
            .iter()
            .all(|a| steps.iter().any(|s| a["parentSpanId"] == s["spanId"]))
    );

    // What failed says so, the OpenTelemetry way; what worked does not.
    let timed_out =
        |s: &Value| attribute(s, "error.type") == Some(&json!({"stringValue": "TIMEOUT"}));
    for failed in [
        execution,
        *steps
            .iter()
            .find(|s| attribute(s, "step_id") == Some(&json!({"stringValue": "nap"})))
            .unwrap(),
        *attempts
            .iter()
            .find(|a| timed_out(a))
            .expect("the timed-out attempt carries error.type"),
    ] {
        assert!(is_error(failed), "{failed:#}");
        assert!(timed_out(failed), "{failed:#}");
        assert!(
            !failed["status"]["message"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
        );
    }
    let counted = steps
        .iter()
        .find(|s| attribute(s, "step_id") == Some(&json!({"stringValue": "count"})))
        .unwrap();
    assert!(!is_error(counted) && attribute(counted, "error.type").is_none());
}

/// Every line of `stderr` is a JSON object; returns them.
#[track_caller]
fn json_lines(stderr: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}\nin:\n{text}"))
        })
        .collect()
}

#[test]
fn with_json_logs_all_of_stderr_is_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = failing_workflow(dir.path());
    let out = orchestr8()
        .args([
            "--log-format",
            "json",
            "run",
            workflow.to_str().unwrap(),
            "--agents-dir",
        ])
        .arg(agents())
        .env("ORCHESTR8_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out.stderr);
    let progress: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "orchestr8::journal")
        .collect();
    assert!(
        progress
            .iter()
            .any(|l| l["fields"]["kind"] == "step-failed"),
        "{lines:#?}"
    );
    assert!(
        progress
            .iter()
            .all(|l| l["fields"]["execution_id"].is_string())
    );
    let error = lines.last().unwrap();
    assert_eq!(error["level"], "ERROR");
    assert_eq!(error["fields"]["code"], "TIMEOUT", "{error}");

    // A usage error, before anything runs, is a JSON line too.
    let out = orchestr8()
        .args(["--log-format", "json", "run", "/no/such/workflow.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json_lines(&out.stderr)[0]["level"], "ERROR");

    // So is serve's shutdown notice.
    let mut command = orchestr8();
    command
        .args([
            "--log-format",
            "json",
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--agents-dir",
        ])
        .arg(agents())
        .env("ORCHESTR8_STATE_DIR", dir.path().join("state"))
        .stderr(std::process::Stdio::piped());
    let mut server = Server::start(command);
    let pid = server.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut stderr = Vec::new();
    server
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    let lines = json_lines(&stderr);
    assert!(
        lines.iter().any(|l| l["fields"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("shutting down")),
        "{lines:#?}"
    );
}

#[test]
fn agent_serve_log_lines_carry_the_calls_id() {
    let mut command = orchestr8();
    command
        .args(["--log-format", "json", "agent", "serve"])
        .arg(agents().join("hostile_panic.wasm"))
        .args(["--bind", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped());
    let mut server = Server::start(command);
    let client: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = client
        .post(&format!("{}/process", server.base))
        .send("{}")
        .unwrap();
    assert_eq!(response.status().as_u16(), 500);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let mut stderr = Vec::new();
    server
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    let lines = json_lines(&stderr);
    let failure = lines
        .iter()
        .find(|l| l["level"] == "ERROR")
        .unwrap_or_else(|| panic!("the failed call is logged: {lines:#?}"));
    let id = failure["span"]["execution_id"].as_str().unwrap_or_default();
    assert_eq!(id.len(), 36, "{failure}");
}
