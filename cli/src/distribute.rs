//! Agent distribution: `orchestr8 package`, `install`, `publish`,
//! `uninstall` and `agents list`, over the library's installer
//! (`orchestr8_host::package::install`): this module asks for consent and
//! says what happened.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use orchestr8_host::ErrorCode;
use orchestr8_host::package::install::{self, InstallError, Installer, Restored};
use orchestr8_host::package::lock::{LOCK_FILE, Lockfile};
use orchestr8_host::package::source::Source;
use orchestr8_host::package::{Package, PackageError, digest, oci};
use orchestr8_host::project::MANIFEST_FILE;
use orchestr8_host::sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::error::{Failure, Outcome, exit, report};
use crate::project::require_project;

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
    Failure::of(e, code)
}

/// The exit status each install failure has always had.
fn install_failure(e: &InstallError) -> Failure {
    match e {
        InstallError::Package(e) => fail(e),
        InstallError::Config(_) => Failure::of(e, exit::LOAD),
        InstallError::Write { .. } => Failure::of(e, exit::FAILED),
        InstallError::InvalidId(_)
        | InstallError::Taken(_)
        | InstallError::UnknownAgent(_)
        | InstallError::NotInstalled(_) => Failure::of(e, exit::USAGE),
    }
}

fn sandbox(config: SandboxConfig) -> Result<Sandbox, Failure> {
    Sandbox::new(config).map_err(|e| Failure::of(&e, exit::LOAD))
}

/// The package of the project agent `name`.
async fn package_of(name: &str, config: SandboxConfig) -> Result<Package, Failure> {
    let project = require_project()?;
    let sandbox = sandbox(config)?;
    let spec = project
        .agent(name)
        .ok_or_else(|| install_failure(&InstallError::UnknownAgent(name.to_string())))?;
    install::package(&project, spec, &sandbox)
        .await
        .map_err(|e| fail(&e))
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
    let url = oci::push(reference, &package).await.map_err(|e| fail(&e))?;
    let m = &package.manifest;
    println!(
        "published {} {} ({}) to {}",
        m.id, m.version, m.component.digest, args.reference
    );
    println!("  {url}");
    Ok(exit::OK)
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

pub async fn install(args: InstallArgs, config: SandboxConfig) -> Outcome {
    let project = require_project()?;
    let sandbox = sandbox(config)?;
    let installer = Installer::new(&project, &sandbox);
    let Some(source) = args.source else {
        let restored = installer
            .restore(|r| match r {
                Restored::InPlace(l) => println!("{} {} is in place", l.id, l.version),
                Restored::Fetched(l) => println!(
                    "restored {} {} ({}) from {}",
                    l.id, l.version, l.digest, l.source
                ),
            })
            .await
            .map_err(|e| install_failure(&e))?;
        if restored.is_empty() {
            println!("nothing to restore: {LOCK_FILE} lists no installed agents");
        }
        return Ok(exit::OK);
    };
    let prepared = installer
        .prepare(Source::parse(&source), args.alias)
        .await
        .map_err(|e| install_failure(&e))?;
    let m = &prepared.package.manifest;
    let asked = m.grants.describe();
    println!("{} {}: {}", m.id, m.version, m.description);
    if prepared.plain {
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
        if !args.yes && !consent(&prepared.id, &asked) {
            return Err(report(
                ErrorCode::CapabilityDenied,
                &format!(
                    "{} was not installed: it asks for grants, pass --yes to grant them (nothing was changed)",
                    prepared.id
                ),
                exit::USAGE,
            ));
        }
    }
    let locked = installer
        .install(&prepared)
        .map_err(|e| install_failure(&e))?;
    println!(
        "installed {} {} ({}) from {}",
        locked.id, locked.version, locked.digest, locked.source
    );
    Ok(exit::OK)
}

pub fn uninstall(args: UninstallArgs) -> Outcome {
    let project = require_project()?;
    let locked = install::uninstall(&project, &args.agent).map_err(|e| install_failure(&e))?;
    println!("uninstalled {} {}", locked.id, locked.version);
    Ok(exit::OK)
}

pub async fn agents(command: AgentsCommand, config: SandboxConfig) -> Outcome {
    let AgentsCommand::List { json } = command;
    let project = require_project()?;
    let sandbox = sandbox(config)?;
    let lock = Lockfile::load(&project.root).map_err(|e| fail(&e))?;
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
        let from = match locked {
            Some(l) => format!("installed from {}", l.source),
            None => {
                let path = spec.source.path();
                format!(
                    "{} {}",
                    spec.source.key(),
                    path.strip_prefix(&project.root).unwrap_or(path).display()
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
