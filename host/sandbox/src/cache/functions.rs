//! Cranelift's per-function compile cache, on disk.
//!
//! A component's digest changes with any byte, and the TypeScript and Python
//! toolchains do not even build reproducibly, so rebuilding an agent misses
//! the [`ComponentCache`](super::ComponentCache) every time. Yet most of
//! such a component's functions (the JavaScript engine, the Python
//! interpreter) are the same from one build to the next and between agents.
//! Cranelift keys each function's machine code by a SHA-256 of its IR and
//! the target's settings; this store keeps those entries as files, so a
//! rebuilt or sibling agent compiles only the functions that differ.
//!
//! A compile writes thousands of entries, so each is written in place, once
//! (no temporary file, rename or sync: an entry is only worth the
//! milliseconds it saves). Each file starts with the SHA-256 of the rest, so
//! one torn by a crash, caught half-written, or altered reads as a miss; a
//! damaged one is removed so the next compile writes it again.

use std::borrow::Cow;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::CacheStore;

use super::create_private_dir;

const CHECKSUM_BYTES: usize = 32;

/// A directory of compiled functions, sharded by the first byte of the key.
#[derive(Debug)]
pub(crate) struct FunctionCache {
    dir: PathBuf,
}

impl FunctionCache {
    pub(crate) fn new(dir: PathBuf) -> std::io::Result<Self> {
        create_private_dir(&dir)?;
        Ok(FunctionCache { dir })
    }

    fn entry(&self, key: &[u8]) -> PathBuf {
        let name = crate::hex(key);
        let (shard, rest) = name.split_at(name.len().min(2));
        self.dir.join(shard).join(rest)
    }
}

impl CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let path = self.entry(key);
        let mut bytes = std::fs::read(&path).ok()?;
        if bytes.len() < CHECKSUM_BYTES
            || Sha256::digest(&bytes[CHECKSUM_BYTES..]).as_slice() != &bytes[..CHECKSUM_BYTES]
        {
            tracing::debug!(path = %path.display(), "removing a damaged compiled-function entry");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        bytes.drain(..CHECKSUM_BYTES);
        Some(Cow::Owned(bytes))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let path = self.entry(key);
        match write_entry(&path, &value) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "could not write a compiled-function entry");
                false
            }
        }
    }
}

/// Creates the entry, and its shard on first use; one that exists already
/// was written by a compile of the same function.
fn write_entry(path: &Path, value: &[u8]) -> std::io::Result<()> {
    let create = || std::fs::File::create_new(path);
    let mut file = match create() {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
            create()?
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
        other => other?,
    };
    let mut bytes = Vec::with_capacity(CHECKSUM_BYTES + value.len());
    bytes.extend_from_slice(&Sha256::digest(value));
    bytes.extend_from_slice(value);
    file.write_all(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_and_a_damaged_one_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FunctionCache::new(dir.path().join("functions")).unwrap();
        let key = [0xab_u8; 32];
        assert!(cache.get(&key).is_none());
        assert!(cache.insert(&key, b"machine code".to_vec()));
        assert_eq!(cache.get(&key).as_deref(), Some(&b"machine code"[..]));
        let path = cache.entry(&key);
        assert!(path.starts_with(dir.path().join("functions").join("ab")));

        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(cache.get(&key).is_none(), "altered");
        assert!(!path.exists(), "a damaged entry is removed");
        assert!(cache.insert(&key, b"machine code".to_vec()));
        std::fs::write(&path, &bytes[..10]).unwrap();
        assert!(cache.get(&key).is_none(), "torn");
        assert!(cache.insert(&key, b"machine code".to_vec()));
        assert_eq!(cache.get(&key).as_deref(), Some(&b"machine code"[..]));
    }
}
