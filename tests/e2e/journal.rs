//! The journal reads in the order things happened: an agent's log lines and
//! events are recorded while its attempt runs, between that attempt's start
//! and end, and observers see them before the step ends.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use orchestr8_host::call::Invoker;
use orchestr8_host::engine::{AgentStepRunner, Engine, ExecutionEvent, RegisteredAgent};
use orchestr8_host::orchestrator::Orchestrator;
use orchestr8_host::record::Record;
use orchestr8_host::resilience::Resilience;
use orchestr8_host::sandbox::SandboxPolicy;
use orchestr8_host::store::{JournalEntry, MemoryStore};
use orchestr8_host::workflow;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{load, sandbox};

async fn orchestrator(agents: &[&str]) -> Orchestrator {
    let mut registered = HashMap::new();
    for name in agents {
        let agent = load(name).await;
        registered.insert(
            agent.info().id.clone(),
            RegisteredAgent::new(agent, SandboxPolicy::default()),
        );
    }
    let runner = AgentStepRunner::new(Invoker::new(sandbox(), Resilience::default()), registered);
    Orchestrator::new(Engine::new(Arc::new(runner)), Arc::new(MemoryStore::new())).unwrap()
}

fn one_step(agent: &str, input: Value) -> workflow::Plan {
    let doc = json!({
        "version": "1.0.0", "schemaVersion": "1.0.0",
        "metadata": { "id": "0f8e4c52-6d1b-4e0a-9a3f-5b7c2d1e8f90", "name": "journal order" },
        "policies": {
            "resilience": { "retry": { "maxAttempts": 3, "baseDelayMs": 100 } },
            "cancellation": { "gracePeriod": 100 }
        },
        "steps": [{ "id": "s", "name": "s", "agent": { "id": agent }, "input": { "mapping": input } }]
    });
    workflow::load(&doc.to_string(), &()).unwrap()
}

fn position(journal: &[JournalEntry], kind: &str, attempt: u32) -> usize {
    journal
        .iter()
        .position(|e| e.kind() == kind && e.attempt() == Some(attempt))
        .unwrap_or_else(|| panic!("no {kind} of attempt {attempt}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempts_log_lines_come_before_the_next_attempt() {
    let orchestrator = orchestrator(&["flaky"]).await;
    let wf = one_step("@orchestr8/flaky", json!({ "failures": 1 }));
    let result = orchestrator
        .run(&wf, BTreeMap::new(), CancellationToken::new())
        .await
        .unwrap();
    let journal = orchestrator
        .store()
        .journal(&result.execution_id, 0, 1000)
        .unwrap();
    let log = journal
        .iter()
        .position(|e| e.kind() == "agent-log")
        .expect("the agent's log line is journaled");
    let Record::Event(ExecutionEvent::AgentLog { attempt, line, .. }) = &journal[log].record else {
        panic!("not a log line: {:?}", journal[log]);
    };
    assert_eq!(*attempt, 1);
    assert_eq!(line.message, "attempt 1 fails on purpose");
    assert!(position(&journal, "attempt-started", 1) < log);
    assert!(log < position(&journal, "attempt-failed", 1));
    assert!(log < position(&journal, "attempt-started", 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observers_see_log_lines_and_events_while_the_step_runs() {
    let orchestrator = Arc::new(orchestrator(&["hostile-sleep"]).await);
    let mut updates = orchestrator.subscribe(1000);
    let wf = one_step("@hostile/sleep", json!({ "seconds": 600 }));
    let cancel = CancellationToken::new();
    let running = {
        let orchestrator = orchestrator.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move { orchestrator.run(&wf, BTreeMap::new(), cancel).await })
    };
    // The agent is asleep for ten minutes: what arrives came live.
    let mut seen = Vec::new();
    while !(seen.contains(&"agent-log".to_string()) && seen.contains(&"agent-event".to_string())) {
        let update = tokio::time::timeout(Duration::from_secs(60), updates.recv())
            .await
            .expect("progress arrives while the step runs")
            .unwrap();
        let kind = update.entry.kind().to_string();
        assert!(
            !kind.starts_with("step-") || kind == "step-started",
            "the step ended before its progress arrived: {seen:?}"
        );
        if let Record::Event(ExecutionEvent::AgentEvent { attempt, event, .. }) =
            &update.entry.record
        {
            assert_eq!(*attempt, 1);
            assert_eq!(event.payload, json!({ "sleeping": 600 }));
        }
        seen.push(kind);
    }
    cancel.cancel();
    let result = running.await.unwrap().unwrap();
    assert_eq!(result.status.as_str(), "cancelled");
}
