//! Users, their roles and personal API tokens; and which routes a
//! principal's roles reach.

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use fhirgate_core::failure::Body;
use fhirgate_gateway::principal::Principal;
use fhirgate_gateway::services::Services;
use fhirgate_store::accounts::{AccountError, Role};

use super::{answer, parse_body, problem};

/// Whether `principal` may make a `method` request to `/admin/{segments}`.
/// Operators (and the admin token) reach everything; users reach what one
/// of their roles names, and their own account.
pub(super) fn allowed(principal: &Principal, method: &Method, segments: &[&str]) -> bool {
    // A personal API token is issued only to the user who asks: nobody, an
    // operator or the shared token included, can mint one to act as
    // someone else (an approver, say).
    if let (&Method::POST, ["users", name, "tokens"]) = (method, segments) {
        return principal.user().is_some_and(|u| u.username == *name);
    }
    if principal.is_operator() {
        return true;
    }
    let Some(user) = principal.user() else { return false };
    if let ["me"] = segments {
        return *method == Method::GET;
    }
    if let ["users", name, "tokens", ..] = segments {
        return *name == user.username;
    }
    let in_scope = |scope: &str, tenant: &str| scope == "*" || scope.eq_ignore_ascii_case(tenant);
    user.roles.iter().any(|role| match (role, method, segments) {
        (Role::Auditor, &Method::GET, ["access"] | ["access", "AuditEvent"] | ["audit"]) => true,
        // Which tenants a developer may register for is checked on creation.
        (Role::Developer(_), &Method::POST, ["clients"]) => true,
        (Role::AppOwner(own), _, ["clients", id, rest @ ..]) if *id == own.as_str() => matches!(
            (method, rest),
            (&Method::GET, [])
                | (&Method::POST, ["secrets"])
                | (&Method::DELETE, ["secrets", _])
                | (&Method::POST, ["rotate"])
                | (&Method::PUT, ["jwks"])
        ),
        (Role::Approver(scope), &Method::POST, ["tenants", tenant, "providers", _, "approve" | "reject" | "check"]) => {
            in_scope(scope, tenant)
        }
        (
            Role::Approver(scope),
            &Method::GET,
            ["tenants", tenant]
            | ["tenants", tenant, "organizations"]
            | ["tenants", tenant, "providers", _, "integration"],
        ) => in_scope(scope, tenant),
        (Role::Approver(_), &Method::GET, ["providers"] | ["providers", _]) => true,
        _ => false,
    })
}

