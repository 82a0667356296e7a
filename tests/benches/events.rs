//! How soon a journal entry reaches a client of the event stream
//! (`GET /executions/{id}/events`): an agent emits a progress event every
//! `BEAT_MS` for `RUN_MS`, each a journal entry (and, as a burst, another
//! logs `LINES` lines as fast as it can); for each entry sent live, the time from
//! its making (its `at`, taken before it is queued for the journal writer,
//! so the commit is included; millisecond resolution) to a client over
//! loopback reading its event. Beside it, the baseline measured in the same
//! run: a `GET /health` round trip on the same server and loopback.
//!
//! `cargo bench -p orchestr8-tests --bench events` (after
//! scripts/build-agents); `BENCH_QUICK=1` for one run instead of five.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::http::{self, Client};
use common::{percentile, print_p50_p95, ratio};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use orchestr8_host::engine::RegisteredAgent;
use orchestr8_host::sandbox::{DirGrant, Limits, Sandbox, SandboxConfig, SandboxPolicy};
use orchestr8_host::store::SqliteStore;
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// Log lines of the burst (each a journal entry).
const LINES: u64 = 2000;
/// How long the steady agent runs, and how often it reports progress.
const RUN_MS: u64 = 2000;
const BEAT_MS: u64 = 10;

/// Reads the event stream of `id` to its end: for each entry made after
/// the stream opened, how long after its making the client read it.
async fn stream(addr: std::net::SocketAddr, id: &str) -> Vec<Duration> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = hyper::Request::get(format!("/executions/{id}/events"))
        .header("host", "bench")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let opened = SystemTime::now();
    assert!(response.status().is_success());
    let mut body = response.into_body();
    let mut late = Vec::new();
    let mut pending = String::new();
    while let Some(frame) = body.frame().await {
        let now = SystemTime::now();
        let Ok(data) = frame.unwrap().into_data() else {
            continue;
        };
        pending.push_str(&String::from_utf8_lossy(&data));
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            let Some(entry) = event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .and_then(|d| serde_json::from_str::<Value>(d).ok())
            else {
                continue;
            };
            let made = humantime::parse_rfc3339(entry["at"].as_str().unwrap()).unwrap();
            if made >= opened {
                late.push(now.duration_since(made).unwrap_or_default());
            }
        }
    }
    late
}

#[tokio::main]
async fn main() {
    let runs = if std::env::var_os("BENCH_QUICK").is_some() {
        1
    } else {
        5
    };
    let sandbox = Sandbox::new(SandboxConfig {
        cache_dir: None,
        ..SandboxConfig::default()
    })
    .unwrap();
    let release =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../agents/target/wasm32-wasip2/release");
    let mut loaded = Vec::new();
    for name in ["hostile_logs", "hostile_sleep", "tally"] {
        let path = release.join(format!("{name}.wasm"));
        loaded.push(sandbox.load(&path).await.unwrap());
    }
    let ids: Vec<String> = loaded.iter().map(|a| a.info().id.clone()).collect();
    let marks = tempfile::tempdir().unwrap();
    // Room for every line (the default log budget keeps 1 MiB), and the
    // directory tally leaves its markers in.
    let mut policy = SandboxPolicy::with_limits(Limits {
        log_bytes: 64 << 20,
        ..Limits::default()
    });
    policy.grants.dirs.push(DirGrant {
        host_path: marks.path().to_path_buf(),
        guest_path: "/marks".into(),
        writable: true,
        quota_bytes: None,
        quota_files: None,
    });
    let agents = loaded
        .into_iter()
        .map(|a| (a.info().id.clone(), RegisteredAgent::new(a, policy.clone())))
        .collect();
    let state = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&state.path().join("orchestr8.db")).unwrap();
    let (addr, _) = http::execution_server(&sandbox, store, agents).await;
    let (logs_id, sleep_id, tally_id) = (&ids[0], &ids[1], &ids[2]);
    let workflow = |steps: Value| {
        Bytes::from(
            json!({ "workflow": {
                "version": "1.0.0", "schemaVersion": "1.0.0",
                "metadata": { "id": "7f1d2c3e-0b4a-4f5e-9d8c-1a2b3c4d5e6f", "name": "bench" },
                "steps": steps
            }})
            .to_string(),
        )
    };
    // The stream opens while the first step sleeps: what follows is live.
    let steady = workflow(json!([
        { "id": "nap", "name": "nap", "agent": { "id": sleep_id }, "input": { "mapping": { "seconds": 1 } } },
        { "id": "beat", "name": "beat", "agent": { "id": tally_id }, "dependencies": ["nap"],
          "input": { "mapping": { "parts": ["x"], "ms": RUN_MS, "beat_ms": BEAT_MS } } }
    ]));
    let burst = workflow(json!([
        { "id": "nap", "name": "nap", "agent": { "id": sleep_id }, "input": { "mapping": { "seconds": 1 } } },
        { "id": "flood", "name": "flood", "agent": { "id": logs_id }, "dependencies": ["nap"],
          "input": { "mapping": { "lines": LINES } } }
    ]));

    let mut steady_late = Vec::new();
    let mut burst_late = Vec::new();
    for _ in 0..runs {
        for (body, late) in [(&steady, &mut steady_late), (&burst, &mut burst_late)] {
            let mut client = Client::connect(addr).await;
            let (_, answer) = client.post("/workflows/execute", body.clone()).await;
            let accepted: Value = serde_json::from_slice(&answer).unwrap();
            let execution = accepted["executionId"].as_str().unwrap().to_string();
            late.extend(stream(addr, &execution).await);
        }
    }
    steady_late.sort();
    burst_late.sort();
    let mut client = Client::connect(addr).await;
    let mut health: Vec<Duration> = Vec::with_capacity(1000);
    for _ in 0..1000 {
        health.push(client.get("/health").await.0);
    }
    health.sort();
    println!(
        "{runs} run(s) each: a progress event every {BEAT_MS} ms for {RUN_MS} ms ({} sent live), and a burst of {LINES} log lines ({} sent live).\n",
        steady_late.len(),
        burst_late.len()
    );
    print_p50_p95(
        "entry made → committed → event read by the client",
        &[
            ("progress every 10 ms", &steady_late),
            ("a burst of log lines", &burst_late),
            ("baseline: `GET /health` round trip, same server", &health),
        ],
    );
    println!(
        "\nProgress events: p99 {:.2} ms; p95 is {} the round trip.",
        percentile(&steady_late, 0.99).as_secs_f64() * 1000.0,
        ratio(percentile(&steady_late, 0.95), percentile(&health, 0.95))
    );
}
