//! Signing keys kept in the store, sealed under the key-encryption key:
//! created on first run, rotated on request; a retired key stays published
//! until every token it signed has expired.

use std::str::FromStr;

use fhirgate_core::clock::now_seconds;
use fhirgate_core::vault::{self, Kek};
use fhirgate_store::keys::{KeyRepository, KeyRow};
use jsonwebtoken::Algorithm;

use super::keys::{KeyRing, SigningKey};

/// Loads the key ring, creating the first `alg` key if the store has none.
/// Retired keys are published for `publish_seconds` after retirement (the
/// token lifetime plus clock leeway).
pub async fn load_ring(
    store: &dyn KeyRepository,
    kek: &Kek,
    alg: Algorithm,
    publish_seconds: u64,
) -> anyhow::Result<KeyRing> {
    let now = now_seconds() as i64;
    let mut active = None;
    let mut retired = Vec::new();
    for r in store.all().await? {
        let key_alg = Algorithm::from_str(&r.alg)?;
        let published = match r.retired_at {
            None => active.is_none(),
            Some(at) => at.saturating_add(publish_seconds.min(i64::MAX as u64) as i64) > now,
        };
        if !published {
            continue;
        }
        let key = SigningKey::from_pem(key_alg, &open(store, kek, &r).await?)?;
        match r.retired_at {
            None => active = Some(key),
            Some(_) => retired.push(key),
        }
    }
    let active = match active {
        Some(k) => k,
        None => {
            let key = SigningKey::generate_for(alg)?;
            if !store.install(&row_of(kek, &key)?, None).await? {
                // Another gateway sharing the store made the first key
                // meanwhile: that one signs.
                return Box::pin(load_ring(store, kek, alg, publish_seconds)).await;
            }
            tracing::info!(kid = key.kid(), alg = ?alg, "created the first token signing key");
            key
        }
    };
    Ok(KeyRing::new(active, retired))
}

/// The PEM of a stored key; a plain one (written by an earlier version) is
/// sealed in the store on the way.
async fn open(store: &dyn KeyRepository, kek: &Kek, row: &KeyRow) -> anyhow::Result<String> {
    let purpose = purpose(&row.kid);
    if vault::is_sealed(&row.private_pem) {
        let pem = kek.open(&purpose, &row.private_pem)?;
        return String::from_utf8(pem).map_err(|_| anyhow::anyhow!("{purpose}: not PEM"));
    }
    store.reseal(&row.kid, &kek.seal(&purpose, row.private_pem.as_bytes())?).await?;
    Ok(row.private_pem.clone())
}

fn purpose(kid: &str) -> String {
    format!("signing-key:{kid}")
}

/// The row of a new signing key, its private key sealed.
fn row_of(kek: &Kek, key: &SigningKey) -> anyhow::Result<KeyRow> {
    Ok(KeyRow {
        kid: key.kid().to_owned(),
        alg: format!("{:?}", key.alg()),
        private_pem: kek.seal(&purpose(key.kid()), key.private_pem().as_bytes())?,
        created_at: now_seconds() as i64,
        retired_at: None,
    })
}

/// Retires the active keys and creates a new `alg` key; returns the new ring.
pub async fn rotate(
    store: &dyn KeyRepository,
    kek: &Kek,
    alg: Algorithm,
    publish_seconds: u64,
) -> anyhow::Result<KeyRing> {
    let key = SigningKey::generate_for(alg)?;
    // Retired and replaced in one transaction: a replica reloading in
    // between never sees no key signing (and makes one of its own).
    store.install(&row_of(kek, &key)?, Some(now_seconds() as i64)).await?;
    tracing::info!(target: "fhirgate::audit", event = "signing-key-rotated", kid = key.kid(), "signing key rotated");
    load_ring(store, kek, alg, publish_seconds).await
}
#[cfg(test)]
mod tests {
    use super::*;

    fhirgate_store::store_tests! {
        async fn rotation_keeps_old_keys_published_for_the_window(store) {
                    let kek = Kek::random();
            let ring = load_ring(&store, &kek, Algorithm::ES256, 3600).await.unwrap();
            let first = ring.active().kid().to_owned();
            // Loading again does not create another key.
            assert_eq!(load_ring(&store, &kek, Algorithm::ES256, 3600).await.unwrap().active().kid(), first);

            let ring = rotate(&store, &kek, Algorithm::RS256, 3600).await.unwrap();
            assert_ne!(ring.active().kid(), first);
            assert_eq!(ring.active().alg(), Algorithm::RS256);
            assert!(ring.find(&first).is_some(), "the retired key is still published");
            assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 2);

            // With no publication window, the retired key is gone.
            let ring = load_ring(&store, &kek, Algorithm::ES256, 0).await.unwrap();
            assert!(ring.find(&first).is_none());
            assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 1);
        }
    }

    fhirgate_store::store_tests! {
        async fn keys_are_stored_sealed_and_plain_ones_are_sealed_on_load(store) {
                    let kek = Kek::random();
            let ring = load_ring(&store, &kek, Algorithm::ES256, 3600).await.unwrap();
            let rows = store.all().await.unwrap();
            assert!(vault::is_sealed(&rows[0].private_pem) && !rows[0].private_pem.contains("PRIVATE KEY"));
            assert!(load_ring(&store, &Kek::random(), Algorithm::ES256, 3600).await.is_err(), "another KEK");

            // A row written in plain text by an earlier version.
            let plain = SigningKey::generate_for(Algorithm::ES256).unwrap();
            store.retire_active(now_seconds() as i64).await.unwrap();
            let row = KeyRow {
                kid: plain.kid().to_owned(),
                alg: "ES256".into(),
                private_pem: plain.private_pem().to_owned(),
                created_at: now_seconds() as i64 + 1,
                retired_at: None,
            };
            store.insert(&row).await.unwrap();
            let again = load_ring(&store, &kek, Algorithm::ES256, 3600).await.unwrap();
            assert_eq!(again.active().kid(), plain.kid());
            assert!(again.find(ring.active().kid()).is_some());
            assert!(store.all().await.unwrap().iter().all(|r| vault::is_sealed(&r.private_pem)));
        }
    }
}
