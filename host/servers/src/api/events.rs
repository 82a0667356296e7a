//! `GET /executions/{id}/events`: an execution's journal as Server-Sent
//! Events, from the entry after `Last-Event-ID` (or `?after=`) to its
//! `execution-finished`, each entry as soon as it commits.
//!
//! The journal is the source, the bus only the signal: every entry sent is
//! read from the store in sequence order after the last one sent, so a
//! stream never skips or repeats one, whether the bus dropped updates for
//! a slow reader or the execution runs in another process on the same
//! state (checked every [`POLL`] when the bus is quiet). An execution run
//! by another node on a shared store is signalled by that store as its
//! commits land. Each event's `id`
//! is the entry's sequence number, which is what a client reconnecting
//! sends back as `Last-Event-ID`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;

use super::ApiError;
use super::executions::ExecutionService;
use super::extract::{ApiPath, ApiQuery};
use super::model::EventsQuery;
use orchestr8_host::bus::Subscription;
use orchestr8_host::error::ErrorCode;
use orchestr8_host::ids::ExecutionId;
use orchestr8_host::journal::JournalUpdate;
use orchestr8_host::record::JournalEntry;

/// How often the store is read again when the bus says nothing (an
/// execution another process runs publishes on that process's bus).
const POLL: Duration = Duration::from_millis(250);
/// Entries read from the store at a time.
const READ: usize = 500;
/// The bus queue of one stream: a reader past it catches up from the store.
const QUEUE: usize = 1024;

/// The handler.
pub(super) async fn events(
    State(service): State<Arc<ExecutionService>>,
    ApiPath(id): ApiPath<ExecutionId>,
    ApiQuery(query): ApiQuery<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidInput,
                    "`Last-Event-ID` must be a journal sequence number (a non-negative integer)",
                )
            })?,
        None => query.after,
    };
    // Subscribed before the first read, so nothing committed in between
    // goes unsignalled.
    let updates = service.subscribe(QUEUE);
    let elsewhere = service.subscribe_elsewhere(QUEUE);
    service.record(&id)?;
    let tail = Tail {
        service,
        id,
        after,
        updates,
        elsewhere,
        ready: Vec::new().into_iter(),
        ended: false,
    };
    Ok(Sse::new(stream::unfold(tail, Tail::next))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Where one stream is in its execution's journal.
struct Tail {
    service: Arc<ExecutionService>,
    id: ExecutionId,
    /// The last sequence number sent.
    after: u64,
    updates: Subscription<JournalUpdate>,
    /// Executions another node appended to (a shared store).
    elsewhere: Subscription<ExecutionId>,
    /// Read, not sent yet.
    ready: std::vec::IntoIter<JournalEntry>,
    /// The execution has ended and its last entry is read.
    ended: bool,
}

impl Tail {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(entry) = self.ready.next() {
                self.after = entry.seq;
                return Some((Ok(event(&entry)), self));
            }
            if self.ended {
                return None;
            }
            match self.read() {
                Ok(entries) if !entries.is_empty() => {
                    self.ended = entries.iter().any(|e| e.kind() == "execution-finished");
                    self.ready = entries.into_iter();
                }
                Ok(_) => {
                    // Nothing new: an execution that ended (its last entry
                    // sent before, or asked past) or stopped without
                    // finishing (its process died) has nothing coming.
                    if self.stopped() {
                        // Its entries commit no later than its status: what
                        // committed since the read above is the rest.
                        match self.read() {
                            Ok(rest) if !rest.is_empty() => self.ready = rest.into_iter(),
                            _ => self.ended = true,
                        }
                        continue;
                    }
                    self.wait().await;
                }
                Err(e) => {
                    // The store failed: say so, and end the stream (a client
                    // reconnects from the last id it got).
                    tracing::warn!(execution = %self.id, error = %e, "event stream ends");
                    self.ended = true;
                    let note = Event::default()
                        .event("error")
                        .data(format!("the journal could not be read: {e}"));
                    return Some((Ok(note), self));
                }
            }
        }
    }

    fn read(&self) -> Result<Vec<JournalEntry>, orchestr8_host::store::StoreError> {
        self.service
            .orchestrator()
            .store()
            .journal(&self.id, self.after, READ)
    }

    /// Whether the execution has ended or is interrupted (or is gone):
    /// nothing more will be written unless it is resumed, which a client
    /// reconnects for.
    fn stopped(&self) -> bool {
        match self.service.orchestrator().store().execution(&self.id) {
            Ok(Some(record)) => record.status.is_final(),
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// Until the bus signals an entry of this execution (committed here or
    /// by another node), or [`POLL`].
    async fn wait(&mut self) {
        let (id, after) = (&self.id, self.after);
        let here = async {
            while let Some(update) = self.updates.recv().await {
                if update.execution_id == *id && update.entry.seq > after {
                    return;
                }
            }
            // The bus is gone (the server is stopping): poll from now on.
            std::future::pending::<()>().await;
        };
        let elsewhere = async {
            while let Some(committed) = self.elsewhere.recv().await {
                if committed == *id {
                    return;
                }
            }
            std::future::pending::<()>().await;
        };
        let _ = tokio::time::timeout(POLL, async {
            tokio::select! {
                () = here => {}
                () = elsewhere => {}
            }
        })
        .await;
    }
}

/// One entry as an event: its sequence number as the id, its kind as the
/// event name, the entry (as the journal endpoint has it) as the data.
fn event(entry: &JournalEntry) -> Event {
    let data = serde_json::to_string(entry).unwrap_or_else(|_| "null".into());
    Event::default()
        .id(entry.seq.to_string())
        .event(entry.kind())
        .data(data)
}
