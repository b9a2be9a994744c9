//! App owners' pages: the client registrations they own (operators: all),
//! each with its secrets (description, who made it, expiry, last use), a new
//! secret shown once, and revocation. Changing secrets needs a recent
//! sign-in, as on the admin API.
//!
//! - `GET  /portal/clients`
//! - `GET  /portal/clients/{id}`
//! - `POST /portal/clients/{id}/secrets` (description, expires_in_days)
//! - `POST /portal/clients/{id}/secrets/{secret}/revoke`
//! - `POST /portal/clients/{id}/rotate` (grace_hours): a new secret, the others stop after the grace
//! - `POST /portal/clients/{id}/jwks` (jwks, or remove): the public keys of `private_key_jwt`
//! - `GET  /portal/clients/new`, `POST /portal/clients` (name, tenants): developers and
//!   operators register an app; both ids' first secrets are shown once
//!
//! A client's page charts its token activity (issued, refused) over the
//! last 24 hours and 14 days.

use std::collections::HashMap;

use askama::Template as _;
use http::{Response, StatusCode};

use serde_json::Value;

use fhirgate_core::failure::Body;
use fhirgate_gateway::principal::Principal;
use fhirgate_store::accounts::Role;
use fhirgate_store::clients::{ClientRepository, ClientStatus, NewSecret, RegistryError};

use super::{Session, chart, csrf_refused, html, page, pages, rfc3339};
use crate::admin::clients::{NotRegistered, register};

fn no_registry() -> Response<Body> {
    page(StatusCode::NOT_FOUND, "This gateway keeps no client registry (set data_dir).".into())
}

fn registry_failure(e: RegistryError) -> Response<Body> {
    match e {
        RegistryError::UnknownClient(_) => page(StatusCode::NOT_FOUND, "There is no such client.".into()),
        RegistryError::Store(_) => {
            tracing::error!(error = %e, "portal: client registry failure");
            page(StatusCode::SERVICE_UNAVAILABLE, "The client registry is unavailable; try again shortly.".into())
        }
        other => page(StatusCode::BAD_REQUEST, format!("{other}.")),
    }
}

/// The tenants of a form field: GUIDs separated by white space or commas.
fn tenant_list(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',').filter(|t| !t.is_empty()).map(str::to_owned).collect()
}

