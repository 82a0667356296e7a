//! One invocation: a fresh store, the call under its limits, and the
//! classification of whatever happened into an [`InvokeError`].

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use wasmtime::{Store, Trap, UpdateDeadline};

use super::Sandbox;
use super::bindings::orchestr8::agent::types::{AgentError, ErrorInfo, Invocation};
use super::bindings::{Agent, AgentPre};
use super::denial::{Denial, DenialLog};
use super::egress::EgressHooks;
use super::error::{AgentFailure, InvokeError};
use super::loader::LoadedAgent;
use super::logs::{AgentEvent, AgentLogLine, AgentObserver};
use super::policy::{Recording, SandboxPolicy};
use super::state::AgentState;
use orchestr8_types::{Coded, ExecutionId, StepId};

/// Default time a cancelled agent gets to notice (`host.is-cancelled`) and
/// return before it is stopped.
pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(5);
/// Default longest wait for a sandbox slot and room in the memory budget
/// (`resilienceBudget.queueTimeoutMs` in a workflow).
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

/// Epoch ticks (of `epochTickMs`) an agent may compute before it is
/// demoted to the long-running lanes.
const DEMOTE_AFTER_TICKS: u32 = 2;

/// Longest stderr excerpt quoted in a trap message.
const STDERR_EXCERPT: usize = 2048;
/// Longest error message kept from an agent, in bytes.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 4096;
/// Largest error `details` kept from an agent, in bytes of JSON; larger
/// details are replaced by a note saying their size. What an agent says
/// when it fails is journaled and returned to callers, so it is bounded
/// like everything else an agent can make the host keep.
pub const MAX_ERROR_DETAILS_BYTES: usize = 64 * 1024;

/// What to ask an agent.
#[derive(Debug, Clone)]
pub struct InvocationRequest {
    /// The execution this call belongs to.
    pub execution_id: ExecutionId,
    /// The workflow step (empty outside a workflow).
    pub step_id: StepId,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Per-agent configuration (an object).
    pub config: Value,
    /// The input.
    pub input: Value,
    /// How long a cancelled agent may keep running before it is stopped.
    pub cancel_grace: Duration,
    /// How long the call may wait for a sandbox slot and room in the
    /// memory budget before it fails with `OVERLOADED`.
    pub queue_timeout: Duration,
    /// Told of each log line and event as the agent records it.
    pub observer: Option<AgentObserver>,
    /// Stop the call with `TIMEOUT` when the agent records no log line or
    /// event for this long (a heartbeat: activity keeps it going up to its
    /// deadline).
    pub idle_timeout: Option<Duration>,
}

impl InvocationRequest {
    /// A first attempt with this input, outside any workflow, with a fresh
    /// execution id.
    pub fn new(input: Value) -> Self {
        InvocationRequest {
            execution_id: ExecutionId::new(),
            step_id: StepId::none(),
            attempt: 1,
            config: Value::Object(Default::default()),
            input,
            cancel_grace: DEFAULT_CANCEL_GRACE,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
            observer: None,
            idle_timeout: None,
        }
    }
}

/// Measurements of one invocation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationStats {
    /// Wall-clock time from the start of the sandbox to the end of the call.
    pub duration_ms: f64,
    /// Fuel consumed.
    pub fuel_consumed: u64,
}

/// Everything an invocation produced.
#[derive(Debug, Clone)]
pub struct InvocationOutcome {
    /// The output, or why there is none.
    pub result: Result<Value, InvokeError>,
    /// The agent's log lines (bounded by the log budget).
    pub logs: Vec<AgentLogLine>,
    /// The agent's progress events (same budget).
    pub events: Vec<AgentEvent>,
    /// Log lines and events dropped past the budget.
    pub logs_dropped: u64,
    /// Capabilities the agent asked for and was refused (the first 64).
    pub denials: Vec<Denial>,
    /// Refusals past the first 64, only counted.
    pub denials_dropped: u64,
    /// What the agent wrote to stderr (bounded).
    pub stderr: String,
    /// Measurements.
    pub stats: InvocationStats,
}

