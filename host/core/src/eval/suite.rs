//! The evaluation suite file: the agent under test, its cases with their
//! graders, the variants to compare and how many trials each gets.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::grader::Grader;

/// An evaluation suite (a JSON file of the project, such as
/// `evals/brief.json`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Suite {
    /// Where editors find this file's JSON Schema (`orchestr8 schema
    /// --eval-suite`); not read otherwise.
    #[serde(default, rename = "$schema", skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The agent under test, by its id in `orchestr8.toml`.
    pub agent: String,
    /// What the suite measures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Runs of each case per variant [default 5]; `--trials` overrides it.
    #[serde(default = "default_trials")]
    #[schemars(range(min = 1, max = 1000))]
    pub trials: u32,
    /// Config of every run; a variant's keys, then a case's, go on top.
    #[serde(default)]
    pub config: Map<String, Value>,
    /// HTTP fixture files (relative to the suite) answering every run's
    /// outbound requests, as in `orchestr8 test`; a request none matches
    /// fails the run. Without fixtures, runs reach the hosts the agent is
    /// granted.
    #[serde(default)]
    pub fixtures: Vec<String>,
    /// Values of the secrets the agents are granted (nothing is read from
    /// the environment for these).
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Graders of every case.
    #[serde(default)]
    pub graders: Vec<Grader>,
    /// Where the output reports its token use, for the report's tokens and
    /// cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The variants to compare, by name, in this order: the first is the
    /// baseline the others are compared with [default: one, `default`: the
    /// agent as configured].
    #[serde(default)]
    pub variants: IndexMap<String, Variant>,
    /// The cases; at least one.
    pub cases: Vec<Case>,
}

fn default_trials() -> u32 {
    5
}

/// One way of running the suite's agent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Variant {
    /// What it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Another agent of the project to run instead (another version or
    /// component of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Config keys on top of the suite's (a prompt template, a model, a
    /// temperature).
    #[serde(default)]
    pub config: Map<String, Value>,
}

/// One input to run, with what its output must be.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Case {
    /// Its name in reports.
    pub name: String,
    /// The agent's input.
    pub input: Value,
    /// Config keys on top of the variant's.
    #[serde(default)]
    pub config: Map<String, Value>,
    /// More fixture files for this case.
    #[serde(default)]
    pub fixtures: Vec<String>,
    /// Graders of this case, after the suite's.
    #[serde(default)]
    pub graders: Vec<Grader>,
}

/// JMESPath expressions over the output giving its token counts, and the
/// prices per million tokens.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Usage {
    /// Tokens read, such as `completion.inputTokens`.
    pub input_tokens: String,
    /// Tokens written, such as `completion.outputTokens`.
    pub output_tokens: String,
    /// Price of a million tokens read, in dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_price_per_million: Option<f64>,
    /// Price of a million tokens written, in dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_price_per_million: Option<f64>,
}

