//! What an agent knows about the invocation it is handling.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;

use crate::AgentError;
use crate::bindings::orchestr8::agent::host;
use crate::bindings::orchestr8::agent::types as wit;

/// The invocation's identity, deadline and configuration, plus access to
/// granted secrets and cancellation.
#[derive(Debug, Clone)]
pub struct Context {
    execution_id: String,
    step_id: String,
    attempt: u32,
    deadline_unix_ms: u64,
    config: serde_json::Value,
}

/// Why a secret could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretError {
    /// The agent's grants do not include it.
    NotGranted,
    /// Granted, but no value is set where the host runs.
    NotSet,
}

impl std::fmt::Display for SecretError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SecretError::NotGranted => "the secret is not granted to this agent",
            SecretError::NotSet => "the secret is granted but has no value",
        })
    }
}

impl std::error::Error for SecretError {}

impl Context {
    pub(crate) fn from_invocation(inv: &wit::Invocation) -> Result<Self, wit::AgentError> {
        let config = serde_json::from_str(&inv.config).map_err(|e| {
            wit::AgentError::from(AgentError::invalid_input(format!(
                "config is not JSON: {e}"
            )))
        })?;
        Ok(Context {
            execution_id: inv.execution_id.clone(),
            step_id: inv.step_id.clone(),
            attempt: inv.attempt,
            deadline_unix_ms: inv.deadline_unix_ms,
            config,
        })
    }

    /// The workflow execution this call belongs to.
    pub fn execution_id(&self) -> &str {
        &self.execution_id
    }

    /// The workflow step (empty outside a workflow).
    pub fn step_id(&self) -> &str {
        &self.step_id
    }

    /// `<execution id>:<step id>`: the same for every attempt of this step,
    /// also after its execution is resumed in another process (a step that
    /// was running when its host died runs again). An agent with effects
    /// outside (a payment, an email) sends it along, or keeps it, so doing
    /// the work twice has the effect once.
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}", self.execution_id, self.step_id)
    }

    /// Attempt number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The raw configuration object.
    pub fn config_value(&self) -> &serde_json::Value {
        &self.config
    }

    /// The configuration as a typed value; a mismatch is an invalid-input
    /// error naming the problem.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, AgentError> {
        serde_json::from_value(self.config.clone())
            .map_err(|e| AgentError::invalid_input(format!("invalid config: {e}")))
    }

    /// Time left before the host stops this invocation.
    pub fn time_left(&self) -> Duration {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Duration::from_millis(self.deadline_unix_ms.saturating_sub(now))
    }

    /// Whether the execution was cancelled; long loops should check it.
    pub fn is_cancelled(&self) -> bool {
        host::is_cancelled()
    }

    /// Reads a granted secret. Never log or return its value.
    pub fn secret(&self, name: &str) -> Result<String, SecretError> {
        host::get_secret(name).map_err(|e| match e {
            host::SecretError::NotGranted => SecretError::NotGranted,
            host::SecretError::NotSet => SecretError::NotSet,
        })
    }
}

impl From<SecretError> for AgentError {
    fn from(e: SecretError) -> Self {
        AgentError::fatal(e.to_string())
    }
}
