//! Signing keys kept in the store: created on first run, rotated on request;
//! a retired key stays published until every token it signed has expired.

use std::str::FromStr;

use fhirgate_core::clock::now_seconds;
use fhirgate_store::keys::{KeyRepository, KeyRow};
use jsonwebtoken::Algorithm;

use super::keys::{KeyRing, SigningKey};

/// Loads the key ring, creating the first `alg` key if the store has none.
/// Retired keys are published for `publish_seconds` after retirement (the
/// token lifetime plus clock leeway).
pub async fn load_ring(store: &dyn KeyRepository, alg: Algorithm, publish_seconds: u64) -> anyhow::Result<KeyRing> {
    let now = now_seconds() as i64;
    let mut active = None;
    let mut retired = Vec::new();
    for r in store.all().await? {
        let key_alg = Algorithm::from_str(&r.alg)?;
        match r.retired_at {
            None if active.is_none() => active = Some(SigningKey::from_pem(key_alg, &r.private_pem)?),
            Some(at) if at.saturating_add(publish_seconds.min(i64::MAX as u64) as i64) > now => {
                retired.push(SigningKey::from_pem(key_alg, &r.private_pem)?)
            }
            _ => {}
        }
    }
    let active = match active {
        Some(k) => k,
        None => {
            let key = SigningKey::generate_for(alg)?;
            insert(store, &key).await?;
            tracing::info!(kid = key.kid(), alg = ?alg, "created the first token signing key");
            key
        }
    };
    Ok(KeyRing::new(active, retired))
}

async fn insert(store: &dyn KeyRepository, key: &SigningKey) -> anyhow::Result<()> {
    let row = KeyRow {
        kid: key.kid().to_owned(),
        alg: format!("{:?}", key.alg()),
        private_pem: key.private_pem().to_owned(),
        created_at: now_seconds() as i64,
        retired_at: None,
    };
    store.insert(&row).await?;
    Ok(())
}

/// Retires the active keys and creates a new `alg` key; returns the new ring.
pub async fn rotate(store: &dyn KeyRepository, alg: Algorithm, publish_seconds: u64) -> anyhow::Result<KeyRing> {
    let key = SigningKey::generate_for(alg)?;
    store.retire_active(now_seconds() as i64).await?;
    insert(store, &key).await?;
    tracing::info!(target: "fhirgate::audit", event = "signing-key-rotated", kid = key.kid(), "signing key rotated");
    load_ring(store, alg, publish_seconds).await
}
#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rotation_keeps_old_keys_published_for_the_window() {
        let store = fhirgate_store::Store::open("sqlite::memory:").await.unwrap();
        let ring = load_ring(&store, Algorithm::ES256, 3600).await.unwrap();
        let first = ring.active().kid().to_owned();
        // Loading again does not create another key.
        assert_eq!(load_ring(&store, Algorithm::ES256, 3600).await.unwrap().active().kid(), first);

        let ring = rotate(&store, Algorithm::RS256, 3600).await.unwrap();
        assert_ne!(ring.active().kid(), first);
        assert_eq!(ring.active().alg(), Algorithm::RS256);
        assert!(ring.find(&first).is_some(), "the retired key is still published");
        assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 2);

        // With no publication window, the retired key is gone.
        let ring = load_ring(&store, Algorithm::ES256, 0).await.unwrap();
        assert!(ring.find(&first).is_none());
        assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 1);
    }
}
