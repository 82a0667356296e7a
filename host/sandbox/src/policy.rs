//! What one agent may do and use: its limits and its grants.
//!
//! Like wasmtime's `WasiCtxBuilder`, a [`SandboxPolicy`] starts from nothing
//! and every capability is an explicit grant. It is plain data (serde), built
//! once at the edge (CLI flags, project config) and checked by
//! [`SandboxPolicy::validate`]; every invocation then turns it into a fresh
//! sandbox.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::egress::HostPattern;
use super::fixtures::HttpFixtures;

/// Default wall-clock deadline of one invocation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default fuel budget: roughly a few seconds of pure CPU work.
pub const DEFAULT_FUEL: u64 = 5_000_000_000;
/// Default cap on each linear memory of the agent.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
/// Default cap on the elements of each table of the agent.
pub const DEFAULT_TABLE_ELEMENTS: u64 = 20_000;
/// Default cap on the size of the JSON output.
pub const DEFAULT_OUTPUT_BYTES: u64 = 8 * 1024 * 1024;
/// Default cap on log lines and events, in bytes, per invocation.
pub const DEFAULT_LOG_BYTES: u64 = 1024 * 1024;
/// Default byte quota of a writable directory grant.
pub const DEFAULT_DIR_QUOTA_BYTES: u64 = 256 * 1024 * 1024;
/// Default file quota of a writable directory grant.
pub const DEFAULT_DIR_QUOTA_FILES: u64 = 10_000;
/// Default cap on what the agent writes to stdout and stderr, per stream.
pub const DEFAULT_STDIO_BYTES: usize = 64 * 1024;

/// Resource limits for one invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Limits {
    /// Wall-clock deadline, in milliseconds.
    pub timeout_ms: u64,
    /// Fuel: an upper bound on the WebAssembly instructions executed.
    pub fuel: u64,
    /// Maximum size of each linear memory, in bytes.
    pub memory_bytes: u64,
    /// Maximum number of elements of each table.
    pub table_elements: u64,
    /// Maximum size of the output JSON text, in bytes.
    pub output_bytes: u64,
    /// Maximum volume of log lines and events, in bytes; past it lines are
    /// dropped and counted.
    pub log_bytes: u64,
    /// How many invocations of this agent may run at once (a bulkhead);
    /// further calls wait their turn up to their queue timeout. `None`: only
    /// the host's own caps apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout_ms: DEFAULT_TIMEOUT.as_millis() as u64,
            fuel: DEFAULT_FUEL,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            table_elements: DEFAULT_TABLE_ELEMENTS,
            output_bytes: DEFAULT_OUTPUT_BYTES,
            log_bytes: DEFAULT_LOG_BYTES,
            max_concurrency: None,
        }
    }
}

impl Limits {
    /// The wall-clock deadline as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// A directory the agent may see, mounted at `guest_path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DirGrant {
    /// The directory on the host.
    pub host_path: PathBuf,
    /// Where the agent sees it (for example `/data`).
    pub guest_path: String,
    /// Whether the agent may create, change and delete files in it.
    #[serde(default)]
    pub writable: bool,
    /// For a writable grant: most bytes it may hold (what is there plus
    /// what a call writes); default [`DEFAULT_DIR_QUOTA_BYTES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
    /// For a writable grant: most files, directories and links it may
    /// hold; default [`DEFAULT_DIR_QUOTA_FILES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_files: Option<u64>,
}

impl DirGrant {
    /// The byte quota in force.
    pub fn quota_bytes(&self) -> u64 {
        self.quota_bytes.unwrap_or(DEFAULT_DIR_QUOTA_BYTES)
    }

    /// The file quota in force.
    pub fn quota_files(&self) -> u64 {
        self.quota_files.unwrap_or(DEFAULT_DIR_QUOTA_FILES)
    }
}

/// A secret value. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(value.into())
    }

    /// The value itself, for handing to the agent that was granted it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue([REDACTED])")
    }
}

/// Deny-by-default capabilities of one agent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Grants {
    /// Hosts the agent may send HTTP requests to, such as `api.example.com`,
    /// `https://*.example.com`, or `127.0.0.1:8080`. Empty: no network.
    pub allowed_hosts: Vec<HostPattern>,
    /// Directories the agent may see. Empty: no filesystem.
    pub dirs: Vec<DirGrant>,
    /// Environment variables the agent may read, by name; the value is taken
    /// from the host's environment when the policy is built. Empty: none.
    pub env: Vec<String>,
    /// Secrets the agent may read through `host.get-secret`, by name.
    pub secrets: Vec<String>,
}

/// Everything that bounds one agent: limits and grants, plus the resolved
/// values of what was granted.
#[derive(Debug, Clone, Default)]
pub struct SandboxPolicy {
    /// Per-invocation resource limits.
    pub limits: Limits,
    /// Capabilities.
    pub grants: Grants,
    /// Values of granted environment variables (name → value).
    pub env_values: BTreeMap<String, String>,
    /// Values of granted secrets (name → value); a granted secret missing
    /// here reads as `not-set`.
    pub secret_values: BTreeMap<String, SecretValue>,
    /// Test mode: outbound requests the allowlist lets through are answered
    /// from these fixtures instead of the network.
    pub http_fixtures: Option<HttpFixtures>,
    /// Whether the HTTP exchanges of a watched call (a workflow step) are
    /// reported to its observer, so the journal can replay them.
    pub recording: Recording,
    /// A replay: the clock readings and random numbers to hand out, as a
    /// recorded call received them.
    pub replay_inputs: Option<crate::inputs::RecordedInputs>,
}

