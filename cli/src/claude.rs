//! Claude Code integration: `orchestr8 mcp` (the project's agents as MCP
//! tools over stdio) and `orchestr8 claude install` (the `.mcp.json` entry
//! and a sub-agent definition per agent under `.claude/agents/`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use orchestr8_host::ErrorCode;
use orchestr8_host::claude::{Subagents, tool_name};
use orchestr8_host::resilience::ResiliencePolicy;
use orchestr8_host::sandbox::SandboxConfig;
use orchestr8_servers::mcp::McpServer;
use serde_json::{Map, Value, json};

use crate::error::{Outcome, exit, report};
use crate::project::{ProjectArgs, require_project};
use crate::scaffold::{self, FileToWrite};

/// The server's name in `.mcp.json`, and so the `mcp__orchestr8__…` prefix
/// of its tools in Claude Code.
const SERVER_NAME: &str = "orchestr8";

#[derive(Args)]
pub struct McpArgs {
    #[command(flatten)]
    project: ProjectArgs,
    /// Offer only these agents (ids or names); repeatable [default: all].
    #[arg(long = "agent", value_name = "AGENT")]
    agents: Vec<String>,
    /// Attempts per tool call (retryable failures are retried with backoff,
    /// honouring the agent's Retry-After hints).
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
}

#[derive(Subcommand)]
pub enum ClaudeCommand {
    /// Write the `.mcp.json` entry that starts `orchestr8 mcp`, and a
    /// sub-agent definition per agent in `.claude/agents/`.
    #[command(
        after_help = "Examples:\n  orchestr8 claude install\n  orchestr8 claude install --agent @orchestr8/context7 --command /usr/local/bin/orchestr8"
    )]
    Install(InstallArgs),
}

#[derive(Args)]
pub struct InstallArgs {
    /// Only these agents (ids or names); repeatable [default: all].
    #[arg(long = "agent", value_name = "AGENT")]
    agents: Vec<String>,
    /// How Claude Code starts orchestr8 [default: `orchestr8`, from PATH].
    #[arg(long, default_value = "orchestr8")]
    command: String,
    /// Overwrite sub-agent files that already exist.
    #[arg(long, short)]
    force: bool,
}

pub async fn mcp(args: McpArgs, config: SandboxConfig) -> Outcome {
    let runtime = args.project.open(config, None, None).await?;
    let invoker = runtime.invoker();
    let mut agents = runtime.into_agents();
    if !args.agents.is_empty() {
        let wanted: Vec<String> = args.agents.iter().map(|a| full_id(a, &agents)).collect();
        if let Some(missing) = wanted.iter().find(|id| !agents.contains_key(*id)) {
            return Err(report(
                ErrorCode::AgentNotFound,
                &format!("no agent `{missing}` in this project"),
                exit::USAGE,
            ));
        }
        agents.retain(|id, _| wanted.contains(id));
    }
    let mut resilience = ResiliencePolicy::default();
    resilience.retry.max_attempts = args.max_attempts;
    if let Err(message) = resilience.validate() {
        return Err(report(ErrorCode::InvalidConfig, &message, exit::USAGE));
    }
    let subagents = Subagents::new(invoker, agents, resilience);
    tracing::info!(tools = subagents.agents().len(), "MCP server on stdio");
    match McpServer::new(Arc::new(subagents)).serve_stdio().await {
        Ok(()) => Ok(exit::OK),
        Err(e) => Err(report(ErrorCode::Internal, &e.to_string(), exit::FAILED)),
    }
}

/// `greeter` → `@demo/greeter` when one agent has that name.
fn full_id<T>(name: &str, agents: &std::collections::HashMap<String, T>) -> String {
    if agents.contains_key(name) {
        return name.to_string();
    }
    let mut found = agents
        .keys()
        .filter(|id| id.rsplit('/').next() == Some(name));
    match (found.next(), found.next()) {
        (Some(one), None) => one.clone(),
        _ => name.to_string(),
    }
}

pub fn run(command: ClaudeCommand) -> Outcome {
    match command {
        ClaudeCommand::Install(args) => install(args),
    }
}

fn install(args: InstallArgs) -> Outcome {
    let project = require_project()?;
    let mut ids = Vec::new();
    for name in &args.agents {
        match project.agent(name) {
            Some(spec) => ids.push(spec.id.clone()),
            None => {
                return Err(report(
                    ErrorCode::AgentNotFound,
                    &format!("no agent `{name}` in orchestr8.toml"),
                    exit::USAGE,
                ));
            }
        }
    }
    if args.agents.is_empty() {
        ids = project.agents.keys().cloned().collect();
    }
    if ids.is_empty() {
        return Err(report(
            ErrorCode::AgentNotFound,
            "the project has no agents yet: add one with `orchestr8 create`",
            exit::USAGE,
        ));
    }
    let files: Vec<FileToWrite> = ids.iter().map(|id| subagent_file(id)).collect();
    let (existing, new): (Vec<FileToWrite>, Vec<FileToWrite>) = files
        .into_iter()
        .partition(|f| project.root.join(&f.path).exists() && !args.force);
    // Read .mcp.json first: a broken one stops everything, nothing written.
    let mcp_path = project.root.join(".mcp.json");
    let mcp = match with_server(&mcp_path, &args.command) {
        Ok(text) => FileToWrite {
            path: PathBuf::from(".mcp.json"),
            text,
        },
        Err(message) => return Err(report(ErrorCode::InvalidConfig, &message, exit::LOAD)),
    };
    let mut writes = new;
    writes.push(mcp);
    scaffold::write_files(&project.root, &writes, true)?;
    let new = &writes[..writes.len() - 1];
    println!("wrote {} (server `{SERVER_NAME}`)", mcp_path.display());
    for file in new {
        println!("wrote {}", project.root.join(&file.path).display());
    }
    for file in &existing {
        println!(
            "kept {} (exists; --force overwrites it)",
            project.root.join(&file.path).display()
        );
    }
    println!(
        "next: orchestr8 build, then start Claude Code in {} and approve the `{SERVER_NAME}` server",
        project.root.display()
    );
    Ok(exit::OK)
}

/// The sub-agent definition of `agent_id`.
fn subagent_file(agent_id: &str) -> FileToWrite {
    let tool = tool_name(agent_id);
    let short = agent_id.rsplit('/').next().unwrap_or(agent_id);
    let (name, template) = if agent_id == "@orchestr8/context7" {
        (
            "context7-researcher".to_string(),
            include_str!("../templates/claude/context7-researcher.md"),
        )
    } else {
        (
            format!("{short}-agent"),
            include_str!("../templates/claude/agent.md"),
        )
    };
    let text = scaffold::render(
        template,
        &[("name", &name), ("agent_id", agent_id), ("tool", &tool)],
    );
    FileToWrite {
        path: PathBuf::from(".claude/agents").join(format!("{name}.md")),
        text,
    }
}

/// `.mcp.json` with `mcpServers.orchestr8` set, every other server kept.
fn with_server(path: &Path, command: &str) -> Result<String, String> {
    let mut doc: Value = match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            format!(
                "`{}` is not valid JSON ({e}): fix or remove it",
                path.display()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
    };
    let servers = doc
        .as_object_mut()
        .ok_or_else(|| format!("`{}` is not a JSON object", path.display()))?
        .entry("mcpServers")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| format!("`mcpServers` in `{}` is not an object", path.display()))?;
    servers.insert(
        SERVER_NAME.into(),
        json!({
            "type": "stdio",
            "command": command,
            "args": ["mcp", "-C", "${CLAUDE_PROJECT_DIR:-.}"],
        }),
    );
    Ok(serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n")
}
