//! The `orchestr8.toml` file as written: serde types and parsing with errors
//! that name the file, line and key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use crate::sandbox::HostPattern;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Manifest {
    pub project: ProjectTable,
    #[serde(default)]
    pub agents: BTreeMap<String, AgentTable>,
}

/// `[project]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProjectTable {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// What of every agent's traffic is recorded for replay, unless the
    /// agent says otherwise.
    #[serde(default)]
    pub record: Option<crate::sandbox::Recording>,
}

/// `[agents."@scope/name"]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AgentTable {
    /// A Rust crate that `orchestr8 build` compiles.
    #[serde(rename = "crate")]
    pub crate_dir: Option<PathBuf>,
    /// A Python agent's directory (its `app.py`), built by `orchestr8 build`.
    pub python: Option<PathBuf>,
    /// A TypeScript agent's directory (its `agent.ts`), built by `orchestr8 build`.
    pub typescript: Option<PathBuf>,
    /// A prebuilt component.
    pub component: Option<PathBuf>,
    /// The id the component reports, when the project uses another
    /// (`orchestr8 install --as`).
    pub package: Option<String>,
    #[serde(default)]
    pub limits: LimitsTable,
    #[serde(default)]
    pub grants: GrantsTable,
    #[serde(default)]
    pub config: toml::Table,
    /// What of its traffic is recorded for replay: `"http"` (default) or
    /// `"off"` [default: the project's `record`].
    #[serde(default)]
    pub record: Option<crate::sandbox::Recording>,
}

/// `[agents."…".limits]`: every field optional, defaults from the host.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsTable {
    pub timeout_ms: Option<u64>,
    pub fuel: Option<u64>,
    pub memory_mb: Option<u64>,
    pub output_bytes: Option<u64>,
    pub log_bytes: Option<u64>,
    pub table_elements: Option<u64>,
    pub max_concurrency: Option<u32>,
}

/// `[agents."…".grants]`: everything denied unless listed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GrantsTable {
    #[serde(default)]
    pub allowed_hosts: Vec<HostPattern>,
    #[serde(default)]
    pub dirs: Vec<DirTable>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub secrets: Vec<String>,
}

/// One granted directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DirTable {
    /// On the host, relative to the project.
    pub host: PathBuf,
    /// Where the agent sees it.
    pub guest: String,
    #[serde(default)]
    pub writable: bool,
    /// Byte quota of a writable grant, in MiB.
    pub quota_mb: Option<u64>,
    /// File quota of a writable grant.
    pub quota_files: Option<u64>,
}

/// Parses TOML text into `T`, naming the file, line and key on failure.
pub(super) fn parse<T: serde::de::DeserializeOwned>(
    file: &Path,
    text: &str,
) -> Result<T, ConfigError> {
    let invalid = |key: Option<String>, e: &toml::de::Error| ConfigError::Invalid {
        file: file.to_path_buf(),
        key,
        line: e.span().map(|s| line_of(text, s.start)),
        reason: e.message().trim().to_string(),
    };
    let de = toml::Deserializer::parse(text).map_err(|e| invalid(None, &e))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let key = (key != ".").then_some(key);
        invalid(key, e.inner())
    })
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ConfigError {
        parse::<Manifest>(Path::new("orchestr8.toml"), text).unwrap_err()
    }

    #[test]
    fn an_unknown_key_is_named_with_its_path_and_line() {
        let e = err("[project]\nname = \"demo\"\n\n[agents.\"@demo/a\".limits]\nfule = 3\n");
        let text = e.to_string();
        assert!(text.contains("orchestr8.toml"), "{text}");
        assert!(text.contains("fule"), "{text}");
        assert!(text.contains("line 5"), "{text}");
        assert!(text.contains("agents.@demo/a.limits"), "{text}");
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let text = err("[project]\nname = \"demo\nx = 1\n").to_string();
        assert!(text.contains("line 2"), "{text}");
    }

    #[test]
    fn a_bad_host_pattern_says_why() {
        let text = err(
            "[project]\nname = \"d\"\n[agents.\"@d/a\"]\ncrate = \"a\"\n[agents.\"@d/a\".grants]\nallowed_hosts = [\"ftp://x\"]\n",
        )
        .to_string();
        assert!(text.contains("only http:// and https://"), "{text}");
        assert!(text.contains("allowed_hosts"), "{text}");
    }

    #[test]
    fn a_missing_project_table_is_named() {
        let text = err("[agents]\n").to_string();
        assert!(text.contains("project"), "{text}");
    }
}
