//! Signing in through an OpenID Connect provider (`[[admin.oidc]]`):
//!
//! - `GET /admin/oidc`                      the providers, and where each sign-in starts
//! - `GET /admin/oidc/{name}/start`         → 303 to the provider (`?invitation=fgi_…` accepts an invitation
//!   as the identity the provider vouches for; `?return_to=/portal/…` comes back to that page)
//! - `GET /admin/oidc/{name}/callback`      where the provider sends the browser back: a session, as
//!   `POST /admin/session` gives one
//!
//! The `state` is also kept in a short-lived `__Host-` cookie and must match
//! on the way back, so nobody can finish a sign-in in someone else's
//! browser. A user is found by the issuer and subject only.

use http::{HeaderValue, Method, Response, StatusCode, header};
use serde_json::json;

use fhirgate_core::failure::Body;
use fhirgate_gateway::principal::cookie;
use fhirgate_gateway::services::Services;
use fhirgate_store::accounts::AccountError;
use fhirgate_store::identities::LOGIN_SECONDS;

use super::users::{account_error, session_answer};
use super::{answer, problem};

/// Carries `state` from the start of a sign-in to its callback. `Lax`: the
/// provider sends the browser back with a top-level GET from its own site.
const STATE_COOKIE: &str = "__Host-fhirgate-oidc";

fn state_cookie(value: &str, max_age: i64) -> Option<HeaderValue> {
    HeaderValue::from_str(&fhirgate_gateway::principal::host_cookie(STATE_COOKIE, value, "Lax", max_age)).ok()
}

fn query_map(query: Option<&str>) -> std::collections::HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect()
}

/// A path of the portal on this gateway, and nothing that could leave it.
fn is_portal_page(path: &str) -> bool {
    path.starts_with("/portal/")
        && !path.contains("//")
        && !path.contains('\\')
        && path.bytes().all(|b| b.is_ascii_graphic())
        && !path.split(['/', '?', '#']).any(|segment| segment == "." || segment == "..")
}

/// `200`, a page that sends the browser on to `to` (a checked portal path).
fn onward(to: &str) -> Response<Body> {
    let text = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" \
         content=\"0;url={to}\"><title>Signed in · fhirgate</title></head><body><main><p>You are signed in. \
         <a href=\"{to}\">Continue</a>.</p></main></body></html>"
    );
    let mut resp = fhirgate_core::failure::json_response(StatusCode::OK, "text/html; charset=utf-8", text);
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
    );
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Whether `segments` is a sign-in through a provider.
pub(super) fn is_oidc_path(segments: &[&str]) -> bool {
    segments.first() == Some(&"oidc")
}

