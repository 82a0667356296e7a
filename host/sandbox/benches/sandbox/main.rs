//! Sandbox benchmarks: a bench binary that prints its figures, each beside
//! bare wasmtime doing the same work on the same engine in the same run, so
//! every figure is also a ratio that means the same on any machine.
//!
//! `cargo bench -p orchestr8-sandbox --bench sandbox` (after
//! `scripts/build-agents`). Set `BENCH_QUICK=1` for a short run.
//!
//! Reports: cold load (compile) and cached load; instantiate + call latency
//! (p50/p95/p99) of a trivial agent and of the demo agent, and of trivial
//! Python and TypeScript agents, with the pooling and the on-demand
//! allocator; for the Python and TypeScript components, their size, cold
//! compile, recompile of a rebuild (same code, new digest: the function
//! cache at work), load from the cache (what the first call after
//! `orchestr8 build` pays) and peak memory per sandbox at 100 concurrent
//! calls;
//! throughput and peak memory at 10, 100, 1,000 and 10,000 concurrent
//! invocations (peak RSS of the whole process, bare runs included). The baseline ([`bare`]) runs on the
//! sandbox's own engine: same allocator, pool and settings (bare compiles
//! run on a twin engine without the compile cache, which would otherwise
//! be warm for orchestr8's cold load).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bare;
#[path = "../common/shared.rs"]
mod shared;
#[path = "../../../../tests/benches/common/stats.rs"]
mod stats;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestr8_sandbox::{
    Allocator, InvocationRequest, LoadedAgent, Sandbox, SandboxConfig, SandboxPolicy,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wasmtime::component::Component;

use bare::Bare;
use shared::{agent_path, peak_rss_mib, reset_peak_rss, rss_mib};
use stats::{micros, percentile, ratio};

fn sandbox(allocator: Allocator, max_instances: u32, cache: Option<PathBuf>) -> Sandbox {
    Sandbox::new(SandboxConfig {
        allocator,
        max_instances,
        cache_dir: cache,
        ..SandboxConfig::default()
    })
    .unwrap()
}

/// The same component, bare, on the sandbox's engine.
fn bare(sandbox: &Sandbox, path: &Path) -> Bare {
    let component = Component::from_file(sandbox.engine(), path).unwrap();
    Bare::new(
        sandbox.engine(),
        &component,
        sandbox.config().max_instances as usize,
    )
    .unwrap()
}

async fn invoke_once(sandbox: &Sandbox, agent: &LoadedAgent, input: Value) -> bool {
    let outcome = sandbox
        .invoke(
            agent,
            &SandboxPolicy::default(),
            InvocationRequest::new(input),
            &CancellationToken::new(),
        )
        .await;
    outcome.result.is_ok()
}

fn time_load(label: &str, bare: Duration, sandbox: Duration) {
    println!(
        "| {label} | {:.1} ms | {:.1} ms | {} |",
        bare.as_secs_f64() * 1e3,
        sandbox.as_secs_f64() * 1e3,
        ratio(sandbox, bare)
    );
}

async fn load(cache: &Path) {
    let path = agent_path("text_stats.wasm");
    println!("| step | bare wasmtime | orchestr8 | ratio |\n|---|---|---|---|");

    // Bare wasmtime compiles on an engine of its own: on the sandbox's, it
    // would fill the function cache the cold load is to start without.
    let baseline = sandbox(Allocator::Pooling, 16, None);
    let cold = sandbox(Allocator::Pooling, 16, Some(cache.to_path_buf()));
    let start = Instant::now();
    let component = Component::from_file(baseline.engine(), &path).unwrap();
    let bare_compile = start.elapsed();
    let start = Instant::now();
    cold.load(&path).await.unwrap();
    time_load(
        "cold load of text-stats (compile; orchestr8 also links, calls `info` and caches)",
        bare_compile,
        start.elapsed(),
    );

    let bytes = component.serialize().unwrap();
    let start = Instant::now();
    // SAFETY: the bytes were made by `serialize` on this very engine a moment
    // ago, which is what `deserialize` requires.
    #[allow(unsafe_code)]
    let _ = unsafe { Component::deserialize(baseline.engine(), &bytes) }.unwrap();
    let bare_deserialize = start.elapsed();
    let warm = sandbox(Allocator::Pooling, 16, Some(cache.to_path_buf()));
    let start = Instant::now();
    warm.load(&path).await.unwrap();
    time_load(
        "cached load of text-stats (deserialize; orchestr8 reads it from disk, links, calls `info`)",
        bare_deserialize,
        start.elapsed(),
    );
}

/// A Python or TypeScript component: size, compile and cached-load times
/// beside bare wasmtime's, and the memory 100 concurrent calls add, per call.
async fn guest_language(label: &str, file: &str, input: Value) {
    let path = agent_path(file);
    let size = std::fs::metadata(&path).unwrap().len() as f64 / (1 << 20) as f64;
    let cache = tempfile::tempdir().unwrap();
    let baseline = sandbox(Allocator::Pooling, 128, None);
    let cold = sandbox(Allocator::Pooling, 128, Some(cache.path().to_path_buf()));
    let start = Instant::now();
    let component = Component::from_file(baseline.engine(), &path).unwrap();
    let bare_compile = start.elapsed();
    let start = Instant::now();
    cold.load(&path).await.unwrap();
    let compile = start.elapsed();
    let bytes = component.serialize().unwrap();
    let start = Instant::now();
    // SAFETY: made by `serialize` on this very engine a moment ago.
    #[allow(unsafe_code)]
    let _ = unsafe { Component::deserialize(baseline.engine(), &bytes) }.unwrap();
    let bare_cached = start.elapsed();
    let warm = sandbox(Allocator::Pooling, 128, Some(cache.path().to_path_buf()));
    let start = Instant::now();
    let agent = warm.load(&path).await.unwrap();
    let cached = start.elapsed();
    // A rebuild as these toolchains make it: the same code under a new
    // digest (here, a custom section added), so only the function cache helps.
    let mut rebuilt = std::fs::read(&path).unwrap();
    rebuilt.extend_from_slice(&[0, 7, 5, b'b', b'u', b'i', b'l', b'd', 1]);
    let rebuilt_path = cache.path().join("rebuilt.wasm");
    std::fs::write(&rebuilt_path, rebuilt).unwrap();
    let start = Instant::now();
    warm.load(&rebuilt_path).await.unwrap();
    let recompile = start.elapsed();

    const CONCURRENT: usize = 100;
    assert!(invoke_once(&warm, &agent, input.clone()).await);
    let before = rss_mib();
    reset_peak_rss();
    let (ok, _) = concurrently(CONCURRENT, |_| {
        let sandbox = warm.clone();
        let agent = agent.clone();
        let input = input.clone();
        async move { invoke_once(&sandbox, &agent, input).await }
    })
    .await;
    assert_eq!(ok, CONCURRENT);
    let per_call = (peak_rss_mib() - before).max(0.0) / CONCURRENT as f64;
    println!(
        "| {label} | {size:.1} MB | {:.2} s / {:.2} s | {:.2} s | {:.0} ms / {:.0} ms ({}) | {per_call:.2} MiB |",
        bare_compile.as_secs_f64(),
        compile.as_secs_f64(),
        recompile.as_secs_f64(),
        bare_cached.as_secs_f64() * 1e3,
        cached.as_secs_f64() * 1e3,
        ratio(cached, bare_cached),
    );
}

/// Sequential calls, bare and through the sandbox in alternating rounds so
/// that a drift of the machine touches both alike.
async fn latency(label: &str, sandbox: &Sandbox, file: &str, input: Value, n: usize) {
    let agent = sandbox.load(agent_path(file)).await.unwrap();
    let bare = bare(sandbox, &agent_path(file));
    const ROUNDS: usize = 10;
    for _ in 0..n / 10 {
        assert!(invoke_once(sandbox, &agent, input.clone()).await);
        bare.call(&input).await.unwrap();
    }
    let mut ours = Vec::with_capacity(n);
    let mut base = Vec::with_capacity(n);
    for _ in 0..ROUNDS {
        for _ in 0..n / ROUNDS {
            let start = Instant::now();
            bare.call(&input).await.unwrap();
            base.push(start.elapsed());
        }
        for _ in 0..n / ROUNDS {
            let start = Instant::now();
            assert!(invoke_once(sandbox, &agent, input.clone()).await);
            ours.push(start.elapsed());
        }
    }
    ours.sort();
    base.sort();
    println!(
        "| {label} | {} | {} | {} | {} | {} | {} |",
        micros(percentile(&base, 0.50)),
        micros(percentile(&base, 0.95)),
        micros(percentile(&ours, 0.50)),
        micros(percentile(&ours, 0.95)),
        micros(percentile(&ours, 0.99)),
        ratio(percentile(&ours, 0.95), percentile(&base, 0.95)),
    );
}

/// `n` invocations started at once; how long until all are done.
async fn concurrently<F, Fut>(n: usize, call: F) -> (usize, Duration)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(call(i))).collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() {
            ok += 1;
        }
    }
    (ok, start.elapsed())
}

