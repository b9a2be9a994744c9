//! The portal: pages people sign in to, served by the gateway under
//! `/portal/`, rendered on the server (askama templates in `templates/`)
//! and working without JavaScript. Every page has a strict Content Security
//! Policy (nothing but this origin's stylesheet), is never cached, and
//! cannot be framed. Forms carry a CSRF token: the session's for signed-in
//! pages, a double-submitted one for the sign-in form (so nobody signs a
//! browser in as someone else).
//!
//! - `GET  /portal/sign-in`, `POST /portal/sign-in` (user name, password, code)
//! - `POST /portal/sign-out`
//! - `GET  /portal/` the signed-in user's account: roles, personal API tokens
//! - `POST /portal/tokens` (label, days) → the new token, shown once
//! - `POST /portal/tokens/{id}/revoke`
//! - app owners' client registrations and their secrets: see [`clients`]
//! - approvers' requests, checks, decisions and integration records: see [`approvals`]
//! - operators' tenants, hospital URLs, people and invitations: see [`operators`]
//! - the invitee's page: see [`invitation`]
//! - auditors' access log: see [`access`]
//! - operators' modules (active, history, refused, shadows, rollback and forward, upload): see [`modules`]
//! - operators' health charts and provider breakers: see [`health`]
//!
//! Times are written in RFC 3339 (UTC); `static/portal.js`, where scripts
//! run, shows them in the viewer's time zone with the RFC 3339 underneath,
//! and adds copy buttons beside secrets shown once.

mod access;
mod approvals;
mod chart;
mod clients;
mod health;
mod invitation;
mod modules;
mod operators;
mod pages;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use askama::Template as _;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use fhirgate_core::failure::Body;
use fhirgate_gateway::activation::Direction;
use fhirgate_gateway::principal::{cookie, host_cookie, session_cookie, session_set_cookie};
use fhirgate_gateway::services::Services;
use fhirgate_store::accounts::{AccountError, Accounts, User};
use fhirgate_store::sign_in::SESSION_MAX_SECONDS;

/// Carries the sign-in form's CSRF token (double submit).
const FORM_COOKIE: &str = "__Host-fhirgate-form";

/// The policy every page is served under: this origin's stylesheet and
/// nothing else; forms post only here; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLESHEET: &str = include_str!("../../static/portal.css");
const SCRIPT: &str = include_str!("../../static/portal.js");

/// Largest form a page posts.
const MAX_FORM: usize = 16 * 1024;

/// Answers a request under `/portal`.
pub(crate) async fn serve(
    gw: &Arc<Services>,
    req: Request<Incoming>,
    client: IpAddr,
    public_base: &str,
) -> Response<Body> {
    secured(answer(gw, req, client, public_base).await)
}