impl Suite {
    /// Parses a suite and checks it: cases and graders present, paths and
    /// patterns that compile, case names unique. Every problem, with where.
    pub fn parse(text: &str) -> Result<Suite, Vec<String>> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let suite: Suite = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            vec![format!("{path}: {}", e.into_inner())]
        })?;
        let problems = suite.problems();
        if problems.is_empty() {
            Ok(suite)
        } else {
            Err(problems)
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.cases.is_empty() {
            problems.push("cases: give at least one case".to_string());
        }
        if self.trials == 0 {
            problems.push("trials: must be at least 1".to_string());
        }
        for (i, g) in self.graders.iter().enumerate() {
            if let Some(p) = g.problem() {
                problems.push(format!("graders[{i}]: {p}"));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, case) in self.cases.iter().enumerate() {
            if !names.insert(case.name.as_str()) {
                problems.push(format!("cases[{i}].name: `{}` is used twice", case.name));
            }
            if self.graders.is_empty() && case.graders.is_empty() {
                problems.push(format!(
                    "cases[{i}]: no grader decides it (add `graders` to the case or the suite)"
                ));
            }
            for (j, g) in case.graders.iter().enumerate() {
                if let Some(p) = g.problem() {
                    problems.push(format!("cases[{i}].graders[{j}]: {p}"));
                }
            }
        }
        if let Some(usage) = &self.usage {
            for (field, path) in [
                ("inputTokens", &usage.input_tokens),
                ("outputTokens", &usage.output_tokens),
            ] {
                if let Err(e) = jmespath::compile(path) {
                    problems.push(format!("usage.{field}: `{path}`: {e}"));
                }
            }
        }
        problems
    }

    /// The variants to run, by name: those named in `chosen` (all of the
    /// suite's when it is empty), or `default` when the suite has none.
    pub fn variants(&self, chosen: &[String]) -> Result<Vec<(String, Variant)>, String> {
        if self.variants.is_empty() {
            return match chosen {
                [] => Ok(vec![("default".into(), Variant::default())]),
                _ => Err(format!(
                    "the suite has no variants, so `--variant {}` names none",
                    chosen[0]
                )),
            };
        }
        if chosen.is_empty() {
            return Ok(self
                .variants
                .iter()
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect());
        }
        chosen
            .iter()
            .map(|name| {
                self.variants
                    .get(name)
                    .map(|v| (name.clone(), v.clone()))
                    .ok_or_else(|| {
                        let known: Vec<&str> = self.variants.keys().map(String::as_str).collect();
                        format!(
                            "no variant `{name}` in the suite (it has {})",
                            known.join(", ")
                        )
                    })
            })
            .collect()
    }

    /// The config of `case` under `variant`: the suite's, the variant's
    /// keys on top, then the case's.
    pub fn config(&self, variant: &Variant, case: &Case) -> Value {
        let mut config = self.config.clone();
        config.extend(variant.config.clone());
        config.extend(case.config.clone());
        Value::Object(config)
    }

    /// The graders of `case`: the suite's, then its own.
    pub fn graders<'a>(&'a self, case: &'a Case) -> impl Iterator<Item = &'a Grader> {
        self.graders.iter().chain(&case.graders)
    }
}

/// The JSON Schema of suite files.
pub fn json_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Suite)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn suite(value: Value) -> Result<Suite, Vec<String>> {
        Suite::parse(&value.to_string())
    }

    #[test]
    fn a_suite_is_checked_whole_before_it_runs() {
        let ok = suite(json!({
            "agent": "@demo/brief",
            "graders": [{"type": "schema"}],
            "variants": {"a": {"config": {"model": "m1"}}, "b": {"config": {"model": "m2"}}},
            "cases": [{"name": "one", "input": {"q": 1}, "config": {"temperature": 0}}]
        }))
        .unwrap();
        assert_eq!(ok.trials, 5);
        let names: Vec<String> = ok.variants(&[]).unwrap().into_iter().map(|v| v.0).collect();
        assert_eq!(names, ["a", "b"]);
        let (_, b) = &ok.variants(&["b".into()]).unwrap()[0];
        assert_eq!(
            ok.config(b, &ok.cases[0]),
            json!({"model": "m2", "temperature": 0})
        );
        assert!(ok.variants(&["c".into()]).unwrap_err().contains("a, b"));

        let problems = suite(json!({
            "agent": "@demo/brief",
            "trials": 0,
            "cases": [
                {"name": "one", "input": {}, "graders": [{"type": "regex", "path": "a", "pattern": "("}]},
                {"name": "one", "input": {}}
            ]
        }))
        .unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("used twice")));
        assert!(problems.iter().any(|p| p.contains("no grader")));
        assert!(problems.iter().any(|p| p.starts_with("trials")));
        assert!(problems.iter().any(|p| p.contains("pattern")));

        let unknown = suite(json!({"agent": "a", "cases": [], "colour": 1})).unwrap_err();
        assert!(unknown[0].contains("colour"), "{unknown:?}");
    }

    #[test]
    fn the_published_schema_describes_the_file() {
        let schema = json_schema();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let example = json!({
            "agent": "@demo/brief", "trials": 3,
            "graders": [{"type": "contains", "path": "summary", "value": "Rust", "ignoreCase": true}],
            "usage": {"inputTokens": "completion.inputTokens", "outputTokens": "completion.outputTokens"},
            "cases": [{"name": "one", "input": {}}]
        });
        assert!(validator.is_valid(&example));
        assert!(!validator.is_valid(&json!({"agent": "a"})));
    }
}
