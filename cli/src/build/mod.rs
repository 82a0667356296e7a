//! `orchestr8 build`: compiles the project's agent crates, Python and
//! TypeScript agents to WebAssembly components, puts them where the host
//! loads them and pre-compiles them into the host's cache.

mod python;
mod typescript;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::Args;
use orchestr8_host::ErrorCode;
use orchestr8_host::project::{AgentSource, AgentSpec, Project};
use orchestr8_host::sandbox::{Sandbox, SandboxConfig, default_cache_dir};
use serde_json::Value;

use crate::error::{Failure, Outcome, exit, report};
use crate::output;
use crate::project::require_project;
use crate::scaffold::{self, PY_SDK_DIR, SDK_DIR, TS_SDK_DIR};
use python::PythonToolchain;
use typescript::TypeScriptToolchain;

/// The Rust target agents are compiled for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

#[derive(Args)]
pub struct BuildArgs {
    /// Agents to build, by id (`@demo/greeter`) or name (`greeter`) [default: all]
    agents: Vec<String>,
    /// Print what was built as JSON.
    #[arg(long)]
    json: bool,
    /// Where the pinned toolchains for Python agents (componentize-py) and
    /// TypeScript agents (ComponentizeJS, esbuild, TypeScript) are installed
    /// on first use [default: ~/.cache/orchestr8/toolchains]
    #[arg(long, env = "ORCHESTR8_TOOLCHAINS_DIR", value_name = "DIR")]
    toolchains_dir: Option<PathBuf>,
}

pub async fn build(args: BuildArgs, config: SandboxConfig) -> Outcome {
    let project = require_project()?;
    let selected: Vec<&AgentSpec> = if args.agents.is_empty() {
        project.agents.values().collect()
    } else {
        let mut chosen = Vec::new();
        for name in &args.agents {
            match project.agent(name) {
                Some(spec) => chosen.push(spec),
                None => {
                    let known: Vec<&str> = project.agents.keys().map(String::as_str).collect();
                    return Err(report(
                        ErrorCode::AgentNotFound,
                        &format!(
                            "no agent `{name}` in orchestr8.toml (it has: {}); add one with `orchestr8 create {name}`",
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                        exit::USAGE,
                    ));
                }
            }
        }
        chosen
    };
    if selected.is_empty() {
        return Err(report(
            ErrorCode::AgentNotFound,
            "orchestr8.toml lists no agents: add one with `orchestr8 create <name>`",
            exit::USAGE,
        ));
    }
    let built = build_agents(&project, &selected, args.toolchains_dir.clone(), config).await?;
    if args.json {
        let list: Vec<Value> = built.iter().map(Built::to_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&Value::from(list)).unwrap_or_default()
        );
    } else {
        for b in &built {
            let shown = b
                .component
                .strip_prefix(&project.root)
                .unwrap_or(&b.component);
            println!(
                "built {} {} → {} (sha256:{})",
                b.id,
                b.version,
                shown.display(),
                &b.digest[..12.min(b.digest.len())]
            );
        }
    }
    Ok(exit::OK)
}

/// One agent `build_agents` made.
pub struct Built {
    pub id: String,
    pub version: String,
    pub component: PathBuf,
    pub digest: String,
}

impl Built {
    fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "version": self.version,
            "component": self.component,
            "digest": format!("sha256:{}", self.digest),
        })
    }
}

