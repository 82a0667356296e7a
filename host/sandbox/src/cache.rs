//! On-disk cache of compiled agents.
//!
//! Compiling a component with Cranelift takes from milliseconds to seconds;
//! loading the machine code back takes microseconds. Entries are keyed by the
//! SHA-256 of the component and a hash of everything that makes compiled code
//! compatible with this engine (wasmtime version, compiler settings, target),
//! so an upgrade or a changed setting simply misses. An entry that fails to
//! load is recompiled and overwritten.
//!
//! Loading cached machine code means trusting the cache directory: it is
//! created private to the user (0700 on Unix) and must not be shared.
//!
//! Beneath it, `functions/` holds Cranelift's cache of single functions
//! (see [`functions`]), which makes compiling a component that missed here
//! cheap when its code is mostly known.

mod functions;

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

pub(crate) use functions::FunctionCache;

/// A directory of precompiled components.
#[derive(Debug, Clone)]
pub(crate) struct ComponentCache {
    dir: PathBuf,
    engine_key: String,
}

impl ComponentCache {
    pub(crate) fn new(dir: PathBuf, engine: &Engine) -> std::io::Result<Self> {
        create_private_dir(&dir)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(ComponentCache {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        })
    }

    fn entry(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    /// The cached component for `digest`, if present and loadable.
    pub(crate) fn get(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let path = self.entry(digest);
        // Read into memory rather than mapping the file: a mapped file that
        // someone truncates would crash the host (SIGBUS).
        let bytes = std::fs::read(&path).ok()?;
        // SAFETY: the bytes were written by `put` from `Component::serialize`
        // of this same engine configuration (the key includes its
        // compatibility hash) into a directory private to this user; wasmtime
        // additionally checks the header and rejects incompatible artifacts.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize(engine, &bytes) };
        match loaded {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cache entry");
                None
            }
        }
    }

    /// Stores a compiled component. Failures are logged, never fatal: the
    /// cache only saves time.
    pub(crate) fn put(&self, digest: &str, component: &Component) {
        let path = self.entry(digest);
        if let Err(e) = component
            .serialize()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|bytes| write_atomically(&path, &bytes))
        {
            tracing::warn!(path = %path.display(), error = %e, "could not write cache entry");
        }
    }
}

/// Writes through a temporary file and a rename, so a reader never sees a
/// half-written entry even when two processes compile the same agent.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map(drop).map_err(|e| e.error)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}
