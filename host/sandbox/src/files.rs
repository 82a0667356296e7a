//! `wasi:filesystem` with quotas and safe links on writable grants.
//!
//! wasmtime-wasi confines an agent to the directories it was granted, but a
//! writable grant is otherwise open-ended: an agent could fill the disk, or
//! leave a symbolic link that points outside the grant for a person or a
//! host tool to follow later. This module links its own `wasi:filesystem`
//! `types` and `preopens` over wasmtime-wasi's, passing every call through
//! and adding, for writable grants:
//!
//! - a **byte quota**: the bytes already in the grant when the call starts
//!   plus every byte the call writes (an overwrite counts again) may not
//!   pass `quota_bytes`; a write past it fails as on a full disk
//!   (`insufficient-space`; through a stream, whose errors wasi-libc
//!   reports as a plain I/O error, with `ENOSPC` inside);
//! - a **file quota**: entries already there plus files, directories and
//!   links the call creates may not pass `quota_files`;
//! - **links only downwards**: a symbolic link must be relative and free of
//!   `..`, so wherever it is (or is moved) in a grant it resolves inside it.
//!
//! Each refusal is recorded as a denial with what was asked and why.

use std::collections::HashMap;
use std::path::{Component, Path};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::component::{HasData, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemCtxView};
use wasmtime_wasi::p2::bindings::filesystem::preopens;
use wasmtime_wasi::p2::bindings::filesystem::types::{
    self, ErrorCode, HostDescriptor, HostDirectoryEntryStream,
};
use wasmtime_wasi::p2::{
    DynOutputStream, FsError, FsResult, OutputStream, Pollable, StreamError, StreamResult,
};

use super::denial::{Capability, DenialLog};
use super::policy::DirGrant;

/// What one writable grant may still take in this call.
#[derive(Debug)]
struct Quota {
    guest: String,
    bytes_left: Arc<AtomicU64>,
    files_left: u64,
    quota_bytes: u64,
    quota_files: u64,
}

/// The quotas of one invocation's writable grants, and which descriptor
/// belongs to which grant.
#[derive(Debug, Default)]
pub(crate) struct FileGuard {
    quotas: Vec<Quota>,
    /// Descriptor resource → index in `quotas`, for descriptors inside a
    /// writable grant.
    owners: HashMap<u32, usize>,
    denials: DenialLog,
}

impl FileGuard {
    /// Quotas for the writable grants among `dirs`, measured against what
    /// is in them now.
    pub(crate) fn new(dirs: &[DirGrant], denials: DenialLog) -> Self {
        let quotas = dirs
            .iter()
            .filter(|d| d.writable)
            .map(|d| {
                let (quota_bytes, quota_files) = (d.quota_bytes(), d.quota_files());
                let (bytes, files) = usage(&d.host_path, quota_files);
                Quota {
                    guest: d.guest_path.clone(),
                    bytes_left: Arc::new(AtomicU64::new(quota_bytes.saturating_sub(bytes))),
                    files_left: quota_files.saturating_sub(files),
                    quota_bytes,
                    quota_files,
                }
            })
            .collect();
        FileGuard {
            quotas,
            owners: HashMap::new(),
            denials,
        }
    }

    fn refuse(&self, owner: usize, asked: String, reason: String) -> FsError {
        let guest = &self.quotas[owner].guest;
        self.denials
            .record(Capability::File, &format!("{guest}: {asked}"), reason);
        ErrorCode::InsufficientSpace.into()
    }

    /// Takes `bytes` from the byte quota of the grant `fd` is in.
    fn charge_bytes(&self, fd: u32, bytes: u64) -> FsResult<()> {
        let Some(&owner) = self.owners.get(&fd) else {
            return Ok(());
        };
        let quota = &self.quotas[owner];
        if take(&quota.bytes_left, bytes) {
            return Ok(());
        }
        Err(self.refuse(
            owner,
            format!("write of {bytes} bytes"),
            format!(
                "the grant is at its quota of {} bytes (`quota_mb` of the grant)",
                quota.quota_bytes
            ),
        ))
    }

