//! Graders: what decides whether one run of a case passed.
//!
//! A grader looks at the run's output (and the case's input) and says
//! pass, fail (the output is wrong: the agent's fault) or error (the grader
//! itself could not decide: a bad path, an invalid pattern, a judge that
//! failed). Errors are reported as such and kept out of pass rates, so a
//! broken grader never reads as a worse prompt.
//!
//! Paths are JMESPath expressions over the output (`brief.title`,
//! `sources[0].url`, `length(sources)`); `@` is the whole output.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One check of a run's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Grader {
    /// The output conforms to a JSON Schema: `schema`, or the agent's own
    /// output schema when it is left out.
    Schema {
        /// The schema [default: the agent's output schema].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schema: Option<Value>,
    },
    /// The value at `path` equals `value`.
    Equals {
        /// A JMESPath expression over the output.
        path: String,
        /// The expected value.
        value: Value,
    },
    /// The value at `path` contains `value`: a substring of a string, an
    /// element of an array, a key of an object.
    Contains {
        /// A JMESPath expression over the output.
        path: String,
        /// What it must contain.
        value: Value,
        /// Compare text without regard to case.
        #[serde(default)]
        ignore_case: bool,
    },
    /// The text at `path` matches the regular expression `pattern`.
    Regex {
        /// A JMESPath expression over the output.
        path: String,
        /// A regular expression (Rust `regex` syntax), searched anywhere in
        /// the text unless anchored.
        pattern: String,
    },
    /// The number at `path` is within `tolerance` of `value`.
    Number {
        /// A JMESPath expression over the output.
        path: String,
        /// The expected number.
        value: f64,
        /// The largest difference that passes [default 0].
        #[serde(default)]
        tolerance: f64,
    },
    /// Every source is cited in the output: each of `sources` (and of
    /// what `sourcesFrom` finds in `{input, output}`) appears in the text
    /// at `path`.
    Cites {
        /// A JMESPath expression over the output giving the text (or a
        /// list of texts) that must cite them [default `@`: the whole
        /// output, as JSON text].
        #[serde(default = "whole")]
        path: String,
        /// The sources, as they must appear (URLs, ids, titles).
        #[serde(default)]
        sources: Vec<String>,
        /// A JMESPath expression over `{input, output}` giving more sources
        /// (a string or a list of strings), such as `input.urls`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sources_from: Option<String>,
    },
    /// An LLM judge: the agent `agent` is called (sandboxed, like any
    /// agent, so tests answer it from fixtures) with `{rubric, input,
    /// output}` and answers `{score, reason}`, a score from 0 to 1; the run
    /// passes when the score reaches `threshold`.
    Judge {
        /// The judge agent's id.
        agent: String,
        /// What a good output is, for the judge.
        rubric: String,
        /// The lowest passing score [default 0.5].
        #[serde(default = "half")]
        threshold: f64,
    },
}

fn whole() -> String {
    "@".into()
}

fn half() -> f64 {
    0.5
}

/// What a grader said of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "grade", rename_all = "kebab-case")]
pub enum Grade {
    /// The output is right.
    Pass,
    /// The output is wrong, and why.
    Fail {
        /// Why.
        reason: String,
    },
    /// The grader could not decide, and why.
    Error {
        /// Why.
        reason: String,
    },
}

impl Grade {
    fn fail(reason: impl Into<String>) -> Self {
        Grade::Fail {
            reason: reason.into(),
        }
    }

    fn error(reason: impl Into<String>) -> Self {
        Grade::Error {
            reason: reason.into(),
        }
    }

    /// Whether it passed.
    pub fn passed(&self) -> bool {
        matches!(self, Grade::Pass)
    }
}

impl Grader {
    /// A short name for reports: its type and path.
    pub fn label(&self) -> String {
        match self {
            Grader::Schema { schema: None } => "schema (the agent's)".into(),
            Grader::Schema { .. } => "schema".into(),
            Grader::Equals { path, .. } => format!("equals {path}"),
            Grader::Contains { path, .. } => format!("contains {path}"),
            Grader::Regex { path, .. } => format!("regex {path}"),
            Grader::Number { path, .. } => format!("number {path}"),
            Grader::Cites { path, .. } => format!("cites {path}"),
            Grader::Judge { agent, .. } => format!("judge {agent}"),
        }
    }

