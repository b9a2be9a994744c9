//! The FHIR request pipeline. Every request on a face runs the same phases,
//! one function each with a typed hand-off to the next, in this order:
//!
//! 1. **parse** ([`parse`]) — method and path into an interaction; a
//!    `_search` form body into parameters. First, so modules never see
//!    malformed requests.
//! 2. **authenticate** ([`authenticate`], token-validation module) — before
//!    anything reaches a module that acts on the tenant. Fails closed: a
//!    module fault refuses.
//! 3. **route** ([`route`], routing module) — the module proposes a
//!    provider; the host enforces that it is approved for the token's tenant.
//!    Fails closed.
//! 4. **shape request** ([`shape_request`], shaping module) — the search as
//!    the provider's version understands it. A fault is an error, never an
//!    unshaped request (unless the policy passes same-version traffic).
//! 5. **forward** ([`forward`]) — the pooled client, within the provider's
//!    time budget.
//! 6. **shape response** ([`shape_response`], shaping module) — the answer in
//!    the client's version with links on the gateway. A fault is an error:
//!    the app must never receive a body in the wrong version.
//! 7. **seal links** ([`links`]) — a searchset's page links become opaque
//!    cursors; following one runs these phases again without routing.
//! 8. **audit** ([`audit`]) — one record per brokered access, whatever the
//!    outcome, written to the store's append-only access log.
//!
//! A `batch` Bundle ([`batch`]) runs phases 1 and 3–8 for each entry under
//! the one authentication.

mod audit;
mod authenticate;
mod batch;
mod forward;
mod links;
mod parse;
mod route;
mod shape_request;
mod shape_response;
#[cfg(test)]
mod testing;

use std::sync::Arc;

use bytes::Bytes;
use fhirgate_core::Version;
use fhirgate_core::failure::{Body, Failure, Fault, json_response};
use fhirgate_sandbox::CallContext;
use fhirgate_sandbox::bindings::shaping::Exchange;
use fhirgate_sandbox::bindings::types::{Claims, Interaction, Request};
use http::{HeaderMap, Method, Response, StatusCode};

use self::audit::{AccessGuard, Audit};
use crate::directory::{ProviderRoute, Refusal, Snapshot};
use crate::policy::{BoundModule, OnFault, Policy};
use crate::services::Services;

/// One request's context, shared by its phases.
#[derive(Clone)]
pub struct Ctx {
    pub gw: Arc<Services>,
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

    fn call_ctx_of(&self, bound: &BoundModule) -> CallContext {
        CallContext {
            partner: self.policy.partner.clone(),
            module: bound.module.name().clone(),
            digest: bound.module.digest().clone(),
            config_json: bound.config_json.clone(),
            issuer: self.gw.auth().facts(),
            directory: self.directory.clone(),
            reads: None,
            request_id: self.request_id.clone(),
            fixed_now_ms: None,
            counted: true,
        }
    }
}

/// Handles a request under a face. `rest` is the path after `/{face}/`;
/// `body` reads the request body (or says why it could not be): it is
/// awaited only once the bearer token has been accepted, and only for a
/// request that carries one, so an unauthenticated client cannot make the
/// gateway read, or hold, a body.
pub async fn handle<B>(
    ctx: &Ctx,
    method: &Method,
    rest: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: B,
) -> Response<Body>
where
    B: Future<Output = Result<Bytes, Failure>>,
{
    let mut guard = AccessGuard::new(ctx);
    // The request line and headers alone: what the token is judged against.
    let head = parse::parse(ctx, method, rest, query, headers, Bytes::new());
    if let Ok(r) = &head {
        guard.interaction = parse::interaction_name(r.interaction);
        guard.audit.resource_type = r.resource_type.clone();
        guard.audit.patient = parse::patient_of(r);
    }
    let result = match head {
        Ok(head) => {
            let line = Line { method, rest, query, headers };
            run(ctx, &line, head, body, &mut guard.audit).await
        }
        Err(f) => Err(f),
    };
    let (response, provider_fault) = match result {
        Ok(resp) => (resp, false),
        Err(failure) => {
            log_failure(ctx, &failure);
            let provider_fault = failure.fault == Fault::Provider;
            (failure.into_response(ctx.face), provider_fault)
        }
    };
    if guard.finish(response.status().as_u16(), provider_fault).await {
        return response;
    }
    // Nothing is released unrecorded.
    let failure = Failure::gateway("The access could not be recorded, so its answer is withheld.");
    log_failure(ctx, &failure);
    failure.into_response(ctx.face)
}

