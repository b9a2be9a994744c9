//! Operators' pages: the hospitals' URLs of every tenant and where their
//! onboarding stands, registering a URL and naming its approver; people,
//! their roles and invitations.
//!
//! - `GET  /portal/tenants`, `POST /portal/tenants` (tenant, organization, organization_name,
//!   provider, base_url, fhir_version, environment, approver, auth, token_url, auth_client_id)
//! - `GET  /portal/users`, `POST /portal/users/invite` (username, role, hours),
//!   `POST /portal/users/{name}/roles` (role, grant = 1 | 0),
//!   `POST /portal/invitations/{name}/withdraw`

use std::collections::HashMap;

use askama::Template as _;
use http::{Response, StatusCode};

use fhirgate_core::environment::Environment;
use fhirgate_core::failure::Body;
use fhirgate_gateway::directory::ProviderSpec;
use fhirgate_gateway::directory::environments::Placement;
use fhirgate_gateway::directory::onboarding::DirectoryError;
use fhirgate_store::accounts::{AccountError, Role};

use super::{Session, csrf_refused, html, page, pages, rfc3339, store_failure};

fn operators_only() -> Response<Body> {
    page(StatusCode::FORBIDDEN, "This page is for the gateway's operators.".into())
}

fn directory_unavailable(e: &DirectoryError) -> Response<Body> {
    tracing::error!(error = %e, "portal: directory failure");
    page(StatusCode::SERVICE_UNAVAILABLE, "The directory is unavailable; try again shortly.".into())
}

/// What the URL form was given, to show again beside an error.
#[derive(Default)]
pub(super) struct UrlForm {
    pub tenant: String,
    pub organization: String,
    pub organization_name: String,
    pub provider: String,
    pub base_url: String,
    pub fhir_version: String,
    pub environment: String,
    pub approver: String,
    pub auth: String,
    pub token_url: String,
    pub auth_client_id: String,
}

impl UrlForm {
    fn from(form: &HashMap<String, String>) -> UrlForm {
        let f = |k: &str| form.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
        UrlForm {
            tenant: f("tenant").to_ascii_lowercase(),
            organization: f("organization"),
            organization_name: f("organization_name"),
            provider: f("provider"),
            base_url: f("base_url"),
            fhir_version: f("fhir_version"),
            environment: f("environment"),
            approver: f("approver"),
            auth: f("auth"),
            token_url: f("token_url"),
            auth_client_id: f("auth_client_id"),
        }
    }

    /// The provider declaration the form describes.
    fn spec(&self) -> Result<ProviderSpec, String> {
        let mut spec = serde_json::json!({ "base_url": self.base_url, "fhir_version": self.fhir_version });
        match self.auth.as_str() {
            "" | "none" => {}
            "private-key-jwt" => {
                if self.token_url.is_empty() || self.auth_client_id.is_empty() {
                    return Err("Signing in with a key needs the hospital's token URL and the client id it gave the \
                                gateway."
                        .into());
                }
                spec["auth"] = serde_json::json!({
                    "type": "private-key-jwt", "token_url": self.token_url, "client_id": self.auth_client_id,
                });
            }
            other => return Err(format!("`{other}` is not a way of signing in this page offers.")),
        }
        serde_json::from_value(spec).map_err(|e| format!("The URL's settings are incomplete: {e}."))
    }
}

