//! Instances kept for a request's calls, and reused across requests under a
//! stated promise.
//!
//! A [`Lease`] is the instance one request uses for all its calls to one
//! module: a shaper's request and response calls run on the same instance,
//! held across the upstream wait. When the request ends, the lease gives the
//! instance back to its [`Pool`], which keeps it for the next request **only
//! if all of these hold**:
//!
//! - the next request is for the same partner, the same tenant, the same
//!   module digest and the same module configuration (a pool belongs to one
//!   binding of one module in one policy, and keeps its instances by
//!   tenant);
//! - the instance served one request at a time (a lease is owned by one
//!   request) and fewer than its limit of requests: a number drawn at random
//!   between half of the module's `reuse` setting and all of it, so that no
//!   one can time a request to an instance's last;
//! - none of its calls trapped, ran out of time or memory, failed in the host
//!   or was cancelled half-way (the request dropped), and its linear memory
//!   is no larger than right after instantiation;
//! - the pool was not retired: activating another policy retires the
//!   previous one's pools at once, and instances returned to a retired pool
//!   are dropped.
//!
//! Otherwise the instance is dropped, and the next request gets a fresh one.
//! Token validation never reuses an instance (its tenant is what it decides),
//! and a module with `reuse = 0` gets a fresh instance per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::bindings::{routing, shaping, types};
use super::calls::{Answer, Ask, Outcome};
use super::module::{Instance, Module, Slot, answer};
use super::state::CallContext;

/// How many requests one instance may serve (`reuse` in a policy's module
/// section); 0 or 1: a fresh instance per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reuse {
    pub max_requests: u32,
}

impl Reuse {
    /// The default: an instance serves between 32 and 64 requests.
    pub const DEFAULT: Reuse = Reuse { max_requests: 64 };
    /// A fresh instance for every request.
    pub const OFF: Reuse = Reuse { max_requests: 0 };

    pub fn is_on(self) -> bool {
        self.max_requests > 1
    }

    /// The limit of one new instance: uniformly between half the setting
    /// (rounded up) and the setting.
    fn draw(self) -> u32 {
        let low = self.max_requests.div_ceil(2);
        let span = self.max_requests - low + 1;
        let mut bytes = [0u8; 4];
        let random = match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes) {
            Ok(()) => u32::from_le_bytes(bytes),
            // No randomness: the lowest limit, never more than the setting.
            Err(_) => 0,
        };
        low + random % span
    }
}

impl Default for Reuse {
    fn default() -> Self {
        Reuse::DEFAULT
    }
}

/// Instances a pool keeps idle at most, across its tenants; past this the
/// one unused the longest is dropped. Each holds an instance slot of the
/// runtime and its memory (384 KiB for the default router and validator,
/// 8 MiB for the default shaper, of which only the pages its calls wrote
/// are resident); across all pools at most a quarter of the runtime's
/// `max_instances` are kept, with at most its `idle_memory_mib` of memory.
const IDLE_PER_POOL: usize = 16;

/// An idle instance and what it has served.
struct Kept {
    instance: Instance,
    /// Its linear memory's size, counted against the runtime's idle budget.
    bytes: usize,
    requests: u32,
    limit: u32,
    /// When it was given back, on the pool's own clock.
    returned: u64,
}

#[derive(Default)]
struct Idle {
    /// Lower-case tenant id → its idle instances, the most recent last.
    by_tenant: HashMap<String, Vec<Kept>>,
    count: usize,
    bytes: usize,
    clock: u64,
}

/// The instances of one module binding (a module, its configuration, in one
/// partner's policy), kept by tenant. See the [module documentation](self).
pub struct Pool {
    module: Arc<Module>,
    partner: Arc<str>,
    config_json: Arc<str>,
    reuse: Reuse,
    idle: Mutex<Idle>,
    retired: AtomicBool,
}

impl Pool {
    pub fn new(module: Arc<Module>, partner: Arc<str>, config_json: Arc<str>, reuse: Reuse) -> Arc<Pool> {
        Arc::new(Pool { module, partner, config_json, reuse, idle: Mutex::default(), retired: AtomicBool::new(false) })
    }

