//! The execution journal writer: every event of an execution, in order,
//! made durable before anyone else sees it.
//!
//! The engine hands events to [`JournalWriter::sink`], which never blocks
//! (an unbounded queue: the journal must not lose events). A dedicated
//! thread appends them to the [`Store`] in batches, one transaction per
//! batch, and only then publishes the committed entries on the [`Bus`] for
//! observers (progress display, API). Entries are capped in size with an
//! explicit truncation marker, the journal of one execution is capped in
//! length, and secret values are redacted before anything is written.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::bus::Bus;
use crate::engine::{EventSink, ExecutionEvent};
use crate::resilience::ResilienceEvent;
use crate::sandbox::REDACTED;
use crate::store::{JournalEntry, NewEntry, Store, StoreError, now};

/// Largest entry stored whole, in bytes of JSON.
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;
/// Most entries kept per execution; past it a marker is written and only
/// the final entry follows.
pub const MAX_ENTRIES: u64 = 100_000;
/// Most events written in one transaction.
const BATCH: usize = 256;

/// A committed entry, as published on the bus.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalUpdate {
    /// The execution.
    pub execution_id: String,
    /// The entry.
    pub entry: JournalEntry,
}

/// Writes one execution's journal.
pub struct JournalWriter {
    tx: mpsc::UnboundedSender<ExecutionEvent>,
    thread: std::thread::JoinHandle<Result<u64, StoreError>>,
}

impl JournalWriter {
    /// Starts the writer thread for `execution_id`.
    pub fn start(
        store: Arc<dyn Store>,
        execution_id: String,
        redact: Vec<String>,
        bus: Arc<Bus<JournalUpdate>>,
    ) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("orchestr8-journal".into())
            .spawn(move || write_loop(store.as_ref(), &execution_id, &redact, &bus, rx))
            .map_err(|e| StoreError::Database(format!("cannot start the journal writer: {e}")))?;
        Ok(JournalWriter { tx, thread })
    }

    /// Where the engine sends events.
    pub fn sink(&self) -> EventSink {
        let tx = self.tx.clone();
        Arc::new(move |event| {
            // Fails only once the writer is gone, which `finish` reports.
            let _ = tx.send(event);
        })
    }

    /// Waits until every event is durable; returns how many entries were
    /// written, or the first storage error. Every sink handed out must have
    /// been dropped (the engine drops its own when the execution ends), or
    /// this waits for them.
    pub async fn finish(self) -> Result<u64, StoreError> {
        let JournalWriter { tx, thread } = self;
        drop(tx);
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|e| StoreError::Database(format!("journal writer lost: {e}")))?
            .map_err(|_| StoreError::Database("journal writer panicked".into()))?
    }
}

