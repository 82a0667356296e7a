//! A workflow compiled once, after validation: what the engine runs.
//!
//! Everything a run would otherwise redo per execution (and could fail at)
//! is done here, once, and reported as issues like any other validation
//! problem: mapping strings parsed into templates, JSON Schemas compiled,
//! conditions compiled, each step's policies laid over the global ones,
//! capture paths parsed, dependencies and fallbacks resolved to indexes.
//! The engine cannot meet an unchecked expression.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Deref;

use serde_json::Value;

use super::ast::{OnError, Step, Workflow};
use super::condition;
use super::mapping::{self, Mapped, Root, Template};
use super::validate::overlay;
use super::{AgentCatalog, Issue, WorkflowError};
use crate::resilience::{CircuitBreakerPolicy, ResiliencePolicy, RetryPolicy};

/// A step, compiled.
#[derive(Debug)]
pub struct StepPlan {
    /// The input mapping, field by field.
    pub mapping: BTreeMap<String, Mapped>,
    /// `input.schema`, compiled.
    pub input_schema: Option<jsonschema::Validator>,
    /// `output.schema`, compiled.
    pub output_schema: Option<jsonschema::Validator>,
    /// `condition.if`, compiled.
    pub condition_if: Option<jmespath::Expression<'static>>,
    /// `condition.unless`, compiled.
    pub condition_unless: Option<jmespath::Expression<'static>>,
    /// Retries, breaker, per-attempt timeout and budget: the step's
    /// policies over the global ones.
    pub resilience: ResiliencePolicy,
    /// `policies.idleTimeoutMs`: how long an attempt may stay silent.
    pub idle_timeout: Option<std::time::Duration>,
    /// `output.capture`: name and the path into the output.
    pub capture: Vec<(String, mapping::Expr)>,
    /// The steps this one depends on, by index.
    pub dependencies: Vec<usize>,
    /// Per step referred to by the mapping (by index): whether every
    /// reference carries a `??` default (the opt-in to run anyway).
    pub references: HashMap<usize, bool>,
    /// The fallback step, by index.
    pub fallback: Option<usize>,
}

/// A validated workflow, compiled: the document and its steps' plans.
#[derive(Debug)]
pub struct Plan {
    workflow: Workflow,
    steps: Vec<StepPlan>,
    fallback_only: HashSet<usize>,
}

impl Deref for Plan {
    type Target = Workflow;

    fn deref(&self) -> &Workflow {
        &self.workflow
    }
}

impl Plan {
    /// Validates `workflow` against `agents` and compiles it.
    pub fn new(workflow: Workflow, agents: &dyn AgentCatalog) -> Result<Plan, WorkflowError> {
        let issues = workflow.validate(agents);
        if !issues.is_empty() {
            return Err(WorkflowError { issues });
        }
        let index: HashMap<&str, usize> = workflow
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let mut issues = Vec::new();
        let steps: Vec<StepPlan> = workflow
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| compile_step(&workflow, i, step, &index, &mut issues))
            .collect();
        if !issues.is_empty() {
            return Err(WorkflowError { issues });
        }
        let fallback_only = steps.iter().filter_map(|s| s.fallback).collect();
        Ok(Plan {
            workflow,
            steps,
            fallback_only,
        })
    }

    /// The execution's idempotency key (`policies.idempotencyKey` rendered
    /// with `variables` over the workflow's own), when the workflow has one.
    pub fn idempotency_key(
        &self,
        variables: &BTreeMap<String, Value>,
    ) -> Result<Option<String>, mapping::MappingError> {
        let Some(template) = &self.workflow.policies.idempotency_key else {
            return Ok(None);
        };
        let mut all = self.workflow.context.variables.clone();
        all.extend(variables.iter().map(|(k, v)| (k.clone(), v.clone())));
        let scope = mapping::Scope {
            outputs: &BTreeMap::new(),
            variables: &all,
            env: &self.workflow.context.environment,
        };
        let key = Mapped::compile(&Value::String(template.clone()))?
            .render(scope, mapping::Limits::default())?;
        Ok(Some(match key {
            Value::String(s) => s,
            other => other.to_string(),
        }))
    }

    /// A digest of what an execution request asks for: this workflow with
    /// `variables`. The same request gives the same digest.
    pub fn request_digest(&self, variables: &BTreeMap<String, Value>) -> String {
        use sha2::{Digest, Sha256};
        let text = serde_json::json!({ "workflow": self.workflow, "input": variables }).to_string();
        Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether the workflow can read the variable `name`: a mapping's
    /// `${variables.name…}`, or a condition that mentions it (conditions are
    /// JMESPath, so any mention counts).
    pub fn reads_variable(&self, name: &str) -> bool {
        self.variables_in_mappings().contains(name) || self.conditions_mention(name)
    }

    /// The first key of every `${variables.…}` in the mappings.
    fn variables_in_mappings(&self) -> BTreeSet<String> {
        let mut read = BTreeSet::new();
        for step in &self.workflow.steps {
            let Some(input) = &step.input else { continue };
            for value in input.mapping.values() {
                for e in mapping::expressions(value).unwrap_or_default() {
                    if let (Root::Variables, Some(mapping::Segment::Key(name))) =
                        (&e.root, e.path.first())
                    {
                        read.insert(name.clone());
                    }
                }
            }
        }
        read
    }

    fn conditions_mention(&self, name: &str) -> bool {
        self.workflow
            .steps
            .iter()
            .filter_map(|s| s.condition.as_ref())
            .flat_map(|c| [c.if_.as_deref(), c.unless.as_deref()])
            .flatten()
            .any(|c| c.contains(name))
    }

    /// The document.
    pub fn workflow(&self) -> &Workflow {
        &self.workflow
    }

    /// Step `i`'s plan.
    pub fn step_plan(&self, i: usize) -> &StepPlan {
        &self.steps[i]
    }

    /// Whether step `i` is someone's fallback (it runs only as one).
    pub fn is_fallback_only(&self, i: usize) -> bool {
        self.fallback_only.contains(&i)
    }
}

