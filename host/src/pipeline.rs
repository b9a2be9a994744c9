//! The FHIR request pipeline. Every request on a face runs the same phases,
//! in this order:
//!
//! 1. **parse** — method and path into an interaction; a `_search` form body
//!    into parameters. First, so modules never see malformed requests.
//! 2. **authenticate** (token-validation module) — before anything reaches a
//!    module that acts on the tenant. Fails closed: a module fault refuses.
//! 3. **route** (routing module) — the module proposes a provider; the host
//!    enforces that it is approved for the token's tenant. Fails closed.
//! 4. **shape request** (shaping module) — the search as the provider's
//!    version understands it. A fault is an error, never an unshaped request.
//! 5. **forward** — the pooled client, within the provider's time budget.
//! 6. **shape response** (shaping module) — the answer in the client's
//!    version with links on the gateway. A fault is an error: the app must
//!    never receive a body in the wrong version.
//! 7. **audit** — one record per brokered access, whatever the outcome,
//!    written to the store's append-only access log.
//!
//! Search results' `next`/`previous` links come back as opaque cursors
//! ([`crate::paging`]); following one skips routing (the router chose the
//! provider for the first page) but not authentication, the tenant check or
//! the directory's approval.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::directory::{ProviderRoute, Refusal, Snapshot};
use crate::error::{Body, Failure, json_response};
use crate::fhir::Version;
use crate::oauth::token::{Verdict, VerdictKey};
use crate::paging::{CURSOR_LIFETIME_SECONDS, Cursor, PAGE_PARAM};
use crate::policy::Policy;
use crate::server::Gateway;
use crate::store::access::{AccessRecord, Outcome};
use crate::upstream::UpstreamError;
use crate::upstream::reads::ProviderReads;
use crate::wasm::bindings::routing::Target;
use crate::wasm::bindings::shaping::{Exchange, UpstreamRequest};
use crate::wasm::bindings::types::{Claims, Header, Interaction, Param, Request};
use crate::wasm::{CallContext, Role};
use sha2::{Digest as _, Sha256};

/// Entries one batch may hold. The app asks for a handful of resources at a
/// time; 50 leaves room while bounding the work one request can cause.
const MAX_BATCH_ENTRIES: usize = 50;
/// Batch entries forwarded at once, so one batch cannot monopolise a provider.
const BATCH_PARALLELISM: usize = 8;
/// Query parameters one request may carry.
const MAX_PARAMS: usize = 64;

/// One request's context, shared by its phases.
#[derive(Clone)]
pub struct Ctx {
    pub gw: Arc<Gateway>,
    /// The policy this request started with; a reload does not affect it.
    pub policy: Arc<Policy>,
    /// The directory view this request started with.
    pub directory: Arc<Snapshot>,
    pub face: Version,
    /// `scheme://host[:port]` the client reached the gateway at.
    pub public_base: String,
    pub request_id: String,
    /// When the request arrived, ms since the Unix epoch: the time of its
    /// access record and of its batch entries' (which then sort by part).
    pub arrived_ms: i64,
}

impl Ctx {
    fn gateway_base(&self) -> String {
        format!("{}/{}", self.public_base, self.face.face())
    }

    /// A sampled run of `shadow`, the candidate for the partner's module of
    /// its role, when `serving` is that module (a tenant's own is not
    /// compared). `call` is which of the role's calls (a shaper's second is
    /// the answer), each sampled on its own.
    fn shadow_of<'s>(
        &self,
        shadow: &'s Option<Arc<crate::shadow::Shadow>>,
        serving: &crate::policy::BoundModule,
        call: usize,
    ) -> Option<(crate::shadow::Run, &'s crate::policy::BoundModule)> {
        let shadow = shadow.as_ref()?;
        if !std::ptr::eq(serving, self.policy.module(shadow.role)) {
            return None;
        }
        Some((shadow.sample(call)?, &shadow.bound))
    }

    fn call_ctx_of(&self, bound: &crate::policy::BoundModule) -> CallContext {
        CallContext {
            partner: self.policy.partner.clone(),
            module: bound.module.name().clone(),
            digest: bound.module.digest().clone(),
            config_json: bound.config_json.clone(),
            issuer: self.gw.auth.facts(),
            directory: self.directory.clone(),
            reads: None,
            request_id: self.request_id.clone(),
            fixed_now_ms: None,
            counted: true,
        }
    }
}

/// What the audit record says about one access.
#[derive(Default)]
struct Audit {
    client_id: Option<String>,
    tenant: Option<String>,
    provider: Option<String>,
    patient: Option<String>,
    /// The resource type; for a followed page link, the searched type from
    /// its cursor.
    resource_type: Option<String>,
}

/// Handles a request under a face. `rest` is the path after `/{face}/`;
/// `body` is the request body, or why it could not be read.
pub async fn handle(
    ctx: &Ctx,
    method: &Method,
    rest: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Result<Bytes, Failure>,
) -> Response<Body> {
    let mut guard = AccessGuard::new(ctx);
    let request = body.and_then(|body| parse(ctx, method, rest, query, headers, body));
    if let Ok(r) = &request {
        guard.interaction = interaction_name(r.interaction);
        guard.audit.resource_type = r.resource_type.clone();
        guard.audit.patient = patient_of(r);
    }
    let result = match request {
        Ok(request) => run(ctx, headers, request, &mut guard.audit).await,
        Err(f) => Err(f),
    };
    let (response, provider_fault) = match result {
        Ok(resp) => (resp, false),
        Err(failure) => {
            log_failure(ctx, &failure);
            let provider_fault = failure.fault == crate::error::Fault::Provider;
            (failure.into_response(ctx.face), provider_fault)
        }
    };
    guard.finish(response.status().as_u16(), provider_fault).await;
    response
}

/// The access record of one request. Written when the request ends, and
/// also when it never ends: if the client goes away mid-request (the future
/// is dropped), the record is written with status 499, so an access that
/// may have reached a provider is never left out.
struct AccessGuard {
    log: crate::store::access::AccessLog,
    request_id: String,
    face: Version,
    at_ms: i64,
    started: Instant,
    interaction: &'static str,
    audit: Audit,
    done: bool,
}