fn write_loop(
    store: &dyn Store,
    execution_id: &str,
    redact: &[String],
    bus: &Bus<JournalUpdate>,
    mut rx: mpsc::UnboundedReceiver<ExecutionEvent>,
) -> Result<u64, StoreError> {
    let mut written: u64 = 0;
    let mut truncated = false;
    let mut first_error: Option<StoreError> = None;
    while let Some(event) = rx.blocking_recv() {
        let mut batch = vec![event];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let mut entries = Vec::with_capacity(batch.len());
        for event in &batch {
            let finished = matches!(event, ExecutionEvent::ExecutionFinished { .. });
            if written + entries.len() as u64 >= MAX_ENTRIES && !finished {
                if !truncated {
                    truncated = true;
                    entries.push(marker("journal-truncated", serde_json::json!({
                        "type": "journal-truncated",
                        "reason": format!("more than {MAX_ENTRIES} entries; only the final entry follows"),
                    })));
                }
                continue;
            }
            entries.push(entry(event, redact));
        }
        if entries.is_empty() {
            continue;
        }
        match store.append(execution_id, &entries) {
            Ok(seqs) => {
                written += seqs.len() as u64;
                for (seq, e) in seqs.into_iter().zip(entries) {
                    bus.publish(JournalUpdate {
                        execution_id: execution_id.to_string(),
                        entry: e.stored(seq),
                    });
                }
            }
            Err(e) => {
                tracing::error!(execution = %execution_id, error = %e, "journal write failed");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(written),
    }
}

fn marker(kind: &str, data: serde_json::Value) -> NewEntry {
    NewEntry {
        at: now(),
        kind: kind.into(),
        step_id: None,
        attempt: None,
        duration_ms: None,
        code: None,
        data,
    }
}

/// The journal entry for an event: indexed fields pulled out, the event
/// itself as data, secrets redacted, size capped.
pub fn entry(event: &ExecutionEvent, redact: &[String]) -> NewEntry {
    let kind = event.kind();
    let (attempt, duration_ms, code) = match event {
        ExecutionEvent::StepSucceeded { duration_ms, .. } => (None, Some(*duration_ms), None),
        ExecutionEvent::StepFailed {
            duration_ms, error, ..
        } => (None, Some(*duration_ms), Some(error.code.to_string())),
        ExecutionEvent::ExecutionFinished {
            duration_ms, error, ..
        } => (
            None,
            Some(*duration_ms),
            error.as_ref().map(|e| e.code.to_string()),
        ),
        ExecutionEvent::AgentLog { attempt, .. } => (Some(*attempt), None, None),
        ExecutionEvent::Resilience { event, .. } => match event {
            ResilienceEvent::AttemptStarted { attempt, .. } => (Some(*attempt), None, None),
            ResilienceEvent::AttemptSucceeded {
                attempt,
                duration_ms,
            } => (Some(*attempt), Some(*duration_ms), None),
            ResilienceEvent::AttemptFailed { attempt, code, .. } => {
                (Some(*attempt), None, Some(code.to_string()))
            }
            ResilienceEvent::RetryScheduled {
                attempt, reason, ..
            } => (Some(*attempt), None, Some(reason.to_string())),
            _ => (None, None, None),
        },
        _ => (None, None, None),
    };
    let mut text = serde_json::to_string(event).unwrap_or_else(|_| "null".into());
    for secret in redact.iter().filter(|s| !s.is_empty()) {
        if text.contains(secret.as_str()) {
            let escaped = serde_json::to_string(secret).unwrap_or_default();
            let inner = escaped.trim_matches('"');
            text = text.replace(inner, REDACTED);
        }
    }
    let data = if text.len() > MAX_ENTRY_BYTES {
        serde_json::json!({"type": kind, "truncated": true, "originalBytes": text.len()})
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    };
    NewEntry {
        at: now(),
        kind: kind.into(),
        step_id: event.step_id().map(str::to_string),
        attempt,
        duration_ms,
        code,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ExecutionStatus;
    use crate::store::{ExecutionRecord, MemoryStore};
    use serde_json::json;

    fn started(step: &str, input: serde_json::Value) -> ExecutionEvent {
        ExecutionEvent::StepStarted {
            step_id: step.into(),
            agent_id: "@a/b".into(),
            input,
        }
    }

    #[test]
    fn entries_are_redacted_and_capped() {
        let e = entry(
            &started("s", json!({"key": "hunter2"})),
            &["hunter2".into()],
        );
        assert_eq!(e.data["input"]["key"], REDACTED);
        assert_eq!(e.step_id.as_deref(), Some("s"));
        let big = entry(
            &started("s", json!({"x": "y".repeat(MAX_ENTRY_BYTES)})),
            &[],
        );
        assert_eq!(big.data["truncated"], true);
        assert_eq!(big.kind, "step-started");
    }

    #[tokio::test]
    async fn every_event_is_durable_in_order_before_it_is_published() {
        let store: Arc<MemoryStore> = Arc::new(MemoryStore::new());
        store
            .create_execution(&ExecutionRecord {
                id: "x".into(),
                workflow_id: "w".into(),
                workflow_name: "n".into(),
                status: ExecutionStatus::Running,
                started_at: now(),
                finished_at: None,
                input: json!({}),
                result: None,
                owner_pid: std::process::id(),
            })
            .unwrap();
        let bus = Arc::new(Bus::new());
        let mut watcher = bus.subscribe(10_000);
        let writer = JournalWriter::start(store.clone(), "x".into(), vec![], bus.clone()).unwrap();
        let sink = writer.sink();
        for i in 0..1000 {
            sink(started(&format!("s{i}"), json!(i)));
        }
        drop(sink);
        assert_eq!(writer.finish().await.unwrap(), 1000);
        let journal = store.journal("x", 0, 5000).unwrap();
        assert_eq!(journal.len(), 1000);
        assert!(
            journal
                .iter()
                .enumerate()
                .all(|(i, e)| e.seq == i as u64 + 1
                    && e.step_id.as_deref() == Some(format!("s{i}").as_str()))
        );
        let mut published = 0;
        while let Some(u) = watcher.try_recv() {
            published += 1;
            assert_eq!(u.entry.seq, published);
        }
        assert_eq!(published, 1000);
    }
}
