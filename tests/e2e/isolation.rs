//! One caller cannot hurt the others through what sandboxes share: host
//! memory (records, resources, the memory budget), outbound connections,
//! writable directories, a bulkhead, the circuit breaker. Each test runs the
//! `hostile-tenant` agent at one of its attacks.

use std::sync::atomic::Ordering;
use std::time::Duration;

use orchestr8_host::call::{AgentCall, Invoker, RegisteredAgent};
use orchestr8_host::resilience::{
    CircuitBreakerPolicy, Resilience, ResiliencePolicy, RetryPolicy, ignore_events,
};
use orchestr8_host::sandbox::{
    Capability, DirGrant, InvocationOutcome, InvocationRequest, LoadedAgent, Sandbox,
    SandboxConfig, SandboxPolicy,
};
use orchestr8_host::{Coded, ErrorCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{SilentServer, TestServer, agent_path, call, sandbox};

const TENANT: &str = "hostile-tenant";

fn writable(
    dir: &std::path::Path,
    quota_bytes: Option<u64>,
    quota_files: Option<u64>,
) -> SandboxPolicy {
    let mut policy = SandboxPolicy::default();
    policy.grants.dirs.push(DirGrant {
        host_path: dir.to_path_buf(),
        guest_path: "/out".into(),
        writable: true,
        quota_bytes,
        quota_files,
    });
    policy
}

#[tokio::test]
async fn exit_inside_process_is_reported_with_its_status() {
    let outcome = call(
        TENANT,
        json!({"attack": "exit", "status": 1}),
        &SandboxPolicy::default(),
    )
    .await;
    let error = outcome.result.unwrap_err();
    assert_eq!(error.code(), ErrorCode::Trap);
    assert_eq!(
        error.to_string(),
        "agent crashed: the agent called exit(1) instead of returning a result"
    );
}

#[tokio::test]
async fn a_connection_hog_is_refused_past_its_share_and_its_neighbour_is_served() {
    let silent = SilentServer::start().await;
    let mut hog_policy = SandboxPolicy::default();
    silent.grant(&mut hog_policy);
    hog_policy.limits.timeout_ms = 4_000;
    let hog_input = json!({
        "attack": "connections",
        "authority": format!("127.0.0.1:{}", silent.port),
        "count": 300,
    });
    let hog = tokio::spawn(async move { call(TENANT, hog_input, &hog_policy).await });

    // Once the hog holds its whole share, a neighbour still gets through.
    let share = sandbox().config().max_connections_per_call;
    while silent.accepted.load(Ordering::SeqCst) < share {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let server = TestServer::start("neighbour").await;
    let mut policy = SandboxPolicy::default();
    server.grant(&mut policy);
    let url = format!("http://127.0.0.1:{}/", server.port);
    let neighbour = call("hostile-fetch", json!({ "url": url }), &policy).await;
    assert_eq!(neighbour.result.unwrap()["body"], "neighbour");
    assert!(!hog.is_finished(), "the hog should still be waiting");

    let hog = hog.await.unwrap();
    assert_eq!(silent.accepted.load(Ordering::SeqCst), share);
    let error = hog.result.unwrap_err();
    assert_eq!(error.code(), ErrorCode::Timeout);
    assert!(
        error
            .to_string()
            .contains("waiting for an outbound HTTP response"),
        "{error}"
    );
    assert_eq!(
        hog.denials.len() as u64 + hog.denials_dropped,
        300 - share as u64
    );
    assert!(
        hog.denials[0].reason.contains("its share"),
        "{:?}",
        hog.denials[0]
    );
}

/// A sandbox of its own, with a small memory budget.
fn small_sandbox(budget_mib: u64) -> Sandbox {
    Sandbox::new(SandboxConfig {
        max_instances: 8,
        max_memory_bytes: 64 << 20,
        memory_budget_bytes: budget_mib << 20,
        cache_dir: None,
        ..SandboxConfig::default()
    })
    .unwrap()
}

fn fill(mib: u64, hold_ms: u64, queue_timeout: Duration) -> InvocationRequest {
    let mut request =
        InvocationRequest::new(json!({"attack": "fill", "mib": mib, "hold_ms": hold_ms}));
    request.queue_timeout = queue_timeout;
    request
}

/// After `delay`, a quick call that waits at most 100 ms for room to run.
async fn impatient(
    sandbox: &Sandbox,
    agent: &LoadedAgent,
    policy: &SandboxPolicy,
    delay: Duration,
) -> InvocationOutcome {
    tokio::time::sleep(delay).await;
    let request = fill(1, 0, Duration::from_millis(100));
    sandbox
        .invoke(agent, policy, request, &CancellationToken::new())
        .await
}

#[tokio::test]
async fn calls_past_the_memory_budget_wait_then_are_refused_as_overloaded() {
    let sandbox = small_sandbox(128);
    let agent = sandbox.load(agent_path(TENANT)).await.unwrap();
    let policy = SandboxPolicy::default(); // 64 MiB: two fit in 128 MiB
    let cancel = CancellationToken::new();
    let long = Duration::from_secs(30);
    let holders = [
        sandbox.invoke(&agent, &policy, fill(8, 1500, long), &cancel),
        sandbox.invoke(&agent, &policy, fill(8, 1500, long), &cancel),
    ];
    let refused = impatient(&sandbox, &agent, &policy, Duration::from_millis(300));
    let waiter = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sandbox
            .invoke(&agent, &policy, fill(1, 0, long), &cancel)
            .await
    };
    let ([a, b], refused, waited) = tokio::join!(futures_all(holders), refused, waiter);
    assert_eq!(a.result.unwrap()["filled"], 8);
    assert_eq!(b.result.unwrap()["filled"], 8);
    let error = refused.result.unwrap_err();
    assert_eq!(error.code(), ErrorCode::Overloaded);
    assert!(
        error.to_string().contains("memory budget of 128 MiB"),
        "{error}"
    );
    assert_eq!(error.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(waited.result.unwrap()["filled"], 1);
}

#[tokio::test]
async fn a_bulkhead_lets_one_agent_run_only_so_many_calls_at_once() {
    let sandbox = small_sandbox(1024);
    let agent = sandbox.load(agent_path(TENANT)).await.unwrap();
    let mut policy = SandboxPolicy::default();
    policy.limits.max_concurrency = Some(1);
    let cancel = CancellationToken::new();
    let holder = sandbox.invoke(
        &agent,
        &policy,
        fill(1, 1000, Duration::from_secs(30)),
        &cancel,
    );
    let refused = impatient(&sandbox, &agent, &policy, Duration::from_millis(200));
    let (held, refused) = tokio::join!(holder, refused);
    assert!(held.result.is_ok());
    let error = refused.result.unwrap_err();
    assert_eq!(error.code(), ErrorCode::Overloaded);
    assert!(error.to_string().contains("maxConcurrency of 1"), "{error}");
}

async fn futures_all<F: std::future::Future>(futures: [F; 2]) -> [F::Output; 2] {
    let [a, b] = futures;
    let (a, b) = tokio::join!(a, b);
    [a, b]
}

#[tokio::test]
async fn writes_past_a_grants_quota_are_refused_as_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let policy = writable(dir.path(), Some(1 << 20), None);
    let outcome = call(
        TENANT,
        json!({"attack": "write", "dir": "/out", "files": 10, "bytes": 300_000}),
        &policy,
    )
    .await;
    let out = outcome.result.unwrap();
    assert_eq!(out["written"], 3, "{out}");
    assert!(out["error"].is_string(), "{out}");
    assert_eq!(outcome.denials[0].capability, Capability::File);
    assert!(outcome.denials[0].reason.contains("quota of 1048576 bytes"));
    let used: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(used <= 1 << 20, "{used}");

    // The next call finds the grant as full as the last one left it.
    let again = call(
        TENANT,
        json!({"attack": "write", "dir": "/out", "files": 1, "bytes": 300_000}),
        &policy,
    )
    .await;
    assert_eq!(again.result.unwrap()["written"], 0);
}

#[tokio::test]
async fn files_past_a_grants_file_quota_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = call(
        TENANT,
        json!({"attack": "write", "dir": "/out", "files": 10, "bytes": 1}),
        &writable(dir.path(), None, Some(4)),
    )
    .await;
    assert_eq!(outcome.result.unwrap()["written"], 4);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
    assert!(outcome.denials[0].reason.contains("quota of 4 files"));
}

