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
