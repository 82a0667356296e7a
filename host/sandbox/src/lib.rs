//! The sandbox: runs one agent invocation in a fresh, tightly limited
//! WebAssembly component instance.
//!
//! One [`Sandbox`] per process owns the wasmtime `Engine` (component model,
//! async, fuel, epoch interruption, pooling allocator), the linker with the
//! WASI and `orchestr8:agent` host functions, the compile cache and the
//! process-wide caps. [`Sandbox::load`] compiles an agent once (or loads it
//! from the cache) and pre-links it; [`Sandbox::invoke`] then gives every call
//! a fresh `Store` bounded by the agent's [`SandboxPolicy`]:
//!
//! - a wall-clock deadline and cancellation, raced against the whole call so
//!   they also fire while the agent waits inside a host call (an epoch
//!   deadline alone would not: wasmtime issue #9188);
//! - a fuel budget, and an epoch tick that makes CPU-bound agents yield so
//!   they cannot starve other invocations;
//! - memory and table caps through a `ResourceLimiter`;
//! - caps on output size and log volume;
//! - deny-by-default files, environment, secrets and outbound HTTP.
//!
//! The sandbox knows nothing of workflows: it takes an invocation and a
//! policy and returns an [`InvocationOutcome`].
//!
//! It is a crate of its own because it is the only one that depends on
//! wasmtime: everything an agent can reach (the host functions, the WASI
//! context, the egress checks) is in this one place to review, and the
//! crates above it (the engine, the journal, the servers) rebuild without
//! recompiling it.

mod bindings;
mod cache;
mod denial;
mod egress;
mod error;
mod files;
mod fixtures;
mod inputs;
mod invoke;
mod loader;
mod logs;
mod policy;
mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use denial::{Capability, Denial, MAX_TARGET_BYTES};
pub use egress::{HostPattern, HostPatternError};
pub use error::{AgentFailure, InvokeError, LoadError, SetupError};
pub use fixtures::{
    FixtureRequest, FixtureResponse, HttpFixture, HttpFixtures, UnhandledRequest, json_contains,
};
pub use inputs::RecordedInputs;
pub use invoke::{
    DEFAULT_CANCEL_GRACE, DEFAULT_QUEUE_TIMEOUT, InvocationOutcome, InvocationRequest,
    InvocationStats, MAX_ERROR_DETAILS_BYTES, MAX_ERROR_MESSAGE_BYTES,
};
pub use loader::{AgentInfo, LoadedAgent};
pub use logs::{
    AgentEvent, AgentLogLine, AgentObserver, AgentRecord, LogLevel, REDACTED, RecordedExchange,
    redact,
};
pub use policy::{
    DEFAULT_DIR_QUOTA_BYTES, DEFAULT_DIR_QUOTA_FILES, DEFAULT_FUEL, DEFAULT_LOG_BYTES,
    DEFAULT_MEMORY_BYTES, DEFAULT_OUTPUT_BYTES, DEFAULT_TABLE_ELEMENTS, DEFAULT_TIMEOUT, DirGrant,
    Grants, Limits, PolicyError, Recording, SandboxPolicy, SecretValue,
};

use cache::{ComponentCache, FunctionCache};
use egress::{ConnectionShares, EgressShared};
use state::AgentState;
pub use state::{MAX_HTTP_FIELDS_BYTES, MAX_RESOURCES};

/// How instance memory is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Allocator {
    /// Pre-reserved slots reused across invocations: fastest instantiation.
    #[default]
    Pooling,
    /// Memory mapped for each instance and released afterwards.
    OnDemand,
}

