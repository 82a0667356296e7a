//! The project: `orchestr8.toml` (the way `spin.toml` works for Spin) names
//! the agents by id, where each comes from (a Rust crate that
//! `orchestr8 build` compiles, or a prebuilt component) and, per agent, its
//! limits and grants. State and build output live in the project's
//! `.orchestr8/` folder; secret values come from the environment or the
//! git-ignored `.orchestr8/secrets.toml`, never from a workflow or this file.
//!
//! ```toml
//! [project]
//! name = "demo"
//!
//! [agents."@demo/greeter"]
//! crate = "agents/greeter"
//!
//! [agents."@demo/greeter".limits]
//! timeout_ms = 5000
//! memory_mb = 32
//!
//! [agents."@demo/greeter".grants]
//! allowed_hosts = ["api.github.com"]
//! secrets = ["github-token"]
//! ```

mod edit;
mod manifest;
mod secrets;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use secrets::{Secrets, secret_env_var};

use crate::error::{Coded, ErrorCode};
use crate::sandbox::{DirGrant, Grants, Limits, PolicyError, SandboxPolicy};
use crate::workflow::is_agent_id;
use manifest::{AgentTable, Manifest};

/// The project file's name.
pub const MANIFEST_FILE: &str = "orchestr8.toml";
/// The project's folder for state, build output and secrets.
pub const STATE_DIR: &str = ".orchestr8";
/// The git-ignored file of secret values, in the state folder.
pub const SECRETS_FILE: &str = "secrets.toml";

/// The module a Python agent's directory must hold: componentize-py builds
/// it, and it exports the agent as `Handler`.
pub const PYTHON_APP: &str = "app.py";
/// The module a TypeScript agent's directory must hold: ComponentizeJS
/// builds it, and it exports the agent as `handler`.
pub const TYPESCRIPT_ENTRY: &str = "agent.ts";
/// The engine ceiling limits are checked against when the file is read.
const MAX_MEMORY_BYTES: u64 = 1 << 30;

/// A project configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No `orchestr8.toml` here or above.
    #[error(
        "no {MANIFEST_FILE} in `{0}` or any parent directory: create a project with `orchestr8 init`"
    )]
    NotFound(PathBuf),
    /// The file cannot be read.
    #[error("cannot read `{file}`: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file says something wrong.
    #[error("`{}`{}{}: {reason}", file.display(), line.map(|l| format!(" line {l}")).unwrap_or_default(), key.as_ref().map(|k| format!(", key `{k}`")).unwrap_or_default())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// The dotted key, when known.
        key: Option<String>,
        /// The 1-based line, when known.
        line: Option<usize>,
        /// What is wrong and what to do.
        reason: String,
    },
}

impl Coded for ConfigError {
    fn code(&self) -> ErrorCode {
        ErrorCode::InvalidConfig
    }

    fn details(&self) -> Option<serde_json::Value> {
        match self {
            ConfigError::Invalid {
                file, key, line, ..
            } => Some(serde_json::json!({ "file": file, "key": key, "line": line })),
            ConfigError::Read { file, .. } => Some(serde_json::json!({ "file": file })),
            ConfigError::NotFound(_) => None,
        }
    }
}

/// Where an agent's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSource {
    /// A Rust crate (its directory), compiled by `orchestr8 build`.
    Crate(PathBuf),
    /// A Python agent (its directory, holding `app.py`), made a component
    /// by `orchestr8 build` with componentize-py.
    Python(PathBuf),
    /// A TypeScript agent (its directory, holding `agent.ts`), made a
    /// component by `orchestr8 build` with ComponentizeJS.
    TypeScript(PathBuf),
    /// A prebuilt component file.
    Component(PathBuf),
}

impl AgentSource {
    /// Where it is: the crate's, Python or TypeScript agent's directory, or
    /// the component file.
    pub fn path(&self) -> &Path {
        match self {
            AgentSource::Crate(p)
            | AgentSource::Python(p)
            | AgentSource::TypeScript(p)
            | AgentSource::Component(p) => p,
        }
    }