async fn answer(gw: &Arc<Services>, req: Request<Incoming>, client: IpAddr, public_base: &str) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    if path == "/portal/static/portal.css" {
        let mut resp = fhirgate_core::failure::json_response(StatusCode::OK, "text/css; charset=utf-8", STYLESHEET);
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
        return resp;
    }
    if path == "/portal/static/portal.js" {
        let mut resp = fhirgate_core::failure::json_response(StatusCode::OK, "text/javascript; charset=utf-8", SCRIPT);
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
        return resp;
    }
    let Some(accounts) = gw.admin().and_then(|a| a.accounts()).cloned() else {
        return page(
            StatusCode::NOT_FOUND,
            "The portal needs the admin API and a data directory ([admin], data_dir).".into(),
        );
    };
    if parts.method == Method::POST && path == "/portal/modules/upload" {
        // A module is large: read only for a signed-in session.
        let portal = Portal { gw, accounts: &accounts, headers: &parts.headers, client };
        let s = match portal.session().await {
            Ok(s) => s,
            Err(resp) => return resp,
        };
        if let Some(refused) = s.may_upload() {
            return refused;
        }
        let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let limit = fhirgate_gateway::activation::MAX_UPLOAD_BYTES + MAX_FORM;
        return match crate::body::read_body(body, limit, gw.limits()).await {
            Ok(b) => match modules::multipart(content_type, b) {
                Some(fields) => s.upload(fields).await,
                None => page(StatusCode::BAD_REQUEST, "Send the module from the upload form.".into()),
            },
            Err(f) => page(f.status, f.message),
        };
    }
    let form = if parts.method == Method::POST {
        match crate::body::read_body(body, MAX_FORM, gw.limits()).await {
            Ok(b) => parse_form(&b),
            Err(f) => return page(f.status, f.message),
        }
    } else {
        HashMap::new()
    };
    let portal = Portal { gw, accounts: &accounts, headers: &parts.headers, client };
    match (&parts.method, path.as_str()) {
        (&Method::GET, "/portal") => redirect("/portal/"),
        (&Method::GET, "/portal/sign-in") => portal.sign_in_page(None, None, "").await,
        (&Method::POST, "/portal/sign-in") => portal.sign_in(&form).await,
        (method, p) if p.starts_with("/portal/invitation/") => match (method, segments(p).as_slice()) {
            (&Method::GET, ["invitation", token]) => portal.invitation(token, None).await,
            (&Method::POST, ["invitation", token]) => portal.accept(token, &form).await,
            _ => page(StatusCode::NOT_FOUND, "There is no such page.".into()),
        },
        (method, path) => match portal.session().await {
            Err(resp) => resp,
            Ok(s) => match (method, path) {
                (&Method::POST, "/portal/sign-out") => s.sign_out(&form).await,
                (&Method::GET, "/portal/") => s.home(None, None).await,
                (&Method::POST, "/portal/tokens") => s.make_token(&form).await,
                (&Method::GET, "/portal/clients") => s.clients().await,
                (&Method::GET, "/portal/clients/new") => s.new_client(None, "", "").await,
                (&Method::POST, "/portal/clients") => s.register_client(&form).await,
                (&Method::GET, "/portal/approvals") => s.approvals().await,
                (&Method::GET, "/portal/tenants") => s.tenants(None, None, Default::default()).await,
                (&Method::POST, "/portal/tenants") => s.register_url(&form).await,
                (&Method::GET, "/portal/users") => s.users(None, None, None).await,
                (&Method::POST, "/portal/users/invite") => s.invite(&form, public_base).await,
                (&Method::POST, "/portal/users/grant") => {
                    let name = form.get("username").map(|n| n.trim().to_owned()).unwrap_or_default();
                    let mut form = form.clone();
                    form.insert("grant".into(), "1".into());
                    s.set_role(&name, &form).await
                }
                (&Method::GET, "/portal/modules") => s.modules(None, None).await,
                (&Method::GET, "/portal/health") => s.health().await,
                (&Method::POST, "/portal/modules/reload") => s.reload_policy(&form).await,
                (&Method::POST, "/portal/modules/rollback") => s.step(&form, Direction::Back).await,
                (&Method::POST, "/portal/modules/forward") => s.step(&form, Direction::Forward).await,
                (&Method::GET, "/portal/access") => s.access(parts.uri.query()).await,
                (&Method::GET, "/portal/access/export") => s.access_export(parts.uri.query()).await,
                (method, p) => match (method, segments(p).as_slice()) {
                    (&Method::POST, ["tokens", id, "revoke"]) => s.revoke_token((*id).to_owned(), &form).await,
                    (&Method::GET, ["clients", id]) => s.client(id, None, None).await,
                    (&Method::POST, ["clients", id, "secrets"]) => s.add_secret(id, &form).await,
                    (&Method::POST, ["clients", id, "rotate"]) => s.rotate(id, &form).await,
                    (&Method::POST, ["clients", id, "jwks"]) => s.set_jwks(id, &form).await,
                    (&Method::POST, ["users", name, "roles"]) => s.set_role(name, &form).await,
                    (&Method::POST, ["invitations", name, "withdraw"]) => s.withdraw(name, &form).await,
                    (&Method::GET, ["approvals", tenant, provider]) => {
                        s.approval(tenant, provider, None, None, None).await
                    }
                    (&Method::POST, ["approvals", tenant, provider, "check"]) => {
                        s.run_check(tenant, provider, &form).await
                    }
                    (&Method::POST, ["approvals", tenant, provider, "decide"]) => {
                        s.decide(tenant, provider, &form).await
                    }
                    (&Method::GET, ["approvals", tenant, provider, "integration"]) => {
                        s.integration(tenant, provider, public_base).await
                    }
                    (&Method::POST, ["clients", id, "secrets", secret, "revoke"]) => {
                        s.revoke_secret(id, secret, &form).await
                    }
                    _ => page(StatusCode::NOT_FOUND, "There is no such page.".into()),
                },
            },
        },
    }
}

/// The segments of a portal path after `/portal/`; none of them empty.
fn segments(path: &str) -> Vec<&str> {
    let rest = path.strip_prefix("/portal/").unwrap_or_default();
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) { Vec::new() } else { parts }
}

/// The headers every page gets.
fn secured(mut resp: Response<Body>) -> Response<Body> {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    resp
}

