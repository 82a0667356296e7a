//! Resuming an interrupted execution whose journal holds 1,000 entries:
//! the time from asking to resume it (reading its record and journal back,
//! checking its workflow, taking it over) to its first new attempt
//! starting, printed beside a baseline measured in the same run: reading
//! the same 1,000 journal rows with a bare SQLite query.
//!
//! `cargo bench -p orchestr8-tests --bench resume` (after
//! scripts/build-agents); `BENCH_QUICK=1` for a short run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{percentile, print_p50_p95, probe_steps, ratio};

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use orchestr8_host::call::Invoker;
use orchestr8_host::engine::{AgentStepRunner, Engine, RegisteredAgent};
use orchestr8_host::orchestrator::Orchestrator;
use orchestr8_host::resilience::Resilience;
use orchestr8_host::sandbox::{Sandbox, SandboxConfig, SandboxPolicy};
use orchestr8_host::store::{ExecutionRecord, NewEntry, SqliteStore, Store};
use orchestr8_host::workflow::{self, Plan};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Steps of the workflow: four journal entries each.
const STEPS: usize = 251;

fn workflow() -> (Value, Plan) {
    let steps = probe_steps(STEPS, true);
    let doc = json!({
        "version": "1.0.0", "schemaVersion": "1.0.0",
        "metadata": {"id": "7f1d2c3e-0b4a-4f5e-9d8c-1a2b3c4d5e6f", "name": "long"},
        "policies": {"timeout": {"global": 3_600_000}, "resilienceBudget": {"totalSystemBudgetMs": 3_600_000}},
        "steps": steps,
    });
    let plan = workflow::load(&doc.to_string(), &()).unwrap();
    (doc, plan)
}

#[tokio::main]
async fn main() {
    let runs = if std::env::var_os("BENCH_QUICK").is_some() {
        10
    } else {
        50
    };
    let agent_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../agents/target/wasm32-wasip2/release/state_probe.wasm");
    let sandbox = Sandbox::new(SandboxConfig {
        cache_dir: None,
        ..SandboxConfig::default()
    })
    .unwrap();
    let agent = sandbox.load(&agent_path).await.unwrap();
    let id = agent.info().id.clone();
    let catalog = HashMap::from([(id.clone(), agent.info().input_schema.clone())]);
    let agents = HashMap::from([(id, RegisteredAgent::new(agent, SandboxPolicy::default()))]);
    let runner = Arc::new(AgentStepRunner::new(
        Invoker::new(sandbox, Resilience::default()),
        agents,
    ));
    let state = tempfile::tempdir().unwrap();
    let db = state.path().join("orchestr8.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).unwrap());
    let orchestrator = Orchestrator::new(Engine::new(runner), store.clone()).unwrap();

    // One real run gives the journal; its last step's end and the
    // execution's end are cut, as if the process died in that step.
    let (doc, plan) = workflow();
    let done = orchestrator
        .run(&plan, BTreeMap::new(), CancellationToken::new())
        .await
        .unwrap();
    let journal = store.journal(&done.execution_id, 0, 100_000).unwrap();
    let cut = journal.len() - 3;
    let kept: Vec<NewEntry> = journal[..cut]
        .iter()
        .map(|e| NewEntry {
            at: e.at.clone(),
            record: e.record.clone(),
        })
        .collect();
    let interrupted = |n: usize| {
        let record = ExecutionRecord {
            id: format!("00000000-0000-7000-8000-{n:012}").into(),
            workflow_id: "7f1d2c3e-0b4a-4f5e-9d8c-1a2b3c4d5e6f".into(),
            workflow_name: "long".into(),
            status: orchestr8_host::engine::ExecutionStatus::Running,
            started_at: kept[0].at.clone(),
            finished_at: None,
            input: json!({}),
            result: None,
            // No such process: the execution's owner is gone.
            owner_pid: u32::MAX - 1,
            workflow: Some(doc.clone()),
            idempotency_key: None,
            request_hash: None,
        };
        store.create_execution(&record).unwrap();
        store.append(record.id.as_str(), &kept).unwrap();
        record.id
    };

    let mut resume = Vec::with_capacity(runs);
    let mut bare = Vec::with_capacity(runs);
    let raw = rusqlite::Connection::open(&db).unwrap();
    for n in 0..runs {
        let id = interrupted(n);
        // Baseline: the same rows, read bare.
        let started = Instant::now();
        let mut stmt = raw
            .prepare_cached(
                "SELECT seq, at, data FROM journal WHERE execution_id = ?1 ORDER BY seq",
            )
            .unwrap();
        let rows = stmt
            .query_map([id.as_str()], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .unwrap()
            .count();
        bare.push(started.elapsed());
        assert!(rows >= 1000, "{rows} rows");

        let mut bus = orchestrator.subscribe(65_536);
        let started = Instant::now();
        let resumable = orchestrator.prepare_resume(id.as_str(), &catalog).unwrap();
        let claimed = orchestrator.claim(resumable).await.unwrap();
        let going = orchestrator.resume(claimed, CancellationToken::new());
        tokio::pin!(going);
        let first_attempt = loop {
            tokio::select! {
                // The attempt is published before the end is acknowledged.
                biased;
                update = bus.recv() => {
                    let update = update.unwrap();
                    if update.execution_id == id && update.entry.kind() == "attempt-started" {
                        break started.elapsed();
                    }
                }
                result = &mut going => panic!("ended before a new attempt: {:?}", result.map(|r| r.status)),
            }
        };
        let result = going.await.unwrap();
        assert_eq!(
            result.status,
            orchestr8_host::engine::ExecutionStatus::Succeeded
        );
        resume.push(first_attempt);
    }
    resume.sort();
    bare.sort();
    println!(
        "Resume of an interrupted execution with {} journal entries ({STEPS} steps, the last one running), {runs} runs; SQLite in {}.\n",
        cut,
        state.path().display()
    );
    print_p50_p95(
        "",
        &[
            ("resume → first new attempt starts", &resume),
            ("baseline: bare SQLite read of the same journal rows", &bare),
        ],
    );
    println!(
        "\nResume p50 is {} the bare read.",
        ratio(percentile(&resume, 0.5), percentile(&bare, 0.5))
    );
}
