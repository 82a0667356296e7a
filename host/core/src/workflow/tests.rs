//! Validation: one fixture per error, the messages pinned by snapshots.

use std::collections::HashSet;

use rstest::rstest;
use serde_json::{Value, json};

use super::*;

fn base() -> Value {
    json!({
        "version": "1.0.0",
        "schemaVersion": "1.0.0",
        "metadata": {"id": "7f1d2c3e-0b4a-4f5e-9d8c-1a2b3c4d5e6f", "name": "text pipeline"},
        "context": {"variables": {"text": "hello"}},
        "steps": [
            {
                "id": "stats",
                "name": "Stats",
                "agent": {"id": "@orchestr8/text-stats"},
                "input": {"mapping": {"text": "${variables.text}"}}
            },
            {
                "id": "again",
                "name": "Again",
                "agent": {"id": "@orchestr8/text-stats"},
                "dependencies": ["stats"],
                "input": {"mapping": {"text": "words: ${steps.stats.output.words}"}}
            }
        ]
    })
}

/// Sets `value` at a JSON pointer, creating objects on the way.
fn set(doc: &mut Value, pointer: &str, value: Value) {
    let mut current = doc;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i == parts.len() - 1;
        current = match current {
            Value::Array(items) => &mut items[part.parse::<usize>().unwrap()],
            Value::Object(map) => {
                if last {
                    map.insert((*part).to_string(), value);
                    return;
                }
                map.entry((*part).to_string()).or_insert(json!({}))
            }
            _ => panic!("cannot descend into {pointer}"),
        };
        if last {
            *current = value;
            return;
        }
    }
}

fn check(doc: &Value) -> String {
    let catalog: HashSet<String> = HashSet::from(["@orchestr8/text-stats".to_string()]);
    match load(&doc.to_string(), &catalog) {
        Ok(_) => "valid".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_base_fixture_is_valid() {
    assert_eq!(check(&base()), "valid");
}

#[rstest]
#[case::unknown_field("unknown_field", "/steps/0/agnet", json!({"id": "@x/y"}))]
#[case::wrong_type("wrong_type", "/steps/0/dependencies", json!("stats"))]
#[case::unknown_on_error("unknown_on_error", "/steps/0/onError", json!("explode"))]
#[case::bad_version("bad_version", "/version", json!("one"))]
#[case::unsupported_schema_version("unsupported_schema_version", "/schemaVersion", json!("2.0.0"))]
#[case::malformed_schema_hash("malformed_schema_hash", "/schemaHash", json!("abc"))]
#[case::mismatched_schema_hash("mismatched_schema_hash", "/schemaHash", json!("0".repeat(64)))]
#[case::metadata_id_not_uuid("metadata_id_not_uuid", "/metadata/id", json!("workflow-1"))]
#[case::empty_name("empty_name", "/metadata/name", json!(""))]
#[case::bad_secret_ref("bad_secret_ref", "/context/secretRefs", json!(["vault:key"]))]
#[case::no_steps("no_steps", "/steps", json!([]))]
#[case::bad_step_id("bad_step_id", "/steps/0/id", json!("has space"))]
#[case::duplicate_step_id("duplicate_step_id", "/steps/1/id", json!("stats"))]
#[case::bad_agent_id("bad_agent_id", "/steps/0/agent/id", json!("text-stats"))]
#[case::unknown_agent("unknown_agent", "/steps/0/agent/id", json!("@orchestr8/nope"))]
#[case::bad_agent_version("bad_agent_version", "/steps/0/agent/version", json!("v1"))]
#[case::config_not_object("config_not_object", "/steps/0/agent/config", json!([1]))]
#[case::unknown_dependency("unknown_dependency", "/steps/1/dependencies", json!(["stats", "ghost"]))]
#[case::self_dependency("self_dependency", "/steps/0/dependencies", json!(["stats"]))]
#[case::two_step_cycle("two_step_cycle", "/steps/0/dependencies", json!(["again"]))]
#[case::fallback_without_step("fallback_without_step", "/steps/1/onError", json!("fallback"))]
#[case::fallback_unknown("fallback_unknown", "/steps/1", json!({
    "id": "again", "name": "Again", "agent": {"id": "@orchestr8/text-stats"},
    "dependencies": ["stats"], "onError": "fallback", "fallbackStepId": "ghost"
}))]
#[case::fallback_field_without_fallback("fallback_field_without_fallback", "/steps/1/fallbackStepId", json!("stats"))]
#[case::mapping_syntax("mapping_syntax", "/steps/0/input/mapping/text", json!("${variables.text"))]
#[case::mapping_unknown_root("mapping_unknown_root", "/steps/0/input/mapping/text", json!("${input.text}"))]
#[case::mapping_not_upstream("mapping_not_upstream", "/steps/0/input/mapping/text", json!("${steps.again.output.words}"))]
#[case::mapping_unknown_step("mapping_unknown_step", "/steps/1/input/mapping/text", json!("${steps.ghost.output.x}"))]
#[case::mapping_too_deep("mapping_too_deep", "/steps/1/input/mapping/text", json!("${steps.stats.output.a.b.c.d.e.f.g.h.i.j.k}"))]
#[case::mapping_default_too_large("mapping_default_too_large", "/steps/0/input/mapping/text", json!(format!("${{variables.nope ?? '{}'}}", "x".repeat(70_000))))]
#[case::mapping_env_not_granted("mapping_env_not_granted", "/steps/0/input/mapping/text", json!("${env.HOME}"))]
#[case::capture_too_deep("capture_too_deep", "/steps/0/output", json!({"capture": {"n": "a.b.c.d.e.f.g.h.i.j.k"}}))]
#[case::bad_condition("bad_condition", "/steps/1/condition", json!({"if": "steps.["}))]
#[case::bad_capture_path("bad_capture_path", "/steps/0/output", json!({"capture": {"n": "items[x]"}}))]
#[case::bad_output_schema("bad_output_schema", "/steps/0/output", json!({"schema": {"type": 12}}))]
#[case::step_timeout_too_small("step_timeout_too_small", "/steps/0/policies", json!({"timeout": 10}))]
#[case::step_retry_out_of_range("step_retry_out_of_range", "/steps/0/policies", json!({"retry": {"maxAttempts": 50}}))]
#[case::step_retry_unknown_field("step_retry_unknown_field", "/steps/0/policies", json!({"retry": {"tries": 2}}))]
#[case::concurrency_out_of_range("concurrency_out_of_range", "/policies", json!({"concurrency": {"maxConcurrentSteps": 0}}))]
#[case::unsupported_composition("unsupported_composition", "/policies", json!({"resilience": {"compositionOrder": "timeout-cb-retry"}}))]
fn invalid_workflows_are_explained(
    #[case] name: &str,
    #[case] pointer: &str,
    #[case] value: Value,
) {
    let mut doc = base();
    set(&mut doc, pointer, value);
    let message = check(&doc);
    assert_ne!(message, "valid", "{name} should be invalid");
    insta::assert_snapshot!(name, message);
}