/// The status recorded for a request its client abandoned.
const CLIENT_CLOSED: u16 = 499;

impl AccessGuard {
    fn new(ctx: &Ctx) -> AccessGuard {
        AccessGuard {
            log: ctx.gw.access.clone(),
            request_id: ctx.request_id.clone(),
            face: ctx.face,
            at_ms: ctx.arrived_ms,
            started: Instant::now(),
            interaction: "-",
            audit: Audit::default(),
            done: false,
        }
    }

    fn record(&mut self, status: u16, provider_fault: bool) -> AccessRecord {
        let audit = std::mem::take(&mut self.audit);
        let latency_us = self.started.elapsed().as_micros() as u64;
        tracing::info!(
            target: "fhirgate::audit",
            request_id = %self.request_id,
            face = self.face.face(),
            client_id = audit.client_id.as_deref().unwrap_or("-"),
            tenant = audit.tenant.as_deref().unwrap_or("-"),
            provider = audit.provider.as_deref().unwrap_or("-"),
            interaction = self.interaction,
            resource_type = audit.resource_type.as_deref().unwrap_or("-"),
            status,
            latency_us,
            "access"
        );
        AccessRecord {
            request_id: self.request_id.clone(),
            part: 0,
            at_ms: self.at_ms,
            client_id: audit.client_id,
            tenant_id: audit.tenant.map(|t| t.to_ascii_lowercase()),
            provider_id: audit.provider,
            face: self.face.face().to_owned(),
            interaction: self.interaction.to_owned(),
            resource_type: audit.resource_type,
            patient_id: audit.patient,
            outcome: Outcome::from_status(status, provider_fault),
            status,
            latency_us,
        }
    }

    async fn finish(mut self, status: u16, provider_fault: bool) {
        self.done = true;
        let record = self.record(status, provider_fault);
        self.log.record(record).await;
    }
}

impl Drop for AccessGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let record = self.record(CLIENT_CLOSED, false);
        let log = self.log.clone();
        tokio::spawn(async move { log.record(record).await });
    }
}

/// The patient a request is about, when the request says: a Patient read,
/// a Patient search by `_id`, or a search by `patient`/`subject`.
fn patient_of(r: &Request) -> Option<String> {
    let id = |v: &str| {
        let v = v.strip_prefix("Patient/").unwrap_or(v);
        is_id(v).then(|| v.to_owned())
    };
    match (r.interaction, r.resource_type.as_deref()) {
        (Interaction::Read | Interaction::Vread, Some("Patient")) => r.resource_id.clone(),
        (Interaction::Search, Some("Patient")) => r.params.iter().find(|p| p.name == "_id").and_then(|p| id(&p.value)),
        (Interaction::Search, Some(_)) => {
            r.params.iter().find(|p| p.name == "patient" || p.name == "subject").and_then(|p| id(&p.value))
        }
        _ => None,
    }
}

fn log_failure(ctx: &Ctx, f: &Failure) {
    use crate::error::Fault;
    match f.fault {
        Fault::Client => tracing::debug!(request_id = %ctx.request_id, status = f.status.as_u16(), "{}", f.message),
        Fault::Provider => {
            tracing::warn!(request_id = %ctx.request_id, status = f.status.as_u16(), "provider: {}", f.message)
        }
        Fault::Gateway | Fault::Module => {
            tracing::error!(request_id = %ctx.request_id, status = f.status.as_u16(), "{}", f.message)
        }
    }
}

fn interaction_name(i: Interaction) -> &'static str {
    match i {
        Interaction::Read => "read",
        Interaction::Vread => "vread",
        Interaction::Search => "search",
        Interaction::Batch => "batch",
        Interaction::Capabilities => "capabilities",
        Interaction::Other => "other",
    }
}

async fn run(ctx: &Ctx, headers: &HeaderMap, request: Request, audit: &mut Audit) -> Result<Response<Body>, Failure> {
    let claims = authenticate(ctx, headers, &request).await?;
    audit.client_id = Some(claims.client_id.clone());
    audit.tenant = Some(claims.tenant_id.clone());
    // The tenant must be onboarded and approved before any module acts on
    // its behalf.
    ctx.directory.check_tenant(&claims.tenant_id).map_err(tenant_refused)?;
    if let Some(cursor) = page_cursor(&request) {
        let (status, body) = follow_page(ctx, &claims, cursor, audit).await?;
        return Ok(json_response(status, ctx.face.content_type(), body));
    }
    if request.interaction == Interaction::Batch {
        return batch(ctx, &claims, &request).await;
    }
    let (status, body) = broker(ctx, &claims, &request, audit).await?;
    Ok(json_response(status, ctx.face.content_type(), body))
}

/// Route, shape the request, forward, shape the response.
async fn broker(
    ctx: &Ctx,
    claims: &Claims,
    request: &Request,
    audit: &mut Audit,
) -> Result<(StatusCode, Vec<u8>), Failure> {
    let (target, provider) = route(ctx, claims, request).await?;
    audit.provider = Some(provider.id.clone());
    let exchange = exchange(ctx, &provider, request.interaction);
    let shaper = ctx.policy.shaper_for(&claims.tenant_id);
    let shaped_request = {
        let upstream = UpstreamRequest { path: target.path.clone(), params: target.params.clone() };
        let answer = shaper.module.shape_request(ctx.call_ctx_of(shaper), &exchange, &upstream).await;
        if let Some((run, bound)) = ctx.shadow_of(&ctx.policy.shadows.shaper, shaper, 0) {
            run.shape_request(ctx.call_ctx_of(bound), &claims.tenant_id, &exchange, &upstream, &answer);
        }
        match answer {
            Ok(answer) => answer.map_err(|d| Failure::denial(Role::Shaping, d.status, &d.code, &d.message))?,
            Err(fault) if passes_through(ctx, &exchange) => {
                tracing::warn!(request_id = %ctx.request_id, fault = fault.kind(),
                    "the shaping module failed; the request goes to the provider as routed (on_fault = \"pass-through\")");
                upstream
            }
            Err(fault) => return Err(Failure::from_fault(Role::Shaping, &fault)),
        }
    };
    check_path(&shaped_request.path).map_err(|m| Failure::module(Role::Shaping, m))?;
    check_params(&shaped_request.params).map_err(|m| Failure::module(Role::Shaping, m))?;
    let url = upstream_url(&provider.base_url, &shaped_request);
    let headers = route_headers(&target.headers)?;
    let (status, body) = forward_and_shape(ctx, shaper, &claims.tenant_id, &provider, &exchange, &url, headers).await?;
    if request.interaction == Interaction::Search {
        let headers: Vec<(String, String)> = target.headers.iter().map(|h| (h.name.clone(), h.value.clone())).collect();
        let body = seal_links(ctx, claims, &provider, request.resource_type.as_deref(), &headers, body);
        return Ok((status, body));
    }
    Ok((status, body))
}

