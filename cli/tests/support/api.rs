//! Talking to a running server over HTTP: requests with a real client,
//! workflow documents for the test agents, waiting for an execution.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The test agents' components, built by scripts/test.
pub fn agents_dir() -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../agents/target/wasm32-wasip2/release");
    assert!(
        dir.join("hostile_sleep.wasm").is_file(),
        "build the agents first: scripts/test"
    );
    dir
}

/// An HTTP client that hands back error statuses as answers.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Status, JSON body and `Retry-After` of a request with `headers`.
pub fn call(
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, Value, Option<String>) {
    let client = agent();
    let mut response = match (method, body) {
        ("GET", _) => {
            let mut req = client.get(url);
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            req.call().unwrap()
        }
        (_, body) => {
            let mut req = client.post(url).header("content-type", "application/json");
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            req.send(body.unwrap_or("")).unwrap()
        }
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.body_mut().read_to_string().unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value, retry_after)
}

pub fn get(url: &str) -> (u16, Value) {
    let (s, v, _) = call("GET", url, None, &[]);
    (s, v)
}

pub fn post(url: &str, body: &str) -> (u16, Value) {
    let (s, v, _) = call("POST", url, Some(body), &[]);
    (s, v)
}

pub fn workflow(steps: Value) -> Value {
    json!({
        "version": "1.0.0", "schemaVersion": "1.0.0",
        "metadata": { "id": "0f8e4c52-6d1b-4e0a-9a3f-5b7c2d1e8f90", "name": "api test" },
        "policies": { "resilience": { "retry": { "maxAttempts": 1 } } },
        "steps": steps
    })
}

pub fn poll_until_final(base: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, view) = get(&format!("{base}/executions/{id}"));
        assert_eq!(status, 200, "{view}");
        if !["pending", "running"].contains(&view["status"].as_str().unwrap()) {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "execution {id} never finished: {view}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One Server-Sent Event: its id, event name and data.
pub struct SseEvent {
    pub id: u64,
    pub kind: String,
    pub data: Value,
}

/// Reads events from `/executions/{id}/events` (after `last`, sent as
/// `Last-Event-ID`) until the stream ends or `stop_after` events came.
pub fn read_events(base: &str, id: &str, last: Option<u64>, stop_after: usize) -> Vec<SseEvent> {
    use std::io::BufRead;
    let client = agent();
    let mut request = client.get(format!("{base}/executions/{id}/events"));
    if let Some(last) = last {
        request = request.header("last-event-id", &last.to_string());
    }
    let mut response = request.call().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers().get("content-type").unwrap();
    assert_eq!(content_type.to_str().unwrap(), "text/event-stream");
    let reader = std::io::BufReader::new(response.body_mut().as_reader());
    let mut events = Vec::new();
    let (mut event_id, mut kind, mut data) = (None, None, None);
    for line in reader.lines() {
        let line = line.unwrap();
        if let Some(v) = line.strip_prefix("id: ") {
            event_id = Some(v.parse().unwrap());
        } else if let Some(v) = line.strip_prefix("event: ") {
            kind = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("data: ") {
            data = Some(serde_json::from_str(v).unwrap());
        } else if line.is_empty()
            && let (Some(id), Some(kind), Some(data)) = (event_id.take(), kind.take(), data.take())
        {
            events.push(SseEvent { id, kind, data });
            if events.len() == stop_after {
                // Dropping the reader closes the connection mid-stream.
                break;
            }
        }
    }
    events
}
