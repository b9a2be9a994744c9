//! The admin HTTP API: the client registry for operators, behind its own
//! credential (a bearer token whose SHA-256 is configured), never a client
//! token.
//!
//! - `GET    /admin/clients`                         list
//! - `POST   /admin/clients`                         create `{name, tenants}` → secret, once
//! - `GET    /admin/clients/{id}`                    show
//! - `DELETE /admin/clients/{id}`                    delete
//! - `POST   /admin/clients/{id}/secrets`            add a secret → shown once
//! - `DELETE /admin/clients/{id}/secrets/{sid}`      revoke one secret now
//! - `POST   /admin/clients/{id}/rotate`             `{grace_seconds}` → new secret
//! - `PUT    /admin/clients/{id}/jwks`               register the client's JWK Set (private_key_jwt)
//! - `POST   /admin/clients/{id}/disable`, `/enable`
//! - `POST   /admin/keys/rotate`                     new signing key; the old stays published
//! - `POST   /admin/revoke`                          revoke any token this gateway issued (form `token`)
//! - `POST   /admin/introspect`                      RFC 7662 answer for any token (form `token`)
//! - `GET    /admin/audit?limit=n`                   newest change events (clients, secrets, tokens, directory)
//!
//! The tenant directory (onboarding with approval; mutations name their
//! `actor`, and only the named `approver` may decide):
//!
//! - `GET    /admin/providers`                       list
//! - `PUT    /admin/providers/{id}`                  register or edit `{actor, base_url, fhir_version, …}`;
//!   the provider's `/metadata` is checked first
//! - `GET    /admin/providers/{id}`                  show, with breaker state and history
//! - `DELETE /admin/providers/{id}?actor=…`          remove one no tenant uses
//! - `GET    /admin/tenants`                         every mapping by tenant
//! - `GET    /admin/tenants/{tenant}`                one tenant's mappings and history
//! - `PUT    /admin/tenants/{tenant}/providers/{id}` request or edit `{actor, approver}` → pending
//! - `POST   /admin/tenants/{tenant}/providers/{id}/approve` `{actor, note?}` → active
//! - `POST   /admin/tenants/{tenant}/providers/{id}/reject`  `{actor, note?}` → rejected
//! - `DELETE /admin/tenants/{tenant}/providers/{id}?actor=…` disconnect
//!
//! The access log (one record per brokered access, no payloads):
//!
//! - `GET    /admin/access?tenant=&client=&patient=&request_id=&since=&until=&limit=` records as JSON
//!   (`since`/`until` in ms since the epoch)
//! - `GET    /admin/access/AuditEvent?…`             the same as a FHIR R4 Bundle of AuditEvent

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use fhirgate_core::failure::{Body, json_response, no_store};
use fhirgate_gateway::access::{AccessQuery, audit_event_bundle};
use fhirgate_gateway::directory::ProviderSpec;
use fhirgate_gateway::directory::onboarding::DirectoryError;
use fhirgate_gateway::principal::Principal;
use fhirgate_gateway::services::Services;
use fhirgate_store::{ClientStatus, clients::RegistryError};

fn answer(status: StatusCode, body: Value) -> Response<Body> {
    no_store(json_response(status, "application/json", body.to_string()))
}

pub(crate) fn problem(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    answer(status, json!({ "error": message.into() }))
}