#[test]
fn a_longer_cycle_is_named_in_order() {
    let mut doc = base();
    set(&mut doc, "/steps/0/dependencies", json!(["third"]));
    let steps = doc["steps"].as_array_mut().unwrap();
    steps.push(json!({
        "id": "third", "name": "Third", "agent": {"id": "@orchestr8/text-stats"},
        "dependencies": ["again"]
    }));
    let message = check(&doc);
    assert!(
        message.contains("dependency cycle: stats -> third -> again -> stats"),
        "{message}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut doc = base();
    set(&mut doc, "/version", json!("x"));
    set(&mut doc, "/steps/1/dependencies", json!(["ghost"]));
    set(&mut doc, "/steps/0/agent/id", json!("bad"));
    let err = load(&doc.to_string(), &()).unwrap_err();
    assert_eq!(err.issues.len(), 4, "{err}");
    assert_eq!(err.code(), crate::ErrorCode::Validation);
}

#[test]
fn every_unknown_missing_or_mistyped_field_is_reported_at_once() {
    let mut doc = base();
    set(&mut doc, "/metadata/nmae", json!("typo"));
    set(&mut doc, "/steps/0/agnet", json!({"id": "@x/y"}));
    set(&mut doc, "/steps/1/onError", json!("explode"));
    doc["steps"][1].as_object_mut().unwrap().remove("name");
    let err = parse(&doc.to_string()).unwrap_err();
    let found: Vec<(&str, &str)> = err
        .issues
        .iter()
        .map(|i| (i.path.as_str(), i.message.as_str()))
        .collect();
    for (path, start) in [
        (
            "$.metadata.nmae",
            "unknown field `nmae`, expected one of `id`, `name`",
        ),
        ("$.steps[0].agnet", "unknown field `agnet`, expected one of"),
        ("$.steps[1]", "missing field `name`"),
        (
            "$.steps[1].onError",
            "\"explode\" is not one of \"fail\", \"continue\"",
        ),
    ] {
        assert!(
            found
                .iter()
                .any(|(p, m)| *p == path && m.starts_with(start)),
            "{path}: {start}… not in {found:?}"
        );
    }
}

#[test]
fn malformed_json_says_where() {
    let err = parse("{\"version\": ").unwrap_err();
    assert!(err.issues[0].message.starts_with("not valid JSON"), "{err}");
}

#[test]
fn the_published_schema_describes_the_document() {
    let schema = json_schema();
    let props = &schema["properties"];
    for field in [
        "version",
        "schemaVersion",
        "metadata",
        "context",
        "steps",
        "policies",
    ] {
        assert!(props[field].is_object(), "missing {field}");
    }
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&base()));
    assert_eq!(schema_hash().len(), 64);
}

#[test]
fn a_matching_schema_hash_is_accepted() {
    let mut doc = base();
    set(&mut doc, "/schemaHash", json!(schema_hash()));
    assert_eq!(check(&doc), "valid");
}
