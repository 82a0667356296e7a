//! `orchestr8 prompts check`: the prompt templates an agent ships
//! (`prompts/*.xml` in its directory) are well-formed XML, every
//! `{{placeholder}}` is given a value by the agent's code, and every value
//! goes through `prompt::escape` (or says, in a comment on the line above,
//! that it is escaped already), so that text from a user or a remote API
//! can never close a tag of the prompt.
//!
//! The code checks read a Rust agent's sources for the `("name", value)`
//! pairs that `prompt::fill` takes; Python and TypeScript agents get the
//! XML and placeholder checks.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use regex::Regex;
use serde::Serialize;

use orchestr8_host::ErrorCode;
use orchestr8_host::project::AgentSource;

use crate::error::{Outcome, exit, report};
use crate::project::require_project;

#[derive(Subcommand)]
pub enum PromptsCommand {
    /// Check the agents' prompt templates (prompts/*.xml): well-formed XML,
    /// every placeholder given a value by the agent's code, every value
    /// escaped.
    Check(PromptsCheckArgs),
}

pub fn run(command: PromptsCommand) -> Outcome {
    match command {
        PromptsCommand::Check(args) => check(args),
    }
}

#[derive(Args)]
pub struct PromptsCheckArgs {
    /// Agents to check, by id or name [default: every agent of the project].
    agents: Vec<String>,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// One template's findings.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Checked {
    agent: String,
    template: PathBuf,
    placeholders: Vec<String>,
    problems: Vec<String>,
}

fn check(args: PromptsCheckArgs) -> Outcome {
    let project = require_project()?;
    let mut specs = Vec::new();
    if args.agents.is_empty() {
        specs.extend(project.agents.values());
    } else {
        for name in &args.agents {
            let spec = project.agent(name).ok_or_else(|| {
                report(
                    ErrorCode::NotFound,
                    &format!("no agent `{name}` in orchestr8.toml"),
                    exit::USAGE,
                )
            })?;
            specs.push(spec);
        }
    }
    let mut checked = Vec::new();
    for spec in specs {
        let (dir, rust) = match &spec.source {
            AgentSource::Crate(dir) => (dir, true),
            AgentSource::Python(dir) | AgentSource::TypeScript(dir) => (dir, false),
            AgentSource::Component(_) => continue,
        };
        let sources = if rust {
            rust_sources(&dir.join("src"))
        } else {
            Vec::new()
        };
        for template in templates(&dir.join("prompts")) {
            let (placeholders, problems) = match std::fs::read_to_string(&template) {
                Ok(text) => check_template(&text, rust.then_some(&sources[..])),
                Err(e) => (Vec::new(), vec![format!("cannot read it: {e}")]),
            };
            checked.push(Checked {
                agent: spec.id.clone(),
                template: template
                    .strip_prefix(&project.root)
                    .unwrap_or(&template)
                    .to_path_buf(),
                placeholders,
                problems,
            });
        }
    }
    let failed = checked.iter().filter(|c| !c.problems.is_empty()).count();
    if args.json {
        let value = serde_json::json!({ "templates": checked, "failed": failed });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else if checked.is_empty() {
        println!("no prompt templates (agents keep them in prompts/*.xml)");
    } else {
        for c in &checked {
            if c.problems.is_empty() {
                println!(
                    "ok   {} {} ({} placeholders)",
                    c.agent,
                    c.template.display(),
                    c.placeholders.len()
                );
            } else {
                println!("FAIL {} {}", c.agent, c.template.display());
                for p in &c.problems {
                    println!("     {p}");
                }
            }
        }
        println!("{} templates, {failed} with problems", checked.len());
    }
    Ok(if failed == 0 { exit::OK } else { exit::FAILED })
}

/// The `.xml` files of `dir`, sorted.
fn templates(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "xml"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// The `.rs` files under `dir`, with their text.
fn rust_sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(rust_sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs")
            && let Ok(text) = std::fs::read_to_string(&path)
        {
            found.push((path, text));
        }
    }
    found
}

/// A template's placeholders and its problems; `sources` are the agent's
/// Rust files when its code is to be checked.
fn check_template(text: &str, sources: Option<&[(PathBuf, String)]>) -> (Vec<String>, Vec<String>) {
    let mut problems = Vec::new();
    // Placeholders are text to XML: the template is well-formed as it is,
    // inside one root (a prompt is a sequence of elements).
    let wrapped = format!("<prompt>\n{text}\n</prompt>");
    if let Err(e) = roxmltree::Document::parse(&wrapped) {
        let at = e.pos();
        // The parser's message ends with its position in the wrapped text.
        let message = e.to_string();
        let message = message
            .rsplit_once(" at ")
            .map_or(message.as_str(), |(m, _)| m);
        problems.push(format!(
            "not well-formed XML at line {}, column {}: {message}",
            at.row.saturating_sub(1),
            at.col
        ));
    }
    let mut placeholders = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = &after[..end];
                if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || name.is_empty() {
                    problems.push(format!("`{{{{{name}}}}}` is not a placeholder name"));
                } else if !placeholders.iter().any(|p| p == name) {
                    placeholders.push(name.to_string());
                }
                rest = &after[end + 2..];
            }
            None => {
                problems.push("a `{{` is never closed".into());
                break;
            }
        }
    }
    if let Some(sources) = sources {
        for name in &placeholders {
            problems.extend(check_value(name, sources));
        }
    }
    (placeholders, problems)
}

