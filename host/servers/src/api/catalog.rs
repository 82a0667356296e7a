//! What a server can run: `GET /agents`, `GET /workflows` (the workflow
//! files of its project) and `POST /workflows/validate`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use super::extract::JsonBody;
use super::model::{
    AgentGrants, AgentLimits, AgentList, AgentView, CircuitView, DirView, ProjectWorkflow,
    UnavailableAgent, ValidateRequest, Validation, WorkflowList,
};
use super::{ApiError, ExecutionService};
use orchestr8_host::engine::RegisteredAgent;
use orchestr8_host::error::ErrorCode;
use orchestr8_host::resilience::BreakerState;
use orchestr8_host::workflow::{self, AgentCatalog, Issue};

/// Workflow files larger than this are listed as invalid, not read.
const MAX_WORKFLOW_BYTES: u64 = 1024 * 1024;

/// At most this many workflow files are listed.
const MAX_WORKFLOWS: usize = 1000;

/// How deep under `workflows/` files are looked for.
const MAX_DEPTH: usize = 4;

pub(super) async fn agents(
    State(service): State<Arc<ExecutionService>>,
) -> Result<Json<AgentList>, ApiError> {
    let set = service.agent_set().await?;
    let circuits = service.circuits();
    let mut agents: Vec<AgentView> = set
        .iter()
        .map(|(id, agent)| agent_view(id, agent, &circuits))
        .collect();
    agents.sort_by(|a, b| a.id.cmp(&b.id));
    let unavailable = set
        .broken()
        .iter()
        .map(|(id, error)| UnavailableAgent {
            id: id.clone(),
            error: error.clone(),
        })
        .collect();
    Ok(Json(AgentList {
        agents,
        unavailable,
    }))
}

fn agent_view(id: &str, agent: &RegisteredAgent, circuits: &[(String, BreakerState)]) -> AgentView {
    let info = agent.agent.info();
    let limits = &agent.policy.limits;
    let grants = &agent.policy.grants;
    // `cb:<id>`, or `cb:<id>:<target>` per target.
    let own = format!("cb:{id}");
    let circuits: Vec<CircuitView> = circuits
        .iter()
        .filter(|(key, _)| {
            key.strip_prefix(&own)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
        })
        .map(|(key, state)| CircuitView {
            key: key.clone(),
            state: *state,
        })
        .collect();
    let breaker = circuits
        .iter()
        .map(|c| c.state)
        .max_by_key(|s| match s {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        })
        .unwrap_or(BreakerState::Closed);
    AgentView {
        id: id.to_string(),
        version: info.version.clone(),
        description: info.description.clone(),
        digest: agent.agent.digest().to_string(),
        limits: AgentLimits {
            timeout_ms: limits.timeout_ms,
            fuel: limits.fuel,
            memory_bytes: limits.memory_bytes,
            output_bytes: limits.output_bytes,
            log_bytes: limits.log_bytes,
            max_concurrency: limits.max_concurrency,
        },
        grants: AgentGrants {
            allowed_hosts: grants.allowed_hosts.iter().map(|h| h.to_string()).collect(),
            dirs: grants
                .dirs
                .iter()
                .map(|d| DirView {
                    guest_path: d.guest_path.clone(),
                    writable: d.writable,
                })
                .collect(),
            env: grants.env.clone(),
            secrets: grants.secrets.clone(),
        },
        breaker,
        circuits,
        input_schema: info.input_schema.clone(),
        output_schema: info.output_schema.clone(),
    }
}

pub(super) async fn validate(
    State(service): State<Arc<ExecutionService>>,
    JsonBody(request): JsonBody<ValidateRequest>,
) -> Result<Json<Validation>, ApiError> {
    let text =
        service.workflow_text(request.workflow.as_ref(), request.workflow_file.as_deref())?;
    let agents = service.agent_set().await?;
    Ok(Json(validation(&text, agents.as_ref())))
}

fn validation(text: &str, agents: &dyn AgentCatalog) -> Validation {
    match workflow::load(text, agents) {
        Ok(_) => Validation {
            valid: true,
            issues: Vec::new(),
        },
        Err(e) => Validation {
            valid: false,
            issues: e.issues,
        },
    }
}