fn registry_error(e: RegistryError) -> Response<Body> {
    match e {
        RegistryError::UnknownClient(_) | RegistryError::UnknownSecret { .. } => {
            problem(StatusCode::NOT_FOUND, e.to_string())
        }
        RegistryError::InvalidTenant(_) | RegistryError::Incomplete | RegistryError::InvalidJwks(_) => {
            problem(StatusCode::BAD_REQUEST, e.to_string())
        }
        RegistryError::Store(_) => {
            tracing::error!(error = %e, "admin API: store failure");
            problem(StatusCode::SERVICE_UNAVAILABLE, "The store is unavailable.")
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateClient {
    name: String,
    tenants: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotate {
    #[serde(default = "default_grace")]
    grace_seconds: u64,
}

fn default_grace() -> u64 {
    86_400
}

/// Parses a JSON body (an empty body counts as `{}`) into `T`.
fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes, expected: &str) -> Result<T, String> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| format!("Expected a JSON object {expected}: {e}"))
}

/// The answer to an admin request without the admin credential.
pub fn unauthenticated() -> Response<Body> {
    let mut resp = problem(StatusCode::UNAUTHORIZED, "The admin API needs the admin bearer token.");
    resp.headers_mut()
        .insert(http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"fhirgate-admin\""));
    resp
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
) -> Response<Body> {
    let segments: Vec<&str> = path.trim_start_matches("/admin/").trim_end_matches('/').split('/').collect();
    if let Some(resp) = directory_endpoint(gw, method, &segments, query, &body).await {
        return resp;
    }
    if let Some(resp) = modules_endpoint(gw, method, &segments, query, &body).await {
        return resp;
    }
    let Some(registry) = gw.auth().clients().stored() else {
        return problem(StatusCode::NOT_FOUND, "The client registry is not enabled (set data_dir).");
    };
    let actor = principal.name();
    let result = match (method, segments.as_slice()) {
        (&Method::GET, ["clients"]) => registry.list().await.map(|c| answer(StatusCode::OK, json!({ "clients": c }))),
        (&Method::POST, ["clients"]) => {
            let req: CreateClient = match parse_body(&body, "{name, tenants}") {
                Ok(r) => r,
                Err(message) => return problem(StatusCode::BAD_REQUEST, message),
            };
            registry.create(&req.name, &req.tenants, actor).await.map(|(client, secret)| {
                answer(StatusCode::CREATED, json!({ "client": client, "client_secret": secret }))
            })
        }
        (&Method::GET, ["clients", id]) => match registry.get(id).await {
            Ok(Some(c)) => Ok(answer(StatusCode::OK, json!(c))),
            Ok(None) => Err(RegistryError::UnknownClient((*id).to_owned())),
            Err(e) => Err(e),
        },
        (&Method::DELETE, ["clients", id]) => {
            registry.delete(id, actor).await.map(|()| answer(StatusCode::OK, json!({ "deleted": id })))
        }
        (&Method::POST, ["clients", id, "secrets"]) => registry
            .add_secret(id, actor)
            .await
            .map(|(info, secret)| answer(StatusCode::CREATED, json!({ "secret": info, "client_secret": secret }))),
        (&Method::DELETE, ["clients", id, "secrets", sid]) => {
            registry.revoke_secret(id, sid, actor).await.map(|()| answer(StatusCode::OK, json!({ "revoked": sid })))
        }
        (&Method::POST, ["clients", id, "rotate"]) => {
            let req: Rotate = match parse_body(&body, "{grace_seconds}") {
                Ok(r) => r,
                Err(message) => return problem(StatusCode::BAD_REQUEST, message),
            };
            let until =
                fhirgate_core::clock::now_seconds().saturating_add(req.grace_seconds).min(i64::MAX as u64) as i64;
            registry.rotate(id, until, actor).await.map(|(info, secret)| {
                answer(
                    StatusCode::CREATED,
                    json!({ "secret": info, "client_secret": secret, "previous_secrets_stop_at": until }),
                )
            })
        }
        (&Method::PUT, ["clients", id, "jwks"]) => {
            let jwks: Value = match parse_body(&body, "{keys: [...]}") {
                Ok(v) => v,
                Err(message) => return problem(StatusCode::BAD_REQUEST, message),
            };
            registry.set_jwks(id, Some(&jwks), actor).await.map(|()| answer(StatusCode::OK, json!({ "client_id": id })))
        }
        (&Method::DELETE, ["clients", id, "jwks"]) => {
            registry.set_jwks(id, None, actor).await.map(|()| answer(StatusCode::OK, json!({ "client_id": id })))
        }
        (&Method::POST, ["clients", id, action @ ("disable" | "enable")]) => {
            let status = if *action == "disable" { ClientStatus::Disabled } else { ClientStatus::Active };
            registry
                .set_status(id, status, actor)
                .await
                .map(|()| answer(StatusCode::OK, json!({ "client_id": id, "status": status })))
        }
        (&Method::POST, ["keys", "rotate"]) => {
            let Some((alg, publish)) = gw.key_policy() else {
                return problem(StatusCode::CONFLICT, "Signing keys are not kept in the store.");
            };
            return match fhirgate_gateway::oauth::key_store::rotate(registry.store(), alg, publish).await {
                Ok(ring) => {
                    let kid = ring.active().kid().to_owned();
                    gw.auth().set_keys(ring);
                    answer(StatusCode::CREATED, json!({ "kid": kid, "jwks": gw.auth().keys().jwks() }))
                }
                Err(e) => {
                    tracing::error!(error = %e, "admin API: key rotation failed");
                    problem(StatusCode::SERVICE_UNAVAILABLE, "The key rotation failed.")
                }
            };
        }
        (&Method::POST, ["revoke"]) => {
            let token = form_urlencoded::parse(&body).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned());
            return match token {
                Some(t) => {
                    let revoked = gw.auth().revoke_token(&t, None).await;
                    answer(StatusCode::OK, json!({ "revoked": revoked }))
                }
                None => problem(StatusCode::BAD_REQUEST, "Send the token as the form parameter `token`."),
            };
        }
        (&Method::POST, ["introspect"]) => {
            let token = form_urlencoded::parse(&body).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned());
            return match token {
                Some(t) => answer(StatusCode::OK, gw.auth().introspection(&t, None)),
                None => problem(StatusCode::BAD_REQUEST, "Send the token as the form parameter `token`."),
            };
        }
        (&Method::GET, ["audit"]) => {
            let limit = query
                .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "limit"))
                .and_then(|(_, v)| v.parse::<i64>().ok())
                .unwrap_or(100)
                .clamp(1, 1000);
            // Token issuance and refusals reach the trail through the access
            // log's writer: what happened before this question is in the answer.
            gw.access().flush().await;
            registry.audit_events(limit).await.map(|e| answer(StatusCode::OK, json!({ "events": e })))
        }
        _ => return problem(StatusCode::NOT_FOUND, "No such admin endpoint."),
    };
    result.unwrap_or_else(registry_error)
}

