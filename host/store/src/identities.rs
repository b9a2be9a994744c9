//! Users signed in through OpenID Connect: bound to the identity a provider
//! vouches for by its issuer and subject (never by e-mail, which a provider
//! may let people change), either when they accept an invitation through
//! the provider or by an operator naming the pair. And the state of each
//! sign-in under way (`state`, `nonce`, the PKCE verifier), kept sealed for
//! ten minutes and taken once.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row as _;

use super::accounts::{AccountError, Accounts, User};
use fhirgate_core::clock::now_seconds;

/// How long a sign-in may take at the provider.
pub const LOGIN_SECONDS: i64 = 600;

const LOGIN_PURPOSE: &str = "oidc-login";

/// Sign-ins under way at once, at most: each start is a row, and starts
/// need no credential.
const MAX_OPEN_LOGINS: i64 = 10_000;

/// What a sign-in under way must remember until the provider sends the
/// browser back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    pub nonce: String,
    pub verifier: String,
    pub redirect_uri: String,
    /// An invitation being accepted through the provider.
    #[serde(default)]
    pub invitation: Option<String>,
    /// A portal page to send the browser to once signed in.
    #[serde(default)]
    pub return_to: Option<String>,
}

/// An identity bound to a user.
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    #[serde(serialize_with = "fhirgate_core::clock::rfc3339::seconds")]
    pub created_at: i64,
    pub created_by: String,
}

fn now() -> i64 {
    now_seconds() as i64
}