/// Answers `/admin/oidc…`, before any credential: these requests are how
/// one is obtained. `public_base` is the gateway's address as the browser
/// reached it, for the redirect URI.
pub(super) async fn endpoint(
    gw: &Services,
    parts: &http::request::Parts,
    segments: &[&str],
    public_base: &str,
    client: std::net::IpAddr,
) -> Response<Body> {
    let Some(auth) = gw.admin() else {
        return problem(StatusCode::NOT_FOUND, "The admin API is not enabled (set [admin]).");
    };
    let Some(accounts) = auth.accounts() else {
        return problem(StatusCode::NOT_FOUND, "Accounts are not enabled (set data_dir).");
    };
    if parts.method != Method::GET {
        return problem(StatusCode::METHOD_NOT_ALLOWED, "Sign-in through a provider is a GET.");
    }
    let oidc = auth.oidc();
    let callback = |name: &str| format!("{public_base}/admin/oidc/{name}/callback");
    match segments {
        ["oidc"] => {
            let providers: Vec<_> = oidc
                .providers()
                .map(|p| {
                    json!({
                        "name": p.name,
                        "issuer": p.issuer,
                        "start": format!("/admin/oidc/{}/start", p.name),
                        "redirect_uri": callback(&p.name),
                    })
                })
                .collect();
            answer(StatusCode::OK, json!({ "providers": providers }))
        }
        ["oidc", name, "start"] => {
            let Some(provider) = oidc.provider(name) else {
                return problem(StatusCode::NOT_FOUND, format!("No sign-in provider `{name}`."));
            };
            let mut query = query_map(parts.uri.query());
            let invitation = query.remove("invitation");
            // Only a portal page: never somewhere else (an open redirect).
            let return_to = query.remove("return_to").filter(|r| is_portal_page(r));
            if let Some(token) = &invitation {
                match accounts.invitation(token).await {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        gw.admin_failures().failed(None, client);
                        gw.admin_failures().share_failure(None, client);
                        return problem(
                            StatusCode::NOT_FOUND,
                            "This invitation is unknown, used or expired; ask an operator for a new one.",
                        );
                    }
                    Err(e) => return account_error(e),
                }
            }
            let start = match provider.start(gw.upstream(), &callback(name), invitation).await {
                Ok(mut s) => {
                    s.login.return_to = return_to;
                    s
                }
                Err(e) => {
                    tracing::warn!(provider = %name, error = %e, "OpenID Connect sign-in could not start");
                    return problem(StatusCode::BAD_GATEWAY, format!("The sign-in provider is unavailable: {e}."));
                }
            };
            if let Err(e) = accounts.begin_login(name, &start.state, &start.login).await {
                return account_error(e);
            }
            let mut resp = answer(StatusCode::SEE_OTHER, json!({ "location": start.authorize_url }));
            if let (Ok(location), Some(cookie)) =
                (HeaderValue::from_str(&start.authorize_url), state_cookie(&start.state, LOGIN_SECONDS))
            {
                resp.headers_mut().insert(header::LOCATION, location);
                resp.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            resp
        }
        ["oidc", name, "callback"] => {
            let Some(provider) = oidc.provider(name) else {
                return problem(StatusCode::NOT_FOUND, format!("No sign-in provider `{name}`."));
            };
            let mut query = query_map(parts.uri.query());
            let refuse = |status: StatusCode, message: String| {
                gw.admin_failures().failed(None, client);
                gw.admin_failures().share_failure(None, client);
                tracing::warn!(target: "fhirgate::audit", %client, provider = %name, reason = %message, "OpenID Connect sign-in refused");
                let mut resp = problem(status, message);
                if let Some(clear) = state_cookie("", 0) {
                    resp.headers_mut().insert(header::SET_COOKIE, clear);
                }
                resp
            };
            if let Some(error) = query.get("error") {
                let code = if fhirgate_gateway::oidc::is_code(error) { error.as_str() } else { "unknown" };
                return refuse(StatusCode::UNAUTHORIZED, format!("The sign-in provider said `{code}`."));
            }
            let (Some(state), Some(code)) = (query.remove("state"), query.remove("code")) else {
                return refuse(StatusCode::BAD_REQUEST, "The provider's answer lacks `code` or `state`.".into());
            };
            let same_browser = cookie(&parts.headers, STATE_COOKIE)
                .is_some_and(|c| bool::from(subtle::ConstantTimeEq::ct_eq(c.as_bytes(), state.as_bytes())));
            if !same_browser {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "This sign-in was not started in this browser; start again.".into(),
                );
            }
            let login = match accounts.take_login(name, &state).await {
                Ok(Some(login)) => login,
                Ok(None) => {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        "This sign-in is unknown, used or expired; start again.".into(),
                    );
                }
                Err(e) => return account_error(e),
            };
            let subject = match provider.finish(gw.upstream(), &login, &code).await {
                Ok(s) => s,
                Err(e) => return refuse(StatusCode::UNAUTHORIZED, format!("The sign-in failed: {e}.")),
            };
            let issuer = provider.issuer.as_str();
            let user = match &login.invitation {
                Some(token) => accounts.accept_invitation_as(token, issuer, &subject).await,
                None => accounts.user_by_identity(issuer, &subject).await,
            };
            let user = match user {
                Ok(Some(user)) => user,
                Ok(None) if login.invitation.is_some() => {
                    return refuse(StatusCode::NOT_FOUND, "The invitation was used or expired meanwhile.".into());
                }
                Ok(None) => {
                    return refuse(
                        StatusCode::FORBIDDEN,
                        format!(
                            "No user here is bound to this identity (issuer {issuer}, subject {subject}): \
                             ask an operator for an invitation and open it with this provider."
                        ),
                    );
                }
                Err(AccountError::Exists(_)) => {
                    return refuse(StatusCode::CONFLICT, "This identity belongs to another user already.".into());
                }
                Err(e) => return account_error(e),
            };
            let how = json!({ "with": "openid-connect", "provider": name, "issuer": issuer });
            match accounts.new_session(&user, how).await {
                Ok(session) => {
                    let mut resp = session_answer(accounts, &user, &session);
                    if let Some(to) = login.return_to.as_deref().filter(|r| is_portal_page(r)) {
                        // A page of our own that moves on: the browser came
                        // here from the provider's site, and would not send
                        // the SameSite=Strict session cookie on a redirect.
                        let cookie = resp.headers().get(header::SET_COOKIE).cloned();
                        resp = onward(to);
                        if let Some(c) = cookie {
                            resp.headers_mut().insert(header::SET_COOKIE, c);
                        }
                    }
                    if let Some(clear) = state_cookie("", 0) {
                        resp.headers_mut().append(header::SET_COOKIE, clear);
                    }
                    resp
                }
                Err(e) => account_error(e),
            }
        }
        _ => problem(StatusCode::NOT_FOUND, "No such admin endpoint."),
    }
}
