//! Installing packages into a project: everything is checked before
//! anything changes. [`Installer::prepare`] fetches a source, verifies it
//! (digest, manifest against component, or a plain component's own
//! `info`) and checks the id it will take; the caller shows what it asks
//! for and gets consent; [`Installer::install`] then writes the component
//! under `.orchestr8/installed/`, its table in `orchestr8.toml` and its pin
//! in `orchestr8.lock`. [`Installer::restore`] brings back what the
//! lockfile pins; [`uninstall`] takes an installed agent out.

use std::path::{Path, PathBuf};

use serde_json::Value;
use toml_edit::{Array, InlineTable, Item, Table, value};

use super::lock::{LOCK_FILE, LockedAgent, Lockfile};
use super::source::Source;
use super::{
    Package, PackageError, PackagedLimits, RequestedDir, RequestedGrants, digest, file_stem,
};
use crate::error::{Coded, ErrorCode};
use crate::project::{AgentSpec, ConfigError, MANIFEST_FILE, Project};
use crate::sandbox::Sandbox;
use crate::workflow::is_agent_id;

/// Where installed components are kept, relative to the project.
pub const INSTALLED_DIR: &str = ".orchestr8/installed";

/// Why an install, a restore or an uninstall did not happen.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Fetching, verifying or pinning the package failed.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// `orchestr8.toml` cannot be read or edited.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The id to install under is not an agent id.
    #[error("`{0}` is not an agent id like `@scope/name`")]
    InvalidId(String),
    /// The id belongs to one of the project's own agents.
    #[error(
        "`{0}` is already an agent of this project, not an installed one: install under another id with --as"
    )]
    Taken(String),
    /// No such agent in the project.
    #[error("no agent `{0}` in {MANIFEST_FILE}")]
    UnknownAgent(String),
    /// The agent was not installed (it is the project's own).
    #[error(
        "`{0}` was not installed with `orchestr8 install`: remove its table from {MANIFEST_FILE} by hand"
    )]
    NotInstalled(String),
    /// A file could not be written.
    #[error("cannot write `{}`: {source}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl Coded for InstallError {
    fn code(&self) -> ErrorCode {
        match self {
            InstallError::Package(e) => e.code(),
            InstallError::Config(e) => e.code(),
            InstallError::InvalidId(_) | InstallError::NotInstalled(_) => ErrorCode::InvalidInput,
            InstallError::Taken(_) => ErrorCode::Conflict,
            InstallError::UnknownAgent(_) => ErrorCode::AgentNotFound,
            InstallError::Write { .. } => ErrorCode::Internal,
        }
    }
}

/// A package fetched and verified, not installed yet.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The package (for a plain component, the manifest its own `info` gives).
    pub package: Package,
    /// Whether it came without a manifest.
    pub plain: bool,
    /// The id it will be installed under.
    pub id: String,
    /// Where it came from.
    pub source: Source,
}

/// A pinned agent put back by [`Installer::restore`].
#[derive(Debug, Clone, PartialEq)]
pub enum Restored {
    /// Its component was already there, matching the pin.
    InPlace(LockedAgent),
    /// Fetched again from its source and verified against the pin.
    Fetched(LockedAgent),
}

/// Installs into one project.
pub struct Installer<'a> {
    project: &'a Project,
    sandbox: &'a Sandbox,
}

impl<'a> Installer<'a> {
    /// An installer for `project`, verifying components in `sandbox`.
    pub fn new(project: &'a Project, sandbox: &'a Sandbox) -> Self {
        Installer { project, sandbox }
    }

    /// Fetches and verifies `source`, to be installed as `alias` or under
    /// its own id; nothing changes yet.
    pub async fn prepare(
        &self,
        source: Source,
        alias: Option<String>,
    ) -> Result<Prepared, InstallError> {
        let fetched = source.fetch().await?;
        let plain = fetched.is_plain();
        let (package, _) = fetched.verify(self.sandbox).await?;
        let id = alias.unwrap_or_else(|| package.manifest.id.clone());
        if !is_agent_id(&id) {
            return Err(InstallError::InvalidId(id));
        }
        let lock = Lockfile::load(&self.project.root)?;
        if self.project.agents.contains_key(&id) && lock.get(&id).is_none() {
            return Err(InstallError::Taken(id));
        }
        Ok(Prepared {
            package,
            plain,
            id,
            source,
        })
    }

