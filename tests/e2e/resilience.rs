//! The resilience chain around real agents in the real sandbox.

use std::sync::Mutex;
use std::time::Duration;

use orchestr8_host::call::{AgentCall, Invoker, RegisteredAgent};
use orchestr8_host::resilience::{
    BreakerState, CircuitBreakerPolicy, EventSink, Resilience, ResilienceEvent, ResiliencePolicy,
    RetryPolicy,
};
use orchestr8_host::sandbox::{Limits, SandboxPolicy};
use orchestr8_host::{Coded, ErrorCode};
use serde_json::json;

use crate::support::{load, sandbox};

#[derive(Default)]
struct Events(Mutex<Vec<ResilienceEvent>>);

impl EventSink for Events {
    fn emit(&self, event: ResilienceEvent) {
        self.0.lock().unwrap().push(event);
    }
}

fn policy(max_attempts: u32, threshold: u32, reset_ms: u64) -> ResiliencePolicy {
    ResiliencePolicy {
        retry: RetryPolicy {
            max_attempts,
            base_delay_ms: 10,
            max_delay_ms: 20,
            ..RetryPolicy::default()
        },
        circuit_breaker: CircuitBreakerPolicy {
            failure_threshold: threshold,
            reset_timeout_ms: reset_ms,
            ..CircuitBreakerPolicy::default()
        },
        ..ResiliencePolicy::default()
    }
}

fn invoker() -> Invoker {
    Invoker::new(sandbox(), Resilience::default())
}

#[tokio::test]
async fn a_flaky_agent_succeeds_on_a_retry() {
    let agent = RegisteredAgent::new(load("flaky").await, SandboxPolicy::default());
    let events = Events::default();
    let mut call = AgentCall::new(&agent, json!({"failures": 2}));
    call.resilience = policy(3, 5, 60_000);
    let outcome = invoker().call(&agent, call, &events).await;
    assert_eq!(outcome.result.unwrap(), json!({"attempt": 3}));
    assert_eq!(outcome.attempts.len(), 3);
    assert_eq!(
        outcome.attempts[0].result.as_ref().unwrap_err().code(),
        ErrorCode::Retryable
    );
    assert_eq!(
        outcome.attempts[0].logs[0].message,
        "attempt 1 fails on purpose"
    );
    let retries = events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, ResilienceEvent::RetryScheduled { .. }))
        .count();
    assert_eq!(retries, 2);
}

#[tokio::test]
async fn an_always_failing_agent_opens_its_breaker_which_then_recovers() {
    let agent = RegisteredAgent::new(load("flaky").await, SandboxPolicy::default());
    let invoker = invoker();
    let p = policy(2, 4, 300);
    let call = |failures: u32| {
        let invoker = invoker.clone();
        let agent = agent.clone();
        let mut call = AgentCall::new(&agent, json!({ "failures": failures }));
        call.resilience = p.clone();
        async move { invoker.call(&agent, call, &|_: ResilienceEvent| {}).await }
    };
    // Two calls of two failed attempts each: four consecutive failures.
    for _ in 0..2 {
        let outcome = call(1000).await;
        assert_eq!(outcome.result.unwrap_err().code(), ErrorCode::Retryable);
    }
    assert_eq!(
        invoker.resilience().breakers().state("cb:@orchestr8/flaky"),
        BreakerState::Open
    );

    // While open, calls are refused without reaching the sandbox.
    let refused = call(0).await;
    assert_eq!(refused.result.unwrap_err().code(), ErrorCode::CircuitOpen);
    assert!(refused.attempts.is_empty());

    // After the reset timeout one probe goes through; it succeeds and closes.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let recovered = call(0).await;
    assert_eq!(recovered.result.unwrap(), json!({"attempt": 1}));
    assert_eq!(
        invoker.resilience().breakers().state("cb:@orchestr8/flaky"),
        BreakerState::Closed
    );
}

#[tokio::test]
async fn the_attempt_timeout_stops_a_cpu_bound_agent_in_the_sandbox() {
    let sandbox_policy = SandboxPolicy::with_limits(Limits {
        fuel: u64::MAX,
        ..Limits::default()
    });
    let agent = RegisteredAgent::new(load("hostile-loop").await, sandbox_policy);
    let mut call = AgentCall::new(&agent, json!({}));
    call.resilience = policy(2, 10, 60_000);
    call.resilience.timeout_ms = 200;
    let outcome = invoker().call(&agent, call, &|_: ResilienceEvent| {}).await;
    let err = outcome.result.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Timeout);
    assert_eq!(err.attempts(), 2);
    // Both attempts reached the sandbox and were stopped by its deadline.
    assert_eq!(outcome.attempts.len(), 2);
    for attempt in &outcome.attempts {
        assert_eq!(
            attempt.result.as_ref().unwrap_err().code(),
            ErrorCode::Timeout
        );
    }
}
