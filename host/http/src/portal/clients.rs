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

use std::collections::HashMap;

use askama::Template as _;
use http::{Response, StatusCode};

use fhirgate_core::failure::Body;
use fhirgate_gateway::principal::Principal;
use fhirgate_store::accounts::Role;
use fhirgate_store::clients::{ClientRepository, ClientStatus, NewSecret, RegistryError};

use super::{Session, csrf_refused, html, page, pages, rfc3339};

fn no_registry() -> Response<Body> {
    page(StatusCode::NOT_FOUND, "This gateway keeps no client registry (set data_dir).".into())
}

fn registry_failure(e: RegistryError) -> Response<Body> {
    match e {
        RegistryError::UnknownClient(_) => page(StatusCode::NOT_FOUND, "There is no such client.".into()),
        other => {
            tracing::error!(error = %other, "portal: client registry failure");
            page(StatusCode::SERVICE_UNAVAILABLE, "The client registry is unavailable; try again shortly.".into())
        }
    }
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
        match (pages::Clients { clients }).render() {
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
        let view = pages::ClientPage {
            id: &client.client_id,
            name: &client.name,
            environment: client.environment.to_string(),
            status: status(client.status),
            tenants: client.tenants.clone(),
            secrets,
            csrf: &self.csrf,
            notice,
            new_secret,
        };
        match view.render() {
            Ok(t) => html(StatusCode::OK, t),
            Err(e) => page(StatusCode::INTERNAL_SERVER_ERROR, format!("The page could not be drawn: {e}")),
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