/// Whether the agent's code gives placeholder `name` a value, escaped.
fn check_value(name: &str, sources: &[(PathBuf, String)]) -> Option<String> {
    let Ok(pair) = Regex::new(&format!(r#"\(\s*"{}"\s*,"#, regex::escape(name))) else {
        return None;
    };
    let mut given = false;
    for (file, text) in sources {
        for found in pair.find_iter(text) {
            given = true;
            let value = value_after(&text[found.end()..]);
            let before: Vec<&str> = text[..found.start()].lines().rev().take(3).collect();
            let marked = before
                .iter()
                .any(|line| line.trim_start().starts_with("//") && line.contains("escaped"));
            if !value.contains("escape(") && !marked {
                return Some(format!(
                    "the value of `{{{{{name}}}}}` in {} (`{}`) does not go through prompt::escape (say `// escaped …` on the line above if it is escaped already)",
                    file.file_name()
                        .map_or_else(String::new, |f| f.to_string_lossy().into()),
                    value.trim()
                ));
            }
        }
    }
    (!given).then(|| format!("`{{{{{name}}}}}` is never given a value in the agent's code (a `(\"{name}\", …)` pair for prompt::fill)"))
}

/// The expression after `("name",`: up to the comma or parenthesis that
/// closes the pair.
fn value_after(text: &str) -> &str {
    let mut depth = 0i32;
    for (i, c) in text.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth == 0 => return &text[..i],
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> Vec<(PathBuf, String)> {
        vec![(PathBuf::from("src/lib.rs"), text.to_string())]
    }

    #[test]
    fn a_good_template_and_its_code_pass() {
        let code = r#"
            let values = [
                ("question", escape(q)),
                (
                    "context",
                    escape(&format!("{a} {b}")),
                ),
                // Already escaped piece by piece.
                ("snippets", snippets),
            ];"#;
        let (names, problems) = check_template(
            "<task>Answer</task>\n<q a=\"{{question}}\">{{question}}</q>\n<c>{{context}}</c>{{snippets}}",
            Some(&source(code)),
        );
        assert_eq!(names, ["question", "context", "snippets"]);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn each_problem_is_named() {
        let (_, problems) = check_template(
            "<task>Answer {{question}}</tsk>\n{{missing}} {{raw}} {{bad name}} {{open",
            Some(&source(
                r#"let v = [("question", escape(q)), ("raw", input.text.clone())];"#,
            )),
        );
        let all = problems.join("\n");
        assert!(all.contains("not well-formed XML at line 1"), "{all}");
        assert!(
            all.contains("`{{missing}}` is never given a value"),
            "{all}"
        );
        assert!(all.contains("the value of `{{raw}}` in lib.rs (`input.text.clone()`) does not go through prompt::escape"), "{all}");
        assert!(
            all.contains("`{{bad name}}` is not a placeholder name"),
            "{all}"
        );
        assert!(all.contains("never closed"), "{all}");
        assert_eq!(problems.len(), 5, "{all}");
        // Without code to read (a Python agent), only the template's own.
        let (_, problems) = check_template("<a>{{x}}</a>", None);
        assert!(problems.is_empty());
    }
}
