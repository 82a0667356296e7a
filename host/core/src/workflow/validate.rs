//! Semantic validation: what the JSON Schema cannot say.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ast::{OnError, SCHEMA_MAJOR, Step, Workflow};
use super::mapping::{self, Root};
use super::{Issue, condition};
use crate::resilience::{CircuitBreakerPolicy, RetryPolicy};

/// Tells which agents exist.
pub trait AgentCatalog {
    /// Whether an agent with this id can be run.
    fn contains(&self, id: &str) -> bool;

    /// The agent's input JSON Schema, when it is known: then a step's
    /// mapping is checked against it before anything runs.
    fn input_schema(&self, _id: &str) -> Option<&Value> {
        None
    }

    /// What to tell a workflow that names `id` when it is not here: why
    /// it cannot load, or which agents there are.
    fn unknown_hint(&self, _id: &str) -> Option<String> {
        None
    }
}

/// `the agents here are a, b` (sorted), for a hint.
fn known_agents<'a>(ids: impl Iterator<Item = &'a String>) -> String {
    let mut ids: Vec<&str> = ids.map(String::as_str).collect();
    ids.sort_unstable();
    match ids.as_slice() {
        [] => "there are no agents here".into(),
        ids => format!("the agents here are {}", ids.join(", ")),
    }
}

/// Agents by id, with their input schemas.
impl<S: std::hash::BuildHasher> AgentCatalog for HashMap<String, Value, S> {
    fn contains(&self, id: &str) -> bool {
        self.contains_key(id)
    }

    fn input_schema(&self, id: &str) -> Option<&Value> {
        self.get(id)
    }

    fn unknown_hint(&self, _id: &str) -> Option<String> {
        Some(known_agents(self.keys()))
    }
}

/// Every agent id is accepted (validation of the document alone).
impl AgentCatalog for () {
    fn contains(&self, _: &str) -> bool {
        true
    }
}

impl<S: std::hash::BuildHasher> AgentCatalog for std::collections::HashSet<String, S> {
    fn contains(&self, id: &str) -> bool {
        std::collections::HashSet::contains(self, id)
    }

    fn unknown_hint(&self, _id: &str) -> Option<String> {
        Some(known_agents(self.iter()))
    }
}