/// `{actor, …ProviderSpec}`: the actor beside the declaration's own fields.
fn provider_put(body: &Bytes) -> Result<(String, ProviderSpec), String> {
    let mut value: Value = parse_body(body, "{actor, base_url, fhir_version, ...}")?;
    let actor = match value.as_object_mut().and_then(|o| o.remove("actor")) {
        Some(Value::String(a)) => a,
        _ => return Err("`actor` (a string) is required.".into()),
    };
    let spec = serde_json::from_value(value).map_err(|e| format!("Invalid provider: {e}"))?;
    Ok((actor, spec))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingPut {
    actor: String,
    approver: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    actor: String,
    #[serde(default)]
    note: Option<String>,
}

fn directory_error(e: DirectoryError) -> Response<Body> {
    let status = match &e {
        DirectoryError::Invalid(_) => StatusCode::BAD_REQUEST,
        DirectoryError::NotFound(_) => StatusCode::NOT_FOUND,
        DirectoryError::Conflict(_) => StatusCode::CONFLICT,
        DirectoryError::Forbidden(_) => StatusCode::FORBIDDEN,
        DirectoryError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
        DirectoryError::Store(_) | DirectoryError::Reload(_) => {
            tracing::error!(error = %e, "admin API: directory store failure");
            return problem(StatusCode::SERVICE_UNAVAILABLE, "The store is unavailable.");
        }
    };
    problem(status, e.to_string())
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query.and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned()))
}

