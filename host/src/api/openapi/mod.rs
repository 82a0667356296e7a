//! `GET /openapi.json`: the OpenAPI 3.0 document of the servers. The schemas
//! are generated (schemars) from the very types the handlers take and
//! return; the paths are listed here, and a test checks the list against
//! the router.

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

use super::ErrorEnvelope;
use super::executions::{
    Accepted, ExecuteQuery, ExecuteRequest, ExecutionView, Health, JournalPage, JournalQuery,
};
use super::process::AgentHealth;
use crate::engine::ExecutionResult;
use crate::sandbox::AgentInfo;

struct Doc {
    generator: SchemaGenerator,
}

impl Doc {
    fn new() -> Self {
        Doc {
            generator: SchemaSettings::openapi3().into_generator(),
        }
    }

    fn schema<T: JsonSchema>(&mut self) -> Value {
        Value::from(self.generator.subschema_for::<T>())
    }

    fn json(&mut self, schema: Value, description: &str) -> Value {
        json!({ "description": description, "content": { "application/json": { "schema": schema } } })
    }

    fn error(&mut self, description: &str) -> Value {
        let schema = self.schema::<ErrorEnvelope>();
        self.json(schema, description)
    }

    /// Query parameters from a type's properties.
    fn params<T: JsonSchema>(&mut self) -> Value {
        let schema: Schema = self.generator.root_schema_for::<T>();
        let value = Value::from(schema);
        let props = value["properties"].as_object().cloned().unwrap_or_default();
        props
            .into_iter()
            .map(|(name, schema)| {
                json!({
                    "name": name,
                    "in": "query",
                    "required": false,
                    "description": schema.get("description").cloned().unwrap_or(Value::Null),
                    "schema": schema,
                })
            })
            .collect()
    }

    fn finish(mut self, title: &str, paths: Value) -> Value {
        let schemas: Map<String, Value> = self.generator.take_definitions(true);
        json!({
            "openapi": "3.0.3",
            "info": { "title": title, "version": env!("CARGO_PKG_VERSION") },
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } }
            },
            "security": [{ "bearer": [] }]
        })
    }
}

fn id_param() -> Value {
    json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } })
}

/// The orchestrator server's document.
pub fn document() -> Value {
    let mut d = Doc::new();
    let execute_body = d.schema::<ExecuteRequest>();
    let execute_query = d.params::<ExecuteQuery>();
    let journal_query = d.params::<JournalQuery>();
    let result = d.schema::<ExecutionResult>();
    let accepted = d.schema::<Accepted>();
    let view = d.schema::<ExecutionView>();
    let page = d.schema::<JournalPage>();
    let health = d.schema::<Health>();
    let mut journal_params = vec![id_param()];
    journal_params.extend(journal_query.as_array().cloned().unwrap_or_default());
    let paths = json!({
        "/workflows/execute": { "post": {
            "summary": "Validate and start an execution",
            "parameters": execute_query,
            "requestBody": { "required": true, "content": { "application/json": { "schema": execute_body } } },
            "responses": {
                "200": d.json(result, "Finished within the wait (`?wait=true`)"),
                "202": d.json(accepted, "Accepted; `Location` names the execution"),
                "400": d.error("Malformed JSON, or an invalid workflow (`details.issues` has every problem with its JSON path)"),
                "413": d.error("Body too large"),
                "503": d.error("The queue is full (`Retry-After`)")
            }
        }},
        "/executions/{id}": { "get": {
            "summary": "Status, timings and per-step status and outputs",
            "parameters": [id_param()],
            "responses": { "200": d.json(view, "The execution"), "404": d.error("Unknown id") }
        }},
        "/executions/{id}/journal": { "get": {
            "summary": "Journal entries, paginated by sequence number",
            "parameters": journal_params,
            "responses": { "200": d.json(page, "A page of entries"), "400": d.error("Bad paging"), "404": d.error("Unknown id") }
        }},
        "/executions/{id}/cancel": { "post": {
            "summary": "Cancel a running execution (idempotent)",
            "parameters": [id_param()],
            "responses": {
                "202": { "description": "Cancelling" },
                "404": d.error("Unknown id"),
                "409": d.error("Already finished")
            }
        }},
        "/health": { "get": { "summary": "Liveness", "security": [], "responses": { "200": d.json(health, "Up") } } },
        "/metrics": { "get": { "summary": "Prometheus metrics (OpenMetrics text)", "responses": { "200": { "description": "Metrics" } } } },
        "/openapi.json": { "get": { "summary": "This document", "responses": { "200": { "description": "OpenAPI 3.0" } } } }
    });
    d.finish("orchestr8 REST API", paths)
}

/// One agent's microservice document, with its own input and output schemas.
pub fn agent_document(info: &AgentInfo) -> Value {
    let mut d = Doc::new();
    let health = d.schema::<AgentHealth>();
    let paths = json!({
        "/process": { "post": {
            "summary": format!("Run {} once in a fresh sandbox", info.id),
            "description": info.description,
            "requestBody": { "required": true, "content": { "application/json": { "schema": info.input_schema } } },
            "responses": {
                "200": d.json(info.output_schema.clone(), "The agent's output"),
                "400": d.error("Malformed JSON, or input the agent rejects (INVALID_INPUT)"),
                "413": d.error("Body too large"),
                "500": d.error("The agent failed (TRAP, FATAL, FUEL_EXHAUSTED, MEMORY_LIMIT, CAPABILITY_DENIED, …)"),
                "503": d.error("Retryable failure or open circuit (`Retry-After`)"),
                "504": d.error("TIMEOUT or BUDGET_EXHAUSTED")
            }
        }},
        "/health": { "get": { "summary": "Agent id, version, status, breaker state", "security": [], "responses": { "200": d.json(health, "Up") } } },
        "/metrics": { "get": { "summary": "Prometheus metrics (OpenMetrics text)", "responses": { "200": { "description": "Metrics" } } } },
        "/openapi.json": { "get": { "summary": "This document", "responses": { "200": { "description": "OpenAPI 3.0" } } } }
    });
    d.finish(&format!("{} (orchestr8 agent)", info.id), paths)
}
