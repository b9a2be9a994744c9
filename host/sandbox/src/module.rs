//! A loaded module: compiled once, pre-instantiated, and called through a
//! fresh instance per call so that a trap never outlives the request that
//! caused it.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use fhirgate_core::digest::sha256_hex;
use wasmtime::component::InstancePre;
use wasmtime::{Store, Trap, UpdateDeadline};

use super::bindings::{routing, shaping, token_validation, types};
use super::runtime::Runtime;
use super::state::{CallContext, GuestState};
use crate::metrics::ModuleLabels;
pub use fhirgate_core::modules::{GuestFault, Role};

/// A compiled, pre-instantiated module.
pub struct Module {
    runtime: Runtime,
    name: Arc<str>,
    digest: Arc<str>,
    pre: InstancePre<GuestState>,
    validation: Option<token_validation::GuestIndices>,
    routing: Option<routing::GuestIndices>,
    shaping: Option<shaping::GuestIndices>,
}

/// What a module may import: the gateway's interfaces, and the WASI a
/// language's standard library links (its context has no files, network,
/// environment or arguments: see `GuestState::new`). Network interfaces are
/// refused at load, so a module that would open a connection never runs.
const GRANTED: &[&str] =
    &["fhirgate:policy/", "wasi:cli/", "wasi:io/", "wasi:clocks/", "wasi:random/", "wasi:filesystem/"];

impl Module {
    /// Compiles `bytes` and links it against the host interfaces. Fails if the
    /// module is not a component or imports anything the gateway does not
    /// grant.
    pub fn load(runtime: &Runtime, name: &str, bytes: &[u8]) -> anyhow::Result<Module> {
        let component =
            runtime.compile(bytes).with_context(|| format!("module `{name}` is not a valid WebAssembly component"))?;
        let refused: Vec<String> = component
            .component_type()
            .imports(runtime.engine())
            .map(|(import, _)| import.to_owned())
            .filter(|import| !GRANTED.iter().any(|g| import.starts_with(g)))
            .collect();
        if !refused.is_empty() {
            anyhow::bail!(
                "module `{name}` imports {}, which the gateway does not grant (modules get the gateway's own \
                 interfaces and the parts of WASI a language runtime needs: no sockets, no HTTP)",
                refused.join(", ")
            );
        }
        let pre = runtime
            .linker()
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("module `{name}` imports something the gateway does not provide"))?;
        Ok(Module {
            runtime: runtime.clone(),
            name: name.into(),
            digest: sha256_hex(bytes).into(),
            validation: token_validation::GuestIndices::new(&pre).ok(),
            routing: routing::GuestIndices::new(&pre).ok(),
            shaping: shaping::GuestIndices::new(&pre).ok(),
            pre,
        })
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The engine the module runs on (and its metrics).
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub fn digest(&self) -> &Arc<str> {
        &self.digest
    }

    /// The names of the interfaces the module imports.
    pub fn import_names(&self) -> Vec<String> {
        let component = self.pre.component();
        component.component_type().imports(self.runtime.engine()).map(|(name, _)| name.to_owned()).collect()
    }

    /// Whether the module exports the interface of `role`.
    pub fn exports(&self, role: Role) -> bool {
        match role {
            Role::TokenValidation => self.validation.is_some(),
            Role::Routing => self.routing.is_some(),
            Role::Shaping => self.shaping.is_some(),
        }
    }

