//! Approvers' pages: the requests that name them, each with the live
//! provider check's report, approve or reject with a note, and the
//! integration record once approved. Deciding and checking need a recent
//! sign-in, as on the admin API; only the named approver decides.
//!
//! - `GET  /portal/approvals`
//! - `GET  /portal/approvals/{tenant}/{provider}`
//! - `POST /portal/approvals/{tenant}/{provider}/check`
//! - `POST /portal/approvals/{tenant}/{provider}/decide` (decision = approve | reject, note)
//! - `GET  /portal/approvals/{tenant}/{provider}/integration`

use std::collections::HashMap;

use askama::Template as _;
use http::{Response, StatusCode};
use serde_json::Value;

use fhirgate_core::failure::Body;
use fhirgate_gateway::directory::onboarding::DirectoryError;
use fhirgate_store::accounts::Role;
use fhirgate_store::directory::MappingRow;

use super::{Session, csrf_refused, html, page, pages, rfc3339};
use crate::admin::environments::{Decided, check, decide_checked, offer};

fn directory_failure(e: DirectoryError) -> Response<Body> {
    match e {
        DirectoryError::NotFound(m) => page(StatusCode::NOT_FOUND, m),
        DirectoryError::Store(_) | DirectoryError::Reload(_) => {
            tracing::error!(error = %e, "portal: directory failure");
            page(StatusCode::SERVICE_UNAVAILABLE, "The directory is unavailable; try again shortly.".into())
        }
        other => page(StatusCode::BAD_REQUEST, other.to_string()),
    }
}

/// The rows of a check report, for people.
fn call_rows(report: &Value) -> Vec<pages::CallRow> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    report["calls"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|c| pages::CallRow {
            resource: text(&c["resource"]),
            face: text(&c["face"]),
            verdict: text(&c["verdict"]),
            details: c["details"]
                .as_array()
                .map(|d| d.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "))
                .unwrap_or_default(),
        })
        .collect()
}

