//! Where a command finds agents and keeps state.
//!
//! Until the project config (`orchestr8.toml`) exists, agents are found by
//! scanning directories of `.wasm` components (each says its own id through
//! `info`), and state lives in `.orchestr8/` of the current directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use orchestr8_host::engine::{AgentStepRunner, Engine, RegisteredAgent};
use orchestr8_host::invoker::Invoker;
use orchestr8_host::orchestrator::Orchestrator;
use orchestr8_host::resilience::Resilience;
use orchestr8_host::sandbox::{Sandbox, SandboxPolicy};
use orchestr8_host::store::SqliteStore;

/// Where built first-party agents land.
pub const DEFAULT_AGENTS_DIR: &str = "agents/target/wasm32-wasip2/release";

/// The state folder and its database.
pub fn database(state_dir: &Path) -> PathBuf {
    state_dir.join("orchestr8.db")
}

/// Loads every agent component in `dirs`, keyed by the id it reports.
pub async fn load_agents(
    sandbox: &Sandbox,
    dirs: &[PathBuf],
) -> Result<HashMap<String, RegisteredAgent>> {
    let mut agents = HashMap::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read the agents directory `{}`", dir.display()))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        paths.sort();
        for path in paths {
            let agent = sandbox
                .load(&path)
                .await
                .with_context(|| format!("cannot load agent `{}`", path.display()))?;
            agents.insert(
                agent.info().id.clone(),
                RegisteredAgent {
                    agent,
                    policy: SandboxPolicy::default(),
                },
            );
        }
    }
    if agents.is_empty() {
        bail!(
            "no agents found in {}: build them first (scripts/build-agents) or pass --agents-dir",
            dirs.iter()
                .map(|d| format!("`{}`", d.display()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(agents)
}

/// An orchestrator over the SQLite store in `state_dir`, running `agents`.
pub fn orchestrator(
    sandbox: Sandbox,
    agents: HashMap<String, RegisteredAgent>,
    state_dir: &Path,
) -> Result<Orchestrator> {
    let store = SqliteStore::open(&database(state_dir))
        .with_context(|| format!("cannot open the state in `{}`", state_dir.display()))?;
    let runner = AgentStepRunner::new(Invoker::new(sandbox, Resilience::default()), agents);
    Ok(Orchestrator::new(
        Engine::new(Arc::new(runner)),
        Arc::new(store),
    )?)
}
