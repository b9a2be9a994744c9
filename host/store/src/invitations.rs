//! One-time invitations. An operator (or, for the first operator, the CLI on
//! the data directory) invites a user name with roles; the link carries a
//! random token, kept only as an HMAC under the pepper. Whoever opens it
//! within its lifetime chooses a password and receives a TOTP second factor;
//! the invitation then stops working. Inviting the same name again
//! withdraws the earlier invitation.

use serde::Serialize;
use serde_json::json;
use sqlx::Row as _;

use super::accounts::{AccountError, Accounts, Role, User};
use fhirgate_core::clock::now_seconds;

/// What an invitation token starts with, so it is recognised in a link or a
/// leaked log (and told apart from a user name in a path).
pub const TOKEN_PREFIX: &str = super::accounts::INVITATION_PREFIX;

/// The longest an invitation stays open: two weeks.
pub const MAX_HOURS: u64 = 14 * 24;

/// An open invitation, as an operator or the invitee sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Invitation {
    pub username: String,
    pub roles: Vec<Role>,
    pub created_by: String,
    #[serde(serialize_with = "fhirgate_core::clock::rfc3339::seconds")]
    pub created_at: i64,
    #[serde(serialize_with = "fhirgate_core::clock::rfc3339::seconds")]
    pub expires_at: i64,
}

/// An accepted invitation: the new user and their second factor's
/// `otpauth://` URI, shown this once.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    pub user: User,
    pub totp_uri: String,
}

fn now() -> i64 {
    now_seconds() as i64
}

impl Accounts {
    /// Invites `username` with `roles` for `hours`; the token, shown once.
    pub async fn invite(
        &self,
        username: &str,
        roles: &[Role],
        hours: u64,
        actor: &str,
    ) -> Result<(String, Invitation), AccountError> {
        super::accounts::check_username(username)?;
        if roles.is_empty() {
            return Err(AccountError::Invalid("an invitation names at least one role".into()));
        }
        if hours == 0 || hours > MAX_HOURS {
            return Err(AccountError::Invalid(format!("an invitation lasts 1 to {MAX_HOURS} hours")));
        }
        if self.user(username).await.is_ok() {
            return Err(AccountError::Exists(username.to_owned()));
        }
        let token = format!("{TOKEN_PREFIX}{}", fhirgate_core::secret::generate_secret());
        let created_at = now();
        let invitation = Invitation {
            username: username.to_owned(),
            roles: roles.to_vec(),
            created_by: actor.to_owned(),
            created_at,
            expires_at: created_at + (hours * 3600) as i64,
        };
        let names: Vec<String> = roles.iter().cloned().map(String::from).collect();
        let mut tx = self.store().begin_write().await?;
        sqlx::query("UPDATE invitations SET used_at = $1 WHERE username = $2 AND used_at IS NULL")
            .bind(created_at)
            .bind(username)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO invitations (hash, username, roles, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(self.hash(&token))
        .bind(username)
        .bind(serde_json::to_string(&names).unwrap_or_default())
        .bind(actor)
        .bind(created_at)
        .bind(invitation.expires_at)
        .execute(&mut *tx)
        .await?;
        let detail = json!({ "roles": names, "expires_at": invitation.expires_at });
        super::directory::record_event(&mut tx, actor, "user-invited", username, &detail).await?;
        tx.commit().await?;
        Ok((token, invitation))
    }

    /// The open invitation `token` stands for, if any.
    pub async fn invitation(&self, token: &str) -> Result<Option<Invitation>, AccountError> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT username, roles, created_by, created_at, expires_at FROM invitations \
             WHERE hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(self.hash(token))
        .bind(now())
        .fetch_optional(self.store().pool())
        .await?;
        row.as_ref().map(invitation_row).transpose()
    }

    /// Open invitations, newest first.
    pub async fn invitations(&self) -> Result<Vec<Invitation>, AccountError> {
        let rows = sqlx::query(
            "SELECT username, roles, created_by, created_at, expires_at FROM invitations \
             WHERE used_at IS NULL AND expires_at > $1 ORDER BY created_at DESC, username",
        )
        .bind(now())
        .fetch_all(self.store().pool())
        .await?;
        rows.iter().map(invitation_row).collect()
    }

    /// Withdraws `username`'s open invitation; whether there was one.
    pub async fn withdraw_invitation(&self, username: &str, actor: &str) -> Result<bool, AccountError> {
        let done = sqlx::query("UPDATE invitations SET used_at = $1 WHERE username = $2 AND used_at IS NULL")
            .bind(now())
            .bind(username)
            .execute(self.store().pool())
            .await?
            .rows_affected();
        if done > 0 {
            self.audit(actor, "user-invitation-withdrawn", username, json!({})).await?;
        }
        Ok(done > 0)
    }

