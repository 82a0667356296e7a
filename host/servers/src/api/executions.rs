//! The orchestrator's REST API: `POST /workflows/execute`,
//! `GET /executions/{id}`, `GET /executions/{id}/journal`,
//! `GET /executions/{id}/events` (in `events`),
//! `POST /executions/{id}/cancel`, plus `/health`, `/metrics` and
//! `/openapi.json`.
//!
//! Executions run in background tasks. At most `max_running` run at once;
//! up to `queue_capacity` more wait (recorded `pending`); past that the
//! server answers 503 with `Retry-After` instead of degrading everyone.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::extract::{ApiPath, ApiQuery, JsonBody};
use super::metrics::metrics_response;
use super::model::{
    Accepted, Cancelling, ExecuteQuery, ExecuteRequest, ExecutionList, ExecutionView, Health,
    JournalPage, JournalQuery, ListQuery,
};
use super::{ApiError, HttpOptions, Metrics, harden, openapi};
use orchestr8_host::bus::Subscription;
use orchestr8_host::engine::{
    ExecutionEvent, ExecutionResult, ExecutionStatus, ResumeError, StepStatus,
};
use orchestr8_host::error::ErrorCode;
use orchestr8_host::ids::ExecutionId;
use orchestr8_host::journal::JournalUpdate;
use orchestr8_host::orchestrator::{Claimed, Orchestrator, Resumable};
use orchestr8_host::record::Record;
use orchestr8_host::registry::{AgentRegistry, AgentSet};
use orchestr8_host::resilience::{BreakerRegistry, BreakerState};
use orchestr8_host::store::{
    ExecutionQuery, ExecutionRecord, JournalEntry, StoreError, now, process_alive, stored_time,
    within,
};
use orchestr8_host::workflow::{self, Plan};

/// How the server admits and waits for executions.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Executions running at once.
    pub max_running: usize,
    /// Executions waiting beyond those; past it, 503.
    pub queue_capacity: usize,
    /// The longest `?wait=true` waits before answering 202.
    pub max_wait: Duration,
    /// Where `workflowFile` references are looked up (the project).
    pub workflows_root: Option<PathBuf>,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            max_running: 64,
            queue_capacity: 1024,
            max_wait: Duration::from_secs(60),
            workflows_root: None,
        }
    }
}

/// Resolves to the result once the execution ends.
type Done = watch::Receiver<Option<Arc<ExecutionResult>>>;

/// How long an idempotency key keeps answering the execution it started.
pub const IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// An execution a request started, or the one an earlier request with the
/// same idempotency key did.
struct Started {
    id: ExecutionId,
    /// Resolves when it ends, while it runs in this server.
    done: Option<Done>,
    /// The earlier execution's record, when the key found one.
    earlier: Option<ExecutionRecord>,
}

/// The idempotency key of an execute request, with its request's digest:
/// the `Idempotency-Key` header, else the workflow's
/// `policies.idempotencyKey` rendered with the request's variables.
fn idempotency(
    headers: &HeaderMap,
    wf: &Plan,
    variables: &BTreeMap<String, Value>,
) -> Result<Option<(String, String)>, ApiError> {
    let given = match headers.get("idempotency-key") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .filter(|k| is_idempotency_key(k))
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidInput,
                        "the Idempotency-Key header must be 1 to 255 characters of letters, digits, `-`, `_`, `.` and `:`",
                    )
                })?
                .to_string(),
        ),
        None => wf.idempotency_key(variables).map_err(|e| {
            ApiError::new(
                ErrorCode::Validation,
                format!("policies.idempotencyKey: {e}"),
            )
        })?,
    };
    match given {
        None => Ok(None),
        Some(key) if key.is_empty() || key.len() > 255 => Err(ApiError::new(
            ErrorCode::Validation,
            format!(
                "policies.idempotencyKey renders to {} characters; it must be 1 to 255",
                key.len()
            ),
        )),
        Some(key) => Ok(Some((key, wf.request_digest(variables)))),
    }
}

