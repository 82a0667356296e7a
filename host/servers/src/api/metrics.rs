//! Prometheus metrics (`GET /metrics`, OpenMetrics text): executions by
//! status, step and attempt latency, sandbox limit hits, queue depth and the
//! circuit breakers' states.
//!
//! One meaning per metric on both servers: an attempt's duration is what
//! the resilience chain measured (start to end of the attempt, failed ones
//! included), to the microsecond. `serve` reads it from the committed
//! journal (a bounded bus subscription that may drop entries under extreme
//! load, never slowing the engine), `agent serve` from the chain's events
//! directly; breaker states are read from the registry at scrape time.

use std::sync::atomic::AtomicI64;

use axum::response::IntoResponse;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use orchestr8_host::engine::{ExecutionEvent, ExecutionStatus};
use orchestr8_host::error::ErrorCode;
use orchestr8_host::record::Record;
use orchestr8_host::resilience::{BreakerState, Resilience, ResilienceEvent};
use orchestr8_host::store::JournalEntry;

type Labels = Vec<(String, String)>;

/// The codes that mean the sandbox stopped an agent at one of its limits.
const LIMIT_CODES: [ErrorCode; 5] = [
    ErrorCode::Timeout,
    ErrorCode::FuelExhausted,
    ErrorCode::MemoryLimit,
    ErrorCode::OutputTooLarge,
    ErrorCode::CapabilityDenied,
];

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    executions: Family<Labels, Counter>,
    step_seconds: Family<Labels, Histogram>,
    attempt_seconds: Family<Labels, Histogram>,
    limit_hits: Family<Labels, Counter>,
    requests: Family<Labels, Counter>,
    queue_depth: Gauge<i64, AtomicI64>,
    running: Gauge<i64, AtomicI64>,
    breakers: Family<Labels, Gauge<i64, AtomicI64>>,
    resilience: Option<Resilience>,
}

fn latency() -> Histogram {
    // 100 µs to ~100 s.
    Histogram::new(exponential_buckets(0.0001, 4.0, 11))
}

impl Metrics {
    /// Metrics whose breaker states are read from `resilience`.
    pub fn new(resilience: Option<Resilience>) -> Self {
        let mut registry = Registry::with_prefix("orchestr8");
        let executions = Family::<Labels, Counter>::default();
        let step_seconds =
            Family::<Labels, Histogram>::new_with_constructor(latency as fn() -> Histogram);
        let attempt_seconds =
            Family::<Labels, Histogram>::new_with_constructor(latency as fn() -> Histogram);
        let limit_hits = Family::<Labels, Counter>::default();
        let requests = Family::<Labels, Counter>::default();
        let queue_depth = Gauge::<i64, AtomicI64>::default();
        let running = Gauge::<i64, AtomicI64>::default();
        let breakers = Family::<Labels, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "executions",
            "Executions that ended, by status",
            executions.clone(),
        );
        registry.register(
            "step_duration_seconds",
            "Step latency, by outcome",
            step_seconds.clone(),
        );
        registry.register(
            "attempt_duration_seconds",
            "Attempt latency, by outcome",
            attempt_seconds.clone(),
        );
        registry.register(
            "sandbox_limit_hits",
            "Attempts stopped at a sandbox limit or refused a capability, by code",
            limit_hits.clone(),
        );
        registry.register(
            "agent_calls",
            "Agent calls served by /process, by outcome",
            requests.clone(),
        );
        registry.register(
            "queue_depth",
            "Executions accepted and waiting to start",
            queue_depth.clone(),
        );
        registry.register(
            "running_executions",
            "Executions running now",
            running.clone(),
        );
        registry.register(
            "breaker_state",
            "Circuit state by key: 0 closed, 1 half-open, 2 open",
            breakers.clone(),
        );
        Metrics {
            registry,
            executions,
            step_seconds,
            attempt_seconds,
            limit_hits,
            requests,
            queue_depth,
            running,
            breakers,
            resilience,
        }
    }

    /// Counts a committed journal entry.
    pub fn observe_entry(&self, entry: &JournalEntry) {
        let Record::Event(event) = &entry.record else {
            return;
        };
        match event {
            ExecutionEvent::StepSucceeded { duration_ms, .. } => {
                self.observe_step(*duration_ms, "succeeded")
            }
            ExecutionEvent::StepFailed { duration_ms, .. } => {
                self.observe_step(*duration_ms, "failed")
            }
            ExecutionEvent::Resilience { event, .. } => self.observe_resilience(event),
            ExecutionEvent::ExecutionFinished { status, .. } => self.count_execution(*status),
            _ => {}
        }
    }

    fn observe_step(&self, duration_ms: f64, outcome: &str) {
        self.step_seconds
            .get_or_create(&vec![("outcome".into(), outcome.to_string())])
            .observe(duration_ms / 1000.0);
    }

    /// Counts an execution that ended without a journal (refused at start).
    pub fn count_execution(&self, status: ExecutionStatus) {
        self.executions
            .get_or_create(&vec![("status".into(), status.as_str().to_string())])
            .inc();
    }

    /// Counts an attempt's end as the chain reports it (`/process`).
    pub fn observe_resilience(&self, event: &ResilienceEvent) {
        match event {
            ResilienceEvent::AttemptSucceeded { duration_ms, .. } => {
                self.observe_attempt(duration_ms / 1000.0, None);
            }
            ResilienceEvent::AttemptFailed {
                duration_ms, code, ..
            } => self.observe_attempt(duration_ms / 1000.0, Some(code.as_str())),
            _ => {}
        }
    }

    /// One attempt that took `seconds`, failed with `code` if it did.
    fn observe_attempt(&self, seconds: f64, code: Option<&str>) {
        let outcome = if code.is_some() {
            "failed"
        } else {
            "succeeded"
        };
        self.attempt_seconds
            .get_or_create(&vec![("outcome".into(), outcome.to_string())])
            .observe(seconds);
        if let Some(code) = code {
            self.count_limit_hit(code);
        }
    }

    /// Counts one `/process` call by its outcome (`ok` or an error code).
    pub fn count_call(&self, outcome: &str) {
        self.requests
            .get_or_create(&vec![("outcome".into(), outcome.to_string())])
            .inc();
    }

    fn count_limit_hit(&self, code: &str) {
        if LIMIT_CODES.iter().any(|c| c.as_str() == code) {
            self.limit_hits
                .get_or_create(&vec![("code".into(), code.to_string())])
                .inc();
        }
    }

    /// Sets the queue and running gauges.
    pub fn set_load(&self, queued: usize, running: usize) {
        self.queue_depth.set(queued as i64);
        self.running.set(running as i64);
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        if let Some(resilience) = &self.resilience {
            for (key, state) in resilience.breakers().states() {
                let value = match state {
                    BreakerState::Closed => 0,
                    BreakerState::HalfOpen => 1,
                    BreakerState::Open => 2,
                };
                self.breakers
                    .get_or_create(&vec![("key".into(), key)])
                    .set(value);
            }
        }
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            tracing::warn!("metrics could not be encoded");
        }
        text
    }
}

