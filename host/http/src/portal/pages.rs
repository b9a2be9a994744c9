//! The portal's pages: askama templates (in `templates/`, HTML-escaped).

use askama::Template;

#[derive(Template)]
#[template(path = "message.html")]
pub(super) struct Message<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

pub(super) struct Provider {
    pub name: String,
}

#[derive(Template)]
#[template(path = "sign_in.html")]
pub(super) struct SignIn<'a> {
    pub error: Option<&'a str>,
    pub notice: Option<&'a str>,
    pub username: &'a str,
    pub form_token: &'a str,
    pub providers: Vec<Provider>,
}

pub(super) struct Token {
    pub id: String,
    pub label: String,
    pub created_at: String,
    pub expires_at: String,
    pub last_used: String,
}

#[derive(Template)]
#[template(path = "home.html")]
pub(super) struct Home<'a> {
    pub username: &'a str,
    pub roles: Vec<String>,
    pub signed_in: String,
    pub csrf: &'a str,
    pub tokens: Vec<Token>,
    pub notice: Option<&'a str>,
    pub new_token: Option<&'a str>,
}

pub(super) struct ClientRow {
    pub id: String,
    pub name: String,
    pub environment: String,
    pub status: String,
    pub last_used: String,
}

#[derive(Template)]
#[template(path = "clients.html")]
pub(super) struct Clients {
    pub clients: Vec<ClientRow>,
}

pub(super) struct SecretRow {
    pub id: String,
    pub description: String,
    pub created_at: String,
    pub created_by: String,
    pub expires: String,
    pub last_used: String,
    pub state: &'static str,
    pub usable: bool,
}

#[derive(Template)]
#[template(path = "client.html")]
pub(super) struct ClientPage<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub environment: String,
    pub status: String,
    pub tenants: Vec<String>,
    pub secrets: Vec<SecretRow>,
    pub csrf: &'a str,
    pub notice: Option<&'a str>,
    pub new_secret: Option<&'a str>,
}

pub(super) struct ApprovalRow {
    pub tenant: String,
    pub provider: String,
    pub organization: String,
    pub environment: String,
    pub state: String,
    pub requested_at: String,
    pub requested_by: String,
}

#[derive(Template)]
#[template(path = "approvals.html")]
pub(super) struct Approvals {
    pub rows: Vec<ApprovalRow>,
}

pub(super) struct CallRow {
    pub resource: String,
    pub face: String,
    pub verdict: String,
    pub details: String,
}

#[derive(Template)]
#[template(path = "approval.html")]
pub(super) struct Approval<'a> {
    pub tenant: &'a str,
    pub provider: &'a str,
    pub organization: String,
    pub environment: String,
    pub base_url: String,
    pub state: String,
    pub requested_at: String,
    pub requested_by: String,
    pub pending: bool,
    pub active: bool,
    pub calls: Vec<CallRow>,
    pub passed: bool,
    pub csrf: &'a str,
    pub notice: Option<&'a str>,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "integration.html")]
pub(super) struct Integration {
    pub token_url: String,
    pub stu3_base: String,
    pub dstu2_base: String,
    pub clients: Vec<String>,
    pub scope: String,
    pub hospital_base: String,
    pub jwks_url: Option<String>,
    pub approved: String,
    pub json: String,
}