fn is_idempotency_key(key: &str) -> bool {
    (1..=255).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// How a background execution begins.
enum Begin {
    /// Just accepted: the plan, its variables, when its request arrived.
    Fresh(Box<Plan>, BTreeMap<String, Value>, tokio::time::Instant),
    /// Taken over from a process that died, already claimed.
    Resumed(Box<Claimed>),
}

struct Live {
    cancel: CancellationToken,
    done: Done,
}

/// The orchestrator behind the REST API.
pub struct ExecutionService {
    orchestrator: Arc<Orchestrator>,
    /// The agents it can run (those of the orchestrator's step runner).
    agents: Arc<AgentRegistry>,
    options: ServiceOptions,
    metrics: Arc<Metrics>,
    live: Mutex<HashMap<ExecutionId, Live>>,
    permits: Arc<Semaphore>,
    admitted: AtomicUsize,
    running: AtomicUsize,
    tasks: TaskTracker,
    stopping: CancellationToken,
    /// Interrupted executions that cannot go on here (an agent is
    /// missing): looked at once, not at every sweep.
    passed_over: Mutex<std::collections::HashSet<ExecutionId>>,
}

/// How often a node on a shared store looks for executions of dead nodes
/// to take over (their leases expire first: see the store's lease).
pub const TAKE_OVER_EVERY: Duration = Duration::from_secs(1);

impl ExecutionService {
    /// A service over `orchestrator`, which runs the agents of `agents`:
    /// a workflow is checked against them (ids, and each step's mapping
    /// against its agent's input schema) before it is accepted, after they
    /// are reloaded if their files changed.
    pub fn new(
        orchestrator: Arc<Orchestrator>,
        agents: Arc<AgentRegistry>,
        options: ServiceOptions,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let service = Arc::new(ExecutionService {
            permits: Arc::new(Semaphore::new(options.max_running.max(1))),
            orchestrator,
            agents,
            options,
            metrics,
            live: Mutex::new(HashMap::new()),
            admitted: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            tasks: TaskTracker::new(),
            stopping: CancellationToken::new(),
            passed_over: Mutex::new(std::collections::HashSet::new()),
        });
        service.watch_journal();
        service
    }

    /// Feeds committed journal entries to the metrics.
    fn watch_journal(self: &Arc<Self>) {
        let mut updates = self.orchestrator.subscribe(65_536);
        let metrics = self.metrics.clone();
        let stopping = self.stopping.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    update = updates.recv() => match update {
                        Some(u) => metrics.observe_entry(&u.entry),
                        None => break,
                    },
                    _ = stopping.cancelled() => break,
                }
            }
        });
    }

    /// The routes, with the shared hardening of `http`.
    pub fn router(self: &Arc<Self>, http: &HttpOptions) -> Router {
        let document = Arc::new(openapi::document(http.token.is_some()));
        let router = Router::new()
            .route("/workflows/execute", post(execute))
            .route("/executions", get(list))
            .route("/executions/{id}", get(status))
            .route("/executions/{id}/journal", get(journal))
            .route("/executions/{id}/events", get(super::events::events))
            .route("/executions/{id}/cancel", post(cancel))
            .route("/workflows", get(super::catalog::workflows))
            .route("/workflows/validate", post(super::catalog::validate))
            .route("/agents", get(super::catalog::agents))
            .route("/health", get(health))
            .route("/metrics", get(metrics))
            .route(
                "/openapi.json",
                get(move || async move { Json(document.as_ref().clone()) }),
            )
            .merge(super::console::routes())
            .with_state(self.clone());
        harden(router, http)
    }

    /// Graceful shutdown: refuses new executions, lets running ones finish
    /// within `grace`, then cancels the rest (the journal records each
    /// cancellation) and waits for them to wind down.
    pub async fn shutdown(&self, grace: Duration) {
        self.stopping.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            self.cancel_all().await;
        }
        // Everything is recorded: a node on a shared store leaves it.
        let store = self.orchestrator.store().clone();
        let _ = tokio::task::spawn_blocking(move || store.leave()).await;
    }

    /// Cancels what still runs, and waits until it is recorded.
    async fn cancel_all(&self) {
        let live: Vec<CancellationToken> = self
            .live
            .lock()
            .map(|l| l.values().map(|e| e.cancel.clone()).collect())
            .unwrap_or_default();
        tracing::warn!(
            executions = live.len(),
            "grace period over: cancelling what is still running"
        );
        for token in live {
            token.cancel();
        }
        self.tasks.wait().await;
    }

    fn load_counts(&self) -> (usize, usize) {
        let admitted = self.admitted.load(Ordering::SeqCst);
        let running = self.running.load(Ordering::SeqCst);
        (admitted.saturating_sub(running), running)
    }

    fn update_gauges(&self) {
        let (queued, running) = self.load_counts();
        self.metrics.set_load(queued, running);
    }

    async fn resolve(&self, request: &ExecuteRequest) -> Result<Plan, ApiError> {
        let text =
            self.workflow_text(request.workflow.as_ref(), request.workflow_file.as_deref())?;
        let agents = self.agent_set().await?;
        workflow::load(&text, agents.as_ref()).map_err(|e| ApiError::from(&e))
    }

    /// The text of the workflow a request gives: `workflow` (a document)
    /// or `workflowFile` (a file of the project), exactly one.
    pub(super) fn workflow_text(
        &self,
        document: Option<&Value>,
        file: Option<&str>,
    ) -> Result<String, ApiError> {
        match (document, file) {
            (Some(doc), None) => Ok(doc.to_string()),
            (None, Some(file)) => read_workflow_file(self.options.workflows_root.as_deref(), file),
            _ => Err(ApiError::new(
                ErrorCode::InvalidInput,
                "give either `workflow` (a document) or `workflowFile` (a file of the project)",
            )),
        }
    }

    /// The agents as they are now, reloaded first if their files changed.
    pub(super) async fn agent_set(&self) -> Result<Arc<AgentSet>, ApiError> {
        self.agents
            .refreshed()
            .await
            .map_err(|e| ApiError::from(&e))
    }

    /// The project's root, where workflow files are found.
    pub(super) fn project_root(&self) -> Option<&Path> {
        self.options.workflows_root.as_deref()
    }

    /// The state of every circuit breaker used so far.
    pub(super) fn circuits(&self) -> Vec<(String, BreakerState)> {
        self.orchestrator
            .engine()
            .runner()
            .breakers()
            .map(BreakerRegistry::states)
            .unwrap_or_default()
    }

    /// The execution an earlier request with idempotency key `key` (and
    /// the same workflow and input: `digest`) started within the retention;
    /// `None` when there is none (a key past its retention is freed).
    fn existing(&self, key: &str, digest: &str) -> Result<Option<Started>, ApiError> {
        let store = self.orchestrator.store();
        let Some(record) = store
            .execution_by_key(key)
            .map_err(|e| ApiError::from(&e))?
        else {
            return Ok(None);
        };
        if !within(&record.started_at, IDEMPOTENCY_RETENTION) {
            store
                .release_key(&record.id)
                .map_err(|e| ApiError::from(&e))?;
            return Ok(None);
        }
        if record.request_hash.as_deref() != Some(digest) {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "idempotency key `{key}` belongs to execution `{}`, started by another request (another workflow or input): use a new key",
                    record.id
                ),
            )
            .with_details(json!({ "executionId": record.id.as_str() })));
        }
        let done = self
            .live
            .lock()
            .ok()
            .and_then(|l| l.get(&record.id).map(|e| e.done.clone()));
        Ok(Some(Started {
            id: record.id.clone(),
            done,
            earlier: Some(record),
        }))
    }

    /// Accepts an execution and starts it in the background; with an
    /// idempotency key (and its request's digest), answers the execution
    /// an earlier request with that key started instead, if there is one.
    async fn start(
        self: &Arc<Self>,
        wf: Plan,
        variables: BTreeMap<String, Value>,
        key: Option<(String, String)>,
    ) -> Result<Started, ApiError> {
        if let Some((key, digest)) = &key
            && let Some(earlier) = self.existing(key, digest)?
        {
            return Ok(earlier);
        }
        let accepted = tokio::time::Instant::now();
        if self.stopping.is_cancelled() {
            return Err(
                ApiError::new(ErrorCode::Overloaded, "the server is shutting down")
                    .retry_after(Duration::from_secs(5)),
            );
        }
        let capacity = self.capacity();
        let admitted = self.admitted.fetch_add(1, Ordering::SeqCst);
        if admitted >= capacity {
            self.admitted.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::new(
                ErrorCode::Overloaded,
                format!("{capacity} executions are running or queued: try again later"),
            )
            .retry_after(Duration::from_secs(1)));
        }
        let id = match self
            .orchestrator
            .create_keyed(&wf, &variables, key.clone())
            .await
        {
            Ok(id) => id,
            Err(e) => {
                self.admitted.fetch_sub(1, Ordering::SeqCst);
                // A request with the same key got there first.
                if let (StoreError::DuplicateKey(_), Some((key, digest))) = (&e, &key)
                    && let Some(earlier) = self.existing(key, digest)?
                {
                    return Ok(earlier);
                }
                return Err(ApiError::from(&e));
            }
        };
        let done = self.spawn(id.clone(), Begin::Fresh(Box::new(wf), variables, accepted));
        Ok(Started {
            id,
            done: Some(done),
            earlier: None,
        })
    }

    /// How many executions may be running or queued here at once.
    fn capacity(&self) -> usize {
        self.options.max_running + self.options.queue_capacity
    }

    /// Goes on with the executions of this state whose process died (on
    /// a shared store: whose node's lease expired), each in the background
    /// as if just accepted (listed, cancellable): what a restarted server
    /// does first, and a node on a shared store every [`TAKE_OVER_EVERY`]
    /// (see [`ExecutionService::keep_taking_over`]); on a shared store, as
    /// many as this node would admit as new executions. Each is recorded
    /// as running here before this returns, so a client never reads as
    /// interrupted one that is going on. Returns their ids; one that
    /// cannot go on here (its agent is gone) is logged and left
    /// interrupted, and one another node took first is left to it.
    pub async fn resume_interrupted(self: &Arc<Self>) -> Vec<ExecutionId> {
        // On a shared store, no more than this node would admit as new
        // work: the rest are left to nodes with room (the next sweep is
        // soon). Its own store's are all its to run.
        let room = if self.orchestrator.store().shared() {
            self.capacity()
                .saturating_sub(self.admitted.load(Ordering::SeqCst))
        } else {
            usize::MAX
        };
        let service = self.clone();
        // The store blocks: off the async workers.
        let found = match tokio::task::spawn_blocking(move || service.interrupted(room)).await {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "the look for interrupted executions failed");
                return Vec::new();
            }
        };
        let mut resumed = Vec::new();
        for resumable in found {
            let id = resumable.id.clone();
            match self.orchestrator.claim(resumable).await {
                Ok(claimed) => {
                    self.admitted.fetch_add(1, Ordering::SeqCst);
                    self.spawn(id.clone(), Begin::Resumed(Box::new(claimed)));
                    resumed.push(id);
                }
                Err(StoreError::NotResumable { .. }) => {
                    tracing::debug!(execution_id = %id, "taken over by another node first");
                }
                // Tried again at the next sweep.
                Err(e) => tracing::warn!(execution_id = %id, error = %e, "not resumed"),
            }
        }
        resumed
    }

    /// Marks interrupted the executions whose process died and reads back,
    /// oldest first, up to `room` of those that can go on here.
    fn interrupted(&self, room: usize) -> Vec<Resumable> {
        let store = self.orchestrator.store();
        if let Err(e) = store.mark_interrupted(&now(), &process_alive) {
            tracing::error!(error = %e, "cannot look for executions whose process died");
            return Vec::new();
        }
        if room == 0 {
            return Vec::new();
        }
        let query = ExecutionQuery {
            status: Some(ExecutionStatus::Interrupted),
            limit: 1000,
            ..ExecutionQuery::default()
        };
        let found = match store.list_executions(&query) {
            Ok(page) => page.executions,
            Err(e) => {
                tracing::error!(error = %e, "cannot list interrupted executions");
                return Vec::new();
            }
        };
        let agents = self.agents.current();
        let mut resumable = Vec::new();
        for summary in found.into_iter().rev() {
            if resumable.len() >= room {
                break;
            }
            let id = summary.execution_id;
            if self
                .passed_over
                .lock()
                .is_ok_and(|passed| passed.contains(&id))
            {
                continue;
            }
            match self.orchestrator.prepare_resume(&id, agents.as_ref()) {
                Ok(ready) => resumable.push(ready),
                Err(ResumeError::NotInterrupted { .. }) => {
                    tracing::debug!(execution_id = %id, "taken over by another node first");
                }
                Err(e) => {
                    tracing::warn!(execution_id = %id, error = %e, "not resumed");
                    if let Ok(mut passed) = self.passed_over.lock() {
                        passed.insert(id);
                    }
                }
            }
        }
        resumable
    }

    /// On a store shared with other nodes: until the service stops, takes
    /// over the executions of nodes that died, every [`TAKE_OVER_EVERY`],
    /// calling `taken` with the ids of those it goes on with. Nothing on a
    /// store of its own (a dead process's executions are resumed at start).
    pub fn keep_taking_over(self: &Arc<Self>, taken: impl Fn(&[ExecutionId]) + Send + 'static) {
        if !self.orchestrator.store().shared() {
            return;
        }
        let service = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TAKE_OVER_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = service.stopping.cancelled() => return,
                }
                let ids = service.resume_interrupted().await;
                if !ids.is_empty() {
                    taken(&ids);
                }
            }
        });
    }

    /// Runs an admitted execution in the background: it waits for a
    /// permit, runs, and is answered to those waiting on it.
    fn spawn(self: &Arc<Self>, id: ExecutionId, begin: Begin) -> Done {
        let cancel = CancellationToken::new();
        let (done_tx, done_rx) = watch::channel(None);
        if let Ok(mut live) = self.live.lock() {
            live.insert(
                id.clone(),
                Live {
                    cancel: cancel.clone(),
                    done: done_rx.clone(),
                },
            );
        }
        self.update_gauges();
        let service = self.clone();
        let exec_id = id;
        let task = async move {
            let permit = tokio::select! {
                p = service.permits.clone().acquire_owned() => p.ok(),
                _ = cancel.cancelled() => None,
            };
            service.running.fetch_add(1, Ordering::SeqCst);
            service.update_gauges();
            // Cancelled while queued: the engine still records it, at once.
            let result = match begin {
                Begin::Fresh(wf, variables, accepted) => {
                    service
                        .orchestrator
                        .execute(exec_id.clone(), &wf, variables, cancel, accepted)
                        .await
                }
                Begin::Resumed(claimed) => service.orchestrator.resume(*claimed, cancel).await,
            };
            drop(permit);
            match result {
                Ok(result) => {
                    let _ = done_tx.send(Some(Arc::new(result)));
                }
                Err(e @ StoreError::LeaseLost(_)) => {
                    tracing::warn!(execution_id = %exec_id, error = %e, "stopped: another node goes on with it");
                }
                Err(e) => {
                    tracing::error!(execution_id = %exec_id, error = %e, "the execution could not be recorded")
                }
            }
            if let Ok(mut live) = service.live.lock() {
                live.remove(&exec_id);
            }
            service.running.fetch_sub(1, Ordering::SeqCst);
            service.admitted.fetch_sub(1, Ordering::SeqCst);
            service.update_gauges();
        };
        // The orchestrator opens the execution span, under the request's.
        self.tasks.spawn(task.in_current_span());
        done_rx
    }

    /// The orchestrator executions run on.
    pub(super) fn orchestrator(&self) -> &Orchestrator {
        &self.orchestrator
    }

    /// Committed journal entries of every execution, as they commit.
    pub(super) fn subscribe(&self, capacity: usize) -> Subscription<JournalUpdate> {
        self.orchestrator.subscribe(capacity)
    }

    pub(super) fn subscribe_elsewhere(&self, capacity: usize) -> Subscription<ExecutionId> {
        self.orchestrator.subscribe_elsewhere(capacity)
    }

    pub(super) fn record(&self, id: &str) -> Result<ExecutionRecord, ApiError> {
        match self.orchestrator.store().execution(id) {
            Ok(Some(record)) => Ok(record),
            Ok(None) => Err(ApiError::new(
                ErrorCode::NotFound,
                format!("no execution `{id}`"),
            )),
            Err(e) => Err(ApiError::from(&e)),
        }
    }
}

