//! Where granted secrets get their values: never from a workflow or
//! `orchestr8.toml`, only from the environment or a git-ignored file.

use std::collections::BTreeMap;
use std::path::Path;

use super::{ConfigError, manifest};
use crate::sandbox::SecretValue;

/// Secret values by name: the environment variable `ORCHESTR8_SECRET_<NAME>`
/// first, then the project's `.orchestr8/secrets.toml` (`name = "value"`).
#[derive(Default)]
pub struct Secrets {
    file: BTreeMap<String, String>,
    overrides: BTreeMap<String, String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("file", &self.file.keys().collect::<Vec<_>>())
            .field("overrides", &self.overrides.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The environment variable that holds secret `name`: upper case, with `-`,
/// `.` and `/` as `_` (`openai-key` → `ORCHESTR8_SECRET_OPENAI_KEY`).
pub fn secret_env_var(name: &str) -> String {
    format!(
        "ORCHESTR8_SECRET_{}",
        name.to_ascii_uppercase().replace(['-', '.', '/'], "_")
    )
}

impl Secrets {
    /// Secrets from the environment only.
    pub fn from_env() -> Self {
        Secrets::default()
    }

    /// Secrets from the environment, then `file` if it exists.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Secrets::default()),
            Err(source) => {
                return Err(ConfigError::Read {
                    file: file.to_path_buf(),
                    source,
                });
            }
        };
        Ok(Secrets {
            file: manifest::parse(file, &text)?,
            overrides: BTreeMap::new(),
        })
    }

    /// Values that win over both sources (a test case's fake keys).
    pub fn with_overrides(mut self, values: BTreeMap<String, String>) -> Self {
        self.overrides = values;
        self
    }

    /// The value of secret `name`, if any source has it.
    pub fn get(&self, name: &str) -> Option<SecretValue> {
        self.overrides
            .get(name)
            .cloned()
            .or_else(|| std::env::var(secret_env_var(name)).ok())
            .or_else(|| self.file.get(name).cloned())
            .map(SecretValue::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_are_upper_snake_case() {
        assert_eq!(secret_env_var("openai-key"), "ORCHESTR8_SECRET_OPENAI_KEY");
        assert_eq!(secret_env_var("a.b/c"), "ORCHESTR8_SECRET_A_B_C");
    }

    #[test]
    fn file_values_are_read_and_overrides_win() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secrets.toml");
        std::fs::write(&file, "unit-test-only-key = \"from-file\"\nother = \"x\"\n").unwrap();
        let secrets = Secrets::load(&file).unwrap();
        assert_eq!(
            secrets.get("unit-test-only-key").unwrap().expose(),
            "from-file"
        );
        assert!(secrets.get("missing").is_none());
        let secrets =
            secrets.with_overrides([("other".to_string(), "override".to_string())].into());
        assert_eq!(secrets.get("other").unwrap().expose(), "override");
    }

    #[test]
    fn a_missing_file_is_no_secrets_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Secrets::load(&dir.path().join("none.toml")).is_ok());
        let file = dir.path().join("secrets.toml");
        std::fs::write(&file, "key = 3\n").unwrap();
        let text = Secrets::load(&file).unwrap_err().to_string();
        assert!(
            text.contains("secrets.toml") && text.contains("key"),
            "{text}"
        );
    }
}