    /// Accepts invitation `token` with `password`: the invitation is used up
    /// first (so two tabs cannot both accept), then the user is made with
    /// its roles, the password and a TOTP second factor. `None` when the
    /// token is not an open invitation.
    pub async fn accept_invitation(&self, token: &str, password: &str) -> Result<Option<Accepted>, AccountError> {
        super::sign_in::check_password(password)?;
        let Some(invitation) = self.take_invitation(token).await? else { return Ok(None) };
        let actor = format!("invitation:{}", invitation.created_by);
        let name = &invitation.username;
        if let Err(e) = self.create_user(name, &invitation.roles, &actor).await {
            self.restore_invitation(token).await?;
            return Err(e);
        }
        self.set_password(name, password, name).await?;
        let totp_uri = self.enroll_totp(name, name).await?;
        self.audit(name, "user-invitation-accepted", name, json!({ "invited_by": invitation.created_by })).await?;
        Ok(Some(Accepted { user: self.user(name).await?, totp_uri }))
    }
}

impl Accounts {
    /// Uses up the open invitation `token` stands for (at most once, even
    /// for two requests at the same time) and returns it.
    pub(crate) async fn take_invitation(&self, token: &str) -> Result<Option<Invitation>, AccountError> {
        let Some(invitation) = self.invitation(token).await? else { return Ok(None) };
        let used =
            sqlx::query("UPDATE invitations SET used_at = $1 WHERE hash = $2 AND used_at IS NULL AND expires_at > $1")
                .bind(now())
                .bind(self.hash(token))
                .execute(self.store().pool())
                .await?
                .rows_affected();
        Ok((used == 1).then_some(invitation))
    }

    /// Opens `token`'s invitation again after accepting it failed before
    /// anyone was made from it.
    pub(crate) async fn restore_invitation(&self, token: &str) -> Result<(), AccountError> {
        sqlx::query("UPDATE invitations SET used_at = NULL WHERE hash = $1")
            .bind(self.hash(token))
            .execute(self.store().pool())
            .await?;
        Ok(())
    }
}

fn invitation_row(r: &sqlx::any::AnyRow) -> Result<Invitation, AccountError> {
    let roles: String = r.try_get("roles")?;
    let names: Vec<String> = serde_json::from_str(&roles).unwrap_or_default();
    Ok(Invitation {
        username: r.try_get("username")?,
        roles: names.iter().filter_map(|n| Role::parse(n).ok()).collect(),
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn accounts(store: Store) -> Accounts {
        Accounts::new(store, [7; 32]).with_kek(fhirgate_core::vault::Kek::random())
    }

    crate::store_tests! {
        async fn an_invitation_works_once_and_a_new_one_withdraws_the_old(store) {
            let accounts = accounts(store);
            let (old, _) = accounts.invite("alice", &[Role::Operator], 24, "cli:root").await.unwrap();
            let (token, invitation) = accounts.invite("alice", &[Role::Operator], 24, "cli:root").await.unwrap();
            assert!(token.starts_with(TOKEN_PREFIX));
            assert_eq!(invitation.roles, [Role::Operator]);
            assert!(accounts.invitation(&old).await.unwrap().is_none(), "the earlier link stopped working");
            assert!(accounts.accept_invitation(&old, "a long enough password").await.unwrap().is_none());
            assert!(accounts.accept_invitation(&token, "short").await.is_err(), "the password is checked first");
            assert!(accounts.invitation(&token).await.unwrap().is_some(), "and a refused password uses nothing up");

            let accepted = accounts.accept_invitation(&token, "a long enough password").await.unwrap().unwrap();
            assert_eq!(accepted.user.roles, [Role::Operator]);
            assert!(accepted.totp_uri.starts_with("otpauth://totp/"));
            assert!(accounts.accept_invitation(&token, "another long password").await.unwrap().is_none());
            assert!(accounts.invitations().await.unwrap().is_empty());
            let again = accounts.invite("alice", &[Role::Auditor], 24, "cli:root").await;
            assert!(matches!(again, Err(AccountError::Exists(_))));
            assert!(accounts.invite("bob", &[], 24, "x").await.is_err());
            assert!(accounts.invite("bob", &[Role::Auditor], MAX_HOURS + 1, "x").await.is_err());
            assert!(accounts.invitation("not-a-token").await.unwrap().is_none());
            // A name that looks like a credential is refused.
            assert!(accounts.invite("fgi_bob", &[Role::Auditor], 24, "x").await.is_err());
            assert!(accounts.create_user("fgu_bob", &[Role::Auditor], "x").await.is_err());
        }
    }
}
