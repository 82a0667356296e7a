//! Scheduling with a fake step runner under paused time.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::error::ErrorCode;
use crate::workflow::{self, Plan};

/// Agents by behaviour:
/// - `@t/echo`: returns its input after `input.ms` (default 10) ms;
/// - `@t/fail`: fails with FATAL;
/// - `@t/flaky`: fails RETRYABLE until attempt 2 (it sees the chain only
///   as one call, so it fails once and reports 1 attempt);
/// - `@t/text`: returns `{"n": "not a number"}`.
#[derive(Default)]
struct Fake {
    log: Mutex<Vec<(String, Instant, Instant)>>,
    running: Mutex<(usize, usize)>,
    queue_timeouts: Mutex<Vec<Duration>>,
    attempts_before: Mutex<Vec<(String, u32)>>,
}

impl StepRunner for Fake {
    fn has_agent(&self, id: &str) -> bool {
        id.starts_with("@t/")
    }

    fn run(&self, call: StepCall) -> Pin<Box<dyn Future<Output = StepOutcome> + Send + '_>> {
        Box::pin(async move {
            self.queue_timeouts.lock().unwrap().push(call.queue_timeout);
            self.attempts_before
                .lock()
                .unwrap()
                .push((call.step_id.to_string(), call.attempts_before));
            let start = Instant::now();
            {
                let mut r = self.running.lock().unwrap();
                r.0 += 1;
                r.1 = r.1.max(r.0);
            }
            let ms = call.input["ms"].as_u64().unwrap_or(10);
            let result = tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(ms)) => match call.agent_id.as_str() {
                    "@t/fail" => Err(ErrorBody { code: ErrorCode::Fatal, message: "boom".into(), details: None }),
                    "@t/text" => Ok(json!({"n": "not a number"})),
                    _ => Ok(call.input.clone()),
                },
                _ = call.cancel.cancelled() => Err(ErrorBody { code: ErrorCode::Cancelled, message: "cancelled".into(), details: None }),
            };
            self.running.lock().unwrap().0 -= 1;
            self.log
                .lock()
                .unwrap()
                .push((call.step_id.to_string(), start, Instant::now()));
            StepOutcome {
                result,
                attempts: 1,
            }
        })
    }
}

fn workflow(steps: Value, policies: Value) -> Plan {
    let doc = json!({
        "version": "1.0.0",
        "schemaVersion": "1.0.0",
        "metadata": {"id": "7f1d2c3e-0b4a-4f5e-9d8c-1a2b3c4d5e6f", "name": "test"},
        "context": {"variables": {"who": "ada"}},
        "steps": steps,
        "policies": policies,
    });
    workflow::load(&doc.to_string(), &()).unwrap_or_else(|e| panic!("{e}"))
}

fn step(id: &str, agent: &str, deps: &[&str], mapping: Value) -> Value {
    json!({"id": id, "name": id, "agent": {"id": agent}, "dependencies": deps, "input": {"mapping": mapping}})
}

struct Ran {
    result: ExecutionResult,
    events: Vec<ExecutionEvent>,
    fake: Arc<Fake>,
}

async fn run_with(wf: &Plan, cancel: CancellationToken) -> Ran {
    run_accepted(wf, cancel, Instant::now()).await
}

/// Runs `wf` as if its request had arrived at `accepted`.
async fn run_accepted(wf: &Plan, cancel: CancellationToken, accepted: Instant) -> Ran {
    let fake = Arc::new(Fake::default());
    let engine = Engine::new(fake.clone());
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink_events = events.clone();
    let sink: EventSink = Arc::new(move |e| sink_events.lock().unwrap().push(e));
    let result = engine
        .execute(wf, "exec-1".into(), BTreeMap::new(), cancel, sink, accepted)
        .await;
    let events = events.lock().unwrap().clone();
    Ran {
        result,
        events,
        fake,
    }
}

async fn run(wf: &Plan) -> Ran {
    run_with(wf, CancellationToken::new()).await
}

fn status(ran: &Ran, id: &str) -> StepStatus {
    ran.result.steps[id].status
}

