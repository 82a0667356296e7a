//! An agent's JSON Schema (draft 2020-12, as `info` publishes it) as an
//! OpenAPI 3.0 Schema Object.
//!
//! OpenAPI 3.0 reads a subset of an older draft: one `type` per schema
//! (`nullable` for null), no `const`, `$defs`, `prefixItems`, numeric
//! `exclusiveMinimum`, and no siblings beside a `$ref`. An agent's schema
//! is copied keyword by keyword into that subset: what has an equivalent
//! is translated, definitions move to `components/schemas` under a prefix
//! (so two agents' or one agent's input and output definitions never
//! collide), and what 3.0 cannot say (`if`, `contains`, …) is left out, so
//! the published schema may accept more than the agent does, never less.
//! Agents are untrusted: whatever their schema holds, the result is a valid
//! 3.0 schema.

use serde_json::{Map, Value, json};

/// Keywords OpenAPI 3.0 takes as they are.
const KEPT: &[&str] = &[
    "title",
    "description",
    "default",
    "format",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "required",
    "enum",
    "readOnly",
    "writeOnly",
    "deprecated",
];

/// Recursion depth past which a schema is cut to "anything" (an agent's
/// schema is untrusted input).
const MAX_DEPTH: usize = 64;

/// Converts `schema`, registering it as component `name` and its
/// definitions as `name_<definition>` in `components`; returns a `$ref` to
/// it.
pub fn register(schema: &Value, name: &str, components: &mut Map<String, Value>) -> Value {
    let defs: Vec<(String, Value)> = ["$defs", "definitions"]
        .iter()
        .filter_map(|k| schema.get(*k).and_then(Value::as_object))
        .flat_map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())))
        .collect();
    let converter = Converter {
        root: name.to_string(),
        defs: defs.iter().map(|(k, _)| k.clone()).collect(),
    };
    for (def, body) in &defs {
        components.insert(converter.def_name(def), converter.convert(body, 0));
    }
    components.insert(name.to_string(), converter.convert(schema, 0));
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// A component name: only the characters OpenAPI allows.
pub fn component_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

struct Converter {
    root: String,
    defs: Vec<String>,
}

impl Converter {
    fn def_name(&self, def: &str) -> String {
        component_name(&format!("{}_{def}", self.root))
    }

    fn reference(&self, target: &str) -> Value {
        let name = if target == "#" {
            Some(self.root.clone())
        } else {
            ["#/$defs/", "#/definitions/"]
                .iter()
                .find_map(|p| target.strip_prefix(p))
                .filter(|def| self.defs.iter().any(|d| d == def))
                .map(|def| self.def_name(def))
        };
        match name {
            Some(name) => json!({ "$ref": format!("#/components/schemas/{name}") }),
            // A reference that leads nowhere we publish: anything.
            None => json!({}),
        }
    }

    fn convert(&self, schema: &Value, depth: usize) -> Value {
        let map = match schema {
            Value::Object(map) if depth < MAX_DEPTH => map,
            Value::Bool(false) => return json!({ "not": {} }),
            _ => return json!({}),
        };
        let sub = |v: &Value| self.convert(v, depth + 1);
        let mut out = Map::new();
        for key in KEPT {
            if let Some(v) = map.get(*key) {
                out.insert((*key).into(), v.clone());
            }
        }
        if let Some(v) = map.get("const") {
            out.insert("enum".into(), json!([v]));
        }
        if let Some(first) = map.get("examples").and_then(|e| e.as_array()?.first()) {
            out.insert("example".into(), first.clone());
        } else if let Some(example) = map.get("example") {
            out.insert("example".into(), example.clone());
        }
        for (key, bound) in [
            ("exclusiveMinimum", "minimum"),
            ("exclusiveMaximum", "maximum"),
        ] {
            match map.get(key) {
                Some(Value::Number(n)) => {
                    out.insert(bound.into(), Value::Number(n.clone()));
                    out.insert(key.into(), true.into());
                }
                Some(Value::Bool(b)) => {
                    out.insert(key.into(), (*b).into());
                }
                _ => {}
            }
        }
        if let Some(Value::Object(props)) = map.get("properties") {
            let props: Map<String, Value> =
                props.iter().map(|(k, v)| (k.clone(), sub(v))).collect();
            out.insert("properties".into(), Value::Object(props));
        }
        match map.get("additionalProperties") {
            Some(Value::Bool(b)) => {
                out.insert("additionalProperties".into(), (*b).into());
            }
            Some(v @ Value::Object(_)) => {
                out.insert("additionalProperties".into(), sub(v));
            }
            _ => {}
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            if let Some(Value::Array(items)) = map.get(key)
                && !items.is_empty()
            {
                out.insert(key.into(), items.iter().map(sub).collect());
            }
        }
        if let Some(not) = map.get("not") {
            out.insert("not".into(), sub(not));
        }
        // A tuple (`prefixItems`, or an `items` array in older drafts)
        // becomes "each item is one of these", with the length bounded.
        let tuple = match (map.get("prefixItems"), map.get("items")) {
            (Some(Value::Array(t)), _) | (None, Some(Value::Array(t))) => Some(t),
            _ => None,
        };
        if let Some(tuple) = tuple {
            let items: Vec<Value> = tuple.iter().map(sub).collect();
            out.insert("items".into(), json!({ "anyOf": items }));
            out.entry("minItems").or_insert(json!(0));
            if matches!(map.get("items"), Some(Value::Bool(false))) {
                out.insert("maxItems".into(), json!(tuple.len()));
            }
        } else if let Some(items) = map.get("items") {
            out.insert("items".into(), sub(items));
        }
        Self::set_type(map.get("type"), &mut out);
        if out.get("type") == Some(&json!("array")) && !out.contains_key("items") {
            out.insert("items".into(), json!({}));
        }
        if let Some(Value::String(target)) = map.get("$ref") {
            let reference = self.reference(target);
            if out.is_empty() {
                return reference;
            }
            // 3.0 ignores a `$ref`'s siblings: keep both through `allOf`.
            let mut all = vec![reference];
            all.extend(
                out.remove("allOf")
                    .and_then(|a| a.as_array().cloned())
                    .unwrap_or_default(),
            );
            out.insert("allOf".into(), Value::Array(all));
        }
        Value::Object(out)
    }