/// `GET /metrics` for any service.
pub(super) fn metrics_response(metrics: &Metrics) -> axum::response::Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(event: ExecutionEvent) -> JournalEntry {
        JournalEntry {
            seq: 1,
            at: "2026-01-01T00:00:00Z".into(),
            record: Record::Event(event),
        }
    }

    fn failed_attempt(code: ErrorCode, duration_ms: f64) -> ResilienceEvent {
        ResilienceEvent::AttemptFailed {
            attempt: 1,
            code,
            message: "failed".into(),
            counted: true,
            duration_ms,
        }
    }

    fn in_step(event: ResilienceEvent) -> ExecutionEvent {
        ExecutionEvent::Resilience {
            step_id: "a".into(),
            event,
        }
    }

    #[test]
    fn both_servers_count_failed_attempts_with_their_durations() {
        let from_journal = Metrics::new(None);
        from_journal.observe_entry(&entry(in_step(failed_attempt(ErrorCode::Timeout, 0.3))));
        let from_chain = Metrics::new(None);
        from_chain.observe_resilience(&failed_attempt(ErrorCode::Timeout, 0.3));
        assert_eq!(from_journal.encode(), from_chain.encode());
        assert!(
            from_chain
                .encode()
                .contains("orchestr8_attempt_duration_seconds_count{outcome=\"failed\"} 1")
        );
    }

    #[test]
    fn journal_entries_become_counters_and_histograms() {
        let m = Metrics::new(None);
        m.observe_entry(&entry(in_step(failed_attempt(
            ErrorCode::FuelExhausted,
            0.25,
        ))));
        m.observe_entry(&entry(ExecutionEvent::StepSucceeded {
            step_id: "a".into(),
            output: json!({}),
            attempts: 1,
            duration_ms: 7.0,
            via_fallback: None,
        }));
        m.observe_entry(&entry(ExecutionEvent::ExecutionFinished {
            status: ExecutionStatus::Succeeded,
            duration_ms: 9,
            error: None,
        }));
        m.set_load(3, 1);
        let text = m.encode();
        assert!(
            text.contains("orchestr8_sandbox_limit_hits_total{code=\"FUEL_EXHAUSTED\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("orchestr8_executions_total{status=\"succeeded\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("orchestr8_step_duration_seconds_count{outcome=\"succeeded\"} 1"),
            "{text}"
        );
        assert!(text.contains("orchestr8_queue_depth 3"), "{text}");
        assert!(
            text.contains(
                "orchestr8_attempt_duration_seconds_bucket{le=\"0.0004\",outcome=\"failed\"} 1"
            ),
            "a quarter of a millisecond lands in the lowest buckets: {text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
