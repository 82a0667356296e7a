//! Step conditions: JMESPath over `{steps, variables}`.
//!
//! `steps.<id>` holds `{status, output}` of every finished step, so
//! `steps.search.output.count > \`0\`` and `steps.fetch.status == 'failed'`
//! both work. Truthiness is JMESPath's: `false`, `null`, `""`, `[]` and `{}`
//! are false. An expression that does not compile is a validation error; one
//! that fails while running fails the step with `VALIDATION`.

use serde_json::Value;

/// A condition that cannot be compiled or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("condition `{expression}`: {reason}")]
pub struct ConditionError {
    /// The expression.
    pub expression: String,
    /// What went wrong.
    pub reason: String,
}

/// Compiles an expression (to check it).
pub fn compile(expression: &str) -> Result<jmespath::Expression<'static>, ConditionError> {
    jmespath::compile(expression).map_err(|e| ConditionError {
        expression: expression.to_string(),
        reason: e.to_string(),
    })
}

/// Evaluates an expression against `data` and applies JMESPath truthiness.
pub fn holds(expression: &str, data: &Value) -> Result<bool, ConditionError> {
    compile(expression)?.holds(data)
}

/// An expression evaluated with JMESPath truthiness.
pub trait Holds {
    /// Whether the expression is truthy for `data`.
    fn holds(&self, data: &Value) -> Result<bool, ConditionError>;
}

impl Holds for jmespath::Expression<'static> {
    fn holds(&self, data: &Value) -> Result<bool, ConditionError> {
        self.search(data)
            .map(|v| v.is_truthy())
            .map_err(|e| ConditionError {
                expression: self.as_str().to_string(),
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn data() -> Value {
        json!({
            "steps": {"search": {"status": "succeeded", "output": {"count": 3, "items": []}}},
            "variables": {"mode": "fast", "empty": ""}
        })
    }

    #[rstest]
    #[case("steps.search.output.count > `2`", true)]
    #[case("steps.search.output.count > `5`", false)]
    #[case("steps.search.status == 'succeeded'", true)]
    #[case("variables.mode == 'fast'", true)]
    #[case("steps.search.output.items", false)]
    #[case("variables.empty", false)]
    #[case("variables.missing", false)]
    #[case("length(steps.search.output.items) == `0`", true)]
    fn jmespath_truthiness_decides(#[case] expression: &str, #[case] expected: bool) {
        assert_eq!(
            holds(expression, &data()).unwrap(),
            expected,
            "{expression}"
        );
    }

    #[test]
    fn malformed_expressions_do_not_compile() {
        let err = compile("steps.[").unwrap_err();
        assert_eq!(err.expression, "steps.[");
    }
}
