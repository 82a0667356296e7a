//! Executions from start to record: each is created in the store, run by
//! the engine with the journal writer as its event sink, and its end
//! recorded; every write goes through the process's one journal writer.
//!
//! At start-up it marks executions that a dead process left running as
//! `interrupted`, journals intact. While its executions run it looks for
//! cancellations another process asked for in the store (`orchestr8
//! cancel`, a server sharing the state directory) and cancels them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::bus::{Bus, Subscription};
use crate::engine::{Engine, ExecutionResult, ExecutionStatus, Progress, ResumeError};
use crate::journal::{JournalUpdate, JournalWriter, MAX_ENTRIES};
use crate::store::{Change, ExecutionRecord, Store, StoreError, now, process_alive};
use crate::workflow::{AgentCatalog, Plan};
use orchestr8_types::ExecutionId;

/// How often an orchestrator with executions running looks in the store
/// for cancellations other processes asked for.
pub const CANCEL_POLL: Duration = Duration::from_millis(250);

/// The executions running here, with what cancels each.
type Running = Mutex<HashMap<String, CancellationToken>>;

/// Runs executions and keeps their record.
pub struct Orchestrator {
    engine: Engine,
    store: Arc<dyn Store>,
    bus: Arc<Bus<JournalUpdate>>,
    /// Executions whose journal another node sharing the store appended to.
    elsewhere: Arc<Bus<ExecutionId>>,
    journal: JournalWriter,
    running: Arc<Running>,
}

/// Takes an execution off the running list however its run ends.
struct Listed<'a>(&'a Running, String);

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.1);
    }
}

/// Until the orchestrator is gone: every [`CANCEL_POLL`], while executions
/// run here, cancels those whose cancellation was requested in the store,
/// and those this node lost to another ([`Store::lost`]).
fn watch_cancel_requests(running: Weak<Running>, store: Weak<dyn Store>) {
    let pid = std::process::id();
    loop {
        std::thread::sleep(CANCEL_POLL);
        let (Some(running), Some(store)) = (running.upgrade(), store.upgrade()) else {
            return;
        };
        if running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
        {
            continue;
        }
        // Executions this node no longer holds (a shared store's lease
        // expired): another node goes on with them, and every write from
        // here is refused, so stop running them.
        for id in store.lost() {
            let running = running.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(token) = running.get(&id).filter(|t| !t.is_cancelled()) {
                tracing::warn!(execution_id = %id, "stopped here: this node's lease expired and another node took the execution over");
                token.cancel();
            }
        }
        let requested = match store.cancel_requests(pid) {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for cancellation requests");
                continue;
            }
        };
        let running = running.lock().unwrap_or_else(PoisonError::into_inner);
        for id in requested {
            if let Some(token) = running.get(&id).filter(|t| !t.is_cancelled()) {
                tracing::info!(execution_id = %id, "cancelled on request from another process");
                token.cancel();
            }
        }
    }
}

