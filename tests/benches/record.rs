//! What recording for replay costs: one-step workflows whose agent fetches a
//! 1 KiB JSON document from a loopback server, run with the agent's
//! `record = "http"` (each exchange journaled) and with `record = "off"`
//! in turn, on the durable SQLite journal. The `off` runs are
//! the baseline measured in the same run; the journal bytes each recorded
//! exchange adds are printed too.
//!
//! `cargo bench -p orchestr8-tests --bench record` (after
//! scripts/build-agents); `BENCH_QUICK=1` for a short run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{micros, percentile, print_p50_p95, ratio};

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestr8_host::call::Invoker;
use orchestr8_host::engine::{AgentStepRunner, Engine, ExecutionStatus, RegisteredAgent};
use orchestr8_host::ids::ExecutionId;
use orchestr8_host::orchestrator::Orchestrator;
use orchestr8_host::resilience::Resilience;
use orchestr8_host::sandbox::{
    Grants, HostPattern, Recording, Sandbox, SandboxConfig, SandboxPolicy,
};
use orchestr8_host::store::{SqliteStore, Store};
use orchestr8_host::workflow::{self, Plan};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn workflow(url: &str) -> Plan {
    let doc = json!({
        "version": "1.0.0", "schemaVersion": "1.0.0",
        "metadata": {"id": "7f1d2c3e-0b4a-4f5e-9d8c-1a2b3c4d5e6f", "name": "fetch"},
        "steps": [{"id": "fetch", "name": "fetch", "agent": {"id": "@hostile/fetch"},
                   "input": {"mapping": {"url": url}}}],
    });
    workflow::load(&doc.to_string(), &()).unwrap()
}

async fn orchestrator(
    sandbox: &Sandbox,
    agent: &RegisteredAgent,
    recording: Recording,
    store: Arc<dyn Store>,
) -> Orchestrator {
    let mut agent = agent.clone();
    agent.policy.recording = recording;
    let id = agent.agent.info().id.clone();
    let runner = AgentStepRunner::new(
        Invoker::new(sandbox.clone(), Resilience::default()),
        HashMap::from([(id, agent)]),
    );
    Orchestrator::new(Engine::new(Arc::new(runner)), store).unwrap()
}

/// One execution, start to end: how long it took and its id.
async fn once(orchestrator: &Orchestrator, wf: &Plan) -> (Duration, ExecutionId) {
    let started = Instant::now();
    let result = orchestrator
        .run(wf, BTreeMap::new(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(result.status, ExecutionStatus::Succeeded);
    (started.elapsed(), result.execution_id)
}

#[tokio::main]
async fn main() {
    let runs = if std::env::var_os("BENCH_QUICK").is_some() {
        100
    } else {
        1000
    };
    let document = json!({ "items": (0..24).map(|i| json!({"id": i, "title": "an item of the answer"})).collect::<Vec<_>>() }).to_string();
    let body_bytes = document.len();
    let app = axum::Router::new().route(
        "/doc",
        axum::routing::get(move || {
            let document = document.clone();
            async move { ([("content-type", "application/json")], document) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let sandbox = Sandbox::new(SandboxConfig {
        cache_dir: None,
        ..SandboxConfig::default()
    })
    .unwrap();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../agents/target/wasm32-wasip2/release/hostile_fetch.wasm");
    let policy = SandboxPolicy {
        grants: Grants {
            allowed_hosts: vec![addr.to_string().parse::<HostPattern>().unwrap()],
            ..Grants::default()
        },
        ..SandboxPolicy::default()
    };
    let agent = RegisteredAgent::new(sandbox.load(&path).await.unwrap(), policy);
    let state = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&state.path().join("orchestr8.db")).unwrap());
    let recorded = orchestrator(&sandbox, &agent, Recording::Http, store.clone()).await;
    let plain = orchestrator(&sandbox, &agent, Recording::Off, store.clone()).await;
    let wf = workflow(&format!("http://{addr}/doc"));

    for _ in 0..runs / 10 {
        once(&recorded, &wf).await;
        once(&plain, &wf).await;
    }
    let (mut with, mut without) = (Vec::new(), Vec::new());
    let mut journal_bytes = 0usize;
    let mut exchanges = 0usize;
    // One of each in turn: the machine's drift touches both alike.
    for _ in 0..runs {
        let (took, id) = once(&recorded, &wf).await;
        with.push(took);
        for e in store.journal(id.as_str(), 0, 1000).unwrap() {
            if e.kind() == "http-recorded" {
                exchanges += 1;
                journal_bytes += serde_json::to_string(&e).unwrap().len();
            }
        }
        without.push(once(&plain, &wf).await.0);
    }
    with.sort();
    without.sort();
    println!(
        "One-step workflows fetching a {body_bytes}-byte JSON document from loopback, {runs} of each, SQLite journal in {}.\n",
        state.path().display()
    );
    print_p50_p95(
        "record (per execution)",
        &[("http (recorded)", &with), ("off (baseline)", &without)],
    );
    let cost = |p: f64| percentile(&with, p).saturating_sub(percentile(&without, p));
    println!(
        "\nRecording adds {} at p50 and {} at p95 per step ({} and {} of the baseline); each recorded exchange is {} journal bytes for a {body_bytes}-byte body.",
        micros(cost(0.5)),
        micros(cost(0.95)),
        ratio(percentile(&with, 0.5), percentile(&without, 0.5)),
        ratio(percentile(&with, 0.95), percentile(&without, 0.95)),
        journal_bytes / exchanges.max(1)
    );
}