fn log_failure(ctx: &Ctx, f: &Failure) {
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

/// A request as it arrived, before its body.
struct Line<'a> {
    method: &'a Method,
    rest: &'a str,
    query: Option<&'a str>,
    headers: &'a HeaderMap,
}

/// Phases 2 to 7 of a request whose head parsed: authenticated once, its
/// body (if it has one) read and parsed, then a followed page link, a batch,
/// or one read or search.
async fn run<B>(
    ctx: &Ctx,
    line: &Line<'_>,
    head: Request,
    body: B,
    audit: &mut Audit,
) -> Result<Response<Body>, Failure>
where
    B: Future<Output = Result<Bytes, Failure>>,
{
    let headers = line.headers;
    let (claims, environment) = authenticate::authenticate(ctx, headers, &head).await?;
    // A test client's token sees only the test view of the directory.
    let test_ctx;
    let ctx = if environment == ctx.directory.environment {
        ctx
    } else {
        test_ctx = Ctx { directory: ctx.gw.directory().snapshot_for(environment), ..ctx.clone() };
        &test_ctx
    };
    audit.client_id = Some(claims.client_id.clone());
    audit.tenant = Some(claims.tenant_id.clone());
    let request = if line.method == Method::POST {
        let request = parse::parse(ctx, line.method, line.rest, line.query, headers, body.await?)?;
        audit.patient = parse::patient_of(&request);
        request
    } else {
        head
    };
    // The tenant must be onboarded and approved before any module acts on
    // its behalf.
    ctx.directory.check_tenant(&claims.tenant_id).map_err(tenant_refused)?;
    if let Some(cursor) = parse::page_cursor(&request) {
        let (status, body) = links::follow_page(ctx, &claims, cursor, audit).await?;
        return Ok(json_response(status, ctx.face.content_type(), body));
    }
    if request.interaction == Interaction::Batch {
        return batch::batch(ctx, &claims, &request).await;
    }
    let (status, body) = broker(ctx, &claims, &request, audit).await?;
    Ok(json_response(status, ctx.face.content_type(), body))
}

/// Phases 3 to 7 for one read or search: route, shape the request, forward,
/// shape the response, seal its links.
async fn broker(
    ctx: &Ctx,
    claims: &Claims,
    request: &Request,
    audit: &mut Audit,
) -> Result<(StatusCode, Vec<u8>), Failure> {
    let (target, provider) = route::route(ctx, claims, request).await?;
    audit.provider = Some(provider.id.clone());
    let exchange = exchange(ctx, &provider, request.interaction);
    let shaper = ctx.policy.shaper_for(&claims.tenant_id);
    // One instance of the shaper for both its calls, held across the wait.
    let mut lease = shaper.lease(&claims.tenant_id);
    let tenant = &claims.tenant_id;
    let upstream_request = shape_request::shape_request(ctx, shaper, &mut lease, tenant, &exchange, &target).await?;
    let url = route::upstream_url(&provider.base_url, &upstream_request);
    let headers = route::route_headers(&target.headers)?;
    let (status, body) =
        forward_and_shape(ctx, (shaper, &mut lease), tenant, &provider, &exchange, &url, headers).await?;
    if request.interaction == Interaction::Search {
        let headers: Vec<(String, String)> = target.headers.iter().map(|h| (h.name.clone(), h.value.clone())).collect();
        let body = links::seal_links(ctx, claims, &provider, request.resource_type.as_deref(), &headers, body);
        return Ok((status, body));
    }
    Ok((status, body))
}

/// Phases 5 and 6: the provider's answer, shaped into the client's version.
async fn forward_and_shape(
    ctx: &Ctx,
    (shaper, lease): (&BoundModule, &mut fhirgate_sandbox::Lease),
    tenant: &str,
    provider: &ProviderRoute,
    exchange: &Exchange,
    url: &str,
    headers: HeaderMap,
) -> Result<(StatusCode, Vec<u8>), Failure> {
    let forwarded = forward::forward(ctx, provider, url, headers).await?;
    shape_response::shape_response(ctx, shaper, lease, tenant, provider, exchange, forwarded).await
}

