//! The per-invocation state inside a wasmtime `Store`, and the `host`
//! interface the agent imports.
//!
//! One [`AgentState`] is built for every invocation from the agent's
//! [`SandboxPolicy`] and thrown away afterwards, so nothing leaks from one
//! call to the next. Host functions get `&mut AgentState`; there are no
//! globals.

use std::collections::BTreeMap;

use tokio_util::sync::CancellationToken;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::filesystem::WasiFilesystemCtxView;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::orchestr8::agent::host::{self, LogLevel as WitLogLevel, SecretError};
use super::denial::{Capability, DenialLog};
use super::egress::EgressHooks;
use super::error::InvokeError;
use super::files::{FileGuard, GuardedFilesView};
use super::inputs::{Tape, TapedMonotonicClock, TapedRng, TapedWallClock};
use super::logs::{AgentObserver, AgentRecorder, LogLevel};
use super::policy::Recording;
use super::policy::{DEFAULT_STDIO_BYTES, SandboxPolicy, SecretValue};

/// Most host resources (streams, HTTP fields and requests, pollables, open
/// files) one invocation may hold at once: each lives in host memory, so
/// with [`MAX_HTTP_FIELDS_BYTES`] this bounds what an agent can make the
/// host keep through them (2,048 × 16 KiB = 32 MiB). Agents built with the
/// SDKs hold a few dozen.
pub const MAX_RESOURCES: usize = 2048;
/// Largest set of HTTP header fields an agent may build, names and values
/// together, in bytes.
pub const MAX_HTTP_FIELDS_BYTES: usize = 16 * 1024;

/// Which cap an agent ran into, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitHit {
    Memory { requested: u64 },
    Table { requested: u64 },
}

/// Caps the linear memories of one sandbox, all together, and each table,
/// and remembers which cap was hit so a resulting failure can be reported
/// as `MEMORY_LIMIT` rather than a crash (a Rust agent traps; CPython
/// raises `MemoryError` and fails). Capping the sum, not each memory, is
/// what lets the memory budget reserve exactly one cap per sandbox.
#[derive(Debug)]
pub(crate) struct Limiter {
    memory_bytes: u64,
    /// The sizes of all this sandbox's memories together.
    memory_used: u64,
    table_elements: u64,
    hit: Option<LimitHit>,
}

impl Limiter {
    /// The `MEMORY_LIMIT` error for the cap the agent ran into, if any.
    pub(crate) fn error(&self) -> Option<InvokeError> {
        Some(match self.hit? {
            LimitHit::Memory { requested } => InvokeError::MemoryLimit {
                what: "memory",
                unit: "bytes",
                limit: self.memory_bytes,
                requested,
            },
            LimitHit::Table { requested } => InvokeError::MemoryLimit {
                what: "table",
                unit: "elements",
                limit: self.table_elements,
                requested,
            },
        })
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = (desired as u64).saturating_sub(current as u64);
        let total = self.memory_used.saturating_add(growth);
        if total > self.memory_bytes {
            self.hit = Some(LimitHit::Memory { requested: total });
            return Ok(false);
        }
        self.memory_used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.table_elements {
            self.hit = Some(LimitHit::Table {
                requested: desired as u64,
            });
            return Ok(false);
        }
        Ok(true)
    }
}

/// Everything one invocation's store holds.
pub(crate) struct AgentState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: EgressHooks,
    pub(crate) limiter: Limiter,
    pub(crate) recorder: AgentRecorder,
    /// The clock and random readings being recorded, when they are.
    pub(crate) tape: Option<Tape>,
    pub(crate) denials: DenialLog,
    files: FileGuard,
    pub(crate) stderr: MemoryOutputPipe,
    cancel: CancellationToken,
    granted_secrets: Vec<String>,
    secret_values: BTreeMap<String, SecretValue>,
}

/// A grant that could not be turned into a sandbox.
#[derive(Debug, thiserror::Error)]
#[error("cannot grant directory `{path}`: {message}")]
pub(crate) struct GrantError {
    pub(crate) path: String,
    pub(crate) message: String,
}

