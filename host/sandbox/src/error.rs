//! How loading and invoking an agent fail.
//!
//! Host-side failures (deadline, fuel, memory, traps, denied capabilities)
//! and the agent's own `agent-error` land in one enum, [`InvokeError`], each
//! variant with its stable [`ErrorCode`].

use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use super::denial::Denial;
use super::policy::PolicyError;
use orchestr8_types::{Coded, ErrorCode};

/// What the agent said when it failed on its own terms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentFailure {
    /// The agent's explanation.
    pub message: String,
    /// Structured details the agent attached (JSON), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// For retryable failures: how long to wait before retrying, if the agent
    /// knows (for example from an HTTP `Retry-After` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// Why an invocation did not produce an output.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvokeError {
    /// The wall-clock deadline passed.
    #[error(
        "agent did not finish within its {limit_ms} ms deadline{}",
        if *.upstream { " (waiting for an outbound HTTP response)" } else { " (computing; no request of its own was open)" }
    )]
    Timeout {
        /// The deadline, in milliseconds.
        limit_ms: u64,
        /// Whether the agent had an outbound request open when the
        /// deadline passed: the upstream, not the input, kept it waiting.
        upstream: bool,
    },
    /// The agent recorded no log line or event for its idle timeout.
    #[error(
        "agent went silent: no log line or progress event for {limit_ms} ms (its idle timeout)"
    )]
    Idle {
        /// The idle timeout, in milliseconds.
        limit_ms: u64,
    },
    /// The fuel budget ran out.
    #[error("agent ran out of fuel (budget {budget} units)")]
    FuelExhausted {
        /// The budget it had.
        budget: u64,
    },
    /// The agent tried to grow a memory or table past its cap.
    #[error("agent exceeded its {what} limit of {limit} {unit} (asked for {requested})")]
    MemoryLimit {
        /// `memory` or `table`.
        what: &'static str,
        /// `bytes` or `elements`.
        unit: &'static str,
        /// The cap.
        limit: u64,
        /// What the agent asked for.
        requested: u64,
    },
    /// The agent trapped: a panic, a stack overflow, an invalid access.
    #[error("agent crashed: {message}")]
    Trap {
        /// What happened, with the agent's panic message when there is one.
        message: String,
    },
    /// The agent used a capability it was not granted and then failed.
    #[error("capability denied: {}", describe_denials(.denials))]
    CapabilityDenied {
        /// What the agent asked for and was refused.
        denials: Vec<Denial>,
        /// How the agent failed afterwards.
        cause: String,
    },
    /// The agent rejected its input.
    #[error("invalid input: {}", .0.message)]
    InvalidInput(AgentFailure),
    /// The agent reported a transient failure.
    #[error("agent failed (retryable): {}", .0.message)]
    Retryable(AgentFailure),
    /// The agent reported a permanent failure.
    #[error("agent failed: {}", .0.message)]
    Fatal(AgentFailure),
    /// The output is not JSON, or breaks the agent's output schema.
    #[error("agent returned invalid output: {reason}")]
    InvalidOutput {
        /// Why the output was rejected.
        reason: String,
    },
    /// The output is larger than allowed.
    #[error("agent output of {size} bytes exceeds the {limit}-byte output limit")]
    OutputTooLarge {
        /// Size of the output.
        size: u64,
        /// The output limit.
        limit: u64,
    },
    /// The invocation was cancelled.
    #[error("invocation cancelled")]
    Cancelled,
    /// No sandbox could be started within the queue timeout.
    #[error("the host is busy: {busy}; waited {waited_ms} ms (the queue timeout) without a start")]
    Overloaded {
        /// How long the call waited.
        waited_ms: u64,
        /// What was taken.
        busy: String,
    },
    /// The policy cannot be applied.
    #[error("invalid sandbox policy: {0}")]
    Policy(String),
    /// The host failed; not the agent's fault.
    #[error("internal host error: {0}")]
    Internal(String),
}

/// The first few denials; the rest are in the error's details.
fn describe_denials(denials: &[Denial]) -> String {
    const SHOWN: usize = 3;
    let mut text = denials
        .iter()
        .take(SHOWN)
        .map(|d| format!("{} ({})", d.target, d.reason))
        .collect::<Vec<_>>()
        .join("; ");
    if denials.len() > SHOWN {
        text.push_str(&format!("; and {} more", denials.len() - SHOWN));
    }
    text
}

impl From<PolicyError> for InvokeError {
    fn from(e: PolicyError) -> Self {
        InvokeError::Policy(e.to_string())
    }
}