fn parse_form(body: &Bytes) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn html(status: StatusCode, text: String) -> Response<Body> {
    fhirgate_core::failure::json_response(status, "text/html; charset=utf-8", text)
}

/// A page that only says `message`.
fn page(status: StatusCode, message: String) -> Response<Body> {
    let text = pages::Message { title: status.canonical_reason().unwrap_or("Error"), message: &message }
        .render()
        .unwrap_or(message);
    html(status, text)
}

fn redirect(to: &str) -> Response<Body> {
    let mut resp = html(StatusCode::SEE_OTHER, String::new());
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn set_cookie(resp: &mut Response<Body>, text: String) {
    if let Ok(v) = HeaderValue::from_str(&text) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The answer to a form without this session's CSRF token.
fn csrf_refused() -> Response<Body> {
    page(StatusCode::FORBIDDEN, "This form expired or did not come from this page; go back and try again.".into())
}

fn ct_eq(a: &str, b: &str) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()))
}

/// RFC 3339, UTC, to the second.
pub(crate) fn rfc3339(seconds: i64) -> String {
    fhirgate_core::clock::format_seconds(seconds)
}

/// A time in a JSON answer (RFC 3339 text), or empty.
pub(crate) fn time_text(v: &serde_json::Value) -> String {
    v.as_str().map(str::to_owned).or_else(|| v.as_i64().map(rfc3339)).unwrap_or_default()
}

fn store_failure(e: AccountError) -> Response<Body> {
    match e {
        AccountError::Store(_) => {
            tracing::error!(error = %e, "portal: accounts store failure");
            page(StatusCode::SERVICE_UNAVAILABLE, "The store is unavailable; try again shortly.".into())
        }
        other => page(StatusCode::BAD_REQUEST, format!("{other}.")),
    }
}

struct Portal<'a> {
    gw: &'a Arc<Services>,
    accounts: &'a Accounts,
    headers: &'a http::HeaderMap,
    client: IpAddr,
}

/// A signed-in request: the user, their session and its CSRF token.
struct Session<'a> {
    portal: &'a Portal<'a>,
    user: User,
    session: String,
    signed_in_at: i64,
    csrf: String,
}

impl Portal<'_> {
    /// The signed-in user's session; anyone else goes to the sign-in page.
    async fn session(&self) -> Result<Session<'_>, Response<Body>> {
        let Some(session) = session_cookie(self.headers).map(str::to_owned) else {
            return Err(redirect("/portal/sign-in"));
        };
        match self.accounts.session(&session).await {
            Ok(Some((user, signed_in_at))) => {
                let csrf = self.accounts.csrf(&session);
                Ok(Session { portal: self, user, session, signed_in_at, csrf })
            }
            Ok(None) => Err(redirect("/portal/sign-in")),
            Err(e) => Err(store_failure(e)),
        }
    }

    async fn sign_in_page(&self, error: Option<&str>, notice: Option<&str>, username: &str) -> Response<Body> {
        let status = if error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
        let form_token = fhirgate_core::secret::generate_secret();
        let providers: Vec<pages::Provider> = self
            .gw
            .admin()
            .map(|a| a.oidc().providers().map(|p| pages::Provider { name: p.name.clone() }).collect())
            .unwrap_or_default();
        let text = pages::SignIn { error, notice, username, form_token: &form_token, providers }.render();
        let mut resp = match text {
            Ok(t) => html(status, t),
            Err(e) => return page(StatusCode::INTERNAL_SERVER_ERROR, format!("The page could not be drawn: {e}")),
        };
        set_cookie(&mut resp, host_cookie(FORM_COOKIE, &form_token, "Strict", 3600));
        resp
    }

    async fn sign_in(&self, form: &HashMap<String, String>) -> Response<Body> {
        let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
        let username = field("username").trim();
        let same_browser = cookie(self.headers, FORM_COOKIE).is_some_and(|c| ct_eq(c, field("form_token")));
        if !same_browser {
            return self.sign_in_page(Some("This form expired; sign in again."), None, username).await;
        }
        if let Some(wait) = self.gw.admin_failures().check(Some(username), self.client).await {
            let message = format!("Too many failed sign-ins; try again in {wait} seconds.");
            return self.sign_in_page(Some(&message), None, username).await;
        }
        let code = Some(field("code").trim()).filter(|c| !c.is_empty());
        // Counted as a failure before the (slow) check and forgiven on
        // success, so a burst of concurrent guesses cannot all pass `check`.
        self.gw.admin_failures().failed(Some(username), self.client);
        match self.accounts.sign_in(username, field("password"), code).await {
            Ok(Some((_, session))) => {
                self.gw.admin_failures().forgive(Some(username), self.client);
                let mut resp = redirect("/portal/");
                set_cookie(&mut resp, session_set_cookie(&session, SESSION_MAX_SECONDS));
                set_cookie(&mut resp, host_cookie(FORM_COOKIE, "", "Strict", 0));
                resp
            }
            Ok(None) => {
                self.gw.admin_failures().confirm_failure(Some(username), self.client).await;
                tracing::warn!(target: "fhirgate::audit", client = %self.client, user = %username, "portal sign-in failed");
                self.sign_in_page(Some("The user name, password or code is wrong."), None, username).await
            }
            Err(AccountError::Invalid(message)) => {
                self.sign_in_page(Some(&format!("{message}.")), None, username).await
            }
            Err(e) => store_failure(e),
        }
    }
}

