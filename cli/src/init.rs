//! `orchestr8 init` and `orchestr8 create`: new projects and new agents.

use std::path::{Path, PathBuf};

use clap::Args;
use orchestr8_host::ErrorCode;
use orchestr8_host::project::{ConfigError, MANIFEST_FILE, Project, is_valid_name};
use toml_edit::{Array, Item, Table, value};

use crate::error::{Failure, Outcome, exit, report};
use crate::project::require_project;
use crate::scaffold::{self, Lang, PY_SDK_DIR, SDK_DIR, TS_SDK_DIR, Template};

#[derive(Args)]
pub struct InitArgs {
    /// Where to create the project [default: the current directory]
    dir: Option<PathBuf>,
    /// The project's name, the scope of its agent ids (`@name/hello`)
    /// [default: the directory's name]
    #[arg(long)]
    name: Option<String>,
    /// Overwrite files that already exist.
    #[arg(long, short)]
    force: bool,
}

#[derive(Args)]
pub struct CreateArgs {
    /// The agent's name: lower-case letters, digits and `-` (its id becomes
    /// `@<project>/<name>`).
    name: String,
    /// The language it is written in (`py`, `ts` for short).
    #[arg(long, short, value_enum, default_value = "rust")]
    lang: Lang,
    /// What the new agent starts as (`http` is Rust only for now).
    #[arg(long, short, value_enum, default_value = "basic")]
    template: Template,
    /// Overwrite an existing crate and test file of that name.
    #[arg(long, short)]
    force: bool,
}

/// A project name from a directory name: `My Agents` → `my-agents`.
fn name_from_dir(dir: &Path) -> Option<String> {
    let raw = dir.file_name()?.to_string_lossy().to_ascii_lowercase();
    let name: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = name.trim_matches('-').to_string();
    is_valid_name(&name).then_some(name)
}

fn invalid_name(what: &str, name: &str) -> Failure {
    report(
        ErrorCode::InvalidConfig,
        &format!(
            "`{name}` is not a valid {what} name: use lower-case letters, digits and `-`, starting with a letter (for example `my-{what}`)"
        ),
        exit::USAGE,
    )
}

pub fn init(args: InitArgs) -> Outcome {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from("."));
    let absolute = std::path::absolute(&dir).unwrap_or_else(|_| dir.clone());
    let name = match args.name {
        Some(name) if is_valid_name(&name) => name,
        Some(name) => return Err(invalid_name("project", &name)),
        None => match name_from_dir(&absolute) {
            Some(name) => name,
            None => {
                return Err(report(
                    ErrorCode::InvalidConfig,
                    &format!(
                        "cannot make a project name from `{}`: pass --name (lower-case letters, digits and `-`)",
                        absolute.display()
                    ),
                    exit::USAGE,
                ));
            }
        },
    };
    scaffold::write_files(&dir, &scaffold::project_files(&name), args.force)?;
    println!("created project `{name}` in {}", dir.display());
    println!(
        "  orchestr8.toml, Cargo.toml, agents/hello, workflows/hello.json, tests/hello.json, {SDK_DIR}"
    );
    println!("next:");
    if dir != Path::new(".") {
        println!("  cd {}", dir.display());
    }
    println!("  orchestr8 build                     # compile the agents");
    println!("  orchestr8 run workflows/hello.json  # run the workflow");
    println!("  orchestr8 test                      # run tests/*.json");
    Ok(exit::OK)
}