    /// A fresh store for one call, under the sandbox limits: memory capped,
    /// and an epoch callback that yields to the executor every tick and
    /// interrupts the call when its time budget is spent.
    fn store(&self, ctx: CallContext) -> Store<GuestState> {
        let limits = self.runtime.limits();
        let state = GuestState::new(ctx, limits.memory_mib.saturating_mul(1024 * 1024), self.runtime.budget_ticks());
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut cx| {
            let state = cx.data_mut();
            if state.ticks_left == 0 {
                return Ok(UpdateDeadline::Interrupt);
            }
            state.ticks_left -= 1;
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }

    /// Bounds a call in wall-clock time too: epoch interruption stops a
    /// module that computes, this stops one that waits in a host call (a
    /// WASI sleep or poll). Dropping the future drops the instance.
    /// `waits` is the time the call may spend in upstream reads.
    async fn bounded<R>(
        &self,
        waits: std::time::Duration,
        call: impl std::future::Future<Output = wasmtime::Result<R>>,
    ) -> wasmtime::Result<R> {
        let budget = std::time::Duration::from_millis(self.runtime.limits().call_timeout_ms)
            + super::runtime::EPOCH_TICK
            + waits;
        match tokio::time::timeout(budget, call).await {
            Ok(result) => result,
            Err(_) => Err(wasmtime::Error::from(Trap::Interrupt)),
        }
    }

    /// Counts one call in the runtime's metrics.
    fn record<T>(
        &self,
        role: Role,
        partner: &Option<Arc<str>>,
        started: Instant,
        memory_bytes: usize,
        result: &Result<Result<T, types::Denial>, GuestFault>,
    ) {
        let Some(partner) = partner else { return };
        let outcome = match result {
            Ok(Ok(_)) => "ok",
            Ok(Err(_)) => "denied",
            Err(fault) => fault.kind(),
        };
        let labels = ModuleLabels {
            partner: partner.clone(),
            role: role.name(),
            module: self.name.clone(),
            digest: self.digest.clone(),
        };
        self.runtime.metrics().module_call(&labels, outcome, started.elapsed(), memory_bytes);
    }

    fn classify(&self, err: wasmtime::Error) -> GuestFault {
        if err.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() {
            tracing::warn!(module = %self.name, "every module instance slot is in use");
            return GuestFault::Busy;
        }
        if let Some(trap) = err.downcast_ref::<Trap>() {
            return match trap {
                Trap::Interrupt => GuestFault::Timeout(self.runtime.limits().call_timeout_ms),
                other => {
                    tracing::warn!(module = %self.name, trap = %other, "module trapped");
                    GuestFault::Trap(other.to_string())
                }
            };
        }
        let text = format!("{err:#}");
        if text.contains("growing memory") || text.contains("growing table") {
            GuestFault::MemoryLimit
        } else {
            tracing::warn!(module = %self.name, error = %text, "module call failed");
            GuestFault::Trap(text)
        }
    }

    /// The token validation export.
    pub async fn validate(
        &self,
        ctx: CallContext,
        token: &str,
        request: &types::Request,
    ) -> Result<Result<types::Claims, types::Denial>, GuestFault> {
        let indices = self.validation.as_ref().ok_or(GuestFault::NotExported(Role::TokenValidation))?;
        let waits = ctx.reads.as_ref().map(|r| r.budget()).unwrap_or_default();
        let (partner, started) = (ctx.counted.then(|| ctx.partner.clone()), Instant::now());
        let mut store = self.store(ctx);
        let result = self
            .bounded(waits, async {
                let instance = self.pre.instantiate_async(&mut store).await?;
                let guest = indices.load(&mut store, &instance)?;
                guest.call_validate(&mut store, token, request).await
            })
            .await
            .map_err(|e| self.classify(e));
        self.record(Role::TokenValidation, &partner, started, store.data().limits.memory_total, &result);
        result
    }

    /// The routing export.
    pub async fn route(
        &self,
        ctx: CallContext,
        claims: &types::Claims,
        request: &types::Request,
    ) -> Result<Result<routing::Target, types::Denial>, GuestFault> {
        let indices = self.routing.as_ref().ok_or(GuestFault::NotExported(Role::Routing))?;
        let waits = ctx.reads.as_ref().map(|r| r.budget()).unwrap_or_default();
        let (partner, started) = (ctx.counted.then(|| ctx.partner.clone()), Instant::now());
        let mut store = self.store(ctx);
        let result = self
            .bounded(waits, async {
                let instance = self.pre.instantiate_async(&mut store).await?;
                let guest = indices.load(&mut store, &instance)?;
                guest.call_route(&mut store, claims, request).await
            })
            .await
            .map_err(|e| self.classify(e));
        self.record(Role::Routing, &partner, started, store.data().limits.memory_total, &result);
        result
    }

    /// The request half of the shaping export.
    pub async fn shape_request(
        &self,
        ctx: CallContext,
        exchange: &shaping::Exchange,
        request: &shaping::UpstreamRequest,
    ) -> Result<Result<shaping::UpstreamRequest, types::Denial>, GuestFault> {
        let indices = self.shaping.as_ref().ok_or(GuestFault::NotExported(Role::Shaping))?;
        let waits = ctx.reads.as_ref().map(|r| r.budget()).unwrap_or_default();
        let (partner, started) = (ctx.counted.then(|| ctx.partner.clone()), Instant::now());
        let mut store = self.store(ctx);
        let result = self
            .bounded(waits, async {
                let instance = self.pre.instantiate_async(&mut store).await?;
                let guest = indices.load(&mut store, &instance)?;
                guest.call_shape_request(&mut store, exchange, request).await
            })
            .await
            .map_err(|e| self.classify(e));
        self.record(Role::Shaping, &partner, started, store.data().limits.memory_total, &result);
        result
    }

    /// One instance of the shaping export kept for repeated calls, to
    /// measure a module's own speed apart from instantiation. The gateway
    /// itself never reuses an instance: every request gets a fresh one.
    pub async fn warm_shaper(&self, ctx: CallContext) -> Result<WarmShaper, GuestFault> {
        let indices = self.shaping.as_ref().ok_or(GuestFault::NotExported(Role::Shaping))?;
        let mut store = self.store(ctx);
        let guest = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            indices.load(&mut store, &instance)
        }
        .await
        .map_err(|e| self.classify(e))?;
        Ok(WarmShaper { store, guest, ticks: self.runtime.budget_ticks() })
    }