impl InvocationOutcome {
    /// The outcome as JSON: `{"ok": true, "output": …}` or
    /// `{"ok": false, "error": {"code", "message", "details"}}`, plus logs,
    /// events, denials and stats.
    pub fn to_json(&self) -> Value {
        let mut out = match &self.result {
            Ok(output) => serde_json::json!({ "ok": true, "output": output }),
            Err(e) => serde_json::json!({ "ok": false, "error": e.to_body() }),
        };
        if let Value::Object(map) = &mut out {
            map.insert(
                "logs".into(),
                serde_json::to_value(&self.logs).unwrap_or_default(),
            );
            map.insert(
                "events".into(),
                serde_json::to_value(&self.events).unwrap_or_default(),
            );
            map.insert("logsDropped".into(), self.logs_dropped.into());
            map.insert(
                "denials".into(),
                serde_json::to_value(&self.denials).unwrap_or_default(),
            );
            map.insert("denialsDropped".into(), self.denials_dropped.into());
            map.insert(
                "stats".into(),
                serde_json::to_value(self.stats).unwrap_or_default(),
            );
        }
        out
    }
}

/// Result of running some call in a sandbox, before output handling.
pub(crate) struct Run<R> {
    pub(crate) result: Result<R, InvokeError>,
    state: Option<AgentState>,
    stats: InvocationStats,
}

/// A call made on a freshly instantiated agent.
pub(crate) type AgentCall<R> =
    for<'a> fn(
        &'a Agent,
        &'a mut Store<AgentState>,
        &'a Invocation,
    ) -> Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>>;

/// Who stops a call, and who sees what it records while it runs.
pub(crate) struct Watch<'a> {
    /// Cancels the call (after `cancel_grace`).
    pub(crate) cancel: &'a CancellationToken,
    /// How long a cancelled agent may keep running.
    pub(crate) cancel_grace: Duration,
    /// How long to wait for a slot and room in the memory budget.
    pub(crate) queue_timeout: Duration,
    /// Told of each log line and event, with the attempt number.
    pub(crate) observer: Option<(AgentObserver, u32)>,
    /// Stops the call when the agent records nothing for this long.
    pub(crate) idle_timeout: Option<Duration>,
}

enum Interrupted {
    Deadline,
    Idle(Duration),
    Cancelled,
}

impl Sandbox {
    /// Invokes `agent` once under `policy`. Never panics and never fails as a
    /// whole: every failure is in the outcome's `result`.
    pub async fn invoke(
        &self,
        agent: &LoadedAgent,
        policy: &SandboxPolicy,
        request: InvocationRequest,
        cancel: &CancellationToken,
    ) -> InvocationOutcome {
        let deadline_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
            .saturating_add(policy.limits.timeout_ms);
        let observer = request.observer.map(|o| (o, request.attempt));
        let invocation = Invocation {
            execution_id: request.execution_id.into(),
            step_id: request.step_id.into(),
            attempt: request.attempt,
            deadline_unix_ms,
            config: request.config.to_string(),
            input: request.input.to_string(),
        };
        let watch = Watch {
            cancel,
            cancel_grace: request.cancel_grace,
            queue_timeout: request.queue_timeout,
            observer,
            idle_timeout: request.idle_timeout,
        };
        let run = self
            .run(
                &agent.info().id,
                agent.pre(),
                policy,
                watch,
                &invocation,
                |agent, store, invocation| {
                    Box::pin(async move {
                        agent
                            .orchestr8_agent_handler()
                            .call_process(store, invocation)
                            .await
                    })
                },
            )
            .await;
        let output_limit = policy.limits.output_bytes;
        let result = run.result.and_then(|r| match r {
            Ok(text) => parse_output(&text, output_limit).and_then(|output| conform(agent, output)),
            Err(e) => Err(agent_error(e)),
        });
        finish(result, run.state, run.stats)
    }

