//! Nodes sharing one PostgreSQL database: `POST
//! /workflows/execute?wait=true` of a one-step workflow (the echo agent) at
//! 10 clients on one node, on PostgreSQL beside the same node on a SQLite
//! file (the embedded default, the baseline), the node first in this
//! process (as `--bench api` runs it), then as a process of its own; throughput with 1, 2 and 3
//! nodes under the same 30 clients; and failover, from a node's death
//! (SIGKILL) to its executions resuming on another node.
//!
//! Each node is a process of its own (this binary run again as a node), on
//! loopback; the database is a throwaway cluster with PostgreSQL's default
//! durability (`fsync=on`, `synchronous_commit=on`), printed with the
//! figures. `cargo bench -p orchestr8-tests --bench nodes` (after
//! scripts/build-agents; BENCH_QUICK=1 for a short run).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::http::{self, Client};
use common::{micros, percentile, ratio};
use orchestr8_host::engine::RegisteredAgent;
use orchestr8_host::sandbox::{Sandbox, SandboxConfig, SandboxPolicy};
use orchestr8_host::store::{PostgresOptions, PostgresStore, SqliteStore};
use orchestr8_test_postgres::Cluster;
use serde_json::{Value, json};

/// Set in a node's environment: the store it runs on (a PostgreSQL URL,
/// or `sqlite:PATH`).
const NODE: &str = "ORCHESTR8_BENCH_NODE";

fn main() {
    match std::env::var(NODE) {
        Ok(store) => node(&store),
        Err(_) => bench(),
    }
}

/// The sandbox and the agents a node runs: echo and sleep.
async fn agents() -> (Sandbox, HashMap<String, RegisteredAgent>) {
    let sandbox = Sandbox::new(SandboxConfig {
        max_instances: 256,
        cache_dir: None,
        ..SandboxConfig::default()
    })
    .unwrap();
    let release =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../agents/target/wasm32-wasip2/release");
    let mut agents = HashMap::new();
    for name in ["echo", "hostile_sleep"] {
        let agent = sandbox
            .load(&release.join(format!("{name}.wasm")))
            .await
            .unwrap();
        agents.insert(
            agent.info().id.clone(),
            RegisteredAgent::new(agent, SandboxPolicy::default()),
        );
    }
    (sandbox, agents)
}

/// The REST API over `store` (a PostgreSQL URL, or `sqlite:PATH`) in this
/// process; its address.
async fn serve(store: &str) -> SocketAddr {
    let (sandbox, agents) = agents().await;
    match store.strip_prefix("sqlite:") {
        Some(path) => {
            let store = SqliteStore::open(std::path::Path::new(path)).unwrap();
            http::execution_server(&sandbox, store, agents).await.0
        }
        None => {
            let store = PostgresStore::connect(store, PostgresOptions::default()).unwrap();
            http::execution_server(&sandbox, store, agents).await.0
        }
    }
}

/// A node: the REST API over `store` until it is killed.
#[tokio::main]
async fn node(store: &str) {
    let addr = serve(store).await;
    println!("listening on {addr}");
    std::future::pending::<()>().await;
}

