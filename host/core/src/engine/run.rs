//! The scheduler loop of one execution.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    Engine, EventSink, ExecutionEvent, ExecutionResult, ExecutionStatus, Progress, StepCall,
    StepOutcome, StepResult, StepStatus,
};
use crate::error::{ErrorBody, ErrorCode};
use crate::resilience::millis;
use crate::workflow::condition::Holds;
use crate::workflow::mapping::{self, Scope};
use crate::workflow::{OnError, Plan, Step, StepPlan, Workflow};
use orchestr8_types::{AgentId, ExecutionId, StepId};

fn error(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
    ErrorBody {
        code,
        message: message.into(),
        details: None,
    }
}

/// What a finished task was running.
#[derive(Clone, Copy)]
enum Task {
    /// The step itself.
    Step(usize),
    /// A fallback step standing in for `original`.
    Fallback { fallback: usize, original: usize },
}

struct Run<'a> {
    plan: &'a Plan,
    workflow: &'a Workflow,
    execution_id: ExecutionId,
    variables: BTreeMap<String, Value>,
    events: EventSink,
    results: Vec<StepResult>,
    /// Outputs of succeeded steps, by id, for mappings.
    outputs: BTreeMap<String, Value>,
    /// Inputs built for steps, kept for their fallbacks.
    inputs: HashMap<usize, Value>,
    /// Errors (and attempts made) of steps waiting on their fallback.
    pending_failures: HashMap<usize, (ErrorBody, u32)>,
    started: HashMap<usize, Instant>,
    /// When the execution began (for a resumed one: as if it had never
    /// stopped); its timeouts count from here.
    began: Instant,
    /// Attempts steps made before a resume, by step.
    attempts_before: HashMap<usize, u32>,
    /// How a resumed execution ends before anything runs: it was being
    /// cancelled, or a step's failure had already ended it.
    ended_before: Option<(ExecutionStatus, Option<ErrorBody>)>,
}

impl Engine {
    /// Runs a compiled workflow to the end. `variables` are merged over
    /// the workflow's own. Cancelling `cancel` stops it. It must end within
    /// `timeout.global` of its start and `totalSystemBudgetMs` of `accepted`
    /// (when its request arrived, before any time queued).
    pub async fn execute(
        &self,
        plan: &Plan,
        execution_id: ExecutionId,
        variables: BTreeMap<String, Value>,
        cancel: CancellationToken,
        events: EventSink,
        accepted: Instant,
    ) -> ExecutionResult {
        let run = Run::new(plan, execution_id, variables, events, Instant::now());
        run.emit(ExecutionEvent::ExecutionStarted {
            workflow_id: run.workflow.metadata.id.clone(),
            workflow_name: run.workflow.metadata.name.clone(),
            steps: run.workflow.steps.len(),
        });
        self.run_to_end(run, &cancel, accepted).await
    }

    /// Goes on with an execution whose process died, from `progress` (its
    /// journal, read back): steps that ended keep their results and are not
    /// run again; steps that were running run again as new attempts. Its
    /// timeouts count the time it had run before, not the time it was down.
    pub async fn resume(
        &self,
        plan: &Plan,
        execution_id: ExecutionId,
        variables: BTreeMap<String, Value>,
        progress: &Progress,
        cancel: CancellationToken,
        events: EventSink,
    ) -> ExecutionResult {
        let now = Instant::now();
        let began = now.checked_sub(progress.elapsed).unwrap_or(now);
        let mut run = Run::new(plan, execution_id, variables, events, began);
        let (restored, rerun) = run.restore(progress);
        run.emit(ExecutionEvent::ExecutionResumed {
            restored,
            rerun,
            ran_ms: progress.elapsed.as_millis() as u64,
            down_ms: progress.down.as_millis() as u64,
            owner_pid: std::process::id(),
        });
        self.run_to_end(run, &cancel, began).await
    }

    async fn run_to_end(
        &self,
        mut run: Run<'_>,
        cancel: &CancellationToken,
        accepted: Instant,
    ) -> ExecutionResult {
        let (status, failure) = self.drive(&mut run, cancel, accepted).await;
        let duration_ms = run.began.elapsed().as_millis() as u64;
        run.emit(ExecutionEvent::ExecutionFinished {
            status,
            duration_ms,
            error: failure.clone(),
        });
        ExecutionResult {
            execution_id: run.execution_id.clone(),
            status,
            steps: run
                .workflow
                .steps
                .iter()
                .zip(run.results)
                .map(|(s, r)| (s.id.clone(), r))
                .collect(),
            duration_ms,
            error: failure,
        }
    }