fn exchange(ctx: &Ctx, provider: &ProviderRoute, interaction: Interaction) -> Exchange {
    Exchange {
        client_version: ctx.face.wit(),
        upstream_version: provider.fhir_version.wit(),
        interaction,
        gateway_base: ctx.gateway_base(),
        upstream_base: provider.base_url.clone(),
    }
}

/// Whether a shaping fault lets the exchange through unshaped: the policy
/// says so, and the provider speaks the client's version.
fn passes_through(ctx: &Ctx, exchange: &Exchange) -> bool {
    ctx.policy.shaping_on_fault == crate::policy::OnFault::PassThrough
        && exchange.client_version == exchange.upstream_version
}

/// `body` with the provider's base URL replaced by the gateway's wherever a
/// URL starts with it (followed by `/`, `?`, `#`, a quote or the end), also
/// where JSON escapes its slashes: an unshaped answer must not show the app
/// where the provider is.
fn rebase_body(body: &[u8], provider_base: &str, gateway_base: &str) -> Vec<u8> {
    let from = provider_base.trim_end_matches('/');
    if from.is_empty() {
        return body.to_vec();
    }
    let escaped_from = from.replace('/', "\\/");
    let escaped_to = gateway_base.replace('/', "\\/");
    let pairs = [(from.as_bytes(), gateway_base.as_bytes()), (escaped_from.as_bytes(), escaped_to.as_bytes())];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    'scan: while i < body.len() {
        if body[i] == from.as_bytes()[0] {
            for (pattern, replacement) in &pairs {
                if body[i..].starts_with(pattern) {
                    let next = body.get(i + pattern.len()).copied();
                    if matches!(next, None | Some(b'/' | b'?' | b'#' | b'"' | b'\\')) {
                        out.extend_from_slice(replacement);
                        i += pattern.len();
                        continue 'scan;
                    }
                }
            }
        }
        out.push(body[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod rebase_tests {
    use super::rebase_body;

    #[test]
    fn only_whole_bases_are_replaced_escaped_or_not() {
        let body = br#"{"a":"https://p/fhir/Patient/1","b":"https://p/fhir","c":"https://p/fhir-internal/x","d":"https:\/\/p\/fhir\/Patient\/2","e":"https://p/fhir?x=1"}"#;
        let out = String::from_utf8(rebase_body(body, "https://p/fhir/", "https://g/stu3")).unwrap();
        assert_eq!(
            out,
            r#"{"a":"https://g/stu3/Patient/1","b":"https://g/stu3","c":"https://p/fhir-internal/x","d":"https:\/\/g\/stu3\/Patient\/2","e":"https://g/stu3?x=1"}"#
        );
    }
}

/// Phases 5 and 6: the provider's answer, shaped into the client's version.
async fn forward_and_shape(
    ctx: &Ctx,
    shaper: &crate::policy::BoundModule,
    tenant: &str,
    provider: &ProviderRoute,
    exchange: &Exchange,
    url: &str,
    mut headers: HeaderMap,
) -> Result<(StatusCode, Vec<u8>), Failure> {
    // Reads a shaping module makes go out with the same routing headers.
    let routing_headers = headers.clone();
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        headers.insert(HeaderName::from_static("x-request-id"), v);
    }
    let accept = match provider.fhir_version {
        Version::Dstu2 => "application/json+fhir",
        _ => "application/fhir+json",
    };
    let upstream = ctx.gw.upstream.get(&provider.settings, url, headers, accept).await.map_err(|e| {
        let message = format!("Provider `{}`: {e}.", provider.id);
        match e {
            UpstreamError::Timeout(_) => Failure::provider_timeout(message),
            UpstreamError::Connect => Failure::provider_unreachable(message),
            UpstreamError::CircuitOpen { retry_after } => Failure::provider_circuit_open(
                format!("Provider `{}` is failing; the gateway is giving it time to recover.", provider.id),
                retry_after.as_secs_f64().ceil() as u64,
            ),
            // The details (a file name, the provider's token endpoint's
            // answer) are for the operator's log, not the app.
            UpstreamError::Tls(_) | UpstreamError::Auth(_) => {
                tracing::warn!(request_id = %ctx.request_id, provider = %provider.id, error = %e, "upstream credentials or TLS failed");
                Failure::provider_bad_answer(format!(
                    "The gateway could not authenticate to provider `{}`; the operator has been told.",
                    provider.id
                ))
            }
            _ => Failure::provider_bad_answer(message),
        }
    })?;
    // The shaping module may read from this provider, for this tenant, to
    // complete the answer (a Location's name on an Encounter).
    // Each call its own allowance of reads; all share the read cache.
    let reads = || -> Option<Arc<dyn crate::wasm::state::UpstreamReads>> {
        Some(Arc::new(ProviderReads::new(
            ctx.gw.upstream.clone(),
            &provider.settings,
            &provider.base_url,
            accept,
            tenant,
            routing_headers.clone(),
            &ctx.request_id,
            ctx.gw.read_cache.clone(),
        )))
    };
    let mut call = ctx.call_ctx_of(shaper);
    call.reads = reads();
    let answer = shaper.module.shape_response(call, exchange, upstream.status.as_u16(), &upstream.body).await;
    if let Some((run, bound)) = ctx.shadow_of(&ctx.policy.shadows.shaper, shaper, 1) {
        let mut call = ctx.call_ctx_of(bound);
        call.reads = reads();
        run.shape_response(call, tenant, exchange, upstream.status.as_u16(), upstream.body.clone(), &answer);
    }
    let shaped = match answer {
        Ok(answer) => answer.map_err(|d| Failure::denial(Role::Shaping, d.status, &d.code, &d.message))?,
        Err(fault) if passes_through(ctx, exchange) => {
            tracing::warn!(request_id = %ctx.request_id, fault = fault.kind(), provider = %provider.id,
                "the shaping module failed; the provider's answer goes through unshaped (on_fault = \"pass-through\")");
            let status = match upstream.status.as_u16() {
                500..=599 | 401 | 407 => 502,
                s => s,
            };
            crate::wasm::bindings::shaping::Shaped {
                status,
                body: rebase_body(&upstream.body, &provider.base_url, &ctx.gateway_base()),
            }
        }
        Err(fault) => return Err(Failure::from_fault(Role::Shaping, &fault)),
    };
    let status = StatusCode::from_u16(shaped.status)
        .map_err(|_| Failure::module(Role::Shaping, format!("answered with invalid status {}", shaped.status)))?;
    Ok((status, shaped.body))
}

/// A page link's cursor, when the request follows one.
fn page_cursor(request: &Request) -> Option<&str> {
    if request.interaction != Interaction::Search || request.resource_type.is_some() {
        return None;
    }
    request.params.iter().find(|p| p.name == PAGE_PARAM).map(|p| p.value.as_str())
}

/// Follows a page link: the cursor must be ours, unexpired, issued on this
/// face for this token's tenant, and its provider still active for it.
async fn follow_page(
    ctx: &Ctx,
    claims: &Claims,
    text: &str,
    audit: &mut Audit,
) -> Result<(StatusCode, Vec<u8>), Failure> {
    let invalid = || Failure::client(StatusCode::BAD_REQUEST, "The page link is not valid; run the search again.");
    let cursor = ctx.gw.sealer.open(text, crate::oauth::keys::now_seconds()).map_err(|e| match e {
        crate::paging::CursorError::Expired => Failure::client(StatusCode::GONE, e.to_string()),
        crate::paging::CursorError::Invalid => invalid(),
    })?;
    if !cursor.tenant.eq_ignore_ascii_case(&claims.tenant_id)
        || cursor.client != claims.client_id
        || cursor.face != ctx.face.face()
    {
        return Err(invalid());
    }
    audit.resource_type = cursor.resource_type.clone();
    let provider = ctx.directory.resolve(&claims.tenant_id, &cursor.provider).map_err(tenant_refused)?;
    audit.provider = Some(provider.id.clone());
    let (path, query) = cursor.link.split_once('?').unwrap_or((cursor.link.as_str(), ""));
    check_path(path).map_err(|_| invalid())?;
    let url = if query.is_empty() {
        format!("{}/{path}", provider.base_url)
    } else {
        format!("{}/{path}?{query}", provider.base_url)
    };
    let exchange = exchange(ctx, &provider, Interaction::Search);
    let headers: Vec<Header> =
        cursor.headers.iter().map(|(name, value)| Header { name: name.clone(), value: value.clone() }).collect();
    let headers = route_headers(&headers)?;
    let (status, body) = forward_and_shape(
        ctx,
        ctx.policy.shaper_for(&claims.tenant_id),
        &claims.tenant_id,
        &provider,
        &exchange,
        &url,
        headers,
    )
    .await?;
    Ok((status, seal_links(ctx, claims, &provider, cursor.resource_type.as_deref(), &cursor.headers, body)))
}

/// Replaces the links of a shaped searchset (already moved onto the
/// gateway's base by the shaping module) with sealed cursors.
fn seal_links(
    ctx: &Ctx,
    claims: &Claims,
    provider: &ProviderRoute,
    resource_type: Option<&str>,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Vec<u8> {
    // Cheap pre-check: most answers to reads carry no links.
    if !body.windows(6).any(|w| w == b"\"link\"") {
        return body;
    }
    // Only the top level is parsed: the entries (nearly all of a page) are
    // copied through as they are.
    let Ok(RawMembers(members)) = serde_json::from_slice::<RawMembers>(&body) else { return body };
    // A repeated member counts once, as its last occurrence (as when the
    // whole answer is parsed).
    let last_at: std::collections::HashMap<&str, usize> =
        members.iter().enumerate().map(|(i, (name, _))| (name.as_str(), i)).collect();
    let last = |name: &str| last_at.get(name).copied();
    let kind = last("resourceType").and_then(|i| serde_json::from_str::<String>(members[i].1.get()).ok());
    if kind.as_deref() != Some("Bundle") {
        return body;
    }
    let Some(link_at) = last("link") else { return body };
    let base = ctx.gateway_base();
    let expires_at = crate::oauth::keys::now_seconds() + CURSOR_LIFETIME_SECONDS;
    let seal = |links: &mut Vec<Value>| {
        links.retain_mut(|link| {
            let Some(url) = link.get("url").and_then(Value::as_str) else { return false };
            let Some(rel) = url.strip_prefix(&base) else { return false };
            let rel = rel.trim_start_matches('/');
            if rel.is_empty() || rel.starts_with('?') {
                return false;
            }
            let cursor = Cursor {
                tenant: claims.tenant_id.to_ascii_lowercase(),
                provider: provider.id.clone(),
                face: ctx.face.face().to_owned(),
                resource_type: resource_type.map(str::to_owned),
                client: claims.client_id.clone(),
                link: rel.to_owned(),
                headers: headers.to_vec(),
                expires_at,
            };
            match ctx.gw.sealer.seal(&cursor) {
                Some(sealed) => {
                    link["url"] = Value::String(format!("{base}?{PAGE_PARAM}={sealed}"));
                    true
                }
                None => false,
            }
        });
    };
    // Links that are not an array: the answer as it is.
    let Ok(mut links) = serde_json::from_str::<Vec<Value>>(members[link_at].1.get()) else { return body };
    seal(&mut links);
    let mut out = Vec::with_capacity(body.len() + 1024);
    out.push(b'{');
    let mut first = true;
    for (i, (name, value)) in members.iter().enumerate() {
        if let Some(at) = last(name)
            && at != i
        {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        if serde_json::to_writer(&mut out, name).is_err() {
            return body;
        }
        out.push(b':');
        if i == link_at {
            if serde_json::to_writer(&mut out, &links).is_err() {
                return body;
            }
        } else {
            out.extend_from_slice(value.get().as_bytes());
        }
    }
    out.push(b'}');
    out
}

/// A JSON object's members in document order, their values unparsed.
struct RawMembers<'a>(Vec<(String, &'a serde_json::value::RawValue)>);

impl<'de> serde::Deserialize<'de> for RawMembers<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = RawMembers<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut members = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    members.push((name, map.next_value()?));
                }
                Ok(RawMembers(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// The answer for a tenant the directory does not route.
fn tenant_refused(r: Refusal) -> Failure {
    let message = match r {
        Refusal::UnknownTenant => "This token's tenant is not onboarded with any provider.",
        Refusal::Pending => "This token's tenant is awaiting approval of its provider mapping.",
        Refusal::Rejected => "This token's tenant's provider mapping was rejected.",
        Refusal::NotApproved => "The provider is no longer active for this token's tenant; run the search again.",
        Refusal::Unavailable => {
            return Failure::gateway("The provider's settings could not be loaded; the operator has been told.");
        }
    };
    Failure::client(StatusCode::FORBIDDEN, message)
}

/// Phase 1: the request as modules see it.
fn parse(
    ctx: &Ctx,
    method: &Method,
    rest: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Request, Failure> {
    let segments: Vec<&str> = if rest.is_empty() { Vec::new() } else { rest.split('/').collect() };
    let bad_type = |t: &str| Failure::client(StatusCode::BAD_REQUEST, format!("`{}` is not a resource type.", clip(t)));
    let mut params = query.map(parse_params).transpose()?.unwrap_or_default();
    if query.is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "access_token")) {
        return Err(Failure::bearer(
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
            "Send the access token in the Authorization header, not the URL.",
        ));
    }
    let (interaction, resource_type, resource_id, body) = match (method, segments.as_slice()) {
        (&Method::POST, []) => (Interaction::Batch, None, None, Some(body.to_vec())),
        (&Method::GET, [t]) if is_type(t) => (Interaction::Search, Some(*t), None, None),
        (&Method::GET, [t, "_search"]) if is_type(t) => (Interaction::Search, Some(*t), None, None),
        (&Method::POST, [t, "_search"]) if is_type(t) => {
            let form = headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
            if !form && !body.is_empty() {
                return Err(Failure::client(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "A _search body must be application/x-www-form-urlencoded.",
                ));
            }
            let text = std::str::from_utf8(&body)
                .map_err(|_| Failure::client(StatusCode::BAD_REQUEST, "The _search body is not valid UTF-8."))?;
            params.extend(parse_params(text)?);
            if params.len() > MAX_PARAMS {
                return Err(Failure::client(StatusCode::BAD_REQUEST, "Too many search parameters."));
            }
            (Interaction::Search, Some(*t), None, None)
        }
        (&Method::GET, [t, id]) if is_type(t) => {
            if !is_id(id) {
                return Err(Failure::client(StatusCode::BAD_REQUEST, "The resource id is not a valid FHIR id."));
            }
            (Interaction::Read, Some(*t), Some(*id), None)
        }
        (&Method::GET, [t, id, "_history", vid]) if is_type(t) && is_id(id) && is_id(vid) => {
            (Interaction::Vread, Some(*t), Some(*id), None)
        }
        (&Method::GET, []) if params.len() == 1 && params[0].name == PAGE_PARAM => {
            (Interaction::Search, None, None, None)
        }
        (&Method::GET, []) => {
            return Err(Failure::client(
                StatusCode::BAD_REQUEST,
                "Search across all resource types is not supported; search a resource type.",
            ));
        }
        (m, [t, ..]) if !is_type(t) && *m == Method::GET => return Err(bad_type(t)),
        (&Method::PUT | &Method::DELETE | &Method::PATCH | &Method::POST, _) => {
            return Err(Failure::client(
                StatusCode::METHOD_NOT_ALLOWED,
                "This gateway is read-only: only reads, searches and read batches are allowed.",
            ));
        }
        _ => return Err(Failure::client(StatusCode::NOT_FOUND, "No such FHIR interaction on this server.")),
    };
    let headers = headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "authorization" | "cookie" | "proxy-authorization"))
        .filter_map(|(name, value)| {
            Some(Header { name: name.as_str().to_owned(), value: value.to_str().ok()?.to_owned() })
        })
        .collect();
    Ok(Request {
        request_id: ctx.request_id.clone(),
        method: method.as_str().to_owned(),
        fhir_version: ctx.face.wit(),
        interaction,
        resource_type: resource_type.map(str::to_owned),
        resource_id: resource_id.map(str::to_owned),
        path: rest.to_owned(),
        params,
        headers,
        body,
    })
}

