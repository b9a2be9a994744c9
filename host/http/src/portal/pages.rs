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
