//! Record of what an agent asked for and was refused.
//!
//! Denied attempts are facts worth keeping: they end up in the invocation's
//! outcome (and, later, in the journal) with what was asked for and why it
//! was refused. Both the `wasi:http` send hook and the `host` interface write
//! here, so the log is shared behind a lock.

use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// At most this many denials are kept per invocation; a hostile agent
/// hammering a forbidden host must not grow host memory without bound.
const MAX_DENIALS: usize = 64;

/// Which capability a denied attempt wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// An outbound HTTP request.
    Http,
    /// A secret read through `host.get-secret`.
    Secret,
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
    pub(crate) fn record(&self, capability: Capability, target: String, reason: String) {
        tracing::debug!(?capability, %target, %reason, "capability denied");
        let mut entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.kept.len() < MAX_DENIALS {
            entries.kept.push(Denial {
                capability,
                target,
                reason,
            });
        } else {
            entries.dropped += 1;
        }
    }

    /// The denials recorded so far (at most [`MAX_DENIALS`]).
    pub(crate) fn snapshot(&self) -> Vec<Denial> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .kept
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_bounded_number_of_denials() {
        let log = DenialLog::default();
        for i in 0..(MAX_DENIALS + 10) {
            log.record(Capability::Http, format!("http://x/{i}"), "no".into());
        }
        assert_eq!(log.snapshot().len(), MAX_DENIALS);
        assert_eq!(log.inner.lock().unwrap().dropped, 10);
    }
}
