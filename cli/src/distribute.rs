//! Agent distribution: `orchestr8 package`, `install`, `publish`,
//! `uninstall` and `agents list`.
//!
//! Installing checks everything before it changes anything: the digest, the
//! manifest against the component, the id, and consent to the grants the
//! agent asks for. Then it writes the component under
//! `.orchestr8/installed/`, its table in `orchestr8.toml` and its pin in
//! `orchestr8.lock`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use orchestr8_host::package::lock::{LOCK_FILE, LockedAgent, Lockfile};
use orchestr8_host::package::source::Source;
use orchestr8_host::package::{
    Package, PackageError, PackagedLimits, RequestedDir, RequestedGrants, digest, file_stem, oci,
};
use orchestr8_host::project::{AgentSpec, MANIFEST_FILE, Project};
use orchestr8_host::sandbox::{Sandbox, SandboxConfig};
use orchestr8_host::workflow::is_agent_id;
use orchestr8_host::{Coded, ErrorCode};
use serde_json::{Value, json};
use toml_edit::{Array, InlineTable, Item, Table, value};

use crate::error::{Failure, Outcome, exit, report};
use crate::project::{edit_agents, require_project};

/// Where installed components are kept, relative to the project.
const INSTALLED_DIR: &str = ".orchestr8/installed";

#[derive(Args)]
pub struct PackageArgs {
    /// The agent (id or name) to package; it must be built.
    agent: String,
    /// Where to write the package [default: dist].
    #[arg(long, short, default_value = "dist")]
    out: PathBuf,
    /// Print the manifest as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct InstallArgs {
    /// A package: a `.agent.json` manifest or a directory holding one, a
    /// component (`.wasm`: with the manifest beside it that names it, else
    /// as a plain component), an http(s):// URL of either, or
    /// oci://host/repo:tag (an orchestr8 package or any wasm component
    /// artifact). Without it, every agent in orchestr8.lock is restored.
    source: Option<String>,
    /// Install under this id instead of the package's.
    #[arg(long = "as", value_name = "@SCOPE/NAME")]
    alias: Option<String>,
    /// Grant what the agent asks for without asking.
    #[arg(long, short)]
    yes: bool,
}

#[derive(Args)]
pub struct PublishArgs {
    /// The agent (id or name) to publish; it must be built.
    agent: String,
    /// Where: oci://host/repo:tag.
    reference: String,
}

#[derive(Args)]
pub struct UninstallArgs {
    /// The installed agent (id or name).
    agent: String,
}

#[derive(Subcommand)]
pub enum AgentsCommand {
    /// The project's agents: where each comes from, version, digest, grants.
    #[command(
        after_help = "Examples:\n  orchestr8 agents list\n  orchestr8 agents list --json\n\nAn installed agent whose component no longer matches its pin in\norchestr8.lock is flagged; `orchestr8 install` restores it."
    )]
    List {
        /// Print them as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn fail(e: &PackageError) -> Failure {
    let code = match e {
        PackageError::Unreachable { .. } | PackageError::Io(_) => exit::FAILED,
        PackageError::NotAnAgent { .. } => exit::USAGE,
        _ => exit::LOAD,
    };
    report(e.code(), &e.to_string(), code)
}

fn sandbox(config: SandboxConfig) -> Result<Sandbox, Failure> {
    Sandbox::new(config).map_err(|e| Failure::of(&e, exit::LOAD))
}

fn find<'a>(project: &'a Project, name: &str) -> Result<&'a AgentSpec, Failure> {
    project.agent(name).ok_or_else(|| {
        report(
            ErrorCode::AgentNotFound,
            &format!("no agent `{name}` in {MANIFEST_FILE}"),
            exit::USAGE,
        )
    })
}

