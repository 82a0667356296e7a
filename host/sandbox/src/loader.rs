//! Loading an agent: from bytes to a pre-linked component and its `info`.
//!
//! Each failure says what the file is and what is missing: not WebAssembly,
//! a core module instead of a component, a component that does not export
//! `orchestr8:agent/handler`, or one that imports what the host does not
//! provide. Compilation runs on a blocking thread and goes through the disk
//! cache.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::Sandbox;
use super::bindings::orchestr8::agent::types::Invocation;
use super::bindings::{AgentPre, HANDLER_EXPORT};
use super::error::LoadError;
use super::invoke::Watch;
use super::policy::{Limits, SandboxPolicy};
use super::state::AgentState;

/// Deadline for an agent's `info` call.
const INFO_TIMEOUT_MS: u64 = 5_000;

const WASM_MAGIC: [u8; 4] = *b"\0asm";
/// The version/layer field of a component (a core module has `01 00 00 00`).
const COMPONENT_LAYER: [u8; 2] = [0x01, 0x00];

/// What an agent says about itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInfo {
    /// Identifier, such as `@orchestr8/text-stats`.
    pub id: String,
    /// Semantic version.
    pub version: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its input.
    pub input_schema: Value,
    /// JSON Schema of its output.
    pub output_schema: Value,
}

/// A compiled, pre-linked agent, ready for any number of invocations.
/// Cheap to clone.
#[derive(Clone)]
pub struct LoadedAgent {
    inner: Arc<LoadedInner>,
}

struct LoadedInner {
    pre: AgentPre<AgentState>,
    info: AgentInfo,
    /// The agent's output schema, compiled: every output is checked
    /// against it, whichever mode runs the agent.
    output: jsonschema::Validator,
    digest: String,
    origin: String,
}

impl LoadedAgent {
    /// What the agent says about itself.
    pub fn info(&self) -> &AgentInfo {
        &self.inner.info
    }

    /// SHA-256 of the component, as lowercase hex.
    pub fn digest(&self) -> &str {
        &self.inner.digest
    }

    /// Where the agent was loaded from (a path, or a label for bytes).
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    pub(crate) fn pre(&self) -> &AgentPre<AgentState> {
        &self.inner.pre
    }

    /// Where `output` breaks the agent's declared output schema (at most
    /// five problems, each with its JSON pointer); empty when it conforms.
    pub fn output_problems(&self, output: &Value) -> Vec<String> {
        self.inner
            .output
            .iter_errors(output)
            .take(5)
            .map(|e| format!("{e} at `{}`", e.instance_path()))
            .collect()
    }
}

impl std::fmt::Debug for LoadedAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedAgent")
            .field("id", &self.inner.info.id)
            .field("digest", &self.inner.digest)
            .field("origin", &self.inner.origin)
            .finish()
    }
}

