//! A loaded module: compiled once, pre-instantiated, and called through an
//! instance that is either fresh for the call or kept by a [`Lease`] for the
//! calls of one request and, under the promise of [`crate::reuse`], for
//! further requests of the same partner and tenant. An instance that
//! faulted is never called again, so a trap never outlives its request.
//!
//! [`Lease`]: crate::reuse::Lease

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use fhirgate_core::digest::sha256_hex;
use wasmtime::component::InstancePre;
use wasmtime::{Store, Trap, UpdateDeadline};

use super::bindings::{routing, shaping, token_validation, types};
use super::runtime::Runtime;
use super::state::{CallContext, GuestState};
use crate::calls::{Answer, Ask, Outcome};
use crate::metrics::ModuleLabels;
pub use fhirgate_core::modules::{GuestFault, Role};

/// Takes the answer of the expected kind out of [`Module::run`]'s.
macro_rules! answer {
    ($outcome:expr, $kind:ident) => {
        match $outcome {
            Ok(Ok($crate::Answer::$kind(a))) => Ok(Ok(a)),
            Ok(Ok(_)) => Err($crate::GuestFault::Trap("the call was answered in another call's kind".into())),
            Ok(Err(d)) => Ok(Err(d)),
            Err(f) => Err(f),
        }
    };
}
pub(crate) use answer;

/// A compiled, pre-instantiated module.
pub struct Module {
    runtime: Runtime,
    name: Arc<str>,
    digest: Arc<str>,
    pre: InstancePre<GuestState>,
    validation: Option<token_validation::GuestIndices>,
    routing: Option<routing::GuestIndices>,
    shaping: Option<shaping::GuestIndices>,
    /// The same code compiled into the host, when the runtime runs this
    /// module's digest natively (a benchmark's baseline; never a partner's
    /// module).
    twin: Option<Arc<dyn crate::twin::Twin>>,
    /// Per role, the partner this module's calls are counted for and its
    /// figures, looked up once.
    figures: [std::sync::OnceLock<(Arc<str>, crate::metrics::ModuleFigures)>; 3],
    /// This module's memory and time: the runtime's unless its policy says.
    limits: Own,
}

/// A module's own limits, where its policy gives them: a language runtime
/// (JavaScript, Python) may need more memory or time than the `[wasm]`
/// defaults, a small router less.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ModuleLimits {
    /// Linear memory one instance may grow to, in MiB.
    pub memory_mib: Option<usize>,
    /// Wall-clock budget of one call, in milliseconds.
    pub call_timeout_ms: Option<u64>,
}

/// Most `call_timeout_ms` a module may be given: a minute.
pub const MAX_CALL_TIMEOUT_MS: u64 = 60_000;

/// The limits a module's calls run under.
#[derive(Debug, Clone, Copy)]
struct Own {
    memory_bytes: usize,
    call_timeout_ms: u64,
    ticks: u64,
}

impl Own {
    fn of(runtime: &Runtime, limits: ModuleLimits) -> anyhow::Result<Own> {
        let memory_mib = limits.memory_mib.unwrap_or(runtime.limits().memory_mib);
        anyhow::ensure!(
            (1..=crate::runtime::MAX_MEMORY_MIB).contains(&memory_mib),
            "`memory_mib` must be between 1 and {}",
            crate::runtime::MAX_MEMORY_MIB
        );
        let call_timeout_ms = limits.call_timeout_ms.unwrap_or(runtime.limits().call_timeout_ms);
        anyhow::ensure!(
            (1..=MAX_CALL_TIMEOUT_MS).contains(&call_timeout_ms),
            "`call_timeout_ms` must be between 1 and {MAX_CALL_TIMEOUT_MS}"
        );
        let tick = super::runtime::EPOCH_TICK.as_millis() as u64;
        Ok(Own {
            memory_bytes: memory_mib.saturating_mul(1024 * 1024),
            call_timeout_ms,
            ticks: call_timeout_ms.div_ceil(tick).max(1),
        })
    }
}

