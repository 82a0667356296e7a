//! Mapping expressions: how a step's input is built from earlier outputs,
//! variables and the granted environment.
//!
//! ```text
//! ${steps.<id>.output.<path>}   ${variables.<path>}   ${env.<NAME>}
//! ${<reference> ?? <default>}
//! ```
//!
//! A path is dot-separated keys with optional `[n]` indexes
//! (`items[0].title`). A string that is exactly one expression takes the
//! referenced JSON value with its type; expressions inside a longer string
//! are interpolated as text (strings as they are, other values as compact
//! JSON). A default is a JSON literal (`0`, `[]`, `null`, `true`) or text,
//! quoted with `"` or `'` when it contains `}` or `??`. A reference that
//! resolves to nothing and has no default is an error, never an empty
//! string. Path depth and the size of what one expression expands to are
//! capped; passing a cap is an error, not a truncation.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// Default cap on the number of path segments of one reference.
pub const MAX_PATH_DEPTH: usize = 10;
/// Default cap on what one expression expands to, in bytes of JSON.
pub const MAX_EXPANSION_BYTES: usize = 65_536;

/// Where a reference starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// `steps.<id>.output`.
    Step(String),
    /// `variables`.
    Variables,
    /// `env`.
    Env,
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A parsed `${…}` expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// The expression as written, `${` and `}` included.
    pub source: String,
    /// Where the reference starts.
    pub root: Root,
    /// The path below the root.
    pub path: Vec<Segment>,
    /// The `??` default, if any.
    pub default: Option<Value>,
}

/// A string with expressions.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// No expression: the string as it is.
    Literal,
    /// Exactly one expression: its value, with its type.
    Whole(Expr),
    /// Text and expressions, interpolated as text.
    Parts(Vec<Part>),
}

/// A piece of an interpolated string.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Literal text.
    Text(String),
    /// An expression.
    Expr(Expr),
}

/// What went wrong with an expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// The expression cannot be parsed.
    #[error("invalid expression `{expression}`: {reason}")]
    Syntax {
        /// The expression.
        expression: String,
        /// What is wrong.
        reason: String,
    },
    /// The referenced value does not exist and there is no default.
    #[error("`{expression}` refers to nothing ({reason}) and has no `??` default")]
    Missing {
        /// The expression.
        expression: String,
        /// Which part of the path is missing.
        reason: String,
    },
    /// The path is deeper than allowed.
    #[error("`{expression}` has a path of {depth} segments; at most {max} are allowed")]
    TooDeep {
        /// The expression.
        expression: String,
        /// Its depth.
        depth: usize,
        /// The cap.
        max: usize,
    },
    /// The value is larger than allowed.
    #[error("`{expression}` expands to {size} bytes; at most {max} are allowed")]
    TooLarge {
        /// The expression.
        expression: String,
        /// Its expanded size.
        size: usize,
        /// The cap.
        max: usize,
    },
}

/// Caps on expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Path segments per reference.
    pub max_depth: usize,
    /// Bytes one expression may expand to.
    pub max_expansion: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: MAX_PATH_DEPTH,
            max_expansion: MAX_EXPANSION_BYTES,
        }
    }
}

/// What expressions can see.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Outputs of finished steps, by id.
    pub outputs: &'a BTreeMap<String, Value>,
    /// Workflow variables.
    pub variables: &'a BTreeMap<String, Value>,
    /// The granted environment.
    pub env: &'a BTreeMap<String, String>,
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Root::Step(id) => write!(f, "steps.{id}.output"),
            Root::Variables => f.write_str("variables"),
            Root::Env => f.write_str("env"),
        }
    }
}

/// Parses a string into a template.
pub fn parse_template(text: &str) -> Result<Template, MappingError> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let end = closing_brace(after).ok_or_else(|| MappingError::Syntax {
            expression: shorten(&rest[start..]),
            reason: "no closing `}`".into(),
        })?;
        let source = &rest[start..start + 2 + end + 1];
        parts.push(Part::Expr(parse_expr(source, &after[..end])?));
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Ok(match parts.as_slice() {
        [] | [Part::Text(_)] => Template::Literal,
        [Part::Expr(e)] => Template::Whole(e.clone()),
        _ => Template::Parts(parts),
    })
}

/// An expression as quoted in an error: long ones (a huge default, an
/// unclosed `${` before a long text) are cut so messages stay readable.
fn shorten(expression: &str) -> String {
    const SHOWN: usize = 120;
    match expression.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}… ({} bytes)", &expression[..cut], expression.len()),
        None => expression.to_string(),
    }
}

/// Index of the `}` closing an expression body, skipping quoted text.
fn closing_brace(body: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match (quote, c) {
            (Some(_), _) if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '}') => return Some(i),
            (None, '\n') => return None,
            (None, _) => {}
        }
    }
    None
}