impl Accounts {
    /// Binds `username` to the identity (`issuer`, `subject`); an identity
    /// belongs to one user.
    pub async fn bind_identity(
        &self,
        username: &str,
        issuer: &str,
        subject: &str,
        actor: &str,
    ) -> Result<(), AccountError> {
        if issuer.is_empty() || subject.is_empty() || issuer.len() > 512 || subject.len() > 255 {
            return Err(AccountError::Invalid("an identity is a non-empty issuer and subject".into()));
        }
        let user = self.user(username).await?;
        if let Some(owner) = self.identity_owner(issuer, subject).await? {
            return Err(AccountError::Exists(format!("identity of {owner}")));
        }
        sqlx::query(
            "INSERT INTO user_identities (issuer, subject, user_id, created_at, created_by) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(issuer)
        .bind(subject)
        .bind(&user.user_id)
        .bind(now())
        .bind(actor)
        .execute(self.store().pool())
        .await?;
        self.audit(actor, "user-identity-bound", username, json!({ "issuer": issuer, "subject": subject })).await
    }

    /// Unbinds an identity from `username`; whether it was bound.
    pub async fn unbind_identity(
        &self,
        username: &str,
        issuer: &str,
        subject: &str,
        actor: &str,
    ) -> Result<bool, AccountError> {
        let user = self.user(username).await?;
        let done = sqlx::query("DELETE FROM user_identities WHERE issuer = $1 AND subject = $2 AND user_id = $3")
            .bind(issuer)
            .bind(subject)
            .bind(&user.user_id)
            .execute(self.store().pool())
            .await?
            .rows_affected();
        if done > 0 {
            self.end_sessions(&user.user_id).await?;
            let detail = json!({ "issuer": issuer, "subject": subject });
            self.audit(actor, "user-identity-unbound", username, detail).await?;
        }
        Ok(done > 0)
    }

    /// The identities bound to `username`.
    pub async fn identities(&self, username: &str) -> Result<Vec<Identity>, AccountError> {
        let user = self.user(username).await?;
        let rows = sqlx::query(
            "SELECT issuer, subject, created_at, created_by FROM user_identities WHERE user_id = $1 \
             ORDER BY issuer, subject",
        )
        .bind(&user.user_id)
        .fetch_all(self.store().pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Identity {
                    issuer: r.try_get("issuer")?,
                    subject: r.try_get("subject")?,
                    created_at: r.try_get("created_at")?,
                    created_by: r.try_get("created_by")?,
                })
            })
            .collect()
    }

    async fn identity_owner(&self, issuer: &str, subject: &str) -> Result<Option<String>, AccountError> {
        let row = sqlx::query(
            "SELECT u.username FROM user_identities i JOIN users u ON u.user_id = i.user_id \
             WHERE i.issuer = $1 AND i.subject = $2",
        )
        .bind(issuer)
        .bind(subject)
        .fetch_optional(self.store().pool())
        .await?;
        Ok(row.map(|r| r.try_get("username")).transpose()?)
    }

    /// The active user bound to (`issuer`, `subject`), if any.
    pub async fn user_by_identity(&self, issuer: &str, subject: &str) -> Result<Option<User>, AccountError> {
        match self.identity_owner(issuer, subject).await? {
            Some(name) => Ok(Some(self.user(&name).await?).filter(User::is_active)),
            None => Ok(None),
        }
    }

    /// Accepts invitation `token` for the identity (`issuer`, `subject`):
    /// the user is made with the invitation's roles and bound to it, with
    /// no password. `None` when the token is not an open invitation.
    pub async fn accept_invitation_as(
        &self,
        token: &str,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<User>, AccountError> {
        if let Some(owner) = self.identity_owner(issuer, subject).await? {
            return Err(AccountError::Exists(format!("identity of {owner}")));
        }
        let Some(invitation) = self.take_invitation(token).await? else { return Ok(None) };
        let name = &invitation.username;
        let user =
            match self.create_user(name, &invitation.roles, &format!("invitation:{}", invitation.created_by)).await {
                Ok(user) => user,
                Err(e) => {
                    self.restore_invitation(token).await?;
                    return Err(e);
                }
            };
        if let Err(e) = self.bind_identity(name, issuer, subject, name).await {
            // Someone bound the identity meanwhile: nobody is made of this
            // invitation, which works again.
            sqlx::query("DELETE FROM users WHERE user_id = $1")
                .bind(&user.user_id)
                .execute(self.store().pool())
                .await?;
            self.restore_invitation(token).await?;
            return Err(e);
        }
        let detail = json!({ "invited_by": invitation.created_by, "issuer": issuer });
        self.audit(name, "user-invitation-accepted", name, detail).await?;
        Ok(Some(self.user(name).await?))
    }

    /// Remembers a sign-in under way at `provider` under `state`.
    pub async fn begin_login(&self, provider: &str, state: &str, login: &PendingLogin) -> Result<(), AccountError> {
        let kek =
            self.kek().ok_or_else(|| AccountError::Invalid("no key-encryption key to seal the sign-in".into()))?;
        let at = now();
        let open: i64 = sqlx::query("SELECT COUNT(*) AS n FROM oidc_logins WHERE expires_at > $1")
            .bind(at)
            .fetch_one(self.store().pool())
            .await?
            .try_get("n")?;
        if open >= MAX_OPEN_LOGINS {
            return Err(AccountError::Invalid("too many sign-ins are under way; try again in a few minutes".into()));
        }
        let plain = serde_json::to_vec(login).unwrap_or_default();
        let sealed =
            kek.seal(LOGIN_PURPOSE, &plain).map_err(|e| AccountError::Invalid(format!("sealing the sign-in: {e}")))?;
        let at = now();
        // Sign-ins never finished are dropped as new ones begin.
        sqlx::query("DELETE FROM oidc_logins WHERE expires_at <= $1").bind(at).execute(self.store().pool()).await?;
        sqlx::query("INSERT INTO oidc_logins (state_hash, provider, sealed, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(self.hash(state))
            .bind(provider)
            .bind(sealed)
            .bind(at + LOGIN_SECONDS)
            .execute(self.store().pool())
            .await?;
        Ok(())
    }

    /// Takes the sign-in under way at `provider` under `state`: it works
    /// once, within [`LOGIN_SECONDS`].
    pub async fn take_login(&self, provider: &str, state: &str) -> Result<Option<PendingLogin>, AccountError> {
        let hash = self.hash(state);
        let row =
            sqlx::query("SELECT sealed FROM oidc_logins WHERE state_hash = $1 AND provider = $2 AND expires_at > $3")
                .bind(&hash)
                .bind(provider)
                .bind(now())
                .fetch_optional(self.store().pool())
                .await?;
        let Some(row) = row else { return Ok(None) };
        let taken = sqlx::query("DELETE FROM oidc_logins WHERE state_hash = $1")
            .bind(&hash)
            .execute(self.store().pool())
            .await?
            .rows_affected();
        if taken != 1 {
            return Ok(None);
        }
        let Some(kek) = self.kek() else { return Ok(None) };
        let sealed: String = row.try_get("sealed")?;
        let plain = kek.open(LOGIN_PURPOSE, &sealed).map_err(|e| AccountError::Invalid(format!("{e:#}")))?;
        Ok(serde_json::from_slice(&plain).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::accounts::Role;

    fn accounts(store: Store) -> Accounts {
        Accounts::new(store, [9; 32]).with_kek(fhirgate_core::vault::Kek::random())
    }

    crate::store_tests! {
        async fn an_identity_is_its_issuer_and_subject_and_belongs_to_one_user(store) {
            let accounts = accounts(store);
            accounts.create_user("ann", &[Role::Auditor], "t").await.unwrap();
            accounts.create_user("bob", &[Role::Auditor], "t").await.unwrap();
            accounts.bind_identity("ann", "https://idp.example", "248289761001", "t").await.unwrap();
            let ann = accounts.user_by_identity("https://idp.example", "248289761001").await.unwrap().unwrap();
            assert_eq!(ann.username, "ann");
            assert!(accounts.user_by_identity("https://other.example", "248289761001").await.unwrap().is_none());
            assert!(accounts.bind_identity("bob", "https://idp.example", "248289761001", "t").await.is_err());
            accounts.set_active("ann", false, "t").await.unwrap();
            assert!(accounts.user_by_identity("https://idp.example", "248289761001").await.unwrap().is_none());
            assert!(accounts.unbind_identity("ann", "https://idp.example", "248289761001", "t").await.unwrap());
            assert!(accounts.identities("ann").await.unwrap().is_empty());
        }
    }

    crate::store_tests! {
        async fn a_sign_in_under_way_is_taken_once_and_only_for_its_provider(store) {
            let accounts = accounts(store);
            let login = PendingLogin {
                nonce: "n".into(),
                verifier: "v".into(),
                redirect_uri: "https://gw/cb".into(),
                invitation: None,
                return_to: None,
            };
            accounts.begin_login("corp", "state-1", &login).await.unwrap();
            assert!(accounts.take_login("other", "state-1").await.unwrap().is_none());
            assert_eq!(accounts.take_login("corp", "state-1").await.unwrap().unwrap().verifier, "v");
            assert!(accounts.take_login("corp", "state-1").await.unwrap().is_none());
        }
    }
}
