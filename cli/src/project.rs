//! Where a command finds agents and keeps state.
//!
//! Agents come from the project (`orchestr8.toml` in the current directory or
//! above), each with its own limits and grants, or, with `--agents-dir`, from
//! directories of `.wasm` components (each says its own id through `info`;
//! nothing is granted). State lives in the project's `.orchestr8/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use orchestr8_host::call::Invoker;
use orchestr8_host::engine::{AgentStepRunner, Engine, RegisteredAgent};
use orchestr8_host::orchestrator::Orchestrator;
use orchestr8_host::project::{AgentSource, Project, STATE_DIR, Secrets};
use orchestr8_host::resilience::Resilience;
use orchestr8_host::sandbox::{HttpFixtures, Sandbox, SandboxPolicy};
use orchestr8_host::store::{SqliteStore, Store};
use orchestr8_host::{Coded, ErrorCode};

use crate::error::{Failure, exit, report};

/// Where executions and journals are kept.
#[derive(Args, Clone, Default)]
pub struct StateArgs {
    /// Where executions and journals are kept [default: the project's
    /// .orchestr8/, else ./.orchestr8/]
    #[arg(long, value_name = "DIR", env = "ORCHESTR8_STATE_DIR")]
    state_dir: Option<PathBuf>,
}

impl StateArgs {
    /// The state folder: as given, else the project's, else `./.orchestr8`.
    pub fn dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(|| {
            std::env::current_dir()
                .ok()
                .and_then(|cwd| Project::find(&cwd))
                .unwrap_or_default()
                .join(STATE_DIR)
        })
    }
}

/// Where agents and state are.
#[derive(Args, Clone)]
pub struct ProjectArgs {
    /// Load every agent component (.wasm) in DIR instead of the project's
    /// agents (nothing granted); repeatable.
    #[arg(long = "agents-dir", value_name = "DIR")]
    pub agents_dirs: Vec<PathBuf>,
    #[command(flatten)]
    pub state: StateArgs,
}

/// The state folder and its database.
pub fn database(state_dir: &Path) -> PathBuf {
    state_dir.join("orchestr8.db")
}

/// The project at or above the current directory, if there is one; an
/// invalid `orchestr8.toml` is reported.
pub fn current_project() -> Result<Option<Project>, Failure> {
    let cwd = std::env::current_dir().map_err(|e| {
        report(
            ErrorCode::Internal,
            &format!("cannot read the current directory: {e}"),
            exit::USAGE,
        )
    })?;
    match Project::find(&cwd) {
        None => Ok(None),
        Some(root) => Project::load(&root)
            .map(Some)
            .map_err(|e| Failure::of(&e, exit::LOAD)),
    }
}

/// The project at or above the current directory; its absence is reported.
pub fn require_project() -> Result<Project, Failure> {
    match current_project()? {
        Some(p) => Ok(p),
        None => {
            let cwd = std::env::current_dir().unwrap_or_default();
            let e = orchestr8_host::project::ConfigError::NotFound(cwd);
            Err(Failure::of(&e, exit::LOAD))
        }
    }
}

/// Edits the `[agents]` table of the project's orchestr8.toml in place,
/// keeping its comments and layout.
pub fn edit_agents(
    project: &Project,
    edit: impl FnOnce(&mut toml_edit::Table) -> Result<(), String>,
) -> Result<(), String> {
    let path = project.manifest_path();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| format!("cannot edit `{}`: {e}", path.display()))?;
    let agents = doc
        .entry("agents")
        .or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            toml_edit::Item::Table(t)
        })
        .as_table_mut()
        .ok_or_else(|| format!("`agents` in `{}` is not a table", path.display()))?;
    edit(agents)?;
    std::fs::write(&path, doc.to_string())
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

/// The agents a command runs: from `--agents-dir` when given, else from the
/// project. `fixtures` puts every agent in test mode.
pub async fn load_agents(
    sandbox: &Sandbox,
    args: &ProjectArgs,
    fixtures: Option<HttpFixtures>,
) -> Result<HashMap<String, RegisteredAgent>, Failure> {
    if !args.agents_dirs.is_empty() {
        return scan_dirs(sandbox, &args.agents_dirs).await;
    }
    let Some(project) = current_project()? else {
        return Err(report(
            ErrorCode::InvalidConfig,
            "no orchestr8.toml in the current directory or any parent: create a project with `orchestr8 init`, or pass --agents-dir DIR",
            exit::LOAD,
        ));
    };
    let secrets = project.secrets().map_err(|e| Failure::of(&e, exit::LOAD))?;
    load_project_agents(sandbox, &project, &secrets, fixtures, true).await
}