impl AgentState {
    pub(crate) fn new(
        policy: &SandboxPolicy,
        hooks: EgressHooks,
        cancel: CancellationToken,
        observer: Option<(AgentObserver, u32)>,
    ) -> Result<Self, GrantError> {
        let stderr = MemoryOutputPipe::new(DEFAULT_STDIO_BYTES);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(MemoryOutputPipe::new(DEFAULT_STDIO_BYTES))
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let env: Vec<(&String, &String)> = policy.env_values.iter().collect();
        wasi.envs(&env);
        // Clocks and random numbers through a tape: replayed, or recorded
        // for a watched call with `record = "all"`.
        let tape = match (&policy.replay_inputs, policy.recording, &observer) {
            (Some(inputs), _, _) => Some(Tape::replaying(inputs)),
            (None, Recording::All, Some(_)) => {
                let seed = u128::from(rand_core::Rng::next_u64(
                    wasmtime_wasi::random::thread_rng().as_mut(),
                ));
                Some(Tape::recording(seed))
            }
            _ => None,
        };
        if let Some(tape) = &tape {
            wasi.wall_clock(TapedWallClock(
                tape.clone(),
                wasmtime_wasi::clocks::wall_clock(),
            ))
            .monotonic_clock(TapedMonotonicClock(
                tape.clone(),
                wasmtime_wasi::clocks::monotonic_clock(),
            ))
            .secure_random(TapedRng(tape.clone(), wasmtime_wasi::random::thread_rng()))
            .insecure_random(TapedRng(tape.clone(), wasmtime_wasi::random::thread_rng()))
            .insecure_random_seed(tape.seed());
        }
        for dir in &policy.grants.dirs {
            let perms = if dir.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&dir.host_path, &dir.guest_path, perms)
                .map_err(|e| GrantError {
                    path: dir.host_path.display().to_string(),
                    message: e.to_string(),
                })?;
        }
        let redact = policy
            .secret_values
            .values()
            .map(|s| s.expose().to_string())
            .collect();
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(MAX_HTTP_FIELDS_BYTES);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        Ok(AgentState {
            wasi: wasi.build(),
            http,
            table,
            denials: hooks.denials.clone(),
            files: FileGuard::new(&policy.grants.dirs, hooks.denials.clone()),
            hooks,
            limiter: Limiter {
                memory_bytes: policy.limits.memory_bytes,
                memory_used: 0,
                table_elements: policy.limits.table_elements,
                hit: None,
            },
            recorder: AgentRecorder::new(policy.limits.log_bytes, redact, observer),
            // Only a recording is reported back.
            tape: tape.filter(|_| policy.replay_inputs.is_none()),
            stderr,
            cancel,
            granted_secrets: policy.grants.secrets.clone(),
            secret_values: policy.secret_values.clone(),
        })
    }
}

impl AgentState {
    /// The filesystem as the agent sees it: wasmtime-wasi's, behind the
    /// quotas and link rules of [`super::files`].
    pub(crate) fn guarded_files(&mut self) -> GuardedFilesView<'_> {
        GuardedFilesView {
            inner: WasiFilesystemCtxView {
                ctx: self.wasi.filesystem(),
                table: &mut self.table,
            },
            guard: &mut self.files,
        }
    }

    /// Whether the agent has an outbound connection open right now.
    pub(crate) fn upstream_open(&self) -> bool {
        self.hooks.share.in_use()
    }
}

impl WasiView for AgentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for AgentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl From<WitLogLevel> for LogLevel {
    fn from(level: WitLogLevel) -> Self {
        match level {
            WitLogLevel::Trace => LogLevel::Trace,
            WitLogLevel::Debug => LogLevel::Debug,
            WitLogLevel::Info => LogLevel::Info,
            WitLogLevel::Warn => LogLevel::Warn,
            WitLogLevel::Error => LogLevel::Error,
        }
    }
}

impl host::Host for AgentState {
    fn log(&mut self, level: WitLogLevel, message: String, fields: Vec<(String, String)>) {
        self.recorder.log(level.into(), message, fields);
    }

    fn emit_event(&mut self, kind: String, payload: String) {
        self.recorder.event(kind, payload);
    }

    fn get_secret(&mut self, name: String) -> Result<String, SecretError> {
        if !self.granted_secrets.contains(&name) {
            self.denials.record_grantable(
                Capability::Secret,
                &name,
                "secret is not granted to this agent: grant it in secrets".into(),
                &name,
            );
            return Err(SecretError::NotGranted);
        }
        match self.secret_values.get(&name) {
            Some(value) => Ok(value.expose().to_string()),
            None => Err(SecretError::NotSet),
        }
    }

    fn is_cancelled(&mut self) -> bool {
        self.cancel.is_cancelled()
    }
}

impl super::bindings::orchestr8::agent::types::Host for AgentState {}