    /// True when `orchestr8 build` makes the component from sources.
    pub fn is_built(&self) -> bool {
        !matches!(self, AgentSource::Component(_))
    }

    /// The key that names it in `orchestr8.toml`: `crate`, `python`,
    /// `typescript` or `component`.
    pub fn key(&self) -> &'static str {
        match self {
            AgentSource::Crate(_) => "crate",
            AgentSource::Python(_) => "python",
            AgentSource::TypeScript(_) => "typescript",
            AgentSource::Component(_) => "component",
        }
    }
}

/// One agent of the project.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// Its id, `@scope/name`.
    pub id: String,
    /// Where it comes from (absolute paths).
    pub source: AgentSource,
    /// Its limits and grants; values of env vars and secrets are filled in
    /// by [`Project::policy`].
    pub policy: SandboxPolicy,
    /// Its configuration wherever it runs (`[agents."…".config]`, an
    /// object); a workflow step's `config` overrides it key by key.
    pub config: serde_json::Value,
    /// The id its component reports: the agent's own id, unless the project
    /// installed it under another (`package = "@scope/name"`).
    pub component_id: String,
}

/// A loaded `orchestr8.toml`.
#[derive(Debug, Clone)]
pub struct Project {
    /// The directory holding `orchestr8.toml`.
    pub root: PathBuf,
    /// The project's name; the scope of agents `orchestr8 create` adds.
    pub name: String,
    /// What the project is for.
    pub description: Option<String>,
    /// The agents by id.
    pub agents: BTreeMap<String, AgentSpec>,
}