fn parse_params(text: &str) -> Result<Vec<Param>, Failure> {
    let params: Vec<Param> = form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| Param { name: k.into_owned(), value: v.into_owned() })
        .collect();
    if params.len() > MAX_PARAMS {
        return Err(Failure::client(StatusCode::BAD_REQUEST, "Too many search parameters."));
    }
    if let Some(p) = params.iter().find(|p| p.name.is_empty()) {
        return Err(Failure::client(
            StatusCode::BAD_REQUEST,
            format!("A parameter has no name (value `{}`).", clip(&p.value)),
        ));
    }
    Ok(params)
}

/// A resource type: an upper-case letter, then letters (FHIR names).
fn is_type(s: &str) -> bool {
    let b = s.as_bytes();
    (2..=64).contains(&b.len()) && b[0].is_ascii_uppercase() && b.iter().all(u8::is_ascii_alphabetic)
}

/// A FHIR id: 1–64 of `[A-Za-z0-9-.]`.
fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Phase 2: the token, checked by the token-validation module.
async fn authenticate(ctx: &Ctx, headers: &HeaderMap, request: &Request) -> Result<Arc<Claims>, Failure> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next();
    if values.next().is_some() {
        return Err(Failure::bearer(
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
            "More than one Authorization header.",
        ));
    }
    let Some(value) = value else {
        return Err(Failure::bearer(StatusCode::UNAUTHORIZED, None, "A bearer token is required."));
    };
    let token = crate::oauth::bearer_token(value)
        .ok_or_else(|| Failure::bearer(StatusCode::UNAUTHORIZED, None, "A bearer token is required."))?;
    // RFC 6750 b64token syntax; anything else cannot be a token of ours.
    if token.is_empty()
        || token.len() > 8192
        || !token.bytes().all(|c| c.is_ascii_alphanumeric() || b"-._~+/=".contains(&c))
    {
        return Err(Failure::bearer(StatusCode::UNAUTHORIZED, Some("invalid_token"), "The access token is malformed."));
    }
    // A verdict is cached per token, validator and configuration: a warm
    // request skips the module; expiry and revocation are still checked below.
    let bound = &ctx.policy.validator;
    let auth = &ctx.gw.auth;
    let key: VerdictKey =
        (Sha256::digest(token.as_bytes()).into(), bound.module.digest().clone(), bound.config_json.clone());
    let now = crate::oauth::keys::now_seconds();
    let claims = match auth.verdicts.get(&key).filter(|v| now < v.until) {
        Some(verdict) => {
            if let Some((run, shadow)) = ctx.shadow_of(&ctx.policy.shadows.validator, bound, 0) {
                run.validate(ctx.call_ctx_of(shadow), token, request, &Ok(Ok((*verdict.claims).clone())));
            }
            verdict.claims
        }
        None => {
            let answer = bound.module.validate(ctx.call_ctx_of(bound), token, request).await;
            if let Some((run, shadow)) = ctx.shadow_of(&ctx.policy.shadows.validator, bound, 0) {
                run.validate(ctx.call_ctx_of(shadow), token, request, &answer);
            }
            let claims = answer
                .map_err(|f| Failure::from_fault(Role::TokenValidation, &f))?
                .map_err(|d| Failure::denial(Role::TokenValidation, d.status, &d.code, &d.message))?;
            let claims = Arc::new(claims);
            let until = claims.expires_at.min(now.saturating_add(auth.lifetime_seconds));
            auth.verdicts.insert(key, Verdict { claims: claims.clone(), until });
            claims
        }
    };
    // The module vouches for these; the host still refuses nonsense, so a
    // faulty validator cannot open the gate wider than a valid token would.
    if claims.client_id.is_empty() || !crate::policy::is_guid(&claims.tenant_id) {
        return Err(Failure::module(Role::TokenValidation, "returned claims without a client id or tenant id"));
    }
    if claims.token_id.as_deref().is_some_and(|jti| ctx.gw.auth.revoked.is_revoked(jti)) {
        return Err(Failure::bearer(StatusCode::UNAUTHORIZED, Some("invalid_token"), "The access token was revoked."));
    }
    if claims.expires_at <= crate::oauth::keys::now_seconds() {
        return Err(Failure::bearer(StatusCode::UNAUTHORIZED, Some("invalid_token"), "The access token expired."));
    }
    Ok(claims)
}