/// Loads every agent of `project` with its policy, secrets filled in;
/// `warn_missing` warns about granted secrets without a value.
pub async fn load_project_agents(
    sandbox: &Sandbox,
    project: &Project,
    secrets: &Secrets,
    fixtures: Option<HttpFixtures>,
    warn_missing: bool,
) -> Result<HashMap<String, RegisteredAgent>, Failure> {
    let mut agents = HashMap::new();
    for spec in project.agents.values() {
        let path = project.component_path(spec);
        if !path.is_file() {
            let message = match &spec.source {
                AgentSource::Crate(_) => format!(
                    "agent `{}` is not built yet: run `orchestr8 build`",
                    spec.id
                ),
                AgentSource::Component(_) => format!(
                    "the component of agent `{}`, `{}`, does not exist",
                    spec.id,
                    path.display()
                ),
            };
            return Err(report(ErrorCode::AgentNotFound, &message, exit::LOAD));
        }
        let agent = sandbox
            .load(&path)
            .await
            .map_err(|e| Failure::of(&e, exit::LOAD))?;
        if agent.info().id != spec.component_id {
            return Err(report(
                ErrorCode::InvalidAgent,
                &format!(
                    "`{}` says it is `{}`, but orchestr8.toml registers it as `{}`: make them agree",
                    path.display(),
                    agent.info().id,
                    spec.component_id
                ),
                exit::LOAD,
            ));
        }
        let (mut policy, missing) = project.policy(spec, secrets);
        for name in missing.iter().filter(|_| warn_missing) {
            tracing::warn!(
                agent = %spec.id,
                "secret `{name}` is granted but has no value: set {} or add it to .orchestr8/secrets.toml",
                orchestr8_host::project::secret_env_var(name)
            );
        }
        policy.http_fixtures = fixtures.clone();
        let mut registered = RegisteredAgent::new(agent, policy);
        registered.config = spec.config.clone();
        agents.insert(spec.id.clone(), registered);
    }
    Ok(agents)
}

/// Loads every component in `dirs`, keyed by the id it reports; nothing granted.
async fn scan_dirs(
    sandbox: &Sandbox,
    dirs: &[PathBuf],
) -> Result<HashMap<String, RegisteredAgent>, Failure> {
    let mut agents = HashMap::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            report(
                ErrorCode::AgentNotFound,
                &format!("cannot read the agents directory `{}`: {e}", dir.display()),
                exit::LOAD,
            )
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        paths.sort();
        for path in paths {
            let agent = sandbox
                .load(&path)
                .await
                .map_err(|e| Failure::of(&e, exit::LOAD))?;
            agents.insert(
                agent.info().id.clone(),
                RegisteredAgent::new(agent, SandboxPolicy::default()),
            );
        }
    }
    if agents.is_empty() {
        let list: Vec<String> = dirs.iter().map(|d| format!("`{}`", d.display())).collect();
        return Err(report(
            ErrorCode::AgentNotFound,
            &format!("no agents found in {}", list.join(", ")),
            exit::LOAD,
        ));
    }
    Ok(agents)
}

/// An orchestrator running `agents` through `resilience`, journaling into `store`.
pub fn orchestrator_with(
    sandbox: Sandbox,
    resilience: Resilience,
    agents: HashMap<String, RegisteredAgent>,
    store: Arc<dyn Store>,
) -> Result<Orchestrator, Failure> {
    let runner = AgentStepRunner::new(Invoker::new(sandbox, resilience), agents);
    Orchestrator::new(Engine::new(Arc::new(runner)), store).map_err(|e| Failure::of(&e, exit::LOAD))
}

/// An orchestrator over the SQLite store in `state_dir`, running `agents`.
pub fn orchestrator(
    sandbox: Sandbox,
    resilience: Resilience,
    agents: HashMap<String, RegisteredAgent>,
    state_dir: &Path,
) -> Result<Orchestrator, Failure> {
    let store = SqliteStore::open(&database(state_dir)).map_err(|e| {
        report(
            e.code(),
            &format!("cannot open the state in `{}`: {e}", state_dir.display()),
            exit::LOAD,
        )
    })?;
    orchestrator_with(sandbox, resilience, agents, Arc::new(store))
}