fn parse_expr(source: &str, body: &str) -> Result<Expr, MappingError> {
    let syntax = |reason: &str| MappingError::Syntax {
        expression: source.to_string(),
        reason: reason.to_string(),
    };
    let (reference, default) = match split_default(body) {
        Some((r, d)) => (
            r.trim(),
            Some(parse_default(d.trim()).map_err(|r| syntax(&r))?),
        ),
        None => (body.trim(), None),
    };
    let segments = parse_path(reference).map_err(|r| syntax(&r))?;
    let mut it = segments.into_iter();
    let (root, path) = match it.next() {
        Some(Segment::Key(k)) if k == "steps" => {
            let id = match it.next() {
                Some(Segment::Key(id)) if is_step_id(&id) => id,
                _ => return Err(syntax("expected `steps.<id>.output`")),
            };
            match it.next() {
                Some(Segment::Key(k)) if k == "output" => {}
                _ => return Err(syntax("expected `steps.<id>.output`")),
            }
            (Root::Step(id), it.collect())
        }
        Some(Segment::Key(k)) if k == "variables" => (Root::Variables, it.collect::<Vec<_>>()),
        Some(Segment::Key(k)) if k == "env" => (Root::Env, it.collect::<Vec<_>>()),
        _ => {
            return Err(syntax(
                "a reference starts with `steps.<id>.output`, `variables.` or `env.`",
            ));
        }
    };
    if matches!(root, Root::Variables | Root::Env) && path.is_empty() {
        return Err(syntax("name a variable or environment variable"));
    }
    if root == Root::Env && (path.len() != 1 || !matches!(path[0], Segment::Key(_))) {
        return Err(syntax("`env.<NAME>` takes exactly one name"));
    }
    Ok(Expr {
        source: source.to_string(),
        root,
        path,
        default,
    })
}

/// Splits at the first `??` outside quotes.
fn split_default(body: &str) -> Option<(&str, &str)> {
    let mut quote: Option<char> = None;
    let bytes = body.as_bytes();
    for (i, c) in body.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '?') if bytes.get(i + 1) == Some(&b'?') => {
                return Some((&body[..i], &body[i + 2..]));
            }
            _ => {}
        }
    }
    None
}

fn parse_default(text: &str) -> Result<Value, String> {
    if let Some(inner) = text
        .strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .or_else(|| text.strip_prefix('"').and_then(|t| t.strip_suffix('"')))
    {
        return Ok(Value::String(unescape(inner)));
    }
    if text.starts_with(['"', '\'']) {
        return Err("unterminated quoted default".into());
    }
    Ok(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())))
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn is_step_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `a.b[0].c` → keys and indexes.
fn parse_path(text: &str) -> Result<Vec<Segment>, String> {
    if text.is_empty() {
        return Err("empty reference".into());
    }
    let mut segments = Vec::new();
    for piece in text.split('.') {
        let (key, mut rest) = match piece.find('[') {
            Some(i) => (&piece[..i], &piece[i..]),
            None => (piece, ""),
        };
        if key.is_empty() && (segments.is_empty() || rest.is_empty()) {
            return Err(format!("empty path segment in `{text}`"));
        }
        if !key.is_empty() {
            if !key
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '$')
            {
                return Err(format!("invalid key `{key}` in `{text}`"));
            }
            segments.push(Segment::Key(key.to_string()));
        }
        while !rest.is_empty() {
            let close = rest
                .find(']')
                .ok_or_else(|| format!("unclosed `[` in `{text}`"))?;
            let index = rest[1..close]
                .parse::<usize>()
                .map_err(|_| format!("index `{}` is not a number in `{text}`", &rest[1..close]))?;
            segments.push(Segment::Index(index));
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(format!("unexpected `{rest}` in `{text}`"));
            }
        }
    }
    Ok(segments)
}

/// Every expression in a mapping value (strings, and inside arrays and
/// objects).
pub fn expressions(value: &Value) -> Result<Vec<Expr>, MappingError> {
    let mut out = Vec::new();
    collect(value, &mut out)?;
    Ok(out)
}