/// What of a call's traffic with the outside is recorded for replay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recording {
    /// Nothing.
    Off,
    /// Outbound HTTP exchanges (the default).
    #[default]
    Http,
    /// HTTP exchanges, clock readings and random numbers.
    All,
}

/// A policy that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// A limit is zero or past what the engine was configured for.
    #[error("limit `{name}` must be between {min} and {max}, got {value}")]
    LimitOutOfRange {
        /// The limit's name as written in configuration.
        name: &'static str,
        /// The value given.
        value: u64,
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
    },
    /// A granted directory does not exist or is not a directory.
    #[error("granted directory `{0}` does not exist or is not a directory")]
    MissingDir(PathBuf),
    /// A guest path is not absolute.
    #[error("guest path `{0}` must be absolute, such as `/data`")]
    RelativeGuestPath(String),
}

impl SandboxPolicy {
    /// A policy with the given limits and no grants.
    pub fn with_limits(limits: Limits) -> Self {
        SandboxPolicy {
            limits,
            ..SandboxPolicy::default()
        }
    }

    /// Reads the values of the granted environment variables from the host
    /// environment (missing ones are simply not set for the agent).
    pub fn resolve_env_from_host(&mut self) {
        self.env_values = self
            .grants
            .env
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|v| (name.clone(), v)))
            .collect();
    }

    /// Checks the policy against the engine's ceilings.
    pub fn validate(&self, max_memory_bytes: u64) -> Result<(), PolicyError> {
        let l = &self.limits;
        let checks: [(&'static str, u64, u64, u64); 7] = [
            ("timeoutMs", l.timeout_ms, 1, 24 * 3600 * 1000),
            ("fuel", l.fuel, 1, u64::MAX),
            ("memoryBytes", l.memory_bytes, 64 * 1024, max_memory_bytes),
            ("tableElements", l.table_elements, 1, 10_000_000),
            ("outputBytes", l.output_bytes, 1, 1 << 30),
            ("logBytes", l.log_bytes, 0, 1 << 30),
            (
                "maxConcurrency",
                l.max_concurrency.map_or(1, u64::from),
                1,
                u64::from(u32::MAX),
            ),
        ];
        for (name, value, min, max) in checks {
            if value < min || value > max {
                return Err(PolicyError::LimitOutOfRange {
                    name,
                    value,
                    min,
                    max,
                });
            }
        }
        for dir in &self.grants.dirs {
            if !dir.guest_path.starts_with('/') {
                return Err(PolicyError::RelativeGuestPath(dir.guest_path.clone()));
            }
            if !dir.host_path.is_dir() {
                return Err(PolicyError::MissingDir(dir.host_path.clone()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_never_print() {
        let s = SecretValue::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn default_policy_grants_nothing() {
        let p = SandboxPolicy::default();
        assert!(p.grants.allowed_hosts.is_empty());
        assert!(p.grants.dirs.is_empty());
        assert!(p.grants.env.is_empty());
        assert!(p.grants.secrets.is_empty());
        assert_eq!(p.limits.timeout(), DEFAULT_TIMEOUT);
        p.validate(DEFAULT_MEMORY_BYTES).unwrap();
    }

    #[test]
    fn memory_above_the_engine_ceiling_is_rejected() {
        let mut p = SandboxPolicy::default();
        p.limits.memory_bytes = 2 * DEFAULT_MEMORY_BYTES;
        let err = p.validate(DEFAULT_MEMORY_BYTES).unwrap_err();
        assert!(matches!(
            err,
            PolicyError::LimitOutOfRange {
                name: "memoryBytes",
                ..
            }
        ));
    }

    #[test]
    fn zero_timeout_is_rejected() {
        let mut p = SandboxPolicy::default();
        p.limits.timeout_ms = 0;
        assert!(p.validate(DEFAULT_MEMORY_BYTES).is_err());
    }

    #[test]
    fn relative_guest_paths_and_missing_dirs_are_rejected() {
        let mut p = SandboxPolicy::default();
        p.grants.dirs.push(DirGrant {
            host_path: std::env::temp_dir(),
            guest_path: "data".into(),
            writable: false,
            quota_bytes: None,
            quota_files: None,
        });
        assert_eq!(
            p.validate(DEFAULT_MEMORY_BYTES),
            Err(PolicyError::RelativeGuestPath("data".into()))
        );
        p.grants.dirs[0].guest_path = "/data".into();
        p.grants.dirs[0].host_path = "/definitely/not/here".into();
        assert!(matches!(
            p.validate(DEFAULT_MEMORY_BYTES),
            Err(PolicyError::MissingDir(_))
        ));
    }
}
