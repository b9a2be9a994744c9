//! Modules and policy activations kept in the database, for replicas that
//! share it: an uploaded module by its SHA-256, and every activation as the
//! policy text that serves, numbered. The newest activation is the one every
//! replica serves; a new one is announced ([`Topic::Modules`]).

use std::collections::HashMap;

use sqlx::Row as _;

use crate::Store;
use crate::changes::{Topic, announce};

/// One activation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationRow {
    pub generation: i64,
    pub policy: String,
    /// `file`, `upload` or `rollback`.
    pub kind: String,
    pub at: i64,
    pub actor: String,
}

fn row(r: &sqlx::any::AnyRow) -> Result<ActivationRow, sqlx::Error> {
    Ok(ActivationRow {
        generation: r.try_get("generation")?,
        policy: r.try_get("policy")?,
        kind: r.try_get("kind")?,
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
    })
}

const COLUMNS: &str = "generation, policy, kind, at, actor";

impl Store {
    /// Keeps module `bytes` (SHA-256 `sha256`, named `name`); one already
    /// kept is left as it is.
    pub async fn put_module(&self, sha256: &str, name: &str, bytes: &[u8], actor: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO module_blobs (sha256, name, bytes, created_at, created_by) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(sha256)
        .bind(name)
        .bind(bytes)
        .bind(fhirgate_core::clock::now_seconds() as i64)
        .bind(actor)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The kept modules among `digests`, by SHA-256.
    pub async fn modules(&self, digests: &[String]) -> Result<HashMap<String, Vec<u8>>, sqlx::Error> {
        let mut out = HashMap::new();
        for digest in digests {
            if out.contains_key(digest) {
                continue;
            }
            let found: Option<Vec<u8>> = sqlx::query_scalar("SELECT bytes FROM module_blobs WHERE sha256 = $1")
                .bind(digest.to_ascii_lowercase())
                .fetch_optional(self.pool())
                .await?;
            if let Some(bytes) = found {
                out.insert(digest.clone(), bytes);
            }
        }
        Ok(out)
    }

    /// The activation every replica serves: the newest.
    pub async fn latest_activation(&self) -> Result<Option<ActivationRow>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM policy_activations ORDER BY generation DESC LIMIT 1");
        sqlx::query(&sql).fetch_optional(self.pool()).await?.as_ref().map(row).transpose()
    }

    /// The activation before `generation` whose text differs from it: what a
    /// rollback goes back to.
    pub async fn activation_before(&self, generation: i64) -> Result<Option<ActivationRow>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM policy_activations WHERE generation < $1 AND policy <> \
             (SELECT policy FROM policy_activations WHERE generation = $1) ORDER BY generation DESC LIMIT 1"
        );
        sqlx::query(&sql).bind(generation).fetch_optional(self.pool()).await?.as_ref().map(row).transpose()
    }

    /// Records `policy` as the newest activation and announces it; its
    /// generation.
    pub async fn record_activation(&self, policy: &str, kind: &str, actor: &str) -> Result<i64, sqlx::Error> {
        self.insert_activation(policy, kind, None, actor).await
    }

    /// Records the policy file's `text` as deployed (SHA-256 `sha256`) as an
    /// activation, unless it is the file the newest file activation was made
    /// from (every replica starts with the same file; only the first records
    /// it). The generation recorded, if one was.
    pub async fn adopt_policy_file(&self, text: &str, sha256: &str, actor: &str) -> Result<Option<i64>, sqlx::Error> {
        let last: Option<String> = sqlx::query_scalar(
            "SELECT file_sha256 FROM policy_activations WHERE kind = 'file' ORDER BY generation DESC LIMIT 1",
        )
        .fetch_optional(self.pool())
        .await?
        .flatten();
        if last.as_deref() == Some(sha256) {
            return Ok(None);
        }
        self.insert_activation(text, "file", Some(sha256), actor).await.map(Some)
    }

    async fn insert_activation(
        &self,
        policy: &str,
        kind: &str,
        file_sha256: Option<&str>,
        actor: &str,
    ) -> Result<i64, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        if let Some(sha) = file_sha256 {
            // Under the write lock: another replica may have recorded the
            // same file since it was looked at.
            let last: Option<String> = sqlx::query_scalar(
                "SELECT file_sha256 FROM policy_activations WHERE kind = 'file' ORDER BY generation DESC LIMIT 1",
            )
            .fetch_optional(&mut *tx)
            .await?
            .flatten();
            if last.as_deref() == Some(sha) {
                let newest: i64 =
                    sqlx::query_scalar("SELECT MAX(generation) FROM policy_activations").fetch_one(&mut *tx).await?;
                tx.commit().await?;
                return Ok(newest);
            }
        }
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT MAX(generation) FROM policy_activations").fetch_one(&mut *tx).await?;
        let generation = newest.unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO policy_activations (generation, policy, kind, file_sha256, at, actor) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(generation)
        .bind(policy)
        .bind(kind)
        .bind(file_sha256)
        .bind(fhirgate_core::clock::now_seconds() as i64)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        announce(&mut tx, Topic::Modules).await?;
        tx.commit().await?;
        Ok(generation)
    }
}

#[cfg(test)]
mod tests {
    crate::store_tests! {
        async fn activations_are_numbered_and_a_file_is_adopted_once(store) {
            assert_eq!(store.latest_activation().await.unwrap(), None);
            assert_eq!(store.adopt_policy_file("v1", "s1", "policy-file").await.unwrap(), Some(1));
            // Every replica starts with the same file: recorded once.
            assert_eq!(store.adopt_policy_file("v1", "s1", "policy-file").await.unwrap(), None);
            assert_eq!(store.record_activation("v2", "upload", "ana").await.unwrap(), 2);
            assert_eq!(store.record_activation("v2", "upload", "ana").await.unwrap(), 3);
            let latest = store.latest_activation().await.unwrap().unwrap();
            assert_eq!((latest.generation, latest.policy.as_str(), latest.kind.as_str()), (3, "v2", "upload"));
            // A rollback goes back past activations of the same text.
            assert_eq!(store.activation_before(3).await.unwrap().unwrap().policy, "v1");
            assert_eq!(store.activation_before(1).await.unwrap(), None);
            // A changed file is a new activation.
            assert_eq!(store.adopt_policy_file("v3", "s3", "policy-file").await.unwrap(), Some(4));

            store.put_module("ab", "router", b"\0asm-1", "ana").await.unwrap();
            store.put_module("ab", "router", b"other", "ana").await.unwrap();
            let found = store.modules(&["ab".into(), "cd".into()]).await.unwrap();
            assert_eq!(found.len(), 1);
            assert_eq!(found["ab"], b"\0asm-1");
        }
    }
}