    /// What is wrong with it before any run (a path or a pattern that does
    /// not compile, a threshold outside 0 to 1), if anything.
    pub fn problem(&self) -> Option<String> {
        let path = |p: &str| {
            jmespath::compile(p)
                .err()
                .map(|e| format!("path `{p}`: {e}"))
        };
        match self {
            Grader::Schema { schema: Some(s) } => jsonschema::validator_for(s)
                .err()
                .map(|e| format!("schema: {e}")),
            Grader::Schema { schema: None } => None,
            Grader::Equals { path: p, .. }
            | Grader::Contains { path: p, .. }
            | Grader::Number { path: p, .. } => path(p),
            Grader::Regex { path: p, pattern } => path(p).or_else(|| {
                regex::Regex::new(pattern)
                    .err()
                    .map(|e| format!("pattern: {e}"))
            }),
            Grader::Cites {
                path: p,
                sources_from,
                ..
            } => path(p).or_else(|| sources_from.as_deref().and_then(path)),
            Grader::Judge { threshold, .. } => (!(0.0..=1.0).contains(threshold))
                .then(|| format!("threshold {threshold} is not between 0 and 1")),
        }
    }

    /// Grades `output`, the answer to `input`; `output_schema` is the
    /// agent's. A judge is graded by [`Grader::judged`] from its agent's
    /// answer, which the runner gets.
    pub fn grade(&self, input: &Value, output: &Value, output_schema: &Value) -> Grade {
        match self {
            Grader::Schema { schema } => conforms(schema.as_ref().unwrap_or(output_schema), output),
            Grader::Equals { path, value } => match at(path, output) {
                Ok(found) if &found == value => Grade::Pass,
                Ok(found) => Grade::fail(format!("`{path}` is {found}, not {value}")),
                Err(e) => Grade::error(e),
            },
            Grader::Contains {
                path,
                value,
                ignore_case,
            } => match at(path, output) {
                Ok(found) => contains(path, &found, value, *ignore_case),
                Err(e) => Grade::error(e),
            },
            Grader::Regex { path, pattern } => {
                let regex = match regex::Regex::new(pattern) {
                    Ok(r) => r,
                    Err(e) => return Grade::error(format!("pattern: {e}")),
                };
                match at(path, output) {
                    Ok(Value::String(text)) if regex.is_match(&text) => Grade::Pass,
                    Ok(Value::String(text)) => Grade::fail(format!(
                        "`{path}` does not match /{pattern}/: {}",
                        clip(&text)
                    )),
                    Ok(other) => Grade::fail(format!("`{path}` is {other}, not text")),
                    Err(e) => Grade::error(e),
                }
            }
            Grader::Number {
                path,
                value,
                tolerance,
            } => match at(path, output) {
                Ok(Value::Number(n)) => match n.as_f64() {
                    Some(x) if (x - value).abs() <= *tolerance => Grade::Pass,
                    Some(x) => Grade::fail(format!(
                        "`{path}` is {x}, not within {tolerance} of {value}"
                    )),
                    None => Grade::fail(format!("`{path}` is not a finite number")),
                },
                Ok(other) => Grade::fail(format!("`{path}` is {other}, not a number")),
                Err(e) => Grade::error(e),
            },
            Grader::Cites {
                path,
                sources,
                sources_from,
            } => cites(path, sources, sources_from.as_deref(), input, output),
            Grader::Judge { agent, .. } => Grade::error(format!(
                "the judge `{agent}` grades through its agent, not here"
            )),
        }
    }

    /// A judge's grade from its agent's answer (`{score, reason}`), or
    /// from its failure.
    pub fn judged(&self, answer: Result<&Value, &str>) -> Grade {
        let Grader::Judge {
            agent, threshold, ..
        } = self
        else {
            return Grade::error("not a judge");
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(why) => return Grade::error(format!("the judge `{agent}` failed: {why}")),
        };
        let reason = answer["reason"].as_str().unwrap_or("").to_string();
        match answer["score"].as_f64() {
            Some(score) if !(0.0..=1.0).contains(&score) => Grade::error(format!(
                "the judge `{agent}` gave score {score}, not between 0 and 1"
            )),
            Some(score) if score >= *threshold => Grade::Pass,
            Some(score) => Grade::fail(format!(
                "the judge scored {score} (below {threshold}): {reason}"
            )),
            None => Grade::error(format!(
                "the judge `{agent}` answered without a numeric `score`: {}",
                clip(&answer.to_string())
            )),
        }
    }

