//! Load benchmark of the HTTP interfaces, in-process over loopback TCP:
//! `POST /process` (one agent as a microservice) and
//! `POST /workflows/execute?wait=true` (a one-step workflow journaled to
//! SQLite), at 1, 10 and 100 concurrent keep-alive clients. Prints
//! throughput and p50/p95/p99 latency, each level beside the baseline
//! measured just before it: bare axum on the same loopback echoing the body
//! (no agent, no journal):
//! `cargo bench -p orchestr8-tests --bench api` (after scripts/build-agents).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::http::{self, Client};
use common::{micros, percentile, ratio};

/// One keep-alive client sending `n` requests in a row; returns latencies.
async fn client(addr: SocketAddr, path: &'static str, body: Bytes, n: usize) -> Vec<Duration> {
    let mut client = Client::connect(addr).await;
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        latencies.push(client.post(path, body.clone()).await.0);
    }
    latencies
}

/// Throughput and sorted latencies of `clients` clients sending `total`
/// requests together.
async fn load(
    addr: SocketAddr,
    path: &'static str,
    body: Bytes,
    clients: usize,
    total: usize,
) -> (f64, Vec<Duration>) {
    let per_client = (total / clients).max(1);
    // Warm up connections and caches.
    client(addr, path, body.clone(), 20).await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(client(addr, path, body.clone(), per_client)))
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort();
    (all.len() as f64 / elapsed.as_secs_f64(), all)
}

fn row(label: &str, clients: usize, (rate, all): &(f64, Vec<Duration>), bare: &[Duration]) {
    println!(
        "| {label} | {clients} | {rate:.0}/s | {} | {} | {} | {} |",
        micros(percentile(all, 0.50)),
        micros(percentile(all, 0.95)),
        micros(percentile(all, 0.99)),
        ratio(percentile(all, 0.95), percentile(bare, 0.95)),
    );
}

#[tokio::main]
async fn main() {
    let total = if std::env::var_os("BENCH_QUICK").is_some() {
        300
    } else {
        5000
    };
    let servers = http::start().await;
    println!("{total} requests per level (BENCH_QUICK=1 for 300)\n");
    println!("| route | clients | throughput | p50 | p95 | p99 | p95 over bare |");
    println!("|---|---|---|---|---|---|---|");
    let routes = [
        (
            "`POST /process`",
            servers.process,
            "/process",
            servers.process_body.clone(),
        ),
        (
            "`POST /workflows/execute?wait=true`",
            servers.execute,
            "/workflows/execute?wait=true",
            servers.execute_body.clone(),
        ),
    ];
    for (label, addr, path, body) in routes {
        for clients in [1, 10, 100] {
            let bare = load(servers.bare, "/process", body.clone(), clients, total).await;
            row("bare axum echo (baseline)", clients, &bare, &bare.1);
            let ours = load(addr, path, body.clone(), clients, total).await;
            row(label, clients, &ours, &bare.1);
        }
    }
}
