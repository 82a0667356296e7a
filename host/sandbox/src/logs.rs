//! What an agent says while it runs: log lines and progress events.
//!
//! Both share one byte budget per invocation ([`Limits::log_bytes`]). Past the
//! budget, lines are dropped and counted rather than failing the agent: a
//! chatty agent should not lose its result, and a hostile one must not grow
//! host memory. Granted secret values are redacted before anything is kept.
//!
//! [`Limits::log_bytes`]: super::Limits::log_bytes

use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Notify;

pub use orchestr8_types::records::{AgentEvent, AgentLogLine, LogLevel, REDACTED, redact};

/// A log line or a progress event, as an observer sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentRecord {
    /// A log line.
    Log(AgentLogLine),
    /// A progress event.
    Event(AgentEvent),
    /// An outbound HTTP exchange, recorded for replay.
    Exchange(RecordedExchange),
    /// The clock readings and random numbers the call received (reported
    /// once, as it ends), recorded for replay.
    Inputs(crate::inputs::RecordedInputs),
}

/// One outbound HTTP exchange as the agent saw it: the request's method and
/// URL, and the response, as a fixture that can answer it again.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedExchange {
    /// The request and its answer (the body as text).
    pub exchange: crate::fixtures::HttpFixture,
    /// False when the body is not all there: larger than the recording cap,
    /// not text, or not read to its end by the agent.
    pub complete: bool,
}

/// Sees each line and event the moment the agent records it (after
/// redaction, within the budget), with the attempt number: how the journal
/// shows progress live instead of after the call. Must not block.
#[derive(Clone)]
pub struct AgentObserver(Arc<dyn Fn(u32, AgentRecord) + Send + Sync>);

impl AgentObserver {
    /// An observer calling `f(attempt, record)`.
    pub fn new(f: impl Fn(u32, AgentRecord) + Send + Sync + 'static) -> Self {
        AgentObserver(Arc::new(f))
    }

    pub(crate) fn tell(&self, attempt: u32, record: AgentRecord) {
        (self.0)(attempt, record);
    }
}

impl std::fmt::Debug for AgentObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentObserver")
    }
}

/// The bounded record of one invocation's logs and events.
#[derive(Debug)]
pub(crate) struct AgentRecorder {
    started: Instant,
    budget: u64,
    used: u64,
    redact: Vec<String>,
    observer: Option<(AgentObserver, u32)>,
    /// Told of every record, kept or not: the agent is alive.
    activity: Arc<Notify>,
    pub(crate) lines: Vec<AgentLogLine>,
    pub(crate) events: Vec<AgentEvent>,
    pub(crate) dropped: u64,
}

impl AgentRecorder {
    /// A recorder with `budget` bytes, redacting `redact`, telling
    /// `observer` (with the attempt number) of each record.
    pub(crate) fn new(
        budget: u64,
        redact: Vec<String>,
        observer: Option<(AgentObserver, u32)>,
    ) -> Self {
        AgentRecorder {
            started: Instant::now(),
            budget,
            used: 0,
            redact: redact.into_iter().filter(|s| !s.is_empty()).collect(),
            observer,
            activity: Arc::default(),
            lines: Vec::new(),
            events: Vec::new(),
            dropped: 0,
        }
    }

    /// Reports what the call read from the clocks and random sources.
    pub(crate) fn report_inputs(&self, inputs: crate::inputs::RecordedInputs) {
        self.tell(|| AgentRecord::Inputs(inputs));
    }

    /// Notified of each record the agent makes (a heartbeat).
    pub(crate) fn activity(&self) -> Arc<Notify> {
        self.activity.clone()
    }

    fn tell(&self, record: impl FnOnce() -> AgentRecord) {
        if let Some((observer, attempt)) = &self.observer {
            (observer.0)(*attempt, record());
        }
    }

    fn admit(&mut self, size: usize) -> bool {
        let size = size as u64;
        if self.used.saturating_add(size) > self.budget {
            self.dropped += 1;
            return false;
        }
        self.used += size;
        true
    }

    fn at_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub(crate) fn log(&mut self, level: LogLevel, message: String, fields: Vec<(String, String)>) {
        self.activity.notify_one();
        let size = message.len() + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if !self.admit(size) {
            return;
        }
        let line = AgentLogLine {
            level,
            message: self.redacted(message),
            fields: fields
                .into_iter()
                .map(|(k, v)| (k, self.redacted(v)))
                .collect(),
            at_ms: self.at_ms(),
        };
        self.tell(|| AgentRecord::Log(line.clone()));
        self.lines.push(line);
    }

    pub(crate) fn event(&mut self, kind: String, payload: String) {
        self.activity.notify_one();
        if !self.admit(kind.len() + payload.len()) {
            return;
        }
        let payload = self.redacted(payload);
        let payload = serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload));
        let at_ms = self.at_ms();
        let event = AgentEvent {
            kind,
            payload,
            at_ms,
        };
        self.tell(|| AgentRecord::Event(event.clone()));
        self.events.push(event);
    }

    /// Replaces every granted secret value in `text`.
    pub(crate) fn redacted(&self, text: String) -> String {
        redact(text, &self.redact)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn lines_past_the_budget_are_dropped_and_counted() {
        let mut r = AgentRecorder::new(10, vec![], None);
        r.log(LogLevel::Info, "12345".into(), vec![]);
        r.log(LogLevel::Info, "12345".into(), vec![]);
        r.log(LogLevel::Info, "1".into(), vec![]);
        r.event("p".into(), "{}".into());
        assert_eq!(r.lines.len(), 2);
        assert_eq!(r.dropped, 2);
    }

    #[test]
    fn secret_values_are_redacted_from_lines_fields_and_events() {
        let mut r = AgentRecorder::new(1000, vec!["s3cr3t".into()], None);
        r.log(
            LogLevel::Warn,
            "key is s3cr3t".into(),
            vec![("k".into(), "xs3cr3tx".into())],
        );
        r.event("e".into(), "{\"v\":\"s3cr3t\"}".into());
        assert_eq!(r.lines[0].message, "key is [REDACTED]");
        assert_eq!(r.lines[0].fields[0].1, "x[REDACTED]x");
        assert_eq!(r.events[0].payload, serde_json::json!({"v": "[REDACTED]"}));
    }

    #[test]
    fn event_payload_that_is_not_json_is_kept_as_text() {
        let mut r = AgentRecorder::new(1000, vec![], None);
        r.event("note".into(), "plain words".into());
        assert_eq!(r.events[0].payload, serde_json::json!("plain words"));
    }

    #[test]
    fn the_observer_sees_each_admitted_record_with_its_attempt() {
        let seen: Arc<Mutex<Vec<(u32, AgentRecord)>>> = Arc::default();
        let sink = seen.clone();
        let observer = AgentObserver::new(move |attempt, record| {
            sink.lock().unwrap().push((attempt, record));
        });
        let mut r = AgentRecorder::new(12, vec!["pw".into()], Some((observer, 3)));
        r.log(LogLevel::Info, "the pw".into(), vec![]);
        r.event("p".into(), "1".into());
        r.log(LogLevel::Info, "past the budget".into(), vec![]);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert!(matches!(&seen[0], (3, AgentRecord::Log(l)) if l.message == "the [REDACTED]"));
        assert!(matches!(&seen[1], (3, AgentRecord::Event(e)) if e.kind == "p"));
    }
}