    async fn drive(
        &self,
        run: &mut Run<'_>,
        cancel: &CancellationToken,
        accepted: Instant,
    ) -> (ExecutionStatus, Option<ErrorBody>) {
        let policies = &run.workflow.policies;
        let cap = policies.concurrency.max_concurrent_steps.max(1) as usize;
        let grace = Duration::from_millis(policies.cancellation.grace_period);
        let global = run.began + Duration::from_millis(policies.timeout.global);
        let system_ms = policies.resilience_budget.total_system_budget_ms;
        let system = accepted + Duration::from_millis(system_ms);
        let (deadline, out_of_time) = if system < global {
            (
                system,
                error(
                    ErrorCode::BudgetExhausted,
                    format!(
                        "execution did not finish within its total system budget of {system_ms} ms (policies.resilienceBudget.totalSystemBudgetMs), counted from when it was accepted"
                    ),
                ),
            )
        } else {
            (
                global,
                error(
                    ErrorCode::Timeout,
                    format!(
                        "execution did not finish within its global timeout of {} ms",
                        policies.timeout.global
                    ),
                ),
            )
        };
        let stop_running = CancellationToken::new();
        let mut tasks = Tasks::default();
        let mut ended: Option<(ExecutionStatus, Option<ErrorBody>)> = run.ended_before.take();

        loop {
            if ended.is_none() {
                while tasks.len() < cap {
                    let Some(i) = run.next_ready() else { break };
                    match run.prepare(i, &stop_running, grace) {
                        Prepared::Call(call) => tasks.spawn(self, Task::Step(i), *call),
                        Prepared::Skipped => {}
                        // A failure before the agent ran follows `onError`
                        // exactly like one after it.
                        Prepared::Failed(e) => {
                            if let Some(fail) =
                                run.step_failed(i, e, 0, &mut tasks, self, &stop_running, grace)
                            {
                                ended = Some((ExecutionStatus::Failed, Some(fail)));
                                stop_running.cancel();
                                break;
                            }
                        }
                    }
                }
            }
            if tasks.is_empty() {
                break;
            }
            tokio::select! {
                joined = tasks.join_next() => {
                    let Some((task, outcome)) = joined else { continue };
                    let cancelling = ended.is_some();
                    if let Some(fail) = run.finish(task, outcome, cancelling, &mut tasks, self, &stop_running, grace)
                        && ended.is_none()
                    {
                        ended = Some((ExecutionStatus::Failed, Some(fail)));
                        stop_running.cancel();
                    }
                }
                _ = cancel.cancelled(), if ended.is_none() => {
                    (run.events)(ExecutionEvent::CancellationRequested {
                        grace_period_ms: grace.as_millis() as u64,
                    });
                    ended = Some((ExecutionStatus::Cancelled, Some(error(ErrorCode::Cancelled, "execution cancelled"))));
                    stop_running.cancel();
                }
                _ = tokio::time::sleep_until(deadline), if ended.is_none() => {
                    ended = Some((ExecutionStatus::TimedOut, Some(out_of_time.clone())));
                    stop_running.cancel();
                }
            }
        }
        run.skip_leftovers(ended.is_some());
        ended.unwrap_or((ExecutionStatus::Succeeded, None))
    }
}

/// The running step calls, each remembered by task id so even a task that
/// panicked is attributed to its step.
#[derive(Default)]
struct Tasks {
    set: JoinSet<StepOutcome>,
    owners: HashMap<tokio::task::Id, Task>,
}

impl Tasks {
    fn spawn(&mut self, engine: &Engine, task: Task, call: StepCall) {
        let runner = engine.runner.clone();
        let span = tracing::info_span!(
            "step",
            execution_id = %call.execution_id,
            step_id = %call.step_id,
            agent_id = %call.agent_id,
        );
        let handle = self.set.spawn(tracing::Instrument::instrument(
            async move {
                let secrets = runner.secret_values();
                let outcome = runner.run(call).await;
                if let Err(e) = &outcome.result {
                    let message = orchestr8_types::records::redact(e.message.clone(), &secrets);
                    crate::trace::mark_failed(&tracing::Span::current(), e.code.as_str(), &message);
                }
                outcome
            },
            span,
        ));
        self.owners.insert(handle.id(), task);
    }

    fn len(&self) -> usize {
        self.set.len()
    }

    fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    async fn join_next(&mut self) -> Option<(Task, StepOutcome)> {
        let (id, outcome) = match self.set.join_next_with_id().await? {
            Ok((id, outcome)) => (id, outcome),
            Err(e) => (
                e.id(),
                StepOutcome {
                    result: Err(error(ErrorCode::Internal, format!("step task failed: {e}"))),
                    attempts: 0,
                },
            ),
        };
        Some((self.owners.remove(&id)?, outcome))
    }
}

/// What preparing a ready step came to.
enum Prepared {
    /// The agent call to make.
    Call(Box<StepCall>),
    /// The step was skipped (its condition is false).
    Skipped,
    /// The step failed before its agent could run (condition, mapping or
    /// input schema).
    Failed(ErrorBody),
}

impl<'a> Run<'a> {
    fn new(
        plan: &'a Plan,
        execution_id: ExecutionId,
        variables: BTreeMap<String, Value>,
        events: EventSink,
        began: Instant,
    ) -> Self {
        let workflow = plan.workflow();
        let mut all_variables = workflow.context.variables.clone();
        all_variables.extend(variables);
        Run {
            plan,
            workflow,
            execution_id,
            variables: all_variables,
            events,
            results: vec![StepResult::pending(); workflow.steps.len()],
            outputs: BTreeMap::new(),
            inputs: HashMap::new(),
            pending_failures: HashMap::new(),
            started: HashMap::new(),
            began,
            attempts_before: HashMap::new(),
            ended_before: None,
        }
    }

    /// Takes over what `progress` says was done; returns the steps restored
    /// and those that will run again.
    fn restore(&mut self, progress: &Progress) -> (Vec<String>, Vec<String>) {
        let (mut restored, mut rerun) = (Vec::new(), Vec::new());
        for i in 0..self.workflow.steps.len() {
            let step = self.step(i);
            if let Some(result) = progress.done.get(&step.id) {
                // A failure waiting on its fallback is decided again.
                let awaiting_fallback =
                    progress.continued.contains(&step.id) && step.on_error != OnError::Continue;
                if !awaiting_fallback {
                    self.restore_step(i, result.clone(), progress.continued.contains(&step.id));
                    restored.push(step.id.clone());
                    continue;
                }
            }
            if let Some(&made) = progress.attempts.get(&step.id) {
                self.attempts_before.insert(i, made);
                rerun.push(step.id.clone());
            }
        }
        if progress.cancelling && self.ended_before.is_none() {
            self.ended_before = Some((
                ExecutionStatus::Cancelled,
                Some(error(ErrorCode::Cancelled, "execution cancelled")),
            ));
        }
        (restored, rerun)
    }

    fn restore_step(&mut self, i: usize, mut result: StepResult, continued: bool) {
        if let Some(output) = &result.output
            && result.status == StepStatus::Succeeded
        {
            result.captured = capture(&self.plan(i).capture, output);
            self.outputs.insert(self.step(i).id.clone(), output.clone());
        }
        if result.status == StepStatus::Failed && !continued && self.ended_before.is_none() {
            let e = result
                .error
                .clone()
                .unwrap_or_else(|| error(ErrorCode::Fatal, "step failed"));
            self.ended_before = Some((ExecutionStatus::Failed, Some(self.ended_by(i, e))));
        }
        self.results[i] = result;
    }

    fn emit(&self, event: ExecutionEvent) {
        (self.events)(event);
    }