/// Phase 3: the routing module's answer, enforced.
async fn route(ctx: &Ctx, claims: &Claims, request: &Request) -> Result<(Target, Arc<ProviderRoute>), Failure> {
    let router = ctx.policy.router_for(&claims.tenant_id);
    let answer = router.module.route(ctx.call_ctx_of(router), claims, request).await;
    // The candidate stands in for the partner's router: tenants with their
    // own are not compared.
    if let Some((run, bound)) = ctx.shadow_of(&ctx.policy.shadows.router, router, 0) {
        run.route(ctx.call_ctx_of(bound), claims, request, &answer);
    }
    let target = answer
        .map_err(|f| Failure::from_fault(Role::Routing, &f))?
        .map_err(|d| Failure::denial(Role::Routing, d.status, &d.code, &d.message))?;
    let provider = ctx.directory.resolve(&claims.tenant_id, &target.provider_id).map_err(|r| match r {
        Refusal::Unavailable => tenant_refused(r),
        _ => Failure::module(Role::Routing, "it chose a provider that is not active for this token's tenant"),
    })?;
    check_path(&target.path).map_err(|m| Failure::module(Role::Routing, m))?;
    check_params(&target.params).map_err(|m| Failure::module(Role::Routing, m))?;
    Ok((target, provider))
}

