//! The admin HTTP API, behind its own credentials, never a client token: a
//! user's personal API token (`fgu_…`), with which the user acts within
//! their roles, or the shared admin token (whose SHA-256 is configured),
//! a break-glass credential that acts as an operator but never approves. The listener authenticates the request into a
//! [`Principal`] before it reads the body, checks the principal may reach
//! the route, and the handlers act as that principal.
//!
//! Roles: *operator* (everything), *auditor* (`GET` of the access log and
//! the change trail), *app-owner:<client id>* (that client: show, secrets,
//! rotate, JWK Set), *approver:<tenant id or \*>* (read providers and the
//! tenant, approve or reject its mappings that name them),
//! *developer:<tenant id or \*>* (register apps for those tenants, owning
//! each registration made). A user's changes
//! are recorded under their user name: a body's `actor`, if given, must be it.
//!
//! Layout: [`clients`] (clients, keys, tokens, the change trail),
//! [`directory`] (providers, tenants, the access log), [`modules`] (policy
//! activation), [`users`] (accounts, roles, personal API tokens).
//!
//! Users and their tokens:
//!
//! - `POST   /admin/session` `{username, password, code?}` → signs in: a session cookie
//!   (`__Host-fhirgate-session`, `HttpOnly`, `Secure`, `SameSite=Strict`) and the
//!   `csrf_token` to send as `X-CSRF-Token` on every change; `DELETE` signs out
//! - `GET    /admin/me`                              who the token belongs to
//! - `GET    /admin/users`, `POST /admin/users` `{username, roles}` (operators)
//! - `POST   /admin/users/{name}/disable`, `/enable` (operators)
//! - `POST   /admin/users/{name}/roles` `{role}`, `DELETE /admin/users/{name}/roles/{role}` (operators;
//!   the user's sessions end)
//! - `GET    /admin/users/{name}/tokens`             (operators, or the user)
//! - `POST   /admin/users/{name}/tokens` `{label, days}` → token, once (the user only: nobody mints one for someone else)
//! - `DELETE /admin/users/{name}/tokens/{id}`        revoke (operators, or the user)
//! - invitations (one-time links that make a user): see [`invitations`]
//! - signing in through OpenID Connect providers: see [`oidc`]
//!
//! The client registry and the authorization server's keys:
//!
//! - `GET    /admin/clients`                         list
//! - `POST   /admin/clients`                         create `{name, tenants}` → secret, once
//! - `GET    /admin/clients/{id}`                    show
//! - `DELETE /admin/clients/{id}`                    delete
//! - `POST   /admin/clients/{id}/secrets`            add a secret `{description?, expires_in_days?}` → shown once
//! - `GET    /admin/secrets/expiring?days=14`        usable secrets that stop working soon
//! - `DELETE /admin/clients/{id}/secrets/{sid}`      revoke one secret now
//! - `POST   /admin/clients/{id}/rotate`             `{grace_seconds}` → new secret
//! - `PUT    /admin/clients/{id}/jwks`               register the client's JWK Set (private_key_jwt)
//! - `POST   /admin/clients/{id}/disable`, `/enable`
//! - `POST   /admin/keys/rotate`                     new signing key; the old stays published
//! - `POST   /admin/revoke`                          revoke any token this gateway issued (form `token`)
//! - `POST   /admin/introspect`                      RFC 7662 answer for any token (form `token`)
//! - `GET    /admin/audit?limit=n`                   newest change events (clients, secrets, tokens, directory)
//!
//! The tenant directory (onboarding with approval; with the admin token,
//! mutations name their `actor`; only the named `approver` may decide):
//!
//! - `GET    /admin/providers`                       list
//! - `PUT    /admin/providers/{id}`                  register or edit `{actor, base_url, fhir_version, …}`;
//!   the provider's `/metadata` is checked first
//! - `GET    /admin/providers/{id}`                  show, with breaker state and history
//! - `DELETE /admin/providers/{id}?actor=…`          remove one no tenant uses
//! - `GET    /admin/tenants`                         every mapping by tenant
//! - `GET    /admin/tenants/{tenant}`                one tenant's mappings and history
//! - `PUT    /admin/tenants/{tenant}/providers/{id}` request or edit `{actor, approver, organization?,
//!   environment?}` → pending
//! - `POST   /admin/tenants/{tenant}/providers/{id}/approve` `{note?}` → active (the named approver's own token),
//!   after the live provider check passed
//! - `POST   /admin/tenants/{tenant}/providers/{id}/reject`  `{note?}` → rejected (likewise)
//! - organizations, environments, the check alone and integration records: see [`environments`]
//! - `DELETE /admin/tenants/{tenant}/providers/{id}?actor=…` disconnect
//!
//! The access log (one record per brokered access, no payloads):
//!
//! - `GET    /admin/access?tenant=&client=&patient=&request_id=&since=&until=&limit=` records as JSON
//!   (`since`/`until` in ms since the epoch)
//! - `GET    /admin/access/AuditEvent?…`             the same as a FHIR R4 Bundle of AuditEvent

pub(crate) mod clients;
mod directory;
pub(crate) mod environments;
mod invitations;
mod modules;
mod oidc;
mod users;

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use fhirgate_core::failure::{Body, json_response, no_store};
use fhirgate_gateway::principal::Principal;
use fhirgate_gateway::services::Services;

