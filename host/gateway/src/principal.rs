//! Who calls the admin API. The listener authenticates each admin request
//! into a [`Principal`] before any handler runs; handlers act as that
//! principal. Today there is one credential, the admin token, whose SHA-256
//! the configuration holds.

use http::HeaderMap;
use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The admin credential: the SHA-256 of the admin token.
#[derive(Clone)]
pub struct AdminAuth {
    token_sha256: [u8; 32],
}

impl AdminAuth {
    pub fn from_hex(hex_digest: &str) -> anyhow::Result<Self> {
        let mut token_sha256 = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut token_sha256)
            .map_err(|_| anyhow::anyhow!("`admin.token_sha256` must be 64 hexadecimal characters"))?;
        Ok(AdminAuth { token_sha256 })
    }

    /// The principal `headers` authenticate as, if any: the admin token as
    /// a bearer token, compared in constant time.
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<Principal> {
        let token = headers.get(AUTHORIZATION).and_then(crate::oauth::bearer_token)?;
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        bool::from(presented.ct_eq(&self.token_sha256)).then_some(Principal::AdminToken)
    }
}

/// Who an admin request comes from, as the listener authenticated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// Whoever holds the admin token.
    AdminToken,
}

impl Principal {
    /// The name the audit trail records changes under.
    pub fn name(self) -> &'static str {
        match self {
            Principal::AdminToken => "admin-api",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_admin_token_authenticates() {
        let auth = AdminAuth::from_hex(&fhirgate_core::digest::sha256_hex(b"the-admin-token")).unwrap();
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, value.parse().unwrap());
            h
        };
        assert_eq!(auth.authenticate(&with("Bearer the-admin-token")), Some(Principal::AdminToken));
        assert_eq!(auth.authenticate(&with("bearer the-admin-token")), Some(Principal::AdminToken));
        assert_eq!(auth.authenticate(&with("Bearer the-admin-token2")), None);
        assert_eq!(auth.authenticate(&with("Basic the-admin-token")), None);
        assert_eq!(auth.authenticate(&HeaderMap::new()), None);
        assert!(AdminAuth::from_hex("not hex").is_err());
    }
}