/// The package of a built project agent. Its manifest is read off the
/// component just loaded, so it is true by construction; installing
/// verifies it again on the other side.
async fn build_package(
    project: &Project,
    spec: &AgentSpec,
    sandbox: &Sandbox,
) -> Result<Package, Failure> {
    let path = project.component_path(spec);
    let bytes = std::fs::read(&path).map_err(|e| {
        report(
            ErrorCode::AgentNotFound,
            &format!(
                "cannot read the component of `{}` at `{}` ({e}): run `orchestr8 build` first",
                spec.id,
                path.display()
            ),
            exit::LOAD,
        )
    })?;
    let agent = sandbox
        .load_bytes(bytes.clone(), path.display().to_string())
        .await
        .map_err(|e| Failure::of(&e, exit::LOAD))?;
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
    let package = Package::build(
        &agent,
        bytes,
        requested,
        PackagedLimits {
            timeout_ms: limits.timeout_ms,
            fuel: limits.fuel,
            memory_mb: limits.memory_bytes.div_ceil(1024 * 1024),
        },
        spec.config.clone(),
    );
    Ok(package)
}

/// The package of the project agent `name`.
async fn package_of(name: &str, config: SandboxConfig) -> Result<Package, Failure> {
    let project = require_project()?;
    let sandbox = sandbox(config)?;
    let spec = find(&project, name)?;
    build_package(&project, spec, &sandbox).await
}

pub async fn package(args: PackageArgs, config: SandboxConfig) -> Outcome {
    let package = package_of(&args.agent, config).await?;
    let manifest_path = package.write(&args.out).map_err(|e| fail(&e))?;
    let m = &package.manifest;
    if args.json {
        println!("{}", serde_json::to_string_pretty(m).unwrap_or_default());
    } else {
        println!("packaged {} {} ({})", m.id, m.version, m.component.digest);
        println!("  {}", manifest_path.display());
        println!("  {}", args.out.join(&m.component.file).display());
        println!(
            "install it elsewhere with: orchestr8 install {}",
            manifest_path.display()
        );
    }
    Ok(exit::OK)
}

pub async fn publish(args: PublishArgs, config: SandboxConfig) -> Outcome {
    let Some(reference) = args.reference.strip_prefix("oci://") else {
        return Err(report(
            ErrorCode::InvalidInput,
            &format!(
                "`{}` is not an OCI reference: write oci://host/repo:tag",
                args.reference
            ),
            exit::USAGE,
        ));
    };
    let package = package_of(&args.agent, config).await?;
    match oci::push(reference, &package).await {
        Ok(url) => {
            let m = &package.manifest;
            println!(
                "published {} {} ({}) to {}",
                m.id, m.version, m.component.digest, args.reference
            );
            println!("  {url}");
            Ok(exit::OK)
        }
        Err(e) => Err(fail(&e)),
    }
}

/// Asks on the terminal whether to grant `lines`; false when there is no
/// terminal to ask on.
fn consent(id: &str, lines: &[String]) -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("grant {id} {}? [y/N] ", lines.join(", "));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes")
}

/// The project, a sandbox and the project's lockfile.
fn open(config: SandboxConfig) -> Result<(Project, Sandbox, Lockfile), Failure> {
    let project = require_project()?;
    let sandbox = sandbox(config)?;
    let lock = Lockfile::load(&project.root).map_err(|e| fail(&e))?;
    Ok((project, sandbox, lock))
}

pub async fn install(args: InstallArgs, config: SandboxConfig) -> Outcome {
    let (project, sandbox, lock) = open(config)?;
    match args.source {
        None => restore(&project, &lock, &sandbox).await,
        Some(source) => {
            install_one(
                &project,
                lock,
                &sandbox,
                &Source::parse(&source),
                args.alias,
                args.yes,
            )
            .await
        }
    }
}

