//! Listing executions with 100,000 in the store: `GET /executions` (the
//! first page, a page deep behind a cursor, and a status filter), in-process
//! over loopback, each beside the baseline measured in the same run: the
//! store's own query for the same page (bare SQLite through `Store`, no
//! HTTP, no JSON).
//!
//! `cargo bench -p orchestr8-tests --bench list`; `BENCH_QUICK=1` for
//! 10,000 executions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::http::{self, Client};
use common::{percentile, print_p50_p95, ratio};
use orchestr8_host::engine::ExecutionStatus;
use orchestr8_host::sandbox::{Sandbox, SandboxConfig};
use orchestr8_host::store::{Change, ExecutionQuery, ExecutionRecord, SqliteStore, Store, now};
use serde_json::{Value, json};

/// Requests per route.
const REQUESTS: usize = 300;

fn record(i: usize) -> ExecutionRecord {
    ExecutionRecord {
        id: format!("e{i:08}").into(),
        workflow_id: "bench".into(),
        workflow_name: if i.is_multiple_of(2) { "alpha" } else { "beta" }.into(),
        status: ExecutionStatus::Running,
        started_at: now(),
        finished_at: None,
        input: json!({"n": i}),
        result: None,
        owner_pid: 1,
        workflow: None,
        idempotency_key: None,
        request_hash: None,
    }
}

/// `total` executions, every tenth failed and the rest succeeded.
fn fill(store: &SqliteStore, total: usize) {
    for chunk in (0..total).collect::<Vec<_>>().chunks(1000) {
        let mut changes = Vec::with_capacity(chunk.len() * 2);
        for &i in chunk {
            changes.push(Change::Create(Box::new(record(i))));
            changes.push(Change::Finish {
                execution_id: format!("e{i:08}").into(),
                status: if i.is_multiple_of(10) {
                    ExecutionStatus::Failed
                } else {
                    ExecutionStatus::Succeeded
                },
                finished_at: now(),
                result: json!({"durationMs": i % 1000}),
            });
        }
        for outcome in store.commit(&changes).unwrap() {
            outcome.unwrap();
        }
    }
}

/// The cursor `pages` pages of 50 behind the first.
async fn cursor_after(client: &mut Client, pages: usize) -> String {
    let mut path = "/executions?limit=50".to_string();
    let mut cursor = String::new();
    for _ in 0..pages {
        let (_, body) = client.get(&path).await;
        let page: Value = serde_json::from_slice(&body).unwrap();
        cursor = page["nextCursor"].as_str().unwrap().to_string();
        path = format!("/executions?limit=50&cursor={cursor}");
    }
    cursor
}

async fn over_http(client: &mut Client, path: &str) -> Vec<Duration> {
    let mut took = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        took.push(client.get(path).await.0);
    }
    took.sort();
    took
}

fn in_store(store: &SqliteStore, query: &ExecutionQuery) -> Vec<Duration> {
    let mut took = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let started = Instant::now();
        let page = store.list_executions(query).unwrap();
        took.push(started.elapsed());
        assert_eq!(page.executions.len(), query.limit);
    }
    took.sort();
    took
}

#[tokio::main]
async fn main() {
    let total = if std::env::var_os("BENCH_QUICK").is_some() {
        10_000
    } else {
        100_000
    };
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("orchestr8.db");
    let filling = Instant::now();
    fill(&SqliteStore::open(&path).unwrap(), total);
    println!(
        "{total} executions written in {:.1} s; {REQUESTS} requests per row, one keep-alive client, pages of 50.\n",
        filling.elapsed().as_secs_f64()
    );
    let sandbox = Sandbox::new(SandboxConfig {
        cache_dir: None,
        ..SandboxConfig::default()
    })
    .unwrap();
    let (addr, _) =
        http::execution_server(&sandbox, SqliteStore::open(&path).unwrap(), HashMap::new()).await;
    let mut client = Client::connect(addr).await;
    // Halfway down: 1,000 pages in with 100,000 executions.
    let deep = cursor_after(&mut client, total / 100).await;
    let bare = SqliteStore::open(&path).unwrap();
    let page = |f: &dyn Fn(&mut ExecutionQuery)| {
        let mut q = ExecutionQuery {
            limit: 50,
            ..ExecutionQuery::default()
        };
        f(&mut q);
        q
    };

    let first = over_http(&mut client, "/executions?limit=50").await;
    let first_bare = in_store(&bare, &page(&|_| {}));
    let behind = over_http(&mut client, &format!("/executions?limit=50&cursor={deep}")).await;
    // The server's cursor is the creation number the page goes on before.
    let before: u64 = deep.parse().unwrap();
    let behind_bare = in_store(&bare, &page(&|q| q.before = Some(before)));
    let failed = over_http(&mut client, "/executions?limit=50&status=failed").await;
    let failed_bare = in_store(&bare, &page(&|q| q.status = Some(ExecutionStatus::Failed)));

    print_p50_p95(
        "page of 50",
        &[
            ("`GET /executions` (newest)", &first),
            ("baseline: the store's query", &first_bare),
            ("`GET /executions?cursor=…` (halfway down)", &behind),
            ("baseline: the store's query", &behind_bare),
            ("`GET /executions?status=failed`", &failed),
            ("baseline: the store's query", &failed_bare),
        ],
    );
    println!(
        "\nOver HTTP, p95 over the store's own query: newest {}, deep {}, filtered {}.",
        ratio(percentile(&first, 0.95), percentile(&first_bare, 0.95)),
        ratio(percentile(&behind, 0.95), percentile(&behind_bare, 0.95)),
        ratio(percentile(&failed, 0.95), percentile(&failed_bare, 0.95)),
    );
}
