//! Agent packages: an agent built in one repository, installed into another.
//!
//! A package is a component plus a manifest ([`PackageManifest`]): what the
//! agent is (id, version, description, WIT world, schemas), what it asks to
//! be granted, its default limits and config, and the SHA-256 digest of the
//! component. [`Package::verify`] checks the digest and loads the component
//! to check that the manifest tells the truth about it, so a package cannot
//! lie about what it is. Packages travel as two files side by side (a
//! directory or an `http(s)://` location, see [`source`]) or as an OCI
//! artifact in the wasm convention (see [`oci`]). A plain component (a
//! `.wasm` file, or an OCI artifact published the standard way, as `wkg`
//! does, with no orchestr8 manifest) is accepted too: what it is comes from
//! its own `info`, and it asks for no grants ([`Fetched`]). Installed agents
//! are recorded with source, version and digest in `orchestr8.lock`
//! ([`lock`]).

pub mod install;
pub mod lock;
mod manifest;
pub mod oci;
pub mod source;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use manifest::{
    ComponentRef, FORMAT, PackageManifest, PackagedLimits, RequestedDir, RequestedGrants, WORLD,
    digest, file_stem,
};

use crate::error::{Coded, ErrorCode};
use crate::sandbox::{LoadError, LoadedAgent, Sandbox};

/// Why a package cannot be made, fetched or trusted.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The source could not be read.
    #[error("cannot fetch the package from {origin}: {reason}")]
    Unreachable {
        /// The source, as given.
        origin: String,
        /// What went wrong.
        reason: String,
    },
    /// The component is not the one the manifest (or lockfile) names.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Which component.
        what: String,
        /// The digest the manifest or lockfile records.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// The manifest says something the component contradicts.
    #[error(
        "the manifest does not match the component: it says {field} is {claimed}, the component says {actual}"
    )]
    Mismatch {
        /// The field.
        field: &'static str,
        /// What the manifest says.
        claimed: String,
        /// What the component says.
        actual: String,
    },
    /// The manifest is not a valid package manifest.
    #[error("invalid package manifest ({origin}): {reason}")]
    InvalidManifest {
        /// Where it came from.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// The component does not load.
    #[error("the package's component does not load: {0}")]
    Load(#[from] LoadError),
    /// The source holds something else than an agent package or component.
    #[error("{origin} is not an agent: {reason}")]
    NotAnAgent {
        /// The source, as given.
        origin: String,
        /// What it holds instead.
        reason: String,
    },
    /// The agent to package has no component to read.
    #[error("cannot read the component of `{id}` at `{}` ({reason}): run `orchestr8 build` first", .path.display())]
    NotBuilt {
        /// The agent.
        id: String,
        /// Where its component should be.
        path: PathBuf,
        /// Why it cannot be read.
        reason: String,
    },
    /// A local file could not be read or written.
    #[error("{0}")]
    Io(String),
}

impl PackageError {
    /// The source `origin` could not be read, because of `reason`.
    pub fn unreachable(origin: impl std::fmt::Display, reason: impl std::fmt::Display) -> Self {
        PackageError::Unreachable {
            origin: origin.to_string(),
            reason: reason.to_string(),
        }
    }
}

impl Coded for PackageError {
    fn code(&self) -> ErrorCode {
        match self {
            PackageError::Unreachable { .. } => ErrorCode::NotFound,
            PackageError::DigestMismatch { .. } | PackageError::Mismatch { .. } => {
                ErrorCode::InvalidAgent
            }
            PackageError::InvalidManifest { .. } => ErrorCode::InvalidConfig,
            PackageError::NotAnAgent { .. } => ErrorCode::InvalidInput,
            PackageError::NotBuilt { .. } => ErrorCode::AgentNotFound,
            PackageError::Load(e) => e.code(),
            PackageError::Io(_) => ErrorCode::Internal,
        }
    }
}

/// The largest component accepted from a source.
pub const MAX_COMPONENT_BYTES: usize = 256 * 1024 * 1024;
/// The largest manifest accepted from a source.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// What a source holds: a package, or a plain component.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// A component with its manifest.
    Package(Box<Package>),
    /// A component alone: its manifest is read off its own `info`.
    Component {
        /// Its bytes.
        bytes: Vec<u8>,
        /// Where it came from (a file name, for errors and the manifest).
        origin: String,
    },
}

impl Fetched {
    /// The component's bytes.
    pub fn component(&self) -> &[u8] {
        match self {
            Fetched::Package(p) => &p.component,
            Fetched::Component { bytes, .. } => bytes,
        }
    }

    /// Whether it came without a manifest.
    pub fn is_plain(&self) -> bool {
        matches!(self, Fetched::Component { .. })
    }

