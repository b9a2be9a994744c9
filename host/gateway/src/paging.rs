//! Opaque, tamper-proof paging cursors. A provider's `next`/`previous`
//! links name the provider; the app gets a gateway link holding the link
//! sealed (encrypted and authenticated) with a key only the gateway has, bound
//! to the tenant, the client, the face and an expiry. The provider's address never reaches
//! the app, and a cursor cannot be edited or replayed under another tenant.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// The query parameter a page link carries its cursor in.
pub const PAGE_PARAM: &str = "_getpages";

/// How long a cursor can be followed. An hour covers a user scrolling a
/// patient list slowly; the token's own expiry still applies to each request.
pub const CURSOR_LIFETIME_SECONDS: u64 = 3600;

/// Longest link a cursor may hold; provider links are short.
const MAX_LINK: usize = 4096;

/// What a cursor holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Lower-case tenant id the search ran for.
    #[serde(rename = "t")]
    pub tenant: String,
    #[serde(rename = "p")]
    pub provider: String,
    /// The face (`stu3`, `dstu2`) it was issued on.
    #[serde(rename = "f")]
    pub face: String,
    /// The searched resource type, for the audit record.
    #[serde(rename = "r")]
    pub resource_type: Option<String>,
    /// The client the search ran for: a cursor is not shared between apps.
    #[serde(rename = "c")]
    pub client: String,
    /// The provider's link relative to its base: `Patient?name=x&_offset=20`.
    #[serde(rename = "u")]
    pub link: String,
    /// Extra headers the routing module sent with the first page (a
    /// provider may scope requests by them), replayed on every page.
    #[serde(rename = "h", default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// Expiry, Unix seconds.
    #[serde(rename = "e")]
    pub expires_at: u64,
}

/// Why a cursor is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("the page link is not valid")]
    Invalid,
    #[error("the page link has expired; run the search again")]
    Expired,
}

/// Seals and opens cursors.
pub struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl Sealer {
    /// A sealer with a fresh random key (cursors die with the process).
    pub fn random() -> anyhow::Result<Sealer> {
        let rng = SystemRandom::new();
        let mut key = [0u8; 32];
        rng.fill(&mut key).map_err(|_| anyhow::anyhow!("no system randomness"))?;
        Self::from_key(&key)
    }

    /// A sealer with `key` (the data directory's `cursor.key`, so cursors
    /// survive a restart and work across every gateway sharing it).
    pub fn from_key(key: &[u8; 32]) -> anyhow::Result<Sealer> {
        let key = UnboundKey::new(&CHACHA20_POLY1305, key).map_err(|_| anyhow::anyhow!("bad cursor key"))?;
        Ok(Sealer { key: LessSafeKey::new(key), rng: SystemRandom::new() })
    }

    /// The cursor as URL-safe text.
    pub fn seal(&self, cursor: &Cursor) -> Option<String> {
        if cursor.link.len() > MAX_LINK {
            return None;
        }
        let mut data = serde_json::to_vec(cursor).ok()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        self.key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data).ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Some(URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a cursor sealed by [`Sealer::seal`] and not yet expired.
    pub fn open(&self, text: &str, now: u64) -> Result<Cursor, CursorError> {
        if text.len() > MAX_LINK * 2 {
            return Err(CursorError::Invalid);
        }
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| CursorError::Invalid)?;
        if raw.len() < NONCE_LEN {
            return Err(CursorError::Invalid);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CursorError::Invalid)?;
        let mut sealed = sealed.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::empty(), &mut sealed).map_err(|_| CursorError::Invalid)?;
        let cursor: Cursor = serde_json::from_slice(plain).map_err(|_| CursorError::Invalid)?;
        if cursor.expires_at <= now {
            return Err(CursorError::Expired);
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> Cursor {
        Cursor {
            tenant: "3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13".into(),
            provider: "demo".into(),
            face: "stu3".into(),
            resource_type: Some("Patient".into()),
            client: "app".into(),
            link: "Patient?family=chau&_offset=20".into(),
            headers: vec![("x-org".into(), "st-mary".into())],
            expires_at: 2_000,
        }
    }

    #[test]
    fn round_trip_and_opaque() {
        let s = Sealer::random().unwrap();
        let text = s.seal(&cursor()).unwrap();
        assert!(!text.contains("chau") && !text.contains("demo"));
        assert_eq!(s.open(&text, 1_000).unwrap(), cursor());
        // Two seals of the same cursor differ (fresh nonce).
        assert_ne!(text, s.seal(&cursor()).unwrap());
    }

    #[test]
    fn tampering_expiry_and_foreign_keys_are_refused() {
        let s = Sealer::random().unwrap();
        let text = s.seal(&cursor()).unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(&text).unwrap();
        let last = bytes.len() - 20;
        bytes[last] ^= 1;
        assert_eq!(s.open(&URL_SAFE_NO_PAD.encode(bytes), 1_000), Err(CursorError::Invalid));
        assert_eq!(s.open(&text, 2_000), Err(CursorError::Expired));
        assert_eq!(Sealer::random().unwrap().open(&text, 1_000), Err(CursorError::Invalid));
        assert_eq!(s.open("not a cursor", 1_000), Err(CursorError::Invalid));
        assert_eq!(s.open("", 1_000), Err(CursorError::Invalid));
    }
}