/// Engine-wide settings, fixed for the life of a [`Sandbox`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SandboxConfig {
    /// Instance allocation strategy.
    pub allocator: Allocator,
    /// How many sandboxes may exist at once; further invocations wait for a
    /// free one (they never fail for lack of a slot).
    pub max_instances: u32,
    /// Ceiling for any agent's per-memory cap, in bytes.
    pub max_memory_bytes: u64,
    /// Where compiled agents are cached; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// How often CPU-bound agents yield to other tasks, in milliseconds.
    pub epoch_tick_ms: u64,
    /// How many agents that keep computing past two ticks may run at once
    /// (the long-running lanes); short calls are never held back by them.
    /// Defaults to the machine's cores less one, at least one.
    pub long_running_lanes: usize,
    /// Cap on concurrent outbound HTTP connections of all agents together.
    pub max_outbound_connections: usize,
    /// How many of them one invocation may hold; past it, its requests are
    /// refused at once.
    pub max_connections_per_call: usize,
    /// How many of them all invocations of one agent may hold together.
    pub max_connections_per_agent: usize,
    /// Process-wide memory budget, in bytes: an invocation is admitted only
    /// while the memory caps of the running sandboxes, its own included,
    /// fit in it; the others wait (up to their queue timeout). Defaults to
    /// half the machine's physical memory.
    pub memory_budget_bytes: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            allocator: Allocator::Pooling,
            max_instances: 1000,
            max_memory_bytes: 1 << 30,
            cache_dir: default_cache_dir(),
            epoch_tick_ms: 5,
            long_running_lanes: default_long_running_lanes(),
            max_outbound_connections: 256,
            max_connections_per_call: 16,
            max_connections_per_agent: 64,
            memory_budget_bytes: default_memory_budget(),
        }
    }
}

/// The machine's cores less one (at least one), which leaves a core to
/// short calls and the servers whatever the long-running agents do.
pub fn default_long_running_lanes() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

/// Half the machine's physical memory, at least 1 GiB (4 GiB where it
/// cannot be read): the rest is left to the host itself, its caches and
/// other processes.
pub fn default_memory_budget() -> u64 {
    physical_memory().map_or(4 << 30, |total| (total / 2).max(1 << 30))
}

fn physical_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `$XDG_CACHE_HOME/orchestr8/components`, or `~/.cache/orchestr8/components`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("orchestr8").join("components"))
}

/// Upper bounds for what one component may contain under pooling. A
/// component over them fails to load with a clear error; an agent built with
/// the SDK uses a fraction of each.
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const MAX_MEMORIES_PER_COMPONENT: u32 = 4;
const MAX_TABLES_PER_COMPONENT: u32 = 8;
const MIB: u64 = 1 << 20;
/// Low memory kept mapped between uses of a pool slot: a Rust agent's stack,
/// data and small heap live there.
const KEEP_RESIDENT_BYTES: usize = 4 << 20;

/// Runs agents. Cheap to clone; clones share the engine and its caps.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<SandboxInner>,
}

struct SandboxInner {
    engine: Engine,
    linker: Linker<AgentState>,
    cache: Option<ComponentCache>,
    slots: Arc<Semaphore>,
    /// The memory budget, one permit per MiB.
    memory: Arc<Semaphore>,
    /// The long-running lanes.
    lanes: Arc<Semaphore>,
    /// Each agent's bulkhead (`maxConcurrency`), by agent id and size.
    bulkheads: std::sync::Mutex<std::collections::HashMap<(String, u32), Arc<Semaphore>>>,
    egress: Arc<EgressShared>,
    config: SandboxConfig,
}

