//! Signing in with a local account: a password (argon2id), a TOTP second
//! factor (RFC 6238: HMAC-SHA1, 30 s steps, 6 digits; its secret sealed
//! under the key-encryption key; each code works once), and server-side
//! sessions (stored hashed, with an idle and an absolute expiry).

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha1::Sha1;
use sqlx::Row;

use super::accounts::{AccountError, Accounts, Role, User};
use fhirgate_core::clock::now_seconds;

/// A session ends after this long without a request.
pub const SESSION_IDLE_SECONDS: i64 = 30 * 60;
/// A session ends this long after sign-in, however busy.
pub const SESSION_MAX_SECONDS: i64 = 12 * 3600;
/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;
const TOTP_STEP: u64 = 30;

fn now() -> i64 {
    now_seconds() as i64
}

/// The TOTP code of `secret` at time step `step` (six digits).
pub fn totp(secret: &[u8], step: u64) -> u32 {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = (h[19] & 0x0f) as usize;
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    bin % 1_000_000
}

/// RFC 4648 base32 without padding, as authenticator apps read secrets.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut out, mut buf, mut bits) = (String::new(), 0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buf >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
        buf &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// A hash to verify against when the user does not exist, so an unknown
/// name costs the same as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(b"no such user", &salt).map(|h| h.to_string()).unwrap_or_default()
    })
}

/// A password has at least [`MIN_PASSWORD_CHARS`] characters (and at most
/// 1024, so hashing it stays cheap).
pub(crate) fn check_password(password: &str) -> Result<(), AccountError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(AccountError::Invalid(format!("a password has at least {MIN_PASSWORD_CHARS} characters")));
    }
    if chars > 1024 {
        return Err(AccountError::Invalid("a password has at most 1024 characters".into()));
    }
    Ok(())
}

