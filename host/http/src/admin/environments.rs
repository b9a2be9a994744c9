//! Organizations, the approver's live provider check and decision, and
//! integration records:
//!
//! - `GET    /admin/tenants/{tenant}/organizations`             the tenant's hospitals and their URLs
//! - `PUT    /admin/tenants/{tenant}/organizations/{org}` `{name}` add or rename (operators)
//! - `POST   /admin/tenants/{tenant}/providers/{id}/check`       run the live provider check now; the report
//! - `POST   /admin/tenants/{tenant}/providers/{id}/approve` `{note?}` the check runs first and must pass; its
//!   report is kept with the approval (the named approver only, as themselves)
//! - `POST   /admin/tenants/{tenant}/providers/{id}/reject`  `{note?}`
//! - `GET    /admin/tenants/{tenant}/providers/{id}/integration` the integration record of an approved URL

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use fhirgate_core::environment::Environment;
use fhirgate_core::failure::Body;
use fhirgate_gateway::directory::environments::Offer;
use fhirgate_gateway::directory::onboarding::DirectoryError;
use fhirgate_gateway::principal::Principal;
use fhirgate_gateway::services::Services;

use super::directory::directory_error;
use super::{answer, parse_body, problem};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrganizationPut {
    #[serde(default)]
    actor: Option<String>,
    name: String,
}

/// These endpoints; `None` for any other path.
pub(super) async fn endpoint(
    gw: &Services,
    principal: &Principal,
    method: &Method,
    segments: &[&str],
    body: &Bytes,
    public_base: &str,
) -> Option<Response<Body>> {
    let dir = gw.directory();
    let result = match (method, segments) {
        (&Method::GET, ["tenants", tenant, "organizations"]) => {
            dir.organizations_view(tenant).await.map(|v| answer(StatusCode::OK, v))
        }
        (&Method::PUT, ["tenants", tenant, "organizations", org]) => {
            let req: OrganizationPut = match parse_body(body, "{name}") {
                Ok(r) => r,
                Err(message) => return Some(problem(StatusCode::BAD_REQUEST, message)),
            };
            let actor = match super::actor(principal, req.actor) {
                Ok(a) => a,
                Err(message) => return Some(problem(StatusCode::BAD_REQUEST, message)),
            };
            dir.put_organization(tenant, org, &req.name, &actor)
                .await
                .map(|o| answer(StatusCode::OK, json!({ "organization": o })))
        }
        (&Method::POST, ["tenants", tenant, "providers", id, "check"]) => {
            // Only for a requested mapping, by its named approver or an
            // operator: the check reads patient data with the provider's
            // credentials.
            match dir.mapping_of(tenant, id).await {
                Ok(m) if principal.is_operator() || principal.user().is_some_and(|u| u.username == m.approver) => {
                    let checked = check(gw, id, &m.spec_sha256).await;
                    if let Ok(report) = &checked {
                        let passed = report.get("passed").and_then(serde_json::Value::as_bool);
                        if let Err(e) = dir.record_check(tenant, id, principal.name(), passed == Some(true)).await {
                            tracing::warn!(error = %e, "the provider check could not be recorded");
                        }
                    }
                    checked.map(|report| answer(StatusCode::OK, json!({ "tenant_id": tenant, "report": report })))
                }
                Ok(m) => Err(DirectoryError::Forbidden(format!(
                    "Only the named approver `{}` (or an operator) runs this mapping's check.",
                    m.approver
                ))),
                Err(e) => Err(e),
            }
        }
        (&Method::POST, ["tenants", tenant, "providers", id, action @ ("approve" | "reject")]) => {
            let req: Decision = match parse_body(body, "{note?}") {
                Ok(r) => r,
                Err(message) => return Some(problem(StatusCode::BAD_REQUEST, message)),
            };
            if principal.user().is_none() {
                return Some(problem(
                    StatusCode::FORBIDDEN,
                    "The shared admin token cannot approve or reject: the named approver decides with their own \
                     personal API token (`fhirgate user token`).",
                ));
            }
            let actor = match super::actor(principal, req.actor) {
                Ok(a) => a,
                Err(message) => return Some(problem(StatusCode::BAD_REQUEST, message)),
            };
            let approve = *action == "approve";
            decide_checked(gw, tenant, id, &actor, approve, req.note).await.map(decided)
        }
        (&Method::GET, ["tenants", tenant, "providers", id, "integration"]) => {
            let offer = offer(gw, tenant, public_base).await;
            dir.integration_record(tenant, id, &offer).await.map(|r| answer(StatusCode::OK, r))
        }
        _ => return None,
    };
    Some(result.unwrap_or_else(directory_error))
}

/// What came of a decision.
pub(crate) enum Decided {
    Done(Box<fhirgate_store::directory::MappingRow>),
    /// The live provider check failed: not approved. Its report.
    CheckFailed(serde_json::Value),
}

/// The approver proves the URL works: the live provider check runs (with
/// the credentials entered for the provider) before an approval, and only
/// a passing one is approved, its report kept with the approval.
pub(crate) async fn decide_checked(
    gw: &Services,
    tenant: &str,
    id: &str,
    actor: &str,
    approve: bool,
    note: Option<String>,
) -> Result<Decided, DirectoryError> {
    let dir = gw.directory();
    let m = dir.decidable(tenant, id, actor, approve).await?;
    let report = if approve {
        let report = check(gw, id, &m.spec_sha256).await?;
        if report.get("passed").and_then(serde_json::Value::as_bool) != Some(true) {
            return Ok(Decided::CheckFailed(report));
        }
        Some(report)
    } else {
        None
    };
    Ok(Decided::Done(Box::new(dir.decide(tenant, id, actor, approve, note, report).await?)))
}

/// The admin API's answer to a decision.
fn decided(d: Decided) -> Response<Body> {
    match d {
        Decided::Done(m) => answer(StatusCode::OK, json!({ "mapping": m })),
        Decided::CheckFailed(report) => answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({
                "error": "The live provider check failed (Patient does not work through the gateway): not approved.",
                "report": report,
            }),
        ),
    }
}

/// The live provider check of provider `id` for the declaration whose
/// digest is `spec_sha256`, through the current policy's shaping module.
pub(crate) async fn check(gw: &Services, id: &str, spec_sha256: &str) -> Result<serde_json::Value, DirectoryError> {
    let policy = gw.policy().load_full();
    fhirgate_gateway::conformance::live_check(gw.directory(), &policy.shaper, gw.upstream(), id, spec_sha256).await
}

/// The gateway's side of an integration: where it answers and the app
/// clients that may act for `tenant`.
pub(crate) async fn offer(gw: &Services, tenant: &str, public_base: &str) -> Offer {
    let tenant = tenant.to_ascii_lowercase();
    let mut clients: Vec<(String, String, Environment)> = gw
        .auth()
        .clients()
        .declared_clients()
        .filter(|c| c.tenants.contains(&tenant))
        .map(|c| (c.client_id.clone(), c.name.clone().unwrap_or_default(), c.environment))
        .collect();
    if let Some(stored) = gw.auth().clients().stored() {
        match stored.list().await {
            Ok(list) => clients.extend(
                list.into_iter().filter(|c| c.tenants.contains(&tenant)).map(|c| (c.client_id, c.name, c.environment)),
            ),
            Err(e) => tracing::warn!(error = %e, "the integration record lists no registered clients"),
        }
    }
    Offer { public_base: public_base.to_owned(), clients }
}
