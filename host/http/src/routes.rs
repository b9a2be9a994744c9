//! The route table: which surface answers a path. The FHIR faces, the OAuth
//! endpoints and the admin API each have their handler module; the few
//! fixed answers (health, metrics, key set) are here.

use std::net::IpAddr;
use std::sync::Arc;

use fhirgate_core::Version;
use fhirgate_core::failure::{Body, Failure, json_response};
use fhirgate_gateway::Services;
use fhirgate_gateway::hosts::Misdirected;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

/// Where a request goes, by its path.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    Health,
    /// The process answers: `/livez`.
    Live,
    /// The gateway should get traffic: `/readyz`.
    Ready,
    Metrics,
    /// `/oauth2/token`, `/oauth2/revoke`, `/oauth2/introspect`.
    OAuth,
    /// `/oauth2/authorize`: refused, this server has no interactive grant.
    Authorize,
    AuthorizationServerMetadata,
    Jwks,
    /// `/providers/{id}/jwks.json`: the public keys the gateway signs its
    /// assertions to provider `id` with.
    ProviderJwks(&'a str),
    Admin,
    /// The portal's pages.
    Portal,
    /// A FHIR face and the path after `/{face}/`, without trailing slashes.
    Face(Version, &'a str),
    NotFound,
}

/// The route of `path`.
pub(crate) fn route(path: &str) -> Route<'_> {
    match path {
        "/healthz" => return Route::Health,
        "/livez" => return Route::Live,
        "/readyz" => return Route::Ready,
        "/metrics" => return Route::Metrics,
        "/oauth2/token" | "/oauth2/revoke" | "/oauth2/introspect" => return Route::OAuth,
        "/oauth2/authorize" => return Route::Authorize,
        "/.well-known/oauth-authorization-server" => return Route::AuthorizationServerMetadata,
        "/.well-known/jwks.json" => return Route::Jwks,
        p if p == "/admin" || p.starts_with("/admin/") => return Route::Admin,
        p if p == "/portal" || p.starts_with("/portal/") => return Route::Portal,
        p => {
            let provider = p.strip_prefix("/providers/").and_then(|rest| rest.strip_suffix("/jwks.json"));
            if let Some(id) = provider.filter(|id| !id.is_empty() && !id.contains('/')) {
                return Route::ProviderJwks(id);
            }
        }
    }
    let trimmed = path.trim_start_matches('/');
    let (face, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    let rest = rest.trim_end_matches('/');
    match face {
        "stu3" => Route::Face(Version::Stu3, rest),
        "dstu2" => Route::Face(Version::Dstu2, rest),
        _ => Route::NotFound,
    }
}

/// Answers `req` from the surface its path names.
pub(crate) async fn dispatch(
    gw: &Arc<Services>,
    req: Request<Incoming>,
    request_id: &str,
    peer: IpAddr,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let route = route(&path);
    // Health and metrics answer any host (probes and scrapers use the
    // address); everything else only the hosts the gateway answers for.
    let public_base = match route {
        Route::Health | Route::Live | Route::Ready | Route::Metrics => String::new(),
        _ => match gw.public_base(&req) {
            Ok(base) => base,
            Err(Misdirected) => return misdirected(&route),
        },
    };
    let (started, (label, face)) = (std::time::Instant::now(), route.label());
    let resp = answer(gw, req, route, request_id, peer, public_base).await;
    gw.runtime().metrics().http_request(label, face, resp.status().as_u16(), started.elapsed());
    resp
}

impl Route<'_> {
    /// The route's name and FHIR face in the metrics.
    fn label(&self) -> (&'static str, &'static str) {
        let name = match self {
            Route::Health => "health",
            Route::Live => "live",
            Route::Ready => "ready",
            Route::Metrics => "metrics",
            Route::OAuth => "oauth",
            Route::Authorize => "authorize",
            Route::AuthorizationServerMetadata => "oauth-metadata",
            Route::Jwks => "jwks",
            Route::ProviderJwks(_) => "provider-jwks",
            Route::Admin => "admin",
            Route::Portal => "portal",
            Route::Face(..) => "fhir",
            Route::NotFound => "not-found",
        };
        let face = match self {
            Route::Face(v, _) => v.face(),
            _ => "-",
        };
        (name, face)
    }
}