impl Orchestrator {
    /// Opens the orchestrator over `store`, marking executions a previous
    /// process left running as interrupted.
    pub fn new(engine: Engine, store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let interrupted = store.mark_interrupted(&now(), &process_alive)?;
        if !interrupted.is_empty() {
            tracing::warn!(
                ?interrupted,
                "executions left running by a previous process are marked interrupted"
            );
        }
        let bus = Arc::new(Bus::new());
        let journal = JournalWriter::start(store.clone(), bus.clone())?;
        let elsewhere = Arc::new(Bus::new());
        {
            let elsewhere = Arc::downgrade(&elsewhere);
            store.watch_commits(Box::new(move |id| {
                if let Some(bus) = elsewhere.upgrade() {
                    bus.publish(ExecutionId::from(id));
                }
            }))?;
        }
        let running = Arc::new(Running::default());
        {
            let running = Arc::downgrade(&running);
            let store = Arc::downgrade(&store);
            std::thread::Builder::new()
                .name("orchestr8-cancel-requests".into())
                .spawn(move || watch_cancel_requests(running, store))
                .map_err(|e| {
                    StoreError::Database(format!("cannot start the cancellation watcher: {e}"))
                })?;
        }
        Ok(Orchestrator {
            engine,
            store,
            bus,
            elsewhere,
            journal,
            running,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Watches committed journal entries of every execution.
    pub fn subscribe(&self, capacity: usize) -> Subscription<JournalUpdate> {
        self.bus.subscribe(capacity)
    }

    /// Watches executions whose journal another node sharing the store
    /// appended to (their entries are in the store once signalled).
    pub fn subscribe_elsewhere(&self, capacity: usize) -> Subscription<ExecutionId> {
        self.elsewhere.subscribe(capacity)
    }

    /// Runs `workflow` (already validated) with `variables` over its own,
    /// start to finish: [`Orchestrator::create`] then [`Orchestrator::execute`].
    pub async fn run(
        &self,
        workflow: &Plan,
        variables: BTreeMap<String, Value>,
        cancel: CancellationToken,
    ) -> Result<ExecutionResult, StoreError> {
        let accepted = Instant::now();
        let id = self.create(workflow, &variables).await?;
        self.execute(id, workflow, variables, cancel, accepted)
            .await
    }

    /// Records a new execution as `pending` and returns its id, so a caller
    /// can hand the id out before the execution starts (a REST `202`).
    /// Returns once the record is durable.
    pub async fn create(
        &self,
        workflow: &Plan,
        variables: &BTreeMap<String, Value>,
    ) -> Result<ExecutionId, StoreError> {
        self.create_keyed(workflow, variables, None).await
    }

    /// [`Orchestrator::create`], recording the idempotency key and the
    /// digest of the request it came with (`(key, digest)`); fails with
    /// [`StoreError::DuplicateKey`] when another execution holds the key.
    pub async fn create_keyed(
        &self,
        workflow: &Plan,
        variables: &BTreeMap<String, Value>,
        key: Option<(String, String)>,
    ) -> Result<ExecutionId, StoreError> {
        let (idempotency_key, request_hash) = key.unzip();
        // Time-ordered (see ExecutionId::new): the journal's rows of
        // executions running together sit side by side in its B-tree, so a
        // group commit writes a few pages instead of one per execution.
        let id = ExecutionId::new();
        let record = ExecutionRecord {
            id: id.clone(),
            workflow_id: workflow.metadata.id.clone(),
            workflow_name: workflow.metadata.name.clone(),
            status: ExecutionStatus::Pending,
            started_at: now(),
            finished_at: None,
            input: serde_json::to_value(variables).unwrap_or(Value::Null),
            result: None,
            owner_pid: std::process::id(),
            workflow: serde_json::to_value(workflow.workflow()).ok(),
            idempotency_key,
            request_hash,
        };
        self.journal.write(Change::Create(Box::new(record))).await?;
        Ok(id)
    }

    /// Runs the execution `id` made by [`Orchestrator::create`], journaling
    /// every event, and records its result. `accepted` is when the request
    /// for it arrived: the workflow's `totalSystemBudgetMs` counts from then,
    /// time spent queued included.
    pub async fn execute(
        &self,
        id: ExecutionId,
        workflow: &Plan,
        variables: BTreeMap<String, Value>,
        cancel: CancellationToken,
        accepted: Instant,
    ) -> Result<ExecutionResult, StoreError> {
        self.journal.send(Change::Running(id.clone()));
        self.supervise(id, workflow, variables, Start::Fresh(accepted), cancel)
            .await
    }

    /// Reads what execution `id` needs to go on after its process died:
    /// its record, the workflow it runs, checked again against `agents`,
    /// and its journal. Executions of dead processes were marked
    /// interrupted when this orchestrator opened the store; a server looks
    /// again before each round of takeovers
    /// (`ExecutionService::resume_interrupted`), not once per execution.
    pub fn prepare_resume(
        &self,
        id: &str,
        agents: &dyn AgentCatalog,
    ) -> Result<Resumable, ResumeError> {
        let record = self
            .store
            .execution(id)?
            .ok_or_else(|| ResumeError::Unknown(id.to_string()))?;
        if record.status != ExecutionStatus::Interrupted {
            return Err(ResumeError::NotInterrupted {
                id: id.to_string(),
                status: record.status.as_str().to_string(),
            });
        }
        let document = record
            .workflow
            .ok_or_else(|| ResumeError::NoDocument(id.to_string()))?;
        let plan = crate::workflow::load(&document.to_string(), agents).map_err(|source| {
            ResumeError::Workflow {
                id: id.to_string(),
                source,
            }
        })?;
        let variables = match record.input {
            Value::Object(map) => map.into_iter().collect(),
            _ => BTreeMap::new(),
        };
        let journal = self.store.journal(id, 0, MAX_ENTRIES as usize)?;
        let progress = Progress::from_journal(id, &journal)?;
        Ok(Resumable {
            id: record.id,
            plan,
            variables,
            progress,
        })
    }

    /// Records an execution [`Orchestrator::prepare_resume`] read as
    /// running in this process, failing with [`StoreError::NotResumable`]
    /// if another took it first. From then on nobody sees it interrupted,
    /// even while it waits for a turn to run.
    pub async fn claim(&self, resumable: Resumable) -> Result<Claimed, StoreError> {
        self.journal
            .write(Change::Resume {
                execution_id: resumable.id.clone(),
                owner_pid: std::process::id(),
            })
            .await?;
        Ok(Claimed(resumable))
    }

    /// Goes on with a claimed execution from where its journal stopped,
    /// into the same journal.
    pub async fn resume(
        &self,
        claimed: Claimed,
        cancel: CancellationToken,
    ) -> Result<ExecutionResult, StoreError> {
        let Resumable {
            id,
            plan,
            variables,
            progress,
        } = claimed.0;
        // A circuit open when the process died stays open for what was
        // left of its reset timeout (the time down counts here: it is the
        // upstream's time to recover).
        if let Some(breakers) = self.engine.runner().breakers() {
            for (key, (step_id, ago)) in &progress.open_circuits {
                let reset = plan
                    .steps
                    .iter()
                    .position(|s| &s.id == step_id)
                    .map(|i| plan.step_plan(i).resilience.circuit_breaker.reset_timeout());
                if let Some(left) = reset.and_then(|r| r.checked_sub(*ago)) {
                    breakers.carry_open(key, left);
                }
            }
        }
        self.supervise(id, &plan, variables, Start::Resumed(&progress), cancel)
            .await
    }

    /// Runs an execution to its end here, cancellable by other processes,
    /// journaling every event, and records its result.
    async fn supervise(
        &self,
        id: ExecutionId,
        workflow: &Plan,
        variables: BTreeMap<String, Value>,
        start: Start<'_>,
        cancel: CancellationToken,
    ) -> Result<ExecutionResult, StoreError> {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_string(), cancel.clone());
        let _listed = Listed(&self.running, id.to_string());
        let secrets = self.engine.runner().secret_values();
        let sink = self.journal.sink(id.clone(), secrets.clone());
        // The root of the execution's trace, or a child of the request that
        // started it: steps and attempts nest under it.
        let span = tracing::info_span!(
            "execution",
            execution_id = %id,
            workflow = %workflow.metadata.name,
        );
        let result = match start {
            Start::Fresh(accepted) => {
                self.engine
                    .execute(workflow, id.clone(), variables, cancel, sink, accepted)
                    .instrument(span.clone())
                    .await
            }
            Start::Resumed(progress) => {
                self.engine
                    .resume(workflow, id.clone(), variables, progress, cancel, sink)
                    .instrument(span.clone())
                    .await
            }
        };
        if let Some(e) = &result.error {
            let message = orchestr8_types::records::redact(e.message.clone(), &secrets);
            crate::trace::mark_failed(&span, e.code.as_str(), &message);
        }
        self.journal
            .write(Change::Finish {
                execution_id: id,
                status: result.status,
                finished_at: now(),
                result: serde_json::to_value(&result).unwrap_or(Value::Null),
            })
            .await?;
        Ok(result)
    }
}

/// How an execution starts running here.
enum Start<'a> {
    /// From the beginning; its request arrived then.
    Fresh(Instant),
    /// From where its journal stopped.
    Resumed(&'a Progress),
}

/// An interrupted execution, read back and ready to go on.
pub struct Resumable {
    /// The execution.
    pub id: ExecutionId,
    plan: Plan,
    variables: BTreeMap<String, Value>,
    progress: Progress,
}

impl Resumable {
    /// The workflow it runs.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }
}

/// An interrupted execution recorded as running in this process
/// ([`Orchestrator::claim`]), for [`Orchestrator::resume`].
pub struct Claimed(Resumable);

impl Claimed {
    /// The execution.
    pub fn id(&self) -> &ExecutionId {
        &self.0.id
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;

    use serde_json::json;

    use super::*;
    use crate::engine::{StepCall, StepOutcome, StepRunner};
    use crate::store::MemoryStore;
    use orchestr8_types::records::REDACTED;

    /// Echoes a secret it was given, as a careless agent would.
    struct Leaky;

    impl StepRunner for Leaky {
        fn has_agent(&self, _: &str) -> bool {
            true
        }

        fn run(&self, _: StepCall) -> Pin<Box<dyn Future<Output = StepOutcome> + Send + '_>> {
            Box::pin(async {
                StepOutcome {
                    result: Ok(json!({"token": "s3cr3t-value"})),
                    attempts: 1,
                }
            })
        }

        fn secret_values(&self) -> Vec<String> {
            vec!["s3cr3t-value".into()]
        }
    }

    #[tokio::test]
    async fn an_execution_is_recorded_with_secrets_redacted_from_its_journal() {
        let store = Arc::new(MemoryStore::new());
        let orchestrator = Orchestrator::new(Engine::new(Arc::new(Leaky)), store.clone()).unwrap();
        let wf = crate::workflow::load(
            &json!({
                "version": "1.0.0", "schemaVersion": "1.0.0",
                "metadata": {"id": "7f1d2c3e-0b4a-4f5e-9d8c-1a2b3c4d5e6f", "name": "leak"},
                "steps": [{"id": "a", "name": "a", "agent": {"id": "@x/y"}}]
            })
            .to_string(),
            &(),
        )
        .unwrap();
        let result = orchestrator
            .run(&wf, BTreeMap::new(), CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(result.status, ExecutionStatus::Succeeded);
        let record = store.execution(&result.execution_id).unwrap().unwrap();
        assert_eq!(record.status, ExecutionStatus::Succeeded);
        let journal = store.journal(&result.execution_id, 0, 100).unwrap();
        let kinds: Vec<&str> = journal.iter().map(|e| e.kind()).collect();
        assert_eq!(
            kinds,
            [
                "execution-started",
                "step-started",
                "step-succeeded",
                "execution-finished"
            ]
        );
        let text = serde_json::to_string(&journal).unwrap();
        assert!(!text.contains("s3cr3t-value"), "{text}");
        assert_eq!(journal[2].record.to_value()["output"]["token"], REDACTED);
    }
}
