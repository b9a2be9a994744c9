//! The engine and linker every module shares.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::GatewayModule;
use super::state::GuestState;

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

impl Default for Limits {
    fn default() -> Self {
        Limits { call_timeout_ms: default_call_ms(), memory_mib: default_memory_mib(), stack_kib: default_stack_kib() }
    }
}

/// Epoch tick. Deadlines are rounded up to whole ticks; 5 ms keeps the
/// ticker's cost negligible while a runaway call still stops within a few ms
/// of its budget.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Module calls that can run at once, across all modules. Each holds a slot
/// while it runs: well under a millisecond for the default modules, up to
/// the read budget (5 s) for a shaping call waiting on upstream reads. A call
/// that finds every slot taken is answered 503 with `Retry-After`. Each slot
/// reserves (not commits) 4 GiB of address space for its memory.
const POOL_SLOTS: u32 = 500;

/// Bytes of each linear memory, table and stack kept resident between calls
/// and reset with `memset` instead of being unmapped: what a default module
/// touches shaping a large page. At most `POOL_SLOTS` × this stays resident
/// after a burst.
const KEEP_RESIDENT: usize = 8 * 1024 * 1024;

/// Largest `memory_mib`: the pool reserves 4 GiB per memory.
const MAX_MEMORY_MIB: usize = 4096;

/// The shared engine and linker.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<GuestState>,
    limits: Limits,
}

impl Runtime {
    /// Builds the engine with `limits` and starts its epoch ticker, which
    /// stops by itself when the engine is dropped.
    pub fn new(limits: Limits) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(limits.stack_kib * 1024)
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        // Every call gets a fresh instance; the pooling allocator makes that
        // cheap: instance slots, linear memories and async stacks are
        // reserved once and reset between calls (up to `KEEP_RESIDENT` with
        // `memset`, without page faults) instead of mapped per call.
        anyhow::ensure!(
            (1..=MAX_MEMORY_MIB).contains(&limits.memory_mib),
            "`wasm.memory_mib` must be between 1 and {MAX_MEMORY_MIB}"
        );
        let memory_bytes = limits.memory_mib.saturating_mul(1024 * 1024);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_SLOTS)
            .total_core_instances(POOL_SLOTS * 4)
            .total_memories(POOL_SLOTS)
            .total_tables(POOL_SLOTS * 4)
            .total_stacks(POOL_SLOTS)
            .max_memory_size(memory_bytes)
            .linear_memory_keep_resident(KEEP_RESIDENT)
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
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .context("starting the epoch ticker")?;

        Ok(Runtime { inner: Arc::new(Inner { engine, linker, limits }) })
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

    /// The budget of one call, in epoch ticks. A call yields to the executor
    /// at every tick and is interrupted when its budget is spent.
    pub fn budget_ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_millis() as u64;
        self.inner.limits.call_timeout_ms.div_ceil(tick).max(1)
    }
}
