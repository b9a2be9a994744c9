//! The keys the gateway authenticates to providers with under
//! `private_key_jwt`: made when a provider is declared with that method,
//! kept sealed in the store, the newest signing, every key not yet retired
//! published as the provider's JWK Set (the URL the hospital registers).

use std::collections::HashMap;

use anyhow::Context as _;
use fhirgate_core::vault::Kek;
use fhirgate_store::directory::{DirectoryTx, UpstreamKeyRow};
use fhirgate_upstream::{ASSERTION_ALGORITHM, AssertionKey};
use serde_json::{Value, json};

/// The purpose assertion keys are sealed for.
const PURPOSE: &str = "upstream-assertion-key";

/// The path of a provider's JWK Set on the gateway's public address.
pub fn jwks_path(provider: &str) -> String {
    format!("/providers/{provider}/jwks.json")
}

/// How long a replaced key stays in the JWK Set by default: a day, so a
/// hospital that caches the set has fetched the new key before the old one
/// goes (and assertions signed just before the rotation still verify).
pub const DEFAULT_OVERLAP_SECONDS: i64 = 86_400;

/// Every provider's keys, opened.
#[derive(Debug, Default)]
pub struct ProviderKeys {
    /// Provider → its newest key.
    current: HashMap<String, AssertionKey>,
    /// Provider → its published public keys, newest first.
    published: HashMap<String, Vec<Value>>,
}

impl ProviderKeys {
    /// Opens `rows` with `kek`; keys retired by `now` are left out. A key
    /// that does not open is logged and skipped: its provider is then
    /// refused with a clear error rather than signing with another key.
    pub fn open(rows: &[UpstreamKeyRow], kek: &Kek, now: i64) -> ProviderKeys {
        let mut keys = ProviderKeys::default();
        // The current key (not retiring) first, then the newest: two keys
        // made in the same second are told apart by which one is current.
        let mut rows: Vec<&UpstreamKeyRow> = rows.iter().filter(|r| r.retire_at.is_none_or(|at| at > now)).collect();
        rows.sort_by_key(|r| (r.retire_at.is_some(), std::cmp::Reverse(r.created_at)));
        for row in rows {
            let opened =
                kek.open(PURPOSE, &row.sealed_key).and_then(|der| AssertionKey::from_pkcs8(&der)).and_then(|key| {
                    if key.kid() == row.kid { Ok(key) } else { anyhow::bail!("its key id does not match") }
                });
            match opened {
                Ok(key) => {
                    keys.published.entry(row.provider_id.clone()).or_default().push(key.public_jwk());
                    if row.retire_at.is_none() {
                        keys.current.entry(row.provider_id.clone()).or_insert(key);
                    }
                }
                Err(e) => tracing::error!(provider = %row.provider_id, kid = %row.kid, error = %format!("{e:#}"),
                    "an assertion key does not open; the provider cannot be reached with it"),
            }
        }
        keys
    }

    /// Keeps only the keys of providers for which `uses` holds (those that
    /// authenticate with `private_key_jwt` now): no key set is published
    /// for a provider that no longer signs with it.
    pub fn retain(&mut self, uses: impl Fn(&str) -> bool) {
        self.current.retain(|p, _| uses(p));
        self.published.retain(|p, _| uses(p));
    }

    /// The key `provider`'s assertions are signed with.
    pub fn current(&self, provider: &str) -> Option<&AssertionKey> {
        self.current.get(provider)
    }

    /// `provider`'s JWK Set, if it has keys.
    pub fn jwks(&self, provider: &str) -> Option<Value> {
        self.published.get(provider).map(|keys| json!({ "keys": keys }))
    }
}

impl super::Directory {
    /// After `spec` was stored for `id`: makes its assertion key if it
    /// authenticates with one and has none yet.
    pub(crate) async fn ensure_assertion_key(
        &self,
        tx: &mut dyn DirectoryTx,
        id: &str,
        spec: &super::ProviderSpec,
        actor: &str,
    ) -> anyhow::Result<()> {
        if !spec.uses_assertion_key() {
            return Ok(());
        }
        if let Some(kid) = ensure_key(tx, id, &self.kek).await? {
            let detail = json!({ "kid": kid, "alg": ASSERTION_ALGORITHM });
            tx.record_event(actor, "provider.key-created", &format!("provider:{id}"), &detail).await?;
        }
        Ok(())
    }