async fn install_one(
    project: &Project,
    mut lock: Lockfile,
    sandbox: &Sandbox,
    source: &Source,
    alias: Option<String>,
    yes: bool,
) -> Outcome {
    let fetched = source.fetch().await.map_err(|e| fail(&e))?;
    let plain = fetched.is_plain();
    let (package, _) = fetched.verify(sandbox).await.map_err(|e| fail(&e))?;
    let m = &package.manifest;
    let id = alias.unwrap_or_else(|| m.id.clone());
    if !is_agent_id(&id) {
        return Err(report(
            ErrorCode::InvalidInput,
            &format!("`{id}` is not an agent id like `@scope/name`"),
            exit::USAGE,
        ));
    }
    if project.agents.contains_key(&id) && lock.get(&id).is_none() {
        return Err(report(
            ErrorCode::Conflict,
            &format!(
                "`{id}` is already an agent of this project, not an installed one: install under another id with --as"
            ),
            exit::USAGE,
        ));
    }
    let asked = m.grants.describe();
    println!("{} {}: {}", m.id, m.version, m.description);
    if plain {
        println!(
            "  a plain component (no orchestr8 manifest): id, version and schemas come from its own info"
        );
        println!(
            "  it asks for no grants and gets the default limits; add grants in {MANIFEST_FILE} if it needs any"
        );
    } else if asked.is_empty() {
        println!("  asks for no grants");
    } else {
        println!("  asks for:");
        for line in &asked {
            println!("    {line}");
        }
        if !yes && !consent(&id, &asked) {
            return Err(report(
                ErrorCode::CapabilityDenied,
                &format!(
                    "{id} was not installed: it asks for grants, pass --yes to grant them (nothing was changed)"
                ),
                exit::USAGE,
            ));
        }
    }
    let component =
        PathBuf::from(INSTALLED_DIR).join(format!("{}.wasm", file_stem(&id, &m.version)));
    if let Err(message) = write_component(&project.root.join(&component), &package.component) {
        return Err(report(ErrorCode::Internal, &message, exit::FAILED));
    }
    if let Err(message) = register(project, &id, &package, &component) {
        return Err(report(ErrorCode::InvalidConfig, &message, exit::LOAD));
    }
    lock.upsert(LockedAgent {
        id: id.clone(),
        package: m.id.clone(),
        version: m.version.clone(),
        source: source.to_string(),
        digest: m.component.digest.clone(),
        component: component.to_string_lossy().into_owned(),
    });
    if let Err(e) = lock.save(&project.root) {
        return Err(fail(&e));
    }
    println!(
        "installed {id} {} ({}) from {source}",
        m.version, m.component.digest
    );
    Ok(exit::OK)
}

fn write_component(path: &Path, bytes: &[u8]) -> Result<(), String> {
    path.parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(path, bytes))
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

