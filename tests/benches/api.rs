//! Load benchmark of the HTTP interfaces, in-process over loopback TCP:
//! `POST /process` (one agent as a microservice) and
//! `POST /workflows/execute?wait=true` (a one-step workflow journaled to
//! SQLite), at 1, 10 and 100 concurrent keep-alive clients. Prints
//! throughput and p50/p95/p99 latency:
//! `cargo bench -p orchestr8-tests --bench api` (after scripts/build-agents).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::http::{self, Client};
use common::{micros, percentile};

/// One keep-alive client sending `n` requests in a row; returns latencies.
async fn client(addr: SocketAddr, path: &'static str, body: Bytes, n: usize) -> Vec<Duration> {
    let mut client = Client::connect(addr).await;
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        latencies.push(client.post(path, body.clone()).await);
    }
    latencies
}

async fn load(
    label: &str,
    addr: SocketAddr,
    path: &'static str,
    body: Bytes,
    clients: usize,
    total: usize,
) {
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
    println!(
        "{label:<28} {clients:>3} clients  {:>8.0} req/s   p50 {:>9}  p95 {:>9}  p99 {:>9}",
        all.len() as f64 / elapsed.as_secs_f64(),
        micros(percentile(&all, 0.50)),
        micros(percentile(&all, 0.95)),
        micros(percentile(&all, 0.99)),
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
    let (process, execute) = (servers.process, servers.execute);
    let (process_body, execute_body) = (servers.process_body.clone(), servers.execute_body.clone());
    println!("{total} requests per level (BENCH_QUICK=1 for 300)");
    for clients in [1, 10, 100] {
        load(
            "POST /process",
            process,
            "/process",
            process_body.clone(),
            clients,
            total,
        )
        .await;
    }
    for clients in [1, 10, 100] {
        load(
            "POST /workflows/execute?wait",
            execute,
            "/workflows/execute?wait=true",
            execute_body.clone(),
            clients,
            total,
        )
        .await;
    }
}
