//! The journal writer: every change to executions and their journals, in
//! order, made durable before anyone else sees it.
//!
//! One writer serves the whole process. Callers hand it [`Change`]s (the
//! engine through [`JournalWriter::sink`], which never blocks: an unbounded
//! queue, as the journal must not lose events). A dedicated thread takes
//! whatever has queued up and commits it in one transaction, whichever
//! executions it belongs to (group commit: under load, one commit carries
//! the records and journal entries of many executions), and only then
//! publishes the committed entries on the [`Bus`] for observers (progress
//! display, API) and answers those waiting for their change to be durable.
//! Entries are capped in size with an explicit truncation marker, the
//! journal of one execution is capped in length, and secret values are
//! redacted before anything is written.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::bus::Bus;
use crate::engine::{EventSink, ExecutionEvent};
use crate::record::{Note, Oversized, Record};
use crate::store::{Applied, Change, JournalEntry, NewEntry, Store, StoreError};
use orchestr8_types::ExecutionId;
use orchestr8_types::records::REDACTED;

/// Largest entry stored whole, in bytes of JSON.
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;
/// Largest `step-started` or `step-succeeded` entry stored whole: a step's
/// input and output are what resuming and replaying an execution need, so
/// they are kept up to twice the sandbox's default output limit (8 MiB).
pub const MAX_STEP_DATA_BYTES: usize = 16 * 1024 * 1024;
/// Most entries kept per execution; past it a marker is written and only
/// the final entry follows.
pub const MAX_ENTRIES: u64 = 100_000;
/// Most changes committed in one transaction.
const BATCH: usize = 512;
/// Bytes of journal entries past which a transaction takes no further
/// change (a larger entry still goes, alone), so that one transaction, and
/// with it the SQLite WAL, stays bounded when steps pass large data.
const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// A committed entry, as published on the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalUpdate {
    /// The execution.
    pub execution_id: ExecutionId,
    /// The entry, shared: the bus hands each subscriber its own copy of
    /// the update, and a step's output may be megabytes.
    pub entry: Arc<JournalEntry>,
}

type Ack = oneshot::Sender<Result<(), StoreError>>;

struct Write {
    change: Change,
    ack: Option<Ack>,
    /// Bytes of JSON its entries take (0 when small or not entries).
    bytes: usize,
}

/// Writes executions and journals, for the whole process.
pub struct JournalWriter {
    tx: mpsc::UnboundedSender<Write>,
}

impl JournalWriter {
    /// Starts the writer thread over `store`, publishing committed entries
    /// on `bus`. The thread ends once the writer and every sink it handed
    /// out are dropped, after committing what was queued.
    pub fn start(store: Arc<dyn Store>, bus: Arc<Bus<JournalUpdate>>) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("orchestr8-journal".into())
            .spawn(move || write_loop(store.as_ref(), &bus, rx))
            .map_err(|e| StoreError::Database(format!("cannot start the journal writer: {e}")))?;
        Ok(JournalWriter { tx })
    }

    /// Queues `change` and waits until it is durable. For a
    /// [`Change::Finish`], also reports the first failure to write any of
    /// that execution's journal entries.
    pub async fn write(&self, change: Change) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Write {
                change,
                ack: Some(ack),
                bytes: 0,
            })
            .map_err(|_| gone())?;
        done.await.map_err(|_| gone())?
    }

    /// Queues `change` without waiting; a failure is logged, and reported
    /// by the execution's [`Change::Finish`].
    pub fn send(&self, change: Change) {
        // Fails only once the writer thread is gone, which `write` reports.
        let _ = self.tx.send(Write {
            change,
            ack: None,
            bytes: 0,
        });
    }

    /// Where the engine sends the events of `execution_id`: each becomes a
    /// journal entry with the `redact` values masked.
    pub fn sink(&self, execution_id: ExecutionId, redact: Vec<String>) -> EventSink {
        let tx = self.tx.clone();
        Arc::new(move |event| {
            let (entry, bytes) = entry(&event, &redact);
            let change = Change::Append {
                execution_id: execution_id.clone(),
                entries: vec![entry],
            };
            let _ = tx.send(Write {
                change,
                ack: None,
                bytes,
            });
        })
    }
}

