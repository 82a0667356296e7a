//! `orchestr8.lock`: the agents a project installed, each pinned to its
//! source, version and component digest, so `orchestr8 install` restores
//! exactly them on another machine. Commit it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::PackageError;

/// The lockfile's name, next to `orchestr8.toml`.
pub const LOCK_FILE: &str = "orchestr8.lock";
const HEADER: &str = "# Written by `orchestr8 install`: the installed agents, pinned. Commit it;\n# `orchestr8 install` with no argument restores exactly these.\n";

/// The lockfile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    /// The format version, 1.
    pub version: u32,
    /// The installed agents, by id.
    #[serde(default, rename = "agent")]
    pub agents: Vec<LockedAgent>,
}

impl Default for Lockfile {
    fn default() -> Self {
        Lockfile {
            version: 1,
            agents: Vec::new(),
        }
    }
}

/// One installed agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedAgent {
    /// The id the project uses.
    pub id: String,
    /// The id the package has (differs under `--as`).
    pub package: String,
    /// The package's version.
    pub version: String,
    /// Where it came from (a path, URL or `oci://` reference).
    pub source: String,
    /// `sha256:<hex>` of the component.
    pub digest: String,
    /// Where the component is kept, relative to the project.
    pub component: String,
}

impl Lockfile {
    /// The project's lockfile; empty when there is none.
    pub fn load(root: &Path) -> Result<Lockfile, PackageError> {
        let path = root.join(LOCK_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lockfile::default()),
            Err(e) => {
                return Err(PackageError::Io(format!(
                    "cannot read `{}`: {e}",
                    path.display()
                )));
            }
        };
        let lock: Lockfile = toml::from_str(&text).map_err(|e| PackageError::InvalidManifest {
            origin: path.display().to_string(),
            reason: e.to_string(),
        })?;
        if lock.version != 1 {
            return Err(PackageError::InvalidManifest {
                origin: path.display().to_string(),
                reason: format!("version {} is not 1", lock.version),
            });
        }
        Ok(lock)
    }

    /// Writes it next to `orchestr8.toml`.
    pub fn save(&self, root: &Path) -> Result<(), PackageError> {
        let path = root.join(LOCK_FILE);
        let text = toml::to_string(self)
            .map_err(|e| PackageError::Io(format!("cannot write `{}`: {e}", path.display())))?;
        std::fs::write(&path, format!("{HEADER}\n{text}"))
            .map_err(|e| PackageError::Io(format!("cannot write `{}`: {e}", path.display())))
    }

    /// The entry of `id`.
    pub fn get(&self, id: &str) -> Option<&LockedAgent> {
        self.agents.iter().find(|a| a.id == id)
    }

    /// Adds or replaces the entry of `agent.id`, keeping the list sorted.
    pub fn upsert(&mut self, agent: LockedAgent) {
        self.agents.retain(|a| a.id != agent.id);
        self.agents.push(agent);
        self.agents.sort_by(|a, b| a.id.cmp(&b.id));
    }

    /// Removes the entry of `id`; whether there was one.
    pub fn remove(&mut self, id: &str) -> bool {
        let before = self.agents.len();
        self.agents.retain(|a| a.id != id);
        self.agents.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lockfile_round_trips_and_a_missing_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Lockfile::load(dir.path()).unwrap(), Lockfile::default());
        let mut lock = Lockfile::default();
        lock.upsert(LockedAgent {
            id: "@a/b".into(),
            package: "@a/b".into(),
            version: "1.0.0".into(),
            source: "oci://127.0.0.1:5000/a/b:1.0.0".into(),
            digest: "sha256:00".into(),
            component: ".orchestr8/installed/a.b-1.0.0.wasm".into(),
        });
        lock.save(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert!(text.starts_with("# Written by"), "{text}");
        assert!(text.contains("[[agent]]"), "{text}");
        assert_eq!(Lockfile::load(dir.path()).unwrap(), lock);
        assert!(lock.remove("@a/b"));
        assert!(!lock.remove("@a/b"));
    }

    #[test]
    fn a_broken_lockfile_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "version = 2\n").unwrap();
        let e = Lockfile::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("orchestr8.lock") && e.contains("version 2"),
            "{e}"
        );
    }
}
