//! People who use the admin API: accounts, their scoped roles, and personal
//! API tokens (stored as HMAC-SHA256 under the store's pepper, shown once,
//! with an expiry). Every change is in the audit trail.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::json;
use sha2::Sha256;
use sqlx::Row;

use super::Store;
use fhirgate_core::clock::now_seconds;

type HmacSha256 = Hmac<Sha256>;

/// What a personal API token starts with, so it is told from other tokens.
pub const TOKEN_PREFIX: &str = "fgu_";
/// The longest a personal API token may live: a year.
pub const MAX_TOKEN_DAYS: u64 = 366;

/// What a user may do.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub enum Role {
    /// The whole gateway.
    Operator,
    /// Read-only: the access log and the change trail.
    Auditor,
    /// One client registration: its secrets and keys.
    AppOwner(String),
    /// Decisions on mappings of one tenant (`*`: any tenant) that name this
    /// user as their approver.
    Approver(String),
    /// Registers new apps for one tenant (`*`: any tenant), and owns the
    /// registrations it makes.
    Developer(String),
}

impl Role {
    /// `operator`, `auditor`, `app-owner:<client id>`, `approver:<tenant id or *>`,
    /// `developer:<tenant id or *>`.
    pub fn parse(text: &str) -> Result<Role, AccountError> {
        let bad = || {
            AccountError::Invalid(format!(
                "`{text}` is not a role: expected operator, auditor, app-owner:<client id>, approver:<tenant id or *> \
                 or developer:<tenant id or *>"
            ))
        };
        match text.split_once(':') {
            None if text == "operator" => Ok(Role::Operator),
            None if text == "auditor" => Ok(Role::Auditor),
            Some(("app-owner", client)) if !client.is_empty() => Ok(Role::AppOwner(client.to_owned())),
            Some(("approver", "*")) => Ok(Role::Approver("*".into())),
            Some(("approver", tenant)) if fhirgate_core::ids::is_guid(tenant) => {
                Ok(Role::Approver(tenant.to_ascii_lowercase()))
            }
            Some(("developer", "*")) => Ok(Role::Developer("*".into())),
            Some(("developer", tenant)) if fhirgate_core::ids::is_guid(tenant) => {
                Ok(Role::Developer(tenant.to_ascii_lowercase()))
            }
            _ => Err(bad()),
        }
    }

    fn row(&self) -> (&'static str, &str) {
        match self {
            Role::Operator => ("operator", ""),
            Role::Auditor => ("auditor", ""),
            Role::AppOwner(c) => ("app-owner", c),
            Role::Approver(t) => ("approver", t),
            Role::Developer(t) => ("developer", t),
        }
    }

    fn from_row(role: &str, scope: &str) -> Option<Role> {
        match role {
            "operator" => Some(Role::Operator),
            "auditor" => Some(Role::Auditor),
            "app-owner" => Some(Role::AppOwner(scope.to_owned())),
            "approver" => Some(Role::Approver(scope.to_owned())),
            "developer" => Some(Role::Developer(scope.to_owned())),
            _ => None,
        }
    }
}

impl From<Role> for String {
    fn from(r: Role) -> String {
        match r.row() {
            (role, "") => role.to_owned(),
            (role, scope) => format!("{role}:{scope}"),
        }
    }
}

/// A user as the admin API and the CLI show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub user_id: String,
    pub username: String,
    pub status: String,
    pub roles: Vec<Role>,
    #[serde(serialize_with = "fhirgate_core::clock::rfc3339::seconds")]
    pub created_at: i64,
    pub created_by: String,
}

