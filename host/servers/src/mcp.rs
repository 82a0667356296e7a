//! `orchestr8 mcp`: an MCP server over stdio (with `rmcp`) that lists the
//! project's agents as tools and runs `tools/call` through
//! [`Subagents::handle_request`].
//!
//! Each tool carries the agent's description and its input (and, when an
//! object, output) JSON Schema from `info`. MCP requires a tool's input
//! schema to be an object schema (strict clients reject the whole
//! `tools/list` otherwise), so an agent whose input may be anything is
//! listed with `"type": "object"`, and one whose input cannot be an object
//! (a string, an array) takes it as the `input` argument, unwrapped before
//! the call. A successful call answers with the output as JSON text and,
//! when it is an object, as structured content (which MCP requires to be
//! an object); an agent failure answers `isError: true` with the error code
//! and message, so the model can read what went wrong; an unknown tool is a
//! protocol error (-32602). Logs go to stderr: stdout carries only protocol
//! messages.

use std::collections::HashMap;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::Value;

use orchestr8_host::claude::{SubagentContext, Subagents, tool_name};

/// The MCP server: one tool per agent.
pub struct McpServer {
    subagents: Arc<Subagents>,
    tools: Vec<Tool>,
    /// Tool name → the agent and how its arguments become its input.
    agents_by_tool: HashMap<String, ToolAgent>,
}

struct ToolAgent {
    id: String,
    /// The agent's input is the `input` argument, not the arguments object.
    wrapped: bool,
}

/// A JSON Schema, when it is an object.
fn schema(value: &Value) -> Option<JsonObject> {
    value.as_object().cloned()
}

/// The tool input schema for an agent's input schema, and whether the
/// input travels wrapped as the `input` argument.
fn input_schema(agent_schema: &Value) -> (JsonObject, bool) {
    let mut object = match agent_schema {
        Value::Object(map) => map.clone(),
        // `true` admits anything, so any arguments object; `false` nothing,
        // which wrapping keeps saying.
        Value::Bool(true) => JsonObject::new(),
        _ => return (wrap(JsonObject::new(), agent_schema.clone()), true),
    };
    let admits_object = match object.get("type") {
        None => true,
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(types)) => types.iter().any(|t| t == "object"),
        Some(_) => false,
    };
    if admits_object {
        object.insert("type".into(), "object".into());
        return (object, false);
    }
    // Definitions stay at the root, where the agent's `$ref`s point.
    let mut root = JsonObject::new();
    for key in ["$defs", "definitions"] {
        if let Some(defs) = object.remove(key) {
            root.insert(key.into(), defs);
        }
    }
    object.remove("$schema");
    (wrap(root, Value::Object(object)), true)
}

fn wrap(mut root: JsonObject, input: Value) -> JsonObject {
    root.insert("type".into(), "object".into());
    root.insert("properties".into(), serde_json::json!({ "input": input }));
    root.insert("required".into(), serde_json::json!(["input"]));
    root.insert("additionalProperties".into(), false.into());
    root
}

impl McpServer {
    /// Serves `subagents` as tools.
    pub fn new(subagents: Arc<Subagents>) -> Self {
        let mut tools = Vec::new();
        let mut agents_by_tool = HashMap::new();
        for (id, registered) in subagents.agents() {
            let info = registered.agent.info();
            let name = tool_name(id);
            let (input, wrapped) = input_schema(&info.input_schema);
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
            agents_by_tool.insert(
                name,
                ToolAgent {
                    id: id.clone(),
                    wrapped,
                },
            );
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
        let Some(agent) = self.agents_by_tool.get(request.name.as_ref()) else {
            return Err(ErrorData::invalid_params(
                format!("unknown tool `{}`", request.name),
                None,
            ));
        };
        let mut arguments = request.arguments.unwrap_or_default();
        let input = if agent.wrapped {
            arguments.remove("input").unwrap_or(Value::Null)
        } else {
            Value::Object(arguments)
        };
        let call = SubagentContext {
            execution_id: None,
            cancel: context.ct.clone(),
        };
        let result = match self.subagents.handle_request(&agent.id, input, call).await {
            Ok(output @ Value::Object(_)) => CallToolResult::structured(output),
            Ok(output) => CallToolResult::success(vec![ContentBlock::text(output.to_string())]),
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_tool_input_schema_is_an_object_schema() {
        let any = input_schema(&json!({"title": "AnyValue"}));
        assert_eq!(
            Value::Object(any.0),
            json!({"title": "AnyValue", "type": "object"})
        );
        assert!(!any.1);
        let object = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        assert_eq!(Value::Object(input_schema(&object).0), object);
        assert_eq!(
            Value::Object(input_schema(&json!(true)).0),
            json!({"type": "object"})
        );
        let nullable = input_schema(&json!({"type": ["object", "null"]}));
        assert_eq!(nullable.0["type"], "object");
    }

    #[test]
    fn an_input_that_cannot_be_an_object_is_wrapped_with_its_definitions_at_the_root() {
        let (schema, wrapped) = input_schema(&json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "array",
            "items": {"$ref": "#/$defs/Item"},
            "$defs": {"Item": {"type": "string"}}
        }));
        assert!(wrapped);
        assert_eq!(
            Value::Object(schema),
            json!({
                "type": "object",
                "properties": {"input": {"type": "array", "items": {"$ref": "#/$defs/Item"}}},
                "required": ["input"],
                "additionalProperties": false,
                "$defs": {"Item": {"type": "string"}}
            })
        );
    }
}