/// Whether `name` may name a project or an agent crate: lower-case letters,
/// digits and `-`, starting with a letter, not ending with `-`, at most 64.
pub fn is_valid_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl Project {
    /// The nearest directory at or above `start` holding `orchestr8.toml`.
    pub fn find(start: &Path) -> Option<PathBuf> {
        start
            .ancestors()
            .find(|dir| dir.join(MANIFEST_FILE).is_file())
            .map(Path::to_path_buf)
    }

    /// Loads the project at or above `start`.
    pub fn discover(start: &Path) -> Result<Project, ConfigError> {
        let root = Project::find(start).ok_or_else(|| ConfigError::NotFound(start.into()))?;
        Project::load(&root)
    }

    /// Loads `root/orchestr8.toml` and checks it.
    pub fn load(root: &Path) -> Result<Project, ConfigError> {
        let file = root.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&file).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let manifest: Manifest = manifest::parse(&file, &text)?;
        let invalid = |key: String, reason: String| ConfigError::Invalid {
            file: file.clone(),
            key: Some(key),
            line: None,
            reason,
        };
        if !is_valid_name(&manifest.project.name) {
            return Err(invalid(
                "project.name".into(),
                format!(
                    "`{}` is not a valid name: use lower-case letters, digits and `-`, starting with a letter",
                    manifest.project.name
                ),
            ));
        }
        let mut agents = BTreeMap::new();
        for (id, table) in manifest.agents {
            let key = format!("agents.\"{id}\"");
            if !is_agent_id(&id) {
                return Err(invalid(
                    key,
                    format!("`{id}` is not an agent id like `@scope/name`"),
                ));
            }
            let mut table = table;
            table.record = table.record.or(manifest.project.record);
            let spec = agent_spec(root, &id, table).map_err(|(sub, reason)| {
                invalid(
                    format!("{key}{}", sub.map(|s| format!(".{s}")).unwrap_or_default()),
                    reason,
                )
            })?;
            agents.insert(id, spec);
        }
        Ok(Project {
            root: root.to_path_buf(),
            name: manifest.project.name,
            description: manifest.project.description,
            agents,
        })
    }

    /// `root/orchestr8.toml`.
    pub fn manifest_path(&self) -> PathBuf {
        self.root.join(MANIFEST_FILE)
    }

    /// `root/.orchestr8`: the journal database, built components, secrets.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    /// Where `orchestr8 build` puts the components it builds.
    pub fn components_dir(&self) -> PathBuf {
        self.state_dir().join("components")
    }

    /// The component the host loads for `spec`: the built file for an agent
    /// built from sources (`.orchestr8/components/<scope>.<name>.wasm`),
    /// else the file named.
    pub fn component_path(&self, spec: &AgentSpec) -> PathBuf {
        match &spec.source {
            AgentSource::Component(path) => path.clone(),
            AgentSource::Crate(_) | AgentSource::Python(_) | AgentSource::TypeScript(_) => {
                let slug = spec.id.trim_start_matches('@').replace('/', ".");
                self.components_dir().join(format!("{slug}.wasm"))
            }
        }
    }

    /// The agents built from sources whose sources changed after their
    /// component was last built: what running them now would get wrong.
    /// An agent never built is not here (it is simply missing).
    pub fn stale_agents(&self) -> Vec<&AgentSpec> {
        self.agents
            .values()
            .filter(|spec| spec.source.is_built())
            .filter(|spec| {
                let built = std::fs::metadata(self.component_path(spec)).and_then(|m| m.modified());
                built.is_ok_and(|built| self.sources_changed(spec).is_some_and(|t| t > built))
            })
            .collect()
    }

    /// When the sources of `spec` last changed (the newest modification
    /// time among its files, build output and dependencies left out); `None`
    /// for a prebuilt component.
    pub fn sources_changed(&self, spec: &AgentSpec) -> Option<std::time::SystemTime> {
        spec.source
            .is_built()
            .then(|| newest_change(spec.source.path()))
            .flatten()
    }

    /// The project's secret values (environment, then `.orchestr8/secrets.toml`).
    pub fn secrets(&self) -> Result<Secrets, ConfigError> {
        Secrets::load(&self.state_dir().join(SECRETS_FILE))
    }

    /// The policy `spec` runs under, with the values of its granted
    /// environment variables and secrets filled in. Returns the names of
    /// granted secrets that have no value, for a warning.
    pub fn policy(&self, spec: &AgentSpec, secrets: &Secrets) -> (SandboxPolicy, Vec<String>) {
        let mut policy = spec.policy.clone();
        policy.resolve_env_from_host();
        let mut missing = Vec::new();
        for name in &policy.grants.secrets {
            match secrets.get(name) {
                Some(value) => {
                    policy.secret_values.insert(name.clone(), value);
                }
                None => missing.push(name.clone()),
            }
        }
        (policy, missing)
    }

    /// Finds an agent by id, or by its bare name when that is unambiguous
    /// (`greeter` for `@demo/greeter`).
    pub fn agent(&self, name: &str) -> Option<&AgentSpec> {
        self.agents.get(name).or_else(|| {
            let mut found = self
                .agents
                .values()
                .filter(|a| a.id.rsplit('/').next() == Some(name));
            match (found.next(), found.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            }
        })
    }
}