impl Session<'_> {
    fn operator(&self) -> bool {
        self.user.roles.contains(&Role::Operator)
    }

    /// The checks every change of people and roles passes: the form's CSRF
    /// token, the operator role and a recent sign-in.
    fn may_manage(&self, form: &HashMap<String, String>) -> Option<Response<Body>> {
        if !self.csrf_ok(form) {
            return Some(csrf_refused());
        }
        if !self.operator() {
            return Some(operators_only());
        }
        if self.needs_reauth() {
            return Some(page(
                StatusCode::FORBIDDEN,
                "Sign in again to change people and roles: your sign-in is too old for this.".into(),
            ));
        }
        None
    }

    pub(super) async fn tenants(self, notice: Option<&str>, error: Option<&str>, form: UrlForm) -> Response<Body> {
        if !self.operator() {
            return operators_only();
        }
        let dir = self.portal.gw.directory();
        let mut rows = Vec::new();
        let tenants = match dir.tenants_view().await {
            Ok(t) => t,
            Err(e) => return directory_unavailable(&e),
        };
        let snapshot = dir.snapshot();
        for t in tenants.as_array().map(Vec::as_slice).unwrap_or_default() {
            for m in t["mappings"].as_array().map(Vec::as_slice).unwrap_or_default() {
                let text = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
                let provider = text("provider_id");
                rows.push(pages::MappingLine {
                    base_url: snapshot.provider(&provider).map(|p| p.base_url.clone()).unwrap_or_default(),
                    tenant: text("tenant_id"),
                    organization: Some(text("organization")).filter(|o| !o.is_empty()).unwrap_or_else(|| "—".into()),
                    environment: text("environment"),
                    state: text("state"),
                    approver: text("approver"),
                    requested_by: text("requested_by"),
                    requested_at: super::time_text(&m["requested_at"]),
                    provider,
                });
            }
        }
        let pending = rows.iter().filter(|r| r.state == "pending").count();
        let form = UrlForm {
            fhir_version: Some(form.fhir_version.clone()).filter(|v| !v.is_empty()).unwrap_or_else(|| "r4".into()),
            environment: Some(form.environment.clone()).filter(|v| !v.is_empty()).unwrap_or_else(|| "test".into()),
            ..form
        };
        let view = pages::Tenants { rows, pending, csrf: &self.csrf, notice, error, form };
        let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
        match view.render() {
            Ok(t) => html(status, t),
            Err(e) => page(StatusCode::INTERNAL_SERVER_ERROR, format!("The page could not be drawn: {e}")),
        }
    }

    /// Registers a hospital's URL for a tenant and names who approves it:
    /// the organization (when named), the provider declaration (its
    /// metadata fetched through the outbound policy), then the request.
    pub(super) async fn register_url(self, form: &HashMap<String, String>) -> Response<Body> {
        if !self.csrf_ok(form) {
            return csrf_refused();
        }
        if !self.operator() {
            return operators_only();
        }
        let given = UrlForm::from(form);
        let environment = match given.environment.as_str() {
            "test" => Environment::Test,
            "production" => Environment::Production,
            _ => return self.tenants(None, Some("Choose test or production."), given).await,
        };
        let spec = match given.spec() {
            Ok(s) => s,
            Err(m) => return self.tenants(None, Some(&m), given).await,
        };
        let gw = self.portal.gw;
        let dir = gw.directory();
        let actor = self.user.username.clone();
        // An existing provider is reused as it is when the form names the
        // same server; changing one from here would send every tenant it
        // serves back to pending.
        let existing = dir.snapshot().provider(&given.provider);
        match &existing {
            Some(p) if p.base_url == spec.base() && p.fhir_version == spec.fhir_version => {}
            Some(p) => {
                let message = format!(
                    "Nothing requested: provider `{}` already exists for {} ({}). Choose another provider id; \
                     changing a provider sends every tenant it serves back to approval, so that is done on the \
                     command line or the admin API.",
                    given.provider,
                    p.base_url,
                    p.fhir_version.face()
                );
                return self.tenants(None, Some(&message), given).await;
            }
            None => {}
        }
        if !given.organization.is_empty() && !given.organization_name.is_empty() {
            let made = dir.put_organization(&given.tenant, &given.organization, &given.organization_name, &actor).await;
            if let Err(e) = made {
                return self.fail(e, given).await;
            }
        }
        let reused = existing.is_some();
        if !reused && let Err(e) = dir.put_provider(gw.upstream(), &given.provider, spec, &actor).await {
            return self.fail(e, given).await;
        }
        let place = Placement { organization: given.organization.clone(), environment };
        match dir.request_mapping(gw.upstream(), &given.tenant, &given.provider, &given.approver, &place, &actor).await
        {
            Ok(m) => {
                let kept = if reused {
                    " The provider was declared already: its settings (and how the gateway signs in there) are kept."
                } else {
                    ""
                };
                let notice = format!(
                    "Requested: {} now waits for {} to run the provider check and approve it.{kept}",
                    m.provider_id, m.approver
                );
                self.tenants(Some(&notice), None, UrlForm::default()).await
            }
            Err(e) => self.fail(e, given).await,
        }
    }

    async fn fail(self, e: DirectoryError, given: UrlForm) -> Response<Body> {
        match e {
            DirectoryError::Store(_) | DirectoryError::Reload(_) => directory_unavailable(&e),
            other => {
                let message = format!("Nothing requested: {other}");
                self.tenants(None, Some(&message), given).await
            }
        }
    }

    pub(super) async fn users(self, notice: Option<&str>, error: Option<&str>, link: Option<&str>) -> Response<Body> {
        if !self.operator() {
            return operators_only();
        }
        let accounts = self.portal.accounts;
        let (users, invitations) = match (accounts.users().await, accounts.invitations().await) {
            (Ok(u), Ok(i)) => (u, i),
            (Err(e), _) | (_, Err(e)) => return store_failure(e),
        };
        let users = users
            .into_iter()
            .map(|u| pages::UserLine {
                roles: u.roles.iter().map(|r| String::from(r.clone())).collect(),
                status: u.status,
                created_at: rfc3339(u.created_at),
                created_by: u.created_by,
                username: u.username,
            })
            .collect();
        let invitations = invitations
            .into_iter()
            .map(|i| pages::InvitationLine {
                roles: i.roles.iter().map(|r| String::from(r.clone())).collect::<Vec<_>>().join(", "),
                created_by: i.created_by,
                expires_at: rfc3339(i.expires_at),
                username: i.username,
            })
            .collect();
        let view = pages::Users { users, invitations, csrf: &self.csrf, notice, error, link };
        let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
        match view.render() {
            Ok(t) => html(status, t),
            Err(e) => page(StatusCode::INTERNAL_SERVER_ERROR, format!("The page could not be drawn: {e}")),
        }
    }

    async fn account_failed(self, e: AccountError) -> Response<Body> {
        match e {
            AccountError::Store(_) => store_failure(e),
            other => self.users(None, Some(&format!("Nothing changed: {other}.")), None).await,
        }
    }

    pub(super) async fn invite(self, form: &HashMap<String, String>, public_base: &str) -> Response<Body> {
        if let Some(refused) = self.may_manage(form) {
            return refused;
        }
        let field = |k: &str| form.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
        let role = match Role::parse(&field("role")) {
            Ok(r) => r,
            Err(e) => return self.account_failed(e).await,
        };
        let hours = field("hours").parse::<u64>().unwrap_or(72);
        let username = field("username");
        let actor = self.user.username.clone();
        match self.portal.accounts.invite(&username, &[role], hours, &actor).await {
            Ok((token, _)) => {
                let link = format!("{}/portal/invitation/{token}", public_base.trim_end_matches('/'));
                let notice = format!("Invited {username}: send them the link below, and only them.");
                self.users(Some(&notice), None, Some(&link)).await
            }
            Err(e) => self.account_failed(e).await,
        }
    }

    pub(super) async fn set_role(self, username: &str, form: &HashMap<String, String>) -> Response<Body> {
        if let Some(refused) = self.may_manage(form) {
            return refused;
        }
        let role = match Role::parse(form.get("role").map(|r| r.trim()).unwrap_or_default()) {
            Ok(r) => r,
            Err(e) => return self.account_failed(e).await,
        };
        let grant = form.get("grant").map(String::as_str) == Some("1");
        if !grant && username == self.user.username && role == Role::Operator {
            let message = "Nothing changed: you cannot take the operator role from yourself; ask another operator.";
            return self.users(None, Some(message), None).await;
        }
        let actor = self.user.username.clone();
        match self.portal.accounts.set_role(username, &role, grant, &actor).await {
            Ok(u) => {
                let role = String::from(role);
                let notice = if grant {
                    format!("{} now has the role {role}.", u.username)
                } else {
                    format!("{} no longer has the role {role}.", u.username)
                };
                self.users(Some(&notice), None, None).await
            }
            Err(e) => self.account_failed(e).await,
        }
    }

    pub(super) async fn withdraw(self, username: &str, form: &HashMap<String, String>) -> Response<Body> {
        if let Some(refused) = self.may_manage(form) {
            return refused;
        }
        let actor = self.user.username.clone();
        match self.portal.accounts.withdraw_invitation(username, &actor).await {
            Ok(true) => self.users(Some(&format!("The invitation of {username} is withdrawn.")), None, None).await,
            Ok(false) => self.users(None, Some(&format!("There is no open invitation for {username}.")), None).await,
            Err(e) => self.account_failed(e).await,
        }
    }
}
