//! Shadow runs: a candidate module of any role (token validation, routing or
//! shaping) runs beside the active one on a sample of live requests. Its
//! answer to the same call is compared with the one served, counted and,
//! when it differs, logged: the tenant, the resource type, the kind of each
//! answer (a provider, an acceptance, a status, a denial code) and which
//! fields differ, by name or JSON path; never paths, parameters, tokens or
//! patient data. It is never served. Operators read the comparison at
//! `GET /admin/modules` and `/metrics`, and promote the candidate by making
//! it the active module in the policy once it no longer differs.
//!
//! A shaping candidate answers both of the shaper's calls on the request the
//! active module shaped and on the provider's answer to it; each call is one
//! comparison. Its upstream reads share the request's read cache.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::policy::BoundModule;
use fhirgate_sandbox::bindings::routing::Target;
use fhirgate_sandbox::bindings::shaping::{Exchange, Shaped, UpstreamRequest};
use fhirgate_sandbox::bindings::types::{Claims, Denial, Request};
use fhirgate_sandbox::{CallContext, GuestFault, Role};

/// Distinct tenants counted by name; the rest are counted together.
const TENANTS_NAMED: usize = 1000;

/// Shadow calls running at once; a sampled request finding none free is not
/// compared, so candidates never take the instance slots live calls need.
const AT_ONCE: usize = 16;

/// How a comparison is counted when neither answer names a tenant (a token
/// both modules refused).
const NO_TENANT: &str = "(no tenant)";

/// Largest provider answer, and shaped answer, a candidate shaper is
/// compared on: each run in flight holds both and parses them when they
/// differ. Larger ones are counted as skipped.
const COMPARED_BODY_MAX: usize = 4 * 1024 * 1024;

/// A candidate module and what its answers came to.
pub struct Shadow {
    pub bound: BoundModule,
    pub role: Role,
    /// Share of calls the candidate also answers (0 < sample ≤ 1).
    pub sample: f64,
    /// Calls seen, for each of the role's calls (a shaper has two), so that
    /// each is sampled evenly on its own.
    seen: [AtomicU64; 2],
    stats: Mutex<Stats>,
    permits: Arc<tokio::sync::Semaphore>,
}

#[derive(Default)]
struct Stats {
    compared: u64,
    same: u64,
    different: u64,
    candidate_faults: u64,
    /// Sampled calls not compared: too many shadow calls were running.
    skipped: u64,
    differing_tenants: BTreeMap<String, u64>,
}

/// The comparison so far.
#[derive(Debug, Serialize)]
pub struct Report {
    pub role: String,
    pub module: String,
    pub digest: String,
    pub sample: f64,
    pub compared: u64,
    pub same: u64,
    pub different: u64,
    pub candidate_faults: u64,
    pub skipped: u64,
    /// Tenant → calls on which the candidate answered differently.
    pub differing_tenants: BTreeMap<String, u64>,
}

/// A module's answer, reduced to what is compared.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Accepted { client_id: String, tenant_id: String, scopes: Vec<String>, expires_at: u64, token_id: Option<String> },
    Routed { provider: String, path: String, params: Vec<(String, String)>, headers: Vec<(String, String)> },
    Forwarded { path: String, params: Vec<(String, String)> },
    Shaped { status: u16, body: Bytes },
    Denied { status: u16, code: String },
    Fault(&'static str),
}

fn pairs<'a>(items: impl Iterator<Item = (&'a String, &'a String)>) -> Vec<(String, String)> {
    items.map(|(n, v)| (n.clone(), v.clone())).collect()
}

impl Decision {
    fn of<T>(outcome: &Result<Result<T, Denial>, GuestFault>, answer: impl FnOnce(&T) -> Decision) -> Decision {
        match outcome {
            Ok(Ok(t)) => answer(t),
            Ok(Err(d)) => Decision::Denied { status: d.status, code: d.code.clone() },
            Err(f) => Decision::Fault(f.kind()),
        }
    }

    fn accepted(c: &Claims) -> Decision {
        Decision::Accepted {
            client_id: c.client_id.clone(),
            tenant_id: c.tenant_id.to_ascii_lowercase(),
            scopes: c.scopes.clone(),
            expires_at: c.expires_at,
            token_id: c.token_id.clone(),
        }
    }

    fn routed(t: &Target) -> Decision {
        Decision::Routed {
            provider: t.provider_id.clone(),
            path: t.path.clone(),
            params: pairs(t.params.iter().map(|p| (&p.name, &p.value))),
            headers: t.headers.iter().map(|h| (h.name.to_ascii_lowercase(), h.value.clone())).collect(),
        }
    }

