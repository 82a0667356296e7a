//! Edits of `orchestr8.toml` that keep its comments and layout (toml_edit),
//! for the commands that add or remove agents (`create`, `install`,
//! `uninstall`).

use toml_edit::{DocumentMut, Item, Table};

use super::{ConfigError, Project};

impl Project {
    /// Edits the `[agents]` table of the project's `orchestr8.toml` in
    /// place; `edit` says what is wrong, if anything.
    pub fn edit_agents(
        &self,
        edit: impl FnOnce(&mut Table) -> Result<(), String>,
    ) -> Result<(), ConfigError> {
        let file = self.manifest_path();
        let invalid = |reason: String| ConfigError::Invalid {
            file: file.clone(),
            key: None,
            line: None,
            reason,
        };
        let text = std::fs::read_to_string(&file).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let mut doc: DocumentMut = text
            .parse()
            .map_err(|e| invalid(format!("cannot edit it: {e}")))?;
        let agents = doc
            .entry("agents")
            .or_insert_with(|| {
                let mut t = Table::new();
                t.set_implicit(true);
                Item::Table(t)
            })
            .as_table_mut()
            .ok_or_else(|| invalid("`agents` is not a table".into()))?;
        edit(agents).map_err(invalid)?;
        std::fs::write(&file, doc.to_string()).map_err(|e| invalid(format!("cannot write it: {e}")))
    }
}
