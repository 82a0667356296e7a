//! Workflows: the JSON document ([`ast`]), its validation, mapping
//! expressions ([`mapping`]) and step conditions ([`condition`]).
//!
//! [`parse`] turns text into a [`Workflow`] (rejecting unknown fields with
//! their JSON path); [`Workflow::validate`] then checks everything a schema
//! cannot: duplicate ids, unknown dependencies, cycles (named), fallbacks,
//! expressions that refer to steps that are not upstream, unknown agents,
//! ranges. Every problem is reported at once, each with its JSON path.
//! [`load`] does both and compiles the result into a [`Plan`]: what the
//! engine runs.

pub mod ast;
pub mod condition;
pub mod mapping;
mod plan;
mod validate;

use std::fmt;

use serde::Serialize;

pub use ast::*;
pub use plan::{Plan, StepPlan};
pub use validate::{AgentCatalog, is_agent_id, schema_hash};

use crate::error::{Coded, ErrorCode};

/// One problem in a workflow document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Issue {
    /// Where: a JSON path such as `steps[2].dependencies[0]`.
    pub path: String,
    /// What is wrong, and how to fix it when that is not obvious.
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A workflow document that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct WorkflowError {
    /// Every problem found.
    pub issues: Vec<Issue>,
}

impl fmt::Display for WorkflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        write!(
            f,
            "invalid workflow ({n} problem{})",
            if n == 1 { "" } else { "s" }
        )?;
        for issue in &self.issues {
            write!(f, "\n  {issue}")?;
        }
        Ok(())
    }
}

impl Coded for WorkflowError {
    fn code(&self) -> ErrorCode {
        ErrorCode::Validation
    }

    fn details(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "issues": self.issues }))
    }
}

/// Parses a workflow document. Malformed JSON, wrong types and unknown
/// fields are reported with their path; semantic checks are separate
/// ([`Workflow::validate`]).
pub fn parse(text: &str) -> Result<Workflow, WorkflowError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        // Serde stops at the first problem; the published schema, checked
        // over the whole document, names them all.
        if let Some(issues) = schema_issues(text) {
            return WorkflowError { issues };
        }
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("not valid JSON: {inner}")
        } else {
            // serde's message ends with " at line L column C"; the path says where.
            let text = inner.to_string();
            match text.rfind(" at line ") {
                Some(i) => text[..i].to_string(),
                None => text,
            }
        };
        WorkflowError {
            issues: vec![Issue {
                path: if path == "." {
                    "$".into()
                } else {
                    format!("$.{path}")
                },
                message,
            }],
        }
    })
}

/// Every place `text` (valid JSON) breaks the workflow schema, or `None`
/// when it is not JSON or the schema finds nothing (serde's own message
/// then stands).
fn schema_issues(text: &str) -> Option<Vec<Issue>> {
    let document: serde_json::Value = serde_json::from_str(text).ok()?;
    let schema = json_schema();
    let validator = jsonschema::validator_for(&schema).ok()?;
    let mut issues = Vec::new();
    for e in validator.iter_errors(&document) {
        let at = json_path(&e.instance_path().to_string());
        let rule = e.schema_path().to_string();
        if let jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } =
            e.kind()
        {
            // As serde words it, at the field itself, with what is allowed.
            let parent = rule.trim_end_matches("/additionalProperties");
            let known = schema
                .pointer(&format!("{parent}/properties"))
                .and_then(serde_json::Value::as_object)
                .map(|p| {
                    p.keys()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                });
            for field in unexpected {
                issues.push(Issue {
                    path: format!("{at}.{field}"),
                    message: match &known {
                        Some(known) => format!("unknown field `{field}`, expected one of {known}"),
                        None => format!("unknown field `{field}`"),
                    },
                });
            }
            continue;
        }
        if let jsonschema::error::ValidationErrorKind::Required { property } = e.kind() {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_string);
            issues.push(Issue {
                path: at,
                message: format!("missing field `{name}`"),
            });
            continue;
        }
        let message = match choices(&schema, &rule) {
            Some(allowed) => format!("{} is not one of {allowed}", e.instance()),
            None => e.to_string(),
        };
        issues.push(Issue { path: at, message });
    }
    (!issues.is_empty()).then_some(issues)
}

/// For a `oneOf` of constants (how an enum with documented values is
/// published), the values it allows: `"fail", "continue", …`.
fn choices(schema: &serde_json::Value, schema_path: &str) -> Option<String> {
    let alternatives = schema.pointer(schema_path)?.as_array()?;
    let values: Option<Vec<String>> = alternatives
        .iter()
        .map(|a| a.get("const").map(ToString::to_string))
        .collect();
    values.filter(|v| !v.is_empty()).map(|v| v.join(", "))
}

/// A JSON pointer (`/steps/1/agent`) as the JSON path issues use
/// (`$.steps[1].agent`).
fn json_path(pointer: &str) -> String {
    let mut path = String::from("$");
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        if token.parse::<usize>().is_ok() {
            path.push_str(&format!("[{token}]"));
        } else {
            path.push('.');
            path.push_str(&token);
        }
    }
    path
}

/// Parses, validates and compiles in one go: the [`Plan`] an engine runs.
pub fn load(text: &str, agents: &dyn AgentCatalog) -> Result<Plan, WorkflowError> {
    Plan::new(parse(text)?, agents)
}

/// The JSON Schema of the workflow format, generated from the types.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Workflow)).unwrap_or_default()
}

#[cfg(test)]
mod tests;