#[tokio::test]
async fn links_may_point_only_down_into_their_grant() {
    let dir = tempfile::tempdir().unwrap();
    let policy = writable(dir.path(), None, None);
    let out =
        |target: &str, link: &str| json!({"attack": "symlink", "link": link, "target": target});
    let escape = call(TENANT, out("../../../etc/passwd", "escape"), &policy).await;
    assert_eq!(escape.result.unwrap()["linked"], false);
    assert!(dir.path().join("escape").symlink_metadata().is_err());
    assert!(escape.denials[0].reason.contains("only point down"));
    let absolute = call(TENANT, out("/etc/passwd", "abs"), &policy).await;
    assert_eq!(absolute.result.unwrap()["linked"], false);

    let inside = call(TENANT, out("sub/file", "fine"), &policy).await;
    assert_eq!(inside.result.unwrap()["linked"], true);
    assert!(
        dir.path()
            .join("fine")
            .symlink_metadata()
            .unwrap()
            .is_symlink()
    );
}

/// A breaker that opens after two counted failures, and single attempts.
fn breaker_call(agent: &RegisteredAgent, input: Value) -> AgentCall {
    let mut call = AgentCall::new(agent, input);
    call.resilience = ResiliencePolicy {
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        circuit_breaker: CircuitBreakerPolicy {
            failure_threshold: 2,
            reset_timeout_ms: 60_000,
            ..CircuitBreakerPolicy::default()
        },
        timeout_ms: 300,
        ..ResiliencePolicy::default()
    };
    call
}

