//! What the CLI itself writes on stderr besides the host's log lines:
//! errors, progress, notices. With `--log-format json` every such line is
//! one JSON object in the shape of the log lines (`timestamp`, `level`,
//! `fields` with the `message`, `target`), so a JSON parser can read all of
//! stderr; otherwise it is the plain text.
//!
//! Write errors are ignored: a closed stderr (`run … 2>&1 | head`) must not
//! stop an execution, as `eprintln!` would by panicking.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use orchestr8_host::ErrorCode;
use serde_json::{Map, Value, json};

static JSON: AtomicBool = AtomicBool::new(false);

/// Chooses JSON lines (`--log-format json`) or plain text.
pub fn use_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// Whether stderr carries JSON lines.
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// One line: `text` as it is, or as the message of a JSON log line at
/// `level` with `fields` beside it.
pub fn line(level: &str, target: &str, text: &str, fields: Map<String, Value>) {
    let line = if json() {
        let mut all = Map::new();
        all.insert("message".into(), text.into());
        all.extend(fields);
        json!({
            "timestamp": orchestr8_host::store::now(),
            "level": level,
            "fields": all,
            "target": target,
        })
        .to_string()
    } else {
        text.to_string()
    };
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// `error[CODE]: message`.
pub fn error(code: ErrorCode, message: &str) {
    let mut fields = Map::new();
    fields.insert("code".into(), code.as_str().into());
    line(
        "ERROR",
        "orchestr8",
        &format!("error[{code}]: {message}"),
        fields,
    );
}

/// A notice for the person at the terminal (`cancelling…`, `installing…`).
pub fn notice(text: &str) {
    line("INFO", "orchestr8", text, Map::new());
}

/// `warning: text`, a WARN line in JSON.
pub fn warning(text: &str) {
    line("WARN", "orchestr8", &format!("warning: {text}"), Map::new());
}
