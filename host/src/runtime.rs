//! The front door: what every interface opens before it does anything.
//! `orchestr8 run`, `test`, `serve`, `agent serve` and `mcp` all start the
//! same way: find the project (or the component directories given
//! instead), load its agents with their limits, grants, secrets and config,
//! and know where state is kept. A [`Runtime`] is that, opened once; it
//! hands out the agents, the one agent-call path ([`crate::call`]) and
//! orchestrators over the state directory's journal.
//!
//! Interfaces stay thin: parse their protocol, call the runtime, render
//! what it answers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::call::{Invoker, RegisteredAgent};
use crate::engine::{AgentStepRunner, Engine};
use crate::error::{Coded, ErrorCode};
use crate::orchestrator::Orchestrator;
use crate::project::{AgentSpec, ConfigError, Project, STATE_DIR, Secrets, secret_env_var};
use crate::registry::{AgentRegistry, AgentSet};
use crate::resilience::Resilience;
use crate::sandbox::{HttpFixtures, LoadError, LoadedAgent, Sandbox, SandboxPolicy};
use crate::store::{PostgresOptions, PostgresStore, SqliteStore, Store, StoreError};

/// The file of the embedded store, in the state directory.
pub const DATABASE_FILE: &str = "orchestr8.db";

/// Where a runtime finds its agents and keeps its state.
#[derive(Debug, Clone, Default)]
pub struct Place {
    /// Where to look for `orchestr8.toml` (it or any parent).
    pub dir: PathBuf,
    /// Load every component (`.wasm`) in these directories instead of the
    /// project's agents, each under the id it reports, nothing granted.
    pub agents_dirs: Vec<PathBuf>,
    /// Where executions and journals are kept [default: the project's
    /// `.orchestr8/`, else `.orchestr8/` in `dir`].
    pub state_dir: Option<PathBuf>,
    /// A PostgreSQL URL: keep executions and journals in that database,
    /// shared with other nodes, instead of the state directory's SQLite
    /// file.
    pub database: Option<String>,
    /// Answer every agent's outbound HTTP from these recorded fixtures.
    pub fixtures: Option<HttpFixtures>,
    /// Load only these of the project's agents (by id), not all: what a
    /// command needs, so an unbuilt or broken agent it does not use cannot
    /// stop it. `None`: every agent.
    pub only: Option<std::collections::BTreeSet<String>>,
}

impl Place {
    /// `dir`, with everything else by default.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Place {
            dir: dir.into(),
            ..Place::default()
        }
    }

    /// The state directory: as given, else the project's, else `dir`'s.
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(|| {
            Project::find(&self.dir)
                .unwrap_or_else(|| self.dir.clone())
                .join(STATE_DIR)
        })
    }
}

/// The store executions are kept in: the PostgreSQL database at `url`
/// when given (this process joins it as a node), else the SQLite file in
/// `state_dir`, created if missing.
pub fn open_store(state_dir: &Path, url: Option<&str>) -> Result<Arc<dyn Store>, RuntimeError> {
    let opened: Result<Arc<dyn Store>, StoreError> = match url {
        Some(url) => PostgresStore::connect(url, PostgresOptions::default())
            .map(|s| Arc::new(s) as Arc<dyn Store>),
        None => SqliteStore::open(&database(state_dir)).map(|s| Arc::new(s) as Arc<dyn Store>),
    };
    opened.map_err(|source| RuntimeError::Store {
        place: store_place(state_dir, url),
        source,
    })
}

/// Where the store is, as an error message names it (never the URL: it
/// may hold a password).
fn store_place(state_dir: &Path, url: Option<&str>) -> String {
    match url {
        Some(_) => "the PostgreSQL database".to_string(),
        None => format!("`{}`", state_dir.display()),
    }
}

/// The embedded store's file in `state_dir`.
pub fn database(state_dir: &Path) -> PathBuf {
    state_dir.join(DATABASE_FILE)
}

/// Why a runtime could not open.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No project, and no component directories instead.
    #[error(
        "no orchestr8.toml in `{}` or any parent: run this inside a project (or point at one with -C DIR), create one with `orchestr8 init`, or pass --agents-dir DIR",
        .0.display()
    )]
    NoProject(PathBuf),
    /// `orchestr8.toml` (or the secrets file) cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A crate agent has no component yet.
    #[error("agent `{0}` is not built yet: run `orchestr8 build`")]
    NotBuilt(String),
    /// A component file named by the project is missing.
    #[error("the component of agent `{id}`, `{}`, does not exist", .path.display())]
    MissingComponent {
        /// The agent.
        id: String,
        /// The file.
        path: PathBuf,
    },
    /// A component does not load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A component reports another id than the project gives it.
    #[error(
        "`{}` says it is `{reported}`, but orchestr8.toml registers it as `{registered}`: make them agree",
        .path.display()
    )]
    WrongId {
        /// The component.
        path: PathBuf,
        /// The id it reports.
        reported: String,
        /// The id the project expects.
        registered: String,
    },
    /// A components directory cannot be read.
    #[error("cannot read the agents directory `{}`: {source}", .dir.display())]
    AgentsDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The component directories hold no agent.
    #[error("no agents found in {0}")]
    NoAgents(String),
    /// The store cannot be opened.
    #[error("cannot open the state in {place}: {source}")]
    Store {
        /// The state directory (quoted), or the database.
        place: String,
        /// Why.
        source: StoreError,
    },
}