/// SHA-256 of the workflow format's JSON Schema, as hex: the value a
/// document's `schemaHash` must carry when it has one.
pub fn schema_hash() -> String {
    let text = super::json_schema().to_string();
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Checker {
    issues: Vec<Issue>,
}

impl Checker {
    fn issue(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.issues.push(Issue {
            path: path.into(),
            message: message.into(),
        });
    }
}

fn is_semver(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn is_step_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Whether `id` is an agent id like `@scope/name` (letters, digits and `-`).
pub fn is_agent_id(id: &str) -> bool {
    let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    id.strip_prefix('@')
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(scope, name)| ok(scope) && ok(name))
}

fn is_agent_version(v: &str) -> bool {
    v == "latest" || is_semver(v.trim_start_matches(['^', '~']))
}

impl Workflow {
    /// Every problem a schema cannot catch, each with its JSON path; empty
    /// when the workflow can run. Agents are checked against `agents`.
    pub fn validate(&self, agents: &dyn AgentCatalog) -> Vec<Issue> {
        let mut c = Checker { issues: Vec::new() };
        self.check_header(&mut c);
        self.check_policies(&mut c);
        let ids = self.check_ids(&mut c);
        for (i, step) in self.steps.iter().enumerate() {
            check_step(&mut c, i, step, &ids, agents);
        }
        if let Some(cycle) = find_cycle(&self.steps, &ids) {
            c.issue(
                "$.steps",
                format!(
                    "dependency cycle: {} (each step depends on the next)",
                    cycle.join(" -> ")
                ),
            );
        } else {
            self.check_references(&mut c, &ids);
        }
        c.issues
    }

    fn check_header(&self, c: &mut Checker) {
        if !is_semver(&self.version) {
            c.issue(
                "$.version",
                format!("`{}` is not a version like 1.0.0", self.version),
            );
        }
        match self.schema_version.split('.').next().map(str::parse::<u64>) {
            Some(Ok(major)) if is_semver(&self.schema_version) && major == SCHEMA_MAJOR => {}
            Some(Ok(_)) if is_semver(&self.schema_version) => c.issue(
                "$.schemaVersion",
                format!(
                    "unsupported schema version {}: this host reads {SCHEMA_MAJOR}.x",
                    self.schema_version
                ),
            ),
            _ => c.issue(
                "$.schemaVersion",
                format!("`{}` is not a version like 1.0.0", self.schema_version),
            ),
        }
        if let Some(hash) = &self.schema_hash {
            if hash.len() != 64 || !hash.chars().all(|ch| ch.is_ascii_hexdigit()) {
                c.issue("$.schemaHash", "must be 64 hexadecimal digits (a SHA-256)");
            } else if !hash.eq_ignore_ascii_case(&schema_hash()) {
                c.issue(
                    "$.schemaHash",
                    "schema hash mismatch: the document was written for another version of the format \
                     (see `orchestr8 schema --hash`, or drop the field)",
                );
            }
        }
        let m = &self.metadata;
        if uuid::Uuid::parse_str(&m.id).is_err() {
            c.issue("$.metadata.id", format!("`{}` is not a UUID", m.id));
        }
        let name_len = m.name.chars().count();
        if !(1..=255).contains(&name_len) {
            c.issue("$.metadata.name", "must be 1 to 255 characters");
        }
        if m.description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 1000)
        {
            c.issue("$.metadata.description", "must be at most 1000 characters");
        }
        for (i, r) in self.context.secret_refs.iter().enumerate() {
            let ok = r.strip_prefix("secret://").is_some_and(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || "-_/".contains(ch))
            });
            if !ok {
                c.issue(
                    format!("$.context.secretRefs[{i}]"),
                    format!("`{r}` is not a reference like secret://path/name"),
                );
            }
        }
        if self.steps.is_empty() {
            c.issue("$.steps", "a workflow needs at least one step");
        }
    }

    fn check_policies(&self, c: &mut Checker) {
        let p = &self.policies;
        let ranges: [(&str, u64, u64, u64); 6] = [
            (
                "$.policies.timeout.global",
                p.timeout.global,
                1_000,
                24 * 3_600_000,
            ),
            (
                "$.policies.timeout.perStep",
                p.timeout.per_step,
                1_000,
                24 * 3_600_000,
            ),
            (
                "$.policies.concurrency.maxConcurrentSteps",
                u64::from(p.concurrency.max_concurrent_steps),
                1,
                10,
            ),
            (
                "$.policies.resilienceBudget.perExecutionMs",
                p.resilience_budget.per_execution_ms,
                1_000,
                24 * 3_600_000,
            ),
            (
                "$.policies.resilienceBudget.queueTimeoutMs",
                p.resilience_budget.queue_timeout_ms,
                1,
                24 * 3_600_000,
            ),
            (
                "$.policies.resilienceBudget.totalSystemBudgetMs",
                p.resilience_budget.total_system_budget_ms,
                1_000,
                24 * 3_600_000,
            ),
        ];
        for (path, value, min, max) in ranges {
            if value < min || value > max {
                c.issue(
                    path,
                    format!("must be between {min} and {max}, got {value}"),
                );
            }
        }
        if let Err(e) = p.resilience.retry.validate() {
            c.issue("$.policies.resilience.retry", e);
        }
        if let Err(e) = p.resilience.circuit_breaker.validate() {
            c.issue("$.policies.resilience.circuitBreaker", e);
        }
        if let Some(key) = &p.idempotency_key {
            let at = "$.policies.idempotencyKey";
            match mapping::expressions(&Value::String(key.clone())) {
                Err(e) => c.issue(at, e.to_string()),
                Ok(found) => {
                    if found.iter().any(|e| matches!(e.root, Root::Step(_))) {
                        c.issue(
                            at,
                            "is known before any step runs: it may use `${variables.…}` and `${env.…}`, not step outputs",
                        );
                    }
                }
            }
        }
    }

    fn check_ids(&self, c: &mut Checker) -> HashMap<String, usize> {
        let mut ids: HashMap<String, usize> = HashMap::new();
        for (i, step) in self.steps.iter().enumerate() {
            if !is_step_id(&step.id) {
                c.issue(
                    format!("$.steps[{i}].id"),
                    format!(
                        "`{}` may only contain letters, digits, `_` and `-`",
                        step.id
                    ),
                );
            }
            if let Some(first) = ids.get(&step.id) {
                c.issue(
                    format!("$.steps[{i}].id"),
                    format!(
                        "duplicate step id `{}` (first used at steps[{first}])",
                        step.id
                    ),
                );
            } else {
                ids.insert(step.id.clone(), i);
            }
        }
        ids
    }

    /// Expressions may only refer to steps upstream of where they are used.
    fn check_references(&self, c: &mut Checker, ids: &HashMap<String, usize>) {
        let upstream = upstream_sets(&self.steps, ids);
        for (i, step) in self.steps.iter().enumerate() {
            let Some(input) = &step.input else { continue };
            for (field, value) in &input.mapping {
                let path = format!("$.steps[{i}].input.mapping.{field}");
                let exprs = match mapping::expressions(value) {
                    Ok(e) => e,
                    Err(e) => {
                        c.issue(path, e.to_string());
                        continue;
                    }
                };
                for e in exprs {
                    if let Err(problem) = e.check_static(mapping::Limits::default()) {
                        c.issue(&path, problem.to_string());
                    }
                    if let (Root::Env, Some(mapping::Segment::Key(name)), None) =
                        (&e.root, e.path.first(), &e.default)
                        && !self.context.environment.contains_key(name)
                    {
                        c.issue(
                            &path,
                            format!(
                                "`{}` refers to `{name}`, which is not in context.environment: \
                                 add it there or give a `??` default",
                                e.source
                            ),
                        );
                    }
                    let Root::Step(target) = &e.root else {
                        continue;
                    };
                    if !ids.contains_key(target) {
                        c.issue(
                            &path,
                            format!("`{}` refers to unknown step `{target}`", e.source),
                        );
                    } else if !upstream[i].contains(target.as_str()) {
                        c.issue(
                            &path,
                            format!(
                                "`{}` refers to step `{target}`, which is not upstream of `{}`: \
                                 add it to dependencies",
                                e.source, step.id
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// What can be known of a step's input before it runs, against its agent's
/// input schema: required fields the mapping never gives, fields the agent
/// does not take (when its schema closes the object), and literal values of
/// the wrong shape. Mapped values (`${…}`) are checked when the step runs.
fn check_input(c: &mut Checker, i: usize, step: &Step, schema: &Value) {
    let empty = BTreeMap::new();
    let mapping = step.input.as_ref().map_or(&empty, |input| &input.mapping);
    let agent = &step.agent.id;
    let at = |field: &str| format!("$.steps[{i}].input.mapping{field}");
    for required in schema["required"].as_array().into_iter().flatten() {
        if let Some(name) = required.as_str()
            && !mapping.contains_key(name)
        {
            c.issue(
                at(""),
                format!("`{agent}` requires the input `{name}`, which the mapping does not give"),
            );
        }
    }
    if let Some(properties) = schema["properties"].as_object()
        && schema["additionalProperties"] == Value::Bool(false)
    {
        for field in mapping.keys().filter(|k| !properties.contains_key(*k)) {
            let takes: Vec<&str> = properties.keys().map(String::as_str).collect();
            c.issue(
                at(&format!(".{field}")),
                format!(
                    "`{agent}` takes no input `{field}` (it takes: {})",
                    takes.join(", ")
                ),
            );
        }
    }
    // The literal fields alone, against the schema without `required`.
    let literals: serde_json::Map<String, Value> = mapping
        .iter()
        .filter(|(_, v)| mapping::expressions(v).is_ok_and(|e| e.is_empty()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut open = schema.clone();
    if let Some(object) = open.as_object_mut() {
        object.remove("required");
    }
    let Ok(validator) = jsonschema::validator_for(&open) else {
        return;
    };
    for e in validator.iter_errors(&Value::Object(literals)) {
        let pointer = e.instance_path().to_string();
        let path = pointer.replace('/', ".");
        if path.is_empty() {
            continue; // about the object as a whole: reported above
        }
        c.issue(at(&path), format!("{e} (the input `{agent}` takes)"));
    }
}

fn check_step(
    c: &mut Checker,
    i: usize,
    step: &Step,
    ids: &HashMap<String, usize>,
    agents: &dyn AgentCatalog,
) {
    let at = |field: &str| format!("$.steps[{i}].{field}");
    if step.name.trim().is_empty() {
        c.issue(at("name"), "must not be empty");
    }
    if !is_agent_id(&step.agent.id) {
        c.issue(
            at("agent.id"),
            format!("`{}` is not an agent id like @scope/name", step.agent.id),
        );
    } else if !agents.contains(&step.agent.id) {
        let hint = agents
            .unknown_hint(&step.agent.id)
            .map(|h| format!(": {h}"))
            .unwrap_or_default();
        c.issue(
            at("agent.id"),
            format!("unknown agent `{}`{hint}", step.agent.id),
        );
    } else if let Some(schema) = agents.input_schema(&step.agent.id) {
        check_input(c, i, step, schema);
    }
    if let Some(v) = &step.agent.version
        && !is_agent_version(v)
    {
        c.issue(
            at("agent.version"),
            format!("`{v}` is not a version like 1.2.3, ^1.2.3, ~1.2.3 or latest"),
        );
    }
    if step.agent.config.as_ref().is_some_and(|v| !v.is_object()) {
        c.issue(at("agent.config"), "must be an object");
    }
    for (d, dep) in step.dependencies.iter().enumerate() {
        if !ids.contains_key(dep) {
            c.issue(
                at(&format!("dependencies[{d}]")),
                format!("unknown step `{dep}`"),
            );
        }
    }
    match (step.on_error, &step.fallback_step_id) {
        (OnError::Fallback, None) => {
            c.issue(at("fallbackStepId"), "required when onError is `fallback`")
        }
        (OnError::Fallback, Some(f)) if f == &step.id => {
            c.issue(at("fallbackStepId"), "a step cannot be its own fallback")
        }
        (OnError::Fallback, Some(f)) if !ids.contains_key(f) => {
            c.issue(at("fallbackStepId"), format!("unknown step `{f}`"))
        }
        (OnError::Fallback, Some(_)) => {}
        (_, Some(_)) => c.issue(at("fallbackStepId"), "only used when onError is `fallback`"),
        (_, None) => {}
    }
    if let Some(cond) = &step.condition {
        for (name, expr) in [("if", &cond.if_), ("unless", &cond.unless)] {
            if let Some(expr) = expr
                && let Err(e) = condition::compile(expr)
            {
                c.issue(at(&format!("condition.{name}")), e.to_string());
            }
        }
    }
    if let Some(output) = &step.output {
        for (name, path) in &output.capture {
            match mapping::parse_template(&format!("${{variables.{path}}}")) {
                Ok(mapping::Template::Whole(e)) => {
                    let max = mapping::MAX_PATH_DEPTH;
                    if e.path.len() > max {
                        c.issue(
                            at(&format!("output.capture.{name}")),
                            format!(
                                "`{path}` has a path of {} segments; at most {max} are allowed",
                                e.path.len()
                            ),
                        );
                    }
                }
                _ => c.issue(
                    at(&format!("output.capture.{name}")),
                    format!("`{path}` is not a path like items[0].title"),
                ),
            }
        }
        if let Some(schema) = &output.schema
            && let Err(e) = jsonschema::validator_for(schema)
        {
            c.issue(at("output.schema"), format!("not a valid JSON Schema: {e}"));
        }
    }
    if let Some(schema) = step.input.as_ref().and_then(|i| i.schema.as_ref())
        && let Err(e) = jsonschema::validator_for(schema)
    {
        c.issue(at("input.schema"), format!("not a valid JSON Schema: {e}"));
    }
    if let Some(p) = &step.policies {
        if let Some(t) = p.timeout
            && !(1_000..=24 * 3_600_000).contains(&t)
        {
            c.issue(
                at("policies.timeout"),
                format!("must be between 1000 and 86400000, got {t}"),
            );
        }
        if let Some(idle) = p.idle_timeout_ms
            && !(100..=24 * 3_600_000).contains(&idle)
        {
            c.issue(
                at("policies.idleTimeoutMs"),
                format!("must be between 100 and 86400000, got {idle}"),
            );
        }
        if let Some(retry) = &p.retry {
            match overlay::<RetryPolicy>(&RetryPolicy::default(), retry) {
                Ok(r) => {
                    if let Err(e) = r.validate() {
                        c.issue(at("policies.retry"), e);
                    }
                }
                Err(e) => c.issue(at("policies.retry"), e),
            }
        }
        if let Some(cb) = &p.circuit_breaker
            && let Err(e) = overlay::<CircuitBreakerPolicy>(&CircuitBreakerPolicy::default(), cb)
        {
            c.issue(at("policies.circuitBreaker"), e);
        }
    }
}

/// Overrides `base` field by field with `fields`.
pub(crate) fn overlay<T>(
    base: &T,
    fields: &serde_json::Map<String, serde_json::Value>,
) -> Result<T, String>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut value = serde_json::to_value(base).map_err(|e| e.to_string())?;
    if let serde_json::Value::Object(map) = &mut value {
        for (k, v) in fields {
            map.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// A cycle through the dependencies, as step ids ending where it started.
fn find_cycle(steps: &[Step], ids: &HashMap<String, usize>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        i: usize,
        steps: &[Step],
        ids: &HashMap<String, usize>,
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<String>> {
        marks[i] = Mark::Active;
        stack.push(i);
        for dep in &steps[i].dependencies {
            let Some(&j) = ids.get(dep) else { continue };
            match marks[j] {
                Mark::Active => {
                    let start = stack.iter().position(|&k| k == j).unwrap_or(0);
                    let mut cycle: Vec<String> = stack[start..]
                        .iter()
                        .map(|&k| steps[k].id.clone())
                        .collect();
                    cycle.push(steps[j].id.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(j, steps, ids, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[i] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; steps.len()];
    for i in 0..steps.len() {
        if marks[i] == Mark::New
            && let Some(c) = visit(i, steps, ids, &mut marks, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

/// For each step, the ids of every step it transitively depends on.
/// Assumes no cycle.
pub(crate) fn upstream_sets(steps: &[Step], ids: &HashMap<String, usize>) -> Vec<BTreeSet<String>> {
    let mut memo: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    fn up(
        i: usize,
        steps: &[Step],
        ids: &HashMap<String, usize>,
        memo: &mut BTreeMap<usize, BTreeSet<String>>,
    ) -> BTreeSet<String> {
        if let Some(s) = memo.get(&i) {
            return s.clone();
        }
        let mut set = BTreeSet::new();
        for dep in &steps[i].dependencies {
            if let Some(&j) = ids.get(dep) {
                set.insert(dep.clone());
                set.extend(up(j, steps, ids, memo));
            }
        }
        memo.insert(i, set.clone());
        set
    }
    (0..steps.len())
        .map(|i| up(i, steps, ids, &mut memo))
        .collect()
}
