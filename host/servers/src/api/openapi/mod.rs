//! `GET /openapi.json`: the OpenAPI 3.0 document of the servers. The schemas
//! are generated (schemars) from the very types the handlers take and
//! return; the paths are listed here, and a test checks the list against
//! the router.
//!
//! What the document says must be what the server does, because strict
//! clients reject a whole answer for one wrong field:
//! - response types use the *serialize* contract, so a field the server
//!   may omit (`skip_serializing_if`) is never `required`; request types use
//!   the deserialize contract;
//! - every status a route can answer is listed, including 401 when the
//!   server has a token (and bearer security is declared only then), and
//!   500/504 from the layers every route shares;
//! - an agent's own schemas are translated to the 3.0 dialect
//!   ([`schema`]).

mod schema;

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

use super::ErrorEnvelope;
use super::model::{
    Accepted, AgentHealth, AgentList, Cancelling, EventsQuery, ExecuteQuery, ExecuteRequest,
    ExecutionList, ExecutionView, Health, JournalPage, JournalQuery, ListQuery, ValidateRequest,
    Validation, WorkflowList,
};
use orchestr8_host::engine::ExecutionResult;
use orchestr8_host::sandbox::AgentInfo;

struct Doc {
    /// Response types: the shape as sent.
    sent: SchemaGenerator,
    /// Request types: the shape as read, inlined.
    read: SchemaGenerator,
    /// Whether the server asks for a bearer token.
    secured: bool,
    /// Agent schemas, already in the 3.0 dialect.
    agent_schemas: Map<String, Value>,
}

impl Doc {
    fn new(secured: bool) -> Self {
        Doc {
            sent: SchemaSettings::openapi3().for_serialize().into_generator(),
            read: SchemaSettings::openapi3()
                .for_deserialize()
                .with(|s| s.inline_subschemas = true)
                .into_generator(),
            secured,
            agent_schemas: Map::new(),
        }
    }

    fn sent<T: JsonSchema>(&mut self) -> Value {
        Value::from(self.sent.subschema_for::<T>())
    }

    /// A request type's schema, inlined, with the 3.0 transforms applied
    /// (a subschema would come back untransformed).
    fn read<T: JsonSchema>(&mut self) -> Value {
        let mut schema = Value::from(self.read.root_schema_for::<T>());
        if let Some(map) = schema.as_object_mut() {
            map.remove("$schema");
        }
        schema
    }

    fn json(schema: Value, description: &str) -> Value {
        json!({ "description": description, "content": { "application/json": { "schema": schema } } })
    }

    fn error(&mut self, description: &str) -> Value {
        let schema = self.sent::<ErrorEnvelope>();
        Self::json(schema, description)
    }