    fn step(&self, i: usize) -> &'a Step {
        &self.workflow.steps[i]
    }

    fn plan(&self, i: usize) -> &'a StepPlan {
        self.plan.step_plan(i)
    }

    fn is_done(status: StepStatus) -> bool {
        !matches!(status, StepStatus::Pending | StepStatus::Running)
    }

    /// The next pending step whose dependencies have all finished: fewer
    /// dependencies first, then document order. Steps that are skipped on
    /// the way are recorded and passed over.
    fn next_ready(&mut self) -> Option<usize> {
        loop {
            let candidate = (0..self.workflow.steps.len())
                .filter(|&i| {
                    self.results[i].status == StepStatus::Pending && !self.plan.is_fallback_only(i)
                })
                .filter(|&i| {
                    self.plan(i)
                        .dependencies
                        .iter()
                        .all(|&d| Self::is_done(self.results[d].status))
                })
                .min_by_key(|&i| (self.plan(i).dependencies.len(), i))?;
            match self.blocked_by(candidate) {
                Some(reason) => self.skip(candidate, reason),
                None => return Some(candidate),
            }
        }
    }

    /// Why a ready step must be skipped, if it must.
    fn blocked_by(&self, i: usize) -> Option<String> {
        let plan = self.plan(i);
        for dep in &plan.dependencies {
            if self.results[*dep].status != StepStatus::Succeeded {
                // Running anyway is opted into by `??` on every reference.
                let opted_in = plan.references.get(dep).copied().unwrap_or(false);
                if !opted_in {
                    return Some("dependency-not-completed".into());
                }
            }
        }
        None
    }

    fn skip(&mut self, i: usize, reason: String) {
        self.results[i].status = StepStatus::Skipped;
        self.results[i].reason = Some(reason.clone());
        self.emit(ExecutionEvent::StepSkipped {
            step_id: self.step(i).id.clone(),
            reason,
        });
    }

    fn condition_data(&self) -> Value {
        let steps: serde_json::Map<String, Value> = self
            .workflow
            .steps
            .iter()
            .zip(&self.results)
            .filter(|(_, r)| Self::is_done(r.status))
            .map(|(s, r)| {
                (
                    s.id.clone(),
                    json!({ "status": r.status, "output": r.output.clone().unwrap_or(Value::Null) }),
                )
            })
            .collect();
        json!({ "steps": steps, "variables": self.variables })
    }

    /// Checks the condition and builds the input: the call to make, or why
    /// there is none.
    fn prepare(&mut self, i: usize, stop: &CancellationToken, grace: Duration) -> Prepared {
        let plan = self.plan(i);
        if plan.condition_if.is_some() || plan.condition_unless.is_some() {
            let data = self.condition_data();
            let verdict = (|| {
                if let Some(e) = &plan.condition_if
                    && !e.holds(&data)?
                {
                    return Ok(false);
                }
                match &plan.condition_unless {
                    Some(e) => e.holds(&data).map(|h| !h),
                    None => Ok(true),
                }
            })();
            match verdict {
                Ok(true) => {}
                Ok(false) => {
                    self.skip(i, "condition-not-met".into());
                    return Prepared::Skipped;
                }
                Err(e) => return Prepared::Failed(error(ErrorCode::Validation, e.to_string())),
            }
        }
        let input = match self.map_input(i) {
            Ok(input) => input,
            Err(e) => return Prepared::Failed(e),
        };
        // Kept before the schema check: a fallback gets the input the
        // original step was given, also when that broke the original's schema.
        self.inputs.insert(i, input.clone());
        if let Err(e) = self.check_input(i, &input) {
            return Prepared::Failed(e);
        }
        Prepared::Call(Box::new(self.call(i, i, input, stop, grace)))
    }

    /// The step's input, built by its mapping.
    fn map_input(&self, i: usize) -> Result<Value, ErrorBody> {
        let scope = Scope {
            outputs: &self.outputs,
            variables: &self.variables,
            env: &self.workflow.context.environment,
        };
        let mut input = serde_json::Map::new();
        for (field, mapped) in &self.plan(i).mapping {
            let value = mapped
                .render(scope, mapping::Limits::default())
                .map_err(|e| error(ErrorCode::Validation, format!("input mapping: {e}")))?;
            input.insert(field.clone(), value);
        }
        Ok(Value::Object(input))
    }

    /// Checks `input` against the step's `input.schema`, when it has one.
    fn check_input(&self, i: usize, input: &Value) -> Result<(), ErrorBody> {
        match &self.plan(i).input_schema {
            Some(schema) => check_schema(schema, input, ErrorCode::InvalidInput, "input"),
            None => Ok(()),
        }
    }

    /// The call for running step `agent_of`'s agent on behalf of `for_step`.
    fn call(
        &mut self,
        for_step: usize,
        agent_of: usize,
        input: Value,
        stop: &CancellationToken,
        grace: Duration,
    ) -> StepCall {
        let step = self.step(agent_of);
        self.results[for_step].status = StepStatus::Running;
        self.results[agent_of].status = StepStatus::Running;
        self.started.insert(agent_of, Instant::now());
        self.started.entry(for_step).or_insert_with(Instant::now);
        self.emit(ExecutionEvent::StepStarted {
            step_id: step.id.clone(),
            agent_id: step.agent.id.clone(),
            input: input.clone(),
        });
        StepCall {
            execution_id: self.execution_id.clone(),
            step_id: StepId::from(step.id.as_str()),
            agent_id: AgentId::from(step.agent.id.as_str()),
            config: step.agent.config.clone().unwrap_or_else(|| json!({})),
            input,
            resilience: self.plan(agent_of).resilience.clone(),
            cancel: stop.child_token(),
            cancel_grace: grace,
            queue_timeout: Duration::from_millis(
                self.workflow.policies.resilience_budget.queue_timeout_ms,
            ),
            attempts_before: self.attempts_before.get(&agent_of).copied().unwrap_or(0),
            idle_timeout: self.plan(agent_of).idle_timeout,
            events: self.events.clone(),
        }
    }

    fn record_failure(&mut self, i: usize, e: ErrorBody, attempts: u32, continued: bool) {
        let duration_ms = self.elapsed(i);
        let r = &mut self.results[i];
        r.status = StepStatus::Failed;
        r.error = Some(e.clone());
        r.attempts = attempts;
        r.duration_ms = duration_ms.round() as u64;
        self.emit(ExecutionEvent::StepFailed {
            step_id: self.step(i).id.clone(),
            error: e,
            attempts,
            duration_ms,
            continued,
        });
    }

    /// How long step `i` has run, in milliseconds (to the microsecond).
    fn elapsed(&self, i: usize) -> f64 {
        self.started.get(&i).map_or(0.0, |t| millis(t.elapsed()))
    }

    fn record_success(
        &mut self,
        i: usize,
        output: Value,
        attempts: u32,
        via_fallback: Option<String>,
    ) {
        let duration_ms = self.elapsed(i);
        let captured = capture(&self.plan(i).capture, &output);
        self.outputs.insert(self.step(i).id.clone(), output.clone());
        let r = &mut self.results[i];
        r.status = StepStatus::Succeeded;
        r.output = Some(output.clone());
        r.attempts = attempts;
        r.duration_ms = duration_ms.round() as u64;
        r.captured = captured;
        r.via_fallback = via_fallback.clone();
        self.emit(ExecutionEvent::StepSucceeded {
            step_id: self.step(i).id.clone(),
            output,
            attempts,
            duration_ms,
            via_fallback,
        });
    }

    fn record_cancelled(&mut self, i: usize, attempts: u32, reason: &str) {
        let duration_ms = self.elapsed(i);
        let r = &mut self.results[i];
        r.status = StepStatus::Cancelled;
        r.attempts = attempts;
        r.duration_ms = duration_ms.round() as u64;
        r.reason = Some(reason.into());
        self.emit(ExecutionEvent::StepCancelled {
            step_id: self.step(i).id.clone(),
            reason: reason.into(),
        });
    }

    /// Records a finished task; returns the error that fails the execution,
    /// if this one does.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &mut self,
        task: Task,
        outcome: StepOutcome,
        cancelling: bool,
        tasks: &mut Tasks,
        engine: &Engine,
        stop: &CancellationToken,
        grace: Duration,
    ) -> Option<ErrorBody> {
        let (i, original) = match task {
            Task::Step(i) => (i, None),
            Task::Fallback { fallback, original } => (fallback, Some(original)),
        };
        let result = outcome
            .result
            .and_then(|output| match &self.plan(i).output_schema {
                Some(schema) => check_schema(schema, &output, ErrorCode::InvalidOutput, "output")
                    .map(|()| output),
                None => Ok(output),
            });
        let attempts = outcome.attempts;
        match (result, original) {
            (Ok(output), None) => {
                self.record_success(i, output, attempts, None);
                None
            }
            (Ok(output), Some(orig)) => {
                let fallback_id = self.step(i).id.clone();
                self.record_success(i, output.clone(), attempts, None);
                let original_attempts = self.pending_failures.remove(&orig).map_or(0, |f| f.1);
                self.record_success(orig, output, original_attempts, Some(fallback_id));
                None
            }
            (Err(e), _) if cancelling || e.code == ErrorCode::Cancelled => {
                let reason = if cancelling {
                    "execution-ended"
                } else {
                    "cancelled"
                };
                self.record_cancelled(i, attempts, reason);
                if let Some(orig) = original {
                    let original_attempts = self.pending_failures.remove(&orig).map_or(0, |f| f.1);
                    self.record_cancelled(orig, original_attempts, reason);
                }
                None
            }
            (Err(e), Some(orig)) => {
                self.record_failure(i, e, attempts, false);
                let (original_error, original_attempts) = self
                    .pending_failures
                    .remove(&orig)
                    .unwrap_or_else(|| (error(ErrorCode::Fatal, "fallback failed"), 0));
                self.record_failure(orig, original_error.clone(), original_attempts, false);
                Some(original_error)
            }
            (Err(e), None) => self.step_failed(i, e, attempts, tasks, engine, stop, grace),
        }
    }

    /// Applies step `i`'s `onError` to its failure (before or after its
    /// agent ran); returns the error that fails the execution, if this one
    /// does.
    #[allow(clippy::too_many_arguments)]
    fn step_failed(
        &mut self,
        i: usize,
        e: ErrorBody,
        attempts: u32,
        tasks: &mut Tasks,
        engine: &Engine,
        stop: &CancellationToken,
        grace: Duration,
    ) -> Option<ErrorBody> {
        match self.step(i).on_error {
            OnError::Continue => {
                self.record_failure(i, e, attempts, true);
                None
            }
            OnError::Fallback => {
                let Some(j) = self.plan(i).fallback else {
                    self.record_failure(i, e.clone(), attempts, false);
                    return Some(self.ended_by(i, e));
                };
                // The original's input; when it failed before one was built,
                // the fallback's own mapping builds it.
                let input = match self.inputs.get(&i).cloned() {
                    Some(input) => Ok(input),
                    None => self.map_input(j),
                };
                let input = match input {
                    Ok(input) => input,
                    Err(fallback_error) => {
                        self.record_failure(j, fallback_error, 0, false);
                        self.record_failure(i, e.clone(), attempts, false);
                        return Some(self.ended_by(i, e));
                    }
                };
                self.emit(ExecutionEvent::StepFailed {
                    step_id: self.step(i).id.clone(),
                    error: e.clone(),
                    attempts,
                    duration_ms: self.elapsed(i),
                    continued: true,
                });
                self.pending_failures.insert(i, (e, attempts));
                let call = self.call(i, j, input, stop, grace);
                tasks.spawn(
                    engine,
                    Task::Fallback {
                        fallback: j,
                        original: i,
                    },
                    call,
                );
                None
            }
            OnError::Fail | OnError::Retry => {
                self.record_failure(i, e.clone(), attempts, false);
                Some(self.ended_by(i, e))
            }
        }
    }

    /// The execution's own error when step `i`'s failure ends it: the
    /// step's error, its message led by the step and its agent, and both in
    /// the details, so the last line a user reads says where it happened.
    fn ended_by(&self, i: usize, e: ErrorBody) -> ErrorBody {
        let step = self.step(i);
        let mut details = match e.details {
            Some(Value::Object(map)) => map,
            None => serde_json::Map::new(),
            Some(other) => {
                let mut map = serde_json::Map::new();
                map.insert("cause".into(), other);
                map
            }
        };
        details.insert("stepId".into(), step.id.clone().into());
        details.insert("agentId".into(), step.agent.id.clone().into());
        ErrorBody {
            code: e.code,
            message: format!("step `{}` ({}): {}", step.id, step.agent.id, e.message),
            details: Some(Value::Object(details)),
        }
    }

    /// Steps never run: fallbacks nobody needed, and everything left when
    /// the execution ended early.
    fn skip_leftovers(&mut self, ended_early: bool) {
        for i in 0..self.workflow.steps.len() {
            if self.results[i].status != StepStatus::Pending {
                continue;
            }
            let reason = if self.plan.is_fallback_only(i) && !ended_early {
                "fallback-not-needed"
            } else if ended_early {
                "execution-ended"
            } else {
                "dependency-not-completed"
            };
            self.skip(i, reason.into());
        }
    }
}

fn check_schema(
    validator: &jsonschema::Validator,
    value: &Value,
    code: ErrorCode,
    what: &str,
) -> Result<(), ErrorBody> {
    let problems: Vec<String> = validator
        .iter_errors(value)
        .take(5)
        .map(|e| format!("{} at `{}`", e, e.instance_path()))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(error(
            code,
            format!("{what} does not match its schema: {}", problems.join("; ")),
        ))
    }
}

/// The values `capture` names, by path into the output.
fn capture(paths: &[(String, mapping::Expr)], output: &Value) -> BTreeMap<String, Value> {
    let outputs = BTreeMap::from([("_".to_string(), output.clone())]);
    let variables = BTreeMap::new();
    let env = BTreeMap::new();
    let scope = Scope {
        outputs: &outputs,
        variables: &variables,
        env: &env,
    };
    paths
        .iter()
        .filter_map(|(name, e)| {
            e.evaluate(scope, mapping::Limits::default())
                .ok()
                .map(|v| (name.clone(), v))
        })
        .collect()
}