impl Session<'_> {
    fn is_operator(&self) -> bool {
        self.user.roles.contains(&Role::Operator)
    }

    /// Whether this user may manage client `id`.
    fn owns(&self, id: &str) -> bool {
        self.is_operator() || self.user.roles.iter().any(|r| matches!(r, Role::AppOwner(c) if c == id))
    }

    fn registry(&self) -> Option<&dyn ClientRepository> {
        self.portal.gw.auth().clients().stored()
    }

    /// Whether a change of secrets must wait for a fresh sign-in.
    pub(super) fn needs_reauth(&self) -> bool {
        let principal = Principal::Session(self.user.clone(), self.signed_in_at);
        self.portal.gw.admin().is_some_and(|a| a.needs_reauth(&principal))
    }

    pub(super) async fn clients(self) -> Response<Body> {
        let Some(registry) = self.registry() else { return no_registry() };
        let list = match registry.list().await {
            Ok(l) => l,
            Err(e) => return registry_failure(e),
        };
        let clients = list
            .into_iter()
            .filter(|c| self.owns(&c.client_id))
            .map(|c| pages::ClientRow {
                id: c.client_id,
                name: c.name,
                environment: c.environment.to_string(),
                status: status(c.status),
                last_used: c.last_used_at.map(rfc3339).unwrap_or_else(|| "never".into()),
            })
            .collect();
        match (pages::Clients { clients, can_register: !self.user.registration_scopes().is_empty() }).render() {
            Ok(t) => html(StatusCode::OK, t),
            Err(e) => page(StatusCode::INTERNAL_SERVER_ERROR, format!("The page could not be drawn: {e}")),
        }
    }

    pub(super) async fn client(self, id: &str, notice: Option<&str>, new_secret: Option<&str>) -> Response<Body> {
        if !self.owns(id) {
            return page(StatusCode::FORBIDDEN, "You do not own this client registration.".into());
        }
        let Some(registry) = self.registry() else { return no_registry() };
        let client = match registry.get(id).await {
            Ok(Some(c)) => c,
            Ok(None) => return page(StatusCode::NOT_FOUND, "There is no such client.".into()),
            Err(e) => return registry_failure(e),
        };
        let now = fhirgate_core::clock::now_seconds() as i64;
        let secrets = client
            .secrets
            .iter()
            .map(|s| {
                let usable = s.usable(now);
                pages::SecretRow {
                    id: s.secret_id.clone(),
                    description: if s.description.is_empty() {
                        "(no description)".into()
                    } else {
                        s.description.clone()
                    },
                    created_at: rfc3339(s.created_at),
                    created_by: s.created_by.clone(),
                    expires: s.expires_at.map(rfc3339).unwrap_or_else(|| "never".into()),
                    last_used: s.last_used_at.map(rfc3339).unwrap_or_else(|| "never".into()),
                    state: if s.revoked_at.is_some() {
                        "revoked"
                    } else if usable {
                        "usable"
                    } else {
                        "expired"
                    },
                    usable,
                }
            })
            .collect();
        let keys = client
            .jwks
            .as_ref()
            .and_then(|j| j["keys"].as_array())
            .map(|keys| {
                let field = |k: &Value, name: &str| k[name].as_str().unwrap_or("—").to_owned();
                keys.iter()
                    .map(|k| pages::KeyRow {
                        kid: field(k, "kid"),
                        kty: field(k, "kty"),
                        alg: field(k, "alg"),
                        usage: field(k, "use"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut charts = Vec::new();
        // Token issuance reaches the trail through the access log's writer:
        // what happened before this page is on it.
        self.portal.gw.access().flush().await;
        for (title, bucket, count, label) in [
            ("Last 24 hours, per hour (UTC)", 3600, 24, chart::hour_label as fn(i64) -> String),
            ("Last 14 days, per day (UTC)", 86_400, 14, chart::day_label),
        ] {
            let since = chart::starts(now, bucket, count).next().unwrap_or(now);
            match registry.token_activity(id, since, bucket).await {
                Ok(rows) => {
                    let (issued, refused): (i64, i64) =
                        (rows.iter().map(|r| r.1).sum(), rows.iter().map(|r| r.2).sum());
                    let summary = format!("tokens issued: {issued}, refused: {refused}");
                    let drawn = chart::chart(&rows, now, (bucket, count), label, ["issued", "refused"], summary);
                    charts.push((title, drawn));
                }
                Err(e) => tracing::warn!(error = %e, "portal: the token activity could not be read"),
            }
        }
        let view = pages::ClientPage {
            id: &client.client_id,
            name: &client.name,
            environment: client.environment.to_string(),
            status: status(client.status),
            tenants: client.tenants.clone(),
            secrets,
            keys,
            charts,
            csrf: &self.csrf,
            notice,
            new_secret,
        };
        match view.render() {
            Ok(t) => html(StatusCode::OK, t),
            Err(e) => page(StatusCode::INTERNAL_SERVER_ERROR, format!("The page could not be drawn: {e}")),
        }
    }

    /// The form that registers an app.
    pub(super) async fn new_client(self, error: Option<&str>, name: &str, tenants: &str) -> Response<Body> {
        if self.user.registration_scopes().is_empty() {
            return page(
                StatusCode::FORBIDDEN,
                "Registering apps needs the developer role: ask an operator to grant developer:<tenant id>.".into(),
            );
        }
        let scopes = self.user.registration_scopes().into_iter().map(str::to_owned).collect();
        let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
        let view = pages::NewClient { csrf: &self.csrf, error, name, tenants, scopes };
        match view.render() {
            Ok(t) => html(status, t),
            Err(e) => page(StatusCode::INTERNAL_SERVER_ERROR, format!("The page could not be drawn: {e}")),
        }
    }

    pub(super) async fn register_client(self, form: &HashMap<String, String>) -> Response<Body> {
        if !self.csrf_ok(form) {
            return csrf_refused();
        }
        let name = form.get("name").map(|n| n.trim().to_owned()).unwrap_or_default();
        let tenant_text = form.get("tenants").cloned().unwrap_or_default();
        if self.needs_reauth() {
            let again = "Sign in again to register an app: your sign-in is too old for this.";
            return self.new_client(Some(again), &name, &tenant_text).await;
        }
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return self.new_client(Some("Name the app (1–200 characters)."), &name, &tenant_text).await;
        }
        let tenants = tenant_list(&tenant_text);
        if tenants.is_empty() {
            let message = "Give at least one tenant id (the customer's directory tenant, a GUID).";
            return self.new_client(Some(message), &name, &tenant_text).await;
        }
        let principal = Principal::Session(self.user.clone(), self.signed_in_at);
        match register(self.portal.gw, &principal, &name, &tenants).await {
            Ok(((production, secret), (test, test_secret))) => {
                let view = pages::Registered {
                    name: &production.name,
                    clients: [
                        ("test", "Test", &test.client_id, &test_secret),
                        ("production", "Production", &production.client_id, &secret),
                    ],
                    tenants: production.tenants.clone(),
                };
                match view.render() {
                    Ok(t) => html(StatusCode::CREATED, t),
                    Err(e) => page(StatusCode::INTERNAL_SERVER_ERROR, format!("The page could not be drawn: {e}")),
                }
            }
            Err(NotRegistered::Forbidden(m) | NotRegistered::Owner(m)) => {
                self.new_client(Some(&m), &name, &tenant_text).await
            }
            Err(NotRegistered::Registry(RegistryError::Store(e))) => registry_failure(RegistryError::Store(e)),
            Err(NotRegistered::Registry(e)) => self.new_client(Some(&format!("{e}.")), &name, &tenant_text).await,
        }
    }

    /// Registers (or, with `remove`, removes) the client's public keys.
    pub(super) async fn set_jwks(self, id: &str, form: &HashMap<String, String>) -> Response<Body> {
        if let Some(refused) = self.may_change(id, form) {
            return refused;
        }
        let Some(registry) = self.registry() else { return no_registry() };
        let jwks = if form.contains_key("remove") {
            None
        } else {
            match serde_json::from_str::<Value>(form.get("jwks").map(String::as_str).unwrap_or_default()) {
                Ok(v) => Some(v),
                Err(e) => {
                    let message =
                        format!("No keys registered: that is not JSON ({e}). Paste a JWK Set: {{\"keys\": [...]}}.");
                    return self.client(id, Some(&message), None).await;
                }
            }
        };
        let actor = self.user.username.clone();
        match registry.set_jwks(id, jwks.as_ref(), &actor).await {
            Ok(()) => {
                self.portal.gw.auth().forget_client(id);
                let done = if jwks.is_some() { "Public keys registered." } else { "Public keys removed." };
                self.client(id, Some(done), None).await
            }
            Err(RegistryError::InvalidJwks(m)) => {
                self.client(id, Some(&format!("No keys registered: {m}.")), None).await
            }
            Err(e) => registry_failure(e),
        }
    }

    /// The checks every change of a client's secrets passes: the form's
    /// CSRF token, ownership and a recent sign-in.
    fn may_change(&self, id: &str, form: &HashMap<String, String>) -> Option<Response<Body>> {
        if !self.csrf_ok(form) {
            return Some(csrf_refused());
        }
        if !self.owns(id) {
            return Some(page(StatusCode::FORBIDDEN, "You do not own this client registration.".into()));
        }
        if self.needs_reauth() {
            return Some(page(
                StatusCode::FORBIDDEN,
                "Sign in again to change secrets: your sign-in is too old for this.".into(),
            ));
        }
        None
    }

    pub(super) async fn add_secret(self, id: &str, form: &HashMap<String, String>) -> Response<Body> {
        if let Some(refused) = self.may_change(id, form) {
            return refused;
        }
        let Some(registry) = self.registry() else { return no_registry() };
        let description = form.get("description").map(|d| d.trim().to_owned()).unwrap_or_default();
        if description.is_empty() || description.chars().count() > 200 || description.chars().any(char::is_control) {
            return self.client(id, Some("No secret added: describe what it is for (1–200 characters)."), None).await;
        }
        let days = match form.get("expires_in_days").map(|d| d.trim()).filter(|d| !d.is_empty()) {
            None => None,
            Some(d) => match d.parse::<u64>() {
                Ok(n) if (1..=3650).contains(&n) => Some(n),
                _ => return self.client(id, Some("No secret added: it stops working in 1 to 3650 days."), None).await,
            },
        };
        let actor = self.user.username.clone();
        match registry.add_secret(id, &NewSecret::expiring_in(description, days), &actor).await {
            Ok((_, secret)) => self.client(id, Some("Secret added."), Some(&secret)).await,
            Err(e) => registry_failure(e),
        }
    }

    pub(super) async fn rotate(self, id: &str, form: &HashMap<String, String>) -> Response<Body> {
        if let Some(refused) = self.may_change(id, form) {
            return refused;
        }
        let Some(registry) = self.registry() else { return no_registry() };
        let hours = match form.get("grace_hours").map(|h| h.trim().parse::<i64>()) {
            Some(Ok(h)) if (0..=720).contains(&h) => h,
            _ => return self.client(id, Some("Not rotated: the grace period is 0 to 720 hours."), None).await,
        };
        let grace_until = fhirgate_core::clock::now_seconds() as i64 + hours * 3600;
        let actor = self.user.username.clone();
        match registry.rotate(id, grace_until, &actor).await {
            Ok((_, secret)) => {
                self.portal.gw.auth().forget_client(id);
                let notice = format!("Rotated: the other secrets stop working at {}.", rfc3339(grace_until));
                self.client(id, Some(&notice), Some(&secret)).await
            }
            Err(e) => registry_failure(e),
        }
    }

    pub(super) async fn revoke_secret(self, id: &str, secret: &str, form: &HashMap<String, String>) -> Response<Body> {
        if let Some(refused) = self.may_change(id, form) {
            return refused;
        }
        let Some(registry) = self.registry() else { return no_registry() };
        let actor = self.user.username.clone();
        match registry.revoke_secret(id, secret, &actor).await {
            Ok(()) => {
                self.portal.gw.auth().forget_client(id);
                self.client(id, Some("Secret revoked: it no longer works."), None).await
            }
            Err(RegistryError::UnknownSecret { .. }) => page(StatusCode::NOT_FOUND, "There is no such secret.".into()),
            Err(e) => registry_failure(e),
        }
    }
}

fn status(s: ClientStatus) -> String {
    match s {
        ClientStatus::Active => "active".into(),
        ClientStatus::Disabled => "disabled".into(),
    }
}
