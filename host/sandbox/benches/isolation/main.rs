//! Isolation benchmarks: what calls in flight cost a neighbour in the same
//! host process. Each figure is printed beside its own baseline measured in
//! the same run, and beside the same load with the isolation it measures
//! turned off, so the ratios mean the same on any machine.
//!
//! `cargo bench -p orchestr8-sandbox --bench isolation` (after
//! `scripts/build-agents`). Set `BENCH_QUICK=1` for a short run.
//!
//! Reports:
//! - noisy neighbours: a normal call's p50/p95 with 20 hostile calls in
//!   flight (burning CPU, flooding logs, filling memory, all within their
//!   limits), against the same call alone, with and without the
//!   long-running lanes;
//! - the memory budget: peak RSS of the process while 50 calls each fill
//!   60 MiB, under a 1 GiB budget and without one;
//! - a connection hog: a neighbour's request latency while one call holds
//!   300 requests to a server that never answers, with the per-call share
//!   and without it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/shared.rs"]
mod shared;
#[path = "../../../../tests/benches/common/stats.rs"]
mod stats;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use orchestr8_sandbox::{
    InvocationRequest, LoadedAgent, Sandbox, SandboxConfig, SandboxPolicy,
    default_long_running_lanes,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use shared::{agent_path, peak_rss_mib, reset_peak_rss, rss_mib};
use stats::{micros, percentile, ratio};

fn sandbox(config: SandboxConfig) -> Sandbox {
    Sandbox::new(SandboxConfig {
        max_instances: 128,
        cache_dir: Some(std::env::temp_dir().join("orchestr8-bench-isolation-cache")),
        ..config
    })
    .unwrap()
}

async fn invoke(
    sandbox: &Sandbox,
    agent: &LoadedAgent,
    policy: &SandboxPolicy,
    input: Value,
) -> bool {
    sandbox
        .invoke(
            agent,
            policy,
            InvocationRequest::new(input),
            &CancellationToken::new(),
        )
        .await
        .result
        .is_ok()
}

/// `n` calls of `agent`, each in a task of its own as a server's request
/// would be, a millisecond apart: their p50 and p95, from the moment the
/// task is spawned (waiting for a runtime thread included) to its answer.
async fn latencies(
    sandbox: &Sandbox,
    agent: &LoadedAgent,
    policy: &SandboxPolicy,
    input: &Value,
    n: usize,
) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let (sandbox, agent, policy, input) = (
            sandbox.clone(),
            agent.clone(),
            policy.clone(),
            input.clone(),
        );
        let start = Instant::now();
        let ok = tokio::spawn(async move { invoke(&sandbox, &agent, &policy, input).await })
            .await
            .unwrap();
        samples.push(start.elapsed());
        assert!(ok);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    samples.sort();
    (percentile(&samples, 0.5), percentile(&samples, 0.95))
}

/// Keeps `n` calls of `agent` with `input` in flight until `stop`.
fn keep_in_flight(
    sandbox: &Sandbox,
    agent: &LoadedAgent,
    policy: &SandboxPolicy,
    input: &Value,
    n: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let (sandbox, agent, policy, input, stop) = (
                sandbox.clone(),
                agent.clone(),
                policy.clone(),
                input.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    invoke(&sandbox, &agent, &policy, input.clone()).await;
                }
            })
        })
        .collect()
}

async fn noisy_neighbours(quick: bool) {
    let n = if quick { 100 } else { 400 };
    println!(
        "\n## Noisy neighbours: `text-stats` p50 / p95 with 20 hostile calls in flight ({n} calls, {} long-running lanes)\n",
        default_long_running_lanes()
    );
    println!(
        "| in flight | alone | with lanes | ratio p50 / p95 | without lanes | ratio p50 / p95 |\n|---|---|---|---|---|---|"
    );
    let lanes = sandbox(SandboxConfig::default());
    let no_lanes = sandbox(SandboxConfig {
        long_running_lanes: 1024,
        ..SandboxConfig::default()
    });
    let normal_input = json!({"text": "the quick brown fox jumps over the lazy dog"});
    let mut hog_limits = SandboxPolicy::default();
    hog_limits.limits.fuel = 200_000_000;
    let loads: [(&str, &str, Value); 3] = [
        (
            "burning CPU",
            "hostile_tenant.wasm",
            json!({"attack": "burn", "ms": 1000}),
        ),
        ("flooding logs", "hostile_logs.wasm", json!({})),
        (
            "filling memory",
            "hostile_tenant.wasm",
            json!({"attack": "fill", "mib": 56, "hold_ms": 0}),
        ),
    ];
    for (label, file, input) in loads {
        let mut row = Vec::new();
        for sandbox in [&lanes, &no_lanes] {
            let normal = sandbox.load(agent_path("text_stats.wasm")).await.unwrap();
            let hostile = sandbox.load(agent_path(file)).await.unwrap();
            let policy = SandboxPolicy::default();
            latencies(sandbox, &normal, &policy, &normal_input, 50).await;
            let alone = latencies(sandbox, &normal, &policy, &normal_input, n).await;
            let stop = Arc::new(AtomicBool::new(false));
            let tasks = keep_in_flight(sandbox, &hostile, &hog_limits, &input, 20, &stop);
            tokio::time::sleep(Duration::from_millis(300)).await;
            let loaded = latencies(sandbox, &normal, &policy, &normal_input, n).await;
            stop.store(true, Ordering::Relaxed);
            for t in tasks {
                t.abort();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            row.push((alone, loaded));
        }
        let ((alone, with), (_, without)) = (row[0], row[1]);
        println!(
            "| 20 {label} | {} / {} | {} / {} | {} / {} | {} / {} | {} / {} |",
            micros(alone.0),
            micros(alone.1),
            micros(with.0),
            micros(with.1),
            ratio(with.0, alone.0),
            ratio(with.1, alone.1),
            micros(without.0),
            micros(without.1),
            ratio(without.0, row[1].0.0),
            ratio(without.1, row[1].0.1),
        );
    }
}

async fn memory_budget(quick: bool) {
    let calls = if quick { 20 } else { 50 };
    println!("\n## Memory budget: {calls} calls at once, each filling 60 MiB (cap 64 MiB)\n");
    println!(
        "| budget | RSS before | peak RSS of the process | succeeded | took |\n|---|---|---|---|---|"
    );
    for budget_mib in [1024u64, 64 * 1024] {
        let sandbox = sandbox(SandboxConfig {
            memory_budget_bytes: budget_mib << 20,
            ..SandboxConfig::default()
        });
        let agent = sandbox
            .load(agent_path("hostile_tenant.wasm"))
            .await
            .unwrap();
        let policy = SandboxPolicy::default();
        let input = json!({"attack": "fill", "mib": 60, "hold_ms": 200});
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = rss_mib();
        reset_peak_rss();
        let start = Instant::now();
        let tasks: Vec<_> = (0..calls)
            .map(|_| {
                let (sandbox, agent, policy, input) = (
                    sandbox.clone(),
                    agent.clone(),
                    policy.clone(),
                    input.clone(),
                );
                tokio::spawn(async move { invoke(&sandbox, &agent, &policy, input).await })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            ok += usize::from(t.await.unwrap());
        }
        let label = if budget_mib >= 64 * 1024 {
            "none (64 GiB)".to_string()
        } else {
            format!("{budget_mib} MiB")
        };
        println!(
            "| {label} | {before:.0} MiB | {:.0} MiB | {ok} of {calls} | {:.2} s |",
            peak_rss_mib(),
            start.elapsed().as_secs_f64()
        );
    }
}

/// Answers every request at once with a short body.
async fn answering_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    port
}

/// Accepts connections and never answers; counts them.
async fn silent_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (port, accepted)
}