/// The text of `workflowFile` `file`, a plain relative path inside `root`
/// (the project): 404 when there is no such file, 400 for anything else
/// that is not one.
fn read_workflow_file(root: Option<&Path>, file: &str) -> Result<String, ApiError> {
    let Some(root) = root else {
        return Err(ApiError::new(
            ErrorCode::InvalidInput,
            "this server has no project: send the workflow document itself",
        ));
    };
    let relative = Path::new(file);
    if file.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidInput,
            "`workflowFile` is empty: name a workflow file of the project",
        ));
    }
    // Only plain relative paths inside the project: no `..`, no root.
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(ApiError::new(
            ErrorCode::InvalidInput,
            format!("`{file}` must be a relative path inside the project"),
        ));
    }
    let path = root.join(relative);
    match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("the project has no workflow file `{file}`"),
            ));
        }
        Ok(meta) if !meta.is_file() => {
            return Err(ApiError::new(
                ErrorCode::InvalidInput,
                format!("`{file}` is not a file (a directory?): name a workflow file"),
            ));
        }
        _ => {}
    }
    std::fs::read_to_string(&path).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidInput,
            format!("cannot read workflow file `{file}`: {e}"),
        )
    })
}

fn location(id: &str) -> String {
    format!("/executions/{id}")
}