#[tokio::test(start_paused = true)]
async fn outputs_flow_through_mappings_with_their_types() {
    let wf = workflow(
        json!([
            step(
                "a",
                "@t/echo",
                &[],
                json!({"who": "${variables.who}", "n": 2})
            ),
            step(
                "b",
                "@t/echo",
                &["a"],
                json!({"greeting": "hi ${steps.a.output.who}", "twice": "${steps.a.output.n}"})
            ),
        ]),
        json!({}),
    );
    let ran = run(&wf).await;
    assert_eq!(ran.result.status, ExecutionStatus::Succeeded);
    assert_eq!(
        ran.result.steps["b"].output,
        Some(json!({"greeting": "hi ada", "twice": 2}))
    );
}

#[tokio::test(start_paused = true)]
async fn independent_steps_run_in_parallel_and_a_join_waits_for_both() {
    let wf = workflow(
        json!([
            step("left", "@t/echo", &[], json!({"ms": 100})),
            step("right", "@t/echo", &[], json!({"ms": 100})),
            step(
                "join",
                "@t/echo",
                &["left", "right"],
                json!({"l": "${steps.left.output.ms}", "r": "${steps.right.output.ms}"})
            ),
        ]),
        json!({}),
    );
    let start = Instant::now();
    let ran = run(&wf).await;
    assert_eq!(ran.result.status, ExecutionStatus::Succeeded);
    // Both branches overlap: the whole takes 100 ms + the join's 10 ms.
    assert_eq!(start.elapsed(), Duration::from_millis(110));
    assert_eq!(
        ran.result.steps["join"].output,
        Some(json!({"l": 100, "r": 100}))
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_under_fail_stops_the_execution_and_cancels_running_steps() {
    let wf = workflow(
        json!([
            step("slow", "@t/echo", &[], json!({"ms": 10_000})),
            step("bad", "@t/fail", &[], json!({})),
            step("after", "@t/echo", &["bad"], json!({})),
        ]),
        json!({"cancellation": {"gracePeriod": 0}}),
    );
    let ran = run(&wf).await;
    assert_eq!(ran.result.status, ExecutionStatus::Failed);
    assert_eq!(ran.result.error.as_ref().unwrap().code, ErrorCode::Fatal);
    assert_eq!(status(&ran, "bad"), StepStatus::Failed);
    assert_eq!(status(&ran, "slow"), StepStatus::Cancelled);
    assert_eq!(status(&ran, "after"), StepStatus::Skipped);
}

#[tokio::test(start_paused = true)]
async fn continue_records_the_failure_and_dependents_skip_unless_they_opt_in() {
    let mut bad = step("bad", "@t/fail", &[], json!({}));
    bad["onError"] = json!("continue");
    let wf = workflow(
        json!([
            bad,
            step(
                "strict",
                "@t/echo",
                &["bad"],
                json!({"x": "${steps.bad.output.x}"})
            ),
            step(
                "lenient",
                "@t/echo",
                &["bad"],
                json!({"x": "${steps.bad.output.x ?? 'none'}"})
            ),
            step("other", "@t/echo", &[], json!({})),
        ]),
        json!({}),
    );
    let ran = run(&wf).await;
    assert_eq!(ran.result.status, ExecutionStatus::Succeeded);
    assert_eq!(status(&ran, "bad"), StepStatus::Failed);
    assert_eq!(status(&ran, "strict"), StepStatus::Skipped);
    assert_eq!(
        ran.result.steps["strict"].reason.as_deref(),
        Some("dependency-not-completed")
    );
    assert_eq!(
        ran.result.steps["lenient"].output,
        Some(json!({"x": "none"}))
    );
    assert_eq!(status(&ran, "other"), StepStatus::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn a_fallback_stands_in_with_the_original_input() {
    let mut primary = step("primary", "@t/fail", &[], json!({"q": "${variables.who}"}));
    primary["onError"] = json!("fallback");
    primary["fallbackStepId"] = json!("backup");
    let wf = workflow(
        json!([
            primary,
            step("backup", "@t/echo", &[], json!({})),
            step(
                "use",
                "@t/echo",
                &["primary"],
                json!({"got": "${steps.primary.output.q}"})
            ),
        ]),
        json!({}),
    );
    let ran = run(&wf).await;
    assert_eq!(ran.result.status, ExecutionStatus::Succeeded);
    let primary = &ran.result.steps["primary"];
    assert_eq!(primary.status, StepStatus::Succeeded);
    assert_eq!(primary.via_fallback.as_deref(), Some("backup"));
    assert_eq!(ran.result.steps["use"].output, Some(json!({"got": "ada"})));
    let backups = ran
        .fake
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.0 == "backup")
        .count();
    assert_eq!(backups, 1, "the fallback runs only as a fallback");
}

#[tokio::test(start_paused = true)]
async fn an_unneeded_fallback_is_skipped() {
    let mut primary = step("primary", "@t/echo", &[], json!({}));
    primary["onError"] = json!("fallback");
    primary["fallbackStepId"] = json!("backup");
    let wf = workflow(
        json!([primary, step("backup", "@t/echo", &[], json!({}))]),
        json!({}),
    );
    let ran = run(&wf).await;
    assert_eq!(
        ran.result.steps["backup"].reason.as_deref(),
        Some("fallback-not-needed")
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_fallback_lets_the_original_failure_stand() {
    let mut primary = step("primary", "@t/fail", &[], json!({}));
    primary["onError"] = json!("fallback");
    primary["fallbackStepId"] = json!("backup");
    let wf = workflow(
        json!([primary, step("backup", "@t/fail", &[], json!({}))]),
        json!({}),
    );
    let ran = run(&wf).await;
    assert_eq!(ran.result.status, ExecutionStatus::Failed);
    assert_eq!(status(&ran, "primary"), StepStatus::Failed);
    assert_eq!(status(&ran, "backup"), StepStatus::Failed);
}

#[tokio::test(start_paused = true)]
async fn a_false_condition_skips_the_step_and_its_dependents() {
    let mut gated = step("gated", "@t/echo", &["count"], json!({}));
    gated["condition"] = json!({"if": "steps.count.output.n > `5`"});
    let mut negated = step("negated", "@t/echo", &["count"], json!({}));
    negated["condition"] = json!({"unless": "steps.count.output.n > `5`"});
    let wf = workflow(
        json!([
            step("count", "@t/echo", &[], json!({"n": 3})),
            gated,
            negated,
            step("after", "@t/echo", &["gated"], json!({})),
        ]),
        json!({}),
    );
    let ran = run(&wf).await;
    assert_eq!(
        ran.result.steps["gated"].reason.as_deref(),
        Some("condition-not-met")
    );
    assert_eq!(status(&ran, "negated"), StepStatus::Succeeded);
    assert_eq!(status(&ran, "after"), StepStatus::Skipped);
    assert_eq!(ran.result.status, ExecutionStatus::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn an_output_that_breaks_its_schema_fails_the_step() {
    let mut s = step("typed", "@t/text", &[], json!({}));
    s["output"] = json!({"schema": {"type": "object", "properties": {"n": {"type": "number"}}}});
    let wf = workflow(json!([s]), json!({}));
    let ran = run(&wf).await;
    assert_eq!(ran.result.status, ExecutionStatus::Failed);
    let error = ran.result.steps["typed"].error.clone().unwrap();
    assert_eq!(error.code, ErrorCode::InvalidOutput);
    assert!(error.message.contains("/n"), "{}", error.message);
}

#[tokio::test(start_paused = true)]
async fn a_missing_mapping_value_fails_the_step_with_validation() {
    let wf = workflow(
        json!([
            step("a", "@t/echo", &[], json!({})),
            step(
                "b",
                "@t/echo",
                &["a"],
                json!({"x": "${steps.a.output.nothing}"})
            ),
        ]),
        json!({}),
    );
    let ran = run(&wf).await;
    let error = ran.result.steps["b"].error.clone().unwrap();
    assert_eq!(error.code, ErrorCode::Validation);
    assert!(error.message.contains("${steps.a.output.nothing}"));
}

/// Step `b` of `a → b` fails before its agent runs, each way it can.
fn failing_before_run(kind: &str) -> Value {
    let mut b = step("b", "@t/echo", &["a"], json!({"x": "${steps.a.output.x}"}));
    match kind {
        "missing" => b["input"]["mapping"] = json!({"x": "${steps.a.output.missing}"}),
        "too-large" => b["input"]["mapping"] = json!({"x": "${steps.a.output.big}"}),
        "input-schema" => {
            b["input"]["schema"] =
                json!({"type": "object", "properties": {"x": {"type": "string"}}})
        }
        "condition" => b["condition"] = json!({"if": "length(steps.a.output.x)"}),
        other => panic!("unknown kind {other}"),
    }
    b
}

#[rstest::rstest]
#[case::missing_reference("missing", ErrorCode::Validation)]
#[case::expansion_past_64_kib("too-large", ErrorCode::Validation)]
#[case::input_breaking_its_schema("input-schema", ErrorCode::InvalidInput)]
#[case::condition_that_cannot_be_evaluated("condition", ErrorCode::Validation)]
#[tokio::test(start_paused = true)]
async fn a_step_failing_before_its_agent_runs_fails_the_execution(
    #[case] kind: &str,
    #[case] code: ErrorCode,
) {
    let big = "x".repeat(70_000);
    let wf = workflow(
        json!([
            step("a", "@t/echo", &[], json!({"x": 1, "big": big})),
            failing_before_run(kind),
            // Ready with `b`, but queued behind it at one step at a time.
            step("d", "@t/echo", &["a"], json!({})),
        ]),
        json!({"concurrency": {"maxConcurrentSteps": 1}}),
    );
    let ran = run(&wf).await;
    assert_eq!(ran.result.status, ExecutionStatus::Failed);
    let b = &ran.result.steps["b"];
    assert_eq!(b.status, StepStatus::Failed);
    assert_eq!(b.error.as_ref().unwrap().code, code);
    assert_eq!(ran.result.error.as_ref().unwrap().code, code);
    assert_eq!(status(&ran, "d"), StepStatus::Skipped);
    assert_eq!(
        ran.result.steps["d"].reason.as_deref(),
        Some("execution-ended")
    );
    let ran_steps: Vec<String> = ran
        .fake
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|l| l.0.clone())
        .collect();
    assert_eq!(ran_steps, ["a"], "neither b's agent nor d ran");
}

#[tokio::test(start_paused = true)]
async fn a_failure_before_run_under_continue_lets_the_execution_go_on() {
    let mut b = failing_before_run("missing");
    b["onError"] = json!("continue");
    let wf = workflow(
        json!([
            step("a", "@t/echo", &[], json!({"x": 1})),
            b,
            step("d", "@t/echo", &["a"], json!({})),
            step("after-b", "@t/echo", &["b"], json!({})),
        ]),
        json!({"concurrency": {"maxConcurrentSteps": 1}}),
    );
    let ran = run(&wf).await;
    assert_eq!(ran.result.status, ExecutionStatus::Succeeded);
    assert_eq!(status(&ran, "b"), StepStatus::Failed);
    assert_eq!(status(&ran, "d"), StepStatus::Succeeded);
    assert_eq!(status(&ran, "after-b"), StepStatus::Skipped);
}

#[tokio::test(start_paused = true)]
async fn a_failure_before_run_is_rescued_by_the_fallback() {
    // The mapping failed, so there is no original input: the fallback
    // builds its own.
    let mut b = failing_before_run("missing");
    b["onError"] = json!("fallback");
    b["fallbackStepId"] = json!("backup");
    let backup = step(
        "backup",
        "@t/echo",
        &["a"],
        json!({"from": "backup", "x": "${steps.a.output.x}"}),
    );
    // The input was built but broke the schema: the fallback gets it.
    let mut c = failing_before_run("input-schema");
    c["id"] = json!("c");
    c["onError"] = json!("fallback");
    c["fallbackStepId"] = json!("lenient");
    let wf = workflow(
        json!([
            step("a", "@t/echo", &[], json!({"x": 1})),
            b,
            backup,
            c,
            step("lenient", "@t/echo", &[], json!({})),
            step(
                "use",
                "@t/echo",
                &["b", "c"],
                json!({"b": "${steps.b.output.from}", "c": "${steps.c.output.x}"})
            ),
        ]),
        json!({}),
    );
    let ran = run(&wf).await;
    assert_eq!(
        ran.result.status,
        ExecutionStatus::Succeeded,
        "{:?}",
        ran.result
    );
    assert_eq!(
        ran.result.steps["b"].via_fallback.as_deref(),
        Some("backup")
    );
    assert_eq!(
        ran.result.steps["c"].via_fallback.as_deref(),
        Some("lenient")
    );
    assert_eq!(
        ran.result.steps["use"].output,
        Some(json!({"b": "backup", "c": 1}))
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_fallback_keeps_the_attempts_of_the_original() {
    let mut primary = step("primary", "@t/fail", &[], json!({}));
    primary["onError"] = json!("fallback");
    primary["fallbackStepId"] = json!("backup");
    let wf = workflow(
        json!([primary, step("backup", "@t/fail", &[], json!({}))]),
        json!({}),
    );
    let ran = run(&wf).await;
    assert_eq!(ran.result.steps["primary"].status, StepStatus::Failed);
    assert_eq!(
        ran.result.steps["primary"].attempts, 1,
        "its agent ran once"
    );
}

#[tokio::test(start_paused = true)]
async fn captured_values_are_kept() {
    let mut s = step("a", "@t/echo", &[], json!({"items": [{"t": "x"}]}));
    s["output"] = json!({"capture": {"first": "items[0].t"}});
    let ran = run(&workflow(json!([s]), json!({}))).await;
    assert_eq!(ran.result.steps["a"].captured["first"], json!("x"));
}

#[tokio::test(start_paused = true)]
async fn cancellation_mid_step_cancels_the_execution() {
    let wf = workflow(
        json!([
            step("long", "@t/echo", &[], json!({"ms": 60_000})),
            step("next", "@t/echo", &["long"], json!({})),
        ]),
        json!({}),
    );
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        trigger.cancel();
    });
    let start = Instant::now();
    let ran = run_with(&wf, cancel).await;
    assert_eq!(ran.result.status, ExecutionStatus::Cancelled);
    assert_eq!(status(&ran, "long"), StepStatus::Cancelled);
    assert_eq!(status(&ran, "next"), StepStatus::Skipped);
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(
        ran.events
            .iter()
            .any(|e| matches!(e, ExecutionEvent::CancellationRequested { .. }))
    );
}

#[tokio::test(start_paused = true)]
async fn the_total_system_budget_counts_from_acceptance() {
    let wf = workflow(
        json!([step("long", "@t/echo", &[], json!({"ms": 60_000}))]),
        json!({"resilienceBudget": {"totalSystemBudgetMs": 5_000}}),
    );
    let started = Instant::now();
    // Queued for 4 s before it started: 1 s of the budget is left.
    let accepted = started - Duration::from_secs(4);
    let ran = run_accepted(&wf, CancellationToken::new(), accepted).await;
    assert_eq!(ran.result.status, ExecutionStatus::TimedOut);
    let error = ran.result.error.as_ref().unwrap();
    assert_eq!(error.code, ErrorCode::BudgetExhausted);
    assert!(
        error.message.contains("totalSystemBudgetMs"),
        "{}",
        error.message
    );
    let ended = ran.fake.log.lock().unwrap()[0].2;
    assert!(ended - started < Duration::from_millis(1_100));
}

#[tokio::test(start_paused = true)]
async fn each_step_call_carries_the_workflows_queue_timeout() {
    let wf = workflow(
        json!([step("a", "@t/echo", &[], json!({}))]),
        json!({"resilienceBudget": {"queueTimeoutMs": 1_234}}),
    );
    let ran = run(&wf).await;
    assert_eq!(
        *ran.fake.queue_timeouts.lock().unwrap(),
        vec![Duration::from_millis(1_234)]
    );
}

#[tokio::test(start_paused = true)]
async fn the_global_timeout_ends_the_execution() {
    let wf = workflow(
        json!([step("long", "@t/echo", &[], json!({"ms": 60_000}))]),
        json!({"timeout": {"global": 2_000}}),
    );
    let ran = run(&wf).await;
    assert_eq!(ran.result.status, ExecutionStatus::TimedOut);
    assert_eq!(ran.result.error.as_ref().unwrap().code, ErrorCode::Timeout);
    assert_eq!(status(&ran, "long"), StepStatus::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn events_are_ordered_from_start_to_finish() {
    let ran = run(&workflow(
        json!([step("a", "@t/echo", &[], json!({}))]),
        json!({}),
    ))
    .await;
    let kinds: Vec<&str> = ran.events.iter().map(ExecutionEvent::kind).collect();
    assert_eq!(
        kinds,
        vec![
            "execution-started",
            "step-started",
            "step-succeeded",
            "execution-finished"
        ]
    );
}

/// A random DAG: each step depends on some earlier ones.
fn dag() -> impl Strategy<Value = (Vec<Vec<usize>>, Vec<u64>, u32)> {
    (2usize..12).prop_flat_map(|n| {
        let deps = (0..n)
            .map(|i| proptest::sample::subsequence((0..i).collect::<Vec<_>>(), 0..=i.min(3)))
            .collect::<Vec<_>>();
        (deps, proptest::collection::vec(1u64..200, n), 1u32..=4)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn no_step_starts_before_its_dependencies_and_the_cap_holds((deps, durations, cap) in dag()) {
        let steps: Vec<Value> = deps.iter().enumerate().map(|(i, d)| {
            let names: Vec<String> = d.iter().map(|j| format!("s{j}")).collect();
            json!({"id": format!("s{i}"), "name": "s", "agent": {"id": "@t/echo"},
                   "dependencies": names, "input": {"mapping": {"ms": durations[i]}}})
        }).collect();
        let wf = workflow(Value::Array(steps), json!({"concurrency": {"maxConcurrentSteps": cap}}));
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        let ran = rt.block_on(run(&wf));
        prop_assert_eq!(ran.result.status, ExecutionStatus::Succeeded);
        let log = ran.fake.log.lock().unwrap().clone();
        let when: std::collections::HashMap<String, (Instant, Instant)> =
            log.iter().map(|(id, s, e)| (id.clone(), (*s, *e))).collect();
        for (i, d) in deps.iter().enumerate() {
            let (start, _) = when[&format!("s{i}")];
            for j in d {
                let (_, end) = when[&format!("s{j}")];
                prop_assert!(start >= end, "s{} started before s{} ended", i, j);
            }
        }
        prop_assert!(ran.fake.running.lock().unwrap().1 <= cap as usize);
    }
}

fn entry(seq: u64, event: ExecutionEvent) -> crate::record::JournalEntry {
    crate::record::JournalEntry {
        seq,
        at: "2026-12-03T10:00:00.000Z".into(),
        record: crate::record::Record::Event(event),
    }
}

fn started(step: &str, attempt: u32) -> ExecutionEvent {
    ExecutionEvent::Resilience {
        step_id: step.into(),
        event: crate::resilience::ResilienceEvent::AttemptStarted {
            attempt,
            timeout_ms: 1000,
            probe: false,
            agent_digest: None,
        },
    }
}

async fn resume(wf: &Plan, journal: &[crate::record::JournalEntry]) -> Ran {
    let progress = Progress::from_journal("exec-1", journal).unwrap();
    let fake = Arc::new(Fake::default());
    let engine = Engine::new(fake.clone());
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink_events = events.clone();
    let sink: EventSink = Arc::new(move |e| sink_events.lock().unwrap().push(e));
    let result = engine
        .resume(
            wf,
            "exec-1".into(),
            BTreeMap::new(),
            &progress,
            CancellationToken::new(),
            sink,
        )
        .await;
    let events = events.lock().unwrap().clone();
    Ran {
        result,
        events,
        fake,
    }
}

#[tokio::test(start_paused = true)]
async fn a_resumed_execution_keeps_what_ended_and_runs_again_what_was_running() {
    let wf = workflow(
        json!([
            step("a", "@t/echo", &[], json!({"v": 1})),
            step("b", "@t/echo", &["a"], json!({"v": "${steps.a.output.v}"})),
            step("c", "@t/echo", &["b"], json!({"v": "${steps.b.output.v}"})),
        ]),
        json!({}),
    );
    let journal = [
        entry(
            1,
            ExecutionEvent::ExecutionStarted {
                workflow_id: "w".into(),
                workflow_name: "test".into(),
                steps: 3,
            },
        ),
        entry(
            2,
            ExecutionEvent::StepStarted {
                step_id: "a".into(),
                agent_id: "@t/echo".into(),
                input: json!({"v": 1}),
            },
        ),
        entry(3, started("a", 1)),
        entry(
            4,
            ExecutionEvent::StepSucceeded {
                step_id: "a".into(),
                output: json!({"v": 41}),
                attempts: 1,
                duration_ms: 3.0,
                via_fallback: None,
            },
        ),
        entry(
            5,
            ExecutionEvent::StepStarted {
                step_id: "b".into(),
                agent_id: "@t/echo".into(),
                input: json!({"v": 41}),
            },
        ),
        entry(6, started("b", 1)),
        entry(7, started("b", 2)),
    ];
    let ran = resume(&wf, &journal).await;
    assert_eq!(ran.result.status, ExecutionStatus::Succeeded);
    // `a` never ran again: its recorded output fed `b`.
    let calls = ran.fake.attempts_before.lock().unwrap().clone();
    assert_eq!(calls, [("b".to_string(), 2), ("c".to_string(), 0)]);
    assert_eq!(ran.result.steps["a"].output, Some(json!({"v": 41})));
    assert_eq!(ran.result.steps["c"].output, Some(json!({"v": 41})));
    match &ran.events[0] {
        ExecutionEvent::ExecutionResumed {
            restored, rerun, ..
        } => {
            assert_eq!(
                (restored.as_slice(), rerun.as_slice()),
                (&["a".to_string()][..], &["b".to_string()][..])
            );
        }
        other => panic!("first event: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_resumed_execution_that_had_failed_or_was_cancelled_ends_so_and_a_finished_one_is_refused()
 {
    let wf = workflow(
        json!([
            step("a", "@t/fail", &[], json!({})),
            step("b", "@t/echo", &["a"], json!({})),
        ]),
        json!({}),
    );
    let failed = [
        entry(
            1,
            ExecutionEvent::StepStarted {
                step_id: "a".into(),
                agent_id: "@t/fail".into(),
                input: json!({}),
            },
        ),
        entry(
            2,
            ExecutionEvent::StepFailed {
                step_id: "a".into(),
                error: ErrorBody {
                    code: ErrorCode::Fatal,
                    message: "boom".into(),
                    details: None,
                },
                attempts: 1,
                duration_ms: 1.0,
                continued: false,
            },
        ),
    ];
    let ran = resume(&wf, &failed).await;
    assert_eq!(ran.result.status, ExecutionStatus::Failed);
    assert!(
        ran.fake.attempts_before.lock().unwrap().is_empty(),
        "nothing ran again"
    );
    assert_eq!(status(&ran, "b"), StepStatus::Skipped);

    let cancelling = [
        entry(
            1,
            ExecutionEvent::StepStarted {
                step_id: "a".into(),
                agent_id: "@t/fail".into(),
                input: json!({}),
            },
        ),
        entry(
            2,
            ExecutionEvent::CancellationRequested {
                grace_period_ms: 10,
            },
        ),
    ];
    let ran = resume(&wf, &cancelling).await;
    assert_eq!(ran.result.status, ExecutionStatus::Cancelled);
    assert!(ran.fake.attempts_before.lock().unwrap().is_empty());

    let finished = [entry(
        1,
        ExecutionEvent::ExecutionFinished {
            status: ExecutionStatus::Succeeded,
            duration_ms: 1,
            error: None,
        },
    )];
    let refused = Progress::from_journal("exec-1", &finished).unwrap_err();
    assert!(
        refused.to_string().contains("already ended: succeeded"),
        "{refused}"
    );
}

#[test]
fn a_journal_read_back_knows_which_circuits_it_last_saw_open() {
    let changed = |seq: u64, key: &str, to: crate::resilience::BreakerState| {
        entry(
            seq,
            ExecutionEvent::Resilience {
                step_id: "a".into(),
                event: crate::resilience::ResilienceEvent::BreakerStateChanged {
                    key: key.into(),
                    from: crate::resilience::BreakerState::Closed,
                    to,
                },
            },
        )
    };
    use crate::resilience::BreakerState::{Closed, Open};
    let journal = [
        changed(1, "cb:@t/x", Open),
        changed(2, "cb:@t/y", Open),
        changed(3, "cb:@t/y", Closed),
    ];
    let progress = Progress::from_journal("exec-1", &journal).unwrap();
    let open: Vec<&String> = progress.open_circuits.keys().collect();
    assert_eq!(open, ["cb:@t/x"]);
    assert_eq!(progress.open_circuits["cb:@t/x"].0, "a");
}