/// Rebuilds the agents of the project whose sources changed since their
/// component was built, before a command runs them: saying so, and, when
/// one no longer builds, refusing with what to do. With `skip` it only
/// warns that the last build runs.
pub async fn rebuild_stale(
    project: &Project,
    only: Option<&BTreeSet<String>>,
    skip: bool,
    config: SandboxConfig,
) -> Result<(), Failure> {
    let mut stale = project.stale_agents();
    stale.retain(|s| only.is_none_or(|only| only.contains(&s.id)));
    if stale.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = stale.iter().map(|s| s.id.as_str()).collect();
    if skip {
        output::warning(&format!(
            "{} changed since {} last build; running the last build (--no-build)",
            names.join(", "),
            if names.len() == 1 { "its" } else { "their" }
        ));
        return Ok(());
    }
    output::notice(&format!(
        "rebuilding {} (changed since the last build)…",
        names.join(", ")
    ));
    build_agents(project, &stale, None, config)
        .await
        .map(drop)
        .map_err(|f| Failure {
            message: format!(
                "{}\n{} changed since {} last build and does not build now: fix it, or pass --no-build to run the last good build",
                f.message,
                names.join(", "),
                if names.len() == 1 { "its" } else { "their" }
            ),
            ..f
        })
}

/// Builds `selected`: toolchains installed on first use, each component
/// placed where the host loads it, compiled into the cache, and its id
/// checked against `orchestr8.toml`.
pub async fn build_agents(
    project: &Project,
    selected: &[&AgentSpec],
    toolchains_dir: Option<PathBuf>,
    config: SandboxConfig,
) -> Result<Vec<Built>, Failure> {
    let crates: Vec<&AgentSpec> = selected
        .iter()
        .copied()
        .filter(|s| matches!(s.source, AgentSource::Crate(_)))
        .collect();
    if !crates.is_empty() {
        restore_sdk(project)?;
        ensure_target(&project.root)?;
    }
    let toolchains = toolchains_dir
        .or_else(|| default_cache_dir()?.parent().map(|d| d.join("toolchains")))
        .unwrap_or_else(|| project.state_dir().join("toolchains"));
    let uses = |f: fn(&AgentSource) -> bool| selected.iter().any(|s| f(&s.source));
    let python = if uses(|s| matches!(s, AgentSource::Python(_))) {
        refresh_sdk(project, "Python", PY_SDK_DIR, &scaffold::python_sdk_files())?;
        Some(PythonToolchain::ensure(&toolchains)?)
    } else {
        None
    };
    let typescript = if uses(|s| matches!(s, AgentSource::TypeScript(_))) {
        refresh_sdk(
            project,
            "TypeScript",
            TS_SDK_DIR,
            &scaffold::typescript_sdk_files(),
        )?;
        Some(TypeScriptToolchain::ensure(&toolchains)?)
    } else {
        None
    };
    let sandbox = Sandbox::new(config).map_err(|e| Failure::of(&e, exit::LOAD))?;
    let mut built = Vec::new();
    for &spec in selected {
        let path = project.component_path(spec);
        match (&spec.source, &python, &typescript) {
            (AgentSource::Crate(dir), _, _) => {
                let _held = lock_target();
                let artifact = cargo_build(&project.root, dir, &spec.id)?;
                place(&artifact, &path)?;
            }
            (AgentSource::Python(dir), Some(toolchain), _) => {
                toolchain.build(&project.root, dir, &spec.id, &path)?;
            }
            (AgentSource::TypeScript(dir), _, Some(toolchain)) => {
                toolchain.build(&project.root, dir, &spec.id, &path)?;
            }
            _ => {}
        }
        let agent = sandbox
            .load(&path)
            .await
            .map_err(|e| Failure::of(&e, exit::LOAD))?;
        if agent.info().id != spec.component_id {
            return Err(report(
                ErrorCode::InvalidAgent,
                &format!(
                    "the agent built from `{}` says it is `{}`, but orchestr8.toml registers it as `{}`: change its `ID` or the key in orchestr8.toml",
                    source_display(project, spec),
                    agent.info().id,
                    spec.id
                ),
                exit::LOAD,
            ));
        }
        built.push(Built {
            id: spec.id.clone(),
            version: agent.info().version.clone(),
            component: path,
            digest: agent.digest().to_string(),
        });
    }
    Ok(built)
}