fn gone() -> StoreError {
    StoreError::Database("the journal writer has stopped".into())
}

/// What the writer keeps about one execution between its changes.
#[derive(Default)]
struct Tally {
    written: u64,
    truncated: bool,
    failure: Option<String>,
}

fn write_loop(store: &dyn Store, bus: &Bus<JournalUpdate>, mut rx: mpsc::UnboundedReceiver<Write>) {
    let mut tallies: HashMap<ExecutionId, Tally> = HashMap::new();
    while let Some(first) = rx.blocking_recv() {
        let (changes, acks) = take_batch(first, &mut rx, &mut tallies);
        let outcomes: Vec<Applied> = match store.commit(&changes) {
            Ok(outcomes) => outcomes,
            Err(e) => {
                let message = e.to_string();
                changes
                    .iter()
                    .map(|_| Err(StoreError::Database(message.clone())))
                    .collect()
            }
        };
        for ((change, ack), outcome) in changes.into_iter().zip(acks).zip(outcomes) {
            let id = ExecutionId::from(change.execution_id());
            if let Err(e) = &outcome {
                tracing::error!(execution = %id, error = %e, "journal write failed");
                let tally = tallies.entry(id.clone()).or_default();
                tally.failure.get_or_insert_with(|| e.to_string());
            }
            let answer = match change {
                Change::Append { entries, .. } => {
                    if let Ok(seqs) = outcome {
                        for (seq, e) in seqs.into_iter().zip(entries) {
                            bus.publish(JournalUpdate {
                                execution_id: id.clone(),
                                entry: Arc::new(e.stored(seq)),
                            });
                        }
                    }
                    Ok(())
                }
                Change::Finish { .. } => match tallies.remove(&id).and_then(|t| t.failure) {
                    Some(failure) if outcome.is_ok() => Err(StoreError::Database(format!(
                        "some journal entries were not written: {failure}"
                    ))),
                    _ => outcome.map(drop),
                },
                Change::Create(_) | Change::Running(_) | Change::Resume { .. } => outcome.map(drop),
            };
            if let Some(ack) = ack {
                let _ = ack.send(answer);
            }
        }
    }
}

/// `first` and whatever else is queued, up to [`BATCH`] writes or
/// [`BATCH_BYTES`] of entries, with each journal capped. An execution's events arrive one at a time; appends that
/// follow each other (for that execution) are merged into one change.
fn take_batch(
    first: Write,
    rx: &mut mpsc::UnboundedReceiver<Write>,
    tallies: &mut HashMap<ExecutionId, Tally>,
) -> (Vec<Change>, Vec<Option<Ack>>) {
    let mut changes: Vec<Change> = Vec::with_capacity(BATCH);
    let mut acks: Vec<Option<Ack>> = Vec::with_capacity(BATCH);
    // Where each execution's latest change in the batch is.
    let mut latest: HashMap<String, usize> = HashMap::new();
    let mut taken = 0;
    let mut bytes = 0;
    let mut next = Some(first);
    while let Some(Write {
        mut change,
        ack,
        bytes: size,
    }) = next
    {
        taken += 1;
        bytes += size;
        if let Change::Append {
            execution_id,
            entries,
        } = &mut change
        {
            cap(tallies.entry(execution_id.clone()).or_default(), entries);
        }
        let mut merged = false;
        if let Some(&at) = latest.get(change.execution_id())
            && ack.is_none()
            && acks[at].is_none()
            && let (
                Change::Append {
                    entries: before, ..
                },
                Change::Append { entries, .. },
            ) = (&mut changes[at], &mut change)
        {
            before.append(entries);
            merged = true;
        }
        if !merged {
            latest.insert(change.execution_id().to_string(), changes.len());
            changes.push(change);
            acks.push(ack);
        }
        next = if taken < BATCH && bytes < BATCH_BYTES {
            rx.try_recv().ok()
        } else {
            None
        };
    }
    (changes, acks)
}