impl Coded for RuntimeError {
    fn code(&self) -> ErrorCode {
        match self {
            RuntimeError::NoProject(_) => ErrorCode::InvalidConfig,
            RuntimeError::Config(e) => e.code(),
            RuntimeError::NotBuilt(_)
            | RuntimeError::MissingComponent { .. }
            | RuntimeError::AgentsDir { .. }
            | RuntimeError::NoAgents(_) => ErrorCode::AgentNotFound,
            RuntimeError::Load(e) => e.code(),
            RuntimeError::WrongId { .. } => ErrorCode::InvalidAgent,
            RuntimeError::Store { source, .. } => source.code(),
        }
    }
}

/// A project's agents, loaded, with the place state is kept.
pub struct Runtime {
    sandbox: Sandbox,
    resilience: Resilience,
    project: Option<Project>,
    state_dir: PathBuf,
    database: Option<String>,
    agents: Arc<AgentRegistry>,
}

impl Runtime {
    /// Opens the project at or above `place.dir` (or the component
    /// directories instead) and loads its agents into `sandbox`. A granted
    /// secret without a value is logged as a warning.
    pub async fn open(sandbox: Sandbox, place: Place) -> Result<Runtime, RuntimeError> {
        Self::opened(sandbox, place, true).await
    }

    /// [`Runtime::open`], without warning about granted secrets that have
    /// no value (test cases bring their own).
    pub async fn open_quietly(sandbox: Sandbox, place: Place) -> Result<Runtime, RuntimeError> {
        Self::opened(sandbox, place, false).await
    }

    async fn opened(
        sandbox: Sandbox,
        place: Place,
        warn_missing: bool,
    ) -> Result<Runtime, RuntimeError> {
        let state_dir = place.state_dir();
        let (project, agents) = if place.agents_dirs.is_empty() {
            let root =
                Project::find(&place.dir).ok_or(RuntimeError::NoProject(place.dir.clone()))?;
            let project = Project::load(&root)?;
            let secrets = project.secrets()?;
            let agents =
                load_project_agents(&sandbox, &project, &secrets, &place, warn_missing).await?;
            (Some(project), agents)
        } else {
            let project = match Project::find(&place.dir) {
                Some(root) => Some(Project::load(&root)?),
                None => None,
            };
            (project, scan_dirs(&sandbox, &place.agents_dirs).await?)
        };
        Ok(Runtime {
            sandbox,
            resilience: Resilience::default(),
            project,
            state_dir,
            database: place.database.clone(),
            agents: Arc::new(AgentRegistry::fixed(agents)),
        })
    }

    /// Opens the place as [`Runtime::open`] does, for a server: its agents
    /// are loaded again whenever their files change (see
    /// [`crate::registry`]), and an agent that cannot load is set aside
    /// (its workflows fail, saying why) instead of stopping the rest.
    pub async fn open_live(sandbox: Sandbox, place: Place) -> Result<Runtime, RuntimeError> {
        let state_dir = place.state_dir();
        let database = place.database.clone();
        let project = match Project::find(&place.dir) {
            Some(root) => Some(Project::load(&root)?),
            None if place.agents_dirs.is_empty() => {
                return Err(RuntimeError::NoProject(place.dir.clone()));
            }
            None => None,
        };
        let agents = AgentRegistry::live(sandbox.clone(), place).await?;
        Ok(Runtime {
            sandbox,
            resilience: Resilience::default(),
            project,
            state_dir,
            database,
            agents: Arc::new(agents),
        })
    }

    /// The sandbox the agents run in.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The project, when there is one.
    pub fn project(&self) -> Option<&Project> {
        self.project.as_ref()
    }

    /// Where executions and journals are kept.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The agents, by id, as they are now.
    pub fn agents(&self) -> Arc<AgentSet> {
        self.agents.current()
    }

    /// The agents as they change (a server's), shared.
    pub fn registry(&self) -> &Arc<AgentRegistry> {
        &self.agents
    }

    /// Takes the agents out (for a server or a test that owns them).
    pub fn into_agents(self) -> HashMap<String, RegisteredAgent> {
        AgentSet::clone(&self.agents.current()).into_agents()
    }

    /// An agent by id, or by a name the project gives it.
    pub fn agent(&self, name: &str) -> Option<RegisteredAgent> {
        let agents = self.agents.current();
        let id = match agents.contains_key(name) {
            true => name,
            false => &self.project.as_ref()?.agent(name)?.id,
        };
        agents.get(id).cloned()
    }

    /// The one agent-call path over this runtime's sandbox and circuits.
    pub fn invoker(&self) -> Invoker {
        Invoker::new(self.sandbox.clone(), self.resilience.clone())
    }