impl Coded for InvokeError {
    fn code(&self) -> ErrorCode {
        match self {
            InvokeError::Timeout { .. } | InvokeError::Idle { .. } => ErrorCode::Timeout,
            InvokeError::FuelExhausted { .. } => ErrorCode::FuelExhausted,
            InvokeError::MemoryLimit { .. } => ErrorCode::MemoryLimit,
            InvokeError::Trap { .. } => ErrorCode::Trap,
            InvokeError::CapabilityDenied { .. } => ErrorCode::CapabilityDenied,
            InvokeError::InvalidInput(_) => ErrorCode::InvalidInput,
            InvokeError::Retryable(_) => ErrorCode::Retryable,
            InvokeError::Fatal(_) => ErrorCode::Fatal,
            InvokeError::InvalidOutput { .. } => ErrorCode::InvalidOutput,
            InvokeError::OutputTooLarge { .. } => ErrorCode::OutputTooLarge,
            InvokeError::Cancelled => ErrorCode::Cancelled,
            InvokeError::Overloaded { .. } => ErrorCode::Overloaded,
            InvokeError::Policy(_) => ErrorCode::InvalidConfig,
            InvokeError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The agent's own details, or the denied attempts.
    fn details(&self) -> Option<Value> {
        match self {
            InvokeError::InvalidInput(f) | InvokeError::Retryable(f) | InvokeError::Fatal(f) => {
                f.details.clone()
            }
            InvokeError::CapabilityDenied { denials, cause } => Some(serde_json::json!({
                "denials": denials,
                "cause": cause,
            })),
            _ => None,
        }
    }

    /// A deadline passed while the agent computed, with no request of its
    /// own open: the input it was given kept it busy, so one caller's
    /// heavy input does not open the circuit every caller shares.
    fn caller_induced(&self) -> bool {
        matches!(
            self,
            InvokeError::Timeout {
                upstream: false,
                ..
            }
        )
    }

    /// The agent's retry hint, if it gave one.
    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            InvokeError::Retryable(f) => f.retry_after_ms.map(std::time::Duration::from_millis),
            // Room frees up as running calls end, most within a second.
            InvokeError::Overloaded { .. } => Some(std::time::Duration::from_secs(1)),
            _ => None,
        }
    }
}

/// Why an agent could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file does not exist or cannot be read.
    #[error("agent file `{}` cannot be read: {source}", .path.display())]
    NotFound {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not WebAssembly at all.
    #[error("`{origin}` is not a WebAssembly file (it does not start with `\\0asm`)")]
    NotWasm {
        /// Where the bytes came from.
        origin: String,
    },
    /// The bytes are a core module, not a component.
    #[error(
        "`{origin}` is a core WebAssembly module, not a component: build the agent with `--target wasm32-wasip2`"
    )]
    CoreModule {
        /// Where the bytes came from.
        origin: String,
    },
    /// The component does not compile.
    #[error("`{origin}` is not a valid WebAssembly component: {message}")]
    Invalid {
        /// Where the bytes came from.
        origin: String,
        /// The compiler's message.
        message: String,
    },
    /// The component does not export the agent interface.
    #[error(
        "`{origin}` does not implement orchestr8:agent (missing export `{missing}`; it exports: {})",
        if .found.is_empty() { "nothing".to_string() } else { .found.join(", ") }
    )]
    MissingExport {
        /// Where the bytes came from.
        origin: String,
        /// The export the host needs.
        missing: String,
        /// What the component exports instead.
        found: Vec<String>,
    },
    /// The component imports something the host does not provide.
    #[error("`{origin}` needs an import the host does not provide: {message}")]
    UnsupportedImport {
        /// Where the bytes came from.
        origin: String,
        /// The linker's message.
        message: String,
    },
    /// Calling `info` failed.
    #[error("`{origin}`: calling `info` failed: {source}")]
    Info {
        /// Where the bytes came from.
        origin: String,
        /// How the call failed.
        source: Box<InvokeError>,
    },
    /// `info` returned something unusable.
    #[error("`{origin}`: `info` returned {reason}")]
    InvalidInfo {
        /// Where the bytes came from.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Coded for LoadError {
    fn code(&self) -> ErrorCode {
        match self {
            LoadError::NotFound { .. } => ErrorCode::AgentNotFound,
            _ => ErrorCode::InvalidAgent,
        }
    }
}

/// The sandbox engine could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// wasmtime rejected the configuration.
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    /// The TLS configuration for outbound HTTP failed.
    #[error("cannot configure TLS for outbound HTTP: {0}")]
    Tls(String),
    /// The compile cache directory cannot be used.
    #[error("cannot use the compile cache at `{}`: {source}", .path.display())]
    Cache {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration is inconsistent.
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
}

impl Coded for SetupError {
    fn code(&self) -> ErrorCode {
        match self {
            SetupError::Config(_) => ErrorCode::InvalidConfig,
            _ => ErrorCode::Internal,
        }
    }
}