    /// Takes one entry from the file quota of the grant `fd` is in.
    fn charge_file(&mut self, fd: u32, asked: &str) -> FsResult<()> {
        let Some(&owner) = self.owners.get(&fd) else {
            return Ok(());
        };
        let quota = &mut self.quotas[owner];
        if quota.files_left > 0 {
            quota.files_left -= 1;
            return Ok(());
        }
        let limit = quota.quota_files;
        Err(self.refuse(
            owner,
            format!("create {asked}"),
            format!("the grant is at its quota of {limit} files (`quota_files` of the grant)"),
        ))
    }
}

/// Takes `n` from `left` if it holds that much.
fn take(left: &AtomicU64, n: u64) -> bool {
    left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(n))
        .is_ok()
}

/// Bytes and entries under `dir`, counting at most `max_entries` entries
/// (past them the grant is full anyway). Links are not followed.
fn usage(dir: &Path, max_entries: u64) -> (u64, u64) {
    let (mut bytes, mut entries) = (0u64, 0u64);
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(read) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in read.flatten() {
            entries += 1;
            if entries > max_entries {
                return (bytes, entries);
            }
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                bytes = bytes.saturating_add(meta.len());
            }
        }
    }
    (bytes, entries)
}

/// Whether a link target stays below the link's own directory.
fn points_down(target: &str) -> bool {
    !target.is_empty()
        && Path::new(target)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// The `HasData` of the guarded filesystem.
pub(crate) struct GuardedFiles;

impl HasData for GuardedFiles {
    type Data<'a> = GuardedFilesView<'a>;
}

/// wasmtime-wasi's filesystem view with the invocation's guard beside it.
pub(crate) struct GuardedFilesView<'a> {
    pub(crate) inner: WasiFilesystemCtxView<'a>,
    pub(crate) guard: &'a mut FileGuard,
}

fn borrow<T: 'static>(r: &Resource<T>) -> Resource<T> {
    Resource::new_borrow(r.rep())
}

impl preopens::Host for GuardedFilesView<'_> {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        let dirs = preopens::Host::get_directories(&mut self.inner)?;
        for (fd, guest) in &dirs {
            if let Some(owner) = self.guard.quotas.iter().position(|q| &q.guest == guest) {
                self.guard.owners.insert(fd.rep(), owner);
            }
        }
        Ok(dirs)
    }
}

impl types::Host for GuardedFilesView<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<ErrorCode> {
        types::Host::convert_error_code(&mut self.inner, err)
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        types::Host::filesystem_error_code(&mut self.inner, err)
    }
}