impl Session<'_> {
    /// The mapping, if this user is its named approver (or an operator).
    async fn named_mapping(&self, tenant: &str, provider: &str) -> Result<MappingRow, Box<Response<Body>>> {
        let m = self
            .portal
            .gw
            .directory()
            .mapping_of(tenant, provider)
            .await
            .map_err(|e| Box::new(directory_failure(e)))?;
        if m.approver == self.user.username || self.user.roles.contains(&Role::Operator) {
            Ok(m)
        } else {
            Err(Box::new(page(StatusCode::FORBIDDEN, format!("This request names `{}` as its approver.", m.approver))))
        }
    }

    pub(super) async fn approvals(self) -> Response<Body> {
        let list = match self.portal.gw.directory().mappings_for(&self.user.username).await {
            Ok(l) => l,
            Err(e) => return directory_failure(e),
        };
        let rows = list
            .into_iter()
            .map(|m| pages::ApprovalRow {
                tenant: m.tenant_id,
                provider: m.provider_id,
                organization: if m.organization.is_empty() { "—".into() } else { m.organization },
                environment: m.environment,
                state: m.state,
                requested_at: rfc3339(m.requested_at),
                requested_by: m.requested_by,
            })
            .collect();
        match (pages::Approvals { rows }).render() {
            Ok(t) => html(StatusCode::OK, t),
            Err(e) => page(StatusCode::INTERNAL_SERVER_ERROR, format!("The page could not be drawn: {e}")),
        }
    }

    pub(super) async fn approval(
        self,
        tenant: &str,
        provider: &str,
        notice: Option<&str>,
        error: Option<&str>,
        report: Option<&Value>,
    ) -> Response<Body> {
        let m = match self.named_mapping(tenant, provider).await {
            Ok(m) => m,
            Err(resp) => return *resp,
        };
        let base_url = self.portal.gw.directory().snapshot().provider(provider).map(|r| r.base_url.clone());
        let stored: Option<Value> = m.check_report.as_deref().and_then(|r| serde_json::from_str(r).ok());
        let report = report.or(stored.as_ref());
        let view = pages::Approval {
            tenant: &m.tenant_id,
            provider: &m.provider_id,
            organization: if m.organization.is_empty() { "—".into() } else { m.organization.clone() },
            environment: m.environment.clone(),
            base_url: base_url.unwrap_or_else(|| "(its settings could not be loaded)".into()),
            state: m.state.clone(),
            requested_at: rfc3339(m.requested_at),
            requested_by: m.requested_by.clone(),
            pending: m.state == "pending",
            active: m.state == "active",
            calls: report.map(call_rows).unwrap_or_default(),
            passed: report.is_some_and(|r| r["passed"] == true),
            csrf: &self.csrf,
            notice,
            error,
        };
        match view.render() {
            Ok(t) => html(if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK }, t),
            Err(e) => page(StatusCode::INTERNAL_SERVER_ERROR, format!("The page could not be drawn: {e}")),
        }
    }

    /// CSRF, and a recent sign-in, for checking and deciding.
    fn may_act(&self, form: &HashMap<String, String>) -> Option<Response<Body>> {
        if !self.csrf_ok(form) {
            return Some(csrf_refused());
        }
        if self.needs_reauth() {
            return Some(page(
                StatusCode::FORBIDDEN,
                "Sign in again to check or decide: your sign-in is too old.".into(),
            ));
        }
        None
    }

    pub(super) async fn run_check(
        self,
        tenant: &str,
        provider: &str,
        form: &HashMap<String, String>,
    ) -> Response<Body> {
        if let Some(refused) = self.may_act(form) {
            return refused;
        }
        let m = match self.named_mapping(tenant, provider).await {
            Ok(m) => m,
            Err(resp) => return *resp,
        };
        match check(self.portal.gw, provider, &m.spec_sha256).await {
            Ok(report) => {
                let passed = report["passed"] == true;
                let dir = self.portal.gw.directory();
                if let Err(e) = dir.record_check(tenant, provider, &self.user.username, passed).await {
                    tracing::warn!(error = %e, "the provider check could not be recorded");
                }
                let notice = if passed { "The check passed." } else { "The check failed: read the report." };
                self.approval(tenant, provider, Some(notice), None, Some(&report)).await
            }
            Err(e) => self.approval(tenant, provider, None, Some(&e.to_string()), None).await,
        }
    }

    pub(super) async fn decide(self, tenant: &str, provider: &str, form: &HashMap<String, String>) -> Response<Body> {
        if let Some(refused) = self.may_act(form) {
            return refused;
        }
        let approve = match form.get("decision").map(String::as_str) {
            Some("approve") => true,
            Some("reject") => false,
            _ => return page(StatusCode::BAD_REQUEST, "Choose Approve or Reject.".into()),
        };
        let note = form.get("note").map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
        let actor = self.user.username.clone();
        match decide_checked(self.portal.gw, tenant, provider, &actor, approve, note).await {
            Ok(Decided::Done(m)) => {
                let notice = format!("{} it.", if m.state == "active" { "Approved" } else { "Rejected" });
                self.approval(tenant, provider, Some(&notice), None, None).await
            }
            Ok(Decided::CheckFailed(report)) => {
                let error = "Not approved: the provider check failed (Patient does not work through the gateway).";
                self.approval(tenant, provider, None, Some(error), Some(&report)).await
            }
            Err(e) => self.approval(tenant, provider, None, Some(&e.to_string()), None).await,
        }
    }

    pub(super) async fn integration(self, tenant: &str, provider: &str, public_base: &str) -> Response<Body> {
        if let Err(resp) = self.named_mapping(tenant, provider).await {
            return *resp;
        }
        let offer = offer(self.portal.gw, tenant, public_base).await;
        let record = match self.portal.gw.directory().integration_record(tenant, provider, &offer).await {
            Ok(r) => r,
            Err(e) => return directory_failure(e),
        };
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let view = pages::Integration {
            token_url: text(&record["gateway"]["token_url"]),
            stu3_base: text(&record["gateway"]["stu3_base"]),
            dstu2_base: text(&record["gateway"]["dstu2_base"]),
            clients: record["app"]["clients"]
                .as_array()
                .map(|a| a.iter().map(|c| text(&c["client_id"])).collect())
                .unwrap_or_default(),
            scope: text(&record["tenant_id"]),
            hospital_base: text(&record["hospital"]["fhir_base_url"]),
            jwks_url: record["hospital"]["gateway_authenticates_with"]["jwks_url"].as_str().map(str::to_owned),
            approved: format!(
                "{} by {}",
                super::time_text(&record["approval"]["approved_at"]),
                text(&record["approval"]["approved_by"])
            ),
            json: serde_json::to_string_pretty(&record).unwrap_or_default(),
        };
        match view.render() {
            Ok(t) => html(StatusCode::OK, t),
            Err(e) => page(StatusCode::INTERNAL_SERVER_ERROR, format!("The page could not be drawn: {e}")),
        }
    }
}