    /// Checks and loads it: a package against its manifest ([`Package::verify`]);
    /// a plain component is loaded, and its manifest is what it says of
    /// itself, with no grants asked for, the sandbox's default limits and
    /// no config.
    pub async fn verify(self, sandbox: &Sandbox) -> Result<(Package, LoadedAgent), PackageError> {
        match self {
            Fetched::Package(package) => {
                let agent = package.verify(sandbox).await?;
                Ok((*package, agent))
            }
            Fetched::Component { bytes, origin } => {
                let agent = sandbox.load_bytes(bytes.clone(), origin).await?;
                let package = Package::build(
                    &agent,
                    bytes,
                    RequestedGrants::default(),
                    PackagedLimits::default(),
                    Value::Object(Default::default()),
                );
                Ok((package, agent))
            }
        }
    }
}

/// A package in memory.
#[derive(Debug, Clone)]
pub struct Package {
    /// What it says it is.
    pub manifest: PackageManifest,
    /// The component's bytes.
    pub component: Vec<u8>,
}

impl Package {
    /// Packages `agent` (loaded from `component`) with what it asks for.
    pub fn build(
        agent: &LoadedAgent,
        component: Vec<u8>,
        grants: RequestedGrants,
        limits: PackagedLimits,
        config: Value,
    ) -> Package {
        let info = agent.info();
        let stem = file_stem(&info.id, &info.version);
        Package {
            manifest: PackageManifest {
                format: FORMAT.into(),
                id: info.id.clone(),
                version: info.version.clone(),
                description: info.description.clone(),
                world: WORLD.into(),
                input_schema: info.input_schema.clone(),
                output_schema: info.output_schema.clone(),
                grants,
                limits,
                config,
                component: ComponentRef {
                    file: format!("{stem}.wasm"),
                    digest: digest(&component),
                    size: component.len() as u64,
                },
            },
            component,
        }
    }

    /// Reads a manifest's text, checking its format.
    pub fn parse_manifest(text: &[u8], origin: &str) -> Result<PackageManifest, PackageError> {
        let invalid = |reason: String| PackageError::InvalidManifest {
            origin: origin.to_string(),
            reason,
        };
        let manifest: PackageManifest =
            serde_json::from_slice(text).map_err(|e| invalid(e.to_string()))?;
        if manifest.format != FORMAT {
            return Err(invalid(format!(
                "format `{}` is not `{FORMAT}`",
                manifest.format
            )));
        }
        let file = &manifest.component.file;
        if file.is_empty() || file.contains(['/', '\\']) || file.starts_with('.') {
            return Err(invalid(format!(
                "component file `{file}` must be a plain file name"
            )));
        }
        Ok(manifest)
    }

    /// Checks the component against the digest, then loads it in `sandbox`
    /// and checks that everything the manifest says about it is true.
    pub async fn verify(&self, sandbox: &Sandbox) -> Result<LoadedAgent, PackageError> {
        let m = &self.manifest;
        let actual = digest(&self.component);
        if actual != m.component.digest {
            return Err(PackageError::DigestMismatch {
                what: format!("{} {}", m.id, m.version),
                expected: m.component.digest.clone(),
                actual,
            });
        }
        if m.world != WORLD {
            return Err(PackageError::Mismatch {
                field: "world",
                claimed: m.world.clone(),
                actual: WORLD.into(),
            });
        }
        let agent = sandbox
            .load_bytes(self.component.clone(), m.component.file.clone())
            .await?;
        let info = agent.info();
        let checks: [(&'static str, Value, Value); 5] = [
            ("id", m.id.clone().into(), info.id.clone().into()),
            (
                "version",
                m.version.clone().into(),
                info.version.clone().into(),
            ),
            (
                "description",
                m.description.clone().into(),
                info.description.clone().into(),
            ),
            (
                "inputSchema",
                m.input_schema.clone(),
                info.input_schema.clone(),
            ),
            (
                "outputSchema",
                m.output_schema.clone(),
                info.output_schema.clone(),
            ),
        ];
        for (field, claimed, actual) in checks {
            if claimed != actual {
                let show = |v: &Value| {
                    let text = v.to_string();
                    if text.len() > 120 {
                        format!("{}…", text.chars().take(120).collect::<String>())
                    } else {
                        text
                    }
                };
                return Err(PackageError::Mismatch {
                    field,
                    claimed: show(&claimed),
                    actual: show(&actual),
                });
            }
        }
        Ok(agent)
    }

    /// Writes the manifest and the component into `dir`; returns the
    /// manifest's path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, PackageError> {
        let io = |path: &Path, e: std::io::Error| {
            PackageError::Io(format!("cannot write `{}`: {e}", path.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let component = dir.join(&self.manifest.component.file);
        std::fs::write(&component, &self.component).map_err(|e| io(&component, e))?;
        let manifest = dir.join(format!(
            "{}.agent.json",
            file_stem(&self.manifest.id, &self.manifest.version)
        ));
        let text = serde_json::to_string_pretty(&self.manifest).unwrap_or_default() + "\n";
        std::fs::write(&manifest, text).map_err(|e| io(&manifest, e))?;
        Ok(manifest)
    }
}