    /// Replaces provider `id`'s assertion key; the old one stays in the JWK
    /// Set for `overlap_seconds`. Returns the new key's id.
    pub async fn rotate_assertion_key(
        &self,
        id: &str,
        overlap_seconds: i64,
        actor: &str,
    ) -> Result<String, super::onboarding::DirectoryError> {
        use super::onboarding::DirectoryError;
        if !(0..=30 * 86_400).contains(&overlap_seconds) {
            return Err(DirectoryError::Invalid("The overlap is between 0 seconds and 30 days.".into()));
        }
        let mut tx = self.repo().write().await?;
        let row = tx.provider(id).await?.ok_or_else(|| DirectoryError::NotFound(format!("No provider `{id}`.")))?;
        let spec = super::ProviderSpec::from_json(&row.spec)?;
        if !spec.uses_assertion_key() {
            return Err(DirectoryError::Conflict(format!(
                "Provider `{id}` does not authenticate with private_key_jwt, so the gateway holds no key for it."
            )));
        }
        let kid = rotate_key(&mut *tx, id, &self.kek, overlap_seconds).await?;
        let detail = json!({ "kid": kid, "alg": ASSERTION_ALGORITHM, "overlap_seconds": overlap_seconds });
        tx.record_event(actor, "provider.key-rotated", &format!("provider:{id}"), &detail).await?;
        self.commit(tx).await?;
        Ok(kid)
    }
}

/// Makes a key for `provider` unless it has a current one; returns the new
/// key's id.
pub(crate) async fn ensure_key(tx: &mut dyn DirectoryTx, provider: &str, kek: &Kek) -> anyhow::Result<Option<String>> {
    let rows = tx.upstream_keys().await?;
    if rows.iter().any(|r| r.provider_id == provider && r.retire_at.is_none()) {
        return Ok(None);
    }
    add_key(tx, provider, kek).await.map(Some)
}

/// Makes a new current key for `provider`; the keys it replaces stay in the
/// JWK Set for `overlap_seconds`.
pub(crate) async fn rotate_key(
    tx: &mut dyn DirectoryTx,
    provider: &str,
    kek: &Kek,
    overlap_seconds: i64,
) -> anyhow::Result<String> {
    let kid = add_key(tx, provider, kek).await?;
    let now = fhirgate_core::clock::now_seconds() as i64;
    tx.retire_upstream_keys(provider, &kid, now.saturating_add(overlap_seconds)).await?;
    Ok(kid)
}

async fn add_key(tx: &mut dyn DirectoryTx, provider: &str, kek: &Kek) -> anyhow::Result<String> {
    let made = AssertionKey::generate()?;
    let sealed = kek.seal(PURPOSE, &made.pkcs8).context("sealing the new assertion key")?;
    let row = UpstreamKeyRow {
        kid: made.key.kid().to_owned(),
        provider_id: provider.to_owned(),
        algorithm: ASSERTION_ALGORITHM.to_owned(),
        sealed_key: sealed,
        public_jwk: made.key.public_jwk().to_string(),
        created_at: fhirgate_core::clock::now_seconds() as i64,
        retire_at: None,
    };
    tx.insert_upstream_key(&row).await?;
    Ok(row.kid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(provider: &str, kek: &Kek, created_at: i64, retire_at: Option<i64>) -> UpstreamKeyRow {
        let made = AssertionKey::generate().unwrap();
        UpstreamKeyRow {
            kid: made.key.kid().to_owned(),
            provider_id: provider.into(),
            algorithm: ASSERTION_ALGORITHM.into(),
            sealed_key: kek.seal(PURPOSE, &made.pkcs8).unwrap(),
            public_jwk: made.key.public_jwk().to_string(),
            created_at,
            retire_at,
        }
    }

    #[test]
    fn the_newest_key_signs_and_retiring_ones_stay_published_until_their_time() {
        let kek = Kek::random();
        let old = row("a", &kek, 2, Some(200)); // replaced in the second the new one was made
        let gone = row("a", &kek, 0, Some(50));
        let new = row("a", &kek, 2, None);
        let keys = ProviderKeys::open(&[gone.clone(), old.clone(), new.clone()], &kek, 100);
        assert_eq!(keys.current("a").unwrap().kid(), new.kid);
        let jwks = keys.jwks("a").unwrap();
        let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert_eq!(kids, [new.kid.as_str(), old.kid.as_str()]);
        assert!(jwks.to_string().find("\"d\"").is_none(), "no private part is published");
        assert!(keys.jwks("b").is_none());

        // Under another KEK nothing opens, and nothing signs.
        let keys = ProviderKeys::open(&[new], &Kek::random(), 100);
        assert!(keys.current("a").is_none());
    }
}
