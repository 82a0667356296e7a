//! Hostile agents are contained with the right error code, and the host
//! keeps serving afterwards.

use std::time::Duration;

use orchestr8_host::sandbox::{InvocationRequest, InvokeError, Limits, SandboxPolicy};
use orchestr8_host::{Coded, ErrorCode};
use rstest::rstest;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::{call, load, sandbox};

/// The default policy with its limits changed by `f`.
pub fn limits(f: impl FnOnce(&mut Limits)) -> SandboxPolicy {
    let mut policy = SandboxPolicy::default();
    f(&mut policy.limits);
    policy
}

#[tokio::test]
async fn panic_message_reaches_the_error() {
    let outcome = call("hostile-panic", json!({}), &SandboxPolicy::default()).await;
    let error = outcome.result.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("hostile agent gave up on purpose"),
        "{error}"
    );
}

#[tokio::test]
async fn stack_overflow_is_named() {
    let outcome = call("hostile-recursion", json!({}), &SandboxPolicy::default()).await;
    assert!(
        outcome
            .result
            .unwrap_err()
            .to_string()
            .contains("stack overflow")
    );
}

#[tokio::test]
async fn memory_error_names_the_limit() {
    let outcome = call(
        "hostile-memory",
        json!({}),
        &limits(|l| l.memory_bytes = 16 << 20),
    )
    .await;
    match outcome.result.unwrap_err() {
        InvokeError::MemoryLimit {
            limit, requested, ..
        } => {
            assert_eq!(limit, 16 << 20);
            assert!(requested > limit);
        }
        other => panic!("expected MemoryLimit, got {other:?}"),
    }
}

#[tokio::test]
async fn log_flood_is_capped_and_the_agent_still_finishes() {
    let policy = limits(|l| l.log_bytes = 64 * 1024);
    let outcome = call("hostile-logs", json!({"lines": 5000}), &policy).await;
    assert_eq!(outcome.result.unwrap(), json!(5000));
    let kept: usize = outcome.logs.iter().map(|l| l.message.len()).sum();
    assert!(kept <= 64 * 1024, "kept {kept} bytes of logs");
    assert!(!outcome.logs.is_empty());
    assert_eq!(outcome.logs.len() as u64 + outcome.logs_dropped, 5000);
}

#[tokio::test]
async fn fuel_consumption_is_reported() {
    let outcome = call(
        "text-stats",
        json!({"text": "a b c"}),
        &SandboxPolicy::default(),
    )
    .await;
    assert!(outcome.result.is_ok());
    assert!(outcome.stats.fuel_consumed > 0);
    assert!(outcome.stats.fuel_consumed < SandboxPolicy::default().limits.fuel);
}

#[rstest]
#[case::cpu_bound("hostile-loop", json!({}))]
#[case::blocked_in_a_host_call("hostile-sleep", json!({}))]
#[tokio::test]
async fn cancellation_stops_a_running_agent_after_its_grace_period(
    #[case] agent: &str,
    #[case] input: serde_json::Value,
) {
    let agent = load(agent).await;
    let policy = limits(|l| l.fuel = u64::MAX);
    let cancel = CancellationToken::new();
    let mut request = InvocationRequest::new(input);
    request.cancel_grace = Duration::from_millis(50);
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        trigger.cancel();
    });
    let outcome = sandbox().invoke(&agent, &policy, request, &cancel).await;
    assert_eq!(outcome.result.unwrap_err().code(), ErrorCode::Cancelled);
}

#[tokio::test]
async fn every_invocation_gets_a_fresh_sandbox_even_200_at_once() {
    let agent = load("state-probe").await;
    let policy = SandboxPolicy::default();
    let calls = (0..200u64).map(|tag| {
        let agent = agent.clone();
        let policy = policy.clone();
        tokio::spawn(async move {
            sandbox()
                .invoke(
                    &agent,
                    &policy,
                    InvocationRequest::new(json!({ "tag": tag })),
                    &CancellationToken::new(),
                )
                .await
        })
    });
    let outcomes = futures_join(calls.collect()).await;
    for (tag, outcome) in outcomes.into_iter().enumerate() {
        let output = outcome.result.unwrap();
        assert_eq!(output["tag"], tag as u64);
        assert_eq!(output["calls_seen"], 1, "state leaked between invocations");
    }
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
