//! A journal entry, as the writer makes it and every reader matches on it.
//!
//! Each entry holds one [`Record`]: an [`ExecutionEvent`], or a note of the
//! journal's own (an entry too large to keep, the cap on entries, an
//! execution whose process died). The fields stores index and interfaces
//! show (kind, step, attempt, duration, code) are read off the record here,
//! in one place; the JSON shape an entry has on the wire (the REST journal,
//! `inspect --json`) is serialized here too, so it stays what it always was:
//! `{seq, at, kind, stepId, attempt, durationMs, code, data}`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::execution::ExecutionEvent;
use crate::resilience::ResilienceEvent;

/// What one journal entry says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Record {
    /// Something that happened in the execution.
    Event(ExecutionEvent),
    /// An event too large to keep (past the entry cap): its kind and size.
    Oversized(Oversized),
    /// What the journal itself says.
    Note(Note),
    /// An entry this version cannot read (written by another version).
    Unknown(Value),
}

/// An event dropped for its size; `type` is the kind it had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Oversized {
    /// The event's kind (`step-succeeded`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// Always true: says the event is not here.
    pub truncated: bool,
    /// How large the event was, in bytes of JSON.
    pub original_bytes: usize,
    /// The step it was about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<String>,
}

/// The journal's own notes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum Note {
    /// The execution passed the cap on entries: only its end follows.
    JournalTruncated {
        /// Why.
        reason: String,
    },
    /// The process running the execution died before it finished.
    ExecutionInterrupted {
        /// Why.
        reason: String,
    },
    /// The execution's steps were replayed offline (`orchestr8 replay`).
    ExecutionReplayed {
        /// What came of it, in words (`2 identical, 1 diverged (second)`).
        reason: String,
        /// Per step: its id, `identical`, `diverged` or `not-replayable`,
        /// and what differs.
        steps: Value,
    },
}

impl Record {
    /// The kind, as journaled and shown (`step-started`, …).
    pub fn kind(&self) -> &str {
        match self {
            Record::Event(e) => e.kind(),
            Record::Oversized(o) => &o.kind,
            Record::Note(Note::JournalTruncated { .. }) => "journal-truncated",
            Record::Note(Note::ExecutionInterrupted { .. }) => "execution-interrupted",
            Record::Note(Note::ExecutionReplayed { .. }) => "execution-replayed",
            Record::Unknown(v) => v.get("type").and_then(Value::as_str).unwrap_or("unknown"),
        }
    }

    /// The step it is about, if any.
    pub fn step_id(&self) -> Option<&str> {
        match self {
            Record::Event(e) => e.step_id(),
            Record::Oversized(o) => o.step_id.as_deref(),
            _ => None,
        }
    }

    /// The attempt it is about, if any.
    pub fn attempt(&self) -> Option<u32> {
        match self {
            Record::Event(ExecutionEvent::AgentLog { attempt, .. })
            | Record::Event(ExecutionEvent::AgentEvent { attempt, .. })
            | Record::Event(ExecutionEvent::HttpRecorded { attempt, .. })
            | Record::Event(ExecutionEvent::InputsRecorded { attempt, .. }) => Some(*attempt),
            Record::Event(ExecutionEvent::Resilience {
                event:
                    ResilienceEvent::AttemptStarted { attempt, .. }
                    | ResilienceEvent::AttemptSucceeded { attempt, .. }
                    | ResilienceEvent::AttemptFailed { attempt, .. }
                    | ResilienceEvent::RetryScheduled { attempt, .. },
                ..
            }) => Some(*attempt),
            _ => None,
        }
    }

    /// Its duration in milliseconds (to the microsecond), if it has one.
    pub fn duration_ms(&self) -> Option<f64> {
        match self {
            Record::Event(ExecutionEvent::StepSucceeded { duration_ms, .. })
            | Record::Event(ExecutionEvent::StepFailed { duration_ms, .. }) => Some(*duration_ms),
            Record::Event(ExecutionEvent::ExecutionFinished { duration_ms, .. }) => {
                Some(*duration_ms as f64)
            }
            Record::Event(ExecutionEvent::Resilience {
                event:
                    ResilienceEvent::AttemptSucceeded { duration_ms, .. }
                    | ResilienceEvent::AttemptFailed { duration_ms, .. },
                ..
            }) => Some(*duration_ms),
            _ => None,
        }
    }