impl Sandbox {
    /// Creates the engine, linker, cache and caps, and starts the epoch tick.
    pub fn new(config: SandboxConfig) -> Result<Self, SetupError> {
        if config.max_instances == 0 {
            return Err(SetupError::Config("maxInstances must be at least 1".into()));
        }
        if config.epoch_tick_ms == 0 {
            return Err(SetupError::Config("epochTickMs must be at least 1".into()));
        }
        for (name, value) in [
            ("longRunningLanes", config.long_running_lanes),
            ("maxOutboundConnections", config.max_outbound_connections),
            ("maxConnectionsPerCall", config.max_connections_per_call),
            ("maxConnectionsPerAgent", config.max_connections_per_agent),
        ] {
            if value == 0 || value > Semaphore::MAX_PERMITS {
                return Err(SetupError::Config(format!(
                    "{name} must be between 1 and {}",
                    Semaphore::MAX_PERMITS
                )));
            }
        }
        if config.memory_budget_bytes < config.max_memory_bytes {
            return Err(SetupError::Config(format!(
                "memoryBudgetBytes ({}) must be at least maxMemoryBytes ({}), or no agent at the ceiling could ever run",
                config.memory_budget_bytes, config.max_memory_bytes
            )));
        }
        let budget_mib = usize::try_from(config.memory_budget_bytes / MIB)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        let engine = build_engine(&config)?;
        let mut linker = Linker::new(&engine);
        link(&mut linker).map_err(|e| SetupError::Engine(e.to_string()))?;
        let cache = match &config.cache_dir {
            Some(dir) => Some(ComponentCache::new(dir.clone(), &engine).map_err(|source| {
                SetupError::Cache {
                    path: dir.clone(),
                    source,
                }
            })?),
            None => None,
        };
        let egress = EgressShared::new(ConnectionShares {
            total: config.max_outbound_connections,
            per_call: config.max_connections_per_call,
            per_agent: config.max_connections_per_agent,
        })
        .map_err(|e| SetupError::Tls(e.to_string()))?;
        start_epoch_ticker(&engine, Duration::from_millis(config.epoch_tick_ms))
            .map_err(|e| SetupError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Sandbox {
            inner: Arc::new(SandboxInner {
                slots: Arc::new(Semaphore::new(config.max_instances as usize)),
                memory: Arc::new(Semaphore::new(budget_mib)),
                lanes: Arc::new(Semaphore::new(config.long_running_lanes)),
                bulkheads: Default::default(),
                engine,
                linker,
                cache,
                egress: Arc::new(egress),
                config,
            }),
        })
    }

    /// The settings this sandbox was built with.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// The wasmtime engine every invocation runs on (its pooling allocator,
    /// fuel and epoch settings), so a benchmark can measure bare wasmtime on
    /// the very same engine beside the sandbox.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }
}

fn build_engine(config: &SandboxConfig) -> Result<Engine, SetupError> {
    let mut c = Config::new();
    c.wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true);
    if config.allocator == Allocator::Pooling {
        let n = config.max_instances;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(MAX_CORE_INSTANCES_PER_COMPONENT))
            .total_memories(n.saturating_mul(MAX_MEMORIES_PER_COMPONENT))
            .total_tables(n.saturating_mul(MAX_TABLES_PER_COMPONENT))
            .total_stacks(n)
            .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
            .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
            .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
            .max_memory_size(config.max_memory_bytes as usize)
            .table_elements(policy::DEFAULT_TABLE_ELEMENTS as usize * 5)
            // Reset the pages an instance dirtied with memset, found by the
            // PAGEMAP_SCAN ioctl where the kernel has it (Linux 6.7+), instead
            // of an madvise and the TLB shootdown it costs on every call.
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES)
            .pagemap_scan(Enabled::Auto);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    if let Some(dir) = &config.cache_dir {
        let functions =
            FunctionCache::new(dir.join("functions")).map_err(|source| SetupError::Cache {
                path: dir.clone(),
                source,
            })?;
        c.enable_incremental_compilation(Arc::new(functions))
            .map_err(|e| SetupError::Engine(e.to_string()))?;
    }
    Engine::new(&c).map_err(|e| SetupError::Engine(e.to_string()))
}

/// Lower-case hex, as digests and cache keys are written.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn link(linker: &mut Linker<AgentState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::p2::bindings::filesystem;
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    // The filesystem again, over wasmtime-wasi's: quotas and link rules on
    // writable grants (see `files`).
    linker.allow_shadowing(true);
    filesystem::types::add_to_linker::<_, files::GuardedFiles>(linker, |s| s.guarded_files())?;
    filesystem::preopens::add_to_linker::<_, files::GuardedFiles>(linker, |s| s.guarded_files())?;
    linker.allow_shadowing(false);
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    bindings::orchestr8::agent::host::add_to_linker::<_, HasSelf<AgentState>>(linker, |s| s)?;
    bindings::orchestr8::agent::types::add_to_linker::<_, HasSelf<AgentState>>(linker, |s| s)?;
    Ok(())
}

/// Advances the engine's epoch every `tick` until the engine is dropped.
/// Each advance makes running agents yield (see `invoke`), which is what
/// keeps a CPU-bound agent from holding a runtime thread.
fn start_epoch_ticker(engine: &Engine, tick: Duration) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("orchestr8-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })
        .map(drop)
}