    /// One type per schema: `null` becomes `nullable`, several types an
    /// `anyOf` of one-type schemas.
    fn set_type(ty: Option<&Value>, out: &mut Map<String, Value>) {
        let types: Vec<&str> = match ty {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => return,
        };
        const KNOWN: &[&str] = &["string", "number", "integer", "boolean", "array", "object"];
        let nullable = types.contains(&"null");
        let mut rest: Vec<&str> = types.into_iter().filter(|t| KNOWN.contains(t)).collect();
        rest.dedup();
        if nullable {
            out.insert("nullable".into(), true.into());
        }
        match rest.as_slice() {
            [] if nullable => {
                out.insert("enum".into(), json!([null]));
            }
            [] => {}
            [one] => {
                out.insert("type".into(), (*one).into());
            }
            many => {
                let each: Vec<Value> = many
                    .iter()
                    .map(|t| {
                        if *t == "array" {
                            json!({ "type": t, "items": {} })
                        } else {
                            json!({ "type": t })
                        }
                    })
                    .collect();
                match out.remove("anyOf") {
                    // Alternatives already there and these types must both hold.
                    Some(previous) => {
                        if let Value::Array(all) = out.entry("allOf").or_insert(json!([])) {
                            all.push(json!({ "anyOf": previous }));
                            all.push(json!({ "anyOf": each }));
                        }
                    }
                    None => {
                        out.insert("anyOf".into(), Value::Array(each));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(schema: Value) -> (Value, Map<String, Value>) {
        let mut components = Map::new();
        let reference = register(&schema, "A", &mut components);
        assert_eq!(reference, json!({"$ref": "#/components/schemas/A"}));
        (components["A"].clone(), components)
    }

    #[test]
    fn definitions_move_to_components_and_references_follow() {
        let (root, components) = convert(json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"lib": {"$ref": "#/$defs/Lib"}, "self": {"$ref": "#"}, "far": {"$ref": "https://x/y"}},
            "$defs": {"Lib": {"type": ["string", "null"], "const": "x"}}
        }));
        assert_eq!(
            root["properties"]["lib"],
            json!({"$ref": "#/components/schemas/A_Lib"})
        );
        assert_eq!(
            root["properties"]["self"],
            json!({"$ref": "#/components/schemas/A"})
        );
        assert_eq!(root["properties"]["far"], json!({}));
        assert!(root.get("$schema").is_none() && root.get("$defs").is_none());
        assert_eq!(
            components["A_Lib"],
            json!({"type": "string", "nullable": true, "enum": ["x"]})
        );
    }

    #[test]
    fn draft_2020_keywords_become_their_3_0_equivalents() {
        let (root, _) = convert(json!({
            "type": ["integer", "string"],
            "exclusiveMinimum": 0,
            "examples": [3, 4],
            "if": {"type": "string"},
            "prefixItems": [{"type": "string"}],
        }));
        assert_eq!(
            root,
            json!({
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "minimum": 0, "exclusiveMinimum": true, "example": 3,
                "items": {"anyOf": [{"type": "string"}]}, "minItems": 0
            })
        );
        let (array, _) = convert(json!({"type": "array", "$ref": "#/$defs/Nope", "title": "t"}));
        assert_eq!(
            array,
            json!({"title": "t", "type": "array", "items": {}, "allOf": [{}]})
        );
    }

    #[test]
    fn hostile_schemas_still_give_valid_schemas() {
        let mut deep = json!({"type": "string"});
        for _ in 0..200 {
            deep = json!({"items": deep, "type": "array"});
        }
        let (root, _) = convert(deep);
        assert_eq!(root["type"], "array");
        assert_eq!(convert(json!(false)).0, json!({"not": {}}));
        assert_eq!(convert(json!({"type": 7, "properties": 3})).0, json!({}));
    }
}
