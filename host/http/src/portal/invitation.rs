//! The invitee's page: the link an operator sends opens it; the invitee
//! chooses a password and gets their second factor's secret, once.
//!
//! - `GET  /portal/invitation/{token}`
//! - `POST /portal/invitation/{token}` (password, repeat)

use std::collections::HashMap;

use askama::Template as _;
use http::{Response, StatusCode};

use fhirgate_core::failure::Body;
use fhirgate_store::accounts::AccountError;

use super::{Portal, html, page, pages, rfc3339, store_failure};

/// The base32 secret of an `otpauth://` URI, for typing into an app.
fn totp_secret(uri: &str) -> String {
    uri.split_once('?')
        .map(|(_, q)| q)
        .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "secret").map(|(_, v)| v.into_owned()))
        .unwrap_or_default()
}

impl Portal<'_> {
    fn unknown_invitation(&self) -> Response<Body> {
        self.gw.admin_failures().failed(None, self.client);
        self.gw.admin_failures().share_failure(None, self.client);
        tracing::warn!(target: "fhirgate::audit", client = %self.client, "an unknown, used or expired invitation was presented");
        page(
            StatusCode::NOT_FOUND,
            "This invitation is unknown, used or expired: ask the operator who invited you for a new one.".into(),
        )
    }

    pub(super) async fn invitation(&self, token: &str, error: Option<&str>) -> Response<Body> {
        if let Some(wait) = self.gw.admin_failures().check(None, self.client).await {
            return page(StatusCode::TOO_MANY_REQUESTS, format!("Too many tries; try again in {wait} seconds."));
        }
        let invitation = match self.accounts.invitation(token).await {
            Ok(Some(i)) => i,
            Ok(None) => return self.unknown_invitation(),
            Err(e) => return store_failure(e),
        };
        let view = pages::InvitationPage {
            username: &invitation.username,
            roles: invitation.roles.iter().map(|r| String::from(r.clone())).collect(),
            invited_by: &invitation.created_by,
            expires_at: rfc3339(invitation.expires_at),
            error,
        };
        let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
        match view.render() {
            Ok(t) => html(status, t),
            Err(e) => page(StatusCode::INTERNAL_SERVER_ERROR, format!("The page could not be drawn: {e}")),
        }
    }

    pub(super) async fn accept(&self, token: &str, form: &HashMap<String, String>) -> Response<Body> {
        if let Some(wait) = self.gw.admin_failures().check(None, self.client).await {
            return page(StatusCode::TOO_MANY_REQUESTS, format!("Too many tries; try again in {wait} seconds."));
        }
        let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
        if field("password") != field("repeat") {
            return self.invitation(token, Some("The two passwords differ; type the same one twice.")).await;
        }
        match self.accounts.accept_invitation(token, field("password")).await {
            Ok(Some(accepted)) => {
                tracing::info!(target: "fhirgate::audit", user = %accepted.user.username, "invitation accepted");
                let view = pages::Accepted {
                    username: &accepted.user.username,
                    secret: &totp_secret(&accepted.totp_uri),
                    uri: &accepted.totp_uri,
                };
                match view.render() {
                    Ok(t) => html(StatusCode::CREATED, t),
                    Err(e) => page(StatusCode::INTERNAL_SERVER_ERROR, format!("The page could not be drawn: {e}")),
                }
            }
            Ok(None) => self.unknown_invitation(),
            Err(AccountError::Invalid(m)) => self.invitation(token, Some(&format!("{m}."))).await,
            Err(e) => store_failure(e),
        }
    }
}
