//! Phase 3, route: the routing module proposes a provider and a path; the
//! host enforces that the provider is active for the token's tenant and that
//! the path, parameters and headers stay inside what an upstream request may
//! carry. Fails closed.

use std::sync::Arc;

use fhirgate_core::failure::Failure;
use fhirgate_sandbox::Role;
use fhirgate_sandbox::bindings::routing::Target;
use fhirgate_sandbox::bindings::shaping::UpstreamRequest;
use fhirgate_sandbox::bindings::types::{Claims, Header, Param, Request};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::parse::MAX_PARAMS;
use super::{Ctx, tenant_refused};
use crate::directory::{ProviderRoute, Refusal};
use crate::policy::invoke;

/// Phase 3: the routing module's answer, enforced.
pub(super) async fn route(
    ctx: &Ctx,
    claims: &Claims,
    request: &Request,
) -> Result<(Target, Arc<ProviderRoute>), Failure> {
    let router = ctx.policy.router_for(&claims.tenant_id);
    let call = invoke::Route { claims, request };
    let target = invoke::invoke(&ctx.policy, router, &|b| ctx.call_ctx_of(b), call, None, None).await?;
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
pub(super) const MAX_UPSTREAM_PARAMS: usize = 4 * MAX_PARAMS;
pub(super) const MAX_PARAM_TEXT: usize = 4096;

pub(super) fn check_params(params: &[Param]) -> Result<(), String> {
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
pub(super) fn check_path(path: &str) -> Result<(), String> {
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
pub(super) const FORBIDDEN_HEADERS: &[&str] = &[
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

pub(super) fn route_headers(headers: &[Header]) -> Result<HeaderMap, Failure> {
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

pub(super) fn upstream_url(base: &str, req: &UpstreamRequest) -> String {
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

#[cfg(test)]
mod tests {
    use fhirgate_core::Version;

    use super::super::testing;
    use super::*;

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
    fn route_headers_refuse_credentials() {
        let h = |n: &str, v: &str| Header { name: n.into(), value: v.into() };
        assert!(route_headers(&[h("x-tenant", "a")]).is_ok());
        assert!(route_headers(&[h("authorization", "Bearer x")]).is_err());
        assert!(route_headers(&[h("bad name", "x")]).is_err());
        assert!(route_headers(&[h("x-a", "line\nbreak")]).is_err());
    }

    #[tokio::test]
    async fn the_router_picks_the_tenants_provider_and_the_path() {
        let gw = testing::gateway().await;
        let ctx = testing::ctx(&gw, Version::Stu3);
        let (target, provider) = route(&ctx, &testing::claims(), &testing::get(&ctx, "Patient/p1")).await.unwrap();
        assert_eq!((target.provider_id.as_str(), target.path.as_str()), ("demo", "Patient/p1"));
        assert_eq!((provider.id.as_str(), provider.base_url.as_str()), ("demo", testing::PROVIDER_BASE));
        let url = upstream_url(&provider.base_url, &UpstreamRequest { path: target.path, params: target.params });
        assert_eq!(url, format!("{}/Patient/p1", testing::PROVIDER_BASE));
    }

    #[tokio::test]
    async fn a_provider_not_active_for_the_tenant_is_refused_whatever_the_router_says() {
        let gw = testing::gateway().await;
        let mut ctx = testing::ctx(&gw, Version::Stu3);
        // The router's table still names `demo` for the tenant; the directory
        // no longer has the mapping active.
        let demo =
            crate::directory::ProviderSpec::new(testing::PROVIDER_BASE, Version::R4).route("demo", None).unwrap();
        ctx.directory = Arc::new(crate::directory::Snapshot::from_routes(vec![demo], &[]));
        let f = route(&ctx, &testing::claims(), &testing::get(&ctx, "Patient/p1")).await.unwrap_err();
        assert_eq!(f.status, http::StatusCode::INTERNAL_SERVER_ERROR);
        assert!(f.message.contains("not active for this token's tenant"), "{}", f.message);
    }

    #[tokio::test]
    async fn a_tenant_the_router_does_not_know_is_denied() {
        let gw = testing::gateway().await;
        let ctx = testing::ctx(&gw, Version::Stu3);
        let mut claims = testing::claims();
        claims.tenant_id = "00000000-0000-4000-8000-000000000000".into();
        let f = route(&ctx, &claims, &testing::get(&ctx, "Patient/p1")).await.unwrap_err();
        assert!(f.status.is_client_error(), "{} {}", f.status, f.message);
    }
}