fn exchange(ctx: &Ctx, provider: &ProviderRoute, interaction: Interaction) -> Exchange {
    Exchange {
        client_version: fhirgate_sandbox::wit_version(ctx.face),
        upstream_version: fhirgate_sandbox::wit_version(provider.fhir_version),
        interaction,
        gateway_base: ctx.gateway_base(),
        upstream_base: provider.base_url.clone(),
    }
}

/// Whether a shaping fault lets the exchange through unshaped: the policy
/// says so, and the provider speaks the client's version.
fn passes_through(ctx: &Ctx, exchange: &Exchange) -> bool {
    ctx.policy.shaping_on_fault == OnFault::PassThrough && exchange.client_version == exchange.upstream_version
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

/// [`crate::policy::invoke`] as the phases call it.
#[cfg(test)]
mod invoke_tests {
    use fhirgate_core::Version;
    use http::StatusCode;

    use std::sync::Arc;

    use fhirgate_sandbox::bindings::shaping::{Exchange, UpstreamRequest};
    use fhirgate_sandbox::{GuestFault, Role};

    use super::testing;
    use crate::policy::BoundModule;
    use crate::policy::invoke::*;

    fn exchange() -> Exchange {
        Exchange {
            client_version: fhirgate_sandbox::wit_version(Version::Stu3),
            upstream_version: fhirgate_sandbox::wit_version(Version::R4),
            interaction: fhirgate_sandbox::bindings::types::Interaction::Read,
            gateway_base: "http://127.0.0.1:8080/stu3".into(),
            upstream_base: testing::PROVIDER_BASE.into(),
        }
    }

    #[tokio::test]
    async fn the_modules_answer_is_served_and_its_denial_is_the_roles_failure() {
        let gw = testing::gateway().await;
        let ctx = testing::ctx(&gw, Version::Stu3);
        let policy = ctx.policy.clone();
        let request = testing::get(&ctx, "Patient/p1");
        let context = |b: &BoundModule| ctx.call_ctx_of(b);
        let claims = testing::claims();
        let call = Route { claims: &claims, request: &request };
        let target = invoke(&policy, &policy.router, &context, call, None, None).await.unwrap();
        assert_eq!(target.provider_id, "demo");
        let call = Validate { token: "not-a-token-of-ours", request: &request };
        let f = invoke(&policy, &policy.validator, &context, call, None, None).await.unwrap_err();
        assert_eq!((f.status, f.bearer_error.as_deref()), (StatusCode::UNAUTHORIZED, Some("invalid_token")));
    }

    #[tokio::test]
    async fn a_known_answer_is_served_without_asking_the_module() {
        let gw = testing::gateway().await;
        let ctx = testing::ctx(&gw, Version::Stu3);
        let policy = ctx.policy.clone();
        let request = testing::get(&ctx, "Patient/p1");
        let known = Arc::new(testing::claims());
        // The validator would refuse this token; the cached verdict stands.
        let call = Validate { token: "not-a-token-of-ours", request: &request };
        let served =
            invoke(&policy, &policy.validator, &|b| ctx.call_ctx_of(b), call, Some(known.clone()), None).await.unwrap();
        assert!(Arc::ptr_eq(&served, &known));
    }

    #[tokio::test]
    async fn a_fault_is_the_roles_failure_unless_a_fallback_stands_in() {
        let gw = testing::gateway().await;
        let ctx = testing::ctx(&gw, Version::Stu3);
        let policy = ctx.policy.clone();
        let exchange = exchange();
        let request = UpstreamRequest { path: "Patient/p1".into(), params: vec![] };
        // The validator exports no shaping: asking it to shape is a fault.
        let (mut one, mut two) = (policy.validator.lease(testing::TENANT), policy.validator.lease(testing::TENANT));
        let call = |lease| ShapeRequest { lease, tenant: testing::TENANT, exchange: &exchange, request: &request };
        let context = |b: &BoundModule| ctx.call_ctx_of(b);
        let f = invoke(&policy, &policy.validator, &context, call(&mut one), None, None).await.unwrap_err();
        assert_eq!(f.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(f.fault, fhirgate_core::failure::Fault::Module);
        let fallback: Fallback<'_, UpstreamRequest> = Box::new(|fault| {
            assert!(matches!(fault, GuestFault::NotExported(Role::Shaping)), "{fault}");
            UpstreamRequest { path: "Patient/fallback".into(), params: vec![] }
        });
        let served = invoke(&policy, &policy.validator, &context, call(&mut two), None, Some(fallback)).await.unwrap();
        assert_eq!(served.path, "Patient/fallback");
    }
}