fn with_location(mut response: Response, id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(&location(id)) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

async fn execute(
    State(service): State<Arc<ExecutionService>>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<ExecuteQuery>,
    JsonBody(request): JsonBody<ExecuteRequest>,
) -> Result<Response, ApiError> {
    let wf = service.resolve(&request).await?;
    let key = idempotency(&headers, &wf, &request.input)?;
    let Started { id, done, earlier } = service.start(wf, request.input, key).await?;
    tracing::Span::current().record("execution_id", id.as_str());
    let replayed = |mut response: Response| {
        if earlier.is_some() {
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        with_location(response, &id)
    };
    // An earlier request's execution that has ended answers with its result.
    if query.wait
        && let Some(result) = earlier.as_ref().and_then(|r| r.result.clone())
    {
        return Ok(replayed((StatusCode::OK, Json(result)).into_response()));
    }
    if query.wait
        && let Some(mut done) = done
    {
        let wait = query
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(service.options.max_wait)
            .min(service.options.max_wait);
        let finished = tokio::time::timeout(wait, done.wait_for(Option::is_some)).await;
        if let Ok(Ok(result)) = finished
            && let Some(result) = result.as_ref()
        {
            return Ok(replayed(
                (StatusCode::OK, Json(result.as_ref())).into_response(),
            ));
        }
    }
    let status = match &earlier {
        Some(record) => record.status,
        None if service.load_counts().1 > 0 => ExecutionStatus::Running,
        None => ExecutionStatus::Pending,
    };
    let body = Accepted {
        location: location(&id),
        execution_id: id.clone(),
        status,
    };
    Ok(replayed((StatusCode::ACCEPTED, Json(body)).into_response()))
}

async fn status(
    State(service): State<Arc<ExecutionService>>,
    ApiPath(id): ApiPath<ExecutionId>,
) -> Result<Json<ExecutionView>, ApiError> {
    let record = service.record(&id)?;
    let (steps, error) = match &record.result {
        Some(r) => (
            r["steps"]
                .as_object()
                .map(|m| m.clone().into_iter().collect())
                .unwrap_or_default(),
            r.get("error").filter(|e| !e.is_null()).cloned(),
        ),
        None => {
            let journal = service
                .orchestrator
                .store()
                .journal(&id, 0, 100_000)
                .map_err(|e| ApiError::from(&e))?;
            (steps_so_far(&journal), None)
        }
    };
    Ok(Json(ExecutionView {
        summary: record.summary(),
        input: record.input,
        steps,
        error,
        workflow: record.workflow,
    }))
}

/// Per-step state of a running execution, folded from its journal.
fn steps_so_far(journal: &[JournalEntry]) -> BTreeMap<String, Value> {
    let mut steps: BTreeMap<String, Value> = BTreeMap::new();
    for e in journal {
        let Record::Event(event) = &e.record else {
            continue;
        };
        let (step, view) = match event {
            ExecutionEvent::StepStarted { step_id, .. } => {
                (step_id, json!({ "status": StepStatus::Running }))
            }
            ExecutionEvent::StepSucceeded {
                step_id,
                output,
                attempts,
                duration_ms,
                ..
            } => (
                step_id,
                json!({ "status": StepStatus::Succeeded, "output": output, "attempts": attempts, "durationMs": duration_ms }),
            ),
            ExecutionEvent::StepFailed {
                step_id,
                error,
                attempts,
                duration_ms,
                ..
            } => (
                step_id,
                json!({ "status": StepStatus::Failed, "error": error, "attempts": attempts, "durationMs": duration_ms }),
            ),
            ExecutionEvent::StepSkipped { step_id, reason } => (
                step_id,
                json!({ "status": StepStatus::Skipped, "reason": reason }),
            ),
            ExecutionEvent::StepCancelled { step_id, reason } => (
                step_id,
                json!({ "status": StepStatus::Cancelled, "reason": reason }),
            ),
            _ => continue,
        };
        steps.insert(step.clone(), view);
    }
    steps
}

async fn list(
    State(service): State<Arc<ExecutionService>>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ExecutionList>, ApiError> {
    let bad = |message: String| ApiError::new(ErrorCode::InvalidInput, message);
    if !(1..=1000).contains(&query.limit) {
        return Err(bad("`limit` must be between 1 and 1000".into()));
    }
    let time = |name: &str, value: Option<String>| match value {
        None => Ok(None),
        Some(text) => stored_time(&text).map(Some).ok_or_else(|| {
            bad(format!(
                "`{name}` must be an RFC 3339 time such as 2026-12-03T10:00:00Z, got `{text}`"
            ))
        }),
    };
    let before = match &query.cursor {
        None => None,
        Some(text) => Some(text.parse::<u64>().map_err(|_| {
            bad(format!(
                "`cursor` must be the `nextCursor` of a previous page, got `{text}`"
            ))
        })?),
    };
    let page = service
        .orchestrator
        .store()
        .list_executions(&ExecutionQuery {
            status: query.status,
            workflow: query.workflow,
            since: time("since", query.since)?,
            until: time("until", query.until)?,
            before,
            limit: query.limit,
        })
        .map_err(|e| ApiError::from(&e))?;
    Ok(Json(ExecutionList {
        executions: page.executions,
        next_cursor: page.next.map(|n| n.to_string()),
    }))
}

async fn journal(
    State(service): State<Arc<ExecutionService>>,
    ApiPath(id): ApiPath<ExecutionId>,
    ApiQuery(query): ApiQuery<JournalQuery>,
) -> Result<Json<JournalPage>, ApiError> {
    if !(1..=1000).contains(&query.limit) {
        return Err(ApiError::new(
            ErrorCode::InvalidInput,
            "`limit` must be between 1 and 1000",
        ));
    }
    service.record(&id)?;
    let entries = service
        .orchestrator
        .store()
        .journal(&id, query.after, query.limit)
        .map_err(|e| ApiError::from(&e))?;
    let next_after = (entries.len() == query.limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(Json(JournalPage {
        execution_id: id,
        entries,
        next_after,
    }))
}

async fn cancel(
    State(service): State<Arc<ExecutionService>>,
    ApiPath(id): ApiPath<ExecutionId>,
) -> Result<Response, ApiError> {
    let token = service
        .live
        .lock()
        .ok()
        .and_then(|l| l.get(&id).map(|e| (e.cancel.clone(), e.done.clone())));
    if let Some((token, _)) = token {
        token.cancel();
        return Ok(cancelling(id));
    }
    // Run by another process on the same state (a `run`, another
    // server): ask it through the store, once a dead owner's executions
    // are marked interrupted.
    let store = service.orchestrator.store();
    store
        .mark_interrupted(&now(), &process_alive)
        .map_err(|e| ApiError::from(&e))?;
    let record = match store.request_cancel(&id, &now()) {
        Ok(Some(record)) => record,
        Ok(None) => {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("no execution `{id}`"),
            ));
        }
        Err(e) => return Err(ApiError::from(&e)),
    };
    if record.status.is_final() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("execution `{id}` already ended: {}", record.status.as_str()),
        )
        .with_details(json!({ "status": record.status.as_str() })));
    }
    Ok(cancelling(id))
}

