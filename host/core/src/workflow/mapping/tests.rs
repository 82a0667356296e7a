use std::collections::BTreeMap;

use rstest::rstest;
use serde_json::{Value, json};

use super::*;

struct Fixture {
    outputs: BTreeMap<String, Value>,
    variables: BTreeMap<String, Value>,
    env: BTreeMap<String, String>,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            outputs: BTreeMap::from([(
                "search".to_string(),
                json!({"count": 2, "items": [{"title": "a"}, {"title": "b"}], "none": null}),
            )]),
            variables: BTreeMap::from([
                ("user".to_string(), json!("ada")),
                ("limits".to_string(), json!({"max": 5})),
            ]),
            env: BTreeMap::from([("REGION".to_string(), "eu".to_string())]),
        }
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            outputs: &self.outputs,
            variables: &self.variables,
            env: &self.env,
        }
    }

    fn render(&self, value: Value) -> Result<Value, MappingError> {
        Mapped::compile(&value)?.render(self.scope(), Limits::default())
    }
}

#[rstest]
#[case::number_keeps_its_type("${steps.search.output.count}", json!(2))]
#[case::object_keeps_its_type("${steps.search.output.items[1]}", json!({"title": "b"}))]
#[case::whole_output("${steps.search.output}", json!({"count": 2, "items": [{"title": "a"}, {"title": "b"}], "none": null}))]
#[case::indexed_path("${steps.search.output.items[0].title}", json!("a"))]
#[case::variable("${variables.user}", json!("ada"))]
#[case::nested_variable("${variables.limits.max}", json!(5))]
#[case::env("${env.REGION}", json!("eu"))]
#[case::interpolation("user=${variables.user}, n=${steps.search.output.count}", json!("user=ada, n=2"))]
#[case::objects_interpolate_as_json("got ${variables.limits}", json!("got {\"max\":5}"))]
#[case::no_expression("plain text", json!("plain text"))]
#[case::json_default("${steps.search.output.missing ?? 0}", json!(0))]
#[case::list_default("${variables.nope ?? []}", json!([]))]
#[case::bare_text_default("${variables.nope ?? anonymous}", json!("anonymous"))]
#[case::quoted_default_with_braces("${variables.nope ?? \"a}b??c\"}", json!("a}b??c"))]
#[case::single_quoted_default("${variables.nope ?? 'x'}", json!("x"))]
#[case::null_takes_the_default("${steps.search.output.none ?? 'fallback'}", json!("fallback"))]
#[case::present_value_ignores_the_default("${variables.user ?? 'someone'}", json!("ada"))]
fn expressions_render(#[case] template: &str, #[case] expected: Value) {
    assert_eq!(Fixture::new().render(json!(template)).unwrap(), expected);
}

#[test]
fn arrays_and_objects_are_rendered_recursively() {
    let out = Fixture::new()
        .render(
            json!({"who": ["${variables.user}", 1], "n": {"c": "${steps.search.output.count}"}}),
        )
        .unwrap();
    assert_eq!(out, json!({"who": ["ada", 1], "n": {"c": 2}}));
}

#[rstest]
#[case::missing_key(
    "${steps.search.output.nope}",
    "`steps.search.output.nope` does not exist"
)]
#[case::missing_index(
    "${steps.search.output.items[5]}",
    "`steps.search.output.items[5]` does not exist"
)]
#[case::step_without_output("${steps.other.output.x}", "step `other` has no output")]
#[case::ungranted_env("${env.HOME}", "`HOME` is not in context.environment")]
#[case::missing_variable("${variables.nope}", "`variables.nope` does not exist")]
fn a_missing_value_without_default_names_the_expression(
    #[case] template: &str,
    #[case] reason: &str,
) {
    match Fixture::new().render(json!(template)).unwrap_err() {
        MappingError::Missing {
            expression,
            reason: r,
        } => {
            assert_eq!(expression, template);
            assert_eq!(r, reason);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[rstest]
#[case::unclosed("${variables.user")]
#[case::unknown_root("${input.x}")]
#[case::steps_without_output("${steps.search.count}")]
#[case::bad_index("${steps.search.output.items[x]}")]
#[case::empty("${}")]
#[case::empty_segment("${variables..x}")]
#[case::env_path("${env.A.B}")]
#[case::unterminated_quote("${variables.x ?? 'abc}")]
fn malformed_expressions_are_syntax_errors(#[case] template: &str) {
    assert!(
        matches!(parse_template(template), Err(MappingError::Syntax { .. })),
        "{template}"
    );
}

#[test]
fn deep_paths_are_refused() {
    let deep = format!("${{variables.{}}}", ["a"; 11].join("."));
    let err = Fixture::new().render(json!(deep)).unwrap_err();
    assert!(
        matches!(
            err,
            MappingError::TooDeep {
                depth: 11,
                max: 10,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn large_expansions_are_refused_not_truncated() {
    let mut f = Fixture::new();
    f.variables.insert("big".into(), json!("x".repeat(70_000)));
    let err = f.render(json!("${variables.big}")).unwrap_err();
    assert!(
        matches!(err, MappingError::TooLarge { max: 65_536, .. }),
        "{err}"
    );
    let small = Limits {
        max_depth: 10,
        max_expansion: 5,
    };
    let err = Mapped::compile(&json!("${variables.limits}"))
        .unwrap()
        .render(f.scope(), small)
        .unwrap_err();
    assert!(
        matches!(
            err,
            MappingError::TooLarge {
                size: 9,
                max: 5,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn expressions_are_collected_from_nested_values() {
    let exprs =
        expressions(&json!({"a": ["${steps.x.output.y}", "t ${variables.v ?? 1}"], "b": 3}))
            .unwrap();
    let roots: Vec<Root> = exprs.iter().map(|e| e.root.clone()).collect();
    assert_eq!(roots, vec![Root::Step("x".into()), Root::Variables]);
    assert!(exprs[1].default.is_some());
}