    /// Runs `call` on a fresh instance of `pre` (the agent `agent_id`)
    /// inside a store bounded by `policy`, racing it against the deadline
    /// and cancellation.
    pub(crate) async fn run<R>(
        &self,
        agent_id: &str,
        pre: &AgentPre<AgentState>,
        policy: &SandboxPolicy,
        watch: Watch<'_>,
        invocation: &Invocation,
        call: AgentCall<R>,
    ) -> Run<R> {
        let Watch {
            cancel,
            cancel_grace,
            queue_timeout,
            observer,
            idle_timeout,
        } = watch;
        let started = Instant::now();
        let early = |e: InvokeError| Run {
            result: Err(e),
            state: None,
            stats: InvocationStats {
                duration_ms: 0.0,
                fuel_consumed: 0,
            },
        };
        let ceiling = self
            .inner
            .config
            .max_memory_bytes
            .min(self.inner.config.memory_budget_bytes);
        if let Err(e) = policy.validate(ceiling) {
            return early(e.into());
        }
        let _admitted = match self.admit(agent_id, policy, queue_timeout, cancel).await {
            Ok(admitted) => admitted,
            Err(e) => return early(e),
        };
        let hooks = EgressHooks {
            allowed: policy.grants.allowed_hosts.clone().into(),
            shared: self.inner.egress.clone(),
            share: self.inner.egress.share_for(agent_id),
            denials: DenialLog::default(),
            fixtures: policy.http_fixtures.clone(),
            // What fixtures answer needs no recording: it is recorded already.
            recorder: observer
                .clone()
                .filter(|_| policy.recording != Recording::Off && policy.http_fixtures.is_none()),
        };
        let state = match AgentState::new(policy, hooks, cancel.clone(), observer) {
            Ok(state) => state,
            Err(e) => return early(InvokeError::Policy(e.to_string())),
        };
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|s| &mut s.limiter);
        if let Err(e) = store.set_fuel(policy.limits.fuel) {
            return early(InvokeError::Internal(format!("cannot set fuel: {e}")));
        }
        // Yield to the runtime at every epoch tick: this is what lets the
        // deadline and cancellation below interrupt a CPU-bound agent. An
        // agent that keeps computing past a few ticks is demoted to the
        // long-running lanes: from then on it runs only while it holds a
        // lane, one tick at a time, so short calls keep the other cores.
        store.set_epoch_deadline(1);
        let lanes = self.inner.lanes.clone();
        let tick = Duration::from_millis(self.inner.config.epoch_tick_ms);
        let mut ticks = 0u32;
        store.epoch_deadline_callback(move |_| {
            ticks = ticks.saturating_add(1);
            if ticks <= DEMOTE_AFTER_TICKS {
                return Ok(UpdateDeadline::Yield(1));
            }
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(lane_slice(lanes.clone(), tick)),
            ))
        });

        let deadline = tokio::time::Instant::now() + policy.limits.timeout();
        let activity = store.data().recorder.activity();
        let raced = {
            let work = async {
                let agent = instantiate(pre, &mut store).await?;
                call(&agent, &mut store, invocation).await
            };
            tokio::select! {
                result = work => Ok(result),
                _ = tokio::time::sleep_until(deadline) => Err(Interrupted::Deadline),
                idle = silent_for(&activity, idle_timeout) => Err(Interrupted::Idle(idle)),
                _ = cancelled_after(cancel, cancel_grace) => Err(Interrupted::Cancelled),
            }
        };
        let fuel_left = store.get_fuel().unwrap_or(0);
        let state = store.into_data();
        if let Some(tape) = &state.tape {
            state.recorder.report_inputs(tape.recorded());
        }
        let stats = InvocationStats {
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            fuel_consumed: policy.limits.fuel.saturating_sub(fuel_left),
        };
        let result = match raced {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(classify_trap(&e, &state, policy, fuel_left)),
            Err(Interrupted::Deadline) => Err(InvokeError::Timeout {
                limit_ms: policy.limits.timeout_ms,
                upstream: state.upstream_open(),
            }),
            Err(Interrupted::Idle(idle)) => Err(InvokeError::Idle {
                limit_ms: idle.as_millis() as u64,
            }),
            Err(Interrupted::Cancelled) => Err(InvokeError::Cancelled),
        };
        Run {
            result,
            state: Some(state),
            stats,
        }
    }
}

/// How many times instantiation is tried when the kernel refuses to seal
/// a memory image.
const SEAL_TRIES: u32 = 3;