    /// An operation's responses: its own, then the failures every route
    /// shares (the bearer check, a panic caught, the request timeout).
    fn responses(&mut self, own: Value) -> Value {
        let mut all = match own {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        if self.secured {
            all.insert(
                "401".into(),
                self.error("No or wrong `Authorization: Bearer <token>`"),
            );
        }
        all.entry("500")
            .or_insert_with(|| self.error("A failure inside the server (INTERNAL)"));
        all.entry("504").or_insert_with(|| {
            self.error("The request took longer than the server allows (TIMEOUT)")
        });
        Value::Object(all)
    }

    /// `/health`: answered without a token.
    fn open_responses(&mut self, own: Value) -> Value {
        let secured = std::mem::replace(&mut self.secured, false);
        let responses = self.responses(own);
        self.secured = secured;
        responses
    }

    /// Query parameters from a type's properties.
    fn params<T: JsonSchema>(&mut self) -> Vec<Value> {
        let schema: Schema = self.read.root_schema_for::<T>();
        let value = Value::from(schema);
        let props = value["properties"].as_object().cloned().unwrap_or_default();
        props
            .into_iter()
            .map(|(name, mut schema)| {
                let description = schema
                    .as_object_mut()
                    .and_then(|s| s.remove("description"))
                    .unwrap_or(Value::Null);
                json!({
                    "name": name,
                    "in": "query",
                    "required": false,
                    "description": description,
                    "schema": schema,
                })
            })
            .collect()
    }

    fn text(description: &str, media: &str) -> Value {
        json!({ "description": description, "content": { media: { "schema": { "type": "string" } } } })
    }

    /// The routes every server has besides its own.
    fn common_paths(&mut self, paths: &mut Map<String, Value>) {
        let metrics = Self::text(
            "Prometheus metrics (OpenMetrics text)",
            "application/openmetrics-text",
        );
        let metrics = self.responses(json!({ "200": metrics }));
        let this = Self::json(json!({ "type": "object" }), "OpenAPI 3.0");
        let this = self.responses(json!({ "200": this }));
        paths.insert(
            "/metrics".into(),
            json!({ "get": { "summary": "Prometheus metrics", "responses": metrics } }),
        );
        paths.insert(
            "/openapi.json".into(),
            json!({ "get": { "summary": "This document", "responses": this } }),
        );
    }

    fn finish(mut self, title: &str, paths: Map<String, Value>) -> Value {
        let mut schemas: Map<String, Value> = self.sent.take_definitions(true);
        schemas.extend(std::mem::take(&mut self.agent_schemas));
        let mut components = json!({ "schemas": schemas });
        let mut doc = json!({
            "openapi": "3.0.3",
            "info": { "title": title, "version": env!("CARGO_PKG_VERSION") },
            "paths": paths,
        });
        if self.secured {
            components["securitySchemes"] =
                json!({ "bearer": { "type": "http", "scheme": "bearer" } });
            doc["security"] = json!([{ "bearer": [] }]);
        }
        doc["components"] = components;
        doc
    }
}

fn id_param() -> Value {
    json!({ "name": "id", "in": "path", "required": true, "description": "The execution id", "schema": { "type": "string" } })
}

/// The orchestrator server's document; `secured` when it needs a token.
pub fn document(secured: bool) -> Value {
    let mut d = Doc::new(secured);
    let execute_body = d.read::<ExecuteRequest>();
    let mut execute_query = d.params::<ExecuteQuery>();
    execute_query.push(json!({
        "name": "Idempotency-Key", "in": "header", "required": false,
        "description": "Answer the execution an earlier request with this key started (within 24 hours) instead of starting another; overrides the workflow's `policies.idempotencyKey`. The same key with another workflow or input is 409.",
        "schema": { "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[A-Za-z0-9._:-]+$" }
    }));
    let mut journal_params = vec![id_param()];
    journal_params.extend(d.params::<JournalQuery>());
    let mut events_params = vec![id_param()];
    events_params.extend(d.params::<EventsQuery>());
    events_params.push(json!({
        "name": "Last-Event-ID", "in": "header", "required": false,
        "description": "Resume after this journal sequence number (what the last event's `id` was); takes the place of `after`.",
        "schema": { "type": "string", "pattern": "^[0-9]+$" }
    }));
    let result = d.sent::<ExecutionResult>();
    let accepted = d.sent::<Accepted>();
    let cancelling = d.sent::<Cancelling>();
    let view = d.sent::<ExecutionView>();
    let list_params = d.params::<ListQuery>();
    let list = d.sent::<ExecutionList>();
    let page = d.sent::<JournalPage>();
    let health = d.sent::<Health>();

    let execute = json!({
        "200": Doc::json(result, "Finished within the wait (`?wait=true`)"),
        "202": Doc::json(accepted, "Accepted; `Location` names the execution"),
        "400": d.error("Malformed JSON, neither or both of `workflow` and `workflowFile`, a `workflowFile` that is not a file, or an invalid workflow (`details.issues` has every problem with its JSON path)"),
        "404": d.error("`workflowFile` names no file of the project"),
        "409": d.error("The idempotency key belongs to an execution another request (another workflow or input) started"),
        "413": d.error("Body too large"),
        "503": d.error("The queue is full or the server is shutting down (`Retry-After`)"),
    });
    let listed = json!({
        "200": Doc::json(list, "A page of executions, newest first"),
        "400": d.error("A bad filter or paging parameter (`limit` outside 1 to 1000, a `since` or `until` that is not RFC 3339, an unknown `status`, a `cursor` this server did not give, an unknown parameter)"),
    });
    let status = json!({
        "200": Doc::json(view, "The execution"),
        "404": d.error("Unknown id"),
    });
    let journal = json!({
        "200": Doc::json(page, "A page of entries"),
        "400": d.error("Bad paging (`limit` outside 1 to 1000, unknown parameter)"),
        "404": d.error("Unknown id"),
    });
    let events = json!({
        "200": {
            "description": "Server-Sent Events: one per journal entry, in sequence order, from the one after `Last-Event-ID` (or `after`) to `execution-finished`, then the stream ends (it also ends once an interrupted execution's entries are all sent). Each event has `id` = the entry's `seq`, `event` = its `kind`, and `data` = the entry as JSON, as in the journal's `entries` (`{seq, at, kind, stepId, attempt, durationMs, code, data}`). An `error` event, whose data is a message, ends a stream the journal could not be read for. Comments keep an idle stream open.",
            "content": { "text/event-stream": {
                "schema": {
                    "type": "object",
                    "description": "One event: `id: <seq>`, `event: <kind>`, `data: <entry JSON>`, ended by a blank line",
                    "properties": {
                        "id": { "type": "string", "pattern": "^[0-9]+$", "description": "The entry's `seq` (absent on an `error` event)" },
                        "event": { "type": "string", "description": "The entry's `kind`, or `error`" },
                        "data": { "type": "string", "description": "The entry as JSON, or the error's message" }
                    },
                    "required": ["event", "data"]
                }
            } }
        },
        "400": d.error("A `Last-Event-ID` that is not a sequence number, or an unknown parameter"),
        "404": d.error("Unknown id"),
    });
    let cancel = json!({
        "202": Doc::json(cancelling, "Cancelling (here, or by the process that runs it on the same state); the execution records it"),
        "404": d.error("Unknown id"),
        "409": d.error("Already finished"),
    });
    let mut paths = Map::new();
    paths.insert(
        "/workflows/execute".into(),
        json!({ "post": {
            "summary": "Validate and start an execution",
            "parameters": execute_query,
            "requestBody": { "required": true, "content": { "application/json": { "schema": execute_body } } },
            "responses": d.responses(execute),
        }}),
    );
    paths.insert(
        "/executions".into(),
        json!({ "get": {
            "summary": "List executions, newest first, with filters and cursor paging",
            "parameters": list_params,
            "responses": d.responses(listed),
        }}),
    );
    paths.insert(
        "/executions/{id}".into(),
        json!({ "get": {
            "summary": "Status, timings and per-step status and outputs",
            "parameters": [id_param()],
            "responses": d.responses(status),
        }}),
    );
    paths.insert(
        "/executions/{id}/journal".into(),
        json!({ "get": {
            "summary": "Journal entries, paginated by sequence number",
            "parameters": journal_params,
            "responses": d.responses(journal),
        }}),
    );
    paths.insert(
        "/executions/{id}/events".into(),
        json!({ "get": {
            "summary": "The journal as Server-Sent Events, live, resumable with `Last-Event-ID`",
            "parameters": events_params,
            "responses": d.responses(events),
        }}),
    );
    paths.insert(
        "/executions/{id}/cancel".into(),
        json!({ "post": {
            "summary": "Cancel a running execution, whichever process runs it (idempotent)",
            "parameters": [id_param()],
            "responses": d.responses(cancel),
        }}),
    );
    let validate_body = d.read::<ValidateRequest>();
    let validation = d.sent::<Validation>();
    let validated = json!({
        "200": Doc::json(validation, "Whether the workflow can run here (against the agents this server runs), with every problem"),
        "400": d.error("Malformed JSON, or neither or both of `workflow` and `workflowFile`, or a `workflowFile` that is not a file"),
        "404": d.error("`workflowFile` names no file of the project"),
        "413": d.error("Body too large"),
    });
    paths.insert(
        "/workflows/validate".into(),
        json!({ "post": {
            "summary": "Check a workflow against the agents this server runs, without starting it",
            "requestBody": { "required": true, "content": { "application/json": { "schema": validate_body } } },
            "responses": d.responses(validated),
        }}),
    );
    let workflows = d.sent::<WorkflowList>();
    let workflows = d.responses(json!({ "200": Doc::json(workflows, "The project's workflow files: every `.json` file under `workflows/`, and the workflows at the project's root") }));
    paths.insert(
        "/workflows".into(),
        json!({ "get": { "summary": "The workflow files of the server's project, validated, with their input schemas", "responses": workflows } }),
    );
    let agents = d.sent::<AgentList>();
    let agents = d.responses(json!({ "200": Doc::json(agents, "The agents, by id, and those that could not be loaded") }));
    paths.insert(
        "/agents".into(),
        json!({ "get": { "summary": "The agents this server runs: versions, digests, limits, grants and circuit breakers", "responses": agents } }),
    );
    let health = d.open_responses(json!({ "200": Doc::json(health, "Up") }));
    paths.insert(
        "/health".into(),
        json!({ "get": { "summary": "Liveness", "security": [], "responses": health } }),
    );
    for (path, media, summary) in [
        (
            "/",
            "text/html",
            "The web console (asks for the token itself)",
        ),
        (
            "/console/app.js",
            "text/javascript",
            "The web console's script",
        ),
        ("/console/app.css", "text/css", "The web console's style"),
    ] {
        let page = d.open_responses(json!({ "200": Doc::text(summary, media) }));
        paths.insert(
            path.into(),
            json!({ "get": { "summary": summary, "security": [], "responses": page } }),
        );
    }
    d.common_paths(&mut paths);
    d.finish("orchestr8 REST API", paths)
}

/// One agent's microservice document, with its own input and output
/// schemas; `secured` when it needs a token.
pub fn agent_document(info: &AgentInfo, secured: bool) -> Value {
    let mut d = Doc::new(secured);
    let health = d.sent::<AgentHealth>();
    let input = schema::register(&info.input_schema, "AgentInput", &mut d.agent_schemas);
    let output = schema::register(&info.output_schema, "AgentOutput", &mut d.agent_schemas);
    let process = json!({
        "200": Doc::json(output, "The agent's output"),
        "400": d.error("Malformed JSON, or input the agent rejects (INVALID_INPUT)"),
        "413": d.error("Body too large"),
        "500": d.error("The agent failed (TRAP, FATAL, FUEL_EXHAUSTED, MEMORY_LIMIT, CAPABILITY_DENIED, INVALID_OUTPUT, …)"),
        "503": d.error("Retryable failure (RETRYABLE), open circuit (CIRCUIT_OPEN), or the host too busy to start the agent within its queue timeout (OVERLOADED); `Retry-After` says when to try again"),
        "504": d.error("TIMEOUT or BUDGET_EXHAUSTED"),
    });
    let mut paths = Map::new();
    paths.insert(
        "/process".into(),
        json!({ "post": {
            "summary": format!("Run {} once in a fresh sandbox", info.id),
            "description": info.description,
            "requestBody": { "required": true, "content": { "application/json": { "schema": input } } },
            "responses": d.responses(process),
        }}),
    );
    let health = d.open_responses(json!({ "200": Doc::json(health, "Up") }));
    paths.insert(
        "/health".into(),
        json!({ "get": { "summary": "Agent id, version, status, breaker state", "security": [], "responses": health } }),
    );
    d.common_paths(&mut paths);
    d.finish(&format!("{} (orchestr8 agent)", info.id), paths)
}