/// Whether a change touches secrets, keys, approvals, people's roles or
/// what serves: through a session, it needs a recent sign-in.
pub(super) fn sensitive(method: &Method, segments: &[&str]) -> bool {
    matches!(
        (method, segments),
        (&Method::POST, ["clients"])
            | (&Method::POST, ["clients", _, "secrets" | "rotate"])
            | (&Method::DELETE, ["clients", _, "secrets", _])
            | (&Method::POST, ["keys", "rotate"])
            | (&Method::POST, ["providers", _, "keys", "rotate"])
            | (&Method::POST, ["tenants", _, "providers", _, "approve" | "reject" | "check"])
            | (&Method::POST, ["users", _, "tokens"])
            | (&Method::POST, ["users"])
            | (&Method::POST, ["users", _, "roles" | "enable"])
            | (&Method::DELETE, ["users", _, "roles", _])
            | (&Method::POST, ["invitations"])
            | (&Method::PUT, ["modules", _])
            | (&Method::POST, ["modules", "reload" | "rollback" | "forward"])
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantRole {
    role: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    username: String,
    roles: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueToken {
    label: String,
    #[serde(default = "default_days")]
    days: u64,
}

fn default_days() -> u64 {
    90
}

pub(super) fn account_error(e: AccountError) -> Response<Body> {
    match e {
        AccountError::UnknownUser(_) => problem(StatusCode::NOT_FOUND, e.to_string()),
        AccountError::Exists(_) => problem(StatusCode::CONFLICT, e.to_string()),
        AccountError::Invalid(_) => problem(StatusCode::BAD_REQUEST, e.to_string()),
        AccountError::Store(_) => {
            tracing::error!(error = %e, "admin API: accounts store failure");
            problem(StatusCode::SERVICE_UNAVAILABLE, "The store is unavailable.")
        }
    }
}

/// `/admin/me` and `/admin/users…`; `None` for any other path.
pub(super) async fn endpoint(
    gw: &Services,
    principal: &Principal,
    method: &Method,
    segments: &[&str],
    body: &Bytes,
) -> Option<Response<Body>> {
    if !matches!(segments.first(), Some(&("me" | "users"))) {
        return None;
    }
    let Some(accounts) = gw.admin().and_then(|a| a.accounts()) else {
        return Some(problem(StatusCode::NOT_FOUND, "Accounts are not enabled (set data_dir)."));
    };
    let actor = principal.name();
    macro_rules! body {
        ($t:ty, $expected:expr) => {
            match parse_body::<$t>(body, $expected) {
                Ok(v) => v,
                Err(message) => return Some(problem(StatusCode::BAD_REQUEST, message)),
            }
        };
    }
    let result = match (method, segments) {
        (&Method::GET, ["me"]) => match principal.user() {
            Some(user) => Ok(answer(StatusCode::OK, json!({ "user": user }))),
            None => Ok(answer(StatusCode::OK, json!({ "admin_token": true }))),
        },
        (&Method::GET, ["users"]) => accounts.users().await.map(|u| answer(StatusCode::OK, json!({ "users": u }))),
        (&Method::POST, ["users"]) => {
            let req = body!(CreateUser, "{username, roles}");
            let roles = match req.roles.iter().map(|r| Role::parse(r)).collect::<Result<Vec<_>, _>>() {
                Ok(r) => r,
                Err(e) => return Some(account_error(e)),
            };
            accounts
                .create_user(&req.username, &roles, actor)
                .await
                .map(|u| answer(StatusCode::CREATED, json!({ "user": u })))
        }
        (&Method::POST, ["users", name, action @ ("disable" | "enable")]) => accounts
            .set_active(name, *action == "enable", actor)
            .await
            .map(|u| answer(StatusCode::OK, json!({ "user": u }))),
        (&Method::POST, ["users", name, "roles"]) => {
            let req = body!(GrantRole, "{role}");
            match Role::parse(&req.role) {
                Ok(role) => accounts
                    .set_role(name, &role, true, actor)
                    .await
                    .map(|u| answer(StatusCode::OK, json!({ "user": u }))),
                Err(e) => Err(e),
            }
        }
        (&Method::DELETE, ["users", name, "roles", role]) => match Role::parse(role) {
            Ok(role) => {
                accounts.set_role(name, &role, false, actor).await.map(|u| answer(StatusCode::OK, json!({ "user": u })))
            }
            Err(e) => Err(e),
        },
        (&Method::GET, ["users", name, "tokens"]) => {
            accounts.tokens(name).await.map(|t| answer(StatusCode::OK, json!({ "tokens": t })))
        }
        (&Method::POST, ["users", name, "tokens"]) => {
            let req = body!(IssueToken, "{label, days?}");
            accounts.issue_token(name, &req.label, req.days, actor).await.map(|(token, info)| {
                answer(
                    StatusCode::CREATED,
                    json!({ "token": token, "info": info, "note": "The token is shown once; store it now." }),
                )
            })
        }
        (&Method::DELETE, ["users", name, "tokens", id]) => {
            accounts.revoke_token(name, id, actor).await.map(|()| answer(StatusCode::OK, json!({ "revoked": id })))
        }
        _ => return Some(problem(StatusCode::NOT_FOUND, "No such admin endpoint.")),
    };
    Some(result.unwrap_or_else(account_error))
}

/// `201` for a new session: the user, the CSRF token and the session cookie
/// (`__Host-`, `Secure`, `HttpOnly`, `SameSite=Strict`).
pub(super) fn session_answer(
    accounts: &fhirgate_store::accounts::Accounts,
    user: &fhirgate_store::accounts::User,
    session: &str,
) -> Response<Body> {
    use fhirgate_store::sign_in::SESSION_MAX_SECONDS;
    let mut resp = answer(
        StatusCode::CREATED,
        json!({ "user": user, "csrf_token": accounts.csrf(session), "expires_in": SESSION_MAX_SECONDS }),
    );
    let text = fhirgate_gateway::principal::session_set_cookie(session, SESSION_MAX_SECONDS);
    if let Ok(v) = http::HeaderValue::from_str(&text) {
        resp.headers_mut().insert(http::header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    username: String,
    password: String,
    #[serde(default)]
    code: Option<String>,
}

/// `POST /admin/session` signs a user in with a local account; `DELETE`
/// signs the session's user out. Failed sign-ins are throttled per user
/// name at an address and per address, and logged.
pub(super) async fn session(
    gw: &Services,
    parts: &http::request::Parts,
    body: hyper::body::Incoming,
    client: std::net::IpAddr,
) -> Response<Body> {
    use fhirgate_gateway::principal::session_cookie;
    let Some(accounts) = gw.admin().and_then(|a| a.accounts()) else {
        return problem(StatusCode::NOT_FOUND, "Accounts are not enabled (set data_dir).");
    };
    let cookie = |value: &str, max_age: i64| {
        http::HeaderValue::from_str(&fhirgate_gateway::principal::session_set_cookie(value, max_age)).ok()
    };
    match parts.method {
        Method::DELETE => {
            if let Some(session) = session_cookie(&parts.headers)
                && let Err(e) = accounts.sign_out(session).await
            {
                return account_error(e);
            }
            let mut resp = answer(StatusCode::OK, json!({ "signed_out": true }));
            if let Some(v) = cookie("", 0) {
                resp.headers_mut().insert(http::header::SET_COOKIE, v);
            }
            resp
        }
        Method::POST => {
            let body = match crate::body::read_body(body, 4096, gw.limits()).await {
                Ok(b) => b,
                Err(f) => return problem(f.status, f.message),
            };
            let req: SignIn = match parse_body(&body, "{username, password, code?}") {
                Ok(r) => r,
                Err(message) => return problem(StatusCode::BAD_REQUEST, message),
            };
            if let Some(wait) = gw.admin_failures().check(Some(&req.username), client).await {
                tracing::warn!(target: "fhirgate::audit", %client, user = %req.username, "sign-in refused: too many failures");
                let mut resp = problem(StatusCode::TOO_MANY_REQUESTS, "Too many failed sign-ins; try again later.");
                resp.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(wait));
                return resp;
            }
            // Counted as a failure before the (slow) check and forgiven on
            // success, so a burst of concurrent guesses cannot all pass.
            gw.admin_failures().failed(Some(&req.username), client);
            match accounts.sign_in(&req.username, &req.password, req.code.as_deref()).await {
                Ok(Some((user, session))) => {
                    gw.admin_failures().forgive(Some(&req.username), client);
                    session_answer(accounts, &user, &session)
                }
                Ok(None) => {
                    gw.admin_failures().confirm_failure(Some(&req.username), client).await;
                    tracing::warn!(target: "fhirgate::audit", %client, user = %req.username, "sign-in failed");
                    problem(StatusCode::UNAUTHORIZED, "The user name, password or code is wrong.")
                }
                Err(AccountError::Invalid(message)) => problem(StatusCode::FORBIDDEN, message),
                Err(e) => account_error(e),
            }
        }
        _ => problem(StatusCode::METHOD_NOT_ALLOWED, "POST signs in, DELETE signs out."),
    }
}
