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
    pub operator: bool,
    pub auditor: bool,
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
    pub can_register: bool,
}

pub(super) struct KeyRow {
    pub kid: String,
    pub kty: String,
    pub alg: String,
    pub usage: String,
}

/// A bar chart drawn as SVG (no script, no inline style).
pub(super) struct Chart {
    pub width: i64,
    pub height: i64,
    pub top: i64,
    /// The names of the two series (`a`, then `b`).
    pub series: [&'static str; 2],
    pub summary: String,
    pub bars: Vec<Bar>,
}

pub(super) struct Bar {
    pub label: String,
    pub a: i64,
    pub b: i64,
    pub x_a: i64,
    pub x_b: i64,
    pub w: i64,
    pub h_a: i64,
    pub h_b: i64,
    pub y_a: i64,
    pub y_b: i64,
    pub tick: bool,
    pub x_label: i64,
}

#[derive(Template)]
#[template(path = "client_new.html")]
pub(super) struct NewClient<'a> {
    pub csrf: &'a str,
    pub error: Option<&'a str>,
    pub name: &'a str,
    pub tenants: &'a str,
    pub scopes: Vec<String>,
}

#[derive(Template)]
#[template(path = "registered.html")]
pub(super) struct Registered<'a> {
    pub name: &'a str,
    /// `(environment, heading, client id, secret)`, test first.
    pub clients: [(&'a str, &'a str, &'a str, &'a str); 2],
    pub tenants: Vec<String>,
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
    pub keys: Vec<KeyRow>,
    pub charts: Vec<(&'static str, Chart)>,
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

pub(super) struct MappingLine {
    pub tenant: String,
    pub organization: String,
    pub provider: String,
    pub base_url: String,
    pub environment: String,
    pub state: String,
    pub approver: String,
    pub requested_by: String,
    pub requested_at: String,
}

#[derive(Template)]
#[template(path = "tenants.html")]
pub(super) struct Tenants<'a> {
    pub rows: Vec<MappingLine>,
    pub pending: usize,
    pub csrf: &'a str,
    pub notice: Option<&'a str>,
    pub error: Option<&'a str>,
    pub form: super::operators::UrlForm,
}

pub(super) struct UserLine {
    pub username: String,
    pub roles: Vec<String>,
    pub status: String,
    pub created_at: String,
    pub created_by: String,
}

pub(super) struct InvitationLine {
    pub username: String,
    pub roles: String,
    pub created_by: String,
    pub expires_at: String,
}

#[derive(Template)]
#[template(path = "users.html")]
pub(super) struct Users<'a> {
    pub users: Vec<UserLine>,
    pub invitations: Vec<InvitationLine>,
    pub csrf: &'a str,
    pub notice: Option<&'a str>,
    pub error: Option<&'a str>,
    pub link: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "invitation.html")]
pub(super) struct InvitationPage<'a> {
    pub username: &'a str,
    pub roles: Vec<String>,
    pub invited_by: &'a str,
    pub expires_at: String,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "accepted.html")]
pub(super) struct Accepted<'a> {
    pub username: &'a str,
    pub secret: &'a str,
    pub uri: &'a str,
}

pub(super) struct AccessLine {
    pub at: String,
    pub request_id: String,
    pub part: u32,
    pub client: String,
    pub tenant: String,
    pub provider: String,
    pub what: String,
    pub patient: String,
    pub status: u16,
}

#[derive(Template)]
#[template(path = "access.html")]
pub(super) struct AccessLog<'a> {
    pub search: &'a super::access::Search,
    pub rows: Vec<AccessLine>,
    pub error: Option<&'a str>,
    pub next: Option<String>,
    pub export: String,
    pub searched: bool,
    /// The first page of this search, when this is a later one.
    pub first: Option<String>,
}

pub(super) struct ModuleLine {
    pub role: String,
    pub tenant: String,
    pub module: String,
    pub digest: String,
}

pub(super) struct ShadowLine {
    pub role: String,
    pub module: String,
    pub sample: String,
    pub compared: u64,
    pub same: u64,
    pub different: u64,
    pub faults: u64,
    pub differing: Vec<String>,
}

#[derive(Template)]
#[template(path = "modules.html")]
pub(super) struct Modules<'a> {
    pub policy: String,
    pub partner: String,
    pub generation: u64,
    pub activated_at: Option<String>,
    pub modules: Vec<ModuleLine>,
    /// What a rollback would serve again (when known) and how many in a row
    /// are possible; likewise a step forward.
    pub previous: Option<Vec<ModuleLine>>,
    pub rollback_steps: usize,
    pub next: Option<Vec<ModuleLine>>,
    pub forward_steps: usize,
    /// When the last policy was refused, and why.
    pub rejection: Option<(String, String)>,
    pub shadows: Vec<ShadowLine>,
    pub csrf: &'a str,
    pub notice: Option<&'a str>,
    pub error: Option<&'a str>,
}

pub(super) struct BreakerLine {
    pub id: String,
    pub base_url: String,
    pub state: String,
    pub healthy: bool,
}

#[derive(Template)]
#[template(path = "health.html")]
pub(super) struct Health {
    pub charts: Vec<(String, Chart)>,
    pub providers: Vec<BreakerLine>,
    /// Access records written and failed since the gateway started.
    pub written: u64,
    pub failed: u64,
}
