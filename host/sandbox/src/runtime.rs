//! The engine and linker every module shares.

use std::hash::Hash;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::GatewayModule;
use super::state::GuestState;
use crate::metrics::Metrics;
use crate::twin::{Twin, Twins};
use fhirgate_core::digest::sha256_hex;
use fhirgate_core::files::write_atomically;

/// Sandbox limits for every call. The defaults leave each role an order of
/// magnitude above what the default modules need (they run in well under a
/// millisecond and a few MiB), and bound what a faulty module can cost.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock budget of one call, in milliseconds (epoch deadline).
    #[serde(default = "default_call_ms")]
    pub call_timeout_ms: u64,
    /// Linear memory one instance may grow to, in MiB.
    #[serde(default = "default_memory_mib")]
    pub memory_mib: usize,
    /// Wasm stack, in KiB. 512 KiB is Wasmtime's default; deep recursion
    /// traps instead of exhausting the host thread's stack.
    #[serde(default = "default_stack_kib")]
    pub stack_kib: usize,
    /// Module instances alive at once: calls running, shaping instances
    /// held while their request waits on its provider, and instances kept
    /// for reuse. A call that finds none free is answered 503 with
    /// `Retry-After`. Each reserves (not commits) 4 GiB of address space.
    #[serde(default = "default_max_instances")]
    pub max_instances: u32,
    /// Linear memory of the instances kept idle for reuse, across all
    /// modules, in MiB (their size, of which only the pages their calls
    /// wrote are resident); 0 keeps none. Past it an instance is dropped
    /// when its request ends instead of kept.
    #[serde(default = "default_idle_memory_mib")]
    pub idle_memory_mib: usize,
}

fn default_call_ms() -> u64 {
    200
}
fn default_memory_mib() -> usize {
    64
}
fn default_stack_kib() -> usize {
    512
}
fn default_max_instances() -> u32 {
    1000
}
fn default_idle_memory_mib() -> usize {
    256
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_timeout_ms: default_call_ms(),
            memory_mib: default_memory_mib(),
            stack_kib: default_stack_kib(),
            max_instances: default_max_instances(),
            idle_memory_mib: default_idle_memory_mib(),
        }
    }
}

/// Epoch tick. Deadlines are rounded up to whole ticks, so a runaway call
/// stops within about one tick of its budget; 2 ms keeps a failing request
/// within a few ms of `call_timeout_ms` while the ticker (one thread waking
/// 500 times a second) and the yield at each tick stay negligible.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Most `idle_memory_mib`: 64 GiB.
const MAX_IDLE_MEMORY_MIB: usize = 65_536;

/// Most `max_instances`: the pool reserves 4 GiB of address space for each.
const MAX_INSTANCES: u32 = 8192;

/// Bytes of each linear memory, table and stack kept resident between calls
/// and reset with `memset` instead of being unmapped: what a default module
/// touches shaping a large page. At most `max_instances` × this stays resident
/// after a burst.
const KEEP_RESIDENT: usize = 8 * 1024 * 1024;

/// Idle slots kept warm for the module that last ran in them, so that its
/// next instance reuses the memory image already in place (wasmtime divides
/// this among its pool shards). A slot used once keeps up to
/// `KEEP_RESIDENT` of memory; with few warm slots a new call reuses a slot
/// used before rather than a fresh one, so the slots ever used, and with
/// them resident memory, follow the most instances alive at once (per
/// shard) instead of growing towards wasmtime's default of 100 idle slots,
/// 800 MiB.
const WARM_SLOTS: u32 = 8;

/// Largest `memory_mib`, of the runtime or of one module: the pool reserves
/// 4 GiB per memory.
pub(crate) const MAX_MEMORY_MIB: usize = 4096;

/// The shared engine and linker.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<GuestState>,
    limits: Limits,
    metrics: Arc<Metrics>,
    /// Native twins, when the runtime was told to run the modules they
    /// stand for natively.
    twins: std::sync::OnceLock<Arc<dyn Twins>>,
    /// Instances kept idle for reuse, across every pool…
    idle: std::sync::atomic::AtomicUsize,
    /// …and the bytes of their linear memories.
    idle_bytes: std::sync::atomic::AtomicUsize,
    /// Compiled components by module digest: a few in memory (a rollback or
    /// an unchanged module in a reloaded policy is not compiled again) and,
    /// with a directory, all of them on disk across restarts.
    compiled: quick_cache::sync::Cache<String, Component>,
    artifacts: Option<PathBuf>,
    /// Identifies this engine's compiler settings in artifact names.
    engine_id: String,
}