fn source_display(project: &Project, spec: &AgentSpec) -> String {
    let path = spec.source.path();
    path.strip_prefix(&project.root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Keeps a vendored Python or TypeScript SDK at this CLI's version: writes
/// it when it is missing (a fresh clone that git-ignored `vendor/`) or when
/// another orchestr8 wrote it.
fn refresh_sdk(
    project: &Project,
    language: &str,
    dir: &str,
    files: &[scaffold::FileToWrite],
) -> Result<(), Failure> {
    let written = scaffold::refresh_files(&project.root, files)?;
    if written > 0 {
        output::notice(&format!(
            "wrote the {language} agent SDK of this orchestr8 into {dir} ({written} file{})",
            if written == 1 { "" } else { "s" }
        ));
    }
    Ok(())
}

/// Writes the vendored SDK back when it is missing (a fresh clone of a
/// project that git-ignored `vendor/`, or a deleted folder).
fn restore_sdk(project: &Project) -> Result<(), Failure> {
    if project.root.join(SDK_DIR).join("Cargo.toml").is_file() {
        return Ok(());
    }
    let uses_sdk = project.agents.values().any(|a| match &a.source {
        AgentSource::Crate(dir) => {
            std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|t| t.contains(SDK_DIR))
        }
        AgentSource::Python(_) | AgentSource::TypeScript(_) | AgentSource::Component(_) => false,
    });
    if uses_sdk {
        output::notice(&format!("restoring the agent SDK in {SDK_DIR}"));
        scaffold::write_files(&project.root, &scaffold::sdk_files(), true)?;
    }
    Ok(())
}

/// Installs the `wasm32-wasip2` target with rustup when it is missing.
fn ensure_target(root: &Path) -> Result<(), Failure> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output();
    let Ok(installed) = installed else {
        // No rustup: a toolchain managed otherwise; cargo will say if the
        // target is missing.
        return Ok(());
    };
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == WASM_TARGET)
    {
        return Ok(());
    }
    output::notice(&format!(
        "installing the Rust target {WASM_TARGET} (rustup target add {WASM_TARGET})…"
    ));
    let status = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .current_dir(root)
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        _ => Err(report(
            ErrorCode::Internal,
            &format!(
                "cannot install the {WASM_TARGET} target: run `rustup target add {WASM_TARGET}` and try again"
            ),
            exit::FAILED,
        )),
    }
}

/// One cargo target directory for the agents of every project of this user
/// (`~/.cache/orchestr8/agent-target`), so that a new project's first build
/// reuses the dependencies (the SDK's serde, wit-bindgen, …) an earlier
/// project compiled, instead of taking minutes again. A `CARGO_TARGET_DIR`
/// of the user's own wins.
fn shared_target_dir() -> Option<PathBuf> {
    if std::env::var_os("CARGO_TARGET_DIR").is_some() {
        return None;
    }
    Some(default_cache_dir()?.parent()?.join("agent-target"))
}

/// The target directory agent crates build in when it is shared between
/// projects (as given by `CARGO_TARGET_DIR`, or the per-user one).
fn agents_target_dir() -> Option<PathBuf> {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(shared_target_dir)
}

/// Cargo keys a path crate's build by its path relative to its workspace,
/// so `agents/hello` of two projects is one unit in a shared target
/// directory, whose freshness cargo would judge by the other project's
/// sources, and whose `.wasm` would be the other project's. So the project
/// that last built a crate of this name there is written down, and when it
/// was another, the crate (only it: its dependencies stay) is cleaned
/// before it builds. Called with the target directory locked.
fn claim_crate(root: &Path, manifest: &Path) -> Option<PathBuf> {
    let target = agents_target_dir()?;
    let name = std::fs::read_to_string(manifest)
        .ok()
        .and_then(|text| text.parse::<toml_edit::DocumentMut>().ok())
        .and_then(|doc| doc["package"]["name"].as_str().map(str::to_string));
    // Without a name cargo will say what is wrong with the manifest.
    let name = name?;
    let marker = target.join(".orchestr8-owners").join(&name);
    let ours = std::fs::canonicalize(manifest).unwrap_or_else(|_| manifest.to_path_buf());
    let last = std::fs::read_to_string(&marker).ok();
    if last.as_deref() != Some(&*ours.to_string_lossy()) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let cleaned = Command::new(cargo)
            .env("CARGO_TARGET_DIR", &target)
            .args([
                "clean",
                "--release",
                "--quiet",
                "--target",
                WASM_TARGET,
                "-p",
                &name,
            ])
            .arg("--manifest-path")
            .arg(manifest)
            .current_dir(root)
            .status();
        if !cleaned.is_ok_and(|s| s.success()) {
            tracing::warn!(crate_name = %name, "could not clean the crate's last build by another project");
        }
    }
    Some(marker)
}

