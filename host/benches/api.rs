//! Load benchmark of the HTTP interfaces, in-process over loopback TCP:
//! `POST /process` (one agent as a microservice) and
//! `POST /workflows/execute?wait=true` (a one-step workflow journaled to
//! SQLite), at 1, 10 and 100 concurrent keep-alive clients. Prints
//! throughput and p50/p95/p99 latency:
//! `cargo bench -p orchestr8-host --bench api` (after scripts/build-agents).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{micros, percentile};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use orchestr8_host::api::{
    self, AgentService, ExecutionService, HttpOptions, Metrics, ServiceOptions,
};
use orchestr8_host::engine::{AgentStepRunner, Engine, RegisteredAgent};
use orchestr8_host::invoker::Invoker;
use orchestr8_host::orchestrator::Orchestrator;
use orchestr8_host::resilience::{Resilience, ResiliencePolicy};
use orchestr8_host::sandbox::{Sandbox, SandboxConfig, SandboxPolicy};
use orchestr8_host::store::SqliteStore;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

async fn spawn_server(router: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(api::serve(listener, router, std::future::pending()));
    addr
}

/// One keep-alive client sending `n` requests in a row; returns latencies.
async fn client(addr: SocketAddr, path: &'static str, body: Bytes, n: usize) -> Vec<Duration> {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let request = hyper::Request::post(path)
            .header("host", "bench")
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .unwrap();
        let started = Instant::now();
        sender.ready().await.unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        latencies.push(started.elapsed());
        assert!(
            status.is_success(),
            "{status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    latencies
}

async fn load(
    label: &str,
    addr: SocketAddr,
    path: &'static str,
    body: Bytes,
    clients: usize,
    total: usize,
) {
    let per_client = (total / clients).max(1);
    // Warm up connections and caches.
    client(addr, path, body.clone(), 20).await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(client(addr, path, body.clone(), per_client)))
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort();
    println!(
        "{label:<28} {clients:>3} clients  {:>8.0} req/s   p50 {:>9}  p95 {:>9}  p99 {:>9}",
        all.len() as f64 / elapsed.as_secs_f64(),
        micros(percentile(&all, 0.50)),
        micros(percentile(&all, 0.95)),
        micros(percentile(&all, 0.99)),
    );
}

#[tokio::main]
async fn main() {
    let total = if std::env::var_os("BENCH_QUICK").is_some() {
        300
    } else {
        5000
    };
    let echo_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../agents/target/wasm32-wasip2/release/echo.wasm");
    let sandbox = Sandbox::new(SandboxConfig {
        max_instances: 256,
        cache_dir: None,
        ..SandboxConfig::default()
    })
    .unwrap();
    let echo = RegisteredAgent::new(
        sandbox.load(&echo_path).await.unwrap(),
        SandboxPolicy::default(),
    );
    let id = echo.agent.info().id.clone();

    // One agent as a microservice.
    let chain = Resilience::default();
    let agent_service = AgentService::new(
        Invoker::new(sandbox.clone(), chain.clone()),
        echo.clone(),
        ResiliencePolicy::default(),
        Arc::new(Metrics::new(Some(chain))),
    );
    let process = spawn_server(agent_service.router(&HttpOptions::default())).await;

    // The orchestrator with its SQLite journal.
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("orchestr8.db")).unwrap();
    let chain = Resilience::default();
    let runner = AgentStepRunner::new(
        Invoker::new(sandbox.clone(), chain.clone()),
        HashMap::from([(id.clone(), echo)]),
    );
    let orchestrator = Orchestrator::new(Engine::new(Arc::new(runner)), Arc::new(store)).unwrap();
    let service = ExecutionService::new(
        Arc::new(orchestrator),
        HashSet::from([id.clone()]),
        ServiceOptions {
            max_running: 256,
            queue_capacity: 4096,
            ..ServiceOptions::default()
        },
        Arc::new(Metrics::new(Some(chain))),
    );
    let execute = spawn_server(service.router(&HttpOptions::default())).await;

    let process_body = Bytes::from(json!({ "hello": "world" }).to_string());
    let execute_body = Bytes::from(
        json!({ "workflow": {
            "version": "1.0.0", "schemaVersion": "1.0.0",
            "metadata": { "id": "7f1d2c3e-0b4a-4f5e-9d8c-1a2b3c4d5e6f", "name": "bench" },
            "steps": [{ "id": "only", "name": "only", "agent": { "id": id }, "input": { "mapping": { "n": 1 } } }]
        }})
        .to_string(),
    );
    println!("{total} requests per level (BENCH_QUICK=1 for 300)");
    for clients in [1, 10, 100] {
        load(
            "POST /process",
            process,
            "/process",
            process_body.clone(),
            clients,
            total,
        )
        .await;
    }
    for clients in [1, 10, 100] {
        load(
            "POST /workflows/execute?wait",
            execute,
            "/workflows/execute?wait=true",
            execute_body.clone(),
            clients,
            total,
        )
        .await;
    }
}
