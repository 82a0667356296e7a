//! Per-step orchestration overhead: engine + durable SQLite journal +
//! sandbox, with a trivial agent. A bench binary that prints its figures:
//! `cargo bench -p orchestr8-tests --bench engine` (after scripts/build-agents).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::micros;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestr8_host::call::Invoker;
use orchestr8_host::engine::{AgentStepRunner, Engine, ExecutionStatus, RegisteredAgent};
use orchestr8_host::orchestrator::Orchestrator;
use orchestr8_host::resilience::Resilience;
use orchestr8_host::sandbox::{Sandbox, SandboxConfig, SandboxPolicy};
use orchestr8_host::store::SqliteStore;
use orchestr8_host::workflow::{self, Plan};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn workflow(parallel: bool) -> Plan {
    let steps: Vec<Value> = (0..10)
        .map(|i| {
            let deps: Vec<String> = if parallel || i == 0 {
                vec![]
            } else {
                vec![format!("s{}", i - 1)]
            };
            json!({"id": format!("s{i}"), "name": "s", "agent": {"id": "@test/state-probe"},
                   "dependencies": deps, "input": {"mapping": {"tag": i}}})
        })
        .collect();
    let doc = json!({
        "version": "1.0.0", "schemaVersion": "1.0.0",
        "metadata": {"id": "7f1d2c3e-0b4a-4f5e-9d8c-1a2b3c4d5e6f", "name": "bench"},
        "steps": steps,
    });
    workflow::load(&doc.to_string(), &()).unwrap()
}

#[tokio::main]
async fn main() {
    let runs = if std::env::var_os("BENCH_QUICK").is_some() {
        50
    } else {
        500
    };
    let agent_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../agents/target/wasm32-wasip2/release/state_probe.wasm");
    let sandbox = Sandbox::new(SandboxConfig {
        max_instances: 64,
        cache_dir: None,
        ..SandboxConfig::default()
    })
    .unwrap();
    let agent = sandbox.load(&agent_path).await.unwrap();
    let agents = HashMap::from([(
        agent.info().id.clone(),
        RegisteredAgent::new(agent, SandboxPolicy::default()),
    )]);
    let state = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&state.path().join("orchestr8.db")).unwrap();
    let runner = AgentStepRunner::new(Invoker::new(sandbox, Resilience::default()), agents);
    let orchestrator = Orchestrator::new(Engine::new(Arc::new(runner)), Arc::new(store)).unwrap();

    println!("| workflow | per-step p50 | per-step p95 | execution p50 |\n|---|---|---|---|");
    for (name, parallel) in [
        ("10 steps in sequence", false),
        ("10 steps in parallel", true),
    ] {
        let wf = workflow(parallel);
        let mut per_step = Vec::with_capacity(runs);
        let mut whole = Vec::with_capacity(runs);
        for _ in 0..runs {
            let start = Instant::now();
            let result = orchestrator
                .run(&wf, BTreeMap::new(), CancellationToken::new())
                .await
                .unwrap();
            let took = start.elapsed();
            assert_eq!(result.status, ExecutionStatus::Succeeded);
            whole.push(took);
            per_step.push(took / 10);
        }
        per_step.sort();
        whole.sort();
        let p = |v: &[Duration], q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        println!(
            "| {name} | {} | {} | {} |",
            micros(p(&per_step, 0.5)),
            micros(p(&per_step, 0.95)),
            micros(p(&whole, 0.5))
        );
    }
}