/// The best of three alternating runs of each, so neither side gets the
/// cold first run.
async fn concurrency(sandbox: &Sandbox, agent: &LoadedAgent, bare: &Arc<Bare>, n: usize) {
    let mut bare_wall = Duration::MAX;
    let mut wall = Duration::MAX;
    let mut ok = n;
    reset_peak_rss();
    for _ in 0..3 {
        let (bare_ok, took) = concurrently(n, |i| {
            let bare = bare.clone();
            async move { bare.call(&json!({ "tag": i })).await.is_ok() }
        })
        .await;
        assert_eq!(bare_ok, n);
        bare_wall = bare_wall.min(took);
        let (succeeded, took) = concurrently(n, |i| {
            let sandbox = sandbox.clone();
            let agent = agent.clone();
            async move { invoke_once(&sandbox, &agent, json!({ "tag": i })).await }
        })
        .await;
        ok = ok.min(succeeded);
        wall = wall.min(took);
    }
    let per_sec = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "| {n} | {:.0} /s | {ok}/{n} | {:.1} ms | {:.0} /s | {:.0} MiB | {} |",
        per_sec(bare_wall),
        wall.as_secs_f64() * 1000.0,
        per_sec(wall),
        peak_rss_mib(),
        ratio(wall, bare_wall),
    );
}