/// Writes `[agents."<id>"]` for an installed package: the component, the
/// grants it asked for (consented), its limits and config.
fn register(
    project: &Project,
    id: &str,
    package: &Package,
    component: &Path,
) -> Result<(), String> {
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
            std::fs::create_dir_all(project.root.join(&host))
                .map_err(|e| format!("cannot create `{host}`: {e}"))?;
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
    edit_agents(project, |agents| {
        agents.insert(id, Item::Table(agent));
        Ok(())
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

/// Restores every locked agent whose component is missing, verifying each
/// against its pinned digest.
async fn restore(project: &Project, lock: &Lockfile, sandbox: &Sandbox) -> Outcome {
    if lock.agents.is_empty() {
        println!("nothing to restore: {LOCK_FILE} lists no installed agents");
        return Ok(exit::OK);
    }
    for locked in &lock.agents {
        let path = project.root.join(&locked.component);
        if let Ok(bytes) = std::fs::read(&path)
            && digest(&bytes) == locked.digest
        {
            println!("{} {} is in place", locked.id, locked.version);
            continue;
        }
        let source = Source::parse(&locked.source);
        let fetched = source.fetch().await.map_err(|e| fail(&e))?;
        let actual = digest(fetched.component());
        if actual != locked.digest {
            return Err(fail(&PackageError::DigestMismatch {
                what: format!("{} from {source} (pinned in {LOCK_FILE})", locked.id),
                expected: locked.digest.clone(),
                actual,
            }));
        }
        let (package, _) = fetched.verify(sandbox).await.map_err(|e| fail(&e))?;
        if let Err(message) = write_component(&path, &package.component) {
            return Err(report(ErrorCode::Internal, &message, exit::FAILED));
        }
        println!(
            "restored {} {} ({}) from {source}",
            locked.id, locked.version, locked.digest
        );
    }
    Ok(exit::OK)
}

pub fn uninstall(args: UninstallArgs) -> Outcome {
    let project = require_project()?;
    let spec = find(&project, &args.agent)?;
    let id = spec.id.clone();
    let mut lock = Lockfile::load(&project.root).map_err(|e| fail(&e))?;
    let Some(locked) = lock.get(&id).cloned() else {
        return Err(report(
            ErrorCode::InvalidInput,
            &format!(
                "`{id}` was not installed with `orchestr8 install`: remove its table from {MANIFEST_FILE} by hand"
            ),
            exit::USAGE,
        ));
    };
    let edited = edit_agents(&project, |agents| {
        agents.remove(&id);
        Ok(())
    });
    if let Err(message) = edited {
        return Err(report(ErrorCode::InvalidConfig, &message, exit::LOAD));
    }
    lock.remove(&id);
    if let Err(e) = lock.save(&project.root) {
        return Err(fail(&e));
    }
    let _ = std::fs::remove_file(project.root.join(&locked.component));
    println!("uninstalled {id} {}", locked.version);
    Ok(exit::OK)
}

pub async fn agents(command: AgentsCommand, config: SandboxConfig) -> Outcome {
    let AgentsCommand::List { json } = command;
    let (project, sandbox, lock) = open(config)?;
    let mut rows = Vec::new();
    for spec in project.agents.values() {
        let path = project.component_path(spec);
        let locked = lock.get(&spec.id);
        let (version, digest) = match std::fs::read(&path) {
            Ok(bytes) => {
                let version = match sandbox
                    .load_bytes(bytes.clone(), path.display().to_string())
                    .await
                {
                    Ok(agent) => Some(agent.info().version.clone()),
                    Err(_) => None,
                };
                (version, Some(digest(&bytes)))
            }
            Err(_) => (None, None),
        };
        let from = match (locked, &spec.source) {
            (Some(l), _) => format!("installed from {}", l.source),
            (None, orchestr8_host::project::AgentSource::Crate(dir)) => {
                format!(
                    "crate {}",
                    dir.strip_prefix(&project.root).unwrap_or(dir).display()
                )
            }
            (None, orchestr8_host::project::AgentSource::Component(file)) => {
                format!(
                    "component {}",
                    file.strip_prefix(&project.root).unwrap_or(file).display()
                )
            }
        };
        let g = &spec.policy.grants;
        let mut grants: Vec<String> = g
            .allowed_hosts
            .iter()
            .map(|h| format!("host {h}"))
            .collect();
        grants.extend(g.dirs.iter().map(|d| format!("dir {}", d.guest_path)));
        grants.extend(g.env.iter().map(|e| format!("env {e}")));
        grants.extend(g.secrets.iter().map(|s| format!("secret {s}")));
        let pinned_ok = match (locked, &digest) {
            (Some(l), Some(d)) => Some(&l.digest == d),
            _ => None,
        };
        rows.push(json!({
            "id": spec.id,
            "version": version,
            "digest": digest,
            "from": from,
            "grants": grants,
            "matchesLock": pinned_ok,
        }));
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&Value::Array(rows)).unwrap_or_default()
        );
        return Ok(exit::OK);
    }
    for row in &rows {
        let short = row["digest"]
            .as_str()
            .map_or("(not built)".to_string(), |d| d.chars().take(19).collect());
        println!(
            "{}  {}  {}  {}",
            row["id"].as_str().unwrap_or_default(),
            row["version"].as_str().unwrap_or("?"),
            short,
            row["from"].as_str().unwrap_or_default()
        );
        let grants: Vec<&str> = row["grants"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        println!(
            "    grants: {}",
            if grants.is_empty() {
                "none".to_string()
            } else {
                grants.join(", ")
            }
        );
        if row["matchesLock"] == false {
            println!(
                "    WARNING: the component differs from the digest pinned in {LOCK_FILE}: run `orchestr8 install`"
            );
        }
    }
    Ok(exit::OK)
}
