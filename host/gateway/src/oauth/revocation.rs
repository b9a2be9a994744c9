//! Revoked access tokens, by `jti`, kept until they would have expired anyway.

use std::collections::HashMap;
use std::sync::RwLock;

use fhirgate_core::clock::now_seconds;

/// The revoked tokens this gateway knows of. Each entry lives until its
/// token's `exp`, so the list stays as small as the set of live tokens.
#[derive(Default)]
pub struct RevocationList {
    /// `jti` → `exp`.
    entries: RwLock<HashMap<String, u64>>,
}

impl RevocationList {
    /// Revokes the token `jti`, which expires at `exp` (Unix seconds).
    pub fn revoke(&self, jti: &str, exp: u64) {
        let now = now_seconds();
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, e| *e > now);
        if exp > now {
            entries.insert(jti.to_owned(), exp);
        }
    }

    /// Whether the token `jti` was revoked.
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).contains_key(jti)
    }
}
