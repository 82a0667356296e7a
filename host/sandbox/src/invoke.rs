//! One invocation: a fresh store, the call under its limits, and the
//! classification of whatever happened into an [`InvokeError`].

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
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
use super::policy::SandboxPolicy;
use super::state::AgentState;
use orchestr8_types::{Coded, ExecutionId, StepId};

/// Default time a cancelled agent gets to notice (`host.is-cancelled`) and
/// return before it is stopped.
pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(5);

/// Longest stderr excerpt quoted in a trap message.
const STDERR_EXCERPT: usize = 2048;

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
    /// Told of each log line and event as the agent records it.
    pub observer: Option<AgentObserver>,
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
            observer: None,
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
    /// Capabilities the agent asked for and was refused.
    pub denials: Vec<Denial>,
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
    /// Told of each log line and event, with the attempt number.
    pub(crate) observer: Option<(AgentObserver, u32)>,
}

enum Interrupted {
    Deadline,
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
            observer,
        };
        let run = self
            .run(
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

    /// Runs `call` on a fresh instance of `pre` inside a store bounded by
    /// `policy`, racing it against the deadline and cancellation.
    pub(crate) async fn run<R>(
        &self,
        pre: &AgentPre<AgentState>,
        policy: &SandboxPolicy,
        watch: Watch<'_>,
        invocation: &Invocation,
        call: AgentCall<R>,
    ) -> Run<R> {
        let Watch {
            cancel,
            cancel_grace,
            observer,
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
        if let Err(e) = policy.validate(self.inner.config.max_memory_bytes) {
            return early(e.into());
        }
        // Wait for a free sandbox slot; only cancellation ends the wait.
        let slot = tokio::select! {
            slot = self.inner.slots.clone().acquire_owned() => slot,
            _ = cancel.cancelled() => return early(InvokeError::Cancelled),
        };
        let Ok(_slot) = slot else {
            return early(InvokeError::Internal("the sandbox is shutting down".into()));
        };
        let hooks = EgressHooks {
            allowed: policy.grants.allowed_hosts.clone().into(),
            shared: self.inner.egress.clone(),
            denials: DenialLog::default(),
            fixtures: policy.http_fixtures.clone(),
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
        // deadline and cancellation below interrupt a CPU-bound agent.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));

        let deadline = tokio::time::Instant::now() + policy.limits.timeout();
        let raced = {
            let work = async {
                let agent = pre.instantiate_async(&mut store).await?;
                call(&agent, &mut store, invocation).await
            };
            tokio::select! {
                result = work => Ok(result),
                _ = tokio::time::sleep_until(deadline) => Err(Interrupted::Deadline),
                _ = cancelled_after(cancel, cancel_grace) => Err(Interrupted::Cancelled),
            }
        };
        let fuel_left = store.get_fuel().unwrap_or(0);
        let state = store.into_data();
        let stats = InvocationStats {
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            fuel_consumed: policy.limits.fuel.saturating_sub(fuel_left),
        };
        let result = match raced {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(classify_trap(&e, &state, policy, fuel_left)),
            Err(Interrupted::Deadline) => Err(InvokeError::Timeout {
                limit_ms: policy.limits.timeout_ms,
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
    let details = info
        .details
        .map(|d| serde_json::from_str(&d).unwrap_or(Value::String(d)));
    AgentFailure {
        message: info.message,
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
            stderr: String::new(),
            stats,
        };
    };
    let denials = state.denials.snapshot();
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
        stderr,
        stats,
    }
}

#[cfg(test)]
mod tests {
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
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
