//! The chain under paused tokio time: no test sleeps for real.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;

#[derive(Debug, Clone, PartialEq)]
struct Fail(ErrorCode, Option<Duration>);

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fail {}", self.0)
    }
}

impl Coded for Fail {
    fn code(&self) -> ErrorCode {
        self.0
    }
    fn retry_after(&self) -> Option<Duration> {
        self.1
    }
}

fn retryable() -> Fail {
    Fail(ErrorCode::Retryable, None)
}

#[derive(Default)]
struct Recorder(Mutex<Vec<ResilienceEvent>>);

impl EventSink for Recorder {
    fn emit(&self, event: ResilienceEvent) {
        self.0.lock().unwrap().push(event);
    }
}

impl Recorder {
    fn events(&self) -> Vec<ResilienceEvent> {
        self.0.lock().unwrap().clone()
    }
    fn retries(&self) -> Vec<u64> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                ResilienceEvent::RetryScheduled { delay_ms, .. } => Some(delay_ms),
                _ => None,
            })
            .collect()
    }
}

fn policy(max_attempts: u32, threshold: u32) -> ResiliencePolicy {
    ResiliencePolicy {
        retry: RetryPolicy {
            max_attempts,
            base_delay_ms: 1000,
            max_delay_ms: 4000,
            ..RetryPolicy::default()
        },
        circuit_breaker: CircuitBreakerPolicy {
            failure_threshold: threshold,
            reset_timeout_ms: 60_000,
            ..CircuitBreakerPolicy::default()
        },
        timeout_ms: 30_000,
        budget_ms: 1_000_000,
    }
}

fn chain() -> Resilience {
    Resilience::new(fastrand::Rng::with_seed(42))
}

/// Runs `op` with a fresh token and the recorder.
async fn run<T, F, Fut>(
    chain: &Resilience,
    policy: &ResiliencePolicy,
    key: &str,
    events: &Recorder,
    op: F,
) -> Result<T, ResilienceError<Fail>>
where
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, Fail>>,
{
    let cancel = CancellationToken::new();
    let call = Call {
        key,
        cancel: &cancel,
        cancel_grace: Duration::ZERO,
        timeout_grace: Duration::ZERO,
        events,
        agent_digest: None,
        attempts_before: 0,
    };
    chain.run(policy, call, op).await
}

/// Runs `op` on circuit `k`, discarding events.
async fn run_k<T, F, Fut>(
    chain: &Resilience,
    policy: &ResiliencePolicy,
    op: F,
) -> Result<T, ResilienceError<Fail>>
where
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, Fail>>,
{
    run(chain, policy, "k", &Recorder::default(), op).await
}