/// Holds an execution's journal to [`MAX_ENTRIES`]: past it, one marker,
/// then only the final entry.
fn cap(tally: &mut Tally, entries: &mut Vec<NewEntry>) {
    if tally.written + entries.len() as u64 <= MAX_ENTRIES && !tally.truncated {
        tally.written += entries.len() as u64;
        return;
    }
    let mut kept = Vec::new();
    for e in entries.drain(..) {
        let finished = matches!(
            e.record,
            Record::Event(ExecutionEvent::ExecutionFinished { .. })
        );
        if tally.written >= MAX_ENTRIES && !finished {
            if !tally.truncated {
                tally.truncated = true;
                tally.written += 1;
                kept.push(NewEntry::now(Record::Note(Note::JournalTruncated {
                    reason: format!(
                        "more than {MAX_ENTRIES} entries; only the final entry follows"
                    ),
                })));
            }
            continue;
        }
        tally.written += 1;
        kept.push(e);
    }
    *entries = kept;
}

/// The journal entry for an event, and its size in bytes of JSON: the event
/// as its record, secrets redacted (in its JSON text, so no field escapes),
/// size capped ([`MAX_ENTRY_BYTES`], or [`MAX_STEP_DATA_BYTES`] for a
/// step's input and output).
fn entry(event: &ExecutionEvent, redact: &[String]) -> (NewEntry, usize) {
    let mut text = serde_json::to_string(event).unwrap_or_else(|_| "null".into());
    let mut redacted = false;
    for secret in redact.iter().filter(|s| !s.is_empty()) {
        if text.contains(secret.as_str()) {
            let escaped = serde_json::to_string(secret).unwrap_or_default();
            let inner = escaped.trim_matches('"');
            text = text.replace(inner, REDACTED);
            redacted = true;
        }
    }
    let cap = match event {
        ExecutionEvent::StepStarted { .. } | ExecutionEvent::StepSucceeded { .. } => {
            MAX_STEP_DATA_BYTES
        }
        _ => MAX_ENTRY_BYTES,
    };
    if text.len() > cap {
        let marker = Record::Oversized(Oversized {
            kind: event.kind().to_string(),
            truncated: true,
            original_bytes: text.len(),
            step_id: event.step_id().map(str::to_string),
        });
        return (NewEntry::now(marker), 0);
    }
    let record = if redacted {
        Record::from_value(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    } else {
        Record::Event(event.clone())
    };
    (NewEntry::now(record), text.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ExecutionStatus;
    use crate::store::{ExecutionRecord, MemoryStore, now};
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
        let (e, _) = entry(
            &started("s", json!({"key": "hunter2"})),
            &["hunter2".into()],
        );
        assert_eq!(e.record.to_value()["input"]["key"], REDACTED);
        assert_eq!(e.record.step_id(), Some("s"));

        // A log line past the entry cap is dropped for a marker…
        let line = ExecutionEvent::AgentLog {
            step_id: "s".into(),
            attempt: 1,
            line: serde_json::from_value(
                json!({"level": "info", "message": "y".repeat(MAX_ENTRY_BYTES), "at_ms": 0}),
            )
            .unwrap(),
        };
        let (big, bytes) = entry(&line, &[]);
        assert!(
            matches!(&big.record, Record::Oversized(o) if o.truncated && o.original_bytes > MAX_ENTRY_BYTES)
        );
        assert_eq!(
            (big.record.kind(), big.record.step_id(), bytes),
            ("agent-log", Some("s"), 0)
        );

        // …while a step's input and output are kept whole up to their own.
        let input = json!({"x": "y".repeat(MAX_ENTRY_BYTES * 4)});
        let (kept, bytes) = entry(&started("s", input.clone()), &[]);
        assert_eq!(kept.record.to_value()["input"], input);
        assert!(bytes > MAX_ENTRY_BYTES * 4);
        let output = ExecutionEvent::StepSucceeded {
            step_id: "s".into(),
            output: json!("y".repeat(MAX_STEP_DATA_BYTES)),
            attempts: 1,
            duration_ms: 1.0,
            via_fallback: None,
        };
        let (big, _) = entry(&output, &[]);
        assert!(
            matches!(&big.record, Record::Oversized(o) if o.step_id.as_deref() == Some("s") && o.original_bytes > MAX_STEP_DATA_BYTES)
        );
        assert_eq!(big.record.kind(), "step-succeeded");
    }

    fn record(id: &str) -> ExecutionRecord {
        ExecutionRecord {
            id: id.into(),
            workflow_id: "w".into(),
            workflow_name: "n".into(),
            status: ExecutionStatus::Pending,
            started_at: now(),
            finished_at: None,
            input: json!({}),
            result: None,
            owner_pid: std::process::id(),
            workflow: None,
            idempotency_key: None,
            request_hash: None,
        }
    }

    fn finish(id: &str) -> Change {
        Change::Finish {
            execution_id: id.into(),
            status: ExecutionStatus::Succeeded,
            finished_at: now(),
            result: json!({"ok": true}),
        }
    }

    #[tokio::test]
    async fn every_event_is_durable_in_order_before_it_is_published() {
        let store: Arc<MemoryStore> = Arc::new(MemoryStore::new());
        let bus = Arc::new(Bus::new());
        let mut watcher = bus.subscribe(10_000);
        let writer = JournalWriter::start(store.clone(), bus.clone()).unwrap();
        writer
            .write(Change::Create(Box::new(record("x"))))
            .await
            .unwrap();
        writer
            .write(Change::Create(Box::new(record("y"))))
            .await
            .unwrap();
        writer.send(Change::Running("x".into()));
        let (x, y) = (
            writer.sink("x".into(), vec![]),
            writer.sink("y".into(), vec!["hunter2".into()]),
        );
        for i in 0..1000 {
            x(started(&format!("s{i}"), json!(i)));
            y(started(&format!("s{i}"), json!("hunter2")));
        }
        writer.write(finish("x")).await.unwrap();
        writer.write(finish("y")).await.unwrap();
        for id in ["x", "y"] {
            let journal = store.journal(id, 0, 5000).unwrap();
            assert_eq!(journal.len(), 1000);
            assert!(journal.iter().enumerate().all(
                |(i, e)| e.seq == i as u64 + 1 && e.step_id() == Some(format!("s{i}").as_str())
            ));
            let record = store.execution(id).unwrap().unwrap();
            assert_eq!(record.status, ExecutionStatus::Succeeded);
        }
        assert_eq!(
            store.journal("y", 0, 1).unwrap()[0].record.to_value()["input"],
            REDACTED
        );
        let mut published = HashMap::new();
        while let Some(u) = watcher.try_recv() {
            let seen = published.entry(u.execution_id).or_insert(0);
            *seen += 1;
            assert_eq!(u.entry.seq, *seen);
        }
        assert_eq!(published.get("x"), Some(&1000));
        assert_eq!(published.get("y"), Some(&1000));
    }

    #[tokio::test]
    async fn a_lost_entry_is_reported_when_the_execution_finishes() {
        let store: Arc<MemoryStore> = Arc::new(MemoryStore::new());
        let writer = JournalWriter::start(store.clone(), Arc::new(Bus::new())).unwrap();
        // Events of an execution that was never recorded cannot be written.
        writer.sink("ghost".into(), vec![])(started("s", json!(1)));
        writer
            .write(Change::Create(Box::new(record("ghost"))))
            .await
            .unwrap();
        let err = writer.write(finish("ghost")).await.unwrap_err();
        assert!(err.to_string().contains("not written"), "{err}");
        let err = writer.write(finish("nobody")).await.unwrap_err();
        assert!(matches!(err, StoreError::UnknownExecution(_)), "{err}");
    }

    #[test]
    fn a_journal_past_its_cap_keeps_a_marker_and_the_final_entry() {
        let mut tally = Tally {
            written: MAX_ENTRIES - 1,
            ..Tally::default()
        };
        let finished = NewEntry::now(Record::Event(ExecutionEvent::ExecutionFinished {
            status: ExecutionStatus::Succeeded,
            duration_ms: 1,
            error: None,
        }));
        let step = |id: &str| entry(&started(id, json!(1)), &[]).0;
        let mut entries = vec![step("a"), step("b"), step("c"), finished];
        cap(&mut tally, &mut entries);
        let kinds: Vec<&str> = entries.iter().map(|e| e.record.kind()).collect();
        assert_eq!(
            kinds,
            ["step-started", "journal-truncated", "execution-finished"]
        );
        let mut more = vec![step("d")];
        cap(&mut tally, &mut more);
        assert!(more.is_empty());
    }
}