    /// Installs what [`Installer::prepare`] checked, with the grants its
    /// manifest asks for (consented to by the caller).
    pub fn install(&self, prepared: &Prepared) -> Result<LockedAgent, InstallError> {
        let m = &prepared.package.manifest;
        let component = PathBuf::from(INSTALLED_DIR)
            .join(format!("{}.wasm", file_stem(&prepared.id, &m.version)));
        write_component(
            &self.project.root.join(&component),
            &prepared.package.component,
        )?;
        self.register(&prepared.id, &prepared.package, &component)?;
        let locked = LockedAgent {
            id: prepared.id.clone(),
            package: m.id.clone(),
            version: m.version.clone(),
            source: prepared.source.to_string(),
            digest: m.component.digest.clone(),
            component: component.to_string_lossy().into_owned(),
        };
        let mut lock = Lockfile::load(&self.project.root)?;
        lock.upsert(locked.clone());
        lock.save(&self.project.root)?;
        Ok(locked)
    }

    /// Puts back every pinned agent whose component is missing or differs,
    /// from its source, refusing one whose digest is not the pinned one;
    /// `each` hears of every agent as it is done.
    pub async fn restore(
        &self,
        mut each: impl FnMut(&Restored),
    ) -> Result<Vec<Restored>, InstallError> {
        let lock = Lockfile::load(&self.project.root)?;
        let mut done = Vec::new();
        for locked in &lock.agents {
            let path = self.project.root.join(&locked.component);
            let restored =
                if std::fs::read(&path).is_ok_and(|bytes| digest(&bytes) == locked.digest) {
                    Restored::InPlace(locked.clone())
                } else {
                    let source = Source::parse(&locked.source);
                    let fetched = source.fetch().await?;
                    let actual = digest(fetched.component());
                    if actual != locked.digest {
                        return Err(PackageError::DigestMismatch {
                            what: format!("{} from {source} (pinned in {LOCK_FILE})", locked.id),
                            expected: locked.digest.clone(),
                            actual,
                        }
                        .into());
                    }
                    let (package, _) = fetched.verify(self.sandbox).await?;
                    write_component(&path, &package.component)?;
                    Restored::Fetched(locked.clone())
                };
            each(&restored);
            done.push(restored);
        }
        Ok(done)
    }

    /// Writes `[agents."<id>"]` for an installed package: the component,
    /// the grants it asked for (consented), its limits and config.
    fn register(&self, id: &str, package: &Package, component: &Path) -> Result<(), InstallError> {
        let m = &package.manifest;
        let mut agent = Table::new();
        agent["component"] = value(component.to_string_lossy().as_ref());
        if m.id != id {
            agent["package"] = value(m.id.as_str());
        }
        let mut limits = InlineTable::new();
        limits.insert("timeout_ms", (m.limits.timeout_ms as i64).into());
        limits.insert("fuel", (m.limits.fuel.min(i64::MAX as u64) as i64).into());
        limits.insert("memory_mb", (m.limits.memory_mb as i64).into());
        agent["limits"] = value(limits);
        let list = |items: &[String]| {
            let mut array = Array::new();
            for item in items {
                array.push(item.as_str());
            }
            array
        };
        let mut grants = Table::new();
        let g = &m.grants;
        if !g.allowed_hosts.is_empty() {
            grants["allowed_hosts"] = value(list(&g.allowed_hosts));
        }
        if !g.env.is_empty() {
            grants["env"] = value(list(&g.env));
        }
        if !g.secrets.is_empty() {
            grants["secrets"] = value(list(&g.secrets));
        }
        if !g.dirs.is_empty() {
            // The project decides where each directory is; a folder under
            // data/<agent>/ until it says otherwise.
            let mut dirs = Array::new();
            for d in &g.dirs {
                let host = format!(
                    "data/{}/{}",
                    id.rsplit('/').next().unwrap_or(id),
                    d.guest.trim_start_matches('/').replace('/', "-")
                );
                let path = self.project.root.join(&host);
                std::fs::create_dir_all(&path)
                    .map_err(|source| InstallError::Write { path, source })?;
                let mut t = InlineTable::new();
                t.insert("host", host.as_str().into());
                t.insert("guest", d.guest.as_str().into());
                t.insert("writable", d.writable.into());
                dirs.push(t);
            }
            grants["dirs"] = value(dirs);
        }
        if !grants.is_empty() {
            agent.insert("grants", Item::Table(grants));
        }
        if let Some(config) = m.config.as_object().filter(|c| !c.is_empty()) {
            let mut table = Table::new();
            for (key, v) in config {
                if let Some(v) = toml_value(v) {
                    table[key.as_str()] = value(v);
                }
            }
            agent.insert("config", Item::Table(table));
        }
        self.project.edit_agents(|agents| {
            agents.insert(id, Item::Table(agent));
            Ok(())
        })?;
        Ok(())
    }
}

