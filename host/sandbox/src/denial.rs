//! Record of what an agent asked for and was refused.
//!
//! Denied attempts are facts worth keeping: they end up in the invocation's
//! outcome (and, later, in the journal) with what was asked for and why it
//! was refused. Both the `wasi:http` send hook and the `host` interface write
//! here, so the log is shared behind a lock.

use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// At most this many denials are kept per invocation, the rest only
/// counted: a hostile agent hammering a forbidden host must not grow host
/// memory without bound.
const MAX_DENIALS: usize = 64;
/// Longest target kept, in bytes: a secret name or URL is chosen by the
/// agent, and 64 names of 16 MiB each once took a host to 2 GB.
pub const MAX_TARGET_BYTES: usize = 256;

/// Which capability a denied attempt wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// An outbound HTTP request.
    Http,
    /// A secret read through `host.get-secret`.
    Secret,
    /// A change to a granted directory past its quota, or a link out of it.
    File,
}

/// One refused attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    /// The capability asked for.
    pub capability: Capability,
    /// What was asked for: a URL without its query, or a secret's name.
    pub target: String,
    /// Why it was refused.
    pub reason: String,
    /// What to grant to allow it, when one grant would: a host pattern for
    /// `allowed_hosts`, or a secret's name for `secrets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

/// The denials of one invocation, shared by the places that can refuse.
#[derive(Debug, Clone, Default)]
pub(crate) struct DenialLog {
    inner: Arc<Mutex<DenialEntries>>,
}

#[derive(Debug, Default)]
struct DenialEntries {
    kept: Vec<Denial>,
    dropped: u64,
}

impl DenialLog {
    /// Records a refusal; `target` is cut to [`MAX_TARGET_BYTES`] (saying
    /// how much was cut) before anything keeps or logs it.
    pub(crate) fn record(&self, capability: Capability, target: &str, reason: String) {
        self.push(capability, target, reason, None);
    }

    /// Records a refusal that granting `grant` would have let through.
    pub(crate) fn record_grantable(
        &self,
        capability: Capability,
        target: &str,
        reason: String,
        grant: &str,
    ) {
        self.push(capability, target, reason, Some(bounded(grant)));
    }

    fn push(&self, capability: Capability, target: &str, reason: String, grant: Option<String>) {
        let mut entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.kept.len() >= MAX_DENIALS {
            entries.dropped += 1;
            return;
        }
        let target = bounded(target);
        tracing::debug!(?capability, %target, %reason, "capability denied");
        entries.kept.push(Denial {
            capability,
            target,
            reason,
            grant,
        });
    }

    /// The denials recorded so far (at most [`MAX_DENIALS`]) and how many
    /// more were only counted.
    pub(crate) fn snapshot(&self) -> (Vec<Denial>, u64) {
        let entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        (entries.kept.clone(), entries.dropped)
    }
}

/// `text`, or its first [`MAX_TARGET_BYTES`] (on a character boundary)
/// followed by how many bytes were left out.
fn bounded(text: &str) -> String {
    if text.len() <= MAX_TARGET_BYTES {
        return text.to_string();
    }
    let mut end = MAX_TARGET_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes)", &text[..end], text.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_bounded_number_of_denials() {
        let log = DenialLog::default();
        for i in 0..(MAX_DENIALS + 10) {
            log.record(Capability::Http, &format!("http://x/{i}"), "no".into());
        }
        let (kept, dropped) = log.snapshot();
        assert_eq!(kept.len(), MAX_DENIALS);
        assert_eq!(dropped, 10);
    }

    #[test]
    fn long_targets_are_cut_and_say_how_much_was_cut() {
        let log = DenialLog::default();
        log.record(Capability::Secret, &"é".repeat(1000), "no".into());
        let (kept, _) = log.snapshot();
        let target = &kept[0].target;
        assert!(target.len() <= MAX_TARGET_BYTES + 32, "{target}");
        assert!(target.ends_with("… (1744 more bytes)"), "{target}");
    }
}
