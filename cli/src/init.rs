//! `orchestr8 init` and `orchestr8 create`: new projects and new agents.

use std::path::{Path, PathBuf};

use clap::Args;
use orchestr8_host::ErrorCode;
use orchestr8_host::project::{ConfigError, MANIFEST_FILE, Project, is_valid_name};
use toml_edit::{Array, Item, Table, value};

use crate::error::{Failure, Outcome, exit, report};
use crate::project::require_project;
use crate::scaffold::{self, SDK_DIR, Template};

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
    /// What the new agent starts as.
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
    let mut files = scaffold::agent_files(&project.name, &args.name, args.template);
    // A project made without `init` (or with the SDK deleted) gets the SDK too.
    if !project.root.join(SDK_DIR).join("Cargo.toml").is_file() {
        files.extend(scaffold::sdk_files());
    }
    scaffold::write_files(&project.root, &files, args.force)?;
    register(&project, &id, &args.name, args.template).map_err(|e| Failure::of(&e, exit::LOAD))?;
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

/// Adds `[agents."<id>"]` to orchestr8.toml, keeping its comments and layout.
fn register(
    project: &Project,
    id: &str,
    name: &str,
    template: Template,
) -> Result<(), ConfigError> {
    let mut agent = Table::new();
    agent["crate"] = value(format!("agents/{name}"));
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
