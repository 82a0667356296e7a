//! Reading JSON given on the command line: inline, `@file`, or `@-` (stdin).

use std::io::Read;

use anyhow::{Context, Result};

/// Parses `arg` as JSON text, or reads it from a file (`@path`) or stdin (`@-`).
pub fn json_arg(arg: &str) -> Result<serde_json::Value> {
    let (text, origin) = match arg.strip_prefix('@') {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the input from stdin")?;
            (text, "stdin".to_string())
        }
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read input file `{path}`"))?,
            format!("file `{path}`"),
        ),
        None => (arg.to_string(), "--input".to_string()),
    };
    serde_json::from_str(&text)
        .with_context(|| format!("the input from {origin} is not valid JSON"))
}