impl Session<'_> {
    /// Whether the form carries this session's CSRF token.
    fn csrf_ok(&self, form: &HashMap<String, String>) -> bool {
        form.get("csrf").is_some_and(|c| ct_eq(c, &self.csrf))
    }

    async fn sign_out(self, form: &HashMap<String, String>) -> Response<Body> {
        if !self.csrf_ok(form) {
            return csrf_refused();
        }
        if let Err(e) = self.portal.accounts.sign_out(&self.session).await {
            return store_failure(e);
        }
        let mut resp = self.portal.sign_in_page(None, Some("You are signed out."), "").await;
        set_cookie(&mut resp, session_set_cookie("", 0));
        resp
    }

    async fn home(self, notice: Option<String>, new_token: Option<String>) -> Response<Body> {
        let tokens = match self.portal.accounts.tokens(&self.user.username).await {
            Ok(t) => t,
            Err(e) => return store_failure(e),
        };
        let now = fhirgate_core::clock::now_seconds() as i64;
        let tokens: Vec<pages::Token> = tokens
            .into_iter()
            .filter(|t| t.revoked_at.is_none() && t.expires_at > now)
            .map(|t| pages::Token {
                id: t.token_id,
                label: t.label,
                created_at: rfc3339(t.created_at),
                expires_at: rfc3339(t.expires_at),
                last_used: t.last_used_at.map(rfc3339).unwrap_or_else(|| "never".into()),
            })
            .collect();
        let roles: Vec<String> = self.user.roles.iter().cloned().map(String::from).collect();
        let home = pages::Home {
            username: &self.user.username,
            roles,
            operator: self.user.roles.contains(&fhirgate_store::accounts::Role::Operator),
            auditor: self.user.roles.iter().any(|r| {
                matches!(r, fhirgate_store::accounts::Role::Operator | fhirgate_store::accounts::Role::Auditor)
            }),
            signed_in: rfc3339(self.signed_in_at),
            csrf: &self.csrf,
            tokens,
            notice: notice.as_deref(),
            new_token: new_token.as_deref(),
        };
        match home.render() {
            Ok(t) => html(StatusCode::OK, t),
            Err(e) => page(StatusCode::INTERNAL_SERVER_ERROR, format!("The page could not be drawn: {e}")),
        }
    }

    async fn make_token(self, form: &HashMap<String, String>) -> Response<Body> {
        if !self.csrf_ok(form) {
            return csrf_refused();
        }
        if self.needs_reauth() {
            let again = "No token made: sign in again first, your sign-in is too old for this.";
            return self.home(Some(again.into()), None).await;
        }
        let label = form.get("label").map(|l| l.trim().to_owned()).unwrap_or_default();
        let days = form.get("days").and_then(|d| d.trim().parse::<u64>().ok()).unwrap_or(0);
        let name = self.user.username.clone();
        match self.portal.accounts.issue_token(&name, &label, days, &name).await {
            Ok((token, _)) => self.home(Some(format!("Token “{label}” made.")), Some(token)).await,
            Err(AccountError::Invalid(message)) => self.home(Some(format!("No token made: {message}.")), None).await,
            Err(e) => store_failure(e),
        }
    }

    async fn revoke_token(self, id: String, form: &HashMap<String, String>) -> Response<Body> {
        if !self.csrf_ok(form) {
            return csrf_refused();
        }
        let name = self.user.username.clone();
        match self.portal.accounts.revoke_token(&name, &id, &name).await {
            Ok(()) => self.home(Some("Token revoked: it no longer works.".into()), None).await,
            Err(AccountError::UnknownUser(_) | AccountError::Invalid(_)) => {
                page(StatusCode::NOT_FOUND, "There is no such token (it may be revoked already).".into())
            }
            Err(e) => store_failure(e),
        }
    }
}