    /// Its error code, if it has one (a retry's: the failure it retries).
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Record::Event(ExecutionEvent::StepFailed { error, .. }) => Some(error.code.as_str()),
            Record::Event(ExecutionEvent::ExecutionFinished { error, .. }) => {
                error.as_ref().map(|e| e.code.as_str())
            }
            Record::Event(ExecutionEvent::Resilience { event, .. }) => match event {
                ResilienceEvent::AttemptFailed { code, .. } => Some(code.as_str()),
                ResilienceEvent::RetryScheduled { reason, .. } => Some(reason.as_str()),
                _ => None,
            },
            _ => None,
        }
    }

    /// The record as JSON (the `data` of an entry).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Reads `data` back; what this version does not know stays readable as
    /// [`Record::Unknown`].
    pub fn from_value(data: Value) -> Record {
        serde_json::from_value(data.clone()).unwrap_or(Record::Unknown(data))
    }
}

/// An entry to append; the store numbers it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    /// When (RFC 3339).
    pub at: String,
    /// What it says.
    pub record: Record,
}

impl NewEntry {
    /// `record`, now.
    pub fn now(record: Record) -> Self {
        NewEntry {
            at: crate::store::now(),
            record,
        }
    }

    /// The entry as stored at position `seq`.
    pub fn stored(self, seq: u64) -> JournalEntry {
        JournalEntry {
            seq,
            at: self.at,
            record: self.record,
        }
    }
}

/// A stored journal entry.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// Position in the execution's journal, from 1.
    pub seq: u64,
    /// When (RFC 3339).
    pub at: String,
    /// What it says.
    pub record: Record,
}

impl JournalEntry {
    /// The kind (`step-started`, …).
    pub fn kind(&self) -> &str {
        self.record.kind()
    }

    /// The step, if any.
    pub fn step_id(&self) -> Option<&str> {
        self.record.step_id()
    }

    /// The attempt, if any.
    pub fn attempt(&self) -> Option<u32> {
        self.record.attempt()
    }

    /// The duration in milliseconds, if any.
    pub fn duration_ms(&self) -> Option<f64> {
        self.record.duration_ms()
    }

    /// The error code, if any.
    pub fn code(&self) -> Option<&'static str> {
        self.record.code()
    }
}

/// The wire shape of an entry.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    seq: u64,
    at: String,
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    step_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duration_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    data: Value,
}

impl Serialize for JournalEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Wire {
            seq: self.seq,
            at: self.at.clone(),
            kind: self.kind().to_string(),
            step_id: self.step_id().map(str::to_string),
            attempt: self.attempt(),
            duration_ms: self.duration_ms(),
            code: self.code().map(str::to_string),
            data: self.record.to_value(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JournalEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(deserializer)?;
        Ok(JournalEntry {
            seq: wire.seq,
            at: wire.at,
            record: Record::from_value(wire.data),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::{ErrorBody, ErrorCode};

    fn entry(record: Record) -> JournalEntry {
        NewEntry {
            at: "2026-01-01T00:00:00.000Z".into(),
            record,
        }
        .stored(7)
    }

    #[test]
    fn the_wire_shape_is_read_off_the_record() {
        let failed = entry(Record::Event(ExecutionEvent::StepFailed {
            step_id: "s".into(),
            error: ErrorBody {
                code: ErrorCode::Timeout,
                message: "late".into(),
                details: None,
            },
            attempts: 2,
            duration_ms: 1.5,
            continued: false,
        }));
        let wire = serde_json::to_value(&failed).unwrap();
        assert_eq!(wire["kind"], "step-failed");
        assert_eq!(wire["stepId"], "s");
        assert_eq!(wire["durationMs"], 1.5);
        assert_eq!(wire["code"], "TIMEOUT");
        assert_eq!(wire["data"]["error"]["message"], "late");
        assert!(wire.get("attempt").is_none());
        let back: JournalEntry = serde_json::from_value(wire).unwrap();
        assert_eq!(back, failed);
    }

    #[test]
    fn notes_oversized_events_and_unknown_entries_read_back() {
        for record in [
            Record::Note(Note::ExecutionInterrupted {
                reason: "gone".into(),
            }),
            Record::Oversized(Oversized {
                kind: "step-started".into(),
                truncated: true,
                original_bytes: 70_000,
                step_id: Some("s".into()),
            }),
            Record::Unknown(json!({"type": "from-the-future", "x": 1})),
        ] {
            let e = entry(record.clone());
            let back: JournalEntry =
                serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
            assert_eq!(back.record, record);
        }
        assert_eq!(
            entry(Record::Oversized(Oversized {
                kind: "step-started".into(),
                truncated: true,
                original_bytes: 1,
                step_id: None,
            }))
            .kind(),
            "step-started"
        );
        assert_eq!(entry(Record::Unknown(json!({"type": "x"}))).kind(), "x");
    }
}