/// Instantiates `pre` in `store`, trying again when creating the module's
/// copy-on-write memory image fails at sealing its memfd: under heavy load
/// Linux can answer `EBUSY` for a moment (pages of the fresh image still
/// held by another CPU), which is the host's condition, not the agent's.
/// Wasmtime keeps no failed image, so the next try builds it again.
async fn instantiate(
    pre: &AgentPre<AgentState>,
    store: &mut Store<AgentState>,
) -> wasmtime::Result<Agent> {
    let mut tries = 1;
    loop {
        match pre.instantiate_async(&mut *store).await {
            Err(e) if tries < SEAL_TRIES && is_sealing_failure(&e) => {
                tracing::warn!(error = %e, try_number = tries, "could not seal a memory image: trying again");
                tokio::time::sleep(Duration::from_millis(20 * u64::from(tries))).await;
                tries += 1;
            }
            outcome => return outcome,
        }
    }
}

/// Whether `e` is the memfd crate's "cannot add seals to the memfd".
fn is_sealing_failure(e: &wasmtime::Error) -> bool {
    e.chain()
        .any(|cause| cause.to_string().contains("add seals to the memfd"))
}

/// What a running invocation holds: its turn in its agent's bulkhead, its
/// sandbox slot and its share of the memory budget, all given back when it
/// ends.
struct Admitted {
    _turn: Option<OwnedSemaphorePermit>,
    _slot: OwnedSemaphorePermit,
    _memory: OwnedSemaphorePermit,
}

impl Sandbox {
    /// Waits (up to `queue_timeout`, or until cancelled) for a turn in the
    /// agent's bulkhead, a sandbox slot and for the policy's memory cap to
    /// fit in the memory budget, in that order (a call waiting for its turn
    /// holds nothing others need).
    async fn admit(
        &self,
        agent_id: &str,
        policy: &SandboxPolicy,
        queue_timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<Admitted, InvokeError> {
        let inner = &self.inner;
        let mib = policy.limits.memory_bytes.div_ceil(1 << 20);
        let mib = u32::try_from(mib).unwrap_or(u32::MAX);
        let bulkhead = policy
            .limits
            .max_concurrency
            .map(|n| self.bulkhead(agent_id, n));
        // What the call is waiting for, to say so if it waits too long.
        let stage = AtomicU8::new(0);
        let waited = Instant::now();
        let wait = async {
            let turn = match &bulkhead {
                Some(b) => Some(b.clone().acquire_owned().await),
                None => None,
            };
            stage.store(1, Ordering::Relaxed);
            let slot = inner.slots.clone().acquire_owned().await;
            stage.store(2, Ordering::Relaxed);
            let memory = inner.memory.clone().acquire_many_owned(mib).await;
            match (turn.transpose(), slot, memory) {
                (Ok(turn), Ok(slot), Ok(memory)) => Ok(Admitted {
                    _turn: turn,
                    _slot: slot,
                    _memory: memory,
                }),
                _ => Err(InvokeError::Internal("the sandbox is shutting down".into())),
            }
        };
        tokio::select! {
            admitted = tokio::time::timeout(queue_timeout, wait) => admitted.unwrap_or_else(|_| {
                let busy = match stage.load(Ordering::Relaxed) {
                    0 => format!(
                        "`{agent_id}` already runs its maxConcurrency of {} calls",
                        policy.limits.max_concurrency.unwrap_or(0)
                    ),
                    1 => format!("all {} sandbox slots are in use", inner.config.max_instances),
                    _ => format!(
                        "the memory budget of {} MiB is taken by running sandboxes and this call needs {mib} MiB",
                        inner.config.memory_budget_bytes >> 20
                    ),
                };
                Err(InvokeError::Overloaded {
                    waited_ms: waited.elapsed().as_millis() as u64,
                    busy,
                })
            }),
            _ = cancel.cancelled() => Err(InvokeError::Cancelled),
        }
    }
}

impl Sandbox {
    /// The bulkhead of `agent` for `size` calls at once (one per size, so a
    /// reloaded agent with another limit gets its own).
    fn bulkhead(&self, agent: &str, size: u32) -> Arc<Semaphore> {
        let mut bulkheads = self
            .inner
            .bulkheads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        super::egress::forget_idle(&mut bulkheads);
        bulkheads
            .entry((agent.to_string(), size))
            .or_insert_with(|| Arc::new(Semaphore::new(size as usize)))
            .clone()
    }
}

/// Waits for a long-running lane (in turn: the semaphore is fair) and holds
/// it for one tick. A lease, not a lock: an agent that then blocks in a host
/// call does not keep the lane from the others.
async fn lane_slice(lanes: Arc<Semaphore>, tick: Duration) {
    if let Ok(lease) = lanes.acquire_owned().await {
        tokio::spawn(async move {
            tokio::time::sleep(tick).await;
            drop(lease);
        });
    }
}

/// Resolves once the agent has recorded nothing (no log line, no event)
/// for `idle`, with it; never without an idle timeout.
async fn silent_for(activity: &Notify, idle: Option<Duration>) -> Duration {
    let Some(idle) = idle else {
        return std::future::pending().await;
    };
    loop {
        // A record made while not waiting left a permit: it counts.
        if tokio::time::timeout(idle, activity.notified())
            .await
            .is_err()
        {
            return idle;
        }
    }
}

async fn cancelled_after(cancel: &CancellationToken, grace: Duration) {
    cancel.cancelled().await;
    tokio::time::sleep(grace).await;
}

/// Turns a wasmtime error (a trap, or a failure to instantiate) into the
/// taxonomy, using what the store saw: which cap was hit, what the agent
/// printed to stderr.
fn classify_trap(
    error: &wasmtime::Error,
    state: &AgentState,
    policy: &SandboxPolicy,
    fuel_left: u64,
) -> InvokeError {
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return InvokeError::Trap {
            message: format!(
                "the agent called exit({}) instead of returning a result",
                exit.0
            ),
        };
    }
    let trap = error.downcast_ref::<Trap>().copied();
    if trap == Some(Trap::OutOfFuel) || (trap.is_some() && fuel_left == 0) {
        return InvokeError::FuelExhausted {
            budget: policy.limits.fuel,
        };
    }
    if let Some(limit) = state.limiter.error() {
        return limit;
    }
    let stderr = String::from_utf8_lossy(&state.stderr.contents()).into_owned();
    match trap {
        Some(Trap::StackOverflow) => InvokeError::Trap {
            message: "stack overflow (call stack exhausted)".into(),
        },
        Some(trap) => {
            let message = match panic_message(&stderr) {
                Some(panic) => format!("panicked: {panic}"),
                None => trap.to_string(),
            };
            InvokeError::Trap { message }
        }
        // Not a trap: the instance could not be created or a host call failed
        // in a way the agent cannot handle.
        None => InvokeError::Trap {
            message: format!("{error:#}"),
        },
    }
}