/// Compiled components kept in memory.
const COMPILED_IN_MEMORY: usize = 16;

/// Writes a precompiled artifact and, beside it, its digest, each whole or
/// not at all.
fn keep_artifact(path: &std::path::Path, data: &[u8]) -> anyhow::Result<()> {
    // The digest last: an artifact without its digest is not used.
    write_atomically(path, data)?;
    write_atomically(&path.with_extension("cwasm.sha256"), sha256_hex(data).as_bytes())?;
    Ok(())
}

/// Whether the artifact at `path` is the one written: its digest matches.
fn artifact_intact(path: &std::path::Path) -> bool {
    let Ok(expected) = std::fs::read_to_string(path.with_extension("cwasm.sha256")) else { return false };
    std::fs::read(path).is_ok_and(|data| sha256_hex(&data) == expected.trim())
}

/// A `Hasher` over SHA-256, to name artifacts by the engine's settings.
struct ShaHasher(Sha256);

impl std::hash::Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        0
    }
}

impl Runtime {
    /// Builds the engine with `limits` and starts its epoch ticker, which
    /// stops by itself when the engine is dropped.
    pub fn new(limits: Limits) -> anyhow::Result<Self> {
        Self::with_artifacts(limits, None)
    }

    /// Like [`Runtime::new`], keeping precompiled modules in `artifacts`
    /// (created `0700` if missing) so that a restart or an activation of a
    /// module compiled before does not compile it again.
    pub fn with_artifacts(limits: Limits, artifacts: Option<PathBuf>) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(limits.stack_kib * 1024)
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        // Fresh instances are cheap with the pooling allocator: instance
        // slots, linear memories and async stacks are reserved once and
        // reset between instances (up to `KEEP_RESIDENT` in place, without
        // page faults) instead of mapped for each.
        anyhow::ensure!(
            (1..=MAX_MEMORY_MIB).contains(&limits.memory_mib),
            "`wasm.memory_mib` must be between 1 and {MAX_MEMORY_MIB}"
        );
        anyhow::ensure!(
            (16..=MAX_INSTANCES).contains(&limits.max_instances),
            "`wasm.max_instances` must be between 16 and {MAX_INSTANCES}"
        );
        anyhow::ensure!(
            limits.idle_memory_mib <= MAX_IDLE_MEMORY_MIB,
            "`wasm.idle_memory_mib` must be at most {MAX_IDLE_MEMORY_MIB}"
        );
        let slots = limits.max_instances;
        // Each store caps its own memories (the module's limit, or
        // `memory_mib`); the pool lets any slot grow to the largest a module
        // may be given.
        let memory_bytes = MAX_MEMORY_MIB * 1024 * 1024;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(slots)
            .total_core_instances(slots * 4)
            .total_memories(slots)
            .total_tables(slots * 4)
            .total_stacks(slots)
            .max_memory_size(memory_bytes)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .max_unused_warm_slots(WARM_SLOTS)
            // With `pagemap_scan` a slot is reset by rewriting only the pages
            // the last instance dirtied, instead of `memset`ting all it could
            // reach. In this wasmtime the scan sees only pages present in
            // memory, so a dirtied page swapped out would survive into the
            // next instance: it is used only on a host without swap.
            .pagemap_scan(if swap_in_use() { wasmtime::Enabled::No } else { wasmtime::Enabled::Auto })
            .table_keep_resident(KEEP_RESIDENT)
            .async_stack_keep_resident(KEEP_RESIDENT);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(anyhow::Error::from).context("creating the WebAssembly engine")?;