/// Checks one `[agents."…"]` table; errors carry the sub-key and the reason.
fn agent_spec(
    root: &Path,
    id: &str,
    table: AgentTable,
) -> Result<AgentSpec, (Option<&'static str>, String)> {
    let given = [
        table.crate_dir.is_some(),
        table.python.is_some(),
        table.typescript.is_some(),
        table.component.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err((
            None,
            "give one of `crate`, `python`, `typescript` or `component`, not more than one"
                .to_string(),
        ));
    }
    let source = if let Some(dir) = table.crate_dir {
        let dir = root.join(dir);
        if !dir.join("Cargo.toml").is_file() {
            return Err((
                Some("crate"),
                format!(
                    "`{}` is not a Rust crate (no Cargo.toml there); create one with `orchestr8 create`",
                    dir.display()
                ),
            ));
        }
        AgentSource::Crate(dir)
    } else if let Some(dir) = table.python {
        let dir = root.join(dir);
        if !dir.join(PYTHON_APP).is_file() {
            return Err((
                Some("python"),
                format!(
                    "`{}` is not a Python agent (no {PYTHON_APP} there); create one with `orchestr8 create --lang python`",
                    dir.display()
                ),
            ));
        }
        AgentSource::Python(dir)
    } else if let Some(dir) = table.typescript {
        let dir = root.join(dir);
        if !dir.join(TYPESCRIPT_ENTRY).is_file() {
            return Err((
                Some("typescript"),
                format!(
                    "`{}` is not a TypeScript agent (no {TYPESCRIPT_ENTRY} there); create one with `orchestr8 create --lang typescript`",
                    dir.display()
                ),
            ));
        }
        AgentSource::TypeScript(dir)
    } else if let Some(file) = table.component {
        AgentSource::Component(root.join(file))
    } else {
        return Err((
            None,
            format!(
                "agent `{id}` needs `crate`, `python` or `typescript = \"agents/<name>\"` (built by `orchestr8 build`), or `component = \"<file>.wasm\"`"
            ),
        ));
    };
    let defaults = Limits::default();
    let l = table.limits;
    let limits = Limits {
        timeout_ms: l.timeout_ms.unwrap_or(defaults.timeout_ms),
        fuel: l.fuel.unwrap_or(defaults.fuel),
        memory_bytes: l
            .memory_mb
            .map_or(defaults.memory_bytes, |mb| mb.saturating_mul(1024 * 1024)),
        table_elements: l.table_elements.unwrap_or(defaults.table_elements),
        output_bytes: l.output_bytes.unwrap_or(defaults.output_bytes),
        log_bytes: l.log_bytes.unwrap_or(defaults.log_bytes),
        max_concurrency: l.max_concurrency,
    };
    let g = table.grants;
    for name in g.env.iter().chain(&g.secrets) {
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err((
                Some("grants"),
                format!("`{name}` is not a variable or secret name"),
            ));
        }
    }
    let grants = Grants {
        allowed_hosts: g.allowed_hosts,
        dirs: g
            .dirs
            .into_iter()
            .map(|d| DirGrant {
                host_path: root.join(d.host),
                guest_path: d.guest,
                writable: d.writable,
                quota_bytes: d.quota_mb.map(|mb| mb.saturating_mul(1024 * 1024)),
                quota_files: d.quota_files,
            })
            .collect(),
        env: g.env,
        secrets: g.secrets,
    };
    let policy = SandboxPolicy {
        limits,
        grants,
        recording: table.record.unwrap_or_default(),
        ..SandboxPolicy::default()
    };
    policy.validate(MAX_MEMORY_BYTES).map_err(|e| {
        let key = match e {
            PolicyError::LimitOutOfRange { .. } => "limits",
            PolicyError::MissingDir(_) | PolicyError::RelativeGuestPath(_) => "grants.dirs",
        };
        (Some(key), e.to_string())
    })?;
    let config = serde_json::to_value(&table.config)
        .map_err(|e| (Some("config"), format!("cannot be used as JSON: {e}")))?;
    let component_id = match table.package {
        Some(package) if crate::workflow::is_agent_id(&package) => package,
        Some(package) => {
            return Err((
                Some("package"),
                format!("`{package}` is not an agent id like `@scope/name`"),
            ));
        }
        None => id.to_string(),
    };
    Ok(AgentSpec {
        id: id.to_string(),
        source,
        policy,
        config,
        component_id,
    })
}

/// When anything under `dir` last changed, leaving out build output and
/// caches (`target`, `node_modules`, `__pycache__`, hidden folders).
fn newest_change(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.')
                || ["target", "node_modules", "__pycache__"].contains(&name.as_ref())
            {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if let Ok(modified) = meta.modified() {
                newest = newest.max(Some(modified));
            }
        }
    }
    newest
}

#[cfg(test)]
mod tests;