impl HostDescriptor for GuardedFilesView<'_> {
    async fn advise(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: types::Filesize,
        len: types::Filesize,
        advice: types::Advice,
    ) -> FsResult<()> {
        self.inner.advise(fd, offset, len, advice).await
    }

    async fn sync_data(&mut self, fd: Resource<types::Descriptor>) -> FsResult<()> {
        self.inner.sync_data(fd).await
    }

    async fn get_flags(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<types::DescriptorFlags> {
        self.inner.get_flags(fd).await
    }

    async fn get_type(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<types::DescriptorType> {
        self.inner.get_type(fd).await
    }

    async fn set_size(
        &mut self,
        fd: Resource<types::Descriptor>,
        size: types::Filesize,
    ) -> FsResult<()> {
        if self.guard.owners.contains_key(&fd.rep()) {
            let now = self.inner.stat(borrow(&fd)).await?.size;
            self.guard
                .charge_bytes(fd.rep(), size.saturating_sub(now))?;
        }
        self.inner.set_size(fd, size).await
    }

    async fn set_times(
        &mut self,
        fd: Resource<types::Descriptor>,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        self.inner.set_times(fd, atim, mtim).await
    }

    async fn read(
        &mut self,
        fd: Resource<types::Descriptor>,
        len: types::Filesize,
        offset: types::Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        self.inner.read(fd, len, offset).await
    }

    async fn write(
        &mut self,
        fd: Resource<types::Descriptor>,
        buf: Vec<u8>,
        offset: types::Filesize,
    ) -> FsResult<types::Filesize> {
        self.guard.charge_bytes(fd.rep(), buf.len() as u64)?;
        self.inner.write(fd, buf, offset).await
    }

    async fn read_directory(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<Resource<types::DirectoryEntryStream>> {
        self.inner.read_directory(fd).await
    }

    async fn sync(&mut self, fd: Resource<types::Descriptor>) -> FsResult<()> {
        self.inner.sync(fd).await
    }

    async fn create_directory_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<()> {
        self.guard.charge_file(fd.rep(), &path)?;
        self.inner.create_directory_at(fd, path).await
    }

    async fn stat(&mut self, fd: Resource<types::Descriptor>) -> FsResult<types::DescriptorStat> {
        self.inner.stat(fd).await
    }

    async fn stat_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<types::DescriptorStat> {
        self.inner.stat_at(fd, path_flags, path).await
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        self.inner
            .set_times_at(fd, path_flags, path, atim, mtim)
            .await
    }

    async fn link_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        old_path_flags: types::PathFlags,
        old_path: String,
        new_descriptor: Resource<types::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        self.guard.charge_file(new_descriptor.rep(), &new_path)?;
        self.inner
            .link_at(fd, old_path_flags, old_path, new_descriptor, new_path)
            .await
    }

    async fn open_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
        oflags: types::OpenFlags,
        flags: types::DescriptorFlags,
    ) -> FsResult<Resource<types::Descriptor>> {
        let parent = fd.rep();
        let owner = self.guard.owners.get(&parent).copied();
        if owner.is_some() && oflags.contains(types::OpenFlags::CREATE) {
            let exists = self
                .inner
                .stat_at(borrow(&fd), types::PathFlags::empty(), path.clone())
                .await
                .is_ok();
            if !exists {
                self.guard.charge_file(parent, &path)?;
            }
        }
        let opened = self
            .inner
            .open_at(fd, path_flags, path, oflags, flags)
            .await?;
        if let Some(owner) = owner {
            self.guard.owners.insert(opened.rep(), owner);
        }
        Ok(opened)
    }

    fn drop(&mut self, fd: Resource<types::Descriptor>) -> wasmtime::Result<()> {
        self.guard.owners.remove(&fd.rep());
        HostDescriptor::drop(&mut self.inner, fd)
    }

    async fn readlink_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<String> {
        self.inner.readlink_at(fd, path).await
    }

    async fn remove_directory_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<()> {
        self.inner.remove_directory_at(fd, path).await
    }

    async fn rename_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        old_path: String,
        new_fd: Resource<types::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        self.inner.rename_at(fd, old_path, new_fd, new_path).await
    }

    async fn symlink_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        src_path: String,
        dest_path: String,
    ) -> FsResult<()> {
        if let Some(&owner) = self.guard.owners.get(&fd.rep()) {
            if !points_down(&src_path) {
                let guard = &self.guard;
                guard.refuse(
                    owner,
                    format!("symlink {dest_path} -> {src_path}"),
                    "a link may only point down into its own directory (relative, without `..`)"
                        .into(),
                );
                return Err(ErrorCode::NotPermitted.into());
            }
            self.guard.charge_file(fd.rep(), &dest_path)?;
        }
        self.inner.symlink_at(fd, src_path, dest_path).await
    }

    async fn unlink_file_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<()> {
        self.inner.unlink_file_at(fd, path).await
    }

    fn read_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<wasmtime_wasi::p2::DynInputStream>> {
        self.inner.read_via_stream(fd, offset)
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynOutputStream>> {
        let rep = fd.rep();
        let stream = self.inner.write_via_stream(fd, offset)?;
        self.limit_stream(rep, stream)
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let rep = fd.rep();
        let stream = self.inner.append_via_stream(fd)?;
        self.limit_stream(rep, stream)
    }

    async fn is_same_object(
        &mut self,
        a: Resource<types::Descriptor>,
        b: Resource<types::Descriptor>,
    ) -> wasmtime::Result<bool> {
        self.inner.is_same_object(a, b).await
    }

    async fn metadata_hash(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<types::MetadataHashValue> {
        self.inner.metadata_hash(fd).await
    }

    async fn metadata_hash_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<types::MetadataHashValue> {
        self.inner.metadata_hash_at(fd, path_flags, path).await
    }
}

impl GuardedFilesView<'_> {
    /// Puts the file stream just opened on `fd` behind the byte quota of
    /// the grant `fd` is in.
    fn limit_stream(
        &mut self,
        fd: u32,
        stream: Resource<DynOutputStream>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let Some(&owner) = self.guard.owners.get(&fd) else {
            return Ok(stream);
        };
        let inner = self.inner.table.delete(stream)?;
        let quota = &self.guard.quotas[owner];
        let limited: DynOutputStream = Box::new(QuotaStream {
            inner,
            left: quota.bytes_left.clone(),
            refusal: StreamRefusal {
                denials: self.guard.denials.clone(),
                grant: quota.guest.clone(),
                quota: quota.quota_bytes,
            },
        });
        Ok(self.inner.table.push(limited)?)
    }
}