/// The directory and access-log endpoints; `None` for any other path.
async fn directory_endpoint(
    gw: &Services,
    method: &Method,
    segments: &[&str],
    query: Option<&str>,
    body: &Bytes,
) -> Option<Response<Body>> {
    let dir = &gw.directory();
    macro_rules! body {
        ($t:ty, $expected:expr) => {
            match parse_body::<$t>(body, $expected) {
                Ok(v) => v,
                Err(message) => return Some(problem(StatusCode::BAD_REQUEST, message)),
            }
        };
    }
    let actor_param = || query_param(query, "actor").unwrap_or_default();
    let result = match (method, segments) {
        (&Method::GET, ["providers"]) => {
            dir.providers_view().await.map(|p| answer(StatusCode::OK, json!({ "providers": p })))
        }
        (&Method::GET, ["providers", id]) => {
            dir.provider_view(gw.upstream(), id).await.map(|p| answer(StatusCode::OK, p))
        }
        (&Method::PUT, ["providers", id]) => {
            let (actor, spec) = match provider_put(body) {
                Ok(v) => v,
                Err(message) => return Some(problem(StatusCode::BAD_REQUEST, message)),
            };
            dir.put_provider(gw.upstream(), id, spec, &actor)
                .await
                .map(|(p, validated)| answer(StatusCode::OK, json!({ "provider": p, "metadata": validated })))
        }
        (&Method::DELETE, ["providers", id]) => {
            dir.remove_provider(id, &actor_param()).await.map(|()| answer(StatusCode::OK, json!({ "removed": id })))
        }
        (&Method::GET, ["tenants"]) => {
            dir.tenants_view().await.map(|t| answer(StatusCode::OK, json!({ "tenants": t })))
        }
        (&Method::GET, ["tenants", tenant]) => dir.tenant_view(tenant).await.map(|t| answer(StatusCode::OK, t)),
        (&Method::PUT, ["tenants", tenant, "providers", id]) => {
            let req = body!(MappingPut, "{actor, approver}");
            dir.request_mapping(gw.upstream(), tenant, id, &req.approver, &req.actor)
                .await
                .map(|m| answer(StatusCode::OK, json!({ "mapping": m })))
        }
        (&Method::POST, ["tenants", tenant, "providers", id, action @ ("approve" | "reject")]) => {
            let req = body!(Decision, "{actor, note?}");
            dir.decide(tenant, id, &req.actor, *action == "approve", req.note)
                .await
                .map(|m| answer(StatusCode::OK, json!({ "mapping": m })))
        }
        (&Method::DELETE, ["tenants", tenant, "providers", id]) => dir
            .remove_mapping(tenant, id, &actor_param())
            .await
            .map(|()| answer(StatusCode::OK, json!({ "removed": { "tenant_id": tenant, "provider_id": id } }))),
        (&Method::GET, ["access"]) | (&Method::GET, ["access", "AuditEvent"]) => {
            let ms = |name: &str| query_param(query, name).and_then(|v| v.parse::<i64>().ok());
            let q = AccessQuery {
                tenant: query_param(query, "tenant").map(|t| t.to_ascii_lowercase()),
                client: query_param(query, "client"),
                patient: query_param(query, "patient"),
                request_id: query_param(query, "request_id"),
                since_ms: ms("since"),
                until_ms: ms("until"),
                limit: query_param(query, "limit").and_then(|v| v.parse().ok()),
            };
            // What was recorded before this question is in the answer.
            gw.access().flush().await;
            return Some(match gw.access().query(&q).await {
                Ok(records) if segments.len() == 2 => {
                    let bundle = audit_event_bundle(&records, "fhirgate");
                    no_store(json_response(StatusCode::OK, "application/fhir+json", bundle.to_string()))
                }
                Ok(records) => answer(StatusCode::OK, json!({ "records": records })),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "admin API: access log query failed");
                    problem(StatusCode::SERVICE_UNAVAILABLE, "The store is unavailable.")
                }
            });
        }
        _ => return None,
    };
    Some(result.unwrap_or_else(directory_error))
}

/// `GET /admin/modules` (what serves, what it replaced, the last policy
/// refused), `POST /admin/modules/reload` (load the policy file now),
/// `PUT /admin/modules/{role}?name=&sha256=` (a module's bytes: kept, named
/// in the policy file, activated) and `POST /admin/modules/rollback` (back
/// one step).
async fn modules_endpoint(
    gw: &Services,
    method: &Method,
    segments: &[&str],
    query: Option<&str>,
    body: &Bytes,
) -> Option<Response<Body>> {
    let ["modules", rest @ ..] = segments else { return None };
    let Some(activation) = gw.activation() else {
        return Some(problem(StatusCode::NOT_FOUND, "This gateway does not watch a policy file."));
    };
    Some(match (method, rest) {
        (&Method::GET, []) => answer(StatusCode::OK, json!(activation.status(&gw.served()))),
        (&Method::POST, ["reload"]) => match activation.reload(&gw.served()).await {
            Ok(status) => answer(StatusCode::OK, json!(status)),
            Err(rejection) => answer(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "error": "The policy was not activated; the active one keeps serving.", "rejection": rejection }),
            ),
        },
        (&Method::PUT, [role]) => {
            let name = query_param(query, "name").unwrap_or_else(|| (*role).to_owned());
            let sha256 = query_param(query, "sha256");
            match activation.upload(&gw.served(), role, &name, body.clone(), sha256.as_deref()).await {
                Ok(status) => answer(StatusCode::OK, json!(status)),
                Err(fhirgate_gateway::activation::UploadError::Invalid(message)) => {
                    problem(StatusCode::BAD_REQUEST, message)
                }
                Err(fhirgate_gateway::activation::UploadError::Refused(rejection)) => answer(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({ "error": "The module was not activated; the active one keeps serving.", "rejection": rejection }),
                ),
            }
        }
        (&Method::POST, ["rollback"]) => match activation.rollback(&gw.served()).await {
            Ok(status) => answer(StatusCode::OK, json!(status)),
            Err(message) => problem(StatusCode::CONFLICT, message),
        },
        _ => problem(StatusCode::NOT_FOUND, "Unknown modules endpoint."),
    })
}
