//! TypeScript agents: type-checked, bundled (esbuild) and made components
//! by ComponentizeJS, all pinned (`agent-sdk/typescript/toolchain`, with its
//! package-lock.json), installed with `npm ci` on first use into a toolchain
//! directory of its own, so nothing is installed globally.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use orchestr8_host::ErrorCode;
use orchestr8_host::project::TYPESCRIPT_ENTRY;

use crate::error::{Failure, exit, report};
use crate::output;
use crate::scaffold::{TS_SDK_DIR, TS_TOOLCHAIN_FILES};

/// The oldest Node.js the pinned packages run on.
const MIN_NODE_MAJOR: u32 = 20;
/// Written after a complete install: a copy of the lockfile installed.
const INSTALLED_MARKER: &str = "installed-lock.json";

/// An installed toolchain: its folder holds `build.mjs` and `node_modules`.
pub struct TypeScriptToolchain {
    home: PathBuf,
}

impl TypeScriptToolchain {
    /// The toolchain under `dir` (one folder per ComponentizeJS version),
    /// installed with the machine's Node.js and npm (packages from the npm
    /// registry) when missing.
    pub fn ensure(dir: &Path) -> Result<TypeScriptToolchain, Failure> {
        let file = |name: &str| {
            TS_TOOLCHAIN_FILES
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("", |(_, text)| *text)
        };
        let lock = file("package-lock.json");
        let version = serde_json::from_str::<serde_json::Value>(file("package.json"))
            .ok()
            .and_then(|p| {
                p["dependencies"]["@bytecodealliance/componentize-js"]
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "pinned".into());
        let home = dir.join(format!("componentize-js-{version}"));
        let installed = std::fs::read_to_string(home.join(INSTALLED_MARKER))
            .is_ok_and(|l| l == lock)
            && home.join("node_modules").is_dir();
        if !installed {
            check_node()?;
            output::notice(&format!(
                "installing the TypeScript agent toolchain (ComponentizeJS {version}) into {}…",
                home.display()
            ));
            let _ = std::fs::remove_dir_all(&home);
            write(&home, "package.json", file("package.json"))?;
            write(&home, "package-lock.json", lock)?;
            let npm = Command::new("npm")
                .args([
                    "ci",
                    "--ignore-scripts",
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                ])
                .current_dir(&home)
                .stdout(Stdio::null())
                .status();
            if !npm.is_ok_and(|s| s.success()) {
                return Err(failed(
                    "installing the TypeScript toolchain with `npm ci` failed (see its output above); it needs the npm registry",
                ));
            }
            write(&home, INSTALLED_MARKER, lock)?;
        }
        // The build script is ours, not npm's: always the one this CLI knows.
        let script = file("build.mjs");
        if std::fs::read_to_string(home.join("build.mjs"))
            .ok()
            .as_deref()
            != Some(script)
        {
            write(&home, "build.mjs", script)?;
        }
        Ok(TypeScriptToolchain { home })
    }

    /// Builds the agent in `dir` (its `agent.ts`, with the project's
    /// vendored SDK) into the component `out`, atomically.
    pub fn build(&self, root: &Path, dir: &Path, id: &str, out: &Path) -> Result<(), Failure> {
        let sdk = root.join(TS_SDK_DIR);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| failed(&format!("cannot create `{}`: {e}", parent.display())))?;
        }
        let status = Command::new("node")
            .arg(self.home.join("build.mjs"))
            .arg("--entry")
            .arg(dir.join(TYPESCRIPT_ENTRY))
            .arg("--sdk")
            .arg(&sdk)
            .arg("--wit")
            .arg(sdk.join("wit"))
            .arg("--out")
            .arg(out)
            .current_dir(root)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => node_missing(),
                _ => failed(&format!("cannot run node: {e}")),
            })?;
        if !status.success() {
            return Err(report(
                ErrorCode::InvalidAgent,
                &format!("building `{id}` failed: see the errors above"),
                exit::FAILED,
            ));
        }
        Ok(())
    }
}

fn node_missing() -> Failure {
    failed(&format!(
        "building TypeScript agents needs Node.js {MIN_NODE_MAJOR} or newer with npm (https://nodejs.org, or your system's packages): install it and try again"
    ))
}

/// Node.js and npm present, and new enough.
fn check_node() -> Result<(), Failure> {
    let out = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|_| node_missing())?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let major = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    if major.is_none_or(|m| m < MIN_NODE_MAJOR) {
        return Err(failed(&format!(
            "building TypeScript agents needs Node.js {MIN_NODE_MAJOR} or newer; this machine has {}",
            if version.is_empty() {
                "an unknown version"
            } else {
                &version
            }
        )));
    }
    let npm = Command::new("npm")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    if !npm.is_ok_and(|s| s.success()) {
        return Err(node_missing());
    }
    Ok(())
}

fn write(home: &Path, name: &str, text: &str) -> Result<(), Failure> {
    std::fs::create_dir_all(home)
        .and_then(|()| std::fs::write(home.join(name), text))
        .map_err(|e| failed(&format!("cannot write into `{}`: {e}", home.display())))
}

fn failed(message: &str) -> Failure {
    report(ErrorCode::Internal, message, exit::FAILED)
}
