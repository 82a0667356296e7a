//! Per-step orchestration overhead: engine + resilience chain + sandbox +
//! durable SQLite journal, with a trivial agent, printed beside baselines
//! measured in the same run: the same workflows with the journal in memory,
//! one bare sandbox invocation, one awaited journal commit and a bare SQLite
//! insert loop in the same directory.
//!
//! `cargo bench -p orchestr8-tests --bench engine` (after scripts/build-agents);
//! `BENCH_QUICK=1` for a short run. The state directory is `$TMPDIR`: set it
//! to compare disks (`TMPDIR=/dev/shm` for memory).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{micros, percentile, probe_steps, ratio};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestr8_host::call::Invoker;
use orchestr8_host::engine::{AgentStepRunner, Engine, ExecutionStatus, RegisteredAgent};
use orchestr8_host::orchestrator::Orchestrator;
use orchestr8_host::resilience::Resilience;
use orchestr8_host::sandbox::{
    InvocationRequest, LoadedAgent, Sandbox, SandboxConfig, SandboxPolicy,
};
use orchestr8_host::store::{MemoryStore, SqliteStore, Store};
use orchestr8_host::workflow::{self, Plan};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const STEPS: u32 = 10;
/// Blocks of SQLite and in-memory runs, alternating.
const ROUNDS: usize = 10;

fn workflow(parallel: bool) -> Plan {
    let steps = probe_steps(STEPS as usize, !parallel);
    let doc = json!({
        "version": "1.0.0", "schemaVersion": "1.0.0",
        "metadata": {"id": "7f1d2c3e-0b4a-4f5e-9d8c-1a2b3c4d5e6f", "name": "bench"},
        "steps": steps,
    });
    workflow::load(&doc.to_string(), &()).unwrap()
}

/// Whole executions, sorted.
#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn p(&self, q: f64) -> Duration {
        percentile(&self.0, q)
    }

    fn sorted(mut self) -> Self {
        self.0.sort();
        self
    }
}

async fn run_once(orchestrator: &Orchestrator, wf: &Plan) -> Duration {
    let start = Instant::now();
    let result = orchestrator
        .run(wf, BTreeMap::new(), CancellationToken::new())
        .await
        .unwrap();
    let took = start.elapsed();
    assert_eq!(result.status, ExecutionStatus::Succeeded);
    took
}

fn print_row(shape: &str, journal: &str, s: &Samples) {
    println!(
        "| {shape} | {journal} | {} | {} | {} | {} |",
        micros(s.p(0.5) / STEPS),
        micros(s.p(0.95) / STEPS),
        micros(s.p(0.5)),
        micros(s.p(0.95)),
    );
}

/// A one-row transaction at a time into a table shaped like the journal,
/// with the store's settings (WAL, `synchronous = NORMAL`, 4 KiB pages) and
/// SQLite's own automatic checkpoints.
fn bare_sqlite_commits(dir: &Path, n: usize) -> Samples {
    let conn = rusqlite::Connection::open(dir.join("bare.db")).unwrap();
    conn.pragma_update(None, "page_size", 4096).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE journal (execution_id TEXT NOT NULL, seq INTEGER NOT NULL, \
         at TEXT NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL, \
         PRIMARY KEY (execution_id, seq)) WITHOUT ROWID",
    )
    .unwrap();
    let data =
        json!({"stepId": "s1", "attempt": 1, "output": {"tag": 1, "calls_seen": 1}}).to_string();
    let mut samples = Vec::with_capacity(n);
    for seq in 0..n {
        let start = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.prepare_cached("INSERT INTO journal VALUES (?1, ?2, ?3, ?4, ?5)")
            .unwrap()
            .execute(rusqlite::params![
                format!("{:08}", seq / 25),
                seq as i64,
                "2026-12-03T12:00:00.000000Z",
                "step-succeeded",
                data
            ])
            .unwrap();
        conn.execute_batch("COMMIT").unwrap();
        samples.push(start.elapsed());
    }
    Samples(samples).sorted()
}

