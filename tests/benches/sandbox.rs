//! Sandbox benchmarks: a bench binary that prints its figures.
//!
//! `cargo bench -p orchestr8-tests --bench sandbox` (after `scripts/build-agents`).
//! Set `BENCH_QUICK=1` for a short run.
//!
//! Reports: cold load (compile) and cached load; instantiate + call latency
//! (p50/p95/p99) of a trivial agent and of the demo agent, with the pooling
//! and the on-demand allocator; throughput and peak memory at 10, 100, 1,000
//! and 10,000 concurrent invocations.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{micros, percentile};

use std::path::PathBuf;
use std::time::Instant;

use orchestr8_host::sandbox::{
    Allocator, InvocationRequest, LoadedAgent, Sandbox, SandboxConfig, SandboxPolicy,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn agent_path(file: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../agents/target/wasm32-wasip2/release")
        .join(file);
    assert!(
        path.is_file(),
        "{} missing: run scripts/build-agents",
        path.display()
    );
    path
}

fn sandbox(allocator: Allocator, max_instances: u32, cache: Option<PathBuf>) -> Sandbox {
    Sandbox::new(SandboxConfig {
        allocator,
        max_instances,
        cache_dir: cache,
        ..SandboxConfig::default()
    })
    .unwrap()
}

/// Peak resident memory of this process since the last reset, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

async fn invoke_once(
    sandbox: &Sandbox,
    agent: &LoadedAgent,
    policy: &SandboxPolicy,
    input: serde_json::Value,
) {
    let outcome = sandbox
        .invoke(
            agent,
            policy,
            InvocationRequest::new(input),
            &CancellationToken::new(),
        )
        .await;
    if let Err(e) = outcome.result {
        panic!("benchmark invocation failed: {e}");
    }
}

async fn latency(label: &str, sandbox: &Sandbox, file: &str, input: serde_json::Value, n: usize) {
    let agent = sandbox.load(agent_path(file)).await.unwrap();
    let policy = SandboxPolicy::default();
    for _ in 0..n / 10 {
        invoke_once(sandbox, &agent, &policy, input.clone()).await;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        invoke_once(sandbox, &agent, &policy, input.clone()).await;
        samples.push(start.elapsed());
    }
    samples.sort();
    println!(
        "| {label} | {} | {} | {} |",
        micros(percentile(&samples, 0.50)),
        micros(percentile(&samples, 0.95)),
        micros(percentile(&samples, 0.99)),
    );
}

async fn concurrency(sandbox: &Sandbox, agent: &LoadedAgent, n: usize) {
    let policy = SandboxPolicy::default();
    reset_peak_rss();
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let sandbox = sandbox.clone();
            let agent = agent.clone();
            let policy = policy.clone();
            tokio::spawn(async move {
                sandbox
                    .invoke(
                        &agent,
                        &policy,
                        InvocationRequest::new(json!({ "tag": i })),
                        &CancellationToken::new(),
                    )
                    .await
                    .result
                    .is_ok()
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() {
            ok += 1;
        }
    }
    let elapsed = start.elapsed();
    println!(
        "| {n} | {ok}/{n} | {:.0} ms | {:.0} /s | {:.0} MiB |",
        elapsed.as_secs_f64() * 1000.0,
        n as f64 / elapsed.as_secs_f64(),
        peak_rss_mib()
    );
}

#[tokio::main]
async fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let n = if quick { 500 } else { 5_000 };

    println!("## Load\n");
    let cache = tempfile::tempdir().unwrap();
    let cold = sandbox(Allocator::Pooling, 16, Some(cache.path().to_path_buf()));
    let start = Instant::now();
    cold.load(agent_path("text_stats.wasm")).await.unwrap();
    let compile = start.elapsed();
    let warm = sandbox(Allocator::Pooling, 16, Some(cache.path().to_path_buf()));
    let start = Instant::now();
    warm.load(agent_path("text_stats.wasm")).await.unwrap();
    let cached = start.elapsed();
    println!("| step | time |\n|---|---|");
    println!(
        "| cold load of text-stats (compile + link + info) | {:.1} ms |",
        compile.as_secs_f64() * 1e3
    );
    println!(
        "| cached load of text-stats (deserialize + link + info) | {:.1} ms |",
        cached.as_secs_f64() * 1e3
    );

    println!("\n## Instantiate + call, sequential, {n} calls\n");
    println!("| agent, allocator | p50 | p95 | p99 |\n|---|---|---|---|");
    for (name, allocator) in [
        ("pooling", Allocator::Pooling),
        ("on-demand", Allocator::OnDemand),
    ] {
        let s = sandbox(allocator, 64, Some(cache.path().to_path_buf()));
        latency(
            &format!("trivial (state-probe), {name}"),
            &s,
            "state_probe.wasm",
            json!({"tag": 1}),
            n,
        )
        .await;
        latency(
            &format!("demo (text-stats, 12 words), {name}"),
            &s,
            "text_stats.wasm",
            json!({"text": "The quick brown fox jumps over the lazy dog. The dog sleeps."}),
            n,
        )
        .await;
    }

    println!(
        "\n## Concurrent invocations (trivial agent, pooling, 1,000 sandboxes at most at once)\n"
    );
    println!(
        "| concurrent | succeeded | wall time | throughput | peak RSS |\n|---|---|---|---|---|"
    );
    let s = sandbox(Allocator::Pooling, 1000, Some(cache.path().to_path_buf()));
    let agent = s.load(agent_path("state_probe.wasm")).await.unwrap();
    let levels: &[usize] = if quick {
        &[10, 100, 1000]
    } else {
        &[10, 100, 1_000, 10_000]
    };
    for &level in levels {
        concurrency(&s, &agent, level).await;
    }
}