fn compile_step(
    workflow: &Workflow,
    i: usize,
    step: &Step,
    index: &HashMap<&str, usize>,
    issues: &mut Vec<Issue>,
) -> StepPlan {
    let mut issue = |field: &str, message: String| {
        issues.push(Issue {
            path: format!("$.steps[{i}].{field}"),
            message,
        });
    };
    let mut mapping = BTreeMap::new();
    let mut references: HashMap<usize, bool> = HashMap::new();
    if let Some(input) = &step.input {
        for (field, value) in &input.mapping {
            match Mapped::compile(value) {
                Ok(mapped) => {
                    for e in mapping::expressions(value).unwrap_or_default() {
                        if let Root::Step(id) = &e.root
                            && let Some(&j) = index.get(id.as_str())
                        {
                            *references.entry(j).or_insert(true) &= e.default.is_some();
                        }
                    }
                    mapping.insert(field.clone(), mapped);
                }
                Err(e) => issue(&format!("input.mapping.{field}"), e.to_string()),
            }
        }
    }
    let mut schema = |field: &str, schema: Option<&Value>| {
        schema.and_then(|s| match jsonschema::validator_for(s) {
            Ok(v) => Some(v),
            Err(e) => {
                issue(field, format!("not a valid JSON Schema: {e}"));
                None
            }
        })
    };
    let input_schema = schema(
        "input.schema",
        step.input.as_ref().and_then(|i| i.schema.as_ref()),
    );
    let output_schema = schema(
        "output.schema",
        step.output.as_ref().and_then(|o| o.schema.as_ref()),
    );
    let mut condition = |field: &str, expression: Option<&String>| {
        expression.and_then(|e| match condition::compile(e) {
            Ok(c) => Some(c),
            Err(e) => {
                issue(field, e.to_string());
                None
            }
        })
    };
    let cond = step.condition.as_ref();
    let condition_if = condition("condition.if", cond.and_then(|c| c.if_.as_ref()));
    let condition_unless = condition("condition.unless", cond.and_then(|c| c.unless.as_ref()));
    let resilience = match resilience(workflow, step) {
        Ok(r) => r,
        Err(e) => {
            issue("policies", e);
            ResiliencePolicy::default()
        }
    };
    let mut capture = Vec::new();
    for (name, path) in step.output.iter().flat_map(|o| &o.capture) {
        match mapping::parse_template(&format!("${{steps._.output.{path}}}")) {
            Ok(Template::Whole(e)) => capture.push((name.clone(), e)),
            _ => issue(
                &format!("output.capture.{name}"),
                format!("`{path}` is not a path like items[0].title"),
            ),
        }
    }
    StepPlan {
        mapping,
        input_schema,
        output_schema,
        condition_if,
        condition_unless,
        resilience,
        idle_timeout: step
            .policies
            .as_ref()
            .and_then(|p| p.idle_timeout_ms)
            .map(std::time::Duration::from_millis),
        capture,
        dependencies: step
            .dependencies
            .iter()
            .filter_map(|d| index.get(d.as_str()).copied())
            .collect(),
        references,
        fallback: step
            .fallback_step_id
            .as_deref()
            .filter(|_| step.on_error == OnError::Fallback)
            .and_then(|id| index.get(id).copied()),
    }
}

/// The step's policies over the global ones, field by field.
fn resilience(workflow: &Workflow, step: &Step) -> Result<ResiliencePolicy, String> {
    let global = &workflow.policies;
    let overrides = step.policies.as_ref();
    let retry = match overrides.and_then(|p| p.retry.as_ref()) {
        Some(fields) => overlay(&global.resilience.retry, fields)?,
        // `onError: retry` with nothing to retry with gets the default policy.
        None if step.on_error == OnError::Retry && global.resilience.retry.max_attempts == 1 => {
            RetryPolicy::default()
        }
        None => global.resilience.retry.clone(),
    };
    let circuit_breaker: CircuitBreakerPolicy =
        match overrides.and_then(|p| p.circuit_breaker.as_ref()) {
            Some(fields) => overlay(&global.resilience.circuit_breaker, fields)?,
            None => global.resilience.circuit_breaker.clone(),
        };
    Ok(ResiliencePolicy {
        retry,
        circuit_breaker,
        timeout_ms: overrides
            .and_then(|p| p.timeout)
            .unwrap_or(global.timeout.per_step),
        budget_ms: global.resilience_budget.per_execution_ms,
    })
}