impl User {
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }

    /// The tenants this user may register apps for: `*` for an operator
    /// or `developer:*`, else each `developer:` role's tenant. Empty: none.
    pub fn registration_scopes(&self) -> Vec<&str> {
        self.roles
            .iter()
            .filter_map(|r| match r {
                Role::Operator => Some("*"),
                Role::Developer(scope) => Some(scope.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// A personal API token's metadata (never the token).
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub token_id: String,
    pub label: String,
    #[serde(serialize_with = "fhirgate_core::clock::rfc3339::seconds")]
    pub created_at: i64,
    #[serde(serialize_with = "fhirgate_core::clock::rfc3339::seconds")]
    pub expires_at: i64,
    /// When it was last used, to the minute.
    #[serde(serialize_with = "fhirgate_core::clock::rfc3339::seconds_opt")]
    pub last_used_at: Option<i64>,
    #[serde(serialize_with = "fhirgate_core::clock::rfc3339::seconds_opt")]
    pub revoked_at: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("no user `{0}`")]
    UnknownUser(String),
    #[error("there is already a user `{0}`")]
    Exists(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the store failed: {0}")]
    Store(#[from] sqlx::Error),
}

/// What an invitation token starts with (see `invitations`).
pub const INVITATION_PREFIX: &str = "fgi_";

/// A user name is 1 to 64 letters, digits, `-`, `_`, `.` or `@`.
pub(crate) fn check_username(username: &str) -> Result<(), AccountError> {
    let plain = !username.is_empty()
        && username.len() <= 64
        && username.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_.@".contains(&c))
        // Never mistaken for a credential: invitations and tokens start so.
        && !username.starts_with(INVITATION_PREFIX)
        && !username.starts_with(TOKEN_PREFIX);
    if plain {
        Ok(())
    } else {
        Err(AccountError::Invalid("a user name is 1 to 64 letters, digits, `-`, `_`, `.` or `@`".into()))
    }
}

/// Accounts kept in the store.
#[derive(Clone)]
pub struct Accounts {
    store: Store,
    pepper: Arc<[u8; 32]>,
    /// Seals second-factor secrets.
    kek: Option<fhirgate_core::vault::Kek>,
}

fn now() -> i64 {
    now_seconds() as i64
}

impl Accounts {
    pub fn new(store: Store, pepper: [u8; 32]) -> Accounts {
        Accounts { store, pepper: Arc::new(pepper), kek: None }
    }

    /// Also seals second-factor secrets under `kek`.
    pub fn with_kek(mut self, kek: fhirgate_core::vault::Kek) -> Accounts {
        self.kek = Some(kek);
        self
    }

    pub(crate) fn kek(&self) -> Option<&fhirgate_core::vault::Kek> {
        self.kek.as_ref()
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn hash(&self, token: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(self.pepper.as_slice()).expect("HMAC takes any key length");
        mac.update(token.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub(crate) async fn audit(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        detail: serde_json::Value,
    ) -> Result<(), AccountError> {
        let mut conn = self.store.pool().acquire().await?;
        super::directory::record_event(&mut conn, actor, action, subject, &detail).await?;
        Ok(())
    }

    /// `roles` with each app-owner role extended to every client of its
    /// client's registration: the owner of an app owns its production and
    /// its test client.
    async fn with_twins(&self, roles: &[Role]) -> Result<Vec<Role>, AccountError> {
        let mut out: Vec<Role> = roles.to_vec();
        for role in roles {
            if let Role::AppOwner(client) = role {
                let twins = sqlx::query(
                    "SELECT client_id FROM clients WHERE registration_id = \
                     (SELECT registration_id FROM clients WHERE client_id = $1)",
                )
                .bind(client)
                .fetch_all(self.store.pool())
                .await?;
                for row in twins {
                    let twin = Role::AppOwner(row.try_get("client_id")?);
                    if !out.contains(&twin) {
                        out.push(twin);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Creates the user `username` with `roles` (an app owner owns both
    /// clients of the registration).
    pub async fn create_user(&self, username: &str, roles: &[Role], actor: &str) -> Result<User, AccountError> {
        check_username(username)?;
        let roles = &self.with_twins(roles).await?;
        if self.user(username).await.is_ok() {
            return Err(AccountError::Exists(username.to_owned()));
        }
        let user_id = format!("usr_{}", uuid::Uuid::new_v4().simple());
        let mut tx = self.store.begin_write().await?;
        sqlx::query(
            "INSERT INTO users (user_id, username, status, created_at, created_by) VALUES ($1, $2, 'active', $3, $4)",
        )
        .bind(&user_id)
        .bind(username)
        .bind(now())
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        for role in roles {
            let (role, scope) = role.row();
            sqlx::query("INSERT INTO user_roles (user_id, role, scope) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(&user_id)
                .bind(role)
                .bind(scope)
                .execute(&mut *tx)
                .await?;
        }
        let detail = json!({ "roles": roles });
        super::directory::record_event(&mut tx, actor, "user-created", username, &detail).await?;
        tx.commit().await?;
        self.user(username).await
    }

    /// The user `username`, with their roles.
    pub async fn user(&self, username: &str) -> Result<User, AccountError> {
        let row =
            sqlx::query("SELECT user_id, username, status, created_at, created_by FROM users WHERE username = $1")
                .bind(username)
                .fetch_optional(self.store.pool())
                .await?
                .ok_or_else(|| AccountError::UnknownUser(username.to_owned()))?;
        self.with_roles(&row).await
    }

    async fn with_roles(&self, row: &sqlx::any::AnyRow) -> Result<User, AccountError> {
        let user_id: String = row.try_get("user_id")?;
        let roles = sqlx::query("SELECT role, scope FROM user_roles WHERE user_id = $1 ORDER BY role, scope")
            .bind(&user_id)
            .fetch_all(self.store.pool())
            .await?
            .iter()
            .filter_map(|r| {
                let (role, scope): (String, String) = (r.try_get("role").ok()?, r.try_get("scope").ok()?);
                Role::from_row(&role, &scope)
            })
            .collect();
        Ok(User {
            user_id,
            username: row.try_get("username")?,
            status: row.try_get("status")?,
            roles,
            created_at: row.try_get("created_at")?,
            created_by: row.try_get("created_by")?,
        })
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<User>, AccountError> {
        let rows = sqlx::query("SELECT user_id, username, status, created_at, created_by FROM users ORDER BY username")
            .fetch_all(self.store.pool())
            .await?;
        let mut users = Vec::with_capacity(rows.len());
        for row in &rows {
            users.push(self.with_roles(row).await?);
        }
        Ok(users)
    }

    /// Grants `username` `role` (or, with `grant` false, takes it away); the
    /// user's sessions end, so a new session id follows the change.
    pub async fn set_role(&self, username: &str, role: &Role, grant: bool, actor: &str) -> Result<User, AccountError> {
        let user = self.user(username).await?;
        let sql = if grant {
            "INSERT INTO user_roles (user_id, role, scope) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM user_roles WHERE user_id = $1 AND role = $2 AND scope = $3"
        };
        for each in self.with_twins(std::slice::from_ref(role)).await? {
            let (name, scope) = each.row();
            sqlx::query(sql).bind(&user.user_id).bind(name).bind(scope).execute(self.store.pool()).await?;
        }
        self.end_sessions(&user.user_id).await?;
        let action = if grant { "user-role-granted" } else { "user-role-revoked" };
        self.audit(actor, action, username, json!({ "role": role })).await?;
        self.user(username).await
    }

    /// Makes `username` the owner of the registration of `client_id` they
    /// just made. Unlike [`Accounts::set_role`], their sessions go on: the
    /// role covers only what they created in this session.
    pub async fn own_registration(&self, username: &str, client_id: &str, actor: &str) -> Result<User, AccountError> {
        let user = self.user(username).await?;
        let role = Role::AppOwner(client_id.to_owned());
        for each in self.with_twins(std::slice::from_ref(&role)).await? {
            let (name, scope) = each.row();
            sqlx::query("INSERT INTO user_roles (user_id, role, scope) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(&user.user_id)
                .bind(name)
                .bind(scope)
                .execute(self.store.pool())
                .await?;
        }
        self.audit(actor, "user-role-granted", username, json!({ "role": role, "registered": true })).await?;
        self.user(username).await
    }

    /// Disables or enables `username`: a disabled user's tokens stop working.
    pub async fn set_active(&self, username: &str, active: bool, actor: &str) -> Result<User, AccountError> {
        let status = if active { "active" } else { "disabled" };
        let done = sqlx::query("UPDATE users SET status = $1 WHERE username = $2")
            .bind(status)
            .bind(username)
            .execute(self.store.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(AccountError::UnknownUser(username.to_owned()));
        }
        self.audit(actor, if active { "user-enabled" } else { "user-disabled" }, username, json!({})).await?;
        self.user(username).await
    }

    /// Issues a personal API token for `username`, valid `days` days: the
    /// token, shown this once, and its metadata.
    pub async fn issue_token(
        &self,
        username: &str,
        label: &str,
        days: u64,
        actor: &str,
    ) -> Result<(String, TokenInfo), AccountError> {
        if days == 0 || days > MAX_TOKEN_DAYS {
            return Err(AccountError::Invalid(format!("a token lives 1 to {MAX_TOKEN_DAYS} days")));
        }
        let label = label.trim();
        if label.is_empty() || label.chars().count() > 100 || label.chars().any(char::is_control) {
            return Err(AccountError::Invalid("a token's label is 1 to 100 characters, none of them control".into()));
        }
        let user = self.user(username).await?;
        let token = format!("{TOKEN_PREFIX}{}", fhirgate_core::secret::generate_secret());
        let info = TokenInfo {
            token_id: format!("tok_{}", uuid::Uuid::new_v4().simple()),
            label: label.to_owned(),
            created_at: now(),
            expires_at: now() + (days * 86_400) as i64,
            last_used_at: None,
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO api_tokens (token_id, user_id, hash, label, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&info.token_id)
        .bind(&user.user_id)
        .bind(self.hash(&token))
        .bind(label)
        .bind(info.created_at)
        .bind(info.expires_at)
        .execute(self.store.pool())
        .await?;
        let detail = json!({ "token_id": info.token_id, "label": label, "expires_at": info.expires_at });
        self.audit(actor, "api-token-issued", username, detail).await?;
        Ok((token, info))
    }

    /// `username`'s tokens, newest first.
    pub async fn tokens(&self, username: &str) -> Result<Vec<TokenInfo>, AccountError> {
        let user = self.user(username).await?;
        let rows = sqlx::query(
            "SELECT token_id, label, created_at, expires_at, last_used_at, revoked_at FROM api_tokens \
             WHERE user_id = $1 ORDER BY created_at DESC, token_id",
        )
        .bind(&user.user_id)
        .fetch_all(self.store.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TokenInfo {
                    token_id: r.try_get("token_id")?,
                    label: r.try_get("label")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    last_used_at: r.try_get("last_used_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            })
            .collect()
    }

    /// Revokes `username`'s token `token_id` now.
    pub async fn revoke_token(&self, username: &str, token_id: &str, actor: &str) -> Result<(), AccountError> {
        let user = self.user(username).await?;
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE token_id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(token_id)
        .bind(&user.user_id)
        .execute(self.store.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(AccountError::Invalid(format!("`{username}` has no live token `{token_id}`")));
        }
        self.audit(actor, "api-token-revoked", username, json!({ "token_id": token_id })).await
    }

    /// The active user a live, unexpired token belongs to; its use is noted.
    pub async fn authenticate(&self, token: &str) -> Result<Option<User>, AccountError> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT t.token_id, t.last_used_at, u.user_id, u.username, u.status, u.created_at, u.created_by FROM api_tokens t \
             JOIN users u ON u.user_id = t.user_id \
             WHERE t.hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2",
        )
        .bind(self.hash(token))
        .bind(now())
        .fetch_optional(self.store.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let user = self.with_roles(&row).await?;
        if !user.is_active() {
            return Ok(None);
        }
        // Noted to the minute: a script's every request does not write.
        let used: Option<i64> = row.try_get("last_used_at")?;
        if used.is_none_or(|u| u < now() - 60) {
            let token_id: String = row.try_get("token_id")?;
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE token_id = $2")
                .bind(now())
                .bind(&token_id)
                .execute(self.store.pool())
                .await?;
        }
        Ok(Some(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = "aaaaaaaa-0000-4000-8000-00000000000a";

    crate::store_tests! {
        async fn tokens_authenticate_their_active_user_until_revoked_or_disabled(store) {
                    let accounts = Accounts::new(store, [3; 32]);
            let roles = [Role::parse("app-owner:cl_1").unwrap(), Role::parse(&format!("approver:{TENANT}")).unwrap()];
            let user = accounts.create_user("dana", &roles, "cli:root").await.unwrap();
            assert_eq!(user.roles.len(), 2);
            assert!(matches!(accounts.create_user("dana", &[], "x").await, Err(AccountError::Exists(_))));
            assert!(accounts.create_user("no spaces", &[], "x").await.is_err());
            assert!(Role::parse("approver:not-a-guid").is_err() && Role::parse("admin").is_err());

            let (token, info) = accounts.issue_token("dana", "ci", 30, "cli:root").await.unwrap();
            assert!(token.starts_with(TOKEN_PREFIX));
            let who = accounts.authenticate(&token).await.unwrap().unwrap();
            assert_eq!(who.username, "dana");
            assert!(accounts.tokens("dana").await.unwrap()[0].last_used_at.is_some());
            assert!(accounts.authenticate(&format!("{token}x")).await.unwrap().is_none());
            assert!(accounts.authenticate("not-a-user-token").await.unwrap().is_none());

            accounts.set_active("dana", false, "cli:root").await.unwrap();
            assert!(accounts.authenticate(&token).await.unwrap().is_none(), "a disabled user's token");
            accounts.set_active("dana", true, "cli:root").await.unwrap();
            assert!(accounts.authenticate(&token).await.unwrap().is_some());
            accounts.revoke_token("dana", &info.token_id, "cli:root").await.unwrap();
            assert!(accounts.authenticate(&token).await.unwrap().is_none(), "a revoked token");
            assert!(accounts.issue_token("dana", "too long", MAX_TOKEN_DAYS + 1, "x").await.is_err());
        }
    }
}
