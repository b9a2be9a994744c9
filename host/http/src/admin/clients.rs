//! The client registry, signing keys, token revocation and introspection,
//! and the change trail, for operators.

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use fhirgate_core::failure::Body;
use fhirgate_gateway::principal::Principal;
use fhirgate_gateway::services::Services;
use fhirgate_store::{
    ClientStatus,
    clients::{Client, NewSecret, RegistryError},
};

use super::{answer, parse_body, problem};

fn registry_error(e: RegistryError) -> Response<Body> {
    match e {
        RegistryError::UnknownClient(_) | RegistryError::UnknownSecret { .. } => {
            problem(StatusCode::NOT_FOUND, e.to_string())
        }
        RegistryError::InvalidTenant(_)
        | RegistryError::Incomplete
        | RegistryError::InvalidJwks(_)
        | RegistryError::InvalidSecret(_) => problem(StatusCode::BAD_REQUEST, e.to_string()),
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

/// A new registration: the production client and its test twin, each with
/// its first secret (shown this once).
pub(crate) type Registered = ((Client, String), (Client, String));

/// Why a registration was not made.
pub(crate) enum NotRegistered {
    /// The principal may not register apps for these tenants.
    Forbidden(String),
    Registry(RegistryError),
    /// Made, but its owner could not be recorded (and it was removed).
    Owner(String),
}

impl NotRegistered {
    fn into_response(self) -> Response<Body> {
        match self {
            NotRegistered::Forbidden(m) => problem(StatusCode::FORBIDDEN, m),
            NotRegistered::Registry(e) => registry_error(e),
            NotRegistered::Owner(m) => problem(StatusCode::SERVICE_UNAVAILABLE, m),
        }
    }
}

/// Registers an app for `principal`: operators (and the shared token) for
/// any tenant; a developer for the tenants of their `developer:` roles, who
/// then owns the registration (both its ids).
pub(crate) async fn register(
    gw: &Services,
    principal: &Principal,
    name: &str,
    tenants: &[String],
) -> Result<Registered, NotRegistered> {
    let Some(registry) = gw.auth().clients().stored() else {
        return Err(NotRegistered::Forbidden("The client registry is not enabled (set data_dir).".into()));
    };
    let developer = !principal.is_operator();
    if developer {
        let scopes = principal.user().map(|u| u.registration_scopes()).unwrap_or_default();
        if scopes.is_empty() {
            return Err(NotRegistered::Forbidden("Registering apps needs the developer or operator role.".into()));
        }
        if let Some(t) = tenants.iter().find(|t| !scopes.iter().any(|s| *s == "*" || s.eq_ignore_ascii_case(t))) {
            return Err(NotRegistered::Forbidden(format!(
                "Your developer role does not cover tenant {t}: ask an operator for developer:{t}."
            )));
        }
    }
    let actor = principal.name();
    let made = registry.create(name, tenants, actor).await.map_err(NotRegistered::Registry)?;
    if developer && let Some(user) = principal.user() {
        let production = &made.0.0.client_id;
        let granted = match gw.admin().and_then(|a| a.accounts()) {
            Some(accounts) => {
                accounts.own_registration(&user.username, production, actor).await.map_err(|e| e.to_string())
            }
            None => Err("no accounts store".into()),
        };
        if let Err(e) = granted {
            tracing::error!(error = %e, "registration: its owner could not be recorded");
            for c in [&made.1.0, &made.0.0] {
                let _ = registry.delete(&c.client_id, actor).await;
            }
            return Err(NotRegistered::Owner(
                "The registration could not be given its owner; nothing was kept.".into(),
            ));
        }
    }
    Ok(made)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddSecret {
    #[serde(default)]
    description: String,
    /// Days until the secret stops working; absent, it does not expire.
    #[serde(default)]
    expires_in_days: Option<u64>,
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

/// `/admin/clients…`, `/admin/keys/rotate`, `/admin/revoke`,
/// `/admin/introspect` and `/admin/audit`, acting as `principal`.
pub(super) async fn endpoint(
    gw: &Services,
    principal: &Principal,
    method: &Method,
    segments: &[&str],
    query: Option<&str>,
    body: &Bytes,
) -> Response<Body> {
    let Some(registry) = gw.auth().clients().stored() else {
        return problem(StatusCode::NOT_FOUND, "The client registry is not enabled (set data_dir).");
    };
    let actor = principal.name();
    let result = match (method, segments) {
        (&Method::GET, ["clients"]) => registry.list().await.map(|c| answer(StatusCode::OK, json!({ "clients": c }))),
        (&Method::POST, ["clients"]) => {
            let req: CreateClient = match parse_body(body, "{name, tenants}") {
                Ok(r) => r,
                Err(message) => return problem(StatusCode::BAD_REQUEST, message),
            };
            return match register(gw, principal, &req.name, &req.tenants).await {
                Ok(((client, secret), (test, test_secret))) => answer(
                    StatusCode::CREATED,
                    json!({
                        "client": client, "client_secret": secret,
                        "test_client": test, "test_client_secret": test_secret,
                    }),
                ),
                Err(e) => e.into_response(),
            };
        }
        (&Method::GET, ["clients", id]) => match registry.get(id).await {
            Ok(Some(c)) => Ok(answer(StatusCode::OK, json!(c))),
            Ok(None) => Err(RegistryError::UnknownClient((*id).to_owned())),
            Err(e) => Err(e),
        },
        (&Method::DELETE, ["clients", id]) => {
            let deleted = registry.delete(id, actor).await;
            gw.auth().forget_client(id);
            deleted.map(|()| answer(StatusCode::OK, json!({ "deleted": id })))
        }
        (&Method::POST, ["clients", id, "secrets"]) => {
            let req: AddSecret = match parse_body(body, "{description?, expires_in_days?}") {
                Ok(r) => r,
                Err(message) => return problem(StatusCode::BAD_REQUEST, message),
            };
            let new = NewSecret::expiring_in(req.description, req.expires_in_days);
            registry
                .add_secret(id, &new, actor)
                .await
                .map(|(info, secret)| answer(StatusCode::CREATED, json!({ "secret": info, "client_secret": secret })))
        }
        (&Method::GET, ["secrets", "expiring"]) => {
            let days =
                super::query_param(query, "days").and_then(|d| d.parse::<i64>().ok()).unwrap_or(14).clamp(1, 3660);
            registry.expiring(days * 86_400).await.map(|e| answer(StatusCode::OK, json!({ "secrets": e })))
        }
        (&Method::DELETE, ["clients", id, "secrets", sid]) => {
            registry.revoke_secret(id, sid, actor).await.map(|()| answer(StatusCode::OK, json!({ "revoked": sid })))
        }
        (&Method::POST, ["clients", id, "rotate"]) => {
            let req: Rotate = match parse_body(body, "{grace_seconds}") {
                Ok(r) => r,
                Err(message) => return problem(StatusCode::BAD_REQUEST, message),
            };
            let until =
                fhirgate_core::clock::now_seconds().saturating_add(req.grace_seconds).min(i64::MAX as u64) as i64;
            registry.rotate(id, until, actor).await.map(|(info, secret)| {
                answer(
                    StatusCode::CREATED,
                    json!({
                        "secret": info,
                        "client_secret": secret,
                        "previous_secrets_stop_at": fhirgate_core::clock::format_seconds(until),
                    }),
                )
            })
        }
        (&Method::PUT, ["clients", id, "jwks"]) => {
            let jwks: Value = match parse_body(body, "{keys: [...]}") {
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
            let changed = registry.set_status(id, status, actor).await;
            gw.auth().forget_client(id);
            changed.map(|()| answer(StatusCode::OK, json!({ "client_id": id, "status": status })))
        }
        (&Method::POST, ["keys", "rotate"]) => {
            let Some((alg, publish)) = gw.key_policy() else {
                return problem(StatusCode::CONFLICT, "Signing keys are not kept in the store.");
            };
            return match fhirgate_gateway::oauth::key_store::rotate(gw.store(), gw.kek(), alg, publish).await {
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
            let token = form_urlencoded::parse(body).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned());
            return match token {
                Some(t) => {
                    let revoked = gw.auth().revoke_token(&t, None).await;
                    answer(StatusCode::OK, json!({ "revoked": revoked }))
                }
                None => problem(StatusCode::BAD_REQUEST, "Send the token as the form parameter `token`."),
            };
        }
        (&Method::POST, ["introspect"]) => {
            let token = form_urlencoded::parse(body).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned());
            return match token {
                Some(t) => answer(StatusCode::OK, gw.auth().introspection(&t, None).await),
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