/// Extracts the message of a Rust panic from what the agent wrote to stderr:
/// `thread '…' panicked at src/lib.rs:1:2:\n<message>\nnote: …`.
fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.find("panicked at")?;
    let after = &stderr[start..];
    let body = after.split_once('\n').map_or("", |(_, rest)| rest);
    let body = body.split("\nnote:").next().unwrap_or(body).trim();
    let message = if body.is_empty() {
        after.lines().next().unwrap_or(after)
    } else {
        body
    };
    Some(truncate(message, STDERR_EXCERPT))
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn parse_output(text: &str, limit: u64) -> Result<Value, InvokeError> {
    let size = text.len() as u64;
    if size > limit {
        return Err(InvokeError::OutputTooLarge { size, limit });
    }
    serde_json::from_str(text).map_err(|e| InvokeError::InvalidOutput {
        reason: format!("not JSON ({e})"),
    })
}

/// The output, if it matches the agent's own declared output schema: a
/// client that trusts the published schema must never get anything else.
fn conform(agent: &LoadedAgent, output: Value) -> Result<Value, InvokeError> {
    let problems = agent.output_problems(&output);
    if problems.is_empty() {
        return Ok(output);
    }
    Err(InvokeError::InvalidOutput {
        reason: format!(
            "it does not match the agent's output schema: {}",
            problems.join("; ")
        ),
    })
}

fn failure(info: ErrorInfo) -> AgentFailure {
    let details = info.details.map(|d| {
        if d.len() > MAX_ERROR_DETAILS_BYTES {
            return Value::String(format!(
                "details left out: {} bytes, over the {MAX_ERROR_DETAILS_BYTES}-byte cap",
                d.len()
            ));
        }
        serde_json::from_str(&d).unwrap_or(Value::String(d))
    });
    AgentFailure {
        message: truncate(&info.message, MAX_ERROR_MESSAGE_BYTES),
        details,
        retry_after_ms: info.retry_after_ms,
    }
}