impl Sandbox {
    /// Loads an agent component from a file.
    pub async fn load(&self, path: impl AsRef<Path>) -> Result<LoadedAgent, LoadError> {
        let path = path.as_ref();
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| LoadError::NotFound {
                path: path.to_path_buf(),
                source,
            })?;
        self.load_bytes(bytes, path.display().to_string()).await
    }

    /// Loads an agent component from bytes; `origin` names it in errors.
    pub async fn load_bytes(
        &self,
        bytes: Vec<u8>,
        origin: String,
    ) -> Result<LoadedAgent, LoadError> {
        check_header(&bytes, &origin)?;
        let digest = crate::hex(&Sha256::digest(&bytes));
        let component = {
            let sandbox = self.clone();
            let digest = digest.clone();
            let label = origin.clone();
            tokio::task::spawn_blocking(move || sandbox.compile(&bytes, &digest, &label))
                .await
                .map_err(|e| LoadError::Invalid {
                    origin: origin.clone(),
                    message: format!("compilation was interrupted: {e}"),
                })??
        };
        self.check_exports(&component, &origin)?;
        let pre = self.inner.linker.instantiate_pre(&component).map_err(|e| {
            LoadError::UnsupportedImport {
                origin: origin.clone(),
                message: format!("{e:#}"),
            }
        })?;
        let pre = AgentPre::new(pre).map_err(|e| LoadError::MissingExport {
            origin: origin.clone(),
            missing: format!("{HANDLER_EXPORT} ({e:#})"),
            found: Vec::new(),
        })?;
        let info = self.call_info(&pre, &origin).await?;
        let output =
            jsonschema::validator_for(&info.output_schema).map_err(|e| LoadError::InvalidInfo {
                origin: origin.clone(),
                reason: format!("an output schema that is not a valid JSON Schema: {e}"),
            })?;
        tracing::debug!(agent = %info.id, %digest, %origin, "agent loaded");
        Ok(LoadedAgent {
            inner: Arc::new(LoadedInner {
                pre,
                info,
                output,
                digest,
                origin,
            }),
        })
    }

    fn compile(&self, bytes: &[u8], digest: &str, origin: &str) -> Result<Component, LoadError> {
        let engine = &self.inner.engine;
        if let Some(cached) = self
            .inner
            .cache
            .as_ref()
            .and_then(|c| c.get(engine, digest))
        {
            return Ok(cached);
        }
        let component = Component::from_binary(engine, bytes).map_err(|e| LoadError::Invalid {
            origin: origin.to_string(),
            message: format!("{e:#}"),
        })?;
        if let Some(cache) = &self.inner.cache {
            cache.put(digest, &component);
        }
        Ok(component)
    }

    fn check_exports(&self, component: &Component, origin: &str) -> Result<(), LoadError> {
        let engine = &self.inner.engine;
        let ty = component.component_type();
        let found: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
        let missing = |missing: String| LoadError::MissingExport {
            origin: origin.to_string(),
            missing,
            found: found.clone(),
        };
        let Some(handler) = ty.get_export(engine, HANDLER_EXPORT) else {
            return Err(missing(HANDLER_EXPORT.to_string()));
        };
        let ComponentItem::ComponentInstance(instance) = handler.ty else {
            return Err(missing(format!("{HANDLER_EXPORT} (as an instance)")));
        };
        for func in ["info", "process"] {
            match instance.get_export(engine, func) {
                Some(e) if matches!(e.ty, ComponentItem::ComponentFunc(_)) => {}
                _ => return Err(missing(format!("{HANDLER_EXPORT}#{func}"))),
            }
        }
        Ok(())
    }

    async fn call_info(
        &self,
        pre: &AgentPre<AgentState>,
        origin: &str,
    ) -> Result<AgentInfo, LoadError> {
        let policy = SandboxPolicy::with_limits(Limits {
            timeout_ms: INFO_TIMEOUT_MS,
            ..Limits::default()
        });
        let unused = Invocation {
            execution_id: String::new(),
            step_id: String::new(),
            attempt: 0,
            deadline_unix_ms: 0,
            config: "{}".into(),
            input: "null".into(),
        };
        let raw = self
            .run(
                origin,
                pre,
                &policy,
                Watch {
                    cancel: &CancellationToken::new(),
                    cancel_grace: Duration::ZERO,
                    queue_timeout: super::invoke::DEFAULT_QUEUE_TIMEOUT,
                    observer: None,
                    idle_timeout: None,
                },
                &unused,
                |agent, store, _| {
                    Box::pin(async move { agent.orchestr8_agent_handler().call_info(store).await })
                },
            )
            .await
            .result
            .map_err(|source| LoadError::Info {
                origin: origin.to_string(),
                source: Box::new(source),
            })?;
        let bad = |reason: String| LoadError::InvalidInfo {
            origin: origin.to_string(),
            reason,
        };
        let schema = |name: &str, text: &str| -> Result<Value, LoadError> {
            let value: Value = serde_json::from_str(text)
                .map_err(|e| bad(format!("an {name} that is not JSON: {e}")))?;
            if !(value.is_object() || value.is_boolean()) {
                return Err(bad(format!("an {name} that is not a JSON Schema object")));
            }
            Ok(value)
        };
        if raw.id.trim().is_empty() {
            return Err(bad("an empty id".into()));
        }
        Ok(AgentInfo {
            input_schema: schema("input schema", &raw.input_schema)?,
            output_schema: schema("output schema", &raw.output_schema)?,
            id: raw.id,
            version: raw.version,
            description: raw.description,
        })
    }
}

fn check_header(bytes: &[u8], origin: &str) -> Result<(), LoadError> {
    if bytes.len() < 8 || bytes[..4] != WASM_MAGIC {
        return Err(LoadError::NotWasm {
            origin: origin.to_string(),
        });
    }
    if bytes[6..8] != COMPONENT_LAYER {
        return Err(LoadError::CoreModule {
            origin: origin.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_garbage_core_modules_and_components_apart() {
        assert!(matches!(
            check_header(b"hello world", "x"),
            Err(LoadError::NotWasm { .. })
        ));
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0", "x"),
            Err(LoadError::CoreModule { .. })
        ));
        assert!(check_header(b"\0asm\x0d\0\x01\0", "x").is_ok());
    }
}