fn collect(value: &Value, out: &mut Vec<Expr>) -> Result<(), MappingError> {
    match value {
        Value::String(s) => match parse_template(s)? {
            Template::Literal => {}
            Template::Whole(e) => out.push(e),
            Template::Parts(parts) => out.extend(parts.into_iter().filter_map(|p| match p {
                Part::Expr(e) => Some(e),
                Part::Text(_) => None,
            })),
        },
        Value::Array(items) => {
            for v in items {
                collect(v, out)?;
            }
        }
        Value::Object(map) => {
            for v in map.values() {
                collect(v, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

impl Expr {
    /// The referenced value, or the default, within the limits.
    pub fn evaluate(&self, scope: Scope<'_>, limits: Limits) -> Result<Value, MappingError> {
        self.check_depth(limits)?;
        let found = self.lookup(scope);
        let value = match (found, &self.default) {
            (Ok(v), _) => v,
            (Err(_), Some(default)) => default.clone(),
            (Err(reason), None) => {
                return Err(MappingError::Missing {
                    expression: self.source.clone(),
                    reason,
                });
            }
        };
        self.check_size(&value, limits)?;
        Ok(value)
    }

    /// What can be known without running: the path's depth and the size of
    /// the default. Validation reports these before anything runs.
    pub fn check_static(&self, limits: Limits) -> Result<(), MappingError> {
        self.check_depth(limits)?;
        match &self.default {
            Some(default) => self.check_size(default, limits),
            None => Ok(()),
        }
    }

    fn check_depth(&self, limits: Limits) -> Result<(), MappingError> {
        if self.path.len() > limits.max_depth {
            return Err(MappingError::TooDeep {
                expression: self.source.clone(),
                depth: self.path.len(),
                max: limits.max_depth,
            });
        }
        Ok(())
    }

    fn check_size(&self, value: &Value, limits: Limits) -> Result<(), MappingError> {
        let size = serde_json::to_string(value).map_or(usize::MAX, |s| s.len());
        if size > limits.max_expansion {
            return Err(MappingError::TooLarge {
                expression: shorten(&self.source),
                size,
                max: limits.max_expansion,
            });
        }
        Ok(())
    }

    fn lookup(&self, scope: Scope<'_>) -> Result<Value, String> {
        let mut current: Value = match &self.root {
            Root::Step(id) => scope
                .outputs
                .get(id)
                .cloned()
                .ok_or_else(|| format!("step `{id}` has no output"))?,
            Root::Env => {
                let Some(Segment::Key(name)) = self.path.first() else {
                    return Err("no name".into());
                };
                return scope
                    .env
                    .get(name)
                    .map(|v| Value::String(v.clone()))
                    .ok_or_else(|| format!("`{name}` is not in context.environment"));
            }
            Root::Variables => Value::Object(
                scope
                    .variables
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
        };
        let mut walked = self.root.to_string();
        for segment in &self.path {
            let next = match (segment, &current) {
                (Segment::Key(k), Value::Object(map)) => map.get(k).cloned(),
                (Segment::Index(i), Value::Array(items)) => items.get(*i).cloned(),
                _ => None,
            };
            match segment {
                Segment::Key(k) => walked = format!("{walked}.{k}"),
                Segment::Index(i) => walked = format!("{walked}[{i}]"),
            }
            current = next.ok_or_else(|| format!("`{walked}` does not exist"))?;
        }
        if current.is_null() && self.default.is_some() {
            return Err(format!("`{walked}` is null"));
        }
        Ok(current)
    }
}

/// A mapping value parsed once: its strings as templates, the structure
/// kept, so running it only looks values up.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// A value with no expression in it.
    Literal(Value),
    /// A string template.
    Template(Template),
    /// An array of mapped values.
    Array(Vec<Mapped>),
    /// An object of mapped values.
    Object(Vec<(String, Mapped)>),
}

impl Mapped {
    /// Parses every string of `value`.
    pub fn compile(value: &Value) -> Result<Mapped, MappingError> {
        Ok(match value {
            Value::String(s) => match parse_template(s)? {
                Template::Literal => Mapped::Literal(value.clone()),
                template => Mapped::Template(template),
            },
            Value::Array(items) => Mapped::Array(
                items
                    .iter()
                    .map(Mapped::compile)
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Mapped::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), Mapped::compile(v)?)))
                    .collect::<Result<_, MappingError>>()?,
            ),
            other => Mapped::Literal(other.clone()),
        })
    }

    /// The value, expressions replaced.
    pub fn render(&self, scope: Scope<'_>, limits: Limits) -> Result<Value, MappingError> {
        Ok(match self {
            Mapped::Literal(v) => v.clone(),
            Mapped::Template(Template::Literal) => Value::Null,
            Mapped::Template(Template::Whole(e)) => e.evaluate(scope, limits)?,
            Mapped::Template(Template::Parts(parts)) => {
                let mut text = String::new();
                for part in parts {
                    match part {
                        Part::Text(t) => text.push_str(t),
                        Part::Expr(e) => match e.evaluate(scope, limits)? {
                            Value::String(s) => text.push_str(&s),
                            other => text.push_str(&other.to_string()),
                        },
                    }
                }
                Value::String(text)
            }
            Mapped::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| v.render(scope, limits))
                    .collect::<Result<_, _>>()?,
            ),
            Mapped::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.render(scope, limits)?)))
                    .collect::<Result<_, MappingError>>()?,
            ),
        })
    }
}

#[cfg(test)]
mod tests;