    /// What the judge agent is asked, for [`Grader::Judge`].
    pub fn judge_input(rubric: &str, input: &Value, output: &Value) -> Value {
        json!({ "rubric": rubric, "input": input, "output": output })
    }
}

/// The value at JMESPath `path` in `data` (`null` when there is nothing
/// there); `Err` when the path does not compile or cannot be evaluated.
pub fn at(path: &str, data: &Value) -> Result<Value, String> {
    let expression = jmespath::compile(path).map_err(|e| format!("path `{path}`: {e}"))?;
    let found = expression
        .search(data)
        .map_err(|e| format!("path `{path}`: {e}"))?;
    serde_json::to_value(Arc::as_ref(&found)).map_err(|e| format!("path `{path}`: {e}"))
}

fn conforms(schema: &Value, output: &Value) -> Grade {
    let validator = match jsonschema::validator_for(schema) {
        Ok(v) => v,
        Err(e) => return Grade::error(format!("schema: {e}")),
    };
    let problems: Vec<String> = validator
        .iter_errors(output)
        .take(3)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if problems.is_empty() {
        Grade::Pass
    } else {
        Grade::fail(format!(
            "the output breaks the schema: {}",
            problems.join("; ")
        ))
    }
}

fn contains(path: &str, found: &Value, value: &Value, ignore_case: bool) -> Grade {
    let fold = |s: &str| {
        if ignore_case {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    };
    let holds = match (found, value) {
        (Value::String(text), Value::String(part)) => fold(text).contains(&fold(part)),
        (Value::Array(items), wanted) => items.iter().any(|item| match (item, wanted) {
            (Value::String(a), Value::String(b)) => fold(a) == fold(b),
            (a, b) => a == b,
        }),
        (Value::Object(map), Value::String(key)) => map.contains_key(key),
        (Value::Null, _) => return Grade::fail(format!("nothing at `{path}`")),
        _ => {
            return Grade::fail(format!(
                "`{path}` is {}, which cannot contain {value}",
                clip(&found.to_string())
            ));
        }
    };
    if holds {
        Grade::Pass
    } else {
        Grade::fail(format!(
            "`{path}` does not contain {value}: {}",
            clip(&found.to_string())
        ))
    }
}

fn cites(
    path: &str,
    sources: &[String],
    sources_from: Option<&str>,
    input: &Value,
    output: &Value,
) -> Grade {
    let mut wanted: Vec<String> = sources.to_vec();
    if let Some(from) = sources_from {
        match at(from, &json!({ "input": input, "output": output })) {
            Ok(Value::String(s)) => wanted.push(s),
            Ok(Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::String(s) => wanted.push(s),
                        other => {
                            return Grade::error(format!(
                                "`{from}` gave {other}, not a source's text"
                            ));
                        }
                    }
                }
            }
            Ok(Value::Null) => {}
            Ok(other) => {
                return Grade::error(format!(
                    "`{from}` gave {}, not sources",
                    clip(&other.to_string())
                ));
            }
            Err(e) => return Grade::error(e),
        }
    }
    if wanted.is_empty() {
        return Grade::error("no sources to look for (give `sources` or `sourcesFrom`)");
    }
    let text = match at(path, output) {
        Ok(Value::String(s)) => s,
        Ok(Value::Null) => return Grade::fail(format!("nothing at `{path}`")),
        Ok(other) => other.to_string(),
        Err(e) => return Grade::error(e),
    };
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|s| !text.contains(s.as_str()))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        Grade::Pass
    } else {
        Grade::fail(format!(
            "{} of {} sources not cited: {}",
            missing.len(),
            wanted.len(),
            missing.join(", ")
        ))
    }
}

