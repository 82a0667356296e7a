//! Overhead of the resilience chain per call in the closed state, over the
//! bare operation. A bench binary that prints its figures:
//! `cargo bench -p orchestr8-tests --bench resilience`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use orchestr8_host::Coded;
use orchestr8_host::error::ErrorCode;
use orchestr8_host::resilience::{Call, Resilience, ResiliencePolicy, ignore_events};
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}

impl Coded for Never {
    fn code(&self) -> ErrorCode {
        ErrorCode::Internal
    }
}

async fn op(n: u64) -> Result<u64, Never> {
    Ok(std::hint::black_box(n) + 1)
}

fn per_call(total: Duration, n: u64) -> f64 {
    total.as_secs_f64() * 1e9 / n as f64
}

fn main() {
    let n: u64 = if std::env::var_os("BENCH_QUICK").is_some() {
        100_000
    } else {
        1_000_000
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let chain = Resilience::default();
    let policy = ResiliencePolicy::default();
    let cancel = CancellationToken::new();

    let bare = rt.block_on(async {
        let start = Instant::now();
        for i in 0..n {
            op(i).await.unwrap();
        }
        start.elapsed()
    });
    let chained = rt.block_on(async {
        let start = Instant::now();
        for i in 0..n {
            let call = Call {
                key: "cb:@bench/agent",
                cancel: &cancel,
                cancel_grace: Duration::ZERO,
                timeout_grace: Duration::ZERO,
                events: &ignore_events,
                agent_digest: None,
                attempts_before: 0,
            };
            chain.run(&policy, call, |_| op(i)).await.unwrap();
        }
        start.elapsed()
    });
    println!("| path | per call |\n|---|---|");
    println!("| bare operation | {:.0} ns |", per_call(bare, n));
    println!(
        "| through retry(circuitBreaker(timeout(op))), closed | {:.0} ns |",
        per_call(chained, n)
    );
    println!(
        "| overhead of the chain | {:.0} ns |",
        per_call(chained, n) - per_call(bare, n)
    );
}