/// What a module may import: the gateway's interfaces, and the WASI a
/// language's runtime links (its context has no files, network, environment
/// or arguments: see `GuestState::new`). `wasi:sockets` is linked because
/// language runtimes import it whether or not a module uses it (CPython
/// does), and every use of it is refused: no address may be bound, connected
/// to or looked up. `wasi:http` is not granted: a module that would make
/// HTTP requests never loads.
const GRANTED: &[&str] =
    &["fhirgate:policy/", "wasi:cli/", "wasi:io/", "wasi:clocks/", "wasi:random/", "wasi:filesystem/", "wasi:sockets/"];

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
                 interfaces and the parts of WASI a language runtime needs: no HTTP)",
                refused.join(", ")
            );
        }
        let pre = runtime
            .linker()
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("module `{name}` imports something the gateway does not provide"))?;
        let digest = sha256_hex(bytes);
        Ok(Module {
            limits: Own::of(runtime, ModuleLimits::default())?,
            runtime: runtime.clone(),
            name: name.into(),
            twin: runtime.twin(&digest),
            figures: Default::default(),
            digest: digest.into(),
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

    /// The module with its own memory and time limits in place of the
    /// runtime's (those it does not give stay the runtime's).
    pub fn with_limits(mut self, limits: ModuleLimits) -> anyhow::Result<Module> {
        self.limits = Own::of(&self.runtime, limits)?;
        Ok(self)
    }

    /// The wall-clock budget of one call of this module, in milliseconds.
    pub fn call_timeout_ms(&self) -> u64 {
        self.limits.call_timeout_ms
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
        let state = GuestState::new(ctx, self.limits.memory_bytes, self.limits.ticks);
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
        let budget = std::time::Duration::from_millis(self.limits.call_timeout_ms) + super::runtime::EPOCH_TICK + waits;
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
        fresh: bool,
        result: &Result<Result<T, types::Denial>, GuestFault>,
    ) {
        let Some(partner) = partner else { return };
        let elapsed = started.elapsed();
        let answered = match result {
            Ok(Ok(_)) => Some(false),
            Ok(Err(_)) => Some(true),
            Err(_) => None,
        };
        let kept = &self.figures[role as usize];
        if let (Some(denied), Some((of, figures))) = (answered, kept.get())
            && **of == **partner
        {
            figures.answered(denied, elapsed, memory_bytes, fresh);
            return;
        }
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
        // A call refused for want of a slot made no instance.
        let fresh = fresh && outcome != "busy";
        self.runtime.metrics().module_call(&labels, outcome, elapsed, memory_bytes, fresh);
        // The partner of the first call is the one of every later call but
        // in a test's harness: its figures are kept for them.
        let _ = kept.set((partner.clone(), self.runtime.metrics().module_figures(&labels)));
    }

    /// The fault `err` is; `said`: what the module wrote to stderr during
    /// the call (a panic message), for the log and the fault's detail.
    fn classify(&self, err: wasmtime::Error, said: Option<String>) -> GuestFault {
        if err.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() {
            tracing::warn!(module = %self.name, "every module instance slot is in use");
            return GuestFault::Busy;
        }
        if let Some(trap) = err.downcast_ref::<Trap>() {
            return match trap {
                Trap::Interrupt => GuestFault::Timeout(self.limits.call_timeout_ms),
                other => {
                    let said = said.unwrap_or_default();
                    tracing::warn!(module = %self.name, trap = %other, stderr = %said, "module trapped");
                    GuestFault::Trap(with_said(other.to_string(), &said))
                }
            };
        }
        let text = format!("{err:#}");
        if text.contains("growing memory") || text.contains("growing table") {
            GuestFault::MemoryLimit
        } else {
            let said = said.unwrap_or_default();
            tracing::warn!(module = %self.name, error = %text, stderr = %said, "module call failed");
            GuestFault::Trap(with_said(text, &said))
        }
    }

    /// A new instance for one call, or a lease's first.
    async fn instantiate(&self, ctx: CallContext) -> wasmtime::Result<Instance> {
        let mut store = self.store(ctx);
        let instance = self.pre.instantiate_async(&mut store).await?;
        let initial_memory = store.data().limits.memory_total;
        Ok(Instance { store, instance, guests: Guests::default(), initial_memory })
    }

    /// Runs `ask` on the instance in `slot` (a new one when it holds none),
    /// under the call's limits, and counts it. After a fault, or when the call
    /// left the instance's memory larger than it started, the instance is
    /// dropped: nothing of it is ever called again.
    pub(crate) async fn run(&self, slot: &mut Slot, ctx: CallContext, ask: Ask<'_>) -> Outcome<Answer> {
        let role = ask.role();
        if !self.exports(role) {
            return Err(GuestFault::NotExported(role));
        }
        let waits = ctx.reads.as_ref().map(|r| r.budget()).unwrap_or_default();
        let (partner, started) = (ctx.counted.then(|| ctx.partner.clone()), Instant::now());
        if let Some(twin) = &self.twin {
            let result = Ok(twin.answer(&ctx, ask).await);
            self.record(role, &partner, started, 0, false, &result);
            return result;
        }
        let ticks = self.limits.ticks;
        let fresh = slot.instance.is_none();
        slot.in_call = true;
        let result = self
            .bounded(waits, async {
                let instance = match slot.instance.take() {
                    Some(mut instance) => {
                        let state = instance.store.data_mut();
                        state.forget_stderr();
                        state.ctx = ctx;
                        state.ticks_left = ticks;
                        instance.store.set_epoch_deadline(1);
                        instance
                    }
                    None => self.instantiate(ctx).await?,
                };
                slot.instance.insert(instance).call(self, ask).await
            })
            .await
            .map_err(|e| self.classify(e, slot.instance.as_ref().and_then(|i| i.store.data().stderr_text())));
        slot.in_call = false;
        let memory = slot.instance.as_ref().map_or(0, |i| i.store.data().limits.memory_total);
        if result.is_err() || slot.instance.as_ref().is_some_and(|i| memory > i.initial_memory) {
            slot.instance = None;
        }
        self.record(role, &partner, started, memory, fresh, &result);
        result
    }

    /// The token validation export, on a fresh instance.
    pub async fn validate(
        &self,
        ctx: CallContext,
        token: &str,
        request: &types::Request,
    ) -> Result<Result<types::Claims, types::Denial>, GuestFault> {
        answer!(self.run(&mut Slot::default(), ctx, Ask::Validate { token, request }).await, Claims)
    }

    /// The routing export, on a fresh instance.
    pub async fn route(
        &self,
        ctx: CallContext,
        claims: &types::Claims,
        request: &types::Request,
    ) -> Result<Result<routing::Target, types::Denial>, GuestFault> {
        answer!(self.run(&mut Slot::default(), ctx, Ask::Route { claims, request }).await, Target)
    }

    /// The request half of the shaping export, on a fresh instance.
    pub async fn shape_request(
        &self,
        ctx: CallContext,
        exchange: &shaping::Exchange,
        request: &shaping::UpstreamRequest,
    ) -> Result<Result<shaping::UpstreamRequest, types::Denial>, GuestFault> {
        answer!(self.run(&mut Slot::default(), ctx, Ask::ShapeRequest { exchange, request }).await, Request)
    }

    /// The response half of the shaping export, on a fresh instance.
    pub async fn shape_response(
        &self,
        ctx: CallContext,
        exchange: &shaping::Exchange,
        status: u16,
        body: &[u8],
    ) -> Result<Result<shaping::Shaped, types::Denial>, GuestFault> {
        answer!(self.run(&mut Slot::default(), ctx, Ask::ShapeResponse { exchange, status, body }).await, Shaped)
    }

    /// One instance of the shaping export kept for repeated calls, to
    /// measure a module's own speed apart from instantiation.
    pub async fn warm_shaper(&self, ctx: CallContext) -> Result<WarmShaper, GuestFault> {
        let indices = self.shaping.as_ref().ok_or(GuestFault::NotExported(Role::Shaping))?;
        let mut store = self.store(ctx);
        let guest = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            indices.load(&mut store, &instance)
        }
        .await
        .map_err(|e| self.classify(e, store.data().stderr_text()))?;
        Ok(WarmShaper { store, guest, ticks: self.limits.ticks })
    }
}