async fn bare_invocations(sandbox: &Sandbox, agent: &LoadedAgent, n: usize) -> Samples {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let outcome = sandbox
            .invoke(
                agent,
                &SandboxPolicy::default(),
                InvocationRequest::new(json!({"tag": 1})),
                &CancellationToken::new(),
            )
            .await;
        samples.push(start.elapsed());
        outcome.result.unwrap();
    }
    Samples(samples).sorted()
}

async fn awaited_commits(orchestrator: &Orchestrator, wf: &Plan, n: usize) -> Samples {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        orchestrator.create(wf, &BTreeMap::new()).await.unwrap();
        samples.push(start.elapsed());
    }
    Samples(samples).sorted()
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
        RegisteredAgent::new(agent.clone(), SandboxPolicy::default()),
    )]);
    let runner = Arc::new(AgentStepRunner::new(
        Invoker::new(sandbox.clone(), Resilience::default()),
        agents,
    ));
    let state = tempfile::tempdir().unwrap();
    let orchestrator =
        |store: Arc<dyn Store>| Orchestrator::new(Engine::new(runner.clone()), store).unwrap();
    let on_disk = orchestrator(Arc::new(
        SqliteStore::open(&state.path().join("orchestr8.db")).unwrap(),
    ));
    let in_memory = orchestrator(Arc::new(MemoryStore::new()));

    println!(
        "State directory: {} ($TMPDIR). {runs} executions of each workflow, \
         SQLite and in-memory runs in alternating blocks.\n",
        state.path().display()
    );
    println!(
        "| workflow | journal | per-step p50 | per-step p95 | execution p50 | execution p95 |"
    );
    println!("|---|---|---|---|---|---|");
    let mut sequence_p95 = Duration::ZERO;
    for (shape, parallel) in [
        ("10 steps in sequence", false),
        ("10 steps in parallel", true),
    ] {
        let wf = workflow(parallel);
        for _ in 0..runs / 10 {
            run_once(&on_disk, &wf).await;
            run_once(&in_memory, &wf).await;
        }
        // Alternating blocks: a drift of the machine touches both alike, and
        // one journal's trailing work rarely overlaps the other's runs.
        let (mut disk, mut memory) = (Samples::default(), Samples::default());
        for _ in 0..ROUNDS {
            for _ in 0..runs / ROUNDS {
                disk.0.push(run_once(&on_disk, &wf).await);
            }
            for _ in 0..runs / ROUNDS {
                memory.0.push(run_once(&in_memory, &wf).await);
            }
        }
        let (disk, memory) = (disk.sorted(), memory.sorted());
        print_row(shape, "SQLite (WAL)", &disk);
        print_row(shape, "in memory", &memory);
        if !parallel {
            sequence_p95 = disk.p(0.95) / STEPS;
        }
    }

    let n = runs * 10;
    let invoke = bare_invocations(&sandbox, &agent, n).await;
    let commit = awaited_commits(&on_disk, &workflow(false), n).await;
    let bare = bare_sqlite_commits(state.path(), n);
    println!("\nBaselines, same run, {n} each:\n");
    println!("| baseline | p50 | p95 |\n|---|---|---|");
    for (what, s) in [
        (
            "one sandbox invocation of the same agent (no engine, no journal)",
            &invoke,
        ),
        (
            "one awaited journal commit (`Orchestrator::create`)",
            &commit,
        ),
        (
            "bare SQLite: insert one journal-shaped row and commit",
            &bare,
        ),
    ] {
        println!("| {what} | {} | {} |", micros(s.p(0.5)), micros(s.p(0.95)));
    }
    println!(
        "\nRatios (p95): a step in sequence over one invocation {}; \
         an awaited journal commit over a bare SQLite commit {}.",
        ratio(sequence_p95, invoke.p(0.95)),
        ratio(commit.p(0.95), bare.p(0.95)),
    );
}