    fn forwarded(r: &UpstreamRequest) -> Decision {
        Decision::Forwarded { path: r.path.clone(), params: pairs(r.params.iter().map(|p| (&p.name, &p.value))) }
    }

    fn shaped(s: &Shaped) -> Decision {
        Decision::Shaped { status: s.status, body: Bytes::copy_from_slice(&s.body) }
    }

    /// For the log: what kind of answer, without paths, parameters, header
    /// values, tokens or bodies, which can carry patient identifiers.
    fn describe(&self) -> String {
        match self {
            Decision::Accepted { client_id, .. } => format!("accepted (client {})", printable(client_id)),
            Decision::Routed { provider, .. } => format!("provider {provider}"),
            Decision::Forwarded { params, .. } => format!("upstream request ({} parameters)", params.len()),
            Decision::Shaped { status, body } => format!("status {status}, {} bytes", body.len()),
            Decision::Denied { status, code } => format!("denial {status} {code}"),
            Decision::Fault(kind) => format!("fault ({kind})"),
        }
    }

    /// Whether the two answers are the same: equal, or for shaped answers,
    /// the same status and the same JSON (key order and spacing aside).
    fn same(&self, other: &Decision) -> bool {
        match (self, other) {
            (Decision::Shaped { status: s1, body: b1 }, Decision::Shaped { status: s2, body: b2 }) => {
                s1 == s2 && (b1 == b2 || json(b1).is_some_and(|a| json(b2).is_some_and(|b| a == b)))
            }
            _ => self == other,
        }
    }

    /// The tenant an answer names, if it names one.
    fn tenant(&self) -> Option<&str> {
        match self {
            Decision::Accepted { tenant_id, .. } => Some(tenant_id),
            _ => None,
        }
    }
}

/// `s` cut to 64 characters with anything but printable ASCII replaced: a
/// module's answer, written into a log line.
fn printable(s: &str) -> String {
    s.chars().take(64).map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect()
}

fn json(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

/// Where two answers of the same kind differ: field names, or for shaped
/// bodies the JSON path of the first difference (element names and indices
/// only); `answer` when they are of different kinds (the descriptions say
/// which).
fn differences(served: &Decision, candidate: &Decision) -> String {
    let fields = |names: &[(&'static str, bool)]| -> String {
        names.iter().filter(|(_, differs)| *differs).map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    };
    match (served, candidate) {
        (
            Decision::Accepted { client_id: c1, tenant_id: t1, scopes: s1, expires_at: e1, token_id: j1 },
            Decision::Accepted { client_id: c2, tenant_id: t2, scopes: s2, expires_at: e2, token_id: j2 },
        ) => fields(&[
            ("client-id", c1 != c2),
            ("tenant-id", t1 != t2),
            ("scopes", s1 != s2),
            ("expires-at", e1 != e2),
            ("token-id", j1 != j2),
        ]),
        (
            Decision::Routed { provider: p1, path: a1, params: q1, headers: h1 },
            Decision::Routed { provider: p2, path: a2, params: q2, headers: h2 },
        ) => fields(&[("provider-id", p1 != p2), ("path", a1 != a2), ("params", q1 != q2), ("headers", h1 != h2)]),
        (Decision::Forwarded { path: a1, params: q1 }, Decision::Forwarded { path: a2, params: q2 }) => {
            fields(&[("path", a1 != a2), ("params", q1 != q2)])
        }
        (Decision::Shaped { status: s1, body: b1 }, Decision::Shaped { status: s2, body: b2 }) => {
            let mut out = if s1 != s2 { vec!["status".to_owned()] } else { Vec::new() };
            if b1 != b2 {
                match (json(b1), json(b2)) {
                    (Some(a), Some(b)) if a != b => {
                        out.push(format!("body at {}", first_difference(&a, &b, String::new())));
                    }
                    (Some(_), Some(_)) => {}
                    _ => out.push("body".to_owned()),
                }
            }
            out.join(", ")
        }
        (Decision::Denied { status: s1, code: c1 }, Decision::Denied { status: s2, code: c2 }) => {
            fields(&[("status", s1 != s2), ("code", c1 != c2)])
        }
        _ => "answer".to_owned(),
    }
}

/// The JSON Pointer of the first place `a` and `b` differ: object keys
/// (FHIR element names) and array indices, never values.
fn first_difference(a: &Value, b: &Value, at: String) -> String {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match y.get(k) {
                    Some(w) if v == w => {}
                    Some(w) => return first_difference(v, w, here),
                    None => return here,
                }
            }
            match y.keys().find(|k| !x.contains_key(*k)) {
                Some(k) => format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                None => {
                    if at.is_empty() {
                        "/".to_owned()
                    } else {
                        at
                    }
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                if v != w {
                    return first_difference(v, w, format!("{at}/{i}"));
                }
            }
            format!("{at}/{}", x.len().min(y.len()))
        }
        _ if at.is_empty() => "/".to_owned(),
        _ => at,
    }
}