/// `202` with where to watch the execution stop.
fn cancelling(id: ExecutionId) -> Response {
    let body = Cancelling {
        location: location(&id),
        execution_id: id.clone(),
        status: "cancelling".into(),
    };
    with_location((StatusCode::ACCEPTED, Json(body)).into_response(), &id)
}

async fn health(State(service): State<Arc<ExecutionService>>) -> Json<Health> {
    let (queued, running) = service.load_counts();
    Json(Health {
        status: if service.stopping.is_cancelled() {
            "shutting-down".into()
        } else {
            "ok".into()
        },
        version: env!("CARGO_PKG_VERSION").into(),
        running,
        queued,
        agents: service.agents.current().len(),
    })
}

async fn metrics(State(service): State<Arc<ExecutionService>>) -> Response {
    service.update_gauges();
    metrics_response(&service.metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workflow_file_is_found_refused_or_missing_with_the_right_status() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("flow.json"), "{}").unwrap();
        std::fs::create_dir(root.path().join("workflows")).unwrap();
        let read = |file: &str| read_workflow_file(Some(root.path()), file);
        assert_eq!(read("flow.json").unwrap(), "{}");
        for (file, code) in [
            ("", ErrorCode::InvalidInput),
            ("workflows", ErrorCode::InvalidInput),
            ("../flow.json", ErrorCode::InvalidInput),
            ("/etc/passwd", ErrorCode::InvalidInput),
            ("missing.json", ErrorCode::NotFound),
        ] {
            assert_eq!(read(file).unwrap_err().code(), code, "{file:?}");
        }
        let no_project = read_workflow_file(None, "flow.json").unwrap_err();
        assert_eq!(no_project.code(), ErrorCode::InvalidInput);
    }
}