    /// The instance for one request of `tenant`: one kept from an earlier
    /// request of the tenant when there is one, else a fresh one made at the
    /// first call.
    pub fn lease(self: &Arc<Self>, tenant: &str) -> Lease {
        let mut lease = Lease::fresh(self.module.clone());
        if !self.reuse.is_on() || self.retired.load(Ordering::Acquire) {
            return lease;
        }
        let tenant = tenant.to_ascii_lowercase();
        let kept = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let kept = idle.by_tenant.get_mut(&tenant).and_then(Vec::pop);
            if let Some(k) = &kept {
                idle.count -= 1;
                idle.bytes -= k.bytes;
                self.module.runtime().release_idle(1, k.bytes);
            }
            kept
        };
        match kept {
            Some(k) => {
                lease.slot.instance = Some(k.instance);
                lease.requests = k.requests;
                lease.limit = k.limit;
            }
            None => lease.limit = self.reuse.draw(),
        }
        lease.home = Some((self.clone(), tenant));
        lease
    }

    /// Drops every idle instance and keeps none from now on: the policy this
    /// pool belongs to is no longer the active one.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        let dropped = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        self.module.runtime().release_idle(dropped.count, dropped.bytes);
        drop(dropped);
    }

    /// Keeps instances again after [`Pool::retire`]: the policy serves once
    /// more.
    pub fn revive(&self) {
        self.retired.store(false, Ordering::Release);
    }

    /// Instances kept idle now.
    pub fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).count
    }

    /// Whether `ctx` is a call this pool's instances may serve.
    fn admits(&self, ctx: &CallContext) -> bool {
        *ctx.partner == *self.partner && *ctx.config_json == *self.config_json && *ctx.digest == **self.module.digest()
    }

    fn give_back(&self, tenant: String, mut instance: Instance, requests: u32, limit: u32) {
        instance.idle();
        let bytes = instance.memory_bytes();
        let runtime = self.module.runtime();
        let evicted;
        {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            // Checked under the lock: `retire` empties the pool under it too.
            if self.retired.load(Ordering::Acquire) {
                return;
            }
            // A full pool makes room by dropping the instance unused the
            // longest.
            evicted = if idle.count >= IDLE_PER_POOL { take_oldest(&mut idle) } else { None };
            if let Some(e) = &evicted {
                runtime.release_idle(1, e.bytes);
            }
            // Enough instances, or enough memory, are kept across the pools:
            // this one is dropped (outside the lock, with any evicted).
            if runtime.keep_idle(bytes) {
                idle.clock += 1;
                let returned = idle.clock;
                idle.by_tenant.entry(tenant).or_default().push(Kept { instance, bytes, requests, limit, returned });
                idle.count += 1;
                idle.bytes += bytes;
            }
        }
        // Dropped outside the lock: freeing an instance resets its memory.
        drop(evicted);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = self.idle.get_mut().unwrap_or_else(|p| p.into_inner());
        self.module.runtime().release_idle(idle.count, idle.bytes);
    }
}

/// Removes the instance given back the longest ago.
fn take_oldest(idle: &mut Idle) -> Option<Kept> {
    let tenant = idle
        .by_tenant
        .iter()
        .filter_map(|(t, kept)| kept.first().map(|k| (k.returned, t)))
        .min()
        .map(|(_, t)| t.clone())?;
    let list = idle.by_tenant.get_mut(&tenant)?;
    let oldest = list.remove(0);
    if list.is_empty() {
        idle.by_tenant.remove(&tenant);
    }
    idle.count -= 1;
    idle.bytes -= oldest.bytes;
    Some(oldest)
}

/// The instance one request calls a module through (see the [module
/// documentation](self)). Dropping it ends the request's use of the
/// instance: back to its pool when the promise allows, else dropped.
pub struct Lease {
    module: Arc<Module>,
    /// The pool and tenant the instance goes back to; `None` when it is
    /// never reused.
    home: Option<(Arc<Pool>, String)>,
    slot: Slot,
    /// Requests the instance served before this one.
    requests: u32,
    limit: u32,
}

impl Lease {
    /// A lease whose instance is made at its first call and dropped with it.
    pub fn fresh(module: Arc<Module>) -> Lease {
        Lease { module, home: None, slot: Slot::default(), requests: 0, limit: 0 }
    }

    /// Whether the lease holds an instance kept from an earlier request.
    pub fn reused(&self) -> bool {
        self.requests > 0 && self.slot.instance.is_some()
    }

    async fn run(&mut self, ctx: CallContext, ask: Ask<'_>) -> Outcome<Answer> {
        // A call that is not the pool's kind (another partner, configuration
        // or module) may run, but its instance is never kept.
        if self.home.as_ref().is_some_and(|(pool, _)| !pool.admits(&ctx)) {
            self.home = None;
        }
        self.module.run(&mut self.slot, ctx, ask).await
    }

    /// The token validation export.
    pub async fn validate(
        &mut self,
        ctx: CallContext,
        token: &str,
        request: &types::Request,
    ) -> Outcome<types::Claims> {
        answer!(self.run(ctx, Ask::Validate { token, request }).await, Claims)
    }

    /// The routing export.
    pub async fn route(
        &mut self,
        ctx: CallContext,
        claims: &types::Claims,
        request: &types::Request,
    ) -> Outcome<routing::Target> {
        answer!(self.run(ctx, Ask::Route { claims, request }).await, Target)
    }

    /// The request half of the shaping export.
    pub async fn shape_request(
        &mut self,
        ctx: CallContext,
        exchange: &shaping::Exchange,
        request: &shaping::UpstreamRequest,
    ) -> Outcome<shaping::UpstreamRequest> {
        answer!(self.run(ctx, Ask::ShapeRequest { exchange, request }).await, Request)
    }

    /// The response half of the shaping export.
    pub async fn shape_response(
        &mut self,
        ctx: CallContext,
        exchange: &shaping::Exchange,
        status: u16,
        body: &[u8],
    ) -> Outcome<shaping::Shaped> {
        answer!(self.run(ctx, Ask::ShapeResponse { exchange, status, body }).await, Shaped)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some((pool, tenant)) = self.home.take() else { return };
        if self.slot.in_call {
            // Cancelled during a call: its state is whatever the call left.
            return;
        }
        let Some(instance) = self.slot.instance.take() else { return };
        let requests = self.requests + 1;
        if requests < self.limit {
            pool.give_back(tenant, instance, requests, self.limit);
        }
    }
}