#[tokio::test]
async fn one_callers_heavy_input_does_not_open_the_shared_breaker_but_a_hung_upstream_does() {
    let invoker = Invoker::new(sandbox(), Resilience::default());
    let silent = SilentServer::start().await;
    let mut policy = SandboxPolicy::default();
    silent.grant(&mut policy);
    let tenant = sandbox().load(agent_path(TENANT)).await.unwrap();
    let agent = RegisteredAgent::new(tenant, policy);

    // Heavy input: the agent computes past its deadline, three times over.
    for _ in 0..3 {
        let call = breaker_call(&agent, json!({"attack": "burn", "ms": 5_000}));
        let outcome = invoker.call(&agent, call, &ignore_events).await;
        assert_eq!(outcome.result.unwrap_err().code(), ErrorCode::Timeout);
    }
    let quick = breaker_call(&agent, json!({"attack": "burn", "ms": 1}));
    let outcome = invoker.call(&agent, quick, &ignore_events).await;
    assert!(outcome.result.is_ok(), "the circuit must still be closed");

    // A hung upstream: two timeouts while waiting open the circuit.
    let hang = json!({
        "attack": "connections",
        "authority": format!("127.0.0.1:{}", silent.port),
        "count": 1,
    });
    for _ in 0..2 {
        let outcome = invoker
            .call(&agent, breaker_call(&agent, hang.clone()), &ignore_events)
            .await;
        assert_eq!(outcome.result.unwrap_err().code(), ErrorCode::Timeout);
    }
    let quick = breaker_call(&agent, json!({"attack": "burn", "ms": 1}));
    let outcome = invoker.call(&agent, quick, &ignore_events).await;
    assert_eq!(outcome.result.unwrap_err().code(), ErrorCode::CircuitOpen);
}