    /// An agent-call path with circuits of its own, for calls that must
    /// not see (or leave) another's breaker state, such as test cases.
    pub fn isolated_invoker(&self) -> Invoker {
        Invoker::new(self.sandbox.clone(), Resilience::default())
    }

    /// The resilience chain (its circuits are shared by every call).
    pub fn resilience(&self) -> &Resilience {
        &self.resilience
    }

    /// An orchestrator running `agents` (this runtime's, or a variation of
    /// them) through `invoker`, journaling into `store`.
    pub fn orchestrator_with(
        &self,
        invoker: Invoker,
        agents: Arc<AgentRegistry>,
        store: Arc<dyn Store>,
    ) -> Result<Orchestrator, RuntimeError> {
        let runner = AgentStepRunner::over(invoker, agents);
        Orchestrator::new(Engine::new(Arc::new(runner)), store).map_err(|source| {
            RuntimeError::Store {
                place: self.store_place(),
                source,
            }
        })
    }

    fn store_place(&self) -> String {
        store_place(&self.state_dir, self.database.as_deref())
    }

    /// An orchestrator over the place's store (the shared database, else
    /// the state directory's embedded one), running this runtime's agents.
    pub fn orchestrator(&self) -> Result<Orchestrator, RuntimeError> {
        let store = open_store(&self.state_dir, self.database.as_deref())?;
        self.orchestrator_with(self.invoker(), self.agents.clone(), store)
    }
}

/// Loads every agent of `project` that `place` wants (all, or those
/// `place.only` names) with its policy, secrets filled in and the place's
/// fixtures (test mode) when given; the first that cannot load fails all.
async fn load_project_agents(
    sandbox: &Sandbox,
    project: &Project,
    secrets: &Secrets,
    place: &Place,
    warn_missing: bool,
) -> Result<HashMap<String, RegisteredAgent>, RuntimeError> {
    let wanted = |id: &str| place.only.as_ref().is_none_or(|only| only.contains(id));
    let mut agents = HashMap::new();
    for spec in project.agents.values().filter(|s| wanted(&s.id)) {
        let agent = load_component(sandbox, project, spec).await?;
        let registered = register(project, spec, secrets, place, agent, warn_missing);
        agents.insert(spec.id.clone(), registered);
    }
    Ok(agents)
}

/// The component of `spec`, loaded and checked to be the agent the project
/// says it is.
pub(crate) async fn load_component(
    sandbox: &Sandbox,
    project: &Project,
    spec: &AgentSpec,
) -> Result<LoadedAgent, RuntimeError> {
    let path = project.component_path(spec);
    if !path.is_file() {
        return Err(if spec.source.is_built() {
            RuntimeError::NotBuilt(spec.id.clone())
        } else {
            RuntimeError::MissingComponent {
                id: spec.id.clone(),
                path,
            }
        });
    }
    let agent = sandbox.load(&path).await?;
    if agent.info().id != spec.component_id {
        return Err(RuntimeError::WrongId {
            reported: agent.info().id.clone(),
            registered: spec.component_id.clone(),
            path,
        });
    }
    Ok(agent)
}

/// `agent` registered under `spec`'s policy (secret values filled in,
/// the place's fixtures) and config; warns about granted secrets without a
/// value when `warn_missing`.
pub(crate) fn register(
    project: &Project,
    spec: &AgentSpec,
    secrets: &Secrets,
    place: &Place,
    agent: LoadedAgent,
    warn_missing: bool,
) -> RegisteredAgent {
    let (mut policy, missing) = project.policy(spec, secrets);
    for name in missing.iter().filter(|_| warn_missing) {
        tracing::warn!(
            agent = %spec.id,
            "secret `{name}` is granted but has no value: set {} or add it to .orchestr8/secrets.toml",
            secret_env_var(name)
        );
    }
    policy.http_fixtures = place.fixtures.clone();
    let mut registered = RegisteredAgent::new(agent, policy);
    registered.config = spec.config.clone();
    registered
}

/// Loads every component in `dirs`, keyed by the id it reports; nothing
/// granted.
pub(crate) async fn scan_dirs(
    sandbox: &Sandbox,
    dirs: &[PathBuf],
) -> Result<HashMap<String, RegisteredAgent>, RuntimeError> {
    let mut agents = HashMap::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir).map_err(|source| RuntimeError::AgentsDir {
            dir: dir.clone(),
            source,
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        paths.sort();
        for path in paths {
            let agent = sandbox.load(&path).await?;
            agents.insert(
                agent.info().id.clone(),
                RegisteredAgent::new(agent, SandboxPolicy::default()),
            );
        }
    }
    if agents.is_empty() {
        let list: Vec<String> = dirs.iter().map(|d| format!("`{}`", d.display())).collect();
        return Err(RuntimeError::NoAgents(list.join(", ")));
    }
    Ok(agents)
}

/// Cancels `token` on Ctrl-C (SIGINT), after calling `notice` (to say so).
/// Abort the returned task once the work is done.
pub fn cancel_on_interrupt(
    token: CancellationToken,
    notice: impl FnOnce() + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            notice();
            token.cancel();
        }
    })
}

/// Resolves on SIGINT or SIGTERM: when a server should stop taking work
/// and drain what it has.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
