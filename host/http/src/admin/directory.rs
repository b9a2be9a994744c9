//! The tenant directory (providers, tenant mappings, approvals) and the
//! access log, for operators.

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use fhirgate_core::failure::{Body, json_response, no_store};
use fhirgate_gateway::access::{AccessCursor, AccessQuery, audit_event_bundle};
use fhirgate_gateway::directory::ProviderSpec;
use fhirgate_gateway::directory::environments::Placement;
use fhirgate_gateway::directory::onboarding::DirectoryError;
use fhirgate_gateway::principal::Principal;
use fhirgate_gateway::services::Services;

use super::{answer, parse_body, problem, query_param};

/// `{actor?, …ProviderSpec}`: the actor beside the declaration's own fields.
fn provider_put(body: &Bytes) -> Result<(Option<String>, ProviderSpec), String> {
    let mut value: Value = parse_body(body, "{actor, base_url, fhir_version, ...}")?;
    let actor = match value.as_object_mut().and_then(|o| o.remove("actor")) {
        Some(Value::String(a)) => Some(a),
        None => None,
        Some(_) => return Err("`actor` must be a string.".into()),
    };
    let spec = serde_json::from_value(value).map_err(|e| format!("Invalid provider: {e}"))?;
    Ok((actor, spec))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingPut {
    #[serde(default)]
    actor: Option<String>,
    approver: String,
    /// The tenant's organization the URL belongs to.
    #[serde(default)]
    organization: Option<String>,
    /// `test` or `production` (the default).
    #[serde(default)]
    environment: Option<fhirgate_core::environment::Environment>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRotation {
    #[serde(default)]
    actor: Option<String>,
    #[serde(default = "default_overlap")]
    overlap_seconds: i64,
}

fn default_overlap() -> i64 {
    fhirgate_gateway::directory::keys::DEFAULT_OVERLAP_SECONDS
}

pub(super) fn directory_error(e: DirectoryError) -> Response<Body> {
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

/// The directory and access-log endpoints; `None` for any other path.
pub(super) async fn endpoint(
    gw: &Services,
    principal: &Principal,
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
    macro_rules! actor {
        ($given:expr) => {
            match super::actor(principal, $given) {
                Ok(a) => a,
                Err(message) => return Some(problem(StatusCode::BAD_REQUEST, message)),
            }
        };
    }
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
            let actor = actor!(actor);
            dir.put_provider(gw.upstream(), id, spec, &actor)
                .await
                .map(|(p, validated)| answer(StatusCode::OK, json!({ "provider": p, "metadata": validated })))
        }
        (&Method::POST, ["providers", id, "keys", "rotate"]) => {
            let req = body!(KeyRotation, "{overlap_seconds?}");
            let actor = actor!(req.actor);
            dir.rotate_assertion_key(id, req.overlap_seconds, &actor).await.map(|kid| {
                let jwks = dir.snapshot().provider_jwks(id);
                answer(StatusCode::OK, json!({ "provider_id": id, "kid": kid, "jwks": jwks }))
            })
        }
        (&Method::DELETE, ["providers", id]) => {
            let actor = actor!(query_param(query, "actor"));
            dir.remove_provider(id, &actor).await.map(|()| answer(StatusCode::OK, json!({ "removed": id })))
        }
        (&Method::GET, ["tenants"]) => {
            dir.tenants_view().await.map(|t| answer(StatusCode::OK, json!({ "tenants": t })))
        }
        (&Method::GET, ["tenants", tenant]) => dir.tenant_view(tenant).await.map(|t| answer(StatusCode::OK, t)),
        (&Method::PUT, ["tenants", tenant, "providers", id]) => {
            let req = body!(MappingPut, "{actor, approver, organization?, environment?}");
            let actor = actor!(req.actor);
            let place = Placement {
                organization: req.organization.unwrap_or_default(),
                environment: req.environment.unwrap_or_default(),
            };
            dir.request_mapping(gw.upstream(), tenant, id, &req.approver, &place, &actor)
                .await
                .map(|m| answer(StatusCode::OK, json!({ "mapping": m })))
        }
        (&Method::DELETE, ["tenants", tenant, "providers", id]) => {
            let actor = actor!(query_param(query, "actor"));
            dir.remove_mapping(tenant, id, &actor)
                .await
                .map(|()| answer(StatusCode::OK, json!({ "removed": { "tenant_id": tenant, "provider_id": id } })))
        }
        (&Method::GET, ["access"]) | (&Method::GET, ["access", "AuditEvent"]) => {
            let mut times = [None, None];
            for (slot, name) in times.iter_mut().zip(["since", "until"]) {
                *slot = match query_param(query, name).map(|v| fhirgate_core::clock::parse_instant_ms(&v)) {
                    None => None,
                    Some(Ok(ms)) => Some(ms),
                    Some(Err(message)) => {
                        return Some(problem(StatusCode::BAD_REQUEST, format!("`{name}`: {message}.")));
                    }
                };
            }
            let [since_ms, until_ms] = times;
            let after = match query_param(query, "after").map(|a| a.parse::<AccessCursor>()) {
                None => None,
                Some(Ok(c)) => Some(c),
                Some(Err(message)) => return Some(problem(StatusCode::BAD_REQUEST, message)),
            };
            let newest_first = match query_param(query, "order").as_deref() {
                None | Some("oldest") => false,
                Some("newest") => true,
                Some(_) => {
                    return Some(problem(StatusCode::BAD_REQUEST, "`order` is `oldest` (the default) or `newest`."));
                }
            };
            let q = AccessQuery {
                newest_first,
                after,
                tenant: query_param(query, "tenant").map(|t| t.to_ascii_lowercase()),
                client: query_param(query, "client"),
                patient: query_param(query, "patient"),
                request_id: query_param(query, "request_id"),
                since_ms,
                until_ms,
                limit: query_param(query, "limit").and_then(|v| v.parse().ok()),
            };
            // What was recorded before this question is in the answer.
            gw.access().flush().await;
            return Some(match gw.access().query(&q).await {
                Ok(records) if segments.len() == 2 => {
                    let bundle = audit_event_bundle(&records, "fhirgate");
                    no_store(json_response(StatusCode::OK, "application/fhir+json", bundle.to_string()))
                }
                Ok(records) => {
                    // A full page has a cursor to the next one.
                    let next = (records.len() == q.effective_limit() as usize)
                        .then(|| records.last().map(|r| AccessCursor::of(r).to_string()))
                        .flatten();
                    answer(StatusCode::OK, json!({ "records": records, "next": next }))
                }
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