/// Largest body an admin request other than a module upload may send.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Answers a request under `/admin`: authenticated before its body is read
/// (only the admin may send a module's worth of bytes), then handled.
/// Failed authentications are logged and throttled per client address
/// (429 with `Retry-After` past 30 a minute).
pub(crate) async fn serve(
    gw: &Arc<Services>,
    req: Request<Incoming>,
    client: IpAddr,
    public_base: &str,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let Some(auth) = gw.admin() else {
        return problem(StatusCode::NOT_FOUND, "The admin API is not enabled (set [admin]).");
    };
    if let Some(wait) = gw.admin_failures().check(None, client).await {
        tracing::warn!(target: "fhirgate::audit", %client, path = invitations::loggable(parts.uri.path()), "admin request refused: too many failed authentications");
        let mut resp = problem(StatusCode::TOO_MANY_REQUESTS, "Too many failed authentications; try again later.");
        resp.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(wait));
        return resp;
    }
    if parts.uri.path() == "/admin/session" {
        return users::session(gw, &parts, body, client).await;
    }
    let segments: Vec<&str> = parts.uri.path().trim_start_matches("/admin/").trim_end_matches('/').split('/').collect();
    if oidc::is_oidc_path(&segments) {
        return oidc::endpoint(gw, &parts, &segments, public_base, client).await;
    }
    if invitations::is_invitee_path(&segments) {
        let body = match crate::body::read_body(body, 4096, gw.limits()).await {
            Ok(b) => b,
            Err(f) => return problem(f.status, f.message),
        };
        return invitations::invitee(gw, &parts.method, &segments, body, client).await;
    }
    let safe = matches!(parts.method, Method::GET | Method::HEAD);
    let principal = match auth.authenticate(&parts.headers, safe).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            gw.admin_failures().failed(None, client);
            gw.admin_failures().confirm_failure(None, client).await;
            tracing::warn!(target: "fhirgate::audit", %client, path = invitations::loggable(parts.uri.path()), "admin authentication failed");
            return unauthenticated();
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "admin API: the accounts store failed");
            return problem(StatusCode::SERVICE_UNAVAILABLE, "The store is unavailable.");
        }
    };
    let path = parts.uri.path();
    let segments: Vec<&str> = path.trim_start_matches("/admin/").trim_end_matches('/').split('/').collect();
    if !users::allowed(&principal, &parts.method, &segments) {
        tracing::warn!(target: "fhirgate::audit", user = principal.name(), method = %parts.method, path = invitations::loggable(path), "admin request outside the user's roles");
        return problem(StatusCode::FORBIDDEN, "Your roles do not allow this.");
    }
    if users::sensitive(&parts.method, &segments) && auth.needs_reauth(&principal) {
        return problem(
            StatusCode::FORBIDDEN,
            "Sign in again to change secrets, keys or approvals (your sign-in is too old for this).",
        );
    }
    let limit = if path.starts_with("/admin/modules/") {
        fhirgate_gateway::activation::MAX_UPLOAD_BYTES
    } else {
        MAX_BODY_BYTES
    };
    let body = match crate::body::read_body(body, limit, gw.limits()).await {
        Ok(b) => b,
        Err(f) => return json_response(f.status, "application/json", json!({ "error": f.message }).to_string()),
    };
    handle(gw, principal, &parts.method, path, parts.uri.query(), body, public_base).await
}

/// Handles `/admin/...` for `principal`, whom the listener authenticated.
/// `path` is the full request path.
pub async fn handle(
    gw: &Services,
    principal: Principal,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: Bytes,
    public_base: &str,
) -> Response<Body> {
    let segments: Vec<&str> = path.trim_start_matches("/admin/").trim_end_matches('/').split('/').collect();
    if let Some(resp) = users::endpoint(gw, &principal, method, &segments, &body).await {
        return resp;
    }
    if let Some(resp) = invitations::endpoint(gw, &principal, method, &segments, &body).await {
        return resp;
    }
    if let Some(resp) = environments::endpoint(gw, &principal, method, &segments, &body, public_base).await {
        return resp;
    }
    if let Some(resp) = directory::endpoint(gw, &principal, method, &segments, query, &body).await {
        return resp;
    }
    if let Some(resp) = modules::endpoint(gw, method, &segments, query, &body).await {
        return resp;
    }
    clients::endpoint(gw, &principal, method, &segments, query, &body).await
}

pub(crate) fn answer(status: StatusCode, body: Value) -> Response<Body> {
    no_store(json_response(status, "application/json", body.to_string()))
}

pub(crate) fn problem(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    answer(status, json!({ "error": message.into() }))
}

/// Parses a JSON body (an empty body counts as `{}`) into `T`.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes, expected: &str) -> Result<T, String> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| format!("Expected a JSON object {expected}: {e}"))
}

/// Who acts: a user acts as themselves (a body's `actor`, if any, must name
/// them); the shared admin token names its actor in `given`, recorded as
/// `admin-api:<given>`. The error is
/// the message of a `400`.
pub(crate) fn actor(principal: &Principal, given: Option<String>) -> Result<String, String> {
    match (principal.user(), given) {
        (Some(user), Some(given)) if given != user.username => {
            Err(format!("`actor` is the signed-in user ({}); leave it out.", user.username))
        }
        (Some(user), _) => Ok(user.username.clone()),
        // Marked as the shared token's: no one can pass for a user with it.
        (None, Some(given)) if !given.is_empty() => Ok(format!("admin-api:{given}")),
        (None, _) => Err("`actor` (a string) is required.".into()),
    }
}

/// The answer to an admin request without an admin credential.
pub fn unauthenticated() -> Response<Body> {
    let mut resp = problem(StatusCode::UNAUTHORIZED, "The admin API needs a personal API token or the admin token.");
    resp.headers_mut()
        .insert(http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"fhirgate-admin\""));
    resp
}

pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query.and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned()))
}