/// A sampled call, holding one of the shadow's slots: the candidate answers
/// it on a task of its own and the answers are compared there.
pub struct Run {
    shadow: Arc<Shadow>,
    permit: tokio::sync::OwnedSemaphorePermit,
}

impl Shadow {
    pub fn new(bound: BoundModule, role: Role, sample: f64) -> Shadow {
        Shadow {
            bound,
            role,
            sample,
            seen: [AtomicU64::new(0), AtomicU64::new(0)],
            stats: Mutex::default(),
            permits: Arc::new(tokio::sync::Semaphore::new(AT_ONCE)),
        }
    }

    /// A run when this call is in the sample (spread evenly: `sample` of
    /// every run of calls) and a slot is free; otherwise nothing, at the cost
    /// of a counter. `call` is which of the role's calls: 0, or 1 for a
    /// shaper's answer.
    pub fn sample(self: &Arc<Self>, call: usize) -> Option<Run> {
        let n = self.seen[call.min(1)].fetch_add(1, Ordering::Relaxed) as f64;
        if ((n + 1.0) * self.sample).floor() <= (n * self.sample).floor() {
            return None;
        }
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Some(Run { shadow: self.clone(), permit }),
            Err(_) => {
                self.skipped();
                None
            }
        }
    }

    fn skipped(&self) {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).skipped += 1;
    }

    /// Whether this candidate is `other` under the same settings: the same
    /// module, configuration and sample.
    pub fn continues(&self, other: &Shadow) -> bool {
        self.role == other.role
            && self.sample == other.sample
            && self.bound.module.digest() == other.bound.module.digest()
            && self.bound.config_json == other.bound.config_json
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
            role: self.role.to_string(),
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

/// What the log line of a difference says about the call.
struct Call {
    partner: Arc<str>,
    name: &'static str,
    tenant: Option<String>,
    resource_type: Option<String>,
}

impl Run {
    /// Compares the candidate's answer, computed on its own task, with the
    /// one served.
    fn compare(
        self,
        call: Call,
        served: Decision,
        candidate: impl std::future::Future<Output = Decision> + Send + 'static,
    ) {
        let Run { shadow, permit } = self;
        tokio::spawn(async move {
            let _permit = permit;
            let candidate = candidate.await;
            let same = served.same(&candidate);
            let tenant = call
                .tenant
                .as_deref()
                .or_else(|| served.tenant())
                .or_else(|| candidate.tenant())
                .unwrap_or(NO_TENANT)
                .to_owned();
            shadow.record(&tenant, same, matches!(candidate, Decision::Fault(_)));
            let role = shadow.role.name();
            let metrics = shadow.bound.module.runtime().metrics();
            metrics.shadow_decision(&call.partner, role, shadow.bound.module.digest(), same);
            if !same {
                tracing::info!(
                    role,
                    call = call.name,
                    tenant = %tenant,
                    resource_type = call.resource_type.as_deref().unwrap_or(""),
                    served = %served.describe(),
                    candidate = %candidate.describe(),
                    differs = %differences(&served, &candidate),
                    module = %shadow.bound.module.name(),
                    "the shadow module answered differently"
                );
            }
        });
    }

    /// The candidate validator on the token the active one (or its cached
    /// verdict) `served` claims or a refusal for.
    pub fn validate(
        self,
        ctx: CallContext,
        token: &str,
        request: &Request,
        served: &Result<Result<Arc<Claims>, Denial>, GuestFault>,
    ) {
        let call = Call {
            partner: ctx.partner.clone(),
            name: "validate",
            tenant: None,
            resource_type: request.resource_type.clone(),
        };
        let served = Decision::of(served, |c: &Arc<Claims>| Decision::accepted(c));
        let module = self.shadow.bound.module.clone();
        let (token, request) = (token.to_owned(), request.clone());
        self.compare(call, served, async move {
            Decision::of(&module.validate(ctx, &token, &request).await, Decision::accepted)
        });
    }

    /// The candidate router on the request the active one routed.
    pub fn route(
        self,
        ctx: CallContext,
        claims: &Claims,
        request: &Request,
        served: &Result<Result<Target, Denial>, GuestFault>,
    ) {
        let call = Call {
            partner: ctx.partner.clone(),
            name: "route",
            tenant: Some(claims.tenant_id.clone()),
            resource_type: request.resource_type.clone(),
        };
        let served = Decision::of(served, Decision::routed);
        let module = self.shadow.bound.module.clone();
        let (claims, request) = (claims.clone(), request.clone());
        self.compare(call, served, async move {
            Decision::of(&module.route(ctx, &claims, &request).await, Decision::routed)
        });
    }

    /// The candidate shaper on the upstream request the active one shaped.
    pub fn shape_request(
        self,
        ctx: CallContext,
        tenant: &str,
        exchange: &Exchange,
        request: &UpstreamRequest,
        served: &Result<Result<UpstreamRequest, Denial>, GuestFault>,
    ) {
        let call = Call {
            partner: ctx.partner.clone(),
            name: "shape-request",
            tenant: Some(tenant.into()),
            resource_type: None,
        };
        let served = Decision::of(served, Decision::forwarded);
        let module = self.shadow.bound.module.clone();
        let (exchange, request) = (exchange.clone(), request.clone());
        self.compare(call, served, async move {
            Decision::of(&module.shape_request(ctx, &exchange, &request).await, Decision::forwarded)
        });
    }

    /// The candidate shaper on the provider's answer the active one shaped.
    pub fn shape_response(
        self,
        ctx: CallContext,
        tenant: &str,
        exchange: &Exchange,
        status: u16,
        body: Bytes,
        served: &Result<Result<Shaped, Denial>, GuestFault>,
    ) {
        let too_big = |b: &[u8]| b.len() > COMPARED_BODY_MAX;
        if too_big(&body) || matches!(served, Ok(Ok(s)) if too_big(&s.body)) {
            self.shadow.skipped();
            return;
        }
        let call = Call {
            partner: ctx.partner.clone(),
            name: "shape-response",
            tenant: Some(tenant.into()),
            resource_type: None,
        };
        let served = Decision::of(served, Decision::shaped);
        let module = self.shadow.bound.module.clone();
        let exchange = exchange.clone();
        self.compare(call, served, async move {
            Decision::of(&module.shape_response(ctx, &exchange, status, &body).await, Decision::shaped)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let target = |provider: &str, path: &str| Decision::Routed {
            provider: provider.into(),
            path: path.into(),
            params: Vec::new(),
            headers: Vec::new(),
        };
        assert_eq!(target("a", "Patient/p1"), target("a", "Patient/p1"));
        assert_ne!(target("a", "Patient/p1"), target("a", "Patient/p2"));
        assert_eq!(target("a", "Patient/p1").describe(), "provider a");
        assert_eq!(differences(&target("a", "Patient/p1"), &target("a", "Patient/p2")), "path");
        assert_eq!(
            Decision::Denied { status: 403, code: "unknown-tenant".into() }.describe(),
            "denial 403 unknown-tenant"
        );
    }

    #[test]
    fn shaped_bodies_differ_at_a_json_path_without_values() {
        let shaped = |v: Value| Decision::Shaped { status: 200, body: Bytes::from(v.to_string()) };
        let a = shaped(json!({"resourceType": "Patient", "name": [{"family": "Chalmers"}], "gender": "male"}));
        let b = shaped(json!({"resourceType": "Patient", "name": [{"family": "Chalmerz"}], "gender": "male"}));
        let c = shaped(json!({"resourceType": "Patient", "name": [{"family": "Chalmers"}]}));
        assert_eq!(differences(&a, &b), "body at /name/0/family");
        assert_eq!(differences(&a, &c), "body at /gender");
        assert_eq!(differences(&c, &a), "body at /gender");
        assert!(!a.describe().contains("Chalmers") && !differences(&a, &b).contains("Chalmer"));
        let other = Decision::Shaped { status: 502, body: Bytes::from_static(b"not json") };
        assert_eq!(differences(&a, &other), "status, body");
        // The same JSON written differently is the same answer.
        let spaced = Decision::Shaped {
            status: 200,
            body: Bytes::from_static(
                b"{ \"gender\": \"male\", \"name\": [{\"family\": \"Chalmers\"}], \"resourceType\": \"Patient\" }",
            ),
        };
        assert!(a.same(&spaced) && !a.same(&b) && !a.same(&other));
    }

    #[test]
    fn a_modules_words_reach_the_log_printable_and_short() {
        assert_eq!(printable("app\nFAKE LINE"), "app?FAKE LINE");
        assert_eq!(printable(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn claims_differ_by_field_name() {
        let claims = |scopes: &[&str]| Claims {
            client_id: "app".into(),
            tenant_id: "3F2B8C1E-6D4A-4B7F-9E21-5A0C7D9E4B13".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expires_at: 10,
            token_id: None,
        };
        let (a, b) = (Decision::accepted(&claims(&["x"])), Decision::accepted(&claims(&["x", "y"])));
        assert_eq!(differences(&a, &b), "scopes");
        assert_eq!(a.tenant(), Some("3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13"));
        assert_eq!(a.describe(), "accepted (client app)");
    }
}
