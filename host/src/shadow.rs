//! Shadow runs: a candidate routing module decides beside the active one on
//! a sample of live requests. Its decision is compared with the one served,
//! counted and, when it differs, logged (tenant, resource type and the two
//! decisions' providers or denials: no paths, parameters or patient data);
//! it is never served. Operators read the comparison at `GET /admin/modules`
//! and `/metrics`, and promote the candidate by making it the active module
//! in the policy once it no longer differs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::policy::BoundModule;
use crate::wasm::bindings::routing::Target;
use crate::wasm::bindings::types::{Claims, Denial, Request};
use crate::wasm::{CallContext, GuestFault};

/// Distinct tenants counted by name; the rest are counted together.
const TENANTS_NAMED: usize = 1000;

/// Shadow calls running at once; a sampled request finding none free is not
/// compared, so candidates never take the instance slots live calls need.
const AT_ONCE: usize = 16;

/// A candidate module and what its decisions came to.
pub struct Shadow {
    pub bound: BoundModule,
    /// Share of requests the candidate also decides (0 < sample ≤ 1).
    pub sample: f64,
    seen: AtomicU64,
    stats: Mutex<Stats>,
    permits: Arc<tokio::sync::Semaphore>,
}

#[derive(Default)]
struct Stats {
    compared: u64,
    same: u64,
    different: u64,
    candidate_faults: u64,
    /// Sampled requests not compared: too many shadow calls were running.
    skipped: u64,
    differing_tenants: BTreeMap<String, u64>,
}

/// The comparison so far.
#[derive(Debug, Serialize)]
pub struct Report {
    pub role: &'static str,
    pub module: String,
    pub digest: String,
    pub sample: f64,
    pub compared: u64,
    pub same: u64,
    pub different: u64,
    pub candidate_faults: u64,
    pub skipped: u64,
    /// Tenant → requests on which the candidate decided differently.
    pub differing_tenants: BTreeMap<String, u64>,
}

/// A routing outcome, reduced to what is compared.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Target { provider: String, path: String, params: Vec<(String, String)>, headers: Vec<(String, String)> },
    Denied { status: u16, code: String },
    Fault(&'static str),
}

impl Decision {
    fn of(outcome: &Result<Result<Target, Denial>, GuestFault>) -> Decision {
        match outcome {
            Ok(Ok(t)) => Decision::Target {
                provider: t.provider_id.clone(),
                path: t.path.clone(),
                params: t.params.iter().map(|p| (p.name.clone(), p.value.clone())).collect(),
                headers: t.headers.iter().map(|h| (h.name.to_ascii_lowercase(), h.value.clone())).collect(),
            },
            Ok(Err(d)) => Decision::Denied { status: d.status, code: d.code.clone() },
            Err(f) => Decision::Fault(f.kind()),
        }
    }

    /// For the log: without paths, parameters or header values, which can
    /// carry patient identifiers.
    fn describe(&self) -> String {
        match self {
            Decision::Target { provider, .. } => format!("provider {provider}"),
            Decision::Denied { status, code } => format!("denial {status} {code}"),
            Decision::Fault(kind) => format!("fault ({kind})"),
        }
    }
}

impl Shadow {
    pub fn new(bound: BoundModule, sample: f64) -> Shadow {
        Shadow {
            bound,
            sample,
            seen: AtomicU64::new(0),
            stats: Mutex::default(),
            permits: Arc::new(tokio::sync::Semaphore::new(AT_ONCE)),
        }
    }

    /// Whether this request is in the sample: spread evenly, `sample` of
    /// every run of requests.
    fn sampled(&self) -> bool {
        let n = self.seen.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * self.sample).floor() > (n * self.sample).floor()
    }

    /// Lets the candidate decide the same request on the side, when sampled,
    /// and compares its decision with `served`. Returns at once.
    pub fn route_beside(
        self: &Arc<Self>,
        ctx: CallContext,
        claims: &Claims,
        request: &Request,
        served: &Result<Result<Target, Denial>, GuestFault>,
    ) {
        if !self.sampled() {
            return;
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.stats.lock().unwrap_or_else(|e| e.into_inner()).skipped += 1;
            return;
        };
        let served = Decision::of(served);
        let (shadow, claims, request) = (self.clone(), claims.clone(), request.clone());
        let partner = ctx.partner.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let outcome = shadow.bound.module.route(ctx, &claims, &request).await;
            let candidate = Decision::of(&outcome);
            let same = candidate == served;
            shadow.record(&claims.tenant_id, same, matches!(candidate, Decision::Fault(_)));
            let metrics = shadow.bound.module.runtime().metrics();
            metrics.shadow_decision(&partner, "routing", shadow.bound.module.digest(), same);
            if !same {
                tracing::info!(
                    tenant = %claims.tenant_id,
                    resource_type = request.resource_type.as_deref().unwrap_or(""),
                    served = %served.describe(),
                    candidate = %candidate.describe(),
                    module = %shadow.bound.module.name(),
                    "the shadow routing module decided differently"
                );
            }
        });
    }

    fn record(&self, tenant: &str, same: bool, fault: bool) {
        let mut s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        s.compared += 1;
        if fault {
            s.candidate_faults += 1;
        }
        if same {
            s.same += 1;
        } else {
            s.different += 1;
            let tenant = tenant.to_ascii_lowercase();
            let key = if s.differing_tenants.len() < TENANTS_NAMED || s.differing_tenants.contains_key(&tenant) {
                tenant
            } else {
                "(other tenants)".to_owned()
            };
            *s.differing_tenants.entry(key).or_default() += 1;
        }
    }

    pub fn report(&self) -> Report {
        let s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        Report {
            role: "routing",
            module: self.bound.module.name().to_string(),
            digest: self.bound.module.digest().to_string(),
            sample: self.sample,
            compared: s.compared,
            same: s.same,
            different: s.different,
            candidate_faults: s.candidate_faults,
            skipped: s.skipped,
            differing_tenants: s.differing_tenants.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_spread_evenly() {
        for (sample, of_100) in [(1.0, 100), (0.25, 25), (0.1, 10), (0.5, 50)] {
            let seen = AtomicU64::new(0);
            let n = (0..100)
                .filter(|_| {
                    let n = seen.fetch_add(1, Ordering::Relaxed) as f64;
                    ((n + 1.0) * sample).floor() > (n * sample).floor()
                })
                .count();
            assert_eq!(n, of_100, "{sample}");
        }
    }

    #[test]
    fn decisions_compare_everything_and_describe_no_paths() {
        let target = |provider: &str, path: &str| Decision::Target {
            provider: provider.into(),
            path: path.into(),
            params: Vec::new(),
            headers: Vec::new(),
        };
        assert_eq!(target("a", "Patient/p1"), target("a", "Patient/p1"));
        assert_ne!(target("a", "Patient/p1"), target("a", "Patient/p2"));
        assert_eq!(target("a", "Patient/p1").describe(), "provider a");
        assert_eq!(
            Decision::Denied { status: 403, code: "unknown-tenant".into() }.describe(),
            "denial 403 unknown-tenant"
        );
    }
}