/// An operation failing its first `failures` attempts, counting calls.
fn flaky(
    failures: u32,
    calls: Arc<AtomicU32>,
) -> impl FnMut(Attempt) -> std::future::Ready<Result<u32, Fail>> {
    move |a: Attempt| {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(if a.number <= failures {
            Err(retryable())
        } else {
            Ok(a.number)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn retryable_failures_are_retried_until_success() {
    let events = Recorder::default();
    let calls = Arc::new(AtomicU32::new(0));
    let result = run(
        &chain(),
        &policy(3, 5),
        "k",
        &events,
        flaky(2, calls.clone()),
    )
    .await;
    assert_eq!(result, Ok(3));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let delays = events.retries();
    assert_eq!(delays.len(), 2);
    assert!(delays[0] <= 1000 && delays[1] <= 2000, "{delays:?}");
    assert!(matches!(
        events.events().last(),
        Some(ResilienceEvent::AttemptSucceeded { attempt: 3, .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn backoff_waits_exactly_the_scheduled_delays() {
    let events = Recorder::default();
    let start = Instant::now();
    let calls = Arc::new(AtomicU32::new(0));
    let _ = run(&chain(), &policy(4, 10), "k", &events, flaky(10, calls)).await;
    let waited: u64 = events.retries().iter().sum();
    assert_eq!(start.elapsed(), Duration::from_millis(waited));
}

#[tokio::test(start_paused = true)]
async fn a_failure_that_is_not_retryable_is_not_retried() {
    let events = Recorder::default();
    let result = run(&chain(), &policy(5, 5), "k", &events, |_| async {
        Err::<(), _>(Fail(ErrorCode::InvalidInput, None))
    })
    .await;
    match result {
        Err(ResilienceError::Failed {
            attempts: 1,
            reason: StopReason::NotRetryable,
            last: AttemptError::Failed(Fail(ErrorCode::InvalidInput, None)),
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(events.retries().is_empty());
}

#[tokio::test(start_paused = true)]
async fn attempts_stop_at_max_attempts_and_the_error_says_so() {
    let calls = Arc::new(AtomicU32::new(0));
    let result = run(
        &chain(),
        &policy(3, 10),
        "k",
        &Recorder::default(),
        flaky(99, calls.clone()),
    )
    .await;
    let err = result.unwrap_err();
    assert_eq!(err.attempts(), 3);
    assert_eq!(err.code(), ErrorCode::Retryable);
    assert!(err.to_string().contains("maxAttempts"), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_slow_attempt_times_out_counts_and_is_retried() {
    let mut p = policy(2, 10);
    p.timeout_ms = 500;
    let events = Recorder::default();
    let result = run(&chain(), &p, "k", &events, |a: Attempt| async move {
        assert_eq!(a.timeout, Duration::from_millis(500));
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok::<_, Fail>(())
    })
    .await;
    let err = result.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Timeout);
    assert_eq!(err.attempts(), 2);
    assert!(events.events().iter().any(|e| matches!(
        e,
        ResilienceEvent::AttemptFailed {
            code: ErrorCode::Timeout,
            counted: true,
            ..
        }
    )));
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_rejects_without_running_and_recovers_through_one_probe() {
    let chain = chain();
    let p = policy(1, 3);
    let events = Recorder::default();
    let calls = Arc::new(AtomicU32::new(0));
    for _ in 0..3 {
        let _ = run(&chain, &p, "agent", &events, flaky(99, calls.clone())).await;
    }
    assert_eq!(chain.breakers().state("agent"), BreakerState::Open);
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    let rejected = run(&chain, &p, "agent", &events, flaky(0, calls.clone())).await;
    assert_eq!(rejected.unwrap_err().code(), ErrorCode::CircuitOpen);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "an open breaker never invokes"
    );

    tokio::time::advance(Duration::from_millis(59_999)).await;
    assert!(
        run(&chain, &p, "agent", &events, flaky(0, calls.clone()))
            .await
            .is_err()
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(
        run(&chain, &p, "agent", &events, flaky(0, calls.clone())).await,
        Ok(1)
    );
    assert_eq!(chain.breakers().state("agent"), BreakerState::Closed);

    let transitions: Vec<(BreakerState, BreakerState)> = events
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ResilienceEvent::BreakerStateChanged { from, to, .. } => Some((from, to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        transitions,
        vec![
            (BreakerState::Closed, BreakerState::Open),
            (BreakerState::Open, BreakerState::HalfOpen),
            (BreakerState::HalfOpen, BreakerState::Closed),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn each_attempt_is_one_breaker_outcome() {
    // Three failed attempts of one call are three failures: with a threshold
    // of three, one call opens the circuit.
    let chain = chain();
    let calls = Arc::new(AtomicU32::new(0));
    let _ = run(
        &chain,
        &policy(3, 3),
        "k",
        &Recorder::default(),
        flaky(99, calls),
    )
    .await;
    assert_eq!(chain.breakers().state("k"), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_the_circuit() {
    let chain = chain();
    let p = policy(1, 1);
    let calls = Arc::new(AtomicU32::new(0));
    let _ = run_k(&chain, &p, flaky(99, calls.clone())).await;
    tokio::time::advance(Duration::from_secs(60)).await;
    let _ = run_k(&chain, &p, flaky(99, calls.clone())).await;
    assert_eq!(chain.breakers().state("k"), BreakerState::Open);
    tokio::time::advance(Duration::from_secs(59)).await;
    let err = run_k(&chain, &p, flaky(0, calls.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CircuitOpen);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn half_open_lets_exactly_one_probe_through_concurrent_callers() {
    let chain = chain();
    let p = policy(1, 1);
    let calls = Arc::new(AtomicU32::new(0));
    let _ = run_k(&chain, &p, flaky(99, calls.clone())).await;
    tokio::time::advance(Duration::from_secs(60)).await;
    calls.store(0, Ordering::SeqCst);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let chain = chain.clone();
            let p = p.clone();
            let calls = calls.clone();
            tokio::spawn(async move {
                run(&chain, &p, "k", &Recorder::default(), move |_| {
                    let calls = calls.clone();
                    async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<_, Fail>(())
                    }
                })
                .await
            })
        })
        .collect();
    let mut ok = 0;
    let mut rejected = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::CircuitOpen);
                rejected += 1;
            }
        }
    }
    assert_eq!((ok, rejected), (1, 9));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(chain.breakers().state("k"), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn cancellation_ends_a_backoff_wait_at_once() {
    let cancel = CancellationToken::new();
    let events = Recorder::default();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        trigger.cancel();
    });
    let mut p = policy(5, 10);
    p.retry.base_delay_ms = 20_000;
    p.retry.max_delay_ms = 20_000;
    let start = Instant::now();
    let call = Call {
        key: "k",
        cancel: &cancel,
        cancel_grace: Duration::ZERO,
        timeout_grace: Duration::ZERO,
        events: &events,
        agent_digest: None,
        attempts_before: 0,
    };
    let calls = Arc::new(AtomicU32::new(0));
    let result = chain().run(&p, call, flaky(99, calls)).await;
    assert_eq!(result.unwrap_err().code(), ErrorCode::Cancelled);
    assert_eq!(start.elapsed(), Duration::from_millis(10));
}

#[tokio::test(start_paused = true)]
async fn cancellation_interrupts_a_running_attempt_after_the_grace_period() {
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        trigger.cancel();
    });
    let call = Call {
        key: "k",
        cancel: &cancel,
        cancel_grace: Duration::from_millis(50),
        timeout_grace: Duration::ZERO,
        events: &ignore_events,
        agent_digest: None,
        attempts_before: 0,
    };
    let start = Instant::now();
    let saw_cancel = Arc::new(AtomicU32::new(0));
    let seen = saw_cancel.clone();
    let result = chain()
        .run(&policy(3, 10), call, move |a: Attempt| {
            let seen = seen.clone();
            async move {
                // The attempt's token fires at once; this one ignores it.
                a.cancel.cancelled().await;
                seen.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok::<_, Fail>(())
            }
        })
        .await;
    assert_eq!(
        result.unwrap_err(),
        ResilienceError::Cancelled { attempts: 1 }
    );
    assert_eq!(saw_cancel.load(Ordering::SeqCst), 1);
    assert_eq!(start.elapsed(), Duration::from_millis(150));
}

#[tokio::test(start_paused = true)]
async fn retries_never_exceed_the_budget_and_the_error_says_so() {
    let mut p = policy(10, 100);
    p.budget_ms = 2_500;
    p.retry.base_delay_ms = 1_000;
    p.retry.max_delay_ms = 1_000;
    let events = Recorder::default();
    let start = Instant::now();
    let result = run(&chain(), &p, "k", &events, |_| async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        Err::<(), _>(retryable())
    })
    .await;
    let err = result.unwrap_err();
    assert_eq!(err.code(), ErrorCode::BudgetExhausted);
    assert!(err.to_string().contains("2500 ms"), "{err}");
    assert!(
        err.to_string().contains("last error: fail RETRYABLE"),
        "{err}"
    );
    assert!(start.elapsed() <= Duration::from_millis(2_500));
    assert!(events.events().iter().any(|e| matches!(
        e,
        ResilienceEvent::BudgetExhausted {
            budget_ms: 2_500,
            ..
        }
    )));
}

#[tokio::test(start_paused = true)]
async fn the_last_attempt_is_cut_to_the_budget_left() {
    let mut p = policy(2, 100);
    p.budget_ms = 1_000;
    p.timeout_ms = 800;
    p.retry.base_delay_ms = 100;
    p.retry.max_delay_ms = 100;
    let timeouts = Arc::new(Mutex::new(Vec::new()));
    let seen = timeouts.clone();
    let _ = run(
        &chain(),
        &p,
        "k",
        &Recorder::default(),
        move |a: Attempt| {
            seen.lock().unwrap().push(a.timeout);
            async { Err::<(), _>(Fail(ErrorCode::Timeout, None)) }
        },
    )
    .await;
    let timeouts = timeouts.lock().unwrap().clone();
    assert_eq!(timeouts[0], Duration::from_millis(800));
    assert!(timeouts[1] <= Duration::from_millis(1_000));
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_hint_stretches_the_delay() {
    let events = Recorder::default();
    let mut first = true;
    let result = run(&chain(), &policy(2, 10), "k", &events, move |_| {
        let fail = std::mem::take(&mut first);
        async move {
            if fail {
                Err(Fail(
                    ErrorCode::Retryable,
                    Some(Duration::from_millis(3_500)),
                ))
            } else {
                Ok(())
            }
        }
    })
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(events.retries(), vec![3_500]);
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn calls_never_exceed_max_attempts_nor_the_breaker_threshold(
        max_attempts in 1u32..=10,
        threshold in 1u32..=10,
        failures in 0u32..12,
        seed in any::<u64>(),
    ) {
        let rt = paused_runtime();
        let calls = Arc::new(AtomicU32::new(0));
        let result = rt.block_on(async {
            let chain = Resilience::new(fastrand::Rng::with_seed(seed));
            run(&chain, &policy(max_attempts, threshold), "k", &Recorder::default(), flaky(failures, calls.clone())).await
        });
        let n = calls.load(Ordering::SeqCst);
        prop_assert!(n <= max_attempts.min(threshold), "{n} calls");
        if failures < max_attempts.min(threshold) {
            prop_assert_eq!(result, Ok(failures + 1));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn absurd_durations_neither_panic_nor_validate() {
    let mut p = policy(2, 10);
    p.budget_ms = u64::MAX;
    p.retry.max_delay_ms = u64::MAX;
    p.retry.base_delay_ms = u64::MAX / 2;
    assert!(p.validate().is_err());
    let result = run_k(&chain(), &p, |_| async { Err::<(), _>(retryable()) }).await;
    assert!(result.is_err());
}
