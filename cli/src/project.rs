//! Where a command finds its agents and keeps state: the arguments every
//! project command takes, turned into the library's [`Place`], and the
//! [`Runtime`] opened there.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::Args;
use orchestr8_host::ErrorCode;
use orchestr8_host::call::RegisteredAgent;
use orchestr8_host::project::{ConfigError, Project};
use orchestr8_host::runtime::{Place, Runtime};
use orchestr8_host::sandbox::{HttpFixtures, Sandbox, SandboxConfig, SandboxPolicy};

use crate::error::{Failure, exit, report};

/// Where executions and journals are kept.
#[derive(Args, Clone, Default)]
pub struct StateArgs {
    /// Where executions and journals are kept [default: the project's
    /// .orchestr8/, else ./.orchestr8/]
    #[arg(long, value_name = "DIR", env = "ORCHESTR8_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Keep executions and journals in this PostgreSQL database
    /// (postgres://USER:PASSWORD@HOST:PORT/DB), shared by every node
    /// started with it, instead of the state directory's SQLite file
    #[arg(
        long = "store",
        value_name = "URL",
        env = "ORCHESTR8_DATABASE_URL",
        hide_env_values = true,
        value_parser = postgres_url
    )]
    database: Option<String>,
}

/// A `--store` value: only PostgreSQL databases are shared stores (the
/// embedded SQLite file is the default, chosen by --state-dir).
fn postgres_url(text: &str) -> Result<String, String> {
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        Ok(text.to_string())
    } else {
        Err("give a PostgreSQL URL, postgres://USER:PASSWORD@HOST:PORT/DB (without --store, executions are kept in the state directory's SQLite file)".into())
    }
}

impl StateArgs {
    /// The state folder given (flag or environment), if any.
    pub fn given(&self) -> Option<PathBuf> {
        self.state_dir.clone()
    }

    /// The shared database given (flag or environment), if any.
    pub fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    /// The state folder: as given, else the project's, else `./.orchestr8`.
    pub fn dir(&self) -> PathBuf {
        self.place(Vec::new()).state_dir()
    }

    fn place(&self, agents_dirs: Vec<PathBuf>) -> Place {
        Place {
            dir: std::env::current_dir().unwrap_or_default(),
            agents_dirs,
            state_dir: self.state_dir.clone(),
            database: self.database.clone(),
            ..Place::default()
        }
    }
}

/// Where agents and state are.
#[derive(Args, Clone, Default)]
pub struct ProjectArgs {
    /// Load every agent component (.wasm) in DIR instead of the project's
    /// agents (nothing granted); repeatable.
    #[arg(long = "agents-dir", value_name = "DIR")]
    pub agents_dirs: Vec<PathBuf>,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub build: BuildCheck,
}

/// Whether a command rebuilds agents whose sources changed since their
/// last build before it runs them.
#[derive(Args, Clone, Copy, Default)]
pub struct BuildCheck {
    /// Run the agents as last built even when their sources changed since
    /// (by default such agents are rebuilt first).
    #[arg(long)]
    pub no_build: bool,
}

impl BuildCheck {
    /// Rebuilds the stale agents of `project` among `only` (all when
    /// `None`), or warns about them with --no-build.
    pub async fn apply(
        self,
        project: &Project,
        config: &SandboxConfig,
        only: Option<&BTreeSet<String>>,
    ) -> Result<(), Failure> {
        crate::build::rebuild_stale(project, only, self.no_build, config.clone()).await
    }
}

impl ProjectArgs {
    /// The place these arguments name, answering outbound HTTP from
    /// `fixtures` when given.
    pub fn place(&self, fixtures: Option<HttpFixtures>) -> Place {
        Place {
            fixtures,
            ..self.state.place(self.agents_dirs.clone())
        }
    }

    /// A runtime opened at that place, in a new sandbox, with the agents
    /// `only` names (all when `None`) rebuilt first if they are stale.
    pub async fn open(
        &self,
        config: SandboxConfig,
        fixtures: Option<HttpFixtures>,
        only: Option<BTreeSet<String>>,
    ) -> Result<Runtime, Failure> {
        if self.agents_dirs.is_empty()
            && let Some(project) = current_project()?
        {
            self.build.apply(&project, &config, only.as_ref()).await?;
        }
        let sandbox = Sandbox::new(config).map_err(|e| Failure::of(&e, exit::LOAD))?;
        let place = Place {
            only,
            ..self.place(fixtures)
        };
        Runtime::open(sandbox, place)
            .await
            .map_err(|e| Failure::of(&e, exit::LOAD))
    }
}

impl ProjectArgs {
    /// A runtime for a server, opened at that place with every agent (the
    /// stale ones rebuilt first): its agents are reloaded whenever their
    /// files change, and one that cannot load is set aside, not fatal.
    pub async fn open_live(&self, config: SandboxConfig) -> Result<Runtime, Failure> {
        if self.agents_dirs.is_empty()
            && let Some(project) = current_project()?
        {
            self.build.apply(&project, &config, None).await?;
        }
        let sandbox = Sandbox::new(config).map_err(|e| Failure::of(&e, exit::LOAD))?;
        Runtime::open_live(sandbox, self.place(None))
            .await
            .map_err(|e| Failure::of(&e, exit::LOAD))
    }
}

/// The project at or above the current directory, if there is one; an
/// invalid `orchestr8.toml` is a failure.
pub fn current_project() -> Result<Option<Project>, Failure> {
    let cwd = std::env::current_dir().unwrap_or_default();
    match Project::find(&cwd) {
        None => Ok(None),
        Some(root) => Project::load(&root)
            .map(Some)
            .map_err(|e| Failure::of(&e, exit::LOAD)),
    }
}

/// The project at or above the current directory; its absence is a failure.
pub fn require_project() -> Result<Project, Failure> {
    current_project()?.ok_or_else(|| {
        let cwd = std::env::current_dir().unwrap_or_default();
        Failure::of(&ConfigError::NotFound(cwd), exit::LOAD)
    })
}

/// The agent `name` names: a component file (`.wasm`, nothing granted), or
/// inside a project an agent's id or name, with its limits, grants, secrets
/// and config, rebuilt first when stale, loaded alone.
pub async fn resolve_agent(
    sandbox: Sandbox,
    name: &str,
    build: BuildCheck,
) -> Result<RegisteredAgent, Failure> {
    let path = PathBuf::from(name);
    if path.extension().is_some_and(|x| x == "wasm") {
        let agent = sandbox
            .load(&path)
            .await
            .map_err(|e| Failure::of(&e, exit::LOAD))?;
        return Ok(RegisteredAgent::new(agent, SandboxPolicy::default()));
    }
    let unknown = || {
        report(
            ErrorCode::AgentNotFound,
            &format!("no agent `{name}` in orchestr8.toml; give its id, its name, or a .wasm file"),
            exit::USAGE,
        )
    };
    let project = require_project()?;
    let Some(spec) = project.agent(name) else {
        return Err(unknown());
    };
    // Only this agent: the project's others do not matter here.
    let only: BTreeSet<String> = [spec.id.clone()].into();
    build.apply(&project, sandbox.config(), Some(&only)).await?;
    let place = Place {
        only: Some(only),
        ..Place::at(&project.root)
    };
    let runtime = Runtime::open(sandbox, place)
        .await
        .map_err(|e| Failure::of(&e, exit::LOAD))?;
    runtime.agent(name).ok_or_else(unknown)
}