/// Most parameters, and longest parameter name or value, a module may send
/// upstream: generous for FHIR searches, and far below what makes an
/// upstream URL a problem.
const MAX_UPSTREAM_PARAMS: usize = 4 * MAX_PARAMS;
const MAX_PARAM_TEXT: usize = 4096;

fn check_params(params: &[Param]) -> Result<(), String> {
    if params.len() > MAX_UPSTREAM_PARAMS {
        return Err(format!("it answered {} upstream parameters (at most {MAX_UPSTREAM_PARAMS})", params.len()));
    }
    if params.iter().any(|p| p.name.len() > MAX_PARAM_TEXT || p.value.len() > MAX_PARAM_TEXT) {
        return Err(format!("it answered an upstream parameter longer than {MAX_PARAM_TEXT} bytes"));
    }
    Ok(())
}

/// An upstream path is FHIR path segments only: no scheme, no `..`, no
/// query, nothing that could leave the provider's base.
fn check_path(path: &str) -> Result<(), String> {
    let ok = !path.is_empty()
        && path.len() <= 512
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.bytes().all(|c| c.is_ascii_alphanumeric() || b"-._$".contains(&c))
        });
    if ok { Ok(()) } else { Err("it answered an upstream path that is not a plain FHIR path".into()) }
}

