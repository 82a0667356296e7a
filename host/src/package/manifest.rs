//! The package manifest: what an agent package says it is and asks for.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The manifest format this host writes and reads.
pub const FORMAT: &str = "orchestr8-agent/1";
/// The WIT world every agent component targets.
pub const WORLD: &str = "orchestr8:agent/agent@0.1.0";

/// An agent package's manifest (`<name>-<version>.agent.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PackageManifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The agent's id, as its `info` reports it.
    pub id: String,
    /// Its version, as its `info` reports it.
    pub version: String,
    /// What it does, as its `info` reports it.
    pub description: String,
    /// The WIT world it targets ([`WORLD`]).
    pub world: String,
    /// JSON Schema of its input, as its `info` reports it.
    pub input_schema: Value,
    /// JSON Schema of its output, as its `info` reports it.
    pub output_schema: Value,
    /// What it needs granted to work.
    pub grants: RequestedGrants,
    /// Its default limits.
    pub limits: PackagedLimits,
    /// Its default config (an object).
    #[serde(default = "empty_object")]
    pub config: Value,
    /// The component file.
    pub component: ComponentRef,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// The grants a package asks for. Directories are asked for by guest path;
/// the installing project chooses where they are on its side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequestedGrants {
    /// Outbound hosts (`[scheme://]host[:port]`).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Directories, by guest path.
    #[serde(default)]
    pub dirs: Vec<RequestedDir>,
    /// Host environment variables.
    #[serde(default)]
    pub env: Vec<String>,
    /// Secrets, by name.
    #[serde(default)]
    pub secrets: Vec<String>,
}

impl RequestedGrants {
    /// Whether it asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.allowed_hosts.is_empty()
            && self.dirs.is_empty()
            && self.env.is_empty()
            && self.secrets.is_empty()
    }

    /// One line per grant, for people to consent to.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        lines.extend(
            self.allowed_hosts
                .iter()
                .map(|h| format!("outbound HTTP to {h}")),
        );
        lines.extend(self.dirs.iter().map(|d| {
            format!(
                "{} access to a directory mounted at {}",
                if d.writable {
                    "read-write"
                } else {
                    "read-only"
                },
                d.guest
            )
        }));
        lines.extend(
            self.env
                .iter()
                .map(|e| format!("the environment variable {e}")),
        );
        lines.extend(self.secrets.iter().map(|s| format!("the secret {s}")));
        lines
    }
}

/// A directory a package asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedDir {
    /// Where the agent sees it.
    pub guest: String,
    /// Whether it writes there.
    #[serde(default)]
    pub writable: bool,
}

/// A package's default limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PackagedLimits {
    /// Wall-clock deadline per invocation.
    pub timeout_ms: u64,
    /// Fuel per invocation.
    pub fuel: u64,
    /// Memory cap, in MiB.
    pub memory_mb: u64,
}

impl Default for PackagedLimits {
    /// The sandbox's default limits.
    fn default() -> Self {
        let limits = crate::sandbox::Limits::default();
        PackagedLimits {
            timeout_ms: limits.timeout_ms,
            fuel: limits.fuel,
            memory_mb: limits.memory_bytes.div_ceil(1024 * 1024),
        }
    }
}

/// The component of a package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentRef {
    /// Its file name, next to the manifest.
    pub file: String,
    /// `sha256:<hex>` of its bytes.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The file names of a package of `id` at `version`:
/// `orchestr8.context7-0.1.0.agent.json` and `….wasm`.
pub fn file_stem(id: &str, version: &str) -> String {
    format!("{}-{version}", id.trim_start_matches('@').replace('/', "."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_names_are_stable() {
        assert_eq!(
            digest(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            file_stem("@orchestr8/context7", "0.1.0"),
            "orchestr8.context7-0.1.0"
        );
    }
}
