//! `orchestr8 mcp`: an MCP server over stdio (with `rmcp`) that lists the
//! project's agents as tools and runs `tools/call` through
//! [`Subagents::handle_request`].
//!
//! Each tool carries the agent's description and its input (and, when an
//! object, output) JSON Schema from `info`. A successful call answers with
//! the output as JSON text and as structured content; an agent failure
//! answers `isError: true` with the error code and message, so the model
//! can read what went wrong; an unknown tool is a protocol error (-32602).
//! Logs go to stderr: stdout carries only protocol messages.

use std::collections::HashMap;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::Value;

use super::{SubagentContext, Subagents, tool_name};

/// The MCP server: one tool per agent.
pub struct McpServer {
    subagents: Arc<Subagents>,
    tools: Vec<Tool>,
    /// Tool name → agent id.
    agents_by_tool: HashMap<String, String>,
}

/// A JSON Schema, when it is an object.
fn schema(value: &Value) -> Option<JsonObject> {
    value.as_object().cloned()
}

impl McpServer {
    /// Serves `subagents` as tools.
    pub fn new(subagents: Arc<Subagents>) -> Self {
        let mut tools = Vec::new();
        let mut agents_by_tool = HashMap::new();
        for (id, registered) in subagents.agents() {
            let info = registered.agent.info();
            let name = tool_name(id);
            let input = schema(&info.input_schema).unwrap_or_else(|| {
                let mut any = JsonObject::new();
                any.insert("type".into(), "object".into());
                any
            });
            let mut tool = Tool::new(
                name.clone(),
                format!(
                    "{} (orchestr8 agent {id} {}, sandboxed)",
                    info.description, info.version
                ),
                input,
            )
            .with_title(id.clone());
            if let Some(output) = schema(&info.output_schema)
                .filter(|s| s.get("type").and_then(Value::as_str) == Some("object"))
            {
                tool = tool.with_raw_output_schema(Arc::new(output));
            }
            tools.push(tool);
            agents_by_tool.insert(name, id.clone());
        }
        McpServer {
            subagents,
            tools,
            agents_by_tool,
        }
    }

    /// Serves the protocol on stdin/stdout until the client closes stdin.
    pub async fn serve_stdio(self) -> Result<(), McpError> {
        let running = self
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| McpError(e.to_string()))?;
        running
            .waiting()
            .await
            .map_err(|e| McpError(e.to_string()))?;
        Ok(())
    }
}

/// The MCP session could not start or ended abnormally.
#[derive(Debug, thiserror::Error)]
#[error("MCP session failed: {0}")]
pub struct McpError(String);

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        // Empty prompts and resources keep clients that probe them happy.
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("orchestr8", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "Each tool is an orchestr8 agent: a WebAssembly component run in a fresh sandbox \
             with only the network hosts, files and secrets its project grants it.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(agent_id) = self.agents_by_tool.get(request.name.as_ref()) else {
            return Err(ErrorData::invalid_params(
                format!("unknown tool `{}`", request.name),
                None,
            ));
        };
        let input = Value::Object(request.arguments.unwrap_or_default());
        let call = SubagentContext {
            execution_id: None,
            cancel: context.ct.clone(),
        };
        let result = match self.subagents.handle_request(agent_id, input, call).await {
            Ok(output) => CallToolResult::structured(output),
            Err(error) => {
                let mut text = format!("{}: {}", error.code, error.message);
                if let Some(details) = &error.details {
                    text.push_str(&format!("\ndetails: {details}"));
                }
                CallToolResult::error(vec![ContentBlock::text(text)])
            }
        };
        Ok(result.into())
    }
}