/// Headers a routing answer may not set: credentials are the host's, and
/// hop-by-hop headers belong to the connection.
const FORBIDDEN_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "cookie",
    "accept",
];

fn route_headers(headers: &[Header]) -> Result<HeaderMap, Failure> {
    let mut map = HeaderMap::new();
    for h in headers.iter().take(32) {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| Failure::module(Role::Routing, "it answered an invalid header name"))?;
        if FORBIDDEN_HEADERS.contains(&name.as_str()) {
            return Err(Failure::module(Role::Routing, format!("it may not set the `{name}` header")));
        }
        let value = HeaderValue::from_str(&h.value)
            .map_err(|_| Failure::module(Role::Routing, format!("it answered an invalid value for `{name}`")))?;
        map.append(name, value);
    }
    Ok(map)
}

fn upstream_url(base: &str, req: &UpstreamRequest) -> String {
    let mut url = format!("{base}/{}", req.path);
    if !req.params.is_empty() {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for p in &req.params {
            ser.append_pair(&p.name, &p.value);
        }
        url.push('?');
        url.push_str(&ser.finish());
    }
    url
}

/// A `batch` Bundle: every entry authorised by the one token, then routed,
/// forwarded and shaped on its own, several at a time; one entry's failure is
/// that entry's response only.
async fn batch(ctx: &Ctx, claims: &Arc<Claims>, request: &Request) -> Result<Response<Body>, Failure> {
    let body = request.body.as_deref().unwrap_or_default();
    let bundle: Value = serde_json::from_slice(body)
        .map_err(|_| Failure::client(StatusCode::BAD_REQUEST, "The body is not a JSON Bundle."))?;
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(Failure::client(StatusCode::BAD_REQUEST, "The body is not a Bundle."));
    }
    match bundle.get("type").and_then(Value::as_str) {
        Some("batch") => {}
        Some("transaction") => {
            return Err(Failure::client(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Transactions are not supported: this gateway only reads. Send a batch of GET entries.",
            ));
        }
        _ => return Err(Failure::client(StatusCode::BAD_REQUEST, "Only `batch` Bundles can be posted here.")),
    }
    let entries = match bundle {
        Value::Object(mut b) => match b.remove("entry") {
            Some(Value::Array(entries)) => entries,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    if entries.len() > MAX_BATCH_ENTRIES {
        return Err(Failure::client(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("A batch may hold at most {MAX_BATCH_ENTRIES} entries."),
        ));
    }
    // Each entry is a task of its own, so entries use every core (shaping
    // is CPU work), at most `BATCH_PARALLELISM` at a time. A batch the
    // client gives up on starts no more entries; one started runs to its end,
    // so what it read from the provider is in the access log.
    let pending: Vec<_> = entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let (ctx, claims, headers) = (ctx.clone(), claims.clone(), request.headers.clone());
            async move {
                let part = i as u32 + 1;
                let task = tokio::spawn({
                    let (ctx, claims) = (ctx.clone(), claims.clone());
                    async move { batch_entry(&ctx, &claims, headers, part, &e).await }
                });
                match task.await {
                    Ok(entry) => entry,
                    Err(_) => entry_failed(&ctx, &claims, part).await,
                }
            }
        })
        .collect();
    let entry: Vec<BatchEntry> = futures_util::stream::iter(pending).buffered(BATCH_PARALLELISM).collect().await;
    let out =
        BatchResponse { resource_type: "Bundle", id: uuid::Uuid::new_v4().to_string(), kind: "batch-response", entry };
    let body = serde_json::to_string(&out).map_err(|_| Failure::gateway("The batch answer could not be written."))?;
    Ok(json_response(StatusCode::OK, ctx.face.content_type(), body))
}

async fn batch_entry(ctx: &Ctx, claims: &Claims, headers: Vec<Header>, part: u32, entry: &Value) -> BatchEntry {
    let started = Instant::now();
    let at_ms = ctx.arrived_ms;
    let mut audit = Audit::default();
    let mut sub_request: Option<(Interaction, Option<String>)> = None;
    let result = async {
        let req = entry
            .get("request")
            .ok_or_else(|| Failure::client(StatusCode::BAD_REQUEST, "The entry has no request."))?;
        let method = req.get("method").and_then(Value::as_str).unwrap_or("");
        if method != "GET" {
            return Err(Failure::client(
                StatusCode::METHOD_NOT_ALLOWED,
                "Only GET entries are allowed: this gateway only reads.",
            ));
        }
        let url = req
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| Failure::client(StatusCode::BAD_REQUEST, "The entry's request has no url."))?;
        let gateway_base = ctx.gateway_base();
        let relative =
            url.strip_prefix(&gateway_base).map(|r| r.trim_start_matches('/')).unwrap_or(url).trim_start_matches('/');
        if relative.contains("://") {
            return Err(Failure::client(StatusCode::BAD_REQUEST, "Entry urls must be relative to this base."));
        }
        let (path, query) = match relative.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (relative, None),
        };
        let mut sub = parse(ctx, &Method::GET, path.trim_end_matches('/'), query, &HeaderMap::new(), Bytes::new())?;
        sub.headers = headers;
        sub_request = Some((sub.interaction, sub.resource_type.clone()));
        audit.patient = patient_of(&sub);
        if page_cursor(&sub).is_some() || sub.interaction == Interaction::Batch {
            return Err(Failure::client(StatusCode::BAD_REQUEST, "Batch entries must be reads or searches."));
        }
        let (status, body) = broker(ctx, claims, &sub, &mut audit).await?;
        // Checked, not parsed into values: the batch answer carries it as it is.
        let resource = serde_json::from_slice::<&RawValue>(&body)
            .map(RawValue::to_owned)
            .map_err(|_| Failure::module(Role::Shaping, "it answered a body that is not JSON"))?;
        Ok((status, resource))
    }
    .await;
    let mut provider_fault = false;
    let (status, resource) = match result {
        Ok(r) => r,
        Err(f) => {
            log_failure(ctx, &f);
            provider_fault = f.fault == crate::error::Fault::Provider;
            let severity = if f.status.is_server_error() { "fatal" } else { "error" };
            (f.status, outcome_raw(severity, f.issue, &f.message))
        }
    };
    let (interaction, resource_type) = sub_request.unwrap_or((Interaction::Other, None));
    ctx.gw
        .access
        .record(AccessRecord {
            request_id: ctx.request_id.clone(),
            part,
            at_ms,
            client_id: Some(claims.client_id.clone()),
            tenant_id: Some(claims.tenant_id.to_ascii_lowercase()),
            provider_id: audit.provider,
            face: ctx.face.face().to_owned(),
            interaction: interaction_name(interaction).to_owned(),
            resource_type,
            patient_id: audit.patient,
            outcome: Outcome::from_status(status.as_u16(), provider_fault),
            status: status.as_u16(),
            latency_us: started.elapsed().as_micros() as u64,
        })
        .await;
    BatchEntry {
        full_url: full_url(&ctx.gateway_base(), &resource),
        resource,
        response: EntryResponse { status: status_line(status) },
    }
}