/// At most 200 characters of `text`, for messages.
fn clip(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grader(value: Value) -> Grader {
        serde_json::from_value(value).unwrap()
    }

    fn output() -> Value {
        json!({
            "title": "Tokio runtimes",
            "summary": "See https://docs.rs/tokio and https://tokio.rs/tokio/tutorial.",
            "words": 42,
            "score": 0.81,
            "tags": ["async", "Rust"],
        })
    }

    fn grade(g: Value) -> Grade {
        let input = json!({ "urls": ["https://docs.rs/tokio", "https://tokio.rs/tokio/tutorial"] });
        let schema = json!({ "type": "object", "required": ["title"] });
        grader(g).grade(&input, &output(), &schema)
    }

    #[test]
    fn each_grader_passes_what_is_right_and_fails_what_is_wrong() {
        assert_eq!(grade(json!({"type": "schema"})), Grade::Pass);
        let strict =
            json!({"type": "schema", "schema": {"type": "object", "required": ["missing"]}});
        assert!(matches!(grade(strict), Grade::Fail { .. }));
        assert_eq!(
            grade(json!({"type": "equals", "path": "words", "value": 42})),
            Grade::Pass
        );
        assert!(matches!(
            grade(json!({"type": "equals", "path": "title", "value": "other"})),
            Grade::Fail { .. }
        ));
        assert_eq!(
            grade(json!({"type": "contains", "path": "summary", "value": "docs.rs"})),
            Grade::Pass
        );
        assert_eq!(
            grade(json!({"type": "contains", "path": "tags", "value": "rust", "ignoreCase": true})),
            Grade::Pass
        );
        assert!(matches!(
            grade(json!({"type": "contains", "path": "tags", "value": "go"})),
            Grade::Fail { .. }
        ));
        assert_eq!(
            grade(json!({"type": "regex", "path": "title", "pattern": "^Tokio"})),
            Grade::Pass
        );
        assert!(matches!(
            grade(json!({"type": "regex", "path": "words", "pattern": "4"})),
            Grade::Fail { .. }
        ));
        assert_eq!(
            grade(json!({"type": "number", "path": "score", "value": 0.8, "tolerance": 0.05})),
            Grade::Pass
        );
        assert!(matches!(
            grade(json!({"type": "number", "path": "score", "value": 0.5, "tolerance": 0.1})),
            Grade::Fail { .. }
        ));
        assert_eq!(
            grade(json!({"type": "cites", "path": "summary", "sourcesFrom": "input.urls"})),
            Grade::Pass
        );
        let missing = grade(json!({"type": "cites", "path": "summary",
            "sources": ["https://docs.rs/tokio", "https://crates.io/crates/tokio"]}));
        assert_eq!(
            missing,
            Grade::fail("1 of 2 sources not cited: https://crates.io/crates/tokio")
        );
    }

    /// A grader that cannot decide says so: an error, not a failed run.
    #[test]
    fn a_grader_that_cannot_decide_is_an_error_not_a_failure() {
        let bad_pattern = json!({"type": "regex", "path": "title", "pattern": "("});
        assert!(matches!(grade(bad_pattern.clone()), Grade::Error { .. }));
        assert!(grader(bad_pattern).problem().unwrap().contains("pattern"));
        let bad_path = json!({"type": "equals", "path": "title[", "value": 1});
        assert!(matches!(grade(bad_path.clone()), Grade::Error { .. }));
        assert!(grader(bad_path).problem().is_some());
        assert!(matches!(
            grade(json!({"type": "cites", "path": "summary"})),
            Grade::Error { .. }
        ));
        let judge = grader(
            json!({"type": "judge", "agent": "@eval/judge", "rubric": "r", "threshold": 0.7}),
        );
        assert_eq!(
            judge.judged(Ok(&json!({"score": 0.9, "reason": "good"}))),
            Grade::Pass
        );
        assert_eq!(
            judge.judged(Ok(&json!({"score": 0.4, "reason": "vague"}))),
            Grade::fail("the judge scored 0.4 (below 0.7): vague")
        );
        assert!(matches!(
            judge.judged(Ok(&json!({"verdict": "good"}))),
            Grade::Error { .. }
        ));
        assert!(matches!(
            judge.judged(Ok(&json!({"score": 7}))),
            Grade::Error { .. }
        ));
        assert!(matches!(judge.judged(Err("TIMEOUT")), Grade::Error { .. }));
        let out_of_range =
            grader(json!({"type": "judge", "agent": "a", "rubric": "r", "threshold": 2}));
        assert!(out_of_range.problem().is_some());
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        assert!(serde_json::from_value::<Grader>(json!({"type": "vibes"})).is_err());
        assert!(
            serde_json::from_value::<Grader>(
                json!({"type": "equals", "path": "a", "value": 1, "extra": 2})
            )
            .is_err()
        );
    }
}