/// Where a call finds its instance: none (a new one is made), or the one a
/// lease keeps between its calls.
#[derive(Default)]
pub(crate) struct Slot {
    pub(crate) instance: Option<Instance>,
    /// Set while a call runs: a call dropped half-way (its request
    /// cancelled) leaves it set, and the instance is never used again.
    pub(crate) in_call: bool,
}

/// The role exports of one instance, looked up on first use.
#[derive(Default)]
struct Guests {
    validation: Option<token_validation::Guest>,
    routing: Option<routing::Guest>,
    shaping: Option<shaping::Guest>,
}

/// One instantiated module with its store.
pub(crate) struct Instance {
    store: Store<GuestState>,
    instance: wasmtime::component::Instance,
    guests: Guests,
    /// Linear memory right after instantiation: a call that leaves more
    /// retires the instance.
    initial_memory: usize,
}

impl Instance {
    /// The size of its linear memory.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.store.data().limits.memory_total
    }

    /// Lets go of what the last request's calls could reach (its directory
    /// view, its provider reads): an idle instance keeps none of it.
    pub(crate) fn idle(&mut self) {
        let ctx = &mut self.store.data_mut().ctx;
        ctx.reads = None;
        ctx.directory = crate::state::no_directory();
        ctx.request_id.clear();
    }

    async fn call(&mut self, module: &Module, ask: Ask<'_>) -> wasmtime::Result<Result<Answer, types::Denial>> {
        Ok(match ask {
            Ask::Validate { token, request } => {
                let guest = match &self.guests.validation {
                    Some(g) => g.clone(),
                    None => {
                        let indices = module.validation.as_ref().ok_or_else(not_exported)?;
                        let g = indices.load(&mut self.store, &self.instance)?;
                        self.guests.validation.insert(g).clone()
                    }
                };
                guest.call_validate(&mut self.store, token, request).await?.map(Answer::Claims)
            }
            Ask::Route { claims, request } => {
                let guest = match &self.guests.routing {
                    Some(g) => g.clone(),
                    None => {
                        let indices = module.routing.as_ref().ok_or_else(not_exported)?;
                        let g = indices.load(&mut self.store, &self.instance)?;
                        self.guests.routing.insert(g).clone()
                    }
                };
                guest.call_route(&mut self.store, claims, request).await?.map(Answer::Target)
            }
            Ask::ShapeRequest { exchange, request } => {
                let guest = self.shaping(module)?;
                guest.call_shape_request(&mut self.store, exchange, request).await?.map(Answer::Request)
            }
            Ask::ShapeResponse { exchange, status, body } => {
                let guest = self.shaping(module)?;
                guest.call_shape_response(&mut self.store, exchange, status, body).await?.map(Answer::Shaped)
            }
        })
    }

    fn shaping(&mut self, module: &Module) -> wasmtime::Result<shaping::Guest> {
        if let Some(g) = &self.guests.shaping {
            return Ok(g.clone());
        }
        let indices = module.shaping.as_ref().ok_or_else(not_exported)?;
        let guest = indices.load(&mut self.store, &self.instance)?;
        Ok(self.guests.shaping.insert(guest).clone())
    }
}

/// A fault's detail, followed by what the module wrote to stderr, if
/// anything.
fn with_said(detail: String, said: &str) -> String {
    if said.is_empty() { detail } else { format!("{detail}: {said}") }
}

fn not_exported() -> wasmtime::Error {
    wasmtime::Error::msg("the module does not export the interface")
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