    /// The response half of the shaping export.
    pub async fn shape_response(
        &self,
        ctx: CallContext,
        exchange: &shaping::Exchange,
        status: u16,
        body: &[u8],
    ) -> Result<Result<shaping::Shaped, types::Denial>, GuestFault> {
        let indices = self.shaping.as_ref().ok_or(GuestFault::NotExported(Role::Shaping))?;
        let waits = ctx.reads.as_ref().map(|r| r.budget()).unwrap_or_default();
        let (partner, started) = (ctx.counted.then(|| ctx.partner.clone()), Instant::now());
        let mut store = self.store(ctx);
        let result = self
            .bounded(waits, async {
                let instance = self.pre.instantiate_async(&mut store).await?;
                let guest = indices.load(&mut store, &instance)?;
                guest.call_shape_response(&mut store, exchange, status, body).await
            })
            .await
            .map_err(|e| self.classify(e));
        self.record(Role::Shaping, &partner, started, store.data().limits.memory_total, &result);
        result
    }
}

/// A shaping instance kept across calls (see [`Module::warm_shaper`]).
pub struct WarmShaper {
    store: Store<GuestState>,
    guest: shaping::Guest,
    ticks: u64,
}

impl WarmShaper {
    /// Calls `shape-response` on the kept instance, with a fresh time budget.
    pub async fn shape_response(
        &mut self,
        exchange: &shaping::Exchange,
        status: u16,
        body: &[u8],
    ) -> wasmtime::Result<Result<shaping::Shaped, types::Denial>> {
        self.store.data_mut().ticks_left = self.ticks;
        self.guest.call_shape_response(&mut self.store, exchange, status, body).await
    }

    /// Bytes of linear memory the instance holds now.
    pub fn memory_bytes(&self) -> usize {
        self.store.data().limits.memory_total
    }
}