/// Notes that the crate of `marker` was last built for `manifest`.
fn mark_owner(marker: &Path, manifest: &Path) {
    let ours = std::fs::canonicalize(manifest).unwrap_or_else(|_| manifest.to_path_buf());
    if let Some(dir) = marker.parent()
        && std::fs::create_dir_all(dir).is_ok()
    {
        let _ = std::fs::write(marker, ours.to_string_lossy().as_bytes());
    }
}

/// Holds the agents' target directory through one build and its copy.
/// Crates of the same name from two projects share `release/<name>.wasm`
/// there, so another `orchestr8 build` must not replace it between cargo
/// and the copy. Best effort: without a lock the build still runs.
fn lock_target() -> Option<std::fs::File> {
    let dir = agents_target_dir()?;
    std::fs::create_dir_all(&dir).ok()?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(dir.join(".orchestr8-build.lock"))
        .ok()?;
    file.lock().ok()?;
    Some(file)
}

/// Runs cargo for one crate, its diagnostics shown as cargo prints them, and
/// returns the `.wasm` it produced.
fn cargo_build(root: &Path, dir: &Path, id: &str) -> Result<PathBuf, Failure> {
    let manifest = dir.join("Cargo.toml");
    let marker = claim_crate(root, &manifest);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    if let Some(shared) = shared_target_dir() {
        command.env("CARGO_TARGET_DIR", shared);
    }
    let child = command
        .args(["build", "--release", "--target", WASM_TARGET])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn();
    let mut child = child.map_err(|e| {
        report(
            ErrorCode::Internal,
            &format!("cannot run cargo: {e}; install Rust with rustup (https://rustup.rs)"),
            exit::FAILED,
        )
    })?;
    let wanted = std::fs::canonicalize(&manifest).unwrap_or(manifest.clone());
    let mut artifact = None;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Ok(msg) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let ours = msg["manifest_path"]
                .as_str()
                .is_some_and(|p| std::fs::canonicalize(p).is_ok_and(|p| p == wanted));
            if msg["reason"] == "compiler-artifact" && ours {
                artifact = msg["filenames"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .find(|f| f.ends_with(".wasm"))
                    .map(PathBuf::from)
                    .or(artifact);
            }
        }
    }
    let status = child.wait().map_err(|e| {
        report(
            ErrorCode::Internal,
            &format!("cargo did not finish: {e}"),
            exit::FAILED,
        )
    })?;
    if !status.success() {
        return Err(report(
            ErrorCode::InvalidAgent,
            &format!("building `{id}` failed: see cargo's output above"),
            exit::FAILED,
        ));
    }
    if let Some(marker) = marker {
        mark_owner(&marker, &manifest);
    }
    artifact.ok_or_else(|| {
        report(
            ErrorCode::InvalidAgent,
            &format!(
                "`{}` built no .wasm: its Cargo.toml needs `[lib] crate-type = [\"cdylib\"]`",
                manifest.display()
            ),
            exit::FAILED,
        )
    })
}

/// Copies the artifact to where the host loads it, atomically.
fn place(artifact: &Path, path: &Path) -> Result<(), Failure> {
    let fail = |e: std::io::Error| {
        report(
            ErrorCode::Internal,
            &format!("cannot write `{}`: {e}", path.display()),
            exit::FAILED,
        )
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let tmp = path.with_extension("wasm.tmp");
    std::fs::copy(artifact, &tmp).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}
