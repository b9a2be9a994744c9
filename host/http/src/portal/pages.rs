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