/// Takes out the installed agent `name` (id or name): its table, its
/// pin, its component.
pub fn uninstall(project: &Project, name: &str) -> Result<LockedAgent, InstallError> {
    let spec = project
        .agent(name)
        .ok_or_else(|| InstallError::UnknownAgent(name.to_string()))?;
    let id = spec.id.clone();
    let mut lock = Lockfile::load(&project.root)?;
    let locked = lock
        .get(&id)
        .cloned()
        .ok_or_else(|| InstallError::NotInstalled(id.clone()))?;
    project.edit_agents(|agents| {
        agents.remove(&id);
        Ok(())
    })?;
    lock.remove(&id);
    lock.save(&project.root)?;
    let _ = std::fs::remove_file(project.root.join(&locked.component));
    Ok(locked)
}

/// The package of a built project agent: its manifest is read off the
/// component just loaded, so it is true by construction (installing
/// verifies it again on the other side), with the grants, limits and config
/// the project gives the agent.
pub async fn package(
    project: &Project,
    spec: &AgentSpec,
    sandbox: &Sandbox,
) -> Result<Package, PackageError> {
    let path = project.component_path(spec);
    let bytes = std::fs::read(&path).map_err(|e| PackageError::NotBuilt {
        id: spec.id.clone(),
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let agent = sandbox
        .load_bytes(bytes.clone(), path.display().to_string())
        .await?;
    let grants = &spec.policy.grants;
    let requested = RequestedGrants {
        allowed_hosts: grants
            .allowed_hosts
            .iter()
            .map(ToString::to_string)
            .collect(),
        dirs: grants
            .dirs
            .iter()
            .map(|d| RequestedDir {
                guest: d.guest_path.clone(),
                writable: d.writable,
            })
            .collect(),
        env: grants.env.clone(),
        secrets: grants.secrets.clone(),
    };
    let limits = &spec.policy.limits;
    Ok(Package::build(
        &agent,
        bytes,
        requested,
        PackagedLimits {
            timeout_ms: limits.timeout_ms,
            fuel: limits.fuel,
            memory_mb: limits.memory_bytes.div_ceil(1024 * 1024),
        },
        spec.config.clone(),
    ))
}

fn write_component(path: &Path, bytes: &[u8]) -> Result<(), InstallError> {
    path.parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(path, bytes))
        .map_err(|source| InstallError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// A JSON value as TOML; `None` for null, which TOML cannot say.
fn toml_value(v: &Value) -> Option<toml_edit::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64()?.into(),
        },
        Value::String(s) => s.as_str().into(),
        Value::Array(items) => {
            let mut array = Array::new();
            for item in items.iter().filter_map(toml_value) {
                array.push(item);
            }
            toml_edit::Value::Array(array)
        }
        Value::Object(map) => {
            let mut table = InlineTable::new();
            for (k, item) in map {
                if let Some(item) = toml_value(item) {
                    table.insert(k, item);
                }
            }
            toml_edit::Value::InlineTable(table)
        }
    })
}
