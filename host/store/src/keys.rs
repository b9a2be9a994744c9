//! Signing keys in the store, as rows: the private key (PKCS#8 PEM sealed
//! under the key-encryption key), its
//! algorithm, and when it was created and retired. What a key ring is made
//! of them is the authorization server's business.

use sqlx::Row;

use super::changes::Topic;
use super::{RepoFuture, Store};

/// One stored signing key.
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub kid: String,
    /// The JOSE algorithm name (`ES256`, `RS256`).
    pub alg: String,
    /// PKCS#8 PEM of the private key, sealed under the key-encryption key
    /// (plain in rows written by earlier versions). Never logged.
    pub private_pem: String,
    pub created_at: i64,
    /// When the key stopped signing; `None` for the active key.
    pub retired_at: Option<i64>,
}

/// Where signing keys are kept.
pub trait KeyRepository: Send + Sync {
    /// Every stored key, newest first.
    fn all(&self) -> RepoFuture<'_, Vec<KeyRow>>;
    /// Adds a key.
    fn insert<'a>(&'a self, key: &'a KeyRow) -> RepoFuture<'a, ()>;
    /// Retires every key still signing, as of `at`.
    fn retire_active(&self, at: i64) -> RepoFuture<'_, ()>;
    /// Replaces key `kid`'s private key text (to seal a plain one).
    fn reseal<'a>(&'a self, kid: &'a str, private_pem: &'a str) -> RepoFuture<'a, ()>;
    /// Makes `key` the one that signs, in one transaction: with
    /// `retire_at`, after retiring every key still signing (a rotation);
    /// without, only if none signs yet (the first key: `false` when another
    /// gateway made one first, and nothing is written).
    fn install<'a>(&'a self, key: &'a KeyRow, retire_at: Option<i64>) -> RepoFuture<'a, bool>;
}

impl KeyRepository for Store {
    fn install<'a>(&'a self, key: &'a KeyRow, retire_at: Option<i64>) -> RepoFuture<'a, bool> {
        Box::pin(async move {
            let mut tx = self.begin_write().await?;
            match retire_at {
                Some(at) => {
                    sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                }
                None => {
                    let signing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE retired_at IS NULL")
                        .fetch_one(&mut *tx)
                        .await?;
                    if signing > 0 {
                        return Ok(false);
                    }
                }
            }
            sqlx::query(
                "INSERT INTO signing_keys (kid, alg, private_pem, created_at, retired_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&key.kid)
            .bind(&key.alg)
            .bind(&key.private_pem)
            .bind(key.created_at)
            .bind(key.retired_at)
            .execute(&mut *tx)
            .await?;
            super::changes::announce(&mut tx, Topic::Keys).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn all(&self) -> RepoFuture<'_, Vec<KeyRow>> {
        Box::pin(async move { Ok(all(self).await?) })
    }

    fn insert<'a>(&'a self, key: &'a KeyRow) -> RepoFuture<'a, ()> {
        Box::pin(async move {
            insert(self, key).await?;
            self.announce(Topic::Keys).await?;
            Ok(())
        })
    }

    fn retire_active(&self, at: i64) -> RepoFuture<'_, ()> {
        Box::pin(async move {
            retire_active(self, at).await?;
            self.announce(Topic::Keys).await?;
            Ok(())
        })
    }

    fn reseal<'a>(&'a self, kid: &'a str, private_pem: &'a str) -> RepoFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query("UPDATE signing_keys SET private_pem = $1 WHERE kid = $2")
                .bind(private_pem)
                .bind(kid)
                .execute(self.pool())
                .await?;
            Ok(())
        })
    }
}

/// Every stored key, newest first.
async fn all(store: &Store) -> Result<Vec<KeyRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT kid, alg, private_pem, created_at, retired_at FROM signing_keys ORDER BY created_at DESC, kid",
    )
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(KeyRow {
                kid: r.try_get("kid")?,
                alg: r.try_get("alg")?,
                private_pem: r.try_get("private_pem")?,
                created_at: r.try_get("created_at")?,
                retired_at: r.try_get("retired_at")?,
            })
        })
        .collect()
}

/// Adds a key.
async fn insert(store: &Store, key: &KeyRow) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO signing_keys (kid, alg, private_pem, created_at, retired_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(&key.private_pem)
        .bind(key.created_at)
        .bind(key.retired_at)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Retires every key still signing, as of `at`.
async fn retire_active(store: &Store, at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
        .bind(at)
        .execute(store.pool())
        .await?;
    Ok(())
}