#[tokio::main]
async fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let n = if quick { 500 } else { 5_000 };
    let cache = tempfile::tempdir().unwrap();

    println!("## Load\n");
    load(cache.path()).await;

    println!(
        "\n## Concurrent invocations (trivial agent, pooling, 1,000 sandboxes at most at once)\n"
    );
    println!(
        "| concurrent | bare throughput | orchestr8 succeeded | wall time | throughput | peak RSS | wall ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    let s = sandbox(Allocator::Pooling, 1000, Some(cache.path().to_path_buf()));
    let agent = s.load(agent_path("state_probe.wasm")).await.unwrap();
    let bare = Arc::new(bare(&s, &agent_path("state_probe.wasm")));
    let levels: &[usize] = if quick {
        &[10, 100, 1000]
    } else {
        &[10, 100, 1_000, 10_000]
    };
    for &level in levels {
        concurrency(&s, &agent, &bare, level).await;
    }
    drop((s, agent, bare)); // the 1,000-slot pool is done with
    println!("\n## Instantiate + call, sequential, {n} calls each\n");
    println!(
        "| agent, allocator | bare p50 | bare p95 | orchestr8 p50 | orchestr8 p95 | orchestr8 p99 | p95 ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
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
        // A CPython (componentize-py) and a SpiderMonkey (ComponentizeJS)
        // inside the component, beside the Rust agents above: the same
        // host, ~19 MB components.
        latency(
            &format!("trivial Python (py-greeter), {name}"),
            &s,
            "py_greeter.wasm",
            json!({"name": "Ada"}),
            n,
        )
        .await;
        latency(
            &format!("trivial TypeScript (ts-greeter), {name}"),
            &s,
            "ts_greeter.wasm",
            json!({"name": "Ada"}),
            n,
        )
        .await;
    }

    println!("\n## Python and TypeScript components\n");
    println!(
        "| agent | size | cold compile, bare / orchestr8 | rebuilt (same code, new digest), orchestr8 | load from cache, bare / orchestr8 (ratio) | peak RSS growth per call, 100 started at once |"
    );
    println!("|---|---|---|---|---|---|");
    guest_language(
        "Python (py-greeter)",
        "py_greeter.wasm",
        json!({"name": "Ada"}),
    )
    .await;
    guest_language(
        "TypeScript (ts-greeter)",
        "ts_greeter.wasm",
        json!({"name": "Ada"}),
    )
    .await;
}
