//! Soak benchmark: sustained `POST /workflows/execute?wait=true` (a one-step
//! workflow journaled to SQLite) at 10 keep-alive clients for 60 s
//! (`SOAK_SECS`; 10 s with `BENCH_QUICK=1`). Prints, per 10-second window
//! and overall, throughput, p50 and p99 and the largest WAL seen, then the
//! WAL's size once the load has stopped. Baseline, measured in the same run:
//! `POST /process` of the same agent (no journal) at 10 clients.
//! `cargo bench -p orchestr8-tests --bench soak` (after scripts/build-agents).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::http::{self, Client};
use common::{micros, percentile};

const CLIENTS: usize = 10;
const WINDOW: Duration = Duration::from_secs(10);

/// Every request's (when it ended, how long it took) from `CLIENTS`
/// clients hammering `path` until `until`.
async fn hammer(
    addr: SocketAddr,
    path: &'static str,
    body: Bytes,
    until: Instant,
) -> Vec<(Instant, Duration)> {
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let body = body.clone();
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                let mut seen = Vec::new();
                while Instant::now() < until {
                    let took = client.post(path, body.clone()).await.0;
                    seen.push((Instant::now(), took));
                }
                seen
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn summary(label: &str, samples: &[(Instant, Duration)], span: Duration) -> String {
    let mut latencies: Vec<Duration> = samples.iter().map(|s| s.1).collect();
    latencies.sort();
    if latencies.is_empty() {
        return format!("{label}: no requests");
    }
    format!(
        "{label:<12} {:>7.0} req/s   p50 {:>9}   p99 {:>9}",
        latencies.len() as f64 / span.as_secs_f64(),
        micros(percentile(&latencies, 0.50)),
        micros(percentile(&latencies, 0.99)),
    )
}

#[tokio::main]
async fn main() {
    let secs: u64 = match std::env::var("SOAK_SECS") {
        Ok(s) => s.parse().expect("SOAK_SECS is a number of seconds"),
        Err(_) if std::env::var_os("BENCH_QUICK").is_some() => 10,
        Err(_) => 60,
    };
    let servers = http::start().await;
    let wal = servers.state.path().join("orchestr8.db-wal");
    let wal_size = move || std::fs::metadata(&wal).map_or(0, |m| m.len());

    // Warm-up, then the baseline: the same agent without the journal.
    hammer(
        servers.process,
        "/process",
        servers.process_body.clone(),
        Instant::now() + Duration::from_secs(2),
    )
    .await;
    let started = Instant::now();
    let baseline = hammer(
        servers.process,
        "/process",
        servers.process_body.clone(),
        started + WINDOW,
    )
    .await;
    println!("baseline, {CLIENTS} clients, {} s:", WINDOW.as_secs());
    println!("  {}", summary("/process", &baseline, WINDOW));

    // The soak, with the WAL's size sampled every 20 ms.
    let largest = Arc::new(AtomicU64::new(0));
    let windows: Vec<Arc<AtomicU64>> = (0..secs.div_ceil(WINDOW.as_secs()))
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let sampler = {
        let (largest, windows, wal_size) = (largest.clone(), windows.clone(), wal_size.clone());
        tokio::spawn(async move {
            while Instant::now() < until {
                let size = wal_size();
                largest.fetch_max(size, Ordering::Relaxed);
                let w = (started.elapsed().as_secs() / WINDOW.as_secs()) as usize;
                if let Some(window) = windows.get(w) {
                    window.fetch_max(size, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let soak = hammer(
        servers.execute,
        "/workflows/execute?wait=true",
        servers.execute_body.clone(),
        until,
    )
    .await;
    sampler.await.unwrap();
    println!("execute-and-wait soak, {CLIENTS} clients, {secs} s:");
    for (n, window_wal) in windows.iter().enumerate() {
        let from = started + WINDOW * n as u32;
        let to = from + WINDOW;
        let in_window: Vec<_> = soak
            .iter()
            .filter(|s| s.0 >= from && s.0 < to)
            .copied()
            .collect();
        let span = WINDOW.min(Duration::from_secs(secs) - WINDOW * n as u32);
        println!(
            "  {}   WAL max {:>9}",
            summary(
                &format!(
                    "{:>3}-{:<3} s",
                    n as u64 * 10,
                    n as u64 * 10 + span.as_secs()
                ),
                &in_window,
                span
            ),
            mib(window_wal.load(Ordering::Relaxed))
        );
    }
    println!(
        "  {}   WAL max {:>9}   ({} executions)",
        summary("overall", &soak, Duration::from_secs(secs)),
        mib(largest.load(Ordering::Relaxed)),
        soak.len()
    );
    let stopped = Instant::now();
    while wal_size() > 0 && stopped.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "  WAL {} after the load, {} ms after it stopped",
        mib(wal_size()),
        stopped.elapsed().as_millis()
    );
}
