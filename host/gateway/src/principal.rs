//! Who calls the admin API. The listener authenticates each admin request
//! into a [`Principal`] before any handler runs; handlers act as that
//! principal. Two credentials: a user's personal API token (the user acts
//! within their roles, and changes are attributed to them), and the shared
//! admin token, whose SHA-256 the configuration holds.

use fhirgate_store::accounts::{Accounts, Role, User};
use http::HeaderMap;
use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The admin credentials: the SHA-256 of the admin token, and the accounts
/// whose personal API tokens are accepted.
#[derive(Clone)]
pub struct AdminAuth {
    /// The break-glass token's digest; `None` when only people sign in.
    token_sha256: Option<[u8; 32]>,
    accounts: Option<Accounts>,
    /// How recent a session's sign-in must be for sensitive changes.
    reauth_seconds: u64,
    /// The OpenID Connect providers people sign in through.
    oidc: std::sync::Arc<crate::oidc::Oidc>,
}

impl AdminAuth {
    pub fn from_hex(hex_digest: &str) -> anyhow::Result<Self> {
        let mut token_sha256 = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut token_sha256)
            .map_err(|_| anyhow::anyhow!("`admin.token_sha256` must be 64 hexadecimal characters"))?;
        Ok(AdminAuth {
            token_sha256: Some(token_sha256),
            accounts: None,
            reauth_seconds: 300,
            oidc: Default::default(),
        })
    }

    /// With the break-glass token whose digest is `hex_digest`, if any.
    pub fn from_config(hex_digest: Option<&str>) -> anyhow::Result<Self> {
        match hex_digest {
            Some(hex) => Self::from_hex(hex),
            None => Ok(AdminAuth { token_sha256: None, accounts: None, reauth_seconds: 300, oidc: Default::default() }),
        }
    }

    /// People may also sign in through these OpenID Connect providers.
    pub fn with_oidc(mut self, oidc: crate::oidc::Oidc) -> Self {
        self.oidc = std::sync::Arc::new(oidc);
        self
    }

    pub fn oidc(&self) -> &crate::oidc::Oidc {
        &self.oidc
    }

    /// Sensitive changes through a session need a sign-in at most this old.
    pub fn with_reauth_seconds(mut self, seconds: u64) -> Self {
        self.reauth_seconds = seconds;
        self
    }

    /// Whether `principal` signed in too long ago for a sensitive change.
    pub fn needs_reauth(&self, principal: &Principal) -> bool {
        match principal {
            Principal::Session(_, at) => {
                fhirgate_core::clock::now_seconds().saturating_sub(u64::try_from(*at).unwrap_or(0))
                    > self.reauth_seconds
            }
            _ => false,
        }
    }

    /// Also accepts the personal API tokens of `accounts`' users.
    pub fn with_accounts(mut self, accounts: Accounts) -> Self {
        self.accounts = Some(accounts);
        self
    }

    /// The accounts whose tokens are accepted, when there are.
    pub fn accounts(&self) -> Option<&Accounts> {
        self.accounts.as_ref()
    }

    /// The principal `headers` authenticate as, if any: a user's live
    /// personal API token, or the admin token (compared in constant time),
    /// as a bearer token; else a signed-in user's session cookie, with its
    /// CSRF token in `X-CSRF-Token` unless the request only reads (`safe`).
    /// `Err` when the store cannot say.
    pub async fn authenticate(&self, headers: &HeaderMap, safe: bool) -> anyhow::Result<Option<Principal>> {
        let Some(token) = headers.get(AUTHORIZATION).and_then(crate::oauth::bearer_token) else {
            let (Some(accounts), Some(session)) = (&self.accounts, session_cookie(headers)) else {
                return Ok(None);
            };
            let csrf_ok = safe
                || headers
                    .get("x-csrf-token")
                    .is_some_and(|v| bool::from(v.as_bytes().ct_eq(accounts.csrf(session).as_bytes())));
            if !csrf_ok {
                return Ok(None);
            }
            return Ok(accounts.session(session).await?.map(|(user, at)| Principal::Session(user, at)));
        };
        if let Some(accounts) = &self.accounts
            && token.starts_with(fhirgate_store::accounts::TOKEN_PREFIX)
        {
            return Ok(accounts.authenticate(token).await?.map(Principal::User));
        }
        let Some(expected) = &self.token_sha256 else { return Ok(None) };
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        Ok(bool::from(presented.ct_eq(expected)).then_some(Principal::AdminToken))
    }
}

/// The session cookie's name: `__Host-` so it is set only over HTTPS, for
/// this host and path `/`.
pub const SESSION_COOKIE: &str = "__Host-fhirgate-session";

/// A `Set-Cookie` value for a `__Host-` cookie: this host only, path `/`,
/// `Secure`, `HttpOnly`, with `same_site` (`Strict` or `Lax`); a `max_age`
/// of 0 removes it.
pub fn host_cookie(name: &str, value: &str, same_site: &str, max_age: i64) -> String {
    format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite={same_site}; Max-Age={max_age}")
}

/// The `Set-Cookie` value of a session (or, with an empty `value` and a
/// `max_age` of 0, of its removal).
pub fn session_set_cookie(value: &str, max_age: i64) -> String {
    host_cookie(SESSION_COOKIE, value, "Strict", max_age)
}

/// The session id in the request's cookies, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, SESSION_COOKIE)
}

/// The value of cookie `wanted` in the request's cookies, if any.
pub fn cookie<'h>(headers: &'h HeaderMap, wanted: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| value)
}

/// Who an admin request comes from, as the listener authenticated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Whoever holds the shared admin token.
    AdminToken,
    /// A user, by their personal API token.
    User(User),
    /// A user signed in through a session, and when they signed in.
    Session(User, i64),
}

impl Principal {
    /// The name the audit trail records changes under.
    pub fn name(&self) -> &str {
        match self {
            Principal::AdminToken => "admin-api",
            Principal::User(u) | Principal::Session(u, _) => &u.username,
        }
    }

    /// Whether this is a signed-in user (whose name is who acts), rather
    /// than the shared token (whose requests name their actor).
    pub fn user(&self) -> Option<&User> {
        match self {
            Principal::User(u) | Principal::Session(u, _) => Some(u),
            Principal::AdminToken => None,
        }
    }

    /// Whether the principal holds `role`.
    pub fn has(&self, role: &Role) -> bool {
        self.user().is_some_and(|u| u.roles.contains(role))
    }

    /// Whether the principal may do anything an operator may.
    pub fn is_operator(&self) -> bool {
        matches!(self, Principal::AdminToken) || self.has(&Role::Operator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_admin_token_authenticates() {
        let auth = AdminAuth::from_hex(&fhirgate_core::digest::sha256_hex(b"the-admin-token")).unwrap();
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, value.parse().unwrap());
            h
        };
        let who = async |h: HeaderMap| auth.authenticate(&h, false).await.unwrap();
        assert_eq!(who(with("Bearer the-admin-token")).await, Some(Principal::AdminToken));
        assert_eq!(who(with("bearer the-admin-token")).await, Some(Principal::AdminToken));
        assert_eq!(who(with("Bearer the-admin-token2")).await, None);
        assert_eq!(who(with("Basic the-admin-token")).await, None);
        assert_eq!(who(HeaderMap::new()).await, None);
        assert!(AdminAuth::from_hex("not hex").is_err());
    }
}
