//! The authorization server on the wire: the token, revocation and
//! introspection endpoints (POST, form bodies, answers never cached), its
//! metadata, and the refusal of interactive grants.

use std::net::IpAddr;

use fhirgate_core::OAuthError;
use fhirgate_core::failure::{Body, json_response, no_store, oauth_error_response};
use fhirgate_gateway::Services;
use fhirgate_gateway::oauth::discovery;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

/// Largest form body the endpoints read: a client-credentials request with
/// an RS512 client assertion from a 4096-bit key is under 2 KiB, so 16 KiB
/// leaves room for any honest client, and little for an unauthenticated
/// caller to make the gateway hold.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// `/oauth2/token`, `/oauth2/revoke` and `/oauth2/introspect`.
pub(crate) async fn endpoint(gw: &Services, req: Request<Incoming>, peer: IpAddr) -> Response<Body> {
    if req.method() != Method::POST {
        let mut resp = oauth_error_response(&OAuthError::InvalidRequest("Use POST.".into()));
        *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        resp.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }
    let (parts, body) = req.into_parts();
    let body = match crate::body::read_body(body, MAX_FORM_BYTES, gw.limits()).await {
        Ok(b) => b,
        Err(f) => {
            // An OAuth error body, with the status that says what went wrong.
            let mut resp = oauth_error_response(&OAuthError::InvalidRequest(f.message));
            *resp.status_mut() = f.status;
            return resp;
        }
    };
    let (headers, query) = (&parts.headers, parts.uri.query());
    let (endpoint, result) = match parts.uri.path() {
        "/oauth2/token" => ("token", gw.auth().token(headers, query, &body, peer).await),
        "/oauth2/revoke" => ("revoke", gw.auth().revoke(headers, query, &body, peer).await.map(|()| json!({}))),
        _ => ("introspect", gw.auth().introspect(headers, query, &body, peer).await),
    };
    let outcome = match &result {
        Ok(_) => "ok",
        Err(OAuthError::Throttled(_)) => "throttled",
        Err(e) => e.code(),
    };
    gw.runtime().metrics().oauth_request(endpoint, outcome);
    match result {
        Ok(answer) => no_store(json_response(StatusCode::OK, "application/json", answer.to_string())),
        Err(e) => {
            tracing::info!(target: "fhirgate::audit", event = "oauth-refused", endpoint = parts.uri.path(), error = e.code(), "request refused");
            oauth_error_response(&e)
        }
    }
}

/// `/.well-known/oauth-authorization-server` (RFC 8414).
pub(crate) fn metadata(gw: &Services, public_base: &str) -> Response<Body> {
    let body = discovery::authorization_server(gw.auth(), public_base);
    json_response(StatusCode::OK, "application/json", body.to_string())
}

/// `/oauth2/authorize`: this server issues tokens only to clients, with the
/// client-credentials grant.
pub(crate) fn authorize() -> Response<Body> {
    let body = json!({
        "error": "unsupported_response_type",
        "error_description": "This server issues tokens only with the client_credentials grant at /oauth2/token."
    });
    no_store(json_response(StatusCode::BAD_REQUEST, "application/json", body.to_string()))
}