fn agent_error(e: AgentError) -> InvokeError {
    match e {
        AgentError::InvalidInput(i) => InvokeError::InvalidInput(failure(i)),
        AgentError::Retryable(i) => InvokeError::Retryable(failure(i)),
        AgentError::Fatal(i) => InvokeError::Fatal(failure(i)),
    }
}

/// Assembles the outcome. An agent that failed after its memory was
/// refused to grow is reported as `MEMORY_LIMIT`, and one that failed after
/// being refused a capability as `CAPABILITY_DENIED`, whether it trapped or
/// returned an error: the refusal is the cause worth showing. Limits
/// (deadline, fuel, memory) keep their own codes.
fn finish(
    result: Result<Value, InvokeError>,
    state: Option<AgentState>,
    stats: InvocationStats,
) -> InvocationOutcome {
    let Some(state) = state else {
        return InvocationOutcome {
            result,
            logs: Vec::new(),
            events: Vec::new(),
            logs_dropped: 0,
            denials: Vec::new(),
            denials_dropped: 0,
            stderr: String::new(),
            stats,
        };
    };
    let (denials, denials_dropped) = state.denials.snapshot();
    let failed_after_refusal = |e: &InvokeError| {
        matches!(
            e,
            InvokeError::Trap { .. }
                | InvokeError::InvalidInput(_)
                | InvokeError::Retryable(_)
                | InvokeError::Fatal(_)
        )
    };
    let result = match (result, state.limiter.error()) {
        (Err(e), Some(limit)) if failed_after_refusal(&e) => Err(limit),
        (result, _) => result,
    };
    let result = match result {
        Err(e) if failed_after_refusal(&e) && !denials.is_empty() => {
            Err(InvokeError::CapabilityDenied {
                denials: denials.clone(),
                cause: e.to_string(),
            })
        }
        other => other,
    };
    let stderr = String::from_utf8_lossy(&state.stderr.contents()).into_owned();
    let stderr = state.recorder.redacted(truncate(&stderr, STDERR_EXCERPT));
    InvocationOutcome {
        result,
        logs: state.recorder.lines,
        events: state.recorder.events,
        logs_dropped: state.recorder.dropped,
        denials,
        denials_dropped,
        stderr,
        stats,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_a_sealing_failure_is_tried_again() {
        let sealing = wasmtime::Error::msg("cannot add seals to the memfd");
        assert!(is_sealing_failure(&sealing));
        assert!(is_sealing_failure(
            &sealing.context("instantiating the component")
        ));
        assert!(!is_sealing_failure(&wasmtime::Error::msg(
            "wasm trap: unreachable"
        )));
    }

    use super::*;

    #[test]
    fn panic_messages_are_extracted_from_stderr() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:12:9:\nboom: the agent gave up\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            panic_message(stderr).as_deref(),
            Some("boom: the agent gave up")
        );
        assert_eq!(panic_message("nothing to see"), None);
    }

    #[test]
    fn outputs_over_the_limit_or_not_json_are_rejected() {
        assert_eq!(
            parse_output("{\"a\":1}", 100).unwrap(),
            serde_json::json!({"a": 1})
        );
        assert!(matches!(
            parse_output("{\"a\":1}", 3),
            Err(InvokeError::OutputTooLarge { size: 7, limit: 3 })
        ));
        assert!(matches!(
            parse_output("not json", 100),
            Err(InvokeError::InvalidOutput { .. })
        ));
    }

    #[test]
    fn agent_error_messages_and_details_are_bounded() {
        let f = failure(ErrorInfo {
            message: "m".repeat(MAX_ERROR_MESSAGE_BYTES * 4),
            details: Some(format!("\"{}\"", "d".repeat(MAX_ERROR_DETAILS_BYTES))),
            retry_after_ms: None,
        });
        assert!(f.message.len() <= MAX_ERROR_MESSAGE_BYTES + 3);
        let details = f.details.unwrap();
        assert!(
            details.as_str().unwrap().starts_with("details left out:"),
            "{details}"
        );
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