impl Accounts {
    /// Sets `username`'s password (at least [`MIN_PASSWORD_CHARS`]
    /// characters), stored as an argon2id hash.
    pub async fn set_password(&self, username: &str, password: &str, actor: &str) -> Result<(), AccountError> {
        check_password(password)?;
        let user = self.user(username).await?;
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| AccountError::Invalid(format!("hashing the password: {e}")))?
            .to_string();
        sqlx::query("UPDATE users SET password_hash = $1 WHERE user_id = $2")
            .bind(hash)
            .bind(&user.user_id)
            .execute(self.store().pool())
            .await?;
        self.audit(actor, "user-password-set", username, json!({})).await
    }

    /// Enrolls `username` in a TOTP second factor (replacing any earlier
    /// one): the `otpauth://` URI an authenticator app reads, shown once.
    pub async fn enroll_totp(&self, username: &str, actor: &str) -> Result<String, AccountError> {
        let kek = self.kek().ok_or_else(|| AccountError::Invalid("no key-encryption key to seal the secret".into()))?;
        let user = self.user(username).await?;
        let secret: [u8; 20] = fhirgate_core::secret::random_key()[..20].try_into().expect("20 of 32 bytes");
        let sealed = kek
            .seal(&format!("totp:{}", user.user_id), &secret)
            .map_err(|e| AccountError::Invalid(format!("sealing the secret: {e}")))?;
        sqlx::query("UPDATE users SET totp_secret = $1, totp_last_step = NULL WHERE user_id = $2")
            .bind(sealed)
            .bind(&user.user_id)
            .execute(self.store().pool())
            .await?;
        self.audit(actor, "user-totp-enrolled", username, json!({})).await?;
        let label: String = form_label(username);
        Ok(format!(
            "otpauth://totp/fhirgate:{label}?secret={}&issuer=fhirgate&algorithm=SHA1&digits=6&period=30",
            base32(&secret)
        ))
    }

    /// Signs `username` in with `password` and, when they have one (an
    /// operator must), a current TOTP `code` not used before. The user and
    /// a new session id; `None` when any of it is wrong.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        code: Option<&str>,
    ) -> Result<Option<(User, String)>, AccountError> {
        let row = sqlx::query(
            "SELECT user_id, password_hash, totp_secret, totp_last_step FROM users WHERE username = $1 \
             AND status = 'active'",
        )
        .bind(username)
        .fetch_optional(self.store().pool())
        .await?;
        let stored: Option<String> = match &row {
            Some(r) => r.try_get("password_hash")?,
            None => None,
        };
        let hash_text = stored.as_deref().unwrap_or_else(|| decoy_hash());
        let password_ok = PasswordHash::new(hash_text)
            .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
            .unwrap_or(false);
        let (Some(row), true, true) = (row, password_ok, stored.is_some()) else { return Ok(None) };
        let user_id: String = row.try_get("user_id")?;
        let user = self.user(username).await?;
        let sealed: Option<String> = row.try_get("totp_secret")?;
        match (sealed, code) {
            (Some(sealed), Some(code)) => {
                let Some(kek) = self.kek() else { return Ok(None) };
                let Ok(secret) = kek.open(&format!("totp:{user_id}"), &sealed) else { return Ok(None) };
                let last: Option<i64> = row.try_get("totp_last_step")?;
                let Some(step) = matching_step(&secret, code.trim(), now() as u64) else { return Ok(None) };
                if last.is_some_and(|l| step as i64 <= l) {
                    return Ok(None);
                }
                // The step is taken only once, even by two sign-ins at the same time.
                let taken = sqlx::query(
                    "UPDATE users SET totp_last_step = $1 WHERE user_id = $2 \
                     AND (totp_last_step IS NULL OR totp_last_step < $1)",
                )
                .bind(step as i64)
                .bind(&user_id)
                .execute(self.store().pool())
                .await?;
                if taken.rows_affected() == 0 {
                    return Ok(None);
                }
            }
            (Some(_), None) => return Ok(None),
            (None, _) if user.roles.contains(&Role::Operator) => {
                return Err(AccountError::Invalid(
                    "an operator signs in with a second factor: enroll one with `fhirgate user totp`".into(),
                ));
            }
            (None, _) => {}
        }
        let token = self.new_session(&user, json!({ "with": "password" })).await?;
        Ok(Some((user, token)))
    }

    /// A new session for `user` (who just proved who they are, `how`): its
    /// id, to be sent as the session cookie.
    pub async fn new_session(&self, user: &User, how: serde_json::Value) -> Result<String, AccountError> {
        let token = fhirgate_core::secret::generate_secret();
        let at = now();
        sqlx::query(
            "INSERT INTO sessions (hash, user_id, created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $3, $4)",
        )
        .bind(self.hash(&token))
        .bind(&user.user_id)
        .bind(at)
        .bind(at + SESSION_MAX_SECONDS)
        .execute(self.store().pool())
        .await?;
        self.audit(&user.username, "user-signed-in", &user.username, how).await?;
        Ok(token)
    }

    /// The active user of a live session, and when they signed in; its idle
    /// clock is reset (at most once a minute).
    pub async fn session(&self, token: &str) -> Result<Option<(User, i64)>, AccountError> {
        let at = now();
        let row = sqlx::query(
            "SELECT s.hash, s.created_at, s.last_seen_at, u.username FROM sessions s \
             JOIN users u ON u.user_id = s.user_id \
             WHERE s.hash = $1 AND s.expires_at > $2 AND s.last_seen_at > $3 AND u.status = 'active'",
        )
        .bind(self.hash(token))
        .bind(at)
        .bind(at - SESSION_IDLE_SECONDS)
        .fetch_optional(self.store().pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let seen: i64 = row.try_get("last_seen_at")?;
        if at - seen >= 60 {
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE hash = $2")
                .bind(at)
                .bind(row.try_get::<String, _>("hash")?)
                .execute(self.store().pool())
                .await?;
        }
        let username: String = row.try_get("username")?;
        Ok(Some((self.user(&username).await?, row.try_get("created_at")?)))
    }

    /// Ends every session of `user_id` (their privileges changed: they sign
    /// in again and get a new session id).
    pub(crate) async fn end_sessions(&self, user_id: &str) -> Result<(), AccountError> {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id).execute(self.store().pool()).await?;
        Ok(())
    }

    /// Ends a session.
    pub async fn sign_out(&self, token: &str) -> Result<(), AccountError> {
        sqlx::query("DELETE FROM sessions WHERE hash = $1").bind(self.hash(token)).execute(self.store().pool()).await?;
        Ok(())
    }

    /// The CSRF token of a session: sent back in `X-CSRF-Token` with every
    /// request that changes something.
    pub fn csrf(&self, session: &str) -> String {
        self.hash(&format!("csrf:{session}"))
    }
}

/// The time step within one step of `now` whose code is `code`.
fn matching_step(secret: &[u8], code: &str, now: u64) -> Option<u64> {
    let code: u32 = code.parse().ok().filter(|_| code.len() == 6)?;
    let step = now / TOTP_STEP;
    [step.saturating_sub(1), step, step + 1].into_iter().find(|s| totp(secret, *s) == code)
}

fn form_label(username: &str) -> String {
    username
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_matches_rfc_6238() {
        // RFC 6238 appendix B, SHA-1 secret, T = 59 s and 1111111109 s (last six digits).
        let secret = b"12345678901234567890";
        assert_eq!(totp(secret, 59 / 30), 287_082);
        assert_eq!(totp(secret, 1_111_111_109 / 30), 81_804);
        assert_eq!(base32(b"12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(matching_step(secret, "287082", 59), Some(1));
        assert_eq!(matching_step(secret, "287082", 59 + 90), None, "too late");
        assert_eq!(matching_step(secret, "28708", 59), None);
    }
}
