//! Claude Code integration: the project's agents as sub-agent tools.
//!
//! [`Subagents::handle_request`] is the adapter: it runs an agent the way a
//! Claude Code sub-agent call arrives (input plus a context of correlation
//! ids and cancellation), through the same sandbox, grants and resilience
//! chain as a workflow step, and returns the agent's output unchanged. It
//! only translates: no retries, caching or enrichment beyond the chain's.
//! `orchestr8-servers`' `mcp` exposes it to Claude Code as an MCP server
//! over stdio.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::call::{AgentCall, Invoker, RegisteredAgent};
use crate::error::{Coded, ErrorBody, ErrorCode};
use crate::resilience::ResiliencePolicy;

/// How a sub-agent call arrives besides its input.
#[derive(Debug, Clone, Default)]
pub struct SubagentContext {
    /// The caller's id for this call; a fresh one when absent.
    pub execution_id: Option<String>,
    /// Cancelled when the caller gives up (MCP `notifications/cancelled`).
    pub cancel: CancellationToken,
}

/// The agents Claude Code can call.
pub struct Subagents {
    invoker: Invoker,
    agents: BTreeMap<String, RegisteredAgent>,
    resilience: ResiliencePolicy,
}

impl Subagents {
    /// `agents` (by id), each run through `invoker` under `resilience`
    /// (its timeout raised to each agent's own limit).
    pub fn new(
        invoker: Invoker,
        agents: impl IntoIterator<Item = (String, RegisteredAgent)>,
        resilience: ResiliencePolicy,
    ) -> Self {
        Subagents {
            invoker,
            agents: agents.into_iter().collect(),
            resilience,
        }
    }

    /// The agents, by id.
    pub fn agents(&self) -> &BTreeMap<String, RegisteredAgent> {
        &self.agents
    }

    /// Runs agent `agent_id` on `input` as a Claude Code sub-agent call:
    /// its output unchanged, or the error in the host's taxonomy.
    pub async fn handle_request(
        &self,
        agent_id: &str,
        input: Value,
        context: SubagentContext,
    ) -> Result<Value, ErrorBody> {
        let Some(registered) = self.agents.get(agent_id) else {
            return Err(ErrorBody {
                code: ErrorCode::AgentNotFound,
                message: format!("no agent `{agent_id}` here"),
                details: None,
            });
        };
        let mut call = AgentCall::new(registered, input);
        if let Some(id) = context.execution_id {
            call.execution_id = id.into();
        }
        call.resilience = ResiliencePolicy {
            timeout_ms: registered.policy.limits.timeout_ms,
            ..self.resilience.clone()
        };
        call.cancel = context.cancel;
        call.cancel_grace = Duration::from_secs(2);
        let outcome = self.invoker.call(registered, call, &|_| {}).await;
        outcome.result.map_err(|e| {
            tracing::info!(agent = %agent_id, code = %e.code(), "sub-agent call failed");
            e.to_body()
        })
    }
}

/// The MCP tool name of an agent: `@orchestr8/context7` →
/// `orchestr8_context7` (tool names allow only `[A-Za-z0-9_.-]`; agent ids
/// hold no `_`, so the mapping is one to one).
pub fn tool_name(agent_id: &str) -> String {
    agent_id
        .trim_start_matches('@')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_are_legal_and_one_to_one() {
        assert_eq!(tool_name("@orchestr8/context7"), "orchestr8_context7");
        assert_eq!(tool_name("@my-team/text-stats"), "my-team_text-stats");
        assert_ne!(tool_name("@a/b-c"), tool_name("@a-b/c"));
    }
}