        let mut linker = Linker::new(&engine);
        // Modules get WASI only because the Rust standard library links it;
        // the context they see has no files, sockets, arguments or
        // environment (see `GuestState::new`).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from).context("linking WASI")?;
        GatewayModule::add_to_linker::<GuestState, HasSelf<GuestState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)
            .context("linking the gateway's host interfaces")?;

        let weak = engine.weak();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                // Ticks on a fixed schedule: sleeping a tick after each one
                // would add the sleep's overshoot to every tick, and a 100 ms
                // budget would run several ms long.
                let mut next = std::time::Instant::now();
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    next += EPOCH_TICK;
                    let now = std::time::Instant::now();
                    if next <= now {
                        // Late (a stalled or suspended process): start over
                        // rather than tick in a burst.
                        next = now + EPOCH_TICK;
                    }
                    std::thread::sleep(next - now);
                }
            })
            .context("starting the epoch ticker")?;

        if let Some(dir) = &artifacts {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .with_context(|| format!("restricting {}", dir.display()))?;
            }
        }
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_id = hex::encode(&hasher.0.finalize()[..8]);
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                linker,
                limits,
                metrics: Arc::default(),
                twins: std::sync::OnceLock::new(),
                idle: std::sync::atomic::AtomicUsize::new(0),
                idle_bytes: std::sync::atomic::AtomicUsize::new(0),
                compiled: quick_cache::sync::Cache::new(COMPILED_IN_MEMORY),
                artifacts,
                engine_id,
            }),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn linker(&self) -> &Linker<GuestState> {
        &self.inner.linker
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// `bytes` compiled for this engine: from memory, from a precompiled
    /// artifact on disk, or compiled now (and kept in both).
    pub fn compile(&self, bytes: &[u8]) -> anyhow::Result<Component> {
        let digest = sha256_hex(bytes);
        if let Some(component) = self.inner.compiled.get(&digest) {
            return Ok(component);
        }
        let artifact =
            self.inner.artifacts.as_ref().map(|d| d.join(format!("{digest}-{}.cwasm", self.inner.engine_id)));
        if let Some(path) = artifact.as_ref().filter(|p| p.exists()).filter(|p| artifact_intact(p)) {
            // SAFETY: the artifact was written by this gateway, for this
            // engine's settings (its name says so), into its own data
            // directory, and is byte for byte what it wrote (its digest,
            // kept beside it, matches); whoever can write there can already
            // change the gateway's state.
            match unsafe { Component::deserialize_file(self.engine(), path) } {
                Ok(component) => {
                    self.inner.compiled.insert(digest, component.clone());
                    return Ok(component);
                }
                Err(e) => {
                    tracing::warn!(artifact = %path.display(), error = %e, "unusable precompiled module; compiling again")
                }
            }
        }
        let component = Component::from_binary(self.engine(), bytes).map_err(anyhow::Error::from)?;
        if let Some(path) = &artifact {
            let written =
                component.serialize().map_err(anyhow::Error::from).and_then(|data| keep_artifact(path, &data));
            if let Err(e) = written {
                tracing::warn!(artifact = %path.display(), error = %e, "could not keep the precompiled module");
            }
        }
        self.inner.compiled.insert(digest, component.clone());
        Ok(component)
    }

    /// Runs the modules `twins` knows natively from now on (modules loaded
    /// after this call): the baseline a benchmark compares the sandbox with.
    /// Set once; a second call is ignored.
    pub fn run_natively(&self, twins: Arc<dyn Twins>) {
        if self.inner.twins.set(twins).is_ok() {
            tracing::warn!("built-in modules run natively, outside the sandbox: a benchmark baseline only");
        }
    }

    /// The native twin of the module with `digest`, when running natively.
    pub fn twin(&self, digest: &str) -> Option<Arc<dyn Twin>> {
        self.inner.twins.get()?.twin(digest)
    }

    /// Counts one more instance kept idle, with `bytes` of linear memory,
    /// unless a quarter of `max_instances` already are (the rest stay free
    /// for calls) or their memories would pass `idle_memory_mib`.
    pub(crate) fn keep_idle(&self, bytes: usize) -> bool {
        use std::sync::atomic::Ordering::{AcqRel, Acquire};
        let cap = (self.inner.limits.max_instances / 4) as usize;
        let budget = self.inner.limits.idle_memory_mib.saturating_mul(1024 * 1024);
        let counted = self.inner.idle.fetch_update(AcqRel, Acquire, |n| (n < cap).then_some(n + 1)).is_ok();
        if !counted {
            return false;
        }
        let within = self
            .inner
            .idle_bytes
            .fetch_update(AcqRel, Acquire, |held| held.checked_add(bytes).filter(|total| *total <= budget))
            .is_ok();
        if !within {
            self.inner.idle.fetch_sub(1, AcqRel);
        }
        within
    }

    /// Counts `n` idle instances fewer, with `bytes` of memory in all
    /// (taken for a call, or dropped).
    pub(crate) fn release_idle(&self, n: usize, bytes: usize) {
        self.inner.idle.fetch_sub(n, std::sync::atomic::Ordering::AcqRel);
        self.inner.idle_bytes.fetch_sub(bytes, std::sync::atomic::Ordering::AcqRel);
    }

    /// Where every module call is counted.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }
}

/// Whether the host has swap space in use or available (`/proc/swaps` lists
/// a device or file); unknown counts as yes.
fn swap_in_use() -> bool {
    match std::fs::read_to_string("/proc/swaps") {
        Ok(text) => text.lines().skip(1).any(|l| !l.trim().is_empty()),
        Err(_) => true,
    }
}