async fn connection_hog(quick: bool) {
    let n = if quick { 20 } else { 100 };
    println!(
        "\n## Connection hog: a neighbour's GET while one call holds 300 requests to a silent server ({n} GETs)\n"
    );
    println!(
        "| per-call share | neighbour alone p50 / p95 | beside the hog p50 / p95 | added at p95 |\n|---|---|---|---|"
    );
    let answering = answering_server().await;
    for share in [16usize, 256] {
        let (silent, accepted) = silent_server().await;
        let sandbox = sandbox(SandboxConfig {
            max_connections_per_call: share,
            max_connections_per_agent: share,
            ..SandboxConfig::default()
        });
        let fetch = sandbox
            .load(agent_path("hostile_fetch.wasm"))
            .await
            .unwrap();
        let tenant = sandbox
            .load(agent_path("hostile_tenant.wasm"))
            .await
            .unwrap();
        let mut policy = SandboxPolicy::default();
        policy
            .grants
            .allowed_hosts
            .push(format!("127.0.0.1:{answering}").parse().unwrap());
        let input = json!({"url": format!("http://127.0.0.1:{answering}/")});
        latencies(&sandbox, &fetch, &policy, &input, 10).await;
        let alone = latencies(&sandbox, &fetch, &policy, &input, n).await;

        let mut hog_policy = SandboxPolicy::default();
        hog_policy
            .grants
            .allowed_hosts
            .push(format!("127.0.0.1:{silent}").parse().unwrap());
        // Long enough to outlast the neighbour's measurement.
        hog_policy.limits.timeout_ms = 60_000;
        let hog_input = json!({"attack": "connections", "authority": format!("127.0.0.1:{silent}"), "count": 300});
        let hog = {
            let (sandbox, tenant) = (sandbox.clone(), tenant.clone());
            tokio::spawn(async move { invoke(&sandbox, &tenant, &hog_policy, hog_input).await })
        };
        while accepted.load(Ordering::SeqCst) < share.min(256) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Without a share the hog holds every process-wide slot: a GET waits
        // for the hog's deadline, so one is enough to show it.
        let beside = if share >= 256 {
            let start = Instant::now();
            let request = async { invoke(&sandbox, &fetch, &policy, input.clone()).await };
            match tokio::time::timeout(Duration::from_secs(5), request).await {
                Ok(_) => (start.elapsed(), start.elapsed()),
                Err(_) => (Duration::from_secs(5), Duration::from_secs(5)),
            }
        } else {
            latencies(&sandbox, &fetch, &policy, &input, n).await
        };
        hog.abort();
        let added = beside.1.saturating_sub(alone.1);
        let waited = if share >= 256 && beside.1 >= Duration::from_secs(5) {
            "≥ 5 s (still waiting)".to_string()
        } else {
            format!("{:.2} ms", added.as_secs_f64() * 1e3)
        };
        println!(
            "| {} | {} / {} | {} / {} | {waited} |",
            if share >= 256 {
                "none (256, the process cap)".to_string()
            } else {
                share.to_string()
            },
            micros(alone.0),
            micros(alone.1),
            micros(beside.0),
            micros(beside.1),
        );
    }
}

#[tokio::main]
async fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    println!("# orchestr8 isolation benchmarks");
    noisy_neighbours(quick).await;
    memory_budget(quick).await;
    connection_hog(quick).await;
}