/// A `batch-response` Bundle.
#[derive(serde::Serialize)]
struct BatchResponse {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    entry: Vec<BatchEntry>,
}

/// One entry of a `batch-response`: the shaped resource copied in as the
/// module answered it.
#[derive(serde::Serialize)]
struct BatchEntry {
    #[serde(rename = "fullUrl", skip_serializing_if = "Option::is_none")]
    full_url: Option<String>,
    resource: Box<RawValue>,
    response: EntryResponse,
}

#[derive(serde::Serialize)]
struct EntryResponse {
    status: String,
}

impl BatchEntry {
    fn failed(status: StatusCode, message: &str) -> BatchEntry {
        BatchEntry {
            full_url: None,
            resource: outcome_raw("fatal", "exception", message),
            response: EntryResponse { status: status_line(status) },
        }
    }
}

fn status_line(status: StatusCode) -> String {
    format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("")).trim_end().to_owned()
}

/// An OperationOutcome as JSON text.
fn outcome_raw(severity: &str, code: &str, message: &str) -> Box<RawValue> {
    let text = crate::fhir::outcome::outcome(severity, code, message).to_string();
    RawValue::from_string(text).unwrap_or_else(|_| unreachable!("a Value's text is JSON"))
}

/// The answer and the access record of an entry whose task failed (a fault
/// of the gateway's: nothing on input makes one).
async fn entry_failed(ctx: &Ctx, claims: &Claims, part: u32) -> BatchEntry {
    tracing::error!(request_id = %ctx.request_id, part, "a batch entry's task failed");
    let status = StatusCode::INTERNAL_SERVER_ERROR;
    ctx.gw
        .access
        .record(AccessRecord {
            request_id: ctx.request_id.clone(),
            part,
            at_ms: ctx.arrived_ms,
            client_id: Some(claims.client_id.clone()),
            tenant_id: Some(claims.tenant_id.to_ascii_lowercase()),
            provider_id: None,
            face: ctx.face.face().to_owned(),
            interaction: interaction_name(Interaction::Other).to_owned(),
            resource_type: None,
            patient_id: None,
            outcome: Outcome::GatewayError,
            status: status.as_u16(),
            latency_us: 0,
        })
        .await;
    BatchEntry::failed(status, "The entry could not be completed.")
}

fn full_url(base: &str, resource: &RawValue) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(rename = "resourceType", borrow)]
        resource_type: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow)]
        id: Option<std::borrow::Cow<'a, str>>,
    }
    let head: Head = serde_json::from_str(resource.get()).ok()?;
    let (rt, id) = (head.resource_type?, head.id?);
    (rt != "OperationOutcome").then(|| format!("{base}/{rt}/{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_members_keep_order_and_values_byte_for_byte() {
        let text = br#"{"resourceType":"Bundle","entry":[{"a":1.50,"b":"x\u0041"}],"link":[],"type":"searchset"}"#;
        let RawMembers(members) = serde_json::from_slice(text).unwrap();
        let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["resourceType", "entry", "link", "type"]);
        assert_eq!(members[1].1.get(), r#"[{"a":1.50,"b":"x\u0041"}]"#);
        assert!(serde_json::from_slice::<RawMembers>(b"[1]").is_err());
        assert!(serde_json::from_slice::<RawMembers>(br#"{"a":1} x"#).is_err());
    }

    #[test]
    fn paths() {
        assert!(check_path("Patient/123").is_ok());
        assert!(check_path("Patient").is_ok());
        assert!(check_path("../admin").is_err());
        assert!(check_path("Patient//x").is_err());
        assert!(check_path("http://evil/x").is_err());
        assert!(check_path("Patient?x=1").is_err());
        assert!(check_path("").is_err());
    }

    #[test]
    fn types_and_ids() {
        assert!(is_type("Patient"));
        assert!(!is_type("patient"));
        assert!(!is_type("Pat1ent"));
        assert!(is_id("abc-1.2"));
        assert!(!is_id("a/b"));
        assert!(!is_id(&"x".repeat(65)));
    }

    #[test]
    fn route_headers_refuse_credentials() {
        let h = |n: &str, v: &str| Header { name: n.into(), value: v.into() };
        assert!(route_headers(&[h("x-tenant", "a")]).is_ok());
        assert!(route_headers(&[h("authorization", "Bearer x")]).is_err());
        assert!(route_headers(&[h("bad name", "x")]).is_err());
        assert!(route_headers(&[h("x-a", "line\nbreak")]).is_err());
    }
}