async fn answer(
    gw: &Arc<Services>,
    req: Request<Incoming>,
    route: Route<'_>,
    request_id: &str,
    peer: IpAddr,
    public_base: String,
) -> Response<Body> {
    match route {
        Route::Health => json_response(StatusCode::OK, "application/json", r#"{"status":"ok"}"#),
        Route::Live => json_response(StatusCode::OK, "application/json", r#"{"status":"live"}"#),
        Route::Ready => crate::readiness::ready(gw).await,
        // Figures about traffic, providers and tenants' routes: for the
        // scraper's token only.
        Route::Metrics => crate::readiness::metrics_answer(gw, req.headers()).await,
        Route::OAuth => {
            let client = gw.client_address(peer, req.headers());
            crate::oauth::endpoint(gw, req, client).await
        }
        Route::Authorize => crate::oauth::authorize(),
        Route::AuthorizationServerMetadata => crate::oauth::metadata(gw, &public_base),
        Route::Jwks => json_response(StatusCode::OK, "application/json", gw.auth().keys().jwks().to_string()),
        Route::ProviderJwks(id) => provider_jwks(gw, id),
        Route::Admin => {
            let client = gw.client_address(peer, req.headers());
            crate::admin::serve(gw, req, client, &public_base).await
        }
        Route::Portal => {
            let client = gw.client_address(peer, req.headers());
            crate::portal::serve(gw, req, client, &public_base).await
        }
        Route::Face(face, rest) => crate::fhir::serve(gw, req, face, rest, request_id, public_base).await,
        Route::NotFound => Failure::client(
            StatusCode::NOT_FOUND,
            "Not found. The FHIR bases are /stu3 and /dstu2; tokens come from /oauth2/token.",
        )
        .into_response(Version::Stu3),
    }
}

/// A provider's JWK Set; cacheable for five minutes (a rotation keeps the
/// old key published for a day, so a cached set never misses a key in use).
fn provider_jwks(gw: &Services, id: &str) -> Response<Body> {
    match gw.directory().snapshot().provider_jwks(id) {
        Some(jwks) => {
            let mut resp = json_response(StatusCode::OK, "application/json", jwks.to_string());
            resp.headers_mut()
                .insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("public, max-age=300"));
            resp
        }
        None => json_response(
            StatusCode::NOT_FOUND,
            "application/json",
            serde_json::json!({
                "error": "not_found",
                "error_description": "No provider here authenticates with private_key_jwt under this id."
            })
            .to_string(),
        ),
    }
}

/// `421`: the request named a host this gateway does not answer for; in
/// FHIR on the faces, JSON elsewhere.
fn misdirected(route: &Route<'_>) -> Response<Body> {
    const MESSAGE: &str = "This gateway does not answer for the host this request names.";
    let failure = Failure::client(StatusCode::MISDIRECTED_REQUEST, MESSAGE);
    match route {
        Route::Face(face, _) => failure.into_response(*face),
        _ => json_response(
            StatusCode::MISDIRECTED_REQUEST,
            "application/json",
            serde_json::json!({ "error": "misdirected_request", "error_description": MESSAGE }).to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_to_surfaces() {
        assert_eq!(route("/healthz"), Route::Health);
        assert_eq!(route("/livez"), Route::Live);
        assert_eq!(route("/readyz"), Route::Ready);
        assert_eq!(route("/oauth2/token"), Route::OAuth);
        assert_eq!(route("/oauth2/introspect"), Route::OAuth);
        assert_eq!(route("/oauth2/tokens"), Route::NotFound);
        assert_eq!(route("/admin"), Route::Admin);
        assert_eq!(route("/admin/clients/x"), Route::Admin);
        assert_eq!(route("/administrator"), Route::NotFound);
        assert_eq!(route("/providers/epic-1/jwks.json"), Route::ProviderJwks("epic-1"));
        assert_eq!(route("/providers//jwks.json"), Route::NotFound);
        assert_eq!(route("/providers/a/b/jwks.json"), Route::NotFound);
        assert_eq!(route("/stu3/metadata"), Route::Face(Version::Stu3, "metadata"));
        assert_eq!(route("/dstu2/Patient/p1/"), Route::Face(Version::Dstu2, "Patient/p1"));
        assert_eq!(route("/stu3"), Route::Face(Version::Stu3, ""));
        assert_eq!(route("/r4/Patient"), Route::NotFound);
        assert_eq!(route("/"), Route::NotFound);
    }
}