impl HostDirectoryEntryStream for GuardedFilesView<'_> {
    async fn read_directory_entry(
        &mut self,
        stream: Resource<types::DirectoryEntryStream>,
    ) -> FsResult<Option<types::DirectoryEntry>> {
        self.inner.read_directory_entry(stream).await
    }

    fn drop(&mut self, stream: Resource<types::DirectoryEntryStream>) -> wasmtime::Result<()> {
        HostDirectoryEntryStream::drop(&mut self.inner, stream)
    }
}

/// The error a stream write past the quota fails with: `ENOSPC`, which
/// `filesystem-error-code` reports as `insufficient-space` to an agent
/// that asks.
fn no_space() -> std::io::Error {
    const ENOSPC: i32 = 28;
    std::io::Error::from_raw_os_error(ENOSPC)
}

struct StreamRefusal {
    denials: DenialLog,
    grant: String,
    quota: u64,
}

/// A file output stream that takes every byte from its grant's quota.
struct QuotaStream {
    inner: DynOutputStream,
    left: Arc<AtomicU64>,
    refusal: StreamRefusal,
}

#[wasmtime_wasi::async_trait]
impl Pollable for QuotaStream {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for QuotaStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        if !take(&self.left, bytes.len() as u64) {
            let r = &self.refusal;
            r.denials.record(
                Capability::File,
                &format!("{}: write of {} bytes", r.grant, bytes.len()),
                format!(
                    "the grant is at its quota of {} bytes (`quota_mb` of the grant)",
                    r.quota
                ),
            );
            return Err(StreamError::LastOperationFailed(no_space().into()));
        }
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_links_that_point_down_are_allowed() {
        for ok in ["file", "sub/file", "./sub/file"] {
            assert!(points_down(ok), "{ok}");
        }
        for bad in ["", "..", "../x", "sub/../../x", "/etc/passwd", "sub/.."] {
            assert!(!points_down(bad), "{bad}");
        }
    }

    #[test]
    fn the_quota_is_taken_only_while_it_lasts() {
        let left = AtomicU64::new(10);
        assert!(take(&left, 6));
        assert!(!take(&left, 6));
        assert!(take(&left, 4));
        assert_eq!(left.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn usage_counts_bytes_and_entries_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"12345").unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/b"), b"123").unwrap();
        assert_eq!(usage(dir.path(), 100), (8, 3));
        assert_eq!(usage(dir.path(), 1).1, 2);
    }
}