pub fn create(args: CreateArgs) -> Outcome {
    if !is_valid_name(&args.name) {
        return Err(invalid_name("agent", &args.name));
    }
    let project = require_project()?;
    let id = format!("@{}/{}", project.name, args.name);
    if project.agents.contains_key(&id) && !args.force {
        return Err(report(
            ErrorCode::InvalidConfig,
            &format!(
                "agent `{id}` is already in {MANIFEST_FILE}: choose another name, or pass --force to start it over"
            ),
            exit::USAGE,
        ));
    }
    let files = match args.lang {
        Lang::Rust => {
            let mut files = scaffold::agent_files(&project.name, &args.name, args.template);
            // A project made without `init` (or with the SDK deleted) gets the SDK too.
            if !project.root.join(SDK_DIR).join("Cargo.toml").is_file() {
                files.extend(scaffold::sdk_files());
            }
            files
        }
        Lang::Python | Lang::Typescript if args.template != Template::Basic => {
            return Err(report(
                ErrorCode::InvalidConfig,
                "the `http` template is Rust only for now: create the agent with the basic template (the SDK's `http` client is in the guide)",
                exit::USAGE,
            ));
        }
        Lang::Python => {
            let mut files = scaffold::python_agent_files(&project.name, &args.name);
            files.extend(scaffold::python_sdk_files());
            files
        }
        Lang::Typescript => {
            let mut files = scaffold::typescript_agent_files(&project.name, &args.name);
            files.extend(scaffold::typescript_sdk_files());
            files
        }
    };
    // The vendored SDK is ours to refresh; the agent's own files are not.
    let (sdk, own): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|f| f.path.starts_with(PY_SDK_DIR) || f.path.starts_with(TS_SDK_DIR));
    scaffold::write_files(&project.root, &own, args.force)?;
    scaffold::write_files(&project.root, &sdk, true)?;
    if args.lang != Lang::Rust {
        exclude_from_cargo_workspace(&project.root, &format!("agents/{}", args.name))?;
    }
    register(&project, &id, &args.name, args.lang, args.template)
        .map_err(|e| Failure::of(&e, exit::LOAD))?;
    println!(
        "created agent `{id}` in {}",
        Path::new("agents").join(&args.name).display()
    );
    println!(
        "  registered in {MANIFEST_FILE}; test cases in tests/{}.json",
        args.name
    );
    println!(
        "next: orchestr8 build {} && orchestr8 test --filter {}",
        args.name, args.name
    );
    Ok(exit::OK)
}

/// Keeps a non-Rust agent's folder out of the project's Cargo workspace,
/// whose `members = ["agents/*"]` would otherwise take it for a crate.
fn exclude_from_cargo_workspace(root: &Path, dir: &str) -> Result<(), Failure> {
    let path = root.join("Cargo.toml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(()); // no Cargo workspace: nothing to keep it out of
    };
    let broken = |e: String| {
        report(
            ErrorCode::InvalidConfig,
            &format!(
                "cannot add `{dir}` to the workspace exclusions of `{}`: {e}",
                path.display()
            ),
            exit::LOAD,
        )
    };
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| broken(format!("{e}")))?;
    let Some(workspace) = doc.get_mut("workspace").and_then(Item::as_table_mut) else {
        return Ok(());
    };
    let exclude = workspace
        .entry("exclude")
        .or_insert_with(|| value(Array::new()))
        .as_array_mut()
        .ok_or_else(|| broken("`workspace.exclude` is not an array".into()))?;
    if !exclude.iter().any(|v| v.as_str() == Some(dir)) {
        exclude.push(dir);
    }
    std::fs::write(&path, doc.to_string()).map_err(|e| broken(e.to_string()))
}

/// Adds `[agents."<id>"]` to orchestr8.toml, keeping its comments and layout.
fn register(
    project: &Project,
    id: &str,
    name: &str,
    lang: Lang,
    template: Template,
) -> Result<(), ConfigError> {
    let mut agent = Table::new();
    let key = match lang {
        Lang::Rust => "crate",
        Lang::Python => "python",
        Lang::Typescript => "typescript",
    };
    agent[key] = value(format!("agents/{name}"));
    if template == Template::Http {
        let mut hosts = Array::new();
        hosts.push("api.github.com");
        let mut grants = Table::new();
        grants["allowed_hosts"] = value(hosts);
        agent.insert("grants", Item::Table(grants));
        let mut limits = Table::new();
        limits["timeout_ms"] = value(10_000);
        agent.insert("limits", Item::Table(limits));
    }
    project.edit_agents(|agents| {
        agents.insert(id, Item::Table(agent));
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_become_project_names() {
        assert_eq!(
            name_from_dir(Path::new("/x/My Agents")).unwrap(),
            "my-agents"
        );
        assert_eq!(name_from_dir(Path::new("demo")).unwrap(), "demo");
        assert!(name_from_dir(Path::new("/x/2024")).is_none());
    }
}