pub(super) async fn workflows(
    State(service): State<Arc<ExecutionService>>,
) -> Result<Json<WorkflowList>, ApiError> {
    let Some(root) = service.project_root().map(Path::to_path_buf) else {
        return Ok(Json(WorkflowList {
            workflows: Vec::new(),
        }));
    };
    let agents = service.agent_set().await?;
    let files = tokio::task::spawn_blocking(move || read_workflows(&root))
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "listing the workflows failed"))?;
    let workflows = files
        .into_iter()
        .map(|(file, text)| project_workflow(file, text, agents.as_ref()))
        .collect();
    Ok(Json(WorkflowList { workflows }))
}

fn project_workflow(
    file: String,
    text: Result<String, String>,
    agents: &dyn AgentCatalog,
) -> ProjectWorkflow {
    let text = match text {
        Ok(text) => text,
        Err(why) => {
            return ProjectWorkflow {
                file,
                id: None,
                name: None,
                description: None,
                validation: Validation {
                    valid: false,
                    issues: vec![Issue {
                        path: "$".into(),
                        message: why,
                    }],
                },
                input_schema: input_schema(&Value::Null),
            };
        }
    };
    let document: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let metadata = |key: &str| document["metadata"][key].as_str().map(str::to_string);
    ProjectWorkflow {
        id: metadata("id"),
        name: metadata("name"),
        description: metadata("description"),
        validation: validation(&text, agents),
        input_schema: input_schema(&document),
        file,
    }
}

/// A JSON Schema of a workflow's input: its variables, each typed by and
/// defaulting to its value in the document.
fn input_schema(document: &Value) -> Value {
    let mut properties = Map::new();
    if let Some(variables) = document
        .pointer("/context/variables")
        .and_then(Value::as_object)
    {
        for (name, value) in variables {
            let mut property = json!({ "default": value });
            let kind = match value {
                Value::Null => None,
                Value::Bool(_) => Some("boolean"),
                Value::Number(n) if n.is_i64() || n.is_u64() => Some("integer"),
                Value::Number(_) => Some("number"),
                Value::String(_) => Some("string"),
                Value::Array(_) => Some("array"),
                Value::Object(_) => Some("object"),
            };
            if let Some(kind) = kind {
                property["type"] = json!(kind);
            }
            properties.insert(name.clone(), property);
        }
    }
    json!({ "type": "object", "properties": properties })
}

/// The project's workflow files, by path relative to `root`, with their
/// text or why it could not be read: every `.json` file under
/// `workflows/`, and those at the root that are workflows (they have
/// `steps`; a root also holds other JSON, such as `package.json`).
fn read_workflows(root: &Path) -> Vec<(String, Result<String, String>)> {
    let with_text = |path: PathBuf| {
        let text = read(&path);
        (path, text)
    };
    let mut found: Vec<(PathBuf, Result<String, String>)> = json_files(root, 0)
        .into_iter()
        .map(with_text)
        .filter(|(_, text)| {
            text.as_ref().is_ok_and(|text| {
                serde_json::from_str::<Value>(text).is_ok_and(|v| v.get("steps").is_some())
            })
        })
        .collect();
    found.extend(
        json_files(&root.join("workflows"), MAX_DEPTH)
            .into_iter()
            .map(with_text),
    );
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found.truncate(MAX_WORKFLOWS);
    found
        .into_iter()
        .filter_map(|(path, text)| {
            let relative = path.strip_prefix(root).ok()?.to_str()?.to_string();
            Some((relative, text))
        })
        .collect()
}

/// The `.json` files in `dir`, and in its subdirectories down to `depth`
/// (symbolic links not followed).
fn json_files(dir: &Path, depth: usize) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() && depth > 0 {
            files.extend(json_files(&path, depth - 1));
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
        if files.len() > MAX_WORKFLOWS {
            break;
        }
    }
    files
}

fn read(path: &Path) -> Result<String, String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > MAX_WORKFLOW_BYTES {
        return Err(format!(
            "the file is {size} bytes; a workflow file may have at most {MAX_WORKFLOW_BYTES}"
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read the file: {e}"))
}