/// A node process, killed when dropped.
struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Node {
    fn start(store: &str) -> Node {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(NODE, store)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .parse()
            .unwrap();
        Node { child, addr }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn document(steps: Value) -> Bytes {
    Bytes::from(
        json!({ "workflow": {
            "version": "1.0.0", "schemaVersion": "1.0.0",
            "metadata": { "id": "7f1d2c3e-0b4a-4f5e-9d8c-1a2b3c4d5e6f", "name": "bench" },
            "steps": steps
        }})
        .to_string(),
    )
}

/// `clients` keep-alive clients, spread over `nodes`, each sending its
/// share of `total` execute-and-wait requests in a row: throughput and
/// sorted latencies.
async fn load(
    nodes: &[SocketAddr],
    body: &Bytes,
    clients: usize,
    total: usize,
) -> (f64, Vec<Duration>) {
    let per_client = (total / clients).max(1);
    let run = |addr: SocketAddr, n: usize| {
        let body = body.clone();
        async move {
            let mut client = Client::connect(addr).await;
            let mut latencies = Vec::with_capacity(n);
            for _ in 0..n {
                latencies.push(
                    client
                        .post("/workflows/execute?wait=true", body.clone())
                        .await
                        .0,
                );
            }
            latencies
        }
    };
    for addr in nodes {
        run(*addr, 20).await;
    }
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| tokio::spawn(run(nodes[c % nodes.len()], per_client)))
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort();
    (rate, all)
}

fn row(label: &str, (rate, all): &(f64, Vec<Duration>), baseline: &[Duration]) {
    println!(
        "| {label} | {rate:.0}/s | {} | {} | {} | {} |",
        micros(percentile(all, 0.50)),
        micros(percentile(all, 0.95)),
        micros(percentile(all, 0.99)),
        ratio(percentile(all, 0.95), percentile(baseline, 0.95)),
    );
}

async fn get_json(client: &mut Client, path: &str) -> Value {
    serde_json::from_slice(&client.get(path).await.1).unwrap()
}

/// Kills a node running `n` executions that nap for two seconds, and
/// measures from the kill until each has resumed on the other node.
async fn failover(url: &str, sleep_id: &str, n: usize) -> Vec<Duration> {
    let doomed = Node::start(url);
    let survivor = Node::start(url);
    let body = document(json!([
        { "id": "nap", "name": "nap", "agent": { "id": sleep_id }, "input": { "mapping": { "seconds": 2 } } }
    ]));
    let mut to_doomed = Client::connect(doomed.addr).await;
    let mut ids = Vec::new();
    for _ in 0..n {
        let accepted: Value =
            serde_json::from_slice(&to_doomed.post("/workflows/execute", body.clone()).await.1)
                .unwrap();
        ids.push(accepted["executionId"].as_str().unwrap().to_string());
    }
    let mut watch = Client::connect(survivor.addr).await;
    for id in &ids {
        while get_json(&mut watch, &format!("/executions/{id}")).await["steps"]["nap"]["status"]
            != "running"
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    drop(to_doomed);
    let killed = Instant::now();
    drop(doomed);
    let mut resumed = Vec::new();
    for id in &ids {
        loop {
            let page = get_json(&mut watch, &format!("/executions/{id}/journal?limit=1000")).await;
            let entries = page["entries"].as_array().cloned().unwrap_or_default();
            if entries.iter().any(|e| e["kind"] == "execution-resumed") {
                resumed.push(killed.elapsed());
                break;
            }
            assert!(
                killed.elapsed() < Duration::from_secs(60),
                "{id} was never taken over"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    resumed.sort();
    resumed
}

#[tokio::main]
async fn bench() {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let total = if quick { 300 } else { 3000 };
    // PostgreSQL's defaults: every commit flushed to disk.
    let cluster = Cluster::start_with(&[]).unwrap();
    let url = cluster.database("bench").unwrap();
    let setting = |name: &str| cluster.sql("bench", &format!("SHOW {name}")).unwrap();
    println!(
        "PostgreSQL {} (throwaway cluster, Unix socket): fsync={}, synchronous_commit={}, shared_buffers={}; lease {} s",
        setting("server_version"),
        setting("fsync"),
        setting("synchronous_commit"),
        setting("shared_buffers"),
        PostgresOptions::default().lease.as_secs()
    );
    println!(
        "each node a process of its own on this machine ({} cores), {total} requests per row\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let echo = document(json!([
        { "id": "only", "name": "only", "agent": { "id": "@orchestr8/echo" }, "input": { "mapping": { "n": 1 } } }
    ]));

    println!("Execute-and-wait, one node, 10 clients:\n");
    println!("| store | throughput | p50 | p95 | p99 | p95 over SQLite |");
    println!("|---|---|---|---|---|---|");
    // In this process, as `--bench api` measures the embedded store.
    let state = tempfile::tempdir().unwrap();
    let here = serve(&format!(
        "sqlite:{}",
        state.path().join("here.db").display()
    ))
    .await;
    let baseline = load(&[here], &echo, 10, total).await;
    row(
        "in this process: SQLite file (baseline)",
        &baseline,
        &baseline.1,
    );
    let here = serve(&cluster.database("here").unwrap()).await;
    let pg = load(&[here], &echo, 10, total).await;
    row("in this process: PostgreSQL", &pg, &baseline.1);
    let sqlite = Node::start(&format!(
        "sqlite:{}",
        state.path().join("orchestr8.db").display()
    ));
    let baseline = load(&[sqlite.addr], &echo, 10, total).await;
    drop(sqlite);
    row(
        "a node process: SQLite file (baseline)",
        &baseline,
        &baseline.1,
    );
    let one = Node::start(&url);
    let pg = load(&[one.addr], &echo, 10, total).await;
    row("a node process: PostgreSQL", &pg, &baseline.1);

    println!("\nThroughput by nodes on PostgreSQL, 30 clients spread over them:\n");
    println!("| nodes | throughput | p50 | p95 | p99 | p95 over 1 node |");
    println!("|---|---|---|---|---|---|");
    let mut nodes = vec![one];
    let mut first: Option<Vec<Duration>> = None;
    for count in 1..=3 {
        while nodes.len() < count {
            nodes.push(Node::start(&url));
        }
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
        let result = load(&addrs, &echo, 30, total).await;
        let base = first.get_or_insert_with(|| result.1.clone()).clone();
        row(&count.to_string(), &result, &base);
    }
    drop(nodes);

    let n = if quick { 5 } else { 20 };
    let resumed = failover(&url, "@hostile/sleep", n).await;
    println!(
        "\nFailover: {n} executions running on a node that is SIGKILLed resume on another node {} (first) to {} (last) after the kill (median {}); lease {} s, takeover sweep every {} s",
        micros(resumed[0]),
        micros(resumed[resumed.len() - 1]),
        micros(percentile(&resumed, 0.5)),
        PostgresOptions::default().lease.as_secs(),
        orchestr8_servers::api::TAKE_OVER_EVERY.as_secs()
    );
}
