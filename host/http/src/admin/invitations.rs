//! Invitations: operators invite people by user name and roles; the invitee
//! opens the one-time link, chooses a password and receives a TOTP second
//! factor.
//!
//! - `POST   /admin/invitations` `{username, roles, hours?}` → the link, once (operators)
//! - `GET    /admin/invitations`                     open invitations (operators)
//! - `DELETE /admin/invitations/{username}`          withdraw (operators)
//! - `GET    /admin/invitations/{token}`             what the invitation is for (no credential but the token)
//! - `POST   /admin/invitations/{token}/accept` `{password}` → the user and their `totp_uri`, once

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use fhirgate_core::failure::Body;
use fhirgate_gateway::principal::Principal;
use fhirgate_gateway::services::Services;
use fhirgate_store::accounts::Role;
use fhirgate_store::invitations::TOKEN_PREFIX;

use super::users::account_error;
use super::{answer, parse_body, problem};

/// 72 hours: long enough to reach someone over a weekend.
fn default_hours() -> u64 {
    72
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Invite {
    username: String,
    roles: Vec<String>,
    #[serde(default = "default_hours")]
    hours: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Accept {
    password: String,
}

/// Whether `segments` is one of the invitee's own requests, which carry no
/// credential but the invitation token.
pub(super) fn is_invitee_path(segments: &[&str]) -> bool {
    matches!(segments, ["invitations", token] | ["invitations", token, "accept"] if token.starts_with(TOKEN_PREFIX))
}

/// The path as it may be logged: an invitation token replaced.
pub(super) fn loggable(path: &str) -> String {
    path.split('/').map(|s| if s.starts_with(TOKEN_PREFIX) { "{invitation}" } else { s }).collect::<Vec<_>>().join("/")
}

/// The invitee's requests. A token that is not an open invitation counts as
/// a failed authentication from `client`.
pub(super) async fn invitee(
    gw: &Services,
    method: &Method,
    segments: &[&str],
    body: Bytes,
    client: std::net::IpAddr,
) -> Response<Body> {
    let Some(accounts) = gw.admin().and_then(|a| a.accounts()) else {
        return problem(StatusCode::NOT_FOUND, "Accounts are not enabled (set data_dir).");
    };
    let unknown = || {
        gw.admin_failures().failed(None, client);
        gw.admin_failures().share_failure(None, client);
        tracing::warn!(target: "fhirgate::audit", %client, "an unknown, used or expired invitation was presented");
        problem(StatusCode::NOT_FOUND, "This invitation is unknown, used or expired; ask an operator for a new one.")
    };
    match (method, segments) {
        (&Method::GET, ["invitations", token]) => match accounts.invitation(token).await {
            Ok(Some(invitation)) => answer(
                StatusCode::OK,
                json!({
                    "invitation": invitation,
                    "accept": "POST {\"password\": \"…\"} (at least 12 characters) to this address followed by /accept; \
                               the answer carries your second factor's otpauth:// URI, once.",
                }),
            ),
            Ok(None) => unknown(),
            Err(e) => account_error(e),
        },
        (&Method::POST, ["invitations", token, "accept"]) => {
            let req: Accept = match parse_body(&body, "{password}") {
                Ok(r) => r,
                Err(message) => return problem(StatusCode::BAD_REQUEST, message),
            };
            match accounts.accept_invitation(token, &req.password).await {
                Ok(Some(accepted)) => {
                    tracing::info!(target: "fhirgate::audit", user = %accepted.user.username, "invitation accepted");
                    answer(
                        StatusCode::CREATED,
                        json!({
                            "user": accepted.user,
                            "totp_uri": accepted.totp_uri,
                            "note": "Add the otpauth:// URI to an authenticator app now: it is shown once. \
                                     Then sign in at /admin/session with your password and a code.",
                        }),
                    )
                }
                Ok(None) => unknown(),
                Err(e) => account_error(e),
            }
        }
        _ => problem(StatusCode::METHOD_NOT_ALLOWED, "GET shows the invitation; POST …/accept accepts it."),
    }
}

/// The operators' side; `None` for any other path.
pub(super) async fn endpoint(
    gw: &Services,
    principal: &Principal,
    method: &Method,
    segments: &[&str],
    body: &Bytes,
) -> Option<Response<Body>> {
    if segments.first() != Some(&"invitations") {
        return None;
    }
    let Some(accounts) = gw.admin().and_then(|a| a.accounts()) else {
        return Some(problem(StatusCode::NOT_FOUND, "Accounts are not enabled (set data_dir)."));
    };
    let actor = principal.name();
    let result = match (method, segments) {
        (&Method::GET, ["invitations"]) => {
            accounts.invitations().await.map(|i| answer(StatusCode::OK, json!({ "invitations": i })))
        }
        (&Method::POST, ["invitations"]) => {
            let req: Invite = match parse_body(body, "{username, roles, hours?}") {
                Ok(r) => r,
                Err(message) => return Some(problem(StatusCode::BAD_REQUEST, message)),
            };
            let roles = match req.roles.iter().map(|r| Role::parse(r)).collect::<Result<Vec<_>, _>>() {
                Ok(r) => r,
                Err(e) => return Some(account_error(e)),
            };
            accounts.invite(&req.username, &roles, req.hours, actor).await.map(|(token, invitation)| {
                answer(
                    StatusCode::CREATED,
                    json!({
                        "invitation": invitation,
                        "path": format!("/admin/invitations/{token}"),
                        "note": "Send the link to the invitee only; it works once and is shown once.",
                    }),
                )
            })
        }
        (&Method::DELETE, ["invitations", username]) => {
            accounts.withdraw_invitation(username, actor).await.map(|done| {
                if done {
                    answer(StatusCode::OK, json!({ "withdrawn": username }))
                } else {
                    problem(StatusCode::NOT_FOUND, format!("No open invitation for `{username}`."))
                }
            })
        }
        _ => return Some(problem(StatusCode::NOT_FOUND, "No such admin endpoint.")),
    };
    Some(result.unwrap_or_else(account_error))
}
